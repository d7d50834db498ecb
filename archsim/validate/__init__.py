"""Validation harness: runs the cases under ``validation/`` and compares each metric with
its published or peer reference.

A case file (YAML) holds one case or ``cases: [...]``. Fields:

- ``id``, ``source`` (citation), optional ``notes``/``setup``
- ``kind``: ``run`` (default; simulate ``arch`` x ``workload``), ``python`` (call
  ``function: "module:function"`` with the case dict; it returns {metric: value}), or
  ``scalesim`` (a SCALE-Sim cfg + topology pair; metrics are report columns of layer 0), or
  ``scalesim_table`` (``table``: a CSV of SCALE-Sim runs, one GEMM per row; metrics ``rows``,
  ``rows exact`` and ``<column> exact``, counts of rows reproduced)
- for ``run``: ``arch``, ``workload`` (name, path or inline dict), ``overrides``, ``phase``,
  ``batch``, ``seq_len``, ``kv_len``
- one metric: ``metric``, ``reference``, ``tolerance`` ({rel: 0.05} | {abs: 2} | {range: [lo, hi]}),
  or several: ``metrics: {name: {ref: x, tol_rel: r | tol_abs: a | range: [lo, hi]}}``

Metric names for ``run`` cases: any key of ``Result.metrics()``, the derived ``peak_tops``
(2 ops per MAC at the clock), ``peak_macs_per_cycle``, ``ridge_macs_per_byte`` (peak MACs per
cycle / peak off-chip bytes per cycle), ``bounds_ok``, or a dotted path into the JSON result.
"""
from __future__ import annotations

import importlib
from pathlib import Path

from archsim.config.loader import load_yaml_file, project_root
from archsim.errors import ArchsimError


def case_files(root=None) -> list[Path]:
    root = Path(root) if root else project_root() / "validation"
    return sorted(p for p in root.rglob("*.yaml") if p.is_file())


def load_cases(root=None) -> list[dict]:
    cases = []
    for f in case_files(root):
        data = load_yaml_file(f)
        items = data.get("cases") if "cases" in data else [data]
        for c in items or []:
            if isinstance(c, dict) and "id" in c:
                c = dict(c)
                c["_file"] = str(f)
                cases.append(c)
    return cases


def _dig(d, path: str):
    cur = d
    for part in path.split("."):
        if isinstance(cur, list):
            cur = cur[int(part)]
        else:
            cur = cur[part]
    return cur


def run_metrics(case: dict, wanted: list[str]) -> dict:
    from archsim.api import simulate
    res = simulate(case["arch"], case["workload"], overrides=case.get("overrides", []),
                   phase=case.get("phase"), batch=case.get("batch"), seq_len=case.get("seq_len"),
                   kv_len=case.get("kv_len"), all_layers=bool(case.get("all_layers", False)))
    m = res.metrics()
    m["peak_macs_per_cycle"] = res.peak_macs_per_cycle
    m["peak_tops"] = 2 * res.peak_macs_per_cycle * res.clock_hz / 1e12
    m["ridge_macs_per_byte"] = res.peak_macs_per_cycle / res.peak_bytes_per_cycle
    m["bounds_ok"] = 1.0 if res.bounds_ok() else 0.0
    out = {}
    d = None
    for w in wanted:
        if w in m:
            out[w] = m[w]
        else:
            d = d or res.to_dict()
            out[w] = _dig(d, w)
    return out


def scalesim_metrics(case: dict, wanted: list[str]) -> dict:
    from archsim.uarch.systolic.scalesim_compat import run as ss_run
    base = Path(case["_file"]).parent
    _, rows = ss_run(str(base / case["config"]), str(base / case["topology"]))
    row = rows[int(case.get("layer", 0))]
    return {w: row[w] for w in wanted}


def scalesim_table_metrics(case: dict, wanted: list[str]) -> dict:
    from archsim.uarch.systolic.scalesim_compat import table_matches
    counts = table_matches(str(Path(case["_file"]).parent / case["table"]))
    return {w: counts.get(w) for w in wanted}


def table_rows(case: dict, what: str, fn) -> list:
    """``fn(row)`` for every row of the CSV ``case["table"]`` beside the case file (rows for which
    it returns None are left out). An unreadable file, or a row with a missing or bad column, is
    an InputFileError naming ``what`` and the file (and line)."""
    import csv

    from archsim.errors import InputFileError
    path = Path(case["_file"]).parent / case["table"]
    try:
        rows = list(csv.DictReader(path.read_text().splitlines()))
    except OSError as exc:
        raise InputFileError(f"cannot read {what} {path}: {exc}") from None
    out = []
    for line, r in enumerate(rows, start=2):
        try:
            v = fn(r)
        except (KeyError, ValueError) as exc:
            raise InputFileError(f"{path}:{line}: bad or missing column: {exc}") from None
        if v is not None:
            out.append(v)
    return out


def error_summary(errs, tol: float, prefix: str = "") -> dict:
    """Relative errors of table rows summarised: ``within_tol`` (the share within ``tol``),
    ``mean_abs_error``, ``max_abs_error``; keys after ``prefix``."""
    n = max(1, len(errs))
    return {f"{prefix}within_tol": sum(abs(e) <= tol for e in errs) / n,
            f"{prefix}mean_abs_error": sum(abs(e) for e in errs) / n,
            f"{prefix}max_abs_error": max((abs(e) for e in errs), default=0.0)}


