"""TPU-like systolic array (output / weight / input stationary)."""
from __future__ import annotations


from archsim.uarch import register
from archsim.uarch.base import Uarch
from archsim.uarch.systolic.cost import COUNTERS, PRIMS, prim_table, systolic_cost, vector_rates
from archsim.uarch.systolic.folds import dataflow_code
from archsim.uarch.systolic.lower import SystolicLowerer, unit_names
from archsim.uarch.systolic.spec import SystolicConfig


class Systolic(Uarch):
    name = "systolic"
    doc = ("TPU-like accelerator: R x C systolic arrays (os/ws/is dataflow) with double-buffered "
           "ifmap/filter/ofmap (or unified) SRAM, a SIMD vector unit and off-chip memory. Per-tile "
           "compute cycles equal SCALE-Sim's; memory stalls come from the memory model.")
    config_cls = SystolicConfig
    counter_names = COUNTERS

    def unit_names(self, cfg):
        return unit_names(cfg.array.count)

    def lower(self, cfg, workload, opts, memory=None):
        if memory is None:
            from archsim.mem.interface import build_memory
            memory = build_memory(cfg.memory, cfg.clock)
        return SystolicLowerer(cfg, memory.peak_bytes_per_cycle, memory.latency_cycles).run(workload)

    def cost(self, cfg, program):
        return systolic_cost(program.op, program.layer, program.m, program.n, program.k, program.nbytes,
                             program.aux, max(1, len(program.layer_names)), dataflow_code(cfg.array.dataflow),
                             cfg.array.rows, cfg.array.cols, prim_table(), vector_rates(cfg.vector),
                             cfg.vector.pipeline_cycles, cfg.array.preload_overlap)

    def peak_macs_per_cycle(self, cfg):
        return cfg.array.rows * cfg.array.cols * cfg.array.count

    def _buf_sizes(self, cfg):
        s = cfg.sram
        if s.is_unified:
            return {"ifmap_sram": s.unified, "filter_sram": s.unified, "ofmap_sram": s.unified}
        return {"ifmap_sram": s.ifmap, "filter_sram": s.filter, "ofmap_sram": s.ofmap}

    @staticmethod
    def _onchip_bytes(cfg) -> float:
        """Every array's buffers and the shared memory."""
        sh = cfg.sram.shared
        return cfg.sram.total_bytes() * cfg.array.count + (sh.size if sh is not None else 0.0)

    @staticmethod
    def mac_precisions(arch_precision: str) -> dict[int, str]:
        """Precision a MAC of each operand width runs at, in the datapath's number family."""
        if arch_precision.startswith(("int", "mxint")):
            return {4: "int4", 8: "int8", 16: "int16", 32: "int32"}
        p16 = arch_precision if arch_precision in ("bf16", "fp16") else "fp16"
        return {4: "mxfp4", 8: "fp8", 16: p16, 32: "fp32"}

    def prices(self, cfg, table):
        # "array.mac" counts all MACs; energy comes from the per-width columns
        p = {f"array.mac_{b}b": table.mac_pj(prec) for b, prec in self.mac_precisions(cfg.precision).items()}
        for comp, size in self._buf_sizes(cfg).items():
            e = table.sram_pj_per_byte(size / max(1, cfg.sram.banks))
            p[f"{comp}.read_bytes"] = e
            p[f"{comp}.write_bytes"] = e
        sh = cfg.sram.shared
        if sh is not None:
            e = table.sram_pj_per_byte(sh.size / sh.banks)
            p["shared_sram.read_bytes"] = e
            p["shared_sram.write_bytes"] = e
        for prim in PRIMS:
            p[f"vector.{prim}"] = table.vector_pj(prim)
        return p

    def peak_dynamic_w(self, cfg, table):
        return self.peak_macs_per_cycle(cfg) * cfg.clock * table.mac_pj(cfg.precision) * 1e-12

    def leakage_w(self, cfg, table):
        peak_mac_w = self.peak_macs_per_cycle(cfg) * table.mac_pj(cfg.precision) * 1e-12 * cfg.clock
        total_sram = self._onchip_bytes(cfg)
        vec_w = cfg.vector.lanes * table.vector_pj("mul") * 1e-12 * cfg.clock
        return {"array": peak_mac_w * table.logic_leak_fraction,
                "sram": table.sram_leakage_w(total_sram),
                "vector": vec_w * table.logic_leak_fraction}

    def area_mm2(self, cfg, table):
        return {"array": self.peak_macs_per_cycle(cfg) * table.mac_area_mm2(cfg.precision),
                "sram": table.sram_area_mm2(self._onchip_bytes(cfg)),
                "vector": cfg.vector.lanes * 4 * table.mac_area_mm2("fp16")}


register(Systolic())

__all__ = ["Systolic", "SystolicConfig"]
