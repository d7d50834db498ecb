"""Metrics of the CIM validation cases (``kind: python`` cases in validation/sram_cim/).

- :func:`peak_efficiency`: a dense GEMM whose weights fill every macro and stay resident,
  with many input vectors (full macro utilisation): peak TOPS (2 ops per MAC at the clock),
  achieved TOPS, and TOPS/W at macro level (macro energy incl. its leakage) and chip level
  (everything on chip: macros, buffer, vector, leakage).
- :func:`energy_per_token`: on-chip energy per token of a run (off-chip memory energy left
  out, as in a chip measurement) and its split.
"""
from __future__ import annotations

from archsim.api import simulate
from archsim.uarch import get


def _onchip_pj(res, split) -> float:
    return res.energy_pj - split["dram_pj"]


def peak_efficiency(case: dict) -> dict:
    from archsim.api import load
    cfg, _ = load(case["arch"], {"kind": "gemm", "M": 1, "N": 1, "K": 1}, overrides=case.get("overrides", []))
    mc = cfg.macro
    rows = int(case.get("rows", 64))
    prec = case.get("precision", "int8")
    # one weight tile per macro: K = the macro's rows, N = a row of weights per macro
    wl = {"kind": "gemm", "M": rows, "K": mc.rows, "N": mc.weights_per_row * mc.count,
          "a_offchip": False, "c_offchip": False, "precision": {"weights": prec, "activations": prec}}
    res = simulate(case["arch"], wl, overrides=case.get("overrides", []))
    u = get("sram_cim")
    split = u.summary(res)
    ops = 2.0 * res.macs
    macro_pj = split["compute_pj"] + res.components["cim"]["energy_pj"].get("leakage", 0.0)
    return {"peak_tops": 2 * res.peak_macs_per_cycle * res.clock_hz / 1e12,
            "achieved_tops": ops / res.seconds / 1e12,
            "tops_per_w_macro": ops / macro_pj,
            "tops_per_w_chip": ops / _onchip_pj(res, split)}


def energy_per_token(case: dict) -> dict:
    res = simulate(case["arch"], case["workload"], overrides=case.get("overrides", []),
                   phase=case.get("phase"), batch=case.get("batch"), seq_len=case.get("seq_len"),
                   kv_len=case.get("kv_len"))
    split = get("sram_cim").summary(res)
    wl = res.workload
    tokens = wl.batch * (1 if wl.phase == "decode" else wl.seq_len)
    out = {"uj_per_token_onchip": _onchip_pj(res, split) / tokens / 1e6,
           "uj_per_token_total": res.energy_pj / tokens / 1e6}
    for k in ("compute_pj", "rewrite_pj", "buffer_pj", "vector_pj", "leakage_pj", "dram_pj"):
        out[k.replace("_pj", "_uj_per_token")] = split[k] / tokens / 1e6
    return out
