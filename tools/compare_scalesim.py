#!/usr/bin/env python
"""Run SCALE-Sim and archsim's SCALE-Sim compatible report side by side.

    python tools/compare_scalesim.py CFG TOPOLOGY [--scalesim-python PY] [--json]

SCALE-Sim (PyPI ``scalesim``, needs ``numpy<2.4``) is not a dependency of
archsim.  If ``import scalesim`` works in this interpreter it is run in
process through its Python API (``save_disk_space=True``, so no per-cycle
traces are written).  Otherwise, ``--scalesim-python`` (or the environment
variable ``SCALESIM_PYTHON``) may name the interpreter of a separate
environment that has it, e.g.::

    python -m venv .venv-scalesim
    .venv-scalesim/bin/pip install "numpy<2.4" scalesim==3.0.0
    python tools/compare_scalesim.py cfg topo --scalesim-python .venv-scalesim/bin/python

Without either, the tool says SCALE-Sim is not installed and prints archsim's
numbers only.  SCALE-Sim's COMPUTE_REPORT.csv, DETAILED_ACCESS_REPORT.csv and
BANDWIDTH_REPORT.csv are read and printed next to archsim's, with the
differences.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LAYOUT = os.path.join(ROOT, "validation", "scalesim", "layout_dummy.csv")

def compared_columns() -> tuple[str, ...]:
    """Every report column of SCALE-Sim's three CSVs that archsim reproduces (imported here, not
    at module level: the worker runs under SCALE-Sim's interpreter, without archsim's
    dependencies)."""
    sys.path.insert(0, ROOT)
    from archsim.uarch.systolic.scalesim_compat import ALL_COLUMNS
    return tuple(c for c in ALL_COLUMNS if c != "Layer")


# --------------------------------------------------------------------------- SCALE-Sim


def scalesim_importable() -> bool:
    try:
        import scalesim  # noqa: F401
    except Exception:
        return False
    return True


def _read_report(path: str) -> list[dict]:
    with open(path, newline="") as fh:
        rows = [[c.strip() for c in r] for r in csv.reader(fh)]
    head = [h for h in rows[0]]
    out = []
    for r in rows[1:]:
        if not any(r):
            continue
        out.append({h: v for h, v in zip(head, r) if h})
    return out


def _num(v: str):
    try:
        return int(v)
    except ValueError:
        return float(v)


def run_scalesim_inprocess(cfg: str, topology: str) -> dict:
    """Run SCALE-Sim through its Python API; returns {"seconds", "layers": [...]}.

    Each layer dict uses SCALE-Sim's report column names, plus "Compute Cycles"
    (Total Cycles - Stall Cycles) and "Total Cycles (incl. prefetch)".
    """
    from scalesim.scale_sim import scalesim

    cfg = os.path.abspath(cfg)
    topology = os.path.abspath(topology)
    with tempfile.TemporaryDirectory() as work:
        t0 = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            sim = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topology,
                           layout=LAYOUT, input_type_gemm=True)
            sim.run_scale(top_path=work)
        seconds = time.perf_counter() - t0
        (run_dir,) = [os.path.join(work, d) for d in os.listdir(work)]
        compute = _read_report(os.path.join(run_dir, "COMPUTE_REPORT.csv"))
        access = _read_report(os.path.join(run_dir, "DETAILED_ACCESS_REPORT.csv"))
        bandwidth = _read_report(os.path.join(run_dir, "BANDWIDTH_REPORT.csv"))
    layers = []
    for c, a, b in zip(compute, access, bandwidth):
        row = {k: _num(v) for k, v in c.items() if k != "LayerID"}
        row["Compute Cycles"] = row["Total Cycles"] - row["Stall Cycles"]
        for k, v in a.items():
            if k != "LayerID":
                row[k] = _num(v)
        for k, v in b.items():
            if k != "LayerID":
                row[k] = _num(v)
        layers.append(row)
    return {"seconds": seconds, "layers": layers}


def run_scalesim_subprocess(python: str, cfg: str, topology: str) -> dict:
    """Run this file in worker mode under another interpreter that has scalesim."""
    proc = subprocess.run(
        [python, os.path.abspath(__file__), "--worker", os.path.abspath(cfg),
         os.path.abspath(topology)],
        capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"SCALE-Sim run failed ({python}):\n{proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_scalesim(cfg: str, topology: str, python: str | None = None) -> dict | None:
    """SCALE-Sim's report, or None when it is not installed anywhere we know of."""
    if scalesim_importable():
        return run_scalesim_inprocess(cfg, topology)
    if python:
        return run_scalesim_subprocess(python, cfg, topology)
    return None


