"""Speed-up of the sparse tensor cores over the dense tensor core vs weight and activation
density; writes the tables into docs/sparse_tc.md (between the study markers) and docs/img/sparse_tc_speedup.png.

    python tools/sparse_tc_study.py [--quick] [--no-write]

Compute-level curves use a 2048^3 FP16 GEMM (C = X W, X activations, W weights) with an
off-chip memory fast enough not to bind, so the numbers show the dataflows; the end-to-end
table runs Llama-2-7B with the presets' HBM. Same peak MACs per cycle on every core.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from archsim.api import simulate  # noqa: E402

GEMM = {"kind": "gemm", "M": 2048, "N": 2048, "K": 2048, "precision": {"weights": "fp16", "activations": "fp16"}}
FAST = ["memory.bandwidth=1000 TB/s", "memory.latency=0 ns"]
DENS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
CORES = ("stc_2to4", "ds_stc", "rm_stc")
LABEL = {"stc_2to4": "2:4 STC", "ds_stc": "DS-STC (outer product)", "rm_stc": "RM-STC (row merge)",
         "stc_nm": "2:4 STC on N:4-pruned weights"}


def cycles(core, wd=1.0, ad=1.0, extra=(), workload=GEMM, fast=True):
    ov = (FAST if fast else []) + [f"workload.sparsity.weights.density={wd}",
                                   f"workload.sparsity.activations.density={ad}"] + list(extra)
    return simulate(core, workload, overrides=ov).cycles


def study(dens):
    base = cycles("tc_dense")
    rows = {"weights": {}, "activations": {}, "dual": {}}
    for d in dens:
        rows["weights"][d] = {c: base / cycles(c, wd=d) for c in CORES}
        rows["activations"][d] = {c: base / cycles(c, ad=d) for c in CORES}
        rows["dual"][d] = {c: base / cycles(c, wd=d, ad=d) for c in CORES}
    nm = {}
    for n in (1, 2, 3, 4):
        nm[n / 4] = base / cycles("stc_2to4", extra=["workload.sparsity.weights.pattern=nm",
                                                     "workload.sparsity.weights.density=null",
                                                     f"workload.sparsity.weights.n={n}",
                                                     "workload.sparsity.weights.m=4"])
    return base, rows, nm


def end_to_end():
    out = []
    for phase, extra in (("decode", ["workload.kv_len=2048"]), ("prefill", ["workload.seq_len=512"])):
        wl = "llama2-7b"
        ph = [f"workload.phase={phase}"] + extra
        base = cycles("tc_dense", workload=wl, extra=ph, fast=False)
        r = {"phase": phase, "tc_dense": base}
        for c in CORES:
            r[c] = base / cycles(c, wd=0.3, ad=0.5, extra=ph, workload=wl, fast=False)
        r["stc_nm"] = base / cycles("stc_2to4", workload=wl, fast=False,
                                    extra=ph + ["workload.sparsity.weights.pattern=nm",
                                                 "workload.sparsity.weights.density=null"])
        out.append(r)
    return out


def table(title, rows, cores):
    head = "| density | " + " | ".join(LABEL[c] for c in cores) + " |"
    sep = "|---:|" + "---:|" * len(cores)
    lines = [f"**{title}**", "", head, sep]
    for d, r in rows.items():
        lines.append(f"| {d:.1f} | " + " | ".join(f"{r[c]:.2f}" for c in cores) + " |")
    return "\n".join(lines)


def plot(rows, nm, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharey=True)
    for ax, (key, title) in zip(axes, (("weights", "weight density (activations dense)"),
                                       ("activations", "activation density (weights dense)"),
                                       ("dual", "weight = activation density"))):
        ds = list(rows[key])
        for c, mk in zip(CORES, ("s", "o", "^")):
            ax.plot(ds, [rows[key][d][c] for d in ds], marker=mk, label=LABEL[c])
        if key == "weights":
            ax.plot(list(nm), list(nm.values()), "k--", marker="x", label=LABEL["stc_nm"])
        ax.axhline(1.0, color="grey", lw=0.8)
        ax.set_yscale("log")
        ax.set_xlabel(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("speed-up over the dense tensor core")
    axes[0].legend(fontsize=8)
    fig.suptitle("2048^3 FP16 GEMM, A100-like GPU, equal peak (1024 MACs/cycle per SM)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="three densities only")
    ap.add_argument("--no-write", action="store_true")
    a = ap.parse_args()
    t0 = time.time()
    base, rows, nm, text = results([0.1, 0.5, 1.0] if a.quick else DENS)
    print(f"dense 2048^3 GEMM: {base:,} cycles\n")
    print(text)
    print(f"\nstudy took {time.time() - t0:.1f} s")
    if not a.no_write:
        plot(rows, nm, ROOT / "docs" / "img" / "sparse_tc_speedup.png")
        doc = ROOT / "docs" / "sparse_tc.md"
        d = doc.read_text()
        i, j = d.index("<!-- study:begin -->"), d.index("<!-- study:end -->")
        doc.write_text(d[:i] + "<!-- study:begin -->\n" + doc_body(base, text) + d[j:])


def doc_body(base, text) -> str:
    """What docs/sparse_tc.md holds between its study markers."""
    return f"Dense tensor core, 2048^3 FP16 GEMM: {base:,} cycles.\n\n" + text + "\n"


def results(dens):
    """The study at the weight densities ``dens``: the dense GEMM's cycles, the speed-up rows,
    the N:4 rows and the markdown of all tables."""
    base, rows, nm = study(dens)
    e2e = end_to_end()
    md = [table("Speed-up vs weight density (activations dense)", rows["weights"], CORES), "",
          "**2:4 STC on N:4 structured weights**", "", "| density | 2:4 STC |", "|---:|---:|"]
    md += [f"| {d:.2f} | {v:.2f} |" for d, v in nm.items()]
    md += ["", table("Speed-up vs activation density (weights dense)", rows["activations"], CORES), "",
           table("Speed-up vs dual density (weights = activations)", rows["dual"], CORES), "",
           "**Llama-2-7B end to end (HBM2e), weights 30% dense unstructured, activations 50%; last "
           "column: weights 2:4-pruned**", "",
           "| phase | dense cycles | 2:4 STC | DS-STC | RM-STC | 2:4 STC, 2:4 weights |", "|---|---:|---:|---:|---:|---:|"]
    md += [f"| {r['phase']} | {r['tc_dense']:,} | {r['stc_2to4']:.2f} | {r['ds_stc']:.2f} | {r['rm_stc']:.2f} | "
           f"{r['stc_nm']:.2f} |" for r in e2e]
    return base, rows, nm, "\n".join(md)


if __name__ == "__main__":
    main()
