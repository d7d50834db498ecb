"""Digital SRAM compute-in-memory chip (TranCIM-like): macros hold weights, inputs stream in
bit-serially, rewrites of weights and of attention's K/V are explicit instructions."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from archsim.uarch import register
from archsim.uarch.base import Uarch
from archsim.uarch.sram_cim.cost import COUNTERS, cim_cost
from archsim.uarch.sram_cim.lower import CimLowerer, unit_names
from archsim.uarch.sram_cim.spec import SramCimConfig
from archsim.uarch.systolic.cost import PRIMS, prim_table, vector_rates

_TABLE = Path(__file__).resolve().parents[2] / "energy" / "tables" / "sram_cim.yaml"


@lru_cache(maxsize=None)
def cim_table() -> dict:
    return yaml.safe_load(_TABLE.read_text())


def bitop_pj(table) -> float:
    """Energy of one 1b x 1b partial product at the table's node (pJ)."""
    from archsim.energy import table_for
    t = cim_table()
    ref = table_for(t["tech_node_nm"])
    return t["bitop_fj"] * 1e-3 * table.logic_scale / ref.logic_scale


class SramCim(Uarch):
    name = "sram_cim"
    doc = ("Digital SRAM compute-in-memory chip: N macros of rows x cols bit-cells (weights across "
           "weight_bits columns, inputs bit-serial), adder trees and shift-accumulators, a global "
           "buffer, a vector unit and off-chip memory. Weight tiles are pinned when they fit and "
           "otherwise rewritten through explicit macro-write instructions; attention K^T/V are "
           "written into macros (bitline transpose optional); pipeline/parallel modes; sparse "
           "attention skips masked waves.")
    config_cls = SramCimConfig
    counter_names = COUNTERS

    def unit_names(self, cfg):
        return unit_names(cfg)

    def lower(self, cfg, workload, opts, memory=None):
        bpc = memory.peak_bytes_per_cycle if memory is not None else cfg.memory.bandwidth / cfg.clock
        return CimLowerer(cfg, bpc).run(workload)

    def cost(self, cfg, program):
        mc = cfg.macro
        return cim_cost(program.op, program.layer, program.m, program.n, program.k, program.nbytes,
                        program.addr, program.aux, max(1, len(program.layer_names)),
                        mc.input_bits_per_cycle, mc.pipeline_cycles, mc.write_cycles_per_row,
                        cfg.mapping.transpose_elements_per_cycle, prim_table(), vector_rates(cfg.vector),
                        cfg.vector.pipeline_cycles)

    def peak_macs_per_cycle(self, cfg):
        """MACs per cycle of all macros at the macro's weight precision and inputs of
        ``macro.input_bits`` (default: the chip's precision)."""
        from archsim.config.types import PRECISION_BITS
        mc = cfg.macro
        in_bits = mc.input_bits or PRECISION_BITS[cfg.precision]
        waves_per_cycle = mc.input_bits_per_cycle / in_bits
        return mc.count * mc.rows * mc.weights_per_row * min(1.0, waves_per_cycle)

    def prices(self, cfg, table):
        mc = cfg.macro
        lf = table.logic_leak_fraction
        # the measured macro energy includes its leakage at full activity: split it into
        # dynamic (priced per bit-op) and static (leakage_w) so the total at full activity is
        # the measured figure
        p = {"cim.bitop": bitop_pj(table) / (1.0 + lf),
             # a macro row write is an SRAM write into an array of the macro's size
             "cim.bit_write": table.sram_pj_per_byte(mc.bytes) / 8.0}
        buf = table.sram_pj_per_byte(cfg.buffer.size / cfg.buffer.banks)
        p["buffer.read_bytes"] = buf
        p["buffer.write_bytes"] = buf
        for prim in PRIMS:
            p[f"vector.{prim}"] = table.vector_pj(prim)
        return p

    def leakage_w(self, cfg, table):
        mc = cfg.macro
        lf = table.logic_leak_fraction
        peak_bitops_per_s = mc.count * mc.rows * mc.cols * mc.input_bits_per_cycle * cfg.clock
        macro_w = bitop_pj(table) * 1e-12 * peak_bitops_per_s * lf / (1.0 + lf)
        vec_w = cfg.vector.lanes * table.vector_pj("mul") * 1e-12 * cfg.clock
        return {"cim": macro_w,
                "buffer": table.sram_leakage_w(cfg.buffer.size),
                "vector": vec_w * table.logic_leak_fraction}

    def area_mm2(self, cfg, table):
        mc = cfg.macro
        # digital CIM bit-cell + per-column adder logic: ~2x a plain SRAM array (order of magnitude)
        return {"cim": 2.0 * table.sram_area_mm2(mc.count * mc.bytes),
                "buffer": table.sram_area_mm2(cfg.buffer.size),
                "vector": cfg.vector.lanes * 4 * table.mac_area_mm2("fp16")}

    # -- report hook ------------------------------------------------------------------------
    def summary(self, result) -> dict:
        """Cycles split into compute / rewrite / stall and energy into compute / rewrite /
        buffer / DRAM / vector / leakage (see :func:`archsim.uarch.sram_cim.report.summary`)."""
        from archsim.uarch.sram_cim.report import summary
        return summary(self, result)


register(SramCim())

__all__ = ["SramCim", "SramCimConfig", "np"]
