"""Benchmark: one GPT-3 175B decode step, batch 64, KV 2048, on the 8-device AttAcc-style
system (8 GPUs + 40 PIM stacks): serial, head-pipelined and sub-batch interleaved. Prints JSON
(cold = first run incl. JIT/caches, warm = a fresh plan with the model caches cleared)."""
from __future__ import annotations

import json
import time

from archsim.api import simulate
from archsim.uarch.hetero.plan import clear_caches


def one(arch, overrides):
    t0 = time.perf_counter()
    r = simulate(arch, "gpt3-175b", batch=64, kv_len=2048, overrides=overrides)
    cold = time.perf_counter() - t0
    clear_caches()
    t0 = time.perf_counter()
    r = simulate(arch, "gpt3-175b", batch=64, kv_len=2048, overrides=overrides)
    warm = time.perf_counter() - t0
    return {"arch": arch, "overrides": overrides, "cold_s": round(cold, 3), "warm_s": round(warm, 3),
            "simulated_tokens_per_s": r.tokens_per_s, "step_s": r.seconds, "instructions": len(r.program)}


def main():
    rows = [one("attacc_dgx", []), one("attacc_dgx", ["head_chunks=12"]),
            one("attacc_dgx", ["schedule=interleaved"])]
    print(json.dumps({"benchmark": "hetero GPT-3 175B decode, batch 64, KV 2048, 8 devices",
                      "limit_warm_s": 30, "ok": all(r["warm_s"] < 30 for r in rows), "runs": rows}, indent=1))


if __name__ == "__main__":
    main()
