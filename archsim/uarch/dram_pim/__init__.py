"""DRAM-bank processing-in-memory (HBM-PIM, AiM / Newton, AttAcc): MAC units per bank, per
bank group or on the buffer die, driven by PIM commands timed against bank state.

Function-level API (see docs/dram_pim.md): :func:`attention_cycles`, :func:`gemv_cycles`,
:func:`gemv_baseline_cycles`, :func:`eltwise_cycles`, :func:`stream_cycles`.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from archsim.isa import Op, ProgramBuilder
from archsim.uarch import register
from archsim.uarch.base import Uarch
from archsim.uarch.dram_pim.api import (PimResult, attention_cycles, background_w, check_pim_operands,
                                        eltwise_baseline_cycles, eltwise_cycles, gemv_baseline_cycles, gemv_cycles,
                                        pim_mac_pj, reference_trace_note, stream_cycles)
from archsim.uarch.dram_pim.dram_adapter import resolve
from archsim.uarch.dram_pim.spec import DramPimConfig, PimUnitConfig
from archsim.workload.graph import attention_name

COUNTERS = ("pim.mac_cmd", "pim.macs", "dram.act", "dram.internal_bytes", "dram.in_bank_fj", "dram.io_fj",
             "pim.padded_macs")


@njit(cache=True)
def pim_cost(op, layer, m, n_, k, nbytes, aux, n_layers):
    """Durations and counters of a lowered PIM program: every Op.GEMM instruction on a
    ``pim_ch*`` unit is one GEMV command group whose cycles and counts the lowering measured
    with the command engine (aux = [cycles, mac_cmds, issued lane-MACs, acts]; ``k`` holds the
    workload's useful MACs, so lanes left idle by padding are counted as padded MACs; ``nbytes``
    the bytes the units read inside the DRAM; ``m`` / ``n`` the group's activation-and-array-read
    and I/O energies in fJ, priced by the engine's DRAM path segments)."""
    n = op.shape[0]
    dur = np.zeros(n, np.int64)
    cnt = np.zeros((n_layers, 7), np.int64)
    for i in range(n):
        if op[i] == 2:
            dur[i] = aux[i, 0]
            cnt[layer[i], 0] += aux[i, 1]
            cnt[layer[i], 1] += aux[i, 2]
            cnt[layer[i], 2] += aux[i, 3]
            cnt[layer[i], 3] += nbytes[i]
            cnt[layer[i], 4] += m[i]
            cnt[layer[i], 5] += n_[i]
            if aux[i, 2] > k[i]:
                cnt[layer[i], 6] += aux[i, 2] - k[i]
    return dur, cnt


class DramPim(Uarch):
    name = "dram_pim"
    doc = ("DRAM-bank PIM (HBM-PIM / AiM / Newton / AttAcc): SIMD MAC units per bank, per bank group or "
           "on the buffer die; GEMV and decode attention lowered to all-bank / same-bank / per-bank MAC "
           "command streams timed against bank state (tRCD/tRP/tRAS/tCCD/tRRD/tFAW/refresh).")
    config_cls = DramPimConfig
    counter_names = COUNTERS
    mac_counter = "pim.macs"

    def unit_names(self, cfg):
        return ["host"] + [f"pim_ch{i}" for i in range(1)]

    def lower(self, cfg, workload, opts, memory=None):
        """Decode layers on the PIM devices: every FC GEMM becomes M GEMVs (one per activation
        row; PIM units have no batching), the attention score GEMM becomes the whole
        attention (QK^T, softmax, SV) of the batch; prefill-sized GEMMs are rejected."""
        from archsim.errors import LoweringError
        b = ProgramBuilder(self.unit_names(cfg))
        dev = resolve(cfg)
        per_ck = cfg.clock * dev.tck_ns * 1e-9
        rep = workload.group_repeat()
        layers = {}
        cache = {}
        check_pim_operands(list(workload.ops()), cfg.pim.precision, "pim.precision")
        attention_ops: dict = {}        # layer -> its attention ops, timed as one
        for op in workload.ops():
            if op.role in ("attn_qk", "softmax", "attn_sv"):
                attention_ops.setdefault(op.layer, []).append(op.name)
        for op in workload.ops():
            if not hasattr(op, "M"):
                continue
            if op.layer not in layers:
                layers[op.layer] = b.layer(op.layer, rep.get(op.layer, 1))
            li = layers[op.layer]
            count = int(op.count)
            if op.role == "attn_sv":
                continue                               # timed with attn_qk
            if op.role == "attn_qk":
                # one op per (request, KV head); its M rows are the query heads of the group times
                # the query rows per request (more than one when a speculative pass verifies
                # several positions): the units take one query row at a time, as they take the
                # activation rows of an FC layer
                rows = max(1, int(op.attrs.get("attn_rows", 1)))
                grp = max(1, int(op.M) // rows)
                # the op covers the requests of one KV length (all of them when they share it)
                kvh = int(op.b.shape[1]) if len(op.b.shape) == 4 else max(1, count // max(1, workload.batch))
                n_req = max(1, count // kvh)
                heads = kvh * grp
                key = ("attn", n_req, op.N, heads, op.K, grp)
                if key not in cache:
                    cache[key] = attention_cycles(cfg, n_req, int(op.N), heads, int(op.K), grp)
                r = cache[key]
                reps = rows
                useful = 2 * op.macs                   # QK^T and SV of the batch
            else:
                if op.M > 8:
                    why = (f"workload.phase is {workload.phase!r}" if workload.phase != "decode"
                           else f"workload.batch is {workload.batch}")
                    raise LoweringError(f"{op.name}: M={op.M} rows is not a GEMV ({why}); dram_pim runs "
                                        f"decode (matrix-vector) layers of up to 8 rows: use --phase "
                                        f"decode and a batch of at most 8, or a hetero system",
                                        path="workload.phase" if workload.phase != "decode" else "workload.batch")
                key = ("gemv", op.N, op.K)
                if key not in cache:
                    cache[key] = gemv_cycles(cfg, int(op.N), int(op.K))
                r = cache[key]
                reps = int(op.M) * count
                useful = op.macs
            c = r.counters
            if op.role == "attn_qk":
                b.tag(attention_name(op.name), attention_ops.get(op.layer, []))
            else:
                b.tag(op.name)
            b.add(Op.GEMM, 1, li, m=int(round(r.energy_pj["in_bank_read"] * 1e3)) * reps,
                  n=int(round(r.energy_pj["io"] * 1e3)) * reps, k=useful, nbytes=int(r.internal_bytes) * reps,
                  aux=[int(np.ceil(r.cycles * per_ck)) * reps, (c["mac_ab"] + c["mac_sb"] + c["mac_pb"]) * reps,
                       r.macs * reps, c["bank_acts"] * reps])
        if not layers:
            raise LoweringError(f"workload {workload.name!r} has no matrix-vector layer: dram_pim runs GEMVs "
                                f"and decode attention in the banks; element-wise and row operators run on "
                                f"the host (use a hetero system for both)")
        return b.build()

    def notes(self, cfg, workload):
        """A model whose weights and KV cache exceed the devices is timed layer by layer as if each
        layer's matrices were resident (the layout check holds one matrix at a time): say so."""
        out = [n for n in [reference_trace_note(cfg.pim, workload, "pim.reference_trace")] if n]
        rep = workload.group_repeat()
        need = sum(t.nbytes * rep[op.layer] for op, t in workload.stored_tensors())
        cap = resolve(cfg).capacity_bytes
        if need <= cap:
            return out
        return out + [f"pim.stacks: the model's weights and KV cache need {need / 2**30:.1f} GiB, the PIM devices hold "
                f"{cap / 2**30:.2f} GiB ({cfg.pim.stacks} stack(s)); each layer is timed as if its matrices were "
                f"resident, so this is a per-layer cost, not a system that holds the model "
                f"(pim.stacks={-(-need // cap) * cfg.pim.stacks} would)"]

    def cost(self, cfg, program):
        return pim_cost(program.op, program.layer, program.m, program.n, program.k, program.nbytes, program.aux,
                        max(1, len(program.layer_names)))

    def peak_macs_per_cycle(self, cfg):
        dev = resolve(cfg)
        geom, n_streams = dev.stream_geom(cfg.pim.stream)
        from archsim.uarch.dram_pim.gemv import units_per_stream
        units = units_per_stream(dev, cfg.pim.placement, cfg.pim.banks_per_unit, geom) * n_streams * dev.stacks
        # the units' arithmetic peak (lanes at the unit clock), as the silicon papers quote it; the
        # column feed (one burst per MAC interval) may keep a unit below it (HBM-PIM: 16 lanes at
        # 300 MHz = 4.8 MAC/ns against 16 values per 4 ns)
        macs_per_ck = units * cfg.pim.simd_lanes * cfg.pim.clock_ratio
        return macs_per_ck / (cfg.clock * dev.tck_ns * 1e-9)

    def prices(self, cfg, table):
        """MACs at the PIM unit's precision (energy/tables/dram_pim.yaml, or the design's
        energy.mac_pj); the DRAM-path energies arrive in fJ from the command engine."""
        return {"pim.macs": pim_mac_pj(cfg), "dram.in_bank_fj": 1e-3, "dram.io_fj": 1e-3}

    def leakage_w(self, cfg, table):
        """Background power of every channel of every stack (the preset's, or the table's default)."""
        dev = resolve(cfg)
        return {"dram": background_w(dev)}


register(DramPim())

__all__ = ["DramPim", "DramPimConfig", "PimUnitConfig", "PimResult", "attention_cycles", "gemv_cycles",
           "gemv_baseline_cycles", "eltwise_cycles", "eltwise_baseline_cycles", "stream_cycles", "resolve"]