# --------------------------------------------------------------------------- archsim


def run_archsim(cfg: str, topology: str) -> dict:
    from archsim.uarch.systolic import scalesim_compat

    t0 = time.perf_counter()
    _, rows = scalesim_compat.run(cfg, topology)
    return {"seconds": time.perf_counter() - t0, "layers": rows}


# --------------------------------------------------------------------------- printing


def _fmt(v) -> str:
    from archsim.uarch.systolic.scalesim_cli import format_cell  # after compared_columns()'s path
    return format_cell(v, digits=6)


def _diff(a, b) -> str:
    if a is None or b is None:
        return ""
    d = b - a
    if isinstance(d, float) or isinstance(a, float) or isinstance(b, float):
        return "0" if abs(d) <= 1e-9 * max(1.0, abs(a)) else f"{d:+.6g}"
    if d == 0:
        return "0"
    rel = f" ({100.0 * d / a:+.2f}%)" if a else ""
    return f"{d:+,}{rel}"


def print_comparison(ours: dict, theirs: dict | None, out=sys.stdout) -> int:
    """Print per layer; return the number of differing compared values."""
    n_diff = 0
    compared = compared_columns()
    for i, row in enumerate(ours["layers"]):
        ref = theirs["layers"][i] if theirs else None
        print(f"\n== layer {row['Layer']}", file=out)
        if ref is None:
            for col in compared:
                print(f"  {col:<30} {_fmt(row[col]):>16}", file=out)
            continue
        print(f"  {'column':<30} {'SCALE-Sim':>16} {'archsim':>16}  difference", file=out)
        for col in compared:
            a, b = ref.get(col), row.get(col)
            d = _diff(a, b)
            if d not in ("", "0"):
                n_diff += 1
            print(f"  {col:<30} {_fmt(a):>16} {_fmt(b):>16}  {d}", file=out)
        extra = [k for k in ref if k not in compared and k != "Layer"]
        for col in extra:
            print(f"  {col:<30} {_fmt(ref[col]):>16} {'':>16}  (SCALE-Sim only)", file=out)
    return n_diff


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cfg")
    ap.add_argument("topology")
    ap.add_argument("--scalesim-python", default=os.environ.get("SCALESIM_PYTHON"),
                    help="interpreter of an environment with scalesim installed")
    ap.add_argument("--json", action="store_true", help="print both reports as JSON")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args.worker:
        print(json.dumps(run_scalesim_inprocess(args.cfg, args.topology)))
        return 0

    ours = run_archsim(args.cfg, args.topology)
    try:
        theirs = run_scalesim(args.cfg, args.topology, args.scalesim_python)
    except RuntimeError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps({"archsim": ours, "scalesim": theirs}, indent=2))
        return 0
    if theirs is None:
        print("SCALE-Sim is not installed (pip install scalesim, with numpy<2.4, in a "
              "separate environment; pass --scalesim-python); archsim's numbers only:")
    else:
        print(f"SCALE-Sim: {theirs['seconds']:.3f} s   archsim: {ours['seconds']:.4f} s")
    n_diff = print_comparison(ours, theirs)
    if theirs is not None:
        print(f"\n{n_diff} value(s) differ")
    return 0


if __name__ == "__main__":
    sys.exit(main())
