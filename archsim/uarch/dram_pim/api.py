"""Function-level API of the DRAM-PIM model (used by the xPU+PIM system model too).

    attention_cycles(cfg, batch, kv_lens, heads, head_dim, ...)  -> PimResult
    gemv_cycles(cfg, rows, cols, ...)                             -> PimResult
    gemv_baseline_cycles(cfg, rows, cols, ...)                    -> PimResult (same DRAM, no PIM)
    eltwise_cycles(cfg, op, elements, ...)                        -> PimResult
    stream_cycles(cfg, read_bytes, write_bytes)                   -> PimResult (plain streaming)

``cfg`` is a loaded :class:`DramPimConfig` or anything :func:`load` accepts (preset name,
path, dict). Cycles are DRAM command-clock cycles (tCK); ``seconds`` = cycles * tCK.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from archsim.energy import mac_price
from archsim.errors import ConfigError, LoweringError
from archsim.uarch.dram_pim import engine as E
from archsim.uarch.dram_pim.attention import build_trace, channel_streams
from archsim.uarch.dram_pim.dram_adapter import PimDevice, resolve
from archsim.uarch.dram_pim.gemv import (eltwise_stream, gemv_stream, stream_rw, units_per_stream)


@dataclass
class PimResult:
    cycles: int
    seconds: float
    counters: dict                       # engine counters of the busiest stream, summed over streams
    internal_bytes: int = 0              # bytes read inside the DRAM by the units
    external_bytes: int = 0              # bytes over the host interface / data path
    macs: int = 0
    energy_pj: dict = field(default_factory=dict)
    streams: int = 0
    per_stream_cycles: list = field(default_factory=list)

    @property
    def energy_total_pj(self) -> float:
        return float(sum(self.energy_pj.values()))

    def to_dict(self) -> dict:
        return {"cycles": self.cycles, "seconds": self.seconds, "counters": self.counters,
                "internal_bytes": self.internal_bytes, "external_bytes": self.external_bytes,
                "macs": self.macs, "energy_pj": self.energy_pj, "streams": self.streams}


def load(cfg, overrides=None):
    """A DramPimConfig from a config object, preset name, path or dict."""
    from archsim.uarch.dram_pim.spec import DramPimConfig
    if isinstance(cfg, DramPimConfig) and not overrides:
        return cfg
    from archsim.config.loader import load_arch
    if isinstance(cfg, DramPimConfig):
        cfg = cfg.model_dump()
    return load_arch(cfg, list(overrides or []))


def _run_streams(streams, geom, T):
    """Run every distinct stream once; returns (per-stream counters list)."""
    cache = {}
    out = []
    for kind, sub, bank, row in streams:
        h = hashlib.sha1(kind.tobytes() + sub.tobytes() + bank.tobytes() + row.tobytes()).hexdigest()
        if h not in cache:
            c = E.run_stream(kind, sub, bank, row, geom, T)
            if c[E.C_CYCLES] < 0:
                raise ConfigError([("memory.dram.timing.tREFI", f"refresh interval {int(T[E.T_REFI])} CK "
                                    f"leaves no room for the commands between refreshes (tRFC "
                                    f"{int(T[E.T_RFC])} CK): the stream makes no progress")])
            cache[h] = c
        out.append(cache[h])
    return out


@lru_cache(maxsize=None)
def _energy_table() -> dict:
    p = Path(__file__).resolve().parents[2] / "energy" / "tables" / "dram_pim.yaml"
    return yaml.safe_load(p.read_text())


def pim_mac_pj(cfg) -> float:
    """pJ of one MAC of the PIM units at ``pim.precision`` (the design's ``energy.mac_pj`` first)."""
    tab = _energy_table()["mac_pj"]
    return mac_price(cfg.energy.mac_pj, cfg.pim.precision, lambda p: tab.get(p, tab["fp16"]))


def background_w(dev: PimDevice) -> float:
    """Background (standby, refresh-independent) power of all channels of all stacks, W."""
    mw = dev.energy.get("background_mw_per_channel", _energy_table()["background_mw_per_channel_default"])
    return mw * 1e-3 * dev.channels * dev.stacks


def _energy(dev: PimDevice, cfg, tot: dict, cycles: int, *, placement, host_read_bytes=0,
            host_write_bytes=0) -> dict:
    """Energy split: in-bank read (activations + array reads the units consume), PIM compute,
    I/O (data-path and host transfers), background."""
    tab = _energy_table()
    seg = tab["path_pj_per_bit"]
    act_pj = tot.get("bank_acts", 0) * dev.row_bytes * 8 * seg["cell_act_pre"]
    rd_seg = sum(seg[s] for s in tab["placement_read_segments"][placement])
    internal = tot.get("_internal_bytes", 0)
    in_bank = act_pj + internal * 8 * rd_seg
    compute = tot.get("_macs", 0) * pim_mac_pj(cfg)
    dp_cmds = sum(tot.get(n, 0) for n in E.DATA_NAMES) + tot.get("wr_ab", 0) + tot.get("wr_hb_dq", 0)
    dp_bits = dp_cmds * dev.tx_bytes * 8
    dp_seg = sum(seg[s] for s in tab["data_path_segments"])
    host_seg = sum(seg[s] for s in tab["host_extra_segments"])
    io = dp_bits * dp_seg + tot.get("wrgb", 0) * dev.tx_bytes * 8 * host_seg
    # host streaming (baseline): array read + full path to the host
    host_bits = (host_read_bytes + host_write_bytes) * 8
    in_bank += host_bits * seg["cell_rd_wr"]
    io += host_bits * (dp_seg + host_seg)
    background = background_w(dev) * cycles * dev.tck_ns * 1e-9 * 1e12
    return {"in_bank_read": float(in_bank), "pim_compute": float(compute), "io": float(io),
            "background": float(background)}


def _summarise(dev, cfg, per, geom, n_streams_total, placement, *, host_rd=0, host_wr=0,
               units_per_cmd=None, mult=None):
    """Combine per-stream counters: ``per`` lists the streams of one device (all devices equal),
    or, with ``mult``, the streams of every distinct device and how many devices run each."""
    cycles = int(max(c[E.C_CYCLES] for c in per)) if per else 0
    if mult is None:
        tot = np.sum(np.stack(per), axis=0) if per else np.zeros(E.N_C, np.int64)
        tot = tot * dev.stacks
    else:
        tot = np.sum(np.stack(per) * np.asarray(mult, np.int64)[:, None], axis=0)
    d = E.counters_dict(tot)
    d["cycles"] = cycles
    P, R, G, B = (int(x) for x in geom)
    # bytes read by the units per MAC command of each kind
    ab_units = units_per_cmd if units_per_cmd is not None else P * R * G * B
    internal = dev.tx_bytes * (d["mac_ab"] * ab_units + d["mac_hb"] * (P * R * G * B // 2)
                               + d["mac_sb"] * P * R * G + d["mac_pb"] * P)
    macs = internal // dev.tx_bytes * dev.burst_elems
    d["_internal_bytes"] = internal
    d["_macs"] = macs
    ext = dev.tx_bytes * (sum(d[n] for n in E.DATA_NAMES) + d["rd"] + d["wr"] + d["wr_ab"] + d["wr_hb_dq"])
    energy = _energy(dev, cfg, d, cycles, placement=placement, host_read_bytes=host_rd,
                     host_write_bytes=host_wr)
    d.pop("_internal_bytes"); d.pop("_macs")
    return PimResult(cycles, cycles * dev.tck_ns * 1e-9, d, int(internal), int(ext), int(macs), energy,
                     n_streams_total, [int(c[E.C_CYCLES]) for c in per])


def reference_trace_note(pim, workload, field: str):
    """The note of a run whose decode attention the PIM times with the AttAcc generator's repeats
    (``pim.reference_trace``), or None: the repeated softmax / MVGB blocks grow with the square of
    the context, which the hardware would not pay."""
    if not pim.reference_trace or not any(op.role == "attn_qk" for op in workload.ops()):
        return None
    return (f"{field}: the PIM attention is timed with the AttAcc public model's trace generator, repeats "
            f"included (pim.reference_trace=true): the last odd head of a stack has its softmax / MVGB block "
            f"issued once per MAC chunk, a cost that grows with the square of the context "
            f"(KV {workload.kv_len}); pim.reference_trace=false issues each command once, as the hardware would")


def check_pim_operands(ops, pim_precision: str, field: str, how: str = "pim.precision") -> None:
    """The operand a PIM unit reads inside the banks (the KV cache of attention, the weights of a
    GEMV) is laid out and computed at the unit's precision: a workload that stores it at another
    precision is a ConfigError naming ``field`` (the model would otherwise price the wrong bytes);
    ``how``: where the user sets the unit's precision."""
    from archsim.config.types import PRECISION_BITS
    from archsim.workload.graph import GemmOp

    def same_format(a: str, b: str) -> bool:
        # a 16-bit float is a 16-bit float to the bank layout and the unit's lanes (fp16 / bf16)
        return a == b or (PRECISION_BITS[a] == PRECISION_BITS[b] and a.startswith("int") == b.startswith("int"))

    for op in ops:
        if isinstance(op, GemmOp) and op.role in ("attn_qk", "attn_sv", "fc", "lm_head"):
            if not same_format(op.b.dtype, pim_precision):
                what = "KV cache" if op.role.startswith("attn") else "weights"
                raise ConfigError([(field, f"{op.name}: the workload keeps its {what} in {op.b.dtype} but the "
                                           f"PIM units compute {pim_precision}; set the PIM's precision to "
                                           f"{op.b.dtype} ({how.format(p=op.b.dtype)}) or store the {what} in "
                                           f"{pim_precision}")])


def attention_cycles(cfg, batch, kv_lens, heads, head_dim, q_per_kv=1, *, layers=1, overrides=None,
                     placement=None, power_constrained=None, reference_trace=None, devices=1) -> PimResult:
    """Decode attention (QK^T, softmax, SV) of ``batch`` requests x ``heads`` query heads on the
    PIM devices; ``kv_lens`` is one length or one per request. ``q_per_kv`` query heads share
    one K/V head (grouped-query attention, e.g. Llama-2-70B: 64 query heads over 8 KV heads ->
    8): a task is one (request, KV head), its K/V rows are read once and every MAC command's
    column feeds the whole group (the unit needs ``q_per_kv`` times its per-burst time), while
    the query broadcast, score moves, softmax and probability moves are per query head.

    Tasks are dealt to the stacks in contiguous blocks (request order) and every stack is timed:
    the attention takes as long as the busiest stack; counters and energy are summed over the
    stacks. With ``pim.request_placement`` round_robin / min_load every request's KV heads sit
    in one channel instead, in the order of ``kv_lens``; the stacks then belong to ``devices``
    tensor-parallel devices, each holding its share of every request's KV heads in the same
    channel of its own stacks. One layer is simulated; cycles and counters are multiplied by
    ``layers``."""
    cfg = load(cfg, overrides)
    pim = cfg.pim
    placement = placement or pim.placement
    dev = resolve(cfg, power_constrained=power_constrained)
    ref = pim.reference_trace if reference_trace is None else reference_trace
    if isinstance(kv_lens, (int, np.integer)):
        kv = [int(kv_lens)] * int(batch)
    else:
        kv = [int(x) for x in kv_lens]
        if len(kv) != batch:
            raise ConfigError([("kv_lens", f"{len(kv)} lengths for batch {batch}")])
    if any(x <= 0 for x in kv) or heads <= 0 or head_dim <= 0:
        raise ConfigError([("kv_lens", "lengths, heads and head_dim must be positive")])
    grp = int(q_per_kv)
    if grp <= 0 or heads % grp:
        raise ConfigError([("q_per_kv", f"{q_per_kv} query heads per KV head must divide the {heads} "
                            f"query heads")])
    kv_heads = heads // grp
    dbyte = max(1, int(round(dev.elem_bytes)))
    geom, _ = dev.stream_geom("channel")
    C = dev.channels
    tasks = [L for L in kv for _ in range(kv_heads)]
    if pim.layout == "row":
        tasks = [math.ceil(L / C) for L in tasks for _ in range(C)]
    if max(kv) > pim.max_seq_len and pim.layout == "head":
        raise ConfigError([("pim.max_seq_len", f"kv length {max(kv)} exceeds the {pim.max_seq_len} rows "
                            f"reserved per head")])
    T = dev.T
    if grp > 1:
        # one MAC command's column feeds every query head of the group: the unit works through
        # grp x burst_elems products on its lanes at its own clock, rounded up to whole DRAM CK
        unit_ck = math.ceil(grp * dev.burst_elems / pim.simd_lanes / pim.clock_ratio - 1e-9)
        T = dev.T.copy()
        T[E.T_MACGAP] = max(int(T[E.T_MACGAP]), unit_ck)
    if pim.request_placement != "striped":
        per, mult = _per_request_channels(dev, pim, placement, kv, kv_heads, head_dim, dbyte, geom, T,
                                          ref, grp, int(devices))
        res = _summarise(dev, cfg, per, geom, C * dev.stacks, placement, mult=mult)
        return _finish_attention(res, grp, layers)
    # deal tasks to stacks (contiguous blocks), then to channels; every distinct stack is timed
    per_stack = math.ceil(len(tasks) / dev.stacks)
    blocks = [tasks[i:i + per_stack] for i in range(0, len(tasks), per_stack)]
    runs = {}
    for blk in blocks:
        key = tuple(blk)
        if key in runs:
            runs[key][1] += 1
            continue
        # capacity: KV of the tasks of the busiest channel against the channel's capacity
        busiest = [blk[i] for i in range(0, len(blk), C)]
        runs[key] = [_run_tasks(dev, pim, placement, blk, C, busiest, head_dim, dbyte, geom, T, ref, grp,
                                f"pim.stacks={dev.stacks}, batch={batch}, kv_len up to {max(kv)}"), 1]
    per, mult = _flatten(runs)
    res = _summarise(dev, cfg, per, geom, C * dev.stacks, placement, mult=mult)
    return _finish_attention(res, grp, layers)


def _finish_attention(res: PimResult, grp: int, layers: int) -> PimResult:
    """Every MAC of a grouped-query task feeds its ``grp`` query heads; ``layers`` copies."""
    res.macs = res.macs * grp
    res.energy_pj["pim_compute"] *= grp
    if layers != 1:
        res = _scale(res, layers)
    return res


def _run_tasks(dev, pim, placement, tasks, n_channels, busiest, head_dim, dbyte, geom, T, ref, grp, where):
    """Per-channel counters of the attention ``tasks`` dealt to ``n_channels`` channels, once the
    KV cache of the busiest channel's tasks (``busiest``, their lengths) is checked against a
    channel's capacity (``where`` says what laid them out)."""
    need = sum(2 * L * head_dim * dbyte for L in busiest)
    ch_cap = dev.banks_per_channel * dev.rows * dev.row_bytes
    if need > ch_cap:
        raise LoweringError(f"layout does not fit: {len(busiest)} heads of KV cache need "
                            f"{need / 2**30:.2f} GiB per channel, a channel holds {ch_cap / 2**30:.2f} GiB "
                            f"({where}); add stacks or shorten the batch", path="pim.stacks")
    ch, kind, sub, addr, g = build_trace(dev, placement, tasks, head_dim, dbyte, n_channels,
                                         max_seq_len=pim.max_seq_len, reference=ref, group=grp)
    return _run_streams(channel_streams(ch, kind, sub, addr, g, n_channels), geom, T)


def place_requests(kv_lens, n_channels: int, policy: str) -> list[list[int]]:
    """The KV lengths each of ``n_channels`` channels holds when whole requests are placed:
    ``round_robin`` request i (arrival order) to channel i mod n; ``min_load`` the longest
    request first, each to the channel with the fewest KV rows so far (the lowest index on a
    tie; equal lengths in arrival order): greedy longest-first bin packing, as NeuPIMs' trace
    generator balances a batch over the channels."""
    queues = [[] for _ in range(n_channels)]
    rows = np.zeros(n_channels, np.int64)
    if policy == "round_robin":
        order = range(len(kv_lens))
    else:
        order = sorted(range(len(kv_lens)), key=lambda i: -int(kv_lens[i]))
    for r in order:
        L = int(kv_lens[r])
        c = r % n_channels if policy == "round_robin" else int(np.argmin(rows))
        queues[c].append(L)
        rows[c] += L
    return queues


def _per_request_channels(dev, pim, placement, kv, kv_heads, head_dim, dbyte, geom, T, ref, grp, devices):
    """Streams of attention with every request's KV heads in one channel
    (``pim.request_placement`` round_robin / min_load): the requests go to the channels of a
    device's stacks in turn (arrival order) or, longest first, each to the channel with the
    fewest KV rows so far (:func:`place_requests`); each channel works through its queue (its requests' KV heads, two heads software-pipelined, as the
    striped trace of a one-channel device). With ``devices`` tensor-parallel devices sharing the
    stacks, each device holds its share of a request's KV heads in the same channel of its own
    stacks, and all devices run alike. Returns (per-stream counters, multiplicities) of the
    distinct queues; the empty channels are idle."""
    if devices < 1 or dev.stacks % devices:
        raise ConfigError([("pim.stacks", f"{dev.stacks} stacks do not split over {devices} devices")])
    kv_heads = -(-kv_heads // devices)
    runs = {}
    for q in place_requests(kv, dev.channels * (dev.stacks // devices), pim.request_placement):
        if not q:
            continue
        key = tuple(q)
        if key in runs:
            runs[key][1] += 1
            continue
        tasks = [L for L in q for _ in range(kv_heads)]
        runs[key] = [_run_tasks(dev, pim, placement, tasks, 1, tasks, head_dim, dbyte, geom, T, ref, grp,
                                f"{len(q)} requests in one channel, pim.request_placement="
                                f"{pim.request_placement}, pim.stacks={dev.stacks}"), 1]
    return _flatten(runs, devices)


def _flatten(runs: dict, copies: int = 1) -> tuple[list, list]:
    """(per-stream counters, multiplicities) of ``runs`` (key -> [per-stream counters, how many
    times the run occurs]), each run occurring ``copies`` times more."""
    per, mult = [], []
    for p, n in runs.values():
        per += p
        mult += [n * copies] * len(p)
    return per, mult


def _scale(res: PimResult, k: int) -> PimResult:
    c = {n: v * k for n, v in res.counters.items()}
    return PimResult(res.cycles * k, res.seconds * k, c, res.internal_bytes * k, res.external_bytes * k,
                     res.macs * k, {n: v * k for n, v in res.energy_pj.items()}, res.streams,
                     res.per_stream_cycles)


def gemv_cycles(cfg, rows, cols, *, overrides=None, placement=None, power_constrained=None) -> PimResult:
    """y = W x with W (rows x cols) resident in the PIM devices, partitioned row-wise."""
    cfg = load(cfg, overrides)
    pim = cfg.pim
    if placement and placement != pim.placement:
        cfg = load(cfg, [f"pim.placement={placement}"])
        pim = cfg.pim
    dev = resolve(cfg, power_constrained=power_constrained)
    if rows <= 0 or cols <= 0:
        raise ConfigError([("rows", "GEMV dimensions must be positive")])
    geom, n_streams = dev.stream_geom(pim.stream)
    U = units_per_stream(dev, pim.placement, pim.banks_per_unit, geom)
    total_units = U * n_streams * dev.stacks
    rpu = math.ceil(rows / total_units)
    wbytes = rows * cols * dev.elem_bytes
    if wbytes > dev.capacity_bytes:
        raise LoweringError(f"layout does not fit: a {rows} x {cols} weight matrix needs {wbytes / 2**30:.2f} GiB, "
                            f"the PIM devices hold {dev.capacity_bytes / 2**30:.2f} GiB "
                            f"(pim.stacks={dev.stacks}); add stacks", path="pim.stacks")
    stream = gemv_stream(dev, pim, geom, rpu, cols)
    per = _run_streams([stream] * n_streams, geom, dev.T)
    P, R, G, B = (int(x) for x in geom)
    upc = U if pim.placement == "bank" else None
    return _summarise(dev, cfg, per, geom, n_streams * dev.stacks, pim.placement, units_per_cmd=upc)


def stream_cycles(cfg, read_bytes, write_bytes, *, overrides=None) -> PimResult:
    """Plain host streaming of ``read_bytes`` then ``write_bytes`` spread evenly over every
    pseudo-channel of the device (no PIM)."""
    cfg = load(cfg, overrides)
    dev = resolve(cfg)
    geom, n_streams = dev.stream_geom("pseudo_channel")
    n_streams *= dev.stacks
    rd = math.ceil(read_bytes / n_streams)
    wr = math.ceil(write_bytes / n_streams)
    stream = stream_rw(rd, wr, geom, dev, mapping=cfg.pim.host_mapping)
    per = _run_streams([stream] * (n_streams // dev.stacks), geom, dev.T)
    return _summarise(dev, cfg, per, geom, n_streams, "bank", host_rd=read_bytes, host_wr=write_bytes)


def gemv_baseline_cycles(cfg, rows, cols, *, overrides=None) -> PimResult:
    """The same GEMV on the same DRAM without PIM: the host reads W and x and writes y."""
    cfg = load(cfg, overrides)
    dev = resolve(cfg)
    eb = dev.elem_bytes
    return stream_cycles(cfg, rows * cols * eb + cols * eb, rows * eb)


def eltwise_cycles(cfg, op, elements, *, overrides=None) -> PimResult:
    """HBM-PIM element-wise ADD / MUL / ReLU of ``elements`` values in all-bank mode."""
    cfg = load(cfg, overrides)
    pim = cfg.pim
    if op not in ("add", "mul", "relu"):
        raise ConfigError([("op", f"unknown element-wise op {op!r} (add, mul, relu)")])
    dev = resolve(cfg)
    geom, n_streams = dev.stream_geom(pim.stream)
    U = units_per_stream(dev, "bank", pim.banks_per_unit, geom)
    bursts = math.ceil(elements / dev.burst_elems)
    per_unit = math.ceil(bursts / (U * n_streams * dev.stacks))
    stream = eltwise_stream(dev, pim, geom, op, per_unit)
    per = _run_streams([stream] * n_streams, geom, dev.T)
    return _summarise(dev, cfg, per, geom, n_streams * dev.stacks, "bank", units_per_cmd=U)


def eltwise_baseline_cycles(cfg, op, elements, *, overrides=None) -> PimResult:
    cfg = load(cfg, overrides)
    dev = resolve(cfg)
    nbytes = elements * dev.elem_bytes
    n_in = 2 if op in ("add", "mul") else 1
    return stream_cycles(cfg, n_in * nbytes, nbytes)
