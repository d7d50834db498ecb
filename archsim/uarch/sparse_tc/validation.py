"""Metrics of the sparse tensor-core validation cases (``validation/sparse_tc/``), called
by the validation harness as ``kind: python`` cases: each returns {metric: value}."""
from __future__ import annotations

from archsim import uarch as registry
from archsim.api import load, simulate
from archsim.isa import Op
from archsim.uarch.base import LowerOptions

FAST = ["memory.bandwidth=1000 TB/s", "memory.latency=0 ns"]
CORE_COMPONENTS = ("array", "operand", "metadata", "acc", "merge", "decode")


def _dens(wd, ad):
    return [f"workload.sparsity.weights.density={wd}", f"workload.sparsity.activations.density={ad}"]


def stc_speedup(case):
    """Dense / 2:4 cycles on a 2:4-pruned compute-bound GEMM with the presets' HBM."""
    wl = case["workload"]
    d = simulate("tc_dense", wl).cycles
    s = simulate("stc_2to4", wl, overrides=["workload.sparsity.weights.pattern=nm"]).cycles
    return {"speedup": d / s}


def dstc_granularity(case):
    """Compute-only speed-up of one 8x16 outer-product core over a 128-MAC dense core on a
    32x32 warp tile (one SM with one core, one warp tile per CTA: no barrier or SM imbalance)."""
    one = ["gpu.sms=1", "gpu.tensor_cores_per_sm=1", "cta.m=32", "cta.n=32"] + FAST
    wl = case["workload"]
    dense = simulate("tc_dense", wl, overrides=one + ["mma.m=4", "mma.n=4", "mma.k=8"]).cycles
    out = {}
    for key in case["metrics"]:
        da, db = (float(x[2:]) for x in key.split("_"))
        ds = simulate("ds_stc", wl, overrides=one + _dens(da, db) + ["workload.sparsity.structure=mask"]).cycles
        out[key] = dense / ds
    return out


def _tc_utilisation(arch, overrides, workload):
    cfg, wl = load(arch, workload, overrides=overrides)
    u = registry.get(cfg.uarch)
    prog = u.lower(cfg, wl, LowerOptions())
    dur, cnt = u.cost(cfg, prog)
    busy = dur[prog.op == Op.GEMM].sum()
    issued = cnt[:, u.counter_names.index("array.mac")].sum()
    return issued / (busy * cfg.macs_per_tc())


def spmv_ceiling(case):
    """MAC utilisation of one 64-MAC core on a sparse-matrix x dense-vector product with a
    dense matrix (the ceiling over sparsity)."""
    one = ["gpu.sms=1", "gpu.tensor_cores_per_sm=1", "cta.m=32", "cta.n=32"] + FAST
    wl = case["workload"]
    ds = _tc_utilisation("ds_stc", one + ["outer.a_group=8", "outer.b_group=8"], wl)
    rm = _tc_utilisation("rm_stc", one + ["rowmerge.units=8", "rowmerge.lanes=2", "rowmerge.vector=4",
                                          "rowmerge.merge_width=8"], wl)
    return {"ds_stc": ds, "rm_stc": rm}


def core_energy(arch, wl, overrides):
    r = simulate(arch, wl, overrides=overrides)
    return sum(sum(v for k, v in r.components[c]["energy_pj"].items() if k != "leakage")
               for c in CORE_COMPONENTS if c in r.components)


def dense_energy_ratio(case):
    """Tensor-core energy (MACs, operand/metadata reads, accumulation, merging, decoding)
    of a dense GEMM relative to the dense tensor core."""
    wl = case["workload"]
    base = core_energy("tc_dense", wl, FAST)
    return {"ds_stc": core_energy("ds_stc", wl, FAST) / base, "rm_stc": core_energy("rm_stc", wl, FAST) / base}


def energy_ordering(case):
    """1.0 if RM-STC's core energy is below DS-STC's at each density pair (A = weights)."""
    wl = case["workload"]
    ok = 1.0
    for da, db in case.get("densities", [[1.0, 1.0], [0.5, 0.5], [0.2, 0.1]]):
        ov = FAST + _dens(da, db)
        if not core_energy("rm_stc", wl, ov) < core_energy("ds_stc", wl, ov):
            ok = 0.0
    return {"rm_below_ds": ok}


def rm_over_ds(case):
    """Compute-level speed-up of the row-merge core over the outer-product core (presets,
    same peak) at each density pair (keys dA<weights>_dB<activations>)."""
    wl = case["workload"]
    out = {}
    for key in case["metrics"]:
        da, db = (float(x[2:]) for x in key.split("_"))
        ov = FAST + _dens(da, db)
        out[key] = simulate("ds_stc", wl, overrides=ov).cycles / simulate("rm_stc", wl, overrides=ov).cycles
    return out