def _specs(case: dict) -> dict:
    if "metrics" in case:
        return case["metrics"]
    tol = case.get("tolerance", {})
    spec = {"ref": case["reference"]}
    if "rel" in tol:
        spec["tol_rel"] = tol["rel"]
    if "abs" in tol:
        spec["tol_abs"] = tol["abs"]
    if "range" in tol:
        spec["range"] = tol["range"]
    return {case["metric"]: spec}


def check(value, spec) -> tuple[bool, float | None, str]:
    ref = spec.get("ref")
    if value is None:
        return False, None, "no value"
    if "range" in spec:
        lo, hi = spec["range"]
        return lo <= value <= hi, None, f"in [{lo}, {hi}]"
    err = (value - ref) / ref if ref else float(value - ref)
    if "tol_rel" in spec:
        return abs(err) <= spec["tol_rel"], err, f"±{100 * spec['tol_rel']:g}%"
    if "tol_abs" in spec:
        return abs(value - ref) <= spec["tol_abs"], err, f"±{spec['tol_abs']:g}"
    return value == ref, err, "exact"


def python_metrics(case: dict, wanted: list[str]) -> dict:
    """A ``python`` case's ``function`` ("module:function"; ``dram_trace`` cases default to the
    DRAM trace replay), called with the case."""
    mod, _, fn = case.get("function", "archsim.mem.dram:validate_case").partition(":")
    return getattr(importlib.import_module(mod), fn)(case)


#: Per case kind: the function that returns {metric: value}, and the fields it needs.
_KINDS = {"run": (run_metrics, ("arch", "workload")),
          "scalesim": (scalesim_metrics, ("config", "topology")),
          "scalesim_table": (scalesim_table_metrics, ("table",)),
          "dram_trace": (python_metrics, ("preset", "pattern")),
          "python": (python_metrics, ("function",))}


def _error_rows(case: dict, specs: dict, message: str) -> list[dict]:
    return [{"id": case["id"], "metric": m, "reference": s.get("ref"), "simulated": None, "error": None,
             "tolerance": "", "pass": False, "status": "error", "message": message,
             "source": case.get("source", "")} for m, s in specs.items()]


def run_case(case: dict) -> list[dict]:
    try:
        specs = _specs(case)
    except KeyError as e:
        return _error_rows(case, {"?": {}}, f"{case['id']}: no metrics (give metrics, or metric + "
                                            f"reference): missing {e.args[0]!r}")
    kind = case.get("kind", "run")
    if kind not in _KINDS and "function" in case:
        kind = "python"
    try:
        if kind not in _KINDS:
            raise ArchsimError(f"unknown case kind {kind!r}", path=f"{case['id']}.kind")
        metrics, required = _KINDS[kind]
        missing = [f for f in required if case.get(f) in (None, "")]
        if missing:
            raise ArchsimError(f"a {kind} case needs {', '.join(missing)}",
                               path=f"{case['id']}.{missing[0]}")
        vals = metrics(case, list(specs))
    except ArchsimError as e:
        return _error_rows(case, specs, str(e))
    rows = []
    for m, s in specs.items():
        ok, err, tol = check(vals.get(m), s)
        rows.append({"id": case["id"], "metric": m, "reference": s.get("ref", s.get("range")),
                     "simulated": vals.get(m), "error": err, "tolerance": tol, "pass": bool(ok),
                     "status": "pass" if ok else "fail", "source": case.get("source", "")})
    return rows


def run_all(root=None, pattern: str | None = None, jobs: int = 1) -> list[dict]:
    """Rows of every case (whose id contains ``pattern``), in case order; ``jobs`` > 1 runs the
    cases in that many worker processes, 0 one per CPU (at most 8: each holds the compiled
    kernels) when more than 16 cases are selected (a worker's start costs about as much as a
    few small cases)."""
    cases = [c for c in load_cases(root) if not pattern or pattern in c["id"]]
    if jobs == 0:
        import os
        jobs = min(os.cpu_count() or 1, 8) if len(cases) > 16 else 1
    if jobs > 1 and len(cases) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(max_workers=min(jobs, len(cases)),
                                 mp_context=multiprocessing.get_context("spawn")) as pool:
            per_case = list(pool.map(run_case, cases, chunksize=1))
    else:
        per_case = [run_case(c) for c in cases]
    return [row for rows in per_case for row in rows]


def print_table(rows: list[dict], console) -> None:
    from rich.table import Table
    t = Table(title="validation")
    for c in ("case", "metric", "reference", "simulated", "error", "tolerance", "pass"):
        t.add_column(c, justify="right" if c in ("reference", "simulated", "error") else "left")
    for r in rows:
        sim = r["simulated"]
        t.add_row(r["id"], r["metric"], f"{r['reference']}", "-" if sim is None else f"{sim:.6g}"
                  if isinstance(sim, (int, float)) else str(sim),
                  "-" if r["error"] is None else f"{100 * r['error']:+.2f}%", r["tolerance"],
                  {"pass": "[green]yes[/]", "fail": "[red]no[/]", "error": "[red]error[/]"}[r["status"]])
    console.print(t)
    errors = dict.fromkeys((r["id"], r.get("message", "")) for r in rows if r["status"] == "error")
    from rich.markup import escape
    for case_id, message in errors:
        console.print(f"[red]error[/] {escape(f'{case_id}: {message}')}", highlight=False)
    n = sum(r["pass"] for r in rows)
    console.print(f"{n} of {len(rows)} checks pass")
