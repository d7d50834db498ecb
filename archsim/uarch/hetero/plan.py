"""Planning of an xPU + PIM system: which ops run where, and what each piece costs.

A layer group of the workload is cut into *segments*: maximal runs of consecutive ops (in
topological order) placed on the same device. Each segment is costed by its own
microarchitecture, through that package's functions:

- xPU segments: a sub-workload with just those ops is simulated on the xPU
  (:func:`archsim.sim.run.simulate_loaded` with the gpu or systolic model; the gpu model does
  its own tensor parallelism and all-reduce, a systolic xPU gets the gpu package's column/row
  split rules and its ring all-reduce formula);
- PIM segments: decode attention through :func:`archsim.uarch.dram_pim.attention_cycles`
  (per-request KV lengths, heads dealt over all stacks), the KV append through
  :func:`stream_cycles`, FC layers as GEMVs through :func:`gemv_cycles` (one per batch row);
- link transfers: the activations that cross devices (tensors on graph edges between ops of
  different devices), split over one link per xPU device.

With the interleaved schedule the batch is cut into sub-batches (requests dealt by sorted KV
length so the halves carry equal attention work) and every block is costed per sub-batch.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from types import SimpleNamespace
from typing import Optional

import numpy as np

from archsim.config.loader import load_arch
from archsim.errors import ArchsimError, ConfigError, LoweringError
from archsim.workload.batching import rebuild, request_lens, split_requests
from archsim.workload.graph import GemmOp, LayerGroup, Workload

_XPU_CACHE: dict = {}
_PIM_CACHE: dict = {}
_PARTS: dict = {}


@dataclass
class Seg:
    dev: str                          # "xpu" | "pim"
    seconds: float
    mem_seconds: float = 0.0          # xPU: time its memory traffic occupies the DRAM at peak
    energy_pj: float = 0.0
    macs: int = 0                     # MACs the device issues
    skipped_macs: int = 0             # the ops' MACs it skipped (causal tiles, pruned weights)
    link_in: float = 0.0              # bytes arriving from the other device before the segment
    chunks: list = field(default_factory=list)   # PIM attention per head group (head pipelining)
    ops: tuple = ()
    kinds: dict = field(default_factory=dict)    # seconds by kind (breakdown)
    phases: list = field(default_factory=list)   # dev "ffp": FfPhase list (feed-forward parallelism)
    nbytes: tuple = (0.0, 0.0, 0.0, 0.0)          # memory traffic, BYTE_KINDS order
    host_s: float = 0.0               # gpu xPU: the host's time issuing the segment's kernel launches
    launch_s: float = 0.0             # gpu xPU: of it, the first launch (issued ahead, left out of seconds)


#: memory traffic of a segment: the xPU's DRAM reads and writes, the bytes the PIM units read
#: inside the banks, and the bytes crossing the PIM devices' data path (KV append, query, results)
BYTE_KINDS = ("xpu_read", "xpu_write", "pim_in_bank", "pim_io")


def _pim_bytes(r, times=1) -> tuple:
    return (0.0, 0.0, float(r.internal_bytes) * times, float(r.external_bytes) * times)


def _pim_dyn_pj(r) -> float:
    """A PIM call's energy without the stacks' background power, which the system charges over
    the whole step (the stacks hold the KV cache and stay powered and refreshed)."""
    return r.energy_total_pj - float(r.energy_pj.get("background", 0.0))


def _add_bytes(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b))


@dataclass
class FfPhase:
    """One step of a feed-forward-parallel MLP: the xPU's share ``x`` runs while the PIM's share
    ``p`` runs behind a transfer of ``link_in`` bytes and before one of ``link_out`` bytes
    (``p`` None: an xPU-only step, e.g. the activation)."""
    x: Optional[Seg]
    p: Optional[Seg] = None
    link_in: float = 0.0
    link_out: float = 0.0
    pim_rows: int = 0                 # PIM share: rows of the GEMV (output features)
    pim_cols: int = 0                 # and its columns (input features)


@dataclass
class GroupPlan:
    name: str
    repeat: int
    subs: list                        # per sub-batch: list[Seg]
    has_pim: bool
    link_out: list                    # per sub-batch: bytes leaving each segment (aligned with subs)


@dataclass
class Plan:
    groups: list
    sub_batches: int
    batch_split: list
    fixed_seconds: float
    capacity: dict
    notes: list = field(default_factory=list)


# -- the two sides -----------------------------------------------------------------------------------

def _prefixed(e: ConfigError, prefix: str) -> ConfigError:
    return ConfigError([(f"{prefix}.{p}" if p else prefix, m) for p, m in e.problems])


def _uarch_of(source):
    """The ``uarch`` a hardware description names (a preset, a path or an inline dict)."""
    from archsim.config.loader import find_preset, load_yaml_file
    data = source if isinstance(source, dict) else load_yaml_file(find_preset(source, "arch_configs"))
    return data.get("uarch")


def parts(cfg):
    """(xpu config, pim config, xpu uarch) of a hetero config, loaded once."""
    key = cfg.model_dump_json()
    if key in _PARTS:
        return _PARTS[key]
    from archsim import uarch as registry
    ov = list(cfg.xpu.set)
    try:
        x0 = load_arch(cfg.xpu.arch, ov)
    except ConfigError as e:
        raise _prefixed(e, "xpu.arch") from None
    if x0.uarch not in ("gpu", "systolic"):
        raise ConfigError([("xpu.arch", f"the xPU must be a gpu or systolic microarchitecture, "
                                        f"got {x0.uarch!r}")])
    if x0.uarch == "gpu":
        if x0.parallel.pipeline > 1:
            raise ConfigError([("xpu.set", "pipeline stages of a hetero system are its own parallel.pipeline, "
                                           "not the xPU's")])
        ov = ov + [f"parallel.tensor={cfg.xpu.devices}"]
        x0 = load_arch(cfg.xpu.arch, ov)

    # the family is checked before the stack-count override meets another family's model
    pim_uarch = _uarch_of(cfg.pim.arch)
    if pim_uarch != "dram_pim":
        name = repr(cfg.pim.arch) if isinstance(cfg.pim.arch, str) else "the inline configuration"
        raise ConfigError([("pim.arch", f"must name a dram_pim configuration (the PIM side is DRAM-bank PIM "
                                        f"stacks); {name} is a {pim_uarch!r} configuration")])
    try:
        p0 = load_arch(cfg.pim.arch, list(cfg.pim.set) + [f"pim.stacks={cfg.pim.stacks * cfg.xpu.devices}"])
    except ConfigError as e:
        raise _prefixed(e, "pim.arch") from None
    out = SimpleNamespace(xpu=x0, pim=p0, xu=registry.get(x0.uarch), pu=registry.get("dram_pim"),
                          xpu_cap=cfg.xpu.capacity if cfg.xpu.capacity is not None else x0.memory.capacity)
    _PARTS[key] = out
    return out


def run_fixed_seconds(P) -> float:
    """The host cost the system pays once per run: the xPU's ``launch.fixed`` (a gpu's; its
    segments run without it, :func:`_segment_xpu_cfg`)."""
    return float(getattr(getattr(P.xpu, "launch", None), "fixed", 0.0) or 0.0)


def _segment_xpu_cfg(x0):
    """The xPU config used for segments: no per-run fixed cost (paid once by the system) and no
    per-device capacity check (the system checks the aggregate)."""
    mem = x0.memory.model_copy(update={"capacity": None})
    upd = {"memory": mem}
    if x0.uarch == "gpu":
        upd["launch"] = x0.launch.model_copy(update={"fixed": 0.0, "fixed_after": 0.0})
    return x0.model_copy(update=upd)


# -- tensor-parallel sharding for an xPU without its own (systolic) -----------------------------------

def _shard_ops(ops, T):
    """Per-device copies of ``ops`` under tensor parallelism over T devices (the gpu package's
    split rules) and the all-reduce payloads (bytes) after row-split layers."""
    from archsim.uarch.gpu.lower import GpuLowerer
    fake = SimpleNamespace(tp=T)
    out, ar = [], []
    for op in ops:
        if isinstance(op, GemmOp):
            M, N, K, G, red = GpuLowerer.shard_gemm(fake, op)
            a = replace(op.a, shape=(M * G, K)) if op.a.kind == "activation" else op.a
            b = replace(op.b, shape=(K, N) if op.b_shared else (G, K, N))
            c = replace(op.c, shape=(M * G, N))
            out.append(replace(op, M=M, N=N, K=K, count=G, a=a, b=b, c=c))
            if red and not op.attrs.get("defer_allreduce"):
                ar.append(M * N * G * op.c.bytes_per_element)
        else:
            rows, cols = GpuLowerer.shard_vector(fake, op)
            ins = tuple(replace(t, shape=(rows, cols)) for t in op.inputs)
            outs = tuple(replace(t, shape=(rows, cols)) for t in op.outputs)
            out.append(replace(op, rows=rows, cols=cols, inputs=ins, outputs=outs))
    return out, ar


def _sub_workload(wl, ops):
    import networkx as nx
    g = nx.DiGraph()
    for op in ops:
        g.add_node(op.name, op=op)
    names = set(g.nodes)
    for u, v, d in wl.graph.edges(data=True):
        if u in names and v in names:
            g.add_edge(u, v, **d)
    layers = list(dict.fromkeys(op.layer for op in ops))
    return Workload(wl.name, g, [LayerGroup(n, 1) for n in layers], wl.phase, wl.batch, wl.seq_len,
                    wl.kv_len, 0, spec=wl.spec)


def _op_key(op) -> tuple:
    """Everything about an op that its cost depends on: kind, role, shape, every operand's shape,
    precision, placement and sparsity, and its attributes (two ops of one name and shape, e.g. the
    same layer at another precision, must not share a cached segment)."""
    tensors = (op.a, op.b, op.c) if isinstance(op, GemmOp) else tuple(op.inputs) + tuple(op.outputs)
    dims = tuple(int(getattr(op, f, 0) or 0) for f in ("M", "N", "K", "count", "rows", "cols"))
    return (type(op).__name__, op.name, op.role, int(getattr(op, "kind", -1)), dims,
            bool(getattr(op, "b_shared", False)), repr(sorted(op.attrs.items())),
            tuple((t.name, tuple(t.shape), t.dtype, t.kind, t.density, t.scale_group, t.scale_bits)
                  for t in tensors))


def xpu_segment(cfg, P, wl, ops) -> Seg:
    """Cost of ``ops`` on the xPU (all devices)."""
    from archsim.sim.run import simulate_loaded
    xc = _segment_xpu_cfg(P.xpu)
    T = cfg.xpu.devices
    # the all-reduces of a systolic xPU run over the system's interconnect: part of the key
    key = (xc.model_dump_json(), cfg.interconnect.model_dump_json(), T, tuple(_op_key(op) for op in ops))
    if key in _XPU_CACHE:
        return replace(_XPU_CACHE[key])
    run_ops, ar = (ops, [])
    if P.xpu.uarch != "gpu" and T > 1:
        run_ops, ar = _shard_ops(ops, T)
    res = simulate_loaded(xc, _sub_workload(wl, run_ops))
    sec = res.seconds
    host_s = launch_s = 0.0
    if P.xpu.uarch == "gpu":
        # the host issues the segment's first launch ahead of time (it is not blocked by the
        # device); the system's host timeline (hetero _Emitter.xpu) says when it can
        launch_s = min(xc.launch.host, res.seconds)
        sec = max(res.cycles - int(round(xc.launch.host * xc.clock)), 0) / xc.clock
        host_s = max(res.units.get("host", 0) / xc.clock, launch_s)
    energy = res.dynamic_pj
    ar_s = 0.0
    # a gpu xPU runs its own all-reduces (its link unit, on the critical path between kernels)
    ar_in = res.units.get("link", 0) / xc.clock if P.xpu.uarch == "gpu" else 0.0
    if ar:
        ic = cfg.interconnect
        ar_s = sum(ic.allreduce_cycles(b, T, xc.clock) for b in ar) / xc.clock
        energy += ic.allreduce_pj(sum(ar), T)
    mult = T if (P.xpu.uarch != "gpu") else 1          # the gpu result already counts every device
    rd = sum(r.offchip_read_bytes * r.repeat for r in res.layers) * mult
    wr = sum(r.offchip_write_bytes * r.repeat for r in res.layers) * mult
    skipped = int(res.skipped_macs) * mult
    seg = Seg("xpu", sec + ar_s, mem_seconds=res.memory_bound_cycles / xc.clock,
              energy_pj=energy * mult, macs=sum(op.macs for op in ops) - skipped, skipped_macs=skipped,
              ops=tuple(op.name for op in ops),
              kinds={"xpu_compute": max(sec - ar_in, 0.0), "xpu_allreduce": ar_s + min(ar_in, sec)},
              nbytes=(float(rd), float(wr), 0.0, 0.0), host_s=host_s, launch_s=launch_s)
    _XPU_CACHE[key] = seg
    return replace(seg)


# -- PIM ---------------------------------------------------------------------------------------------

def _pim_cfg(P, max_ctx):
    rows = P.pim.pim.max_seq_len
    if max_ctx > rows:
        need = 1 << int(math.ceil(math.log2(max_ctx)))
        return load_arch(P.pim.model_dump(mode="json"), [f"pim.max_seq_len={need}"])
    return P.pim


def _pim_call(fn, pc, *args, **kw):
    key = (fn.__name__, pc.model_dump_json(), args, tuple(sorted(kw.items())))
    if key not in _PIM_CACHE:
        _PIM_CACHE[key] = fn(pc, *args, **kw)
    return _PIM_CACHE[key]


def _balanced_order(ctx, heads, stacks):
    """Request order for :func:`attention_cycles`, which deals (request, head) tasks to the stacks
    in contiguous blocks and times the first (fullest) stack: requests are dealt to the stacks
    round-robin by decreasing length (snake order, a balanced placement) and the busiest stack
    comes first; when a stack holds less than one request's heads, the longest request does."""
    srt = sorted(ctx, reverse=True)
    per_stack = -(-len(ctx) * heads // stacks)
    if per_stack < heads:
        return srt
    n_b = -(-len(ctx) * heads // per_stack)
    buckets = [[] for _ in range(n_b)]
    for i, L in enumerate(srt):
        r, j = divmod(i, n_b)
        buckets[j if r % 2 == 0 else n_b - 1 - j].append(L)
    buckets.sort(key=lambda b: -sum(b))
    return [L for b in buckets for L in b]


def pim_segment(cfg, P, wl, ops, spec) -> Seg:
    from archsim.uarch.dram_pim.api import attention_cycles, check_pim_operands, gemv_cycles, stream_cycles
    check_pim_operands(ops, P.pim.pim.precision, "pim.set", how="the entry 'pim.precision={p}' in pim.set")
    roles = {op.role for op in ops}
    sec, energy, kinds, chunks = 0.0, 0.0, {}, []
    nb = (0.0, 0.0, 0.0, 0.0)
    qk = [op for op in ops if op.role == "attn_qk"]
    if qk:
        heads = int(spec.get("n_heads") or 1)
        kvh = int(spec.get("n_kv_heads") or heads)
        hd = int(qk[0].K)
        ctx = []
        for op in sorted(qk, key=lambda o: o.N):
            ctx += [int(op.N)] * max(1, int(op.count) // kvh)
        per_request = P.pim.pim.request_placement != "striped"
        if per_request:
            # whole requests go to channels in arrival order (the batch's, or the sub-batch's):
            # the i-th shortest request attends over the i-th shortest context of the ops (its
            # KV length plus the new token)
            arrival = request_lens(wl)
            if arrival is not None and len(arrival) == len(ctx):
                ordered = np.empty(len(ctx), np.int64)
                ordered[np.argsort(arrival, kind="stable")] = sorted(ctx)
                ctx = [int(L) for L in ordered]
        else:
            ctx = _balanced_order(ctx, heads, P.pim.pim.stacks)
        pc = _pim_cfg(P, max(ctx))
        grp = max(1, heads // kvh)
        # a head group holds at least one of the query heads an xPU device computes (tensor
        # parallelism gives each device heads / devices of them)
        c = min(cfg.head_chunks, max(1, heads // cfg.xpu.devices))
        # more head groups than a device's KV heads split a KV head's query heads over several
        # groups, and every group reads the KV head again for its own query heads: the attention
        # runs as `split` passes over all KV heads, each with grp / split query heads per KV head
        split = min(grp, -(-c // max(1, kvh // cfg.xpu.devices))) if c > 1 else 1
        q = -(-grp // split)
        r = _pim_call(attention_cycles, pc, len(ctx), tuple(ctx), kvh * q, hd, q,
                      devices=cfg.xpu.devices if per_request else 1)
        # the units take one query row at a time: a pass verifying several positions per request
        # (speculative decoding) runs the attention once per row
        rows = max(1, int(qk[0].attrs.get("attn_rows", 1))) * split
        sec += r.seconds * rows
        energy += _pim_dyn_pj(r) * rows
        nb = _add_bytes(nb, _pim_bytes(r, rows))
        kinds["pim_attention"] = r.seconds * rows
        if c > 1:
            # each head's KV sits in its own channels, so head groups arriving one after another
            # keep every channel busy: the attention time is shared evenly by the head groups
            chunks = [r.seconds * rows / c] * c
    for op in ops:
        if op.role == "kv_write":
            wb = sum(t.nbytes for t in op.outputs)
            r = _pim_call(stream_cycles, P.pim, 0, int(wb))
            sec += r.seconds
            energy += _pim_dyn_pj(r)
            nb = _add_bytes(nb, _pim_bytes(r))
            kinds["pim_kv_write"] = kinds.get("pim_kv_write", 0.0) + r.seconds
            if chunks:
                chunks = [x + r.seconds / len(chunks) for x in chunks]
        elif isinstance(op, GemmOp) and op.role in ("fc", "lm_head"):
            r = _pim_call(gemv_cycles, P.pim, int(op.N), int(op.K))
            reps = int(op.M) * int(op.count)
            sec += r.seconds * reps
            energy += _pim_dyn_pj(r) * reps
            nb = _add_bytes(nb, _pim_bytes(r, reps))
            kinds["pim_gemv"] = kinds.get("pim_gemv", 0.0) + r.seconds * reps
    del roles
    return Seg("pim", sec, energy_pj=energy, macs=sum(op.macs for op in ops), chunks=chunks,
               ops=tuple(op.name for op in ops), kinds=kinds, nbytes=nb)


# -- feed-forward parallelism (AttAcc's ff option) ----------------------------------------------------

FF_COL = ("up", "gate")               # FFN GEMMs split by output columns
FF_ROW = ("down",)                    # FFN GEMMs split by input rows (partial sums)


def _suffix(op) -> str:
    return op.name.rsplit(".", 1)[-1]


def ff_region(ops):
    """(first, last) indices of the FFN (up/gate ... down GEMMs) inside a run of xPU ops, or None."""
    first = next((i for i, op in enumerate(ops)
                  if isinstance(op, GemmOp) and op.role == "fc" and _suffix(op) in FF_COL), None)
    if first is None:
        return None
    last = next((i for i in range(first + 1, len(ops))
                 if isinstance(ops[i], GemmOp) and ops[i].role == "fc" and _suffix(ops[i]) in FF_ROW), None)
    if last is None:
        return None
    return first, last


def _shrunk(op, keep: int, axis: str):
    """``op`` with only ``keep`` output columns (axis n) or input rows (axis k) left on the xPU."""
    M, N, K = int(op.M), int(op.N), int(op.K)
    if axis == "n":
        N = keep
    else:
        K = keep
    a = replace(op.a, shape=(M, K)) if op.a.kind == "activation" else op.a
    return replace(op, N=N, K=K, a=a, b=replace(op.b, shape=(K, N)), c=replace(op.c, shape=(M, N)))


def _link_s(cfg, nbytes: float) -> float:
    if nbytes <= 0:
        return 0.0
    return cfg.link.latency + nbytes / (cfg.xpu.devices * cfg.link.bandwidth)


def allreduce_segment(cfg, P, nbytes: float) -> Seg:
    """The tensor-parallel ring all-reduce of ``nbytes`` per device as its own xPU step (a gpu xPU
    also pays the device-side kernel gap; the host issues the kernel ahead)."""
    T = cfg.xpu.devices
    x = P.xpu
    ic = x.interconnect if x.uarch == "gpu" else cfg.interconnect
    clk = x.clock
    cyc = ic.allreduce_cycles(nbytes, T, clk)
    if nbytes <= 0 or cyc <= 0:                  # one device, or free collectives
        return Seg("xpu", 0.0)
    if x.uarch == "gpu":
        cyc += int(round(x.launch.gap * clk))
    s = cyc / clk
    energy = ic.allreduce_pj(nbytes, T) * T
    return Seg("xpu", s, energy_pj=energy, kinds={"xpu_allreduce": s})


def _ff_gemm_phase(cfg, P, wl, op) -> FfPhase:
    """Split one FFN GEMM between xPU and PIM so that the two sides finish together.

    The PIM computes its share as GEMVs, one per request (each request's activation row streams
    through the weights in the banks: no reuse across the batch), on every stack of the system;
    an up/gate share is a slice of output columns (the PIM needs the normalised input and sends
    its slice of the output), a down share a slice of input rows (the PIM needs those activations
    and returns partial sums of every output, added on the xPU). The xPU time falls and the PIM
    time rises with the share: the balance point is found by bisection over multiples of
    1 / ff_split_steps, each candidate costed by the two models themselves.
    """
    from archsim.uarch.dram_pim.api import gemv_cycles
    axis = "n" if _suffix(op) in FF_COL else "k"
    M, N, K, cnt = int(op.M), int(op.N), int(op.K), int(op.count)
    full = N if axis == "n" else K
    steps = min(int(cfg.ff_split_steps), full)
    a_b, c_b = op.a.bytes_per_element, op.c.bytes_per_element
    reqs = M * cnt
    memo: dict = {}

    def at(j):
        if j in memo:
            return memo[j]
        share = full * j // steps
        keep = full - share
        xop = _shrunk(op, keep, axis)
        if axis == "k":
            xop = replace(xop, attrs={**xop.attrs, "defer_allreduce": True})
        x = xpu_segment(cfg, P, wl, [xop]) if keep > 0 else None
        if share > 0:
            rows, cols = (share, K) if axis == "n" else (N, share)
            r = _pim_call(gemv_cycles, P.pim, rows, cols)
            p = Seg("pim", r.seconds * reqs, energy_pj=_pim_dyn_pj(r) * reqs, ops=(op.name,),
                    kinds={"pim_ff_gemv": r.seconds * reqs}, nbytes=_pim_bytes(r, reqs))
            lin = reqs * (K if axis == "n" else share) * a_b
            lout = reqs * (share if axis == "n" else N) * c_b
            ph = FfPhase(x, p, float(lin), float(lout), rows, cols)
            t_p = _link_s(cfg, lin) + p.seconds + _link_s(cfg, lout)
        else:
            ph = FfPhase(x)
            t_p = 0.0
        memo[j] = (ph, x.seconds if x is not None else 0.0, t_p)
        return memo[j]

    lo, hi = 0, steps                 # t_x > t_p at lo (no PIM share), t_x <= t_p at hi (all on PIM)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        _, tx, tp = at(mid)
        if tp >= tx:
            hi = mid
        else:
            lo = mid
    best = min((lo, hi), key=lambda j: max(at(j)[1], at(j)[2]))
    ph = at(best)[0]
    if ph.p is not None:
        xm = ph.x.macs + ph.x.skipped_macs if ph.x is not None else 0
        ph.p = replace(ph.p, macs=int(op.macs) - int(xm))
    return ph


def ff_segment(cfg, P, wl, ops) -> Seg:
    """A feed-forward-parallel MLP (up/gate, activation, down): GEMM phases split between xPU and
    PIM, the element-wise ops between them on the xPU."""
    phases, vec = [], []
    for op in ops:
        if isinstance(op, GemmOp):
            if vec:
                phases.append(FfPhase(xpu_segment(cfg, P, wl, vec)))
                vec = []
            phases.append(_ff_gemm_phase(cfg, P, wl, op))
            if _suffix(op) in FF_ROW and cfg.xpu.devices > 1:
                # the xPU's and the PIM's partial sums are reduced over the devices afterwards
                M, N, G = int(op.M), int(op.N), int(op.count)
                phases.append(FfPhase(allreduce_segment(cfg, P, M * N * G * op.c.bytes_per_element)))
        else:
            vec.append(op)
    if vec:
        phases.append(FfPhase(xpu_segment(cfg, P, wl, vec)))
    sec, kinds, energy, macs, skipped = 0.0, {}, 0.0, 0, 0
    nb = (0.0, 0.0, 0.0, 0.0)
    for ph in phases:
        tx = ph.x.seconds if ph.x is not None else 0.0
        tp = (_link_s(cfg, ph.link_in) + ph.p.seconds + _link_s(cfg, ph.link_out)) if ph.p is not None else 0.0
        sec += max(tx, tp)
        for s in (ph.x, ph.p):
            if s is None:
                continue
            energy += s.energy_pj
            macs += s.macs
            skipped += s.skipped_macs
            nb = _add_bytes(nb, s.nbytes)
            for k, v in s.kinds.items():
                kinds[k] = kinds.get(k, 0.0) + v
    return Seg("ffp", sec, energy_pj=energy, macs=macs, skipped_macs=skipped, ops=tuple(op.name for op in ops),
               kinds=kinds, phases=phases, nbytes=nb)


# -- link traffic ------------------------------------------------------------------------------------

def _crossing_bytes(wl, names: set, dev_of) -> tuple[float, float]:
    """Bytes of tensors entering ``names`` from ops on another device, and leaving them to ops on
    another device (each tensor once per direction)."""
    g = wl.graph
    seg_dev = dev_of(g.nodes[next(iter(names))]["op"])
    tin, tout = {}, {}
    for n in names:
        for p, _, d in g.in_edges(n, data=True):
            if p not in names and dev_of(g.nodes[p]["op"]) != seg_dev:
                t = d.get("tensor")
                if t is not None:
                    tin[t.name] = t.nbytes
        for _, s, d in g.out_edges(n, data=True):
            if s not in names and dev_of(g.nodes[s]["op"]) != seg_dev:
                t = d.get("tensor")
                if t is not None:
                    tout[t.name] = t.nbytes
    return float(sum(tin.values())), float(sum(tout.values()))


# -- the plan ----------------------------------------------------------------------------------------

def check_capacity(cfg, P, wl, dev_of) -> dict:
    from archsim.workload.spec import check_tensor_parallel_heads
    check_tensor_parallel_heads(wl.spec, cfg.xpu.devices, "xpu.devices")
    rep = wl.group_repeat()
    weights = {"xpu": 0.0, "pim": 0.0}
    kv = {"xpu": 0.0, "pim": 0.0}
    from archsim.uarch.gpu.lower import stored_nbytes
    for op, t in wl.stored_tensors():
        dev = dev_of(op)
        # a gpu xPU holds the weights its structured-sparse tensor cores take compressed
        nbytes = stored_nbytes(P.xpu, op, t) if dev == "xpu" and P.xpu.uarch == "gpu" else t.nbytes
        (weights if t.kind == "weight" else kv)[dev] += nbytes * rep[op.layer]
    stages = cfg.parallel.pipeline          # every pipeline stage has its own devices and stacks
    pim_cap = cfg.pim.stacks * cfg.xpu.devices * cfg.pim.capacity_per_stack * stages
    xpu_cap = None if P.xpu_cap is None else P.xpu_cap * cfg.xpu.devices * stages
    need = sum(weights.values()) + sum(kv.values())
    if cfg.pim.shared_with_xpu:
        total = pim_cap
        fields = "pim.stacks / pim.capacity_per_stack"
    else:
        total = None if xpu_cap is None else xpu_cap + pim_cap
        fields = "pim.stacks / xpu.capacity"
    info = {"weights_bytes": weights, "kv_bytes": kv, "need_bytes": need, "pim_capacity_bytes": pim_cap,
            "xpu_capacity_bytes": xpu_cap, "aggregate_capacity_bytes": total}
    if total is not None and need > total:
        raise LoweringError(
            f"the model does not fit the aggregate memory: weights {sum(weights.values()) / 1e9:.1f} GB + KV cache "
            f"{sum(kv.values()) / 1e9:.1f} GB need {need / 1e9:.1f} GB, the system holds {total / 1e9:.1f} GB; add "
            f"stacks or devices, or reduce batch / KV length", path="pim.stacks")
    del fields
    return info


def _split_ff(runs):
    """Cut the FFN (up/gate ... down) out of xPU runs as a feed-forward-parallel run ("ffp")."""
    out = []
    for d, ops in runs:
        reg = ff_region(ops) if d == "xpu" else None
        if reg is None:
            out.append((d, ops))
            continue
        i, j = reg
        for dd, part in (("xpu", ops[:i]), ("ffp", ops[i:j + 1]), ("xpu", ops[j + 1:])):
            if part:
                out.append((dd, part))
    return out


def device_of(cfg, wl):
    """op -> 'xpu' | 'pim' for this workload (prefill runs on the xPU, as in AttAcc / NeuPIMs)."""
    decode = wl.phase == "decode"

    def dev_of(op):
        return cfg.device_of(op.role) if decode else "xpu"
    return dev_of


def sub_batches(cfg, wl, all_layers=False):
    """(KV lengths of each sub-batch, its workload): the batch split of the interleaved schedule
    (requests dealt by sorted KV length, so the sub-batches carry equal attention), or the whole
    batch as one."""
    lens = request_lens(wl)
    B = int(wl.batch)
    if (cfg.schedule == "interleaved" and lens is not None and B >= max(cfg.interleave_min_batch, cfg.sub_batches)):
        # dealt by length (equal attention), each sub-batch in arrival order
        split = [x for _, x in split_requests(wl, cfg.sub_batches)]
        return split, [rebuild(wl, cfg.precision, len(x), x, all_layers) for x in split]
    return ([lens] if lens is not None else [None]), [wl]


def build_plan(cfg, wl, all_layers=False) -> Plan:
    P = parts(cfg)
    decode = wl.phase == "decode"
    dev_of = device_of(cfg, wl)
    cap = check_capacity(cfg, P, wl, dev_of)
    split, wls = sub_batches(cfg, wl, all_layers)
    S = len(wls)
    B = int(wl.batch)
    spec = wl.spec
    groups = []
    for g in wl.groups:
        ops_full = [op for op in wl.ops() if op.layer == g.name]
        has_pim = any(dev_of(op) == "pim" for op in ops_full)
        src = wls if has_pim else [wl]
        subs, outs = [], []
        for w in src:
            ops = [op for op in w.ops() if op.layer == g.name]
            runs = []
            for op in ops:
                d = dev_of(op)
                if runs and runs[-1][0] == d:
                    runs[-1][1].append(op)
                else:
                    runs.append((d, [op]))
            if has_pim and decode and cfg.ff_parallel:
                runs = _split_ff(runs)
            segs, seg_out = [], []
            for d, seg_ops in runs:
                if d == "xpu":
                    s = xpu_segment(cfg, P, w, seg_ops)
                elif d == "ffp":
                    s = ff_segment(cfg, P, w, seg_ops)
                else:
                    s = pim_segment(cfg, P, w, seg_ops, spec)
                bi, bo = (0.0, 0.0) if d != "pim" else _crossing_bytes(w, {op.name for op in seg_ops}, dev_of)
                s.link_in = bi
                segs.append(s)
                seg_out.append(bo)
            subs.append(segs)
            outs.append(seg_out)
        groups.append(GroupPlan(g.name, int(g.repeat), subs, has_pim, outs))
    return Plan(groups, S, [len(x) if x is not None else B for x in split], run_fixed_seconds(P), cap)


def clear_caches():
    _XPU_CACHE.clear()
    _PIM_CACHE.clear()
    _PARTS.clear()


__all__ = ["Seg", "FfPhase", "GroupPlan", "Plan", "build_plan", "sub_batches", "run_fixed_seconds", "parts", "clear_caches", "ArchsimError"]
