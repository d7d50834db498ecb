#!/usr/bin/env python
"""Speed of archsim's SCALE-Sim compatible report against SCALE-Sim itself.

    python tools/bench/bench_scalesim.py [--scalesim-python PY] [--out FILE] [--quick]

Cases: GPT-2 QKV projection at 128 tokens (M=128, N=2304, K=768) on a 128x128
array (os), and every topology under validation/scalesim/topologies with each
config under validation/scalesim/configs (32x32; os, ws, is).

For archsim it times, after a warm-up call (numba compiles or loads its cache
once per process): the fold kernel alone (``folds.scalesim_report_many``) and
the report path (``scalesim_compat.report_rows``), and reading both files plus
the report (``scalesim_compat.run``, what ``archsim scalesim`` does per
invocation); and once, a cold ``scalesim`` command process for the first case.  Each is repeated until it has run for at least
``--min-seconds`` and the mean per call is used.

When SCALE-Sim is available (``--scalesim-python`` or ``SCALESIM_PYTHON``:
the interpreter of an environment with ``scalesim`` and ``numpy<2.4``), each
case is also run there (in a subprocess, timing SCALE-Sim's own run, not the
interpreter start), the cycle counts are checked to be identical, and the
speed ratio is reported.

Prints JSON: simulated cycles per wall second for each side and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402

from archsim.uarch.systolic import folds, scalesim_compat  # noqa: E402

VAL = os.path.join(ROOT, "validation", "scalesim")

def _cases_script():
    """validation/scalesim/make_cases.py (stdlib only), whose .cfg template the benchmark reuses."""
    import importlib.util
    spec = importlib.util.spec_from_file_location("make_cases", os.path.join(VAL, "make_cases.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_cases(workdir: str, quick: bool) -> list[tuple[str, str, str]]:
    """(label, cfg path, topology path) triples."""
    cases = []
    cfg = os.path.join(workdir, "a128_os_calc.cfg")
    with open(cfg, "w") as fh:
        fh.write(_cases_script().CFG_TEMPLATE.format(R=128, C=128, df="os", mode="CALC", bw=10, ibw=10, fbw=10, ik=1024,
                                                      fk=1024, ok=512))
    topo = os.path.join(workdir, "gpt2_pf128_qkv.csv")
    with open(topo, "w") as fh:
        fh.write("Layer,M,N,K,\ngpt2_pf128_qkv,128,2304,768,\n")
    cases.append(("gpt2_pf128_qkv@128x128/os", cfg, topo))
    if quick:
        return cases
    cfg_dir = os.path.join(VAL, "configs")
    topo_dir = os.path.join(VAL, "topologies")
    for c in sorted(os.listdir(cfg_dir)):
        for t in sorted(os.listdir(topo_dir)):
            cases.append((f"{t[:-4]}@{c[:-4]}", os.path.join(cfg_dir, c),
                          os.path.join(topo_dir, t)))
    return cases


def _time(fn, min_seconds: float) -> float:
    fn()  # warm-up
    n = 0
    t0 = time.perf_counter()
    while True:
        fn()
        n += 1
        el = time.perf_counter() - t0
        if el >= min_seconds:
            return el / n


def bench_archsim(label, cfg_path, topo_path, min_seconds):
    cfg = scalesim_compat.read_config(cfg_path)
    layers = scalesim_compat.read_topology(topo_path)
    rows = scalesim_compat.report_rows(cfg, layers)
    cycles = sum(r["Total Cycles"] for r in rows)
    df, R, C = cfg.dataflow_code, cfg.array_rows, cfg.array_cols
    M = np.array([x.M for x in layers], np.int64)
    N = np.array([x.N for x in layers], np.int64)
    K = np.array([x.K for x in layers], np.int64)
    t_kernel = _time(lambda: folds.scalesim_report_many(df, R, C, M, N, K), min_seconds)
    t_report = _time(lambda: scalesim_compat.report_rows(cfg, layers), min_seconds)
    t_files = _time(lambda: scalesim_compat.run(cfg_path, topo_path), min_seconds)
    return {
        "case": label,
        "cycles": [r["Total Cycles"] for r in rows],
        "total_cycles": cycles,
        "archsim_kernel_s": t_kernel,
        "archsim_report_s": t_report,
        "archsim_files_s": t_files,
    }


def cold_cli_seconds(cfg_path, topo_path) -> float:
    """Wall time of one fresh ``scalesim`` command process (interpreter start,
    imports, numba cache load, parsing, report, CSV output)."""
    import subprocess
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "archsim.uarch.systolic.scalesim_cli", cfg_path,
                    topo_path, "--format", "csv"], check=True, capture_output=True, env=env)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="archsim vs SCALE-Sim speed")
    ap.add_argument("--scalesim-python", default=os.environ.get("SCALESIM_PYTHON"))
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--quick", action="store_true", help="only the GPT-2 QKV 128x128 case")
    ap.add_argument("--min-seconds", type=float, default=0.2)
    args = ap.parse_args(argv)

    from compare_scalesim import run_scalesim  # tools/compare_scalesim.py

    results = []
    with tempfile.TemporaryDirectory() as work:
        for label, cfg, topo in make_cases(work, args.quick):
            res = bench_archsim(label, cfg, topo, args.min_seconds)
            if not results:
                res["archsim_cold_cli_s"] = cold_cli_seconds(cfg, topo)
            ref = None
            if args.scalesim_python or _importable():
                ref = run_scalesim(cfg, topo, args.scalesim_python)
            if ref is not None:
                ref_cycles = [int(x["Total Cycles"]) for x in ref["layers"]]
                res["scalesim_s"] = ref["seconds"]
                res["scalesim_cycles"] = ref_cycles
                res["same_cycles"] = ref_cycles == res["cycles"]
                res["ratio_vs_kernel"] = ref["seconds"] / res["archsim_kernel_s"]
                res["ratio_vs_report"] = ref["seconds"] / res["archsim_report_s"]
                res["ratio_vs_files"] = ref["seconds"] / res["archsim_files_s"]
                if "archsim_cold_cli_s" in res:
                    res["ratio_vs_cold_cli"] = ref["seconds"] / res["archsim_cold_cli_s"]
            results.append(res)
            print(f"{label}: {res['total_cycles']:,} cycles, archsim report "
                  f"{res['archsim_report_s'] * 1e6:.1f} us"
                  + (f", SCALE-Sim {res['scalesim_s']:.2f} s, x{res['ratio_vs_report']:,.0f}"
                     if ref is not None else ""), file=sys.stderr)

    total_cycles = sum(r["total_cycles"] for r in results)
    t_kernel = sum(r["archsim_kernel_s"] for r in results)
    t_report = sum(r["archsim_report_s"] for r in results)
    t_files = sum(r["archsim_files_s"] for r in results)
    summary = {
        "cases": len(results),
        "simulated_cycles": total_cycles,
        "archsim_kernel_cycles_per_s": total_cycles / t_kernel,
        "archsim_report_cycles_per_s": total_cycles / t_report,
        "archsim_files_cycles_per_s": total_cycles / t_files,
    }
    if all("scalesim_s" in r for r in results):
        t_ref = sum(r["scalesim_s"] for r in results)
        summary.update({
            "scalesim_cycles_per_s": total_cycles / t_ref,
            "all_cycles_identical": all(r["same_cycles"] for r in results),
            "speedup_report": t_ref / t_report,
            "speedup_kernel": t_ref / t_kernel,
            "speedup_files": t_ref / t_files,
            "min_case_speedup_files": min(r["ratio_vs_files"] for r in results),
            "speedup_cold_cli_first_case": results[0].get("ratio_vs_cold_cli"),
            "min_case_speedup_report": min(r["ratio_vs_report"] for r in results),
        })
    else:
        summary["scalesim"] = "not installed (pass --scalesim-python)"
    doc = {
        "benchmark": "scalesim",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "summary": summary,
        "results": results,
    }
    text = json.dumps(doc, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0


def _importable() -> bool:
    try:
        import scalesim  # noqa: F401
    except Exception:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
