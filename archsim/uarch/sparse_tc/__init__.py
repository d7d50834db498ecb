"""GPU tensor cores for sparse LLM inference, four variants sharing one config model:

- ``tc_dense``: dense tensor core (SMs x tensor cores, an MMA tile per cycle);
- ``stc_2to4``: NVIDIA Ampere-style 2:4 structured sparse tensor core (2x on a 2:4 weight);
- ``ds_stc``: dual-side sparse tensor core, outer-product dataflow on bitmap operands
  (Wang et al., ISCA 2021);
- ``rm_stc``: row-merge sparse tensor core, row-wise (Gustavson) dataflow with hardware
  merging (Huang et al., MICRO 2023).

Cycles of every tile depend on its actual non-zero structure (masks drawn from the
workload's ``sparsity`` section, or per-tile statistics of them).
"""
from __future__ import annotations

import numpy as np

from archsim.uarch import register
from archsim.uarch.base import Uarch
from archsim.uarch.sparse_tc.cost import (COUNTERS, N_PAR, P_ACCB, P_BANKS, P_DSDEC, P_GA, P_GB, P_L, P_METAB,
                                          P_BF, P_MK, P_MM, P_MN, P_R, P_RMDEC, P_STCM, P_STCN, P_T, P_V, P_W,
                                          P_WM, P_WN, VARIANT_CODE, sparse_tc_cost)
from archsim.uarch.sparse_tc.lower import SparseTCLowerer
from archsim.uarch.sparse_tc.spec import VARIANTS, SparseTCConfig
from archsim.uarch.systolic.cost import PRIMS, prim_table, vector_rates

_DOCS = {
    "tc_dense": "GPU dense tensor cores (A100-like): SMs x tensor cores, one MMA tile per cycle.",
    "stc_2to4": "GPU 2:4 structured sparse tensor cores (Ampere): 2x on 2:4-pruned weights, "
                "2-bit metadata per kept value; other weights run dense.",
    "ds_stc": "Dual-side sparse tensor core (Wang et al., ISCA 2021): outer product of bitmap-"
              "encoded weight and activation non-zeros, scatter into a banked accumulation buffer.",
    "rm_stc": "Row-merge sparse tensor core (Huang et al., MICRO 2023): row-wise product, each "
              "weight non-zero streams the matching activation row, partial rows merged in hardware.",
}


def params(cfg) -> np.ndarray:
    p = np.zeros(N_PAR, np.float64)
    p[P_MM], p[P_MN], p[P_MK] = cfg.mma.m, cfg.mma.n, cfg.mma.k
    p[P_T] = cfg.gpu.tensor_cores_per_sm
    p[P_WM], p[P_WN] = cfg.warp.m, cfg.warp.n
    p[P_GA], p[P_GB], p[P_BANKS] = cfg.outer.a_group, cfg.outer.b_group, cfg.outer.acc_banks
    p[P_DSDEC] = cfg.outer.decode_bits_per_cycle
    r = cfg.rowmerge
    p[P_R], p[P_L], p[P_V], p[P_W], p[P_RMDEC] = r.units, r.lanes, r.vector, r.merge_width, r.decode_bits_per_cycle
    p[P_BF] = r.b_fetch_bytes_per_cycle
    p[P_ACCB] = cfg.buffers.accumulator_bytes
    p[P_STCN], p[P_STCM], p[P_METAB] = cfg.stc.n, cfg.stc.m, cfg.stc.metadata_bits
    return p


class SparseTC(Uarch):
    config_cls = SparseTCConfig
    counter_names = COUNTERS

    def __init__(self, name: str):
        self.name = name
        self.doc = _DOCS[name]

    def unit_names(self, cfg):
        return ["dma_rd", "dma_wr", "vector", "ctrl"] + [f"sm{i}" for i in range(cfg.gpu.sms)]

    def lower(self, cfg, workload, opts, memory=None):
        bpc = memory.peak_bytes_per_cycle if memory is not None else cfg.memory.bandwidth / cfg.clock
        return SparseTCLowerer(cfg, bpc).run(workload)

    def cost(self, cfg, program):
        s = program.meta["sparse"]
        return sparse_tc_cost(program.op, program.layer, program.m, program.n, program.k, program.nbytes,
                              program.aux, max(1, len(program.layer_names)), VARIANT_CODE[cfg.uarch],
                              s["optab"], params(cfg), s["acnt"], s["comp"], s["bcnt"], s["bscat"],
                              s["rm_ptr"], s["rm_idx"], s["rm_p"], s["rm_mf"], s["rm_mb"], s["rm_mz"], s["dspre"], prim_table(),
                              vector_rates(cfg.vector), cfg.vector.pipeline_cycles)

    def peak_macs_per_cycle(self, cfg):
        return cfg.gpu.sms * cfg.gpu.tensor_cores_per_sm * cfg.macs_per_tc()

    def sparse_weight_ops(self, cfg, workload):
        """The outer-product and row-merge cores skip every pruned weight's zeros; the 2:4 core
        takes the weights whose tiles meet its n:m (checked tile by tile, so an unstructured weight
        is taken where a tile happens to comply); the dense core none."""
        from archsim.workload.sparsity import pruned_ops
        if self.name == "tc_dense":
            return set()
        return {op.name for op in pruned_ops(workload)}

    # -- energy and area ---------------------------------------------------------------------
    def prices(self, cfg, table):
        from archsim.uarch.sparse_tc.energy import prices
        return prices(cfg, table)

    def leakage_w(self, cfg, table):
        from archsim.uarch.sparse_tc.energy import leakage_w
        return leakage_w(self, cfg, table)

    def area_mm2(self, cfg, table):
        from archsim.uarch.sparse_tc.energy import area_mm2
        return area_mm2(self, cfg, table)


for _v in VARIANTS:
    register(SparseTC(_v))

__all__ = ["SparseTC", "SparseTCConfig", "VARIANTS", "params", "PRIMS"]
