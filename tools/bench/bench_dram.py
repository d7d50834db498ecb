#!/usr/bin/env python3
"""DRAM model throughput: simulated requests (tx-sized bursts) per wall second on one core.

- controller: trace replay through the per-channel FR-FCFS controller (burst level, every
  command timed) on the peer patterns;
- engine burst / row_visit: the transfer engine of the timing kernel on 1 MiB tile loads
  (streaming) and 4 KiB loads at a 1 MiB stride (strided), with ``--unaligned`` also 1 MiB
  loads at a stride of 1 MiB + 96 B (each tile starts at another offset within a round of
  bursts over the channels: the channels' visits differ), both fidelities on the same stream
  (timed runs alternate between them; their completion cycles and counters must agree), for
  DDR4-3200 / HBM2-2000 / HBM3-6400 x RoBaRaCoCh / RoCoBaRaCh and HBM3-6400 MOP4CLXOR; the
  summary gives the row_visit / burst speed ratio per preset, mapping and traffic.

Prints one JSON document. Compile time is excluded (one warm-up run on a small input); each
figure is the best of ``--repeat`` timed runs (the development machine is shared: the best run
is the one least disturbed by other processes).
Usage: python tools/bench/bench_dram.py [--quick] [--repeat N] [--engine-only] [--unaligned]
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


def _engine_setup(preset, mapping, fidelity, kind, total_mib):
    cfg = SimpleNamespace(model="dram", dram=DramConfig(preset=preset, mapping=mapping, fidelity=fidelity))
    m = build_memory(cfg, 1.0e9)
    if kind == "streaming":
        size, step, n = 1 << 20, 1 << 20, total_mib
    elif kind == "unaligned":
        size, step, n = 1 << 20, (1 << 20) + 96, total_mib
    else:
        size, step, n = 4096, 1 << 20, total_mib * 256
    s = m.fresh_state()
    cnt = np.zeros(N_MEM_COUNTERS, np.int64)
    for k in range(4):                                                         # warm-up
        mem_transfer(m.kind, m.params, s, cnt, k * step, size, False, 0)
    return m, size, step, n


def _engine_once(m, size, step, n):
    s = m.fresh_state()
    cnt = np.zeros(N_MEM_COUNTERS, np.int64)
    t0 = time.perf_counter()
    done = 0
    for k in range(n):
        done = max(done, mem_transfer(m.kind, m.params, s, cnt, (k * step) % (1 << 30), size, False, 0))
    return time.perf_counter() - t0, done, cnt


def bench_engine_pair(preset, mapping, kind, total_mib, repeat=1):
    """Both fidelities on the same stream, timed runs alternating (the best of ``repeat`` each:
    a shared machine disturbs both alike); their results must agree."""
    tx = load_preset(preset).tx_bytes
    setups = {f: _engine_setup(preset, mapping, f, kind, total_mib) for f in ("burst", "row_visit")}
    best = {f: float("inf") for f in setups}
    res = {}
    for _ in range(repeat):
        for f, (m, size, step, n) in setups.items():
            dt, done, cnt = _engine_once(m, size, step, n)
            best[f] = min(best[f], dt)
            res[f] = (done, cnt.tolist())
    assert res["burst"] == res["row_visit"], (preset, mapping, kind)
    rows = []
    for f, (m, size, step, n) in setups.items():
        bursts = n * size // tx
        rows.append({"preset": preset, "mapping": mapping, "fidelity": f, "traffic": kind, "bursts": bursts,
                     "seconds": best[f], "requests_per_s": bursts / best[f], "GBps": n * size / res[f][0]})
    rows[-1]["speedup_vs_burst"] = best["burst"] / best["row_visit"]
    return rows


ENGINE_CASES = [(p, m) for p in ("DDR4-3200", "HBM2-2000", "HBM3-6400") for m in ("RoBaRaCoCh", "RoCoBaRaCh")] + [
    ("HBM3-6400", "MOP4CLXOR")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="smaller inputs")
    ap.add_argument("--repeat", type=int, default=3, help="timed runs per row (the best counts)")
    ap.add_argument("--engine-only", action="store_true", help="skip the controller rows")
    ap.add_argument("--unaligned", action="store_true", help="also 1 MiB loads at a 1 MiB + 96 B stride")
    a = ap.parse_args()
    sc = 0.25 if a.quick else 1.0
    out = {"controller": [], "engine": []}
    if not a.engine_only:
        for preset, pat in (("HBM2-2000", "seq_read"), ("HBM2-2000", "rand_read"), ("DDR4-2400", "seq_read"),
                            ("DDR4-2400", "mix_2r1w"), ("HBM3-6400", "seq_read")):
            out["controller"].append(bench_controller(preset, pat, sc, repeat=a.repeat))
    mib = 16 if a.quick else 64
    for preset, mapping in ENGINE_CASES:
        for kind in ("streaming", "strided") + (("unaligned",) if a.unaligned else ()):
            out["engine"] += bench_engine_pair(preset, mapping, kind, mib, repeat=a.repeat)
    eb = [r["requests_per_s"] for r in out["engine"] if r["fidelity"] == "burst"]
    out["summary"] = {"engine_burst_min_requests_per_s": min(eb),
                      "engine_burst_requests_per_s": {f"{r['preset']} {r['mapping']} {r['traffic']}": r["requests_per_s"]
                                                      for r in out["engine"] if r["fidelity"] == "burst"},
                      "row_visit_over_burst": {f"{r['preset']} {r['mapping']} {r['traffic']}": r["speedup_vs_burst"]
                                               for r in out["engine"] if "speedup_vs_burst" in r}}
    if out["controller"]:
        out["summary"]["controller_min_requests_per_s"] = min(r["requests_per_s"] for r in out["controller"])
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
