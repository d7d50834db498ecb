"""Study: decode throughput of GPU-only vs GPU+PIM vs NPU+PIM (serial and interleaved) over
batch and KV length for Llama-2-70B and GPT-3 175B. Writes a markdown table into docs/hetero.md
(between the study markers) and plots to docs/img/hetero_*.png.

Systems (8 devices each):
- gpu:            dgx_a100 (8 x A100-80GB, tensor parallel) with a FlashDecoding-style decode
                  attention (decode_attention_split=kv: every SM streams at any batch)
- gpu+pim:        attacc_dgx (8 x A100a + 40 HBM3-PIM stacks), serial, head-pipelined (heads / 8 groups)
- npu+pim serial: neupims with 8 devices and 10 HBM2-PIM stacks per device (80 GB, as an A100)
- npu+pim interleaved: the same with sub-batch interleaving at every batch (the neupims preset
  interleaves from batch 256 up only, as NeuPIMs does; interleave_min_batch=2 here)

    python tools/hetero_study.py [--quick]
"""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path

from archsim.api import simulate
from archsim.errors import ArchsimError

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"llama2-70b": 64, "gpt3-175b": 96}
SYSTEMS = {
    "gpu": lambda h: ("dgx_a100", ["decode_attention_split=kv"]),
    "gpu+pim": lambda h: ("attacc_dgx", [f"head_chunks={h // 8}"]),
    "npu+pim serial": lambda h: ("neupims", ["xpu.devices=8", "pim.stacks=10", "schedule=serial"]),
    "npu+pim interleaved": lambda h: ("neupims", ["xpu.devices=8", "pim.stacks=10", "interleave_min_batch=2"]),
}


def run(batches, kvs):
    rows = []
    for model, heads in MODELS.items():
        for B in batches:
            for kv in kvs:
                row = {"model": model, "batch": B, "kv": kv}
                for name, mk in SYSTEMS.items():
                    arch, ov = mk(heads)
                    try:
                        row[name] = simulate(arch, model, phase="decode", batch=B, kv_len=kv, overrides=ov).tokens_per_s
                    except ArchsimError:
                        row[name] = None          # does not fit the memory
                rows.append(row)
    return rows


def table(rows) -> str:
    names = list(SYSTEMS)
    out = ["| model | batch | KV | " + " | ".join(f"{n} tok/s" for n in names) + " | best |",
           "|---|---:|---:|" + "---:|" * len(names) + "---|"]
    for r in rows:
        vals = [r[n] for n in names]
        ok = [(v, n) for v, n in zip(vals, names) if v]
        best = max(ok)[1] if ok else "-"
        out.append(f"| {r['model']} | {r['batch']} | {r['kv']} | " +
                   " | ".join("does not fit" if v is None else f"{v:,.0f}" for v in vals) + f" | {best} |")
    return "\n".join(out)


def plot(rows, batches, kvs):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, 2, figsize=(11, 8))
    kv_fix = 2048 if 2048 in kvs else kvs[len(kvs) // 2]
    b_fix = 64 if 64 in batches else batches[len(batches) // 2]
    for i, model in enumerate(MODELS):
        for name in SYSTEMS:
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
    batches = [1, 16, 64, 256] if a.quick else [1, 4, 16, 64, 128, 256]
    kvs = [512, 2048, 8192] if a.quick else [512, 1024, 2048, 4096, 8192]
    t0 = time.time()
    rows = run(batches, kvs)
    md = table(rows)
    print(md)
    print(f"\n{len(rows) * len(SYSTEMS)} simulations in {time.time() - t0:.0f} s")
    if not a.no_docs:
        img = plot(rows, batches, kvs)
        doc = ROOT / "docs" / "hetero.md"
        text = doc.read_text()
        block = f"<!-- study:begin -->\n{md}\n<!-- study:end -->"
        text = re.sub(r"<!-- study:begin -->.*<!-- study:end -->", lambda _: block, text, flags=re.S)
        doc.write_text(text)
        print(f"wrote {img} and the table in {doc}")


if __name__ == "__main__":
    main()
