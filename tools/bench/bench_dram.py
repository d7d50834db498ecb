#!/usr/bin/env python3
"""DRAM model throughput: simulated requests (tx-sized bursts) per wall second on one core.

- controller: trace replay through the per-channel FR-FCFS controller (burst level, every
  command timed) on the peer patterns;
- engine burst / row_visit: the transfer engine of the timing kernel on 1 MiB tile loads
  (streaming) and 4 KiB loads at a 1 MiB stride (strided), both fidelities on the same stream.

Prints one JSON document. Compile time is excluded (one warm-up run on a small input); each
figure is the best of ``--repeat`` timed runs (the development machine is shared: the best run
is the one least disturbed by other processes).
Usage: python tools/bench/bench_dram.py [--quick] [--repeat N]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from types import SimpleNamespace

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

import numpy as np  # noqa: E402

from archsim.config.dram import DramConfig  # noqa: E402
from archsim.mem.dram.presets import load_preset  # noqa: E402
from archsim.mem.dram.sim import run_trace  # noqa: E402
from archsim.mem.dram.traces import geometry, pattern  # noqa: E402
from archsim.mem.interface import N_MEM_COUNTERS, build_memory, mem_transfer  # noqa: E402


def bench_controller(preset, pat, scale, mapping="RoBaRaCoCh", repeat=1):
    p = load_preset(preset)
    a, w = pattern(pat, **geometry(p), scale=scale)
    run_trace(p, a[:1000], w[:1000], mapping=mapping, check_capacity=False)     # warm-up
    dt = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        r = run_trace(p, a, w, mapping=mapping, check_capacity=False)
        dt = min(dt, time.perf_counter() - t0)
    return {"preset": preset, "pattern": pat, "mapping": mapping, "requests": len(a), "seconds": dt,
            "requests_per_s": len(a) / dt, "bandwidth_GBps": r["bandwidth_GBps"]}


def bench_engine(preset, mapping, fidelity, kind, total_mib, repeat=1):
    cfg = SimpleNamespace(model="dram", dram=DramConfig(preset=preset, mapping=mapping, fidelity=fidelity))
    m = build_memory(cfg, 1.0e9)
    tx = load_preset(preset).tx_bytes
    if kind == "streaming":
        size, step, n = 1 << 20, 1 << 20, total_mib
    else:
        size, step, n = 4096, 1 << 20, total_mib * 256
    s = m.fresh_state()
    cnt = np.zeros(N_MEM_COUNTERS, np.int64)
    for k in range(4):                                                         # warm-up
        mem_transfer(m.kind, m.params, s, cnt, k * step, size, False, 0)
    dt = float("inf")
    for _ in range(repeat):
        s = m.fresh_state()
        t0 = time.perf_counter()
        done = 0
        for k in range(n):
            done = max(done, mem_transfer(m.kind, m.params, s, cnt, (k * step) % (1 << 30), size, False, 0))
        dt = min(dt, time.perf_counter() - t0)
    bursts = n * size // tx
    return {"preset": preset, "mapping": mapping, "fidelity": fidelity, "traffic": kind, "bursts": bursts,
            "seconds": dt, "requests_per_s": bursts / dt, "GBps": n * size / done}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller inputs")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per row (the best counts)")
    a = ap.parse_args()
    sc = 0.25 if a.quick else 1.0
    out = {"controller": [], "engine": []}
    for preset, pat in (("HBM2-2000", "seq_read"), ("HBM2-2000", "rand_read"), ("DDR4-2400", "seq_read"),
                        ("DDR4-2400", "mix_2r1w"), ("HBM3-6400", "seq_read")):
        out["controller"].append(bench_controller(preset, pat, sc, repeat=a.repeat))
    mib = 16 if a.quick else 64
    for preset, mapping in (("HBM2-2000", "RoBaRaCoCh"), ("HBM2-2000", "RoCoBaRaCh"), ("HBM3-6400", "MOP4CLXOR"),
                            ("DDR4-3200", "RoBaRaCoCh")):
        for kind in ("streaming", "strided"):
            rows = {f: bench_engine(preset, mapping, f, kind, mib, repeat=a.repeat) for f in ("burst", "row_visit")}
            out["engine"] += list(rows.values())
            out["engine"][-1]["speedup_vs_burst"] = rows["burst"]["seconds"] / rows["row_visit"]["seconds"]
    cr = [r["requests_per_s"] for r in out["controller"]]
    eb = [r["requests_per_s"] for r in out["engine"] if r["fidelity"] == "burst"]
    out["summary"] = {"controller_min_requests_per_s": min(cr), "engine_burst_min_requests_per_s": min(eb),
                      "row_visit_speedup_streaming": [r["speedup_vs_burst"] for r in out["engine"]
                                                      if r.get("traffic") == "streaming" and "speedup_vs_burst" in r]}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
