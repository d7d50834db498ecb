"""Speed of the sparse tensor-core models: one pruned Llama-2-7B layer (70% weight sparsity,
unstructured; activations 50% dense) on each core, decode and prefill, warm (after a first
run compiles the kernels). Reports wall seconds and simulated MACs per wall second.

    python tools/bench/bench_sparse_tc.py
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from archsim.api import simulate  # noqa: E402

LAYER = ["workload.n_layers=1", "workload.lm_head=false",
         "workload.sparsity.weights.density=0.3", "workload.sparsity.activations.density=0.5"]


def main():
    for phase, extra in (("decode", ["workload.kv_len=2048"]), ("prefill", ["workload.seq_len=2048"])):
        for core in ("tc_dense", "stc_2to4", "ds_stc", "rm_stc"):
            ov = LAYER + [f"workload.phase={phase}"] + extra
            simulate(core, "llama2-7b", overrides=ov)                     # warm-up (JIT, caches)
            t = time.perf_counter()
            r = simulate(core, "llama2-7b", overrides=ov)
            dt = time.perf_counter() - t
            print(f"{phase:8s} {core:9s} {dt:6.2f} s  {r.cycles:>13,} cycles  "
                  f"{r.expected_macs / dt / 1e9:8.1f} G simulated MACs/s")


if __name__ == "__main__":
    main()
