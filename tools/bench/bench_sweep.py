"""Sweep throughput: points per second per core, local executor, 1 vs N worker processes.

A Llama-2-7B decode sweep (systolic preset x batch x context length x array shape) runs
on the local executor; workers are started and warmed (numba cache loaded) before
timing, so the numbers are steady-state sweep throughput.

    python tools/bench/bench_sweep.py                 # 1 and 2 processes
    python tools/bench/bench_sweep.py --jobs 1 2 4 --repeat 3
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from archsim.sweep.executors import LocalExecutor  # noqa: E402
from archsim.sweep.runner import run_sweep  # noqa: E402
from archsim.sweep.spec import compile_spec, load_spec  # noqa: E402
from archsim.sweep.store import Store  # noqa: E402

PRESETS = ["systolic_128x128", "tpuv1", "tpuv4i", "scalesim_32x32"]


def bench_spec() -> dict:
    return {
        "name": "bench-llama2-7b-decode",
        "arch": PRESETS,
        "workloads": [{"workload": "llama2-7b", "label": "decode", "set": {"phase": "decode"}}],
        "axes": {"workload.batch": [1, 4, 16, 64],
                 "workload.kv_len": [512, 1024, 2048],
                 "zip": {"array.rows": [64, 128, 256], "array.cols": [64, 128, 256]}},
    }


def one_run(jobs: int, sw, tmp: Path, tag: str) -> tuple[int, float]:
    with LocalExecutor(jobs) as ex:
        # warm every worker: import archsim, load the numba cache, run one point each
        tasks = [dict(sw.task(p), id=f"warm{i}") for i, p in enumerate(list(sw.grid())[:jobs])]
        for t in tasks:
            ex.submit(t)
        left = len(tasks)
        while left:
            left -= len(ex.wait(timeout=1.0))
        t0 = time.perf_counter()
        with Store.create(tmp / f"{tag}.db", {}) as st:
            prog = run_sweep(sw, st, ex, poll=0.01)
        secs = time.perf_counter() - t0
        if prog.failed:
            raise SystemExit(f"{prog.failed} points failed")
        return prog.done, secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    sw = compile_spec(*load_spec(bench_spec()))
    size = sw.size
    print(f"Llama-2-7B decode sweep on {', '.join(PRESETS)}: {size} points per run; "
          f"{os.cpu_count()} cores on this machine")
    rates: dict[int, list[float]] = {j: [] for j in args.jobs}
    with tempfile.TemporaryDirectory() as d:
        for r in range(args.repeat):          # interleaved, so a noisy neighbour hits all alike
            for jobs in args.jobs:
                n, secs = one_run(jobs, sw, Path(d), f"j{jobs}r{r}")
                rates[jobs].append(n / secs)
    base = statistics.median(rates[args.jobs[0]]) / args.jobs[0]
    for jobs in args.jobs:
        med, best = statistics.median(rates[jobs]), max(rates[jobs])
        print(f"  {jobs} process{'es' if jobs > 1 else '  '}: median {med:6.1f} points/s "
              f"({med / jobs:5.1f} per process, {med / base / jobs:4.2f}x of linear), best {best:6.1f}  "
              f"[runs: {', '.join(f'{x:.1f}' for x in rates[jobs])}]")

if __name__ == "__main__":
    main()
