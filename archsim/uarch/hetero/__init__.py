"""Heterogeneous xPU + PIM systems for batched LLM decoding (AttAcc-, NeuPIMs-style).

The xPU (gpu or systolic microarchitecture) runs the FC layers, DRAM-bank PIM stacks
(dram_pim) run decode attention; a link carries the activations between them. The plan
(:mod:`.plan`) costs every segment through the two packages; the lowering here turns the
plan into a Program of coarse instructions on the units ``xpu``, ``pim``, ``link_to_pim``,
``link_to_xpu`` whose dependencies express the schedule:

- ``serial`` (AttAcc): per layer, xPU (norm, QKV) -> link -> PIM attention -> link -> xPU
  (projection, MLP); with ``head_chunks`` > 1 the QKV generation, the transfer and the
  attention are pipelined over head groups; with ``ff_parallel`` the PIM computes a share of
  every FFN GEMM (as per-request GEMVs) while the xPU computes the rest;
- ``interleaved`` (NeuPIMs): the batch is cut into sub-batches; the xPU program order is
  ``tail(sb0, l-1), front(sb0, l), tail(sb1, l-1), front(sb1, l)`` so the xPU's FC work of
  one sub-batch overlaps the PIM attention of the other.

When the PIM stacks are also the xPU's memory (``pim.shared_with_xpu``) without dual row
buffers, each xPU segment first occupies the banks (the ``pim`` unit) for its memory time,
so regular traffic and PIM commands serialise; with dual row buffers they proceed together.

Identical blocks are lowered twice (a first instance and a steady-state instance weighted by
``repeat - 1``), so the steady state includes the overlap across consecutive layers.
"""
from __future__ import annotations

import math

import numpy as np

from archsim.isa import Op, ProgramBuilder
from archsim.uarch import register
from archsim.uarch.base import Uarch
from archsim.uarch.hetero.plan import BYTE_KINDS, build_plan, parts
from archsim.uarch.hetero.spec import HeteroConfig

UNITS = ["xpu", "pim", "link_to_pim", "link_to_xpu", "ctrl", "host"]
U_XPU, U_PIM, U_L2P, U_L2X, U_CTRL, U_HOST = range(6)
K_XPU, K_PIM, K_LINK, K_SYNC = range(4)
COUNTERS = ("array.mac", "xpu.energy_pj", "pim.energy_pj", "link.bytes",
            "xpu.dram_read_bytes", "xpu.dram_write_bytes", "pim.in_bank_bytes", "pim.io_bytes",
            "array.skipped_mac")
C_BYTES = 4                         # first memory-traffic column (plan.BYTE_KINDS order)
C_SKIP = 8                          # MACs the xPU skipped (an instruction's k)


