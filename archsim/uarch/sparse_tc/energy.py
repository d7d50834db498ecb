"""Energy per action, leakage and area of the tensor-core variants.

Prices: MAC from the base table at the datapath precision (per issued MAC); operand and
metadata reads and dense/row-merge accumulator accesses at register-file energy; merge
operations and bitmap decoding from ``archsim/energy/tables/sparse_tc.yaml``; shared
memory and L2 as SRAM arrays of one bank / one slice.

The outer-product core accumulates its partial sums in an accumulation buffer next to the
multipliers: a register file of one warp tile of partial sums (warp.m x warp.n x
accumulator_bytes) split into ``outer.acc_banks`` banks, so that the products of one
cycle land in different banks (DS-STC's gather/scatter accumulation; the Sparseloop
re-implementation sizes it to the dense 32x32 output tile). Each product reads and
writes one word of one bank, priced as a register-file access of the bank's size: the
register-file energy per byte (a 512 B RF, Eyeriss) scaled to the bank size with the base
table's SRAM size law (energy per byte ~ array size^0.5 between its 8 KB and 32 KB
points). Once per warp tile and k chunk the buffer is merged into the output fragment in
the SM register file (``acc.spill_bytes``: a bank read plus a register-file read and
write per byte).
"""
from __future__ import annotations

from functools import lru_cache

import yaml

from archsim.energy import TABLES
from archsim.uarch.systolic.cost import PRIMS


@lru_cache(maxsize=None)
def supplement() -> dict:
    return yaml.safe_load((TABLES / "sparse_tc.yaml").read_text())


def prices(cfg, table) -> dict[str, float]:
    sup = supplement()
    rf = sup["register_file_pj_per_byte"] * table.sram_scale
    b = cfg.buffers
    acc = acc_bank_pj_per_byte(cfg, table) if cfg.uarch == "ds_stc" else rf
    p = {
        "array.mac": table.mac_pj(cfg.precision),
        "operand.read_bytes": rf,
        "metadata.read_bytes": rf,
        "acc.read_bytes": acc,
        "acc.write_bytes": acc,
        "merge.ops": sup["merge_op_pj"] * table.logic_scale,
        "decode.bits": sup["decode_pj_per_bit"] * table.logic_scale,
        "smem.write_bytes": table.sram_pj_per_byte(b.shared_memory / 32),
        "l2.read_bytes": table.sram_pj_per_byte(b.l2 / b.l2_slices),
        "acc.spill_bytes": acc + 2 * rf,
    }
    for prim in PRIMS:
        p[f"vector.{prim}"] = table.vector_pj(prim)
    return p


def acc_bank_pj_per_byte(cfg, table) -> float:
    """Energy per byte of an access to one bank of the outer-product core's accumulation
    buffer (a register file of warp.m * warp.n * accumulator_bytes / acc_banks bytes)."""
    sup = supplement()
    bank = cfg.warp.m * cfg.warp.n * cfg.buffers.accumulator_bytes / cfg.outer.acc_banks
    ref = sup["register_file_bytes"]
    return (sup["register_file_pj_per_byte"] * table.sram_scale
            * table.sram_pj_per_byte(bank) / table.sram_pj_per_byte(ref))


def leakage_w(u, cfg, table) -> dict[str, float]:
    peak_mac_w = u.peak_macs_per_cycle(cfg) * table.mac_pj(cfg.precision) * 1e-12 * cfg.clock
    b = cfg.buffers
    sram = (b.register_file + b.shared_memory) * cfg.gpu.sms + b.l2
    vec_w = cfg.vector.lanes * table.vector_pj("mul") * 1e-12 * cfg.clock
    return {"array": peak_mac_w * table.logic_leak_fraction, "sram": table.sram_leakage_w(sram),
            "vector": vec_w * table.logic_leak_fraction}


def area_mm2(u, cfg, table) -> dict[str, float]:
    b = cfg.buffers
    return {"array": u.peak_macs_per_cycle(cfg) * table.mac_area_mm2(cfg.precision),
            "sram": table.sram_area_mm2((b.register_file + b.shared_memory) * cfg.gpu.sms + b.l2),
            "vector": cfg.vector.lanes * 4 * table.mac_area_mm2("fp16")}
