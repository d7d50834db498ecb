"""Study: decode throughput of GPU-only vs GPU+PIM vs NPU+PIM (serial and interleaved) over
batch and KV length for Llama-2-70B and GPT-3 175B. Runs the points of the sweep spec
sweeps/hetero_xpu_pim.yaml (its comment describes the four systems) and writes a markdown table
into docs/hetero.md (between the study markers) and plots to docs/img/hetero_*.png. The same
points run resumable and in parallel with `archsim sweep sweeps/hetero_xpu_pim.yaml --out DB`.

    python tools/hetero_study.py [--quick]
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from archsim.api import simulate
from archsim.errors import ArchsimError
from archsim.sweep.spec import compile_spec, load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "sweeps" / "hetero_xpu_pim.yaml"
BATCHES = [1, 4, 16, 64, 128, 256]          # the grid of the table in docs/hetero.md
KVS = [512, 1024, 2048, 4096, 8192]


def study():
    """The compiled spec, its systems (arch labels) and models (workload labels) in spec order."""
    spec, base = load_spec(str(SPEC))
    sw = compile_spec(spec, base)
    systems = list(dict.fromkeys(w.arch_label for w in sw.workloads))
    models = list(dict.fromkeys(w.label.split("/", 1)[1] for w in sw.workloads))
    return sw, systems, models


def run(sw, batches, kvs):
    """One row per (model, batch, KV): tokens/s of every system (None: does not fit)."""
    rows: dict[tuple, dict] = {}
    for p in sw.grid():
        v = sw.values(p)
        B, kv = v["workload.batch"], v["workload.kv_len"]
        if B not in batches or kv not in kvs:
            continue
        w = sw.workloads[p.workload]
        model = w.label.split("/", 1)[1]
        row = rows.setdefault((model, B, kv), {"model": model, "batch": B, "kv": kv})
        t = sw.task(p)
        try:
            row[w.arch_label] = simulate(t["arch"], t["workload"], overrides=t["overrides"]).tokens_per_s
        except ArchsimError:
            row[w.arch_label] = None          # does not fit the memory
    return list(rows.values())          # models in spec order, then batch, then KV


def table(rows, names) -> str:
    out = ["| model | batch | KV | " + " | ".join(f"{n} tok/s" for n in names) + " | best |",
           "|---|---:|---:|" + "---:|" * len(names) + "---|"]
    for r in rows:
        vals = [r[n] for n in names]
        ok = [(v, n) for v, n in zip(vals, names) if v]
        best = max(ok)[1] if ok else "-"
        out.append(f"| {r['model']} | {r['batch']} | {r['kv']} | " +
                   " | ".join("does not fit" if v is None else f"{v:,.0f}" for v in vals) + f" | {best} |")
    return "\n".join(out)


def plot(rows, systems, models, batches, kvs):
    import matplotlib
    import matplotlib.ticker
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    kv_fix = 2048 if 2048 in kvs else kvs[len(kvs) // 2]
    b_fix = 64 if 64 in batches else batches[len(batches) // 2]
    for i, model in enumerate(models):
        for name in systems:
            xs = [r["batch"] for r in rows if r["model"] == model and r["kv"] == kv_fix and r[name]]
            ys = [r[name] for r in rows if r["model"] == model and r["kv"] == kv_fix and r[name]]
            axes[i][0].plot(xs, ys, marker="o", label=name)
            xs = [r["kv"] for r in rows if r["model"] == model and r["batch"] == b_fix and r[name]]
            ys = [r[name] for r in rows if r["model"] == model and r["batch"] == b_fix and r[name]]
            axes[i][1].plot(xs, ys, marker="o", label=name)
        axes[i][0].set(xscale="log", yscale="log", xlabel="batch", ylabel="decode tokens/s",
                       title=f"{model}, KV {kv_fix}")
        axes[i][1].set(xscale="log", yscale="log", xlabel="KV length", ylabel="decode tokens/s",
                       title=f"{model}, batch {b_fix}")
        for ax, ticks in ((axes[i][0], batches), (axes[i][1], kvs)):
            ax.set_xticks(list(ticks), [str(t) for t in ticks])     # the swept values, not decades
            ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
        for ax in axes[i]:
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    out = ROOT / "docs" / "img" / "hetero_throughput.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="a smaller grid")
    ap.add_argument("--no-docs", action="store_true", help="print only, do not touch docs/")
    a = ap.parse_args()
    batches = [1, 16, 64, 256] if a.quick else BATCHES
    kvs = [512, 2048, 8192] if a.quick else KVS
    t0 = time.time()
    sw, systems, models = study()
    rows = run(sw, batches, kvs)
    md = table(rows, systems)
    print(md)
    print(f"\n{len(rows) * len(systems)} simulations in {time.time() - t0:.0f} s")
    if not a.no_docs:
        img = plot(rows, systems, models, batches, kvs)
        doc = ROOT / "docs" / "hetero.md"
        text = doc.read_text()
        block = f"<!-- study:begin -->\n{md}\n<!-- study:end -->"
        text = re.sub(r"<!-- study:begin -->.*<!-- study:end -->", lambda _: block, text, flags=re.S)
        doc.write_text(text)
        print(f"wrote {img} and the table in {doc}")


if __name__ == "__main__":
    main()
