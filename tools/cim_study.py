"""Decode-step study: Llama-2-7B on the LLM-scale CIM chip vs the systolic preset scaled to the
same MAC count, memory and on-chip SRAM. Writes a markdown table into docs/sram_cim.md
(between the STUDY markers) and prints it.

    python tools/cim_study.py [--out docs/sram_cim.md]
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from archsim.api import simulate
from archsim.uarch import get

INT8 = ["workload.precision.weights=int8", "workload.precision.activations=int8"]
# systolic_128x128 scaled to cim_llm: 512 x 1024 = 524,288 MACs/cycle, one HBM3 stack,
# 8 MiB of SRAM (cim_llm: 4 MiB of macros + 4 MiB buffer)
SYSTOLIC_SAME = ["array.rows=512", "array.cols=1024", "memory.bandwidth=819 GB/s",
                 "memory.energy_per_bit=3.9 pJ", "sram.ifmap=2 MiB", "sram.filter=4 MiB",
                 "sram.ofmap=2 MiB", "vector.lanes=256"]
CASES = [
    ("decode b=1, kv 2048", dict(phase="decode", batch=1, kv_len=2048)),
    ("decode b=8, kv 2048", dict(phase="decode", batch=8, kv_len=2048)),
    ("decode b=64, kv 512", dict(phase="decode", batch=64, kv_len=512)),
    ("prefill 512 tokens", dict(phase="prefill", batch=1, seq_len=512)),
]


def cim_row(kw):
    r = simulate("cim_llm", "llama2-7b", overrides=INT8, **kw)
    s = get("sram_cim").summary(r)
    other = r.energy_pj - s["compute_pj"] - s["rewrite_pj"] - s["dram_pj"]
    return r, dict(cycles=r.cycles, compute=s["compute_cycles"], rewrite=s["rewrite_cycles"],
                   stall=s["stall_cycles"], e=r.energy_pj, e_comp=s["compute_pj"], e_rew=s["rewrite_pj"],
                   e_dram=s["dram_pj"], e_other=other)


def sys_row(kw, extra=()):
    r = simulate("systolic_128x128", "llama2-7b", overrides=INT8 + SYSTOLIC_SAME + list(extra), **kw)
    comp = r.components
    arr = sum(v for k, v in comp["array"]["energy_pj"].items() if k != "leakage")
    stage = sum(comp["filter_sram"]["energy_pj"].values())          # weights staged in SRAM
    dram = sum(comp["offchip"]["energy_pj"].values())
    busy = r.units.get("array0", 0)
    mem = comp["offchip"]["counts"].get("busy_cycles", 0)
    return r, dict(cycles=r.cycles, compute=busy, rewrite=0, stall=max(0, r.cycles - busy), e=r.energy_pj,
                   e_comp=arr, e_rew=stage, e_dram=dram, e_other=r.energy_pj - arr - stage - dram, mem=mem)


def table() -> str:
    head = ("| case | design | cycles | compute cyc | rewrite cyc | stall cyc | energy mJ | compute mJ "
            "| rewrite/staging mJ | DRAM mJ | other mJ | CIM vs systolic / vs preload-overlap systolic |\n"
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
    rows = []
    for name, kw in CASES:
        _, c = cim_row(kw)
        _, s = sys_row(kw)
        # TPU-style array: the next fold's weights shift in while the current fold streams
        _, t = sys_row(kw, ["array.preload_overlap=true"])
        for design, d in (("CIM (cim_llm)", c), ("systolic 512x1024", s),
                          ("systolic 512x1024, preload overlap", t)):
            vs = ""
            if d is c:
                vs = (f"{s['cycles'] / c['cycles']:.2f}x / {t['cycles'] / c['cycles']:.2f}x faster, "
                      f"{s['e'] / c['e']:.2f}x / {t['e'] / c['e']:.2f}x less energy")
            rows.append(f"| {name} | {design} | {d['cycles']:,} | {d['compute']:,} | {d['rewrite']:,} | "
                        f"{d['stall']:,} | {d['e'] / 1e9:.1f} | {d['e_comp'] / 1e9:.2f} | {d['e_rew'] / 1e9:.2f} | "
                        f"{d['e_dram'] / 1e9:.1f} | {d['e_other'] / 1e9:.1f} | {vs} |")
    return head + "\n".join(rows) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs" / "sram_cim.md"))
    a = ap.parse_args(argv)
    t = table()
    print(t)
    p = Path(a.out)
    if p.is_file():
        text = p.read_text()
        new = re.sub(r"<!-- STUDY -->.*<!-- /STUDY -->", "<!-- STUDY -->\n" + t + "<!-- /STUDY -->",
                     text, flags=re.S)
        p.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