class _Emitter:
    def __init__(self, cfg, plan):
        self.cfg = cfg
        self.plan = plan
        self.pb = ProgramBuilder(UNITS)
        self.clock = cfg.clock
        self.links = cfg.xpu.devices
        self.shared_single = cfg.pim.shared_with_xpu and not cfg.pim.dual_row_buffer
        self.totals = {"xpu_s": 0.0, "pim_s": 0.0, "link_s": 0.0, "link_bytes": 0.0}
        if self.shared_single:
            self.totals["xpu_on_banks_s"] = 0.0   # the xPU's memory phases on the shared banks
        self.kinds: dict = {}
        self.layer_bytes: dict = {}       # layer -> memory traffic (plan.BYTE_KINDS order)
        self.host_last = -1               # a gpu xPU's host: its last kernel launches issued

    def count_bytes(self, layer, seg, frac=1.0) -> None:
        acc = self.layer_bytes.setdefault(layer, [0.0] * len(BYTE_KINDS))
        for i, b in enumerate(seg.nbytes):
            acc[i] += b * frac

    def cyc(self, s: float) -> int:
        return int(math.ceil(s * self.clock - 1e-9))

    def add(self, unit, layer, seconds, deps, kind, macs=0, energy=0.0, nbytes=0, skipped=0) -> int:
        deps = [int(d) for d in deps if d is not None and d >= 0][:4]
        op = Op.XFER if kind == K_LINK else (Op.SYNC if kind == K_SYNC else Op.GEMM)
        return int(self.pb.add(op, unit, layer, nbytes=int(nbytes), k=int(skipped),
                               deps=np.array(deps or [-1], np.int64),
                               aux=np.array([self.cyc(seconds), int(macs), int(round(energy)), kind],
                                            np.int64))[0])

    def _tag(self, seg) -> None:
        """Attribute what follows to the segment's workload ops (named by the first and last)."""
        ops = list(seg.ops)
        if not ops:
            self.pb.tag(f"({seg.dev})", members=[])
            return
        name = ops[0] if len(ops) == 1 else f"{ops[0]} .. {ops[-1].rsplit('.', 1)[-1]}"
        self.pb.tag(f"{name} [{seg.dev}]" if seg.dev == "pim" else name, ops)

    def link(self, unit, layer, nbytes, dep, w) -> int:
        if nbytes <= 0:
            return dep
        self.pb.tag("(link to PIM)" if unit == U_L2P else "(link to xPU)", members=[])
        lk = self.cfg.link
        s = lk.latency + nbytes / (self.links * lk.bandwidth)
        self.totals["link_s"] += s * w
        self.totals["link_bytes"] += nbytes * w
        return self.add(unit, layer, s, [dep], K_LINK, nbytes=nbytes)

    def xpu(self, layer, seg, dep, w, frac=1.0, macs=None, skipped=None) -> int:
        self._tag(seg)
        self.totals["xpu_s"] += seg.seconds * frac * w
        for k, v in seg.kinds.items():
            self.kinds[k] = self.kinds.get(k, 0.0) + v * frac * w
        macs = seg.macs if macs is None else macs
        skipped = seg.skipped_macs if skipped is None else skipped
        self.count_bytes(layer, seg, frac)
        if seg.launch_s > 0:
            # a gpu xPU's host issues every kernel launch in order, running ahead of the devices
            # (it waits for neither the PIM nor the link): the segment's first launch, left out of
            # its time, is issued after the host's previous launches, so it is hidden only behind
            # what the devices did meanwhile; the segment's other launches follow on the host
            host = seg.host_s * frac
            first = min(seg.launch_s, host)
            f = self.add(U_HOST, layer, first, [self.host_last], K_SYNC)
            rest = host - first
            self.host_last = self.add(U_HOST, layer, rest, [f], K_SYNC) if self.cyc(rest) > 0 else f
            dep = self.join([dep, f], layer) if dep is not None and dep >= 0 else f
        if self.shared_single and seg.mem_seconds > 0:
            m = min(seg.mem_seconds, seg.seconds) * frac
            self.totals["xpu_on_banks_s"] += m * w
            d = self.add(U_PIM, layer, m, [dep], K_SYNC)
            return self.add(U_XPU, layer, seg.seconds * frac - m, [d], K_XPU, macs, seg.energy_pj * frac,
                            skipped=skipped)
        return self.add(U_XPU, layer, seg.seconds * frac, [dep], K_XPU, macs, seg.energy_pj * frac,
                        skipped=skipped)

    def pim(self, layer, seg, dep, w, seconds=None, macs=None, energy=None) -> int:
        self._tag(seg)
        s = seg.seconds if seconds is None else seconds
        frac = s / seg.seconds if seg.seconds else 1.0          # the share of the segment run here
        self.totals["pim_s"] += s * w
        self.count_bytes(layer, seg, frac)
        for k, v in seg.kinds.items():
            self.kinds[k] = self.kinds.get(k, 0.0) + v * w * frac
        return self.add(U_PIM, layer, s, [dep], K_PIM, seg.macs if macs is None else macs,
                        seg.energy_pj if energy is None else energy)

    def chain(self, layer, segs, outs, dep, w) -> int:
        """Emit segments in order; returns the last instruction."""
        cur = dep
        i = 0
        c = self.cfg.head_chunks
        while i < len(segs):
            s = segs[i]
            if s.dev == "xpu":
                nxt = segs[i + 1] if i + 1 < len(segs) else None
                if c > 1 and nxt is not None and nxt.dev == "pim" and nxt.chunks:
                    cur = self.pipelined(layer, s, nxt, cur, w)
                    cur = self.link(U_L2X, layer, outs[i + 1], cur, w)
                    i += 2
                    continue
                cur = self.xpu(layer, s, cur, w)
            elif s.dev == "ffp":
                cur = self.ff_parallel(layer, s, cur, w)
            else:
                cur = self.link(U_L2P, layer, s.link_in, cur, w)
                cur = self.pim(layer, s, cur, w)
                cur = self.link(U_L2X, layer, outs[i], cur, w)
            i += 1
        return cur

    def ff_parallel(self, layer, seg, dep, w) -> int:
        """Feed-forward parallelism: per phase the xPU's share and (link -> PIM share -> link) run
        side by side from the same start; the next phase waits for both."""
        cur = dep
        for ph in seg.phases:
            ends = []
            if ph.x is not None:
                ends.append(self.xpu(layer, ph.x, cur, w))
            if ph.p is not None:
                lk = self.link(U_L2P, layer, ph.link_in, cur, w)
                pp = self.pim(layer, ph.p, lk, w)
                ends.append(self.link(U_L2X, layer, ph.link_out, pp, w))
            cur = self.join(ends, layer) if len(ends) > 1 else (ends[0] if ends else cur)
        return cur

    def pipelined(self, layer, xs, ps, dep, w) -> int:
        n = len(ps.chunks)
        tot = sum(ps.chunks)
        last_p = -1
        px = dep
        for j, cs in enumerate(ps.chunks):
            mx = xs.macs // n + (1 if j < xs.macs % n else 0)
            sx = xs.skipped_macs // n + (1 if j < xs.skipped_macs % n else 0)
            px = self.xpu(layer, xs, px, w, frac=1.0 / n, macs=mx, skipped=sx)
            lk = self.link(U_L2P, layer, ps.link_in / n, px, w)
            mp = ps.macs // n + (1 if j < ps.macs % n else 0)
            last_p = self.pim(layer, ps, lk, w, seconds=cs, macs=mp,
                              energy=ps.energy_pj * (cs / tot if tot else 1.0 / n))
        return last_p

    def run(self):
        plan = self.plan
        pb = self.pb
        pending = None              # per sub-batch: (segs, outs, dep) of the tail still to run
        last = -1
        first = True
        for gp in plan.groups:
            inst = [(gp.name, gp.repeat)]
            hosted = any(s.launch_s > 0 for segs in gp.subs for s in segs)
            if gp.repeat > 1 and (gp.has_pim or pending is not None or hosted):
                # a PIM block's first instance has no tail of a previous block to run; a group
                # after PIM blocks runs their last tail once, in its first instance; a gpu xPU's
                # host launches a block's first kernel while the previous block still runs,
                # which the first instance, after a different group, may not
                inst = [(f"{gp.name}.first", 1), (gp.name, gp.repeat - 1)]
            for name, w in inst:
                layer = pb.layer(name, w)
                if first and plan.fixed_seconds > 0:
                    self.pb.tag("(runtime)", members=[])
                    last = self.add(U_XPU, layer, plan.fixed_seconds, [], K_SYNC)
                    self.host_last = last         # the host's fixed cost comes before its first launch
                    self.totals["xpu_s"] += plan.fixed_seconds
                first = False
                if not gp.has_pim:
                    if pending is not None:
                        last = self.join([self.chain(layer, s, o, d, w) for s, o, d in pending], layer)
                        pending = None
                    last = self.chain(layer, gp.subs[0], gp.link_out[0], last, w)
                    continue
                # the last PIM segment splits a block into front (up to it) and tail (after it)
                cut = max(i for i, s in enumerate(gp.subs[0]) if s.dev == "pim") + 1
                new = []
                for sb in range(len(gp.subs)):
                    segs, outs = gp.subs[sb], gp.link_out[sb]
                    dep = last
                    if pending is not None:
                        ps, po, pd = pending[sb]
                        dep = self.chain(layer, ps, po, pd, w)
                    end = self.chain(layer, segs[:cut], outs[:cut], dep, w)
                    new.append((segs[cut:], outs[cut:], end))
                pending = new
        if pending is not None:
            layer = pb.layer("drain", 1)
            self.join([self.chain(layer, s, o, d, 1) for s, o, d in pending], layer)
        return pb

    def join(self, ends, layer) -> int:
        ends = [e for e in ends if e >= 0]
        if len(ends) <= 1:
            return ends[0] if ends else -1
        return self.add(U_CTRL, layer, 0.0, ends[:4], K_SYNC)


