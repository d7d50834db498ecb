"""GPU-like xPU: SMs with tensor cores, shared memory, L2, HBM, kernel launches and tensor
parallelism over NVLink-like links."""
from __future__ import annotations

from archsim.uarch import register
from archsim.uarch.base import Uarch
from archsim.uarch.gpu.cost import COUNTERS, PER_DEVICE, gpu_cost, ring_bytes
from archsim.uarch.gpu.lower import UNITS, GpuLowerer, mma_precision, sparse_mma_of
from archsim.uarch.gpu.spec import GpuConfig, ideal_collectives_note
from archsim.uarch.systolic.cost import PRIMS, prim_table, vector_rates
from archsim.workload.graph import GemmOp


class Gpu(Uarch):
    name = "gpu"
    doc = ("GPU-like xPU: SMs with tensor cores (MMA MACs/cycle per precision), shared memory, L2 and "
           "HBM; GEMMs as CTA tiles in waves over the SMs with L2 reuse, split-K, kernel launch "
           "overheads, non-GEMM kernels, and tensor parallelism with ring all-reduce.")
    config_cls = GpuConfig
    counter_names = COUNTERS

    def unit_names(self, cfg):
        return list(UNITS)

    def lower(self, cfg, workload, opts, memory=None):
        bpc = memory.peak_bytes_per_cycle if memory is not None else cfg.memory.bandwidth / cfg.clock
        return GpuLowerer(cfg, bpc).run(workload)

    def check_capacity(self, cfg, workload):
        """Weights and KV cache of the whole batch against one device's memory (the share of one
        of tensor x pipeline devices)."""
        GpuLowerer(cfg, 1.0).check_capacity(workload)

    def notes(self, cfg, workload):
        n = ideal_collectives_note(cfg.interconnect, cfg.parallel.tensor, "interconnect.algorithm")
        return [n] if n else []

    def sparse_weight_ops(self, cfg, workload):
        """The pruned GEMMs the structured-sparse tensor cores take (``sm.sparse_mma``)."""
        from archsim.workload.sparsity import pruned_ops
        return {op.name for op in pruned_ops(workload) if sparse_mma_of(cfg, op) is not None}

    def split_run_overhead(self, cfg):
        """(config without the once-per-run host cost, that cost in cycles): a run split into
        pipeline micro-batches pays ``launch.fixed`` once (with ``launch.sync: per_op`` every op
        pays it, so it stays)."""
        if cfg.launch.sync != "per_run" or not (cfg.launch.fixed or cfg.launch.fixed_after):
            return cfg, 0
        # the tail of the call (fixed_after) overlaps the last stage's work: not a serial cost
        return (cfg.model_copy(update={"launch": cfg.launch.model_copy(update={"fixed": 0.0, "fixed_after": 0.0})}),
                int(round(cfg.launch.fixed * cfg.clock)))

    def devices(self, cfg):
        """Tensor parallelism simulates one of ``parallel.tensor`` identical devices."""
        return cfg.parallel.tensor

    def cost(self, cfg, program):
        ic = cfg.interconnect
        link_bpc = ic.bandwidth * ic.efficiency / cfg.clock
        dur, cnt = gpu_cost(program.op, program.layer, program.m, program.n, program.k, program.nbytes,
                        program.aux, max(1, len(program.layer_names)), cfg.tiles.k, cfg.sm.mma_efficiency,
                        cfg.feed_bytes_per_cycle(),
                        float(cfg.sm.mainloop_overhead_cycles), float(cfg.sm.epilogue_bytes_per_cycle),
                        cfg.accumulator_bytes, prim_table(), vector_rates(cfg.vector),
                        cfg.vector.pipeline_cycles, link_bpc, ic.latency * cfg.clock,
                        float(cfg.sm.smem_bytes_per_cycle))
        # every device of the tensor-parallel group does the same work: system-wide counts (the
        # MAC columns already count all devices, the model's MACs exactly)
        cnt[:, PER_DEVICE] *= cfg.parallel.tensor
        return dur, cnt

    def run_config(self, cfg, workload):
        """The tensor cores run each GEMM at its operands' precision (the wider of the two, as
        the lowerer does; widened to a supported format, :meth:`GpuConfig.mma_exec`): peak MACs
        and the price of a MAC follow the precision that issues most of the workload's MACs (an
        FP8 run on the bf16-default h100 is priced and bounded as FP8, on the a100 as FP16)."""
        rep = workload.group_repeat()
        tally: dict[str, int] = {}
        for op in workload.ops():
            if isinstance(op, GemmOp):
                prec = cfg.mma_exec(mma_precision(op))
                tally[prec] = tally.get(prec, 0) + op.macs * rep[op.layer]
        if not tally:
            return cfg
        prec = max(tally, key=tally.get)
        if prec == cfg.precision:
            return cfg
        return cfg.model_copy(update={"precision": prec})

    def peak_macs_per_cycle(self, cfg):
        return cfg.sm.count * cfg.mma_rate(cfg.precision) * cfg.parallel.tensor

    def prices(self, cfg, table):
        # per byte of all-reduce payload: the share of it every device of the ring sends
        link_pj_byte = 8 * cfg.interconnect.energy_per_bit * ring_bytes(1.0, cfg.parallel.tensor)
        p = {"array.mac": table.mac_pj(cfg.precision), "link.bytes": link_pj_byte,
             "smem.read_bytes": table.sram_pj_per_byte(float(cfg.sm.smem)),
             "smem.write_bytes": table.sram_pj_per_byte(float(cfg.sm.smem)),
             "l2.read_bytes": table.sram_pj_per_byte(float(cfg.l2.size) / 64),
             "rf.write_bytes": table.sram_pj_per_byte(64 * 1024)}
        for prim in PRIMS:
            p[f"vector.{prim}"] = table.vector_pj(prim)
        return p

    def leakage_w(self, cfg, table):
        peak_mac_w = self.peak_macs_per_cycle(cfg) * table.mac_pj(cfg.precision) * 1e-12 * cfg.clock
        sram = (float(cfg.sm.smem) * cfg.sm.count + float(cfg.l2.size)) * cfg.parallel.tensor
        return {"array": peak_mac_w * table.logic_leak_fraction, "sram": table.sram_leakage_w(sram)}

    def area_mm2(self, cfg, table):
        """Tensor-core MACs and on-chip SRAM (shared memory, L2) of every device of the
        tensor-parallel group, like the leakage and the energy."""
        sram = float(cfg.sm.smem) * cfg.sm.count + float(cfg.l2.size)
        return {"array": self.peak_macs_per_cycle(cfg) * table.mac_area_mm2(cfg.precision),
                "sram": table.sram_area_mm2(sram) * cfg.parallel.tensor}


register(Gpu())

__all__ = ["Gpu", "GpuConfig"]
