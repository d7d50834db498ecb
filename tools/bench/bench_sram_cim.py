"""Benchmark of the SRAM CIM model: simulated instructions and MACs per wall second."""
from __future__ import annotations

import time

from archsim.api import simulate

CASES = [
    ("trancim", "bert-base", {}),
    ("cim_llm", "llama2-7b", dict(phase="decode", batch=8, kv_len=2048)),
    ("cim_llm", "llama2-7b", dict(phase="prefill", batch=1, seq_len=512)),
]
INT8 = ["workload.precision.weights=int8", "workload.precision.activations=int8"]


def main():
    simulate("trancim", {"kind": "gemm", "M": 1, "N": 32, "K": 256})     # compile kernels
    for arch, wl, kw in CASES:
        t = time.perf_counter()
        r = simulate(arch, wl, overrides=INT8, **kw)
        dt = time.perf_counter() - t
        n = len(r.program)
        print(f"{arch:8s} {wl:10s} {str(kw):50s} {n:8d} instr {dt:6.2f} s "
              f"{n / dt:10.0f} instr/s {r.macs / dt / 1e9:8.1f} GMAC/s simulated")


if __name__ == "__main__":
    main()
