"""Validation helpers (``kind: python`` cases): throughput ratios of NeuPIMs-style systems.

``neupims_ratios(case)`` runs the case's workload at its batch on four systems built from
the ``neupims`` preset (``case["devices"]`` devices in tensor parallel):

- neupims: NPU + dual-row-buffer PIM, sub-batch interleaving;
- naive NPU+PIM: single row buffer, serial, requests placed on the channels round-robin
  (Newton-style baseline of NeuPIMs' npu+pim branch, whose scheduler allocates channels in turn
  where NeuPIMs balances their load);
- NPU-only: attention on the NPU (its memory without PIM);
- GPU-only: ``case["gpu"]`` (default a100) with the same number of devices in tensor parallel.
"""
from __future__ import annotations

from archsim.api import simulate

ATT_X = ["placement.attn_qk=xpu", "placement.softmax=xpu", "placement.attn_sv=xpu", "placement.kv_write=xpu"]


# dgx_a100 as AttAcc's "A100a": HBM3 at 3352 GB/s x 0.85 sustained, its read path at 3.59 pJ/bit
# (arch_configs/attacc_dgx.yaml), the KV cache not limited by the GPUs' capacity
A100A = ["memory.bandwidth=2849.2 GB/s", "memory.capacity=1e13", "memory.energy_per_bit=3.59 pJ"]


def neupims_throughputs(case: dict) -> dict:
    n = int(case.get("devices", 1))
    wl, B = case["workload"], case.get("batch")
    base = [f"xpu.devices={n}"] + list(case.get("overrides", []))
    runs = {
        "neupims": ("neupims", base),
        "naive_npu_pim": ("neupims", base + ["pim.dual_row_buffer=false", "schedule=serial",
                                             "pim.arch.pim.request_placement=round_robin"]),
        "npu_only": ("neupims", base + ["schedule=serial"] + ATT_X),
        "gpu_only": (case.get("gpu", "a100"), [f"parallel.tensor={n}", "memory.capacity=1e13"]),
    }
    return {k: simulate(a, wl, batch=B, phase="decode", overrides=ov).tokens_per_s for k, (a, ov) in runs.items()}


def neupims_ratios(case: dict) -> dict:
    t = neupims_throughputs(case)
    return {"vs_gpu_only": t["neupims"] / t["gpu_only"], "vs_npu_only": t["neupims"] / t["npu_only"],
            "vs_naive_npu_pim": t["neupims"] / t["naive_npu_pim"], **{f"tokens_per_s.{k}": v for k, v in t.items()}}


def attacc_energy(case: dict) -> dict:
    """Decode-step energy of the AttAcc comparison: ``case["gpu_arch"]`` (the GPU-only DGX,
    default dgx_a100 with ``gpu_overrides``, default the A100a's :data:`A100A`) and
    ``case["attacc_arch"]`` (default attacc_dgx with ``attacc_overrides``) on the case's
    workload, batch and KV length. Returns the energy per decode step of
    the whole batch (J) of each and the energy-efficiency ratio (tokens per joule, AttAcc over
    the DGX: the DGX's step energy over AttAcc's, both generating ``batch`` tokens);
    ``case["scope"]``: ``all`` (default) or ``dynamic`` (leakage left out)."""
    wl, B, L = case["workload"], int(case["batch"]), int(case["kv_len"])
    gpu = simulate(case.get("gpu_arch", "dgx_a100"), wl, batch=B, kv_len=L, phase="decode",
                   overrides=list(case.get("gpu_overrides", A100A)))
    att = simulate(case.get("attacc_arch", "attacc_dgx"), wl, batch=B, kv_len=L, phase="decode",
                   overrides=list(case.get("attacc_overrides", [])))
    eg, ea = _energy_j(gpu, case.get("scope", "all")), _energy_j(att, case.get("scope", "all"))
    return {"energy_eff_ratio": eg / ea, "gpu_step_j": eg, "attacc_step_j": ea}


def _energy_j(res, scope: str) -> float:
    """A result's energy in J: ``all``, or ``dynamic`` (every component but leakage)."""
    return (res.energy_pj if scope == "all" else res.dynamic_pj) * 1e-12


def attacc_grid(case: dict) -> dict:
    """Runs of AttAcc's public reference model (``case["table"]``, a CSV beside the case file,
    one run per row) replayed on archsim, as one decode step at the mean context ``lin +
    lout // 2``: ``system: gpu`` rows on ``case["gpu_arch"]`` (default dgx_a100 with the A100a's
    :data:`A100A` overrides), ``attacc`` rows on ``case["attacc_arch"]`` (default attacc_dgx, with
    ``case["attacc_overrides"]``, e.g. another xPU; ``pim``
    bank / bg / buffer as the placement, ``ff`` as ff_parallel, ``pipe`` as one head chunk per
    GPU's heads). An ``ngpu`` column (default ``case["gpus"]``, 8) sets a gpu row's tensor
    parallel width. ``case["models"]`` maps the table's model names to workload dicts;
    ``case["system"]`` and ``case["gpu"]`` (default A100a) pick the rows. Metrics: ``rows`` and
    :func:`archsim.validate.error_summary` of the tokens/s (``case["row_tol"]``, default 0.15)."""
    from archsim.validate import error_summary, table_rows

    place = {"bank": None, "bg": "bankgroup", "buffer": "buffer_die"}
    gpus = int(case.get("gpus", 8))

    def one(r):
        if r["system"] != case.get("system", "gpu") or r["gpu"] != case.get("gpu", "A100a"):
            return None
        wl = dict(case["models"][r["model"]])
        B, kv = int(r["batch"]), int(r["lin"]) + int(r["lout"]) // 2
        if r["system"] == "gpu":
            arch, ov = case.get("gpu_arch", "dgx_a100"), list(case.get("gpu_overrides", A100A))
            ov.append(f"parallel.tensor={int(r.get('ngpu') or gpus)}")
        else:
            arch = case.get("attacc_arch", "attacc_dgx")
            ov = list(case.get("attacc_overrides", [])) + ["xpu.capacity=1e13"]
            if r["pipe"] == "1":
                ov.append(f"head_chunks={max(1, int(wl['n_heads']) // gpus)}")
            if r["ff"] == "1":
                ov.append("ff_parallel=true")
            sets = [f"pim.placement={place[r['pim']]}"] if place[r["pim"]] else []
            if r["power_constrained"] == "0":
                sets.append("pim.power_constrained=false")
            if sets:
                ov.append("pim.set=[" + ",".join(f'"{s}"' for s in sets) + "]")
        res = simulate(arch, wl, batch=B, kv_len=kv, phase="decode", overrides=ov)
        return res.tokens_per_s / float(r["tokens_per_s"]) - 1.0

    errs = table_rows(case, "AttAcc model table", one)
    return {"rows": len(errs), **error_summary(errs, float(case.get("row_tol", 0.15)))}
