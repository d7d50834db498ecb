"""Benchmark of the core path (prints JSON; not a test).

- timing kernel throughput: instructions scheduled per second on one core, on the Program of a
  large prefill (many tiles);
- whole-run wall time of Llama-2-7B prefill at 2048 tokens on the 128x128 preset, warm JIT;
- lowering and cost-kernel throughput.
Run: python tools/bench/bench_core.py
"""
from __future__ import annotations

import json
import time

from archsim.api import load, simulate
from archsim.mem.interface import build_memory
from archsim.sim.timing import schedule
from archsim.uarch import get
from archsim.uarch.base import LowerOptions


def best_of(fn, n=3):
    best = None
    for _ in range(n):
        t = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t
        best = dt if best is None else min(best, dt)
    return best, out


def main():
    simulate("systolic_128x128", "gpt2", phase="prefill", seq_len=64)       # warm the JIT cache
    cfg, wl = load("systolic_128x128", "llama2-7b", phase="prefill", seq_len=2048)
    u = get(cfg.uarch)
    mem = build_memory(cfg.memory, cfg.clock)
    t_lower, prog = best_of(lambda: u.lower(cfg, wl, LowerOptions(), memory=mem))
    t_cost, (dur, _) = best_of(lambda: u.cost(cfg, prog))
    t_time, _ = best_of(lambda: schedule(prog, dur, mem))
    t_run, res = best_of(lambda: simulate("systolic_128x128", "llama2-7b", phase="prefill", seq_len=2048), 2)
    out = {
        "program_instructions": len(prog),
        "timing_kernel_instr_per_s": len(prog) / t_time,
        "cost_kernel_instr_per_s": len(prog) / t_cost,
        "lowering_instr_per_s": len(prog) / t_lower,
        "llama2_7b_prefill_2048_wall_s": t_run,
        "llama2_7b_prefill_2048_cycles": res.cycles,
        "simulated_cycles_per_wall_s": res.cycles / t_run,
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