class Hetero(Uarch):
    name = "hetero"
    doc = ("Heterogeneous xPU + PIM system (AttAcc / NeuPIMs): FC layers on a gpu or systolic xPU, decode "
           "attention on DRAM-bank PIM stacks, a modelled link between them, serial or sub-batch "
           "interleaved schedules, shared memory with single or dual row buffers.")
    config_cls = HeteroConfig
    counter_names = COUNTERS
    offchip_counters = ("xpu.dram_read_bytes", "xpu.dram_write_bytes")
    steady_state_instances = False          # the emitter lowers first and steady instances itself

    def unit_names(self, cfg):
        return list(UNITS)

    def notes(self, cfg, workload):
        """Decode attention placed on PIM units that replay the AttAcc generator's repeats;
        tensor-parallel all-reduces made free (``interconnect.algorithm: ideal``)."""
        from archsim.uarch.dram_pim.api import reference_trace_note
        from archsim.uarch.gpu.spec import ideal_collectives_note
        P = parts(cfg)
        gpu_xpu = P.xpu.uarch == "gpu"
        out = [ideal_collectives_note(P.xpu.interconnect if gpu_xpu else cfg.interconnect, cfg.xpu.devices,
                                      "xpu.set interconnect.algorithm" if gpu_xpu else "interconnect.algorithm")]
        if workload.phase == "decode" and cfg.device_of("attn_qk") == "pim":
            out.append(reference_trace_note(P.pim.pim, workload, "pim.set"))
        return [n for n in out if n]

    def lower(self, cfg, workload, opts, memory=None):
        plan = build_plan(cfg, workload, all_layers=opts.all_layers)
        em = _Emitter(cfg, plan)
        pb = em.run()
        meta = {"plan": {"sub_batches": plan.sub_batches, "batch_split": plan.batch_split,
                         "capacity": plan.capacity, "schedule": cfg.schedule if plan.sub_batches > 1 else "serial",
                         "work_seconds": em.totals, "by_kind_seconds": em.kinds}}
        prog = pb.build(meta=meta)
        lb = np.zeros((max(1, len(prog.layer_names)), len(BYTE_KINDS)), np.int64)
        for layer, v in em.layer_bytes.items():
            lb[layer] = np.round(v)
        prog.meta["layer_bytes"] = lb
        return prog

    def cost(self, cfg, program):
        n_layers = max(1, len(program.layer_names))
        aux = program.aux
        dur = aux[:, 0].astype(np.int64).copy()
        cnt = np.zeros((n_layers, len(COUNTERS)), np.int64)
        L = program.layer.astype(np.int64)
        np.add.at(cnt[:, 0], L, aux[:, 1])
        kind = aux[:, 3]
        np.add.at(cnt[:, 1], L[kind == K_XPU], aux[kind == K_XPU, 2])
        np.add.at(cnt[:, 2], L[kind == K_PIM], aux[kind == K_PIM, 2])
        np.add.at(cnt[:, 3], L[kind == K_LINK], program.nbytes[kind == K_LINK])
        np.add.at(cnt[:, C_SKIP], L[kind == K_XPU], program.k[kind == K_XPU])
        lb = program.meta.get("layer_bytes")
        if lb is not None:
            cnt[:, C_BYTES:C_BYTES + len(BYTE_KINDS)] = lb[:n_layers]
        return dur, cnt

    def sparse_weight_ops(self, cfg, workload):
        """The pruned GEMMs the xPU runs on structured-sparse tensor cores (a gpu xPU with
        ``sm.sparse_mma``); the PIM units and a systolic xPU multiply the zeros."""
        P = parts(cfg)
        return P.xu.sparse_weight_ops(P.xpu, workload) if P.xpu.uarch == "gpu" else set()

    def peak_macs_per_cycle(self, cfg):
        P = parts(cfg)
        x = P.xu.peak_macs_per_cycle(P.xpu) * P.xpu.clock
        if P.xpu.uarch != "gpu":
            x *= cfg.xpu.devices
        p = P.pu.peak_macs_per_cycle(P.pim) * P.pim.clock
        return (x + p) / cfg.clock

    def peak_offchip_bytes_per_cycle(self, cfg):
        """The xPU devices' memory at its modelled peak (their DRAM reads and writes are the
        system's off-chip traffic; the PIM's in-bank and data-path bytes are counted apart)."""
        from archsim.mem.interface import build_memory
        P = parts(cfg)
        per = build_memory(P.xpu.memory, P.xpu.clock).peak_bytes_per_cycle * P.xpu.clock
        return per * cfg.xpu.devices / cfg.clock

    def prices(self, cfg, table):
        return {"xpu.energy_pj": 1.0, "pim.energy_pj": 1.0, "link.bytes": 8.0 * cfg.link.energy_per_bit}

    def leakage_w(self, cfg, table):
        from archsim.energy import table_of
        P = parts(cfg)
        xt = table_of(P.xpu)
        w = sum(P.xu.leakage_w(P.xpu, xt).values())
        if P.xpu.uarch != "gpu":
            w *= cfg.xpu.devices
        # the PIM stacks hold the KV cache: background power (standby, refresh) over the whole step
        from archsim.uarch.dram_pim.api import background_w
        from archsim.uarch.dram_pim.dram_adapter import resolve
        return {"xpu": w, "pim": background_w(resolve(P.pim))}

    def area_mm2(self, cfg, table):
        from archsim.energy import table_of
        P = parts(cfg)
        xt = table_of(P.xpu)
        n = cfg.xpu.devices if P.xpu.uarch != "gpu" else 1     # the gpu's area covers its devices
        return {f"xpu.{k}": v * n for k, v in P.xu.area_mm2(P.xpu, xt).items()}

    def peak_dynamic_w(self, cfg, table):
        from archsim.energy import table_of
        P = parts(cfg)
        xt = table_of(P.xpu)
        w = P.xu.peak_dynamic_w(P.xpu, xt)
        return w * (cfg.xpu.devices if P.xpu.uarch != "gpu" else 1)

    def check_capacity(self, cfg, workload) -> None:
        """Weights and KV cache of the whole batch against the system's memory (all pipeline stages)."""
        from archsim.uarch.hetero.plan import check_capacity, device_of, parts
        check_capacity(cfg, parts(cfg), workload, device_of(cfg, workload))

    def summary(self, result) -> dict:
        """tokens/s, per-token latency, energy per token, xPU / PIM / link busy time.

        With shared banks and one row buffer (``pim.shared_with_xpu`` without dual row buffers)
        the xPU's memory phases hold the banks (the ``pim`` unit): ``busy_s.xpu`` counts them as
        the xPU's (it streams its operands meanwhile), ``busy_s.pim`` is the PIM's own commands,
        and ``busy_s.banks`` the banks' whole occupancy, both together."""
        clk = result.clock_hz
        u = result.units
        plan = result.program.meta.get("plan", {})
        tokens = max(1, result.tokens)
        link = u.get("link_to_pim", 0) + u.get("link_to_xpu", 0)
        s = result.seconds
        work = plan.get("work_seconds") or {}
        on_banks = work.get("xpu_on_banks_s", 0.0)
        busy = {"xpu": u.get("xpu", 0) / clk + on_banks, "pim": max(0.0, u.get("pim", 0) / clk - on_banks),
                "link": link / clk}
        if "xpu_on_banks_s" in work:
            busy["banks"] = u.get("pim", 0) / clk
        return {
            "schedule": plan.get("schedule"),
            "sub_batches": plan.get("sub_batches"),
            "batch_split": plan.get("batch_split"),
            "tokens_per_s": result.tokens_per_s,
            "per_token_latency_s": s,
            "energy_per_token_j": result.energy_pj * 1e-12 / tokens,
            "busy_s": busy,
            "utilisation": {k: (busy[k] / s if s else 0.0) for k in ("xpu", "pim")},
            "work_s": plan.get("work_seconds"),
            "by_kind_s": plan.get("by_kind_seconds"),
            "capacity": plan.get("capacity"),
        }


register(Hetero())

__all__ = ["Hetero", "HeteroConfig"]
