"""Command line: ``archsim sweep SPEC``, ``archsim sweep status|export DB``,
``archsim pareto DB`` and ``archsim plot DB``.

Every user-caused problem (:class:`ArchsimError`) ends the command with a one-line
message on stderr and exit status 2; a results file is never left half-written.
"""
from __future__ import annotations

import functools
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Optional

import click

from archsim.errors import ArchsimError

EXIT_USAGE = 2


def _fail(msg: str) -> None:
    click.echo(f"error: {msg}", err=True)
    sys.exit(EXIT_USAGE)


def _handle_errors(fn):
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except ArchsimError as e:
            _fail(str(e))
    return wrapper


class DefaultGroup(click.Group):
    """A group whose first argument, when it is not a subcommand, goes to ``default``:
    ``archsim sweep SPEC ...`` is ``archsim sweep run SPEC ...``."""

    default = "run"

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h"):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


def _fmt_duration(s: float) -> str:
    if s != s or s == float("inf"):
        return "?"
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    if s >= 60:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s}s"


class _Reporter:
    """A rich progress bar on a terminal; a plain line every few seconds otherwise."""

    def __init__(self, enabled: bool, label: str):
        from rich.console import Console
        self.console = Console(stderr=True)
        self.enabled = enabled
        self.tty = self.console.is_terminal
        self.label = label
        self.bar = None
        self.task = None
        self.last = time.time()

    def __enter__(self):
        if self.enabled and self.tty:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                                console=self.console, transient=False)
            self.bar.__enter__()
            self.task = self.bar.add_task(self.label, total=None, info="")
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.__exit__(*exc)

    def line(self, p) -> str:
        finished = p.done + p.resumed
        rate = p.rate
        eta = ""
        if p.total is not None and rate > 0:
            left = max(0, p.total - finished - p.skipped)
            eta = f", ETA {_fmt_duration(left / rate)}"
        extra = []
        if p.skipped:
            extra.append(f"{p.skipped} skipped")
        if p.infeasible:
            extra.append(f"{p.infeasible} infeasible")
        if p.retried:
            extra.append(f"{p.retried} retried")
        if p.resumed:
            extra.append(f"{p.resumed} resumed")
        more = (", " + ", ".join(extra)) if extra else ""
        return f"{rate:.2f} pts/s{eta}, {p.failed} failed{more}"

    def __call__(self, p) -> None:
        if not self.enabled:
            return
        finished = p.done + p.resumed + p.skipped
        if self.bar is not None:
            self.bar.update(self.task, completed=finished, total=p.total, info=self.line(p))
        elif time.time() - self.last >= 10:
            self.last = time.time()
            tot = f"/{p.total}" if p.total is not None else ""
            click.echo(f"{self.label}: {finished}{tot} points, {self.line(p)}", err=True)


@click.group(cls=DefaultGroup, invoke_without_command=False)
def sweep():
    """Design-space sweeps: `archsim sweep SPEC --out results.db`, `archsim sweep status DB`,
    `archsim sweep export DB --csv FILE`."""


@sweep.command("run")
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--out", "-o", "out", required=True, type=click.Path(dir_okay=False),
              help="results file (SQLite)")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local", show_default=True)
@click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
              help="worker processes (local; default: all cores) or LocalCluster workers (dask)")
@click.option("--scheduler", default=None, metavar="ADDR", help="Dask scheduler, e.g. tcp://host:8786")
@click.option("--dask-local", type=click.IntRange(min=1), default=None, metavar="N",
              help="start a Dask LocalCluster with N worker processes")
@click.option("--connect-timeout", type=float, default=10.0, show_default=True,
              help="seconds to wait for the Dask scheduler")
@click.option("--resume", is_flag=True, help="continue an existing results file; finished points are skipped")
@click.option("--retry-failed", is_flag=True, help="with --resume: run failed points again")
@click.option("--retries", type=click.IntRange(min=0), default=None,
              help="re-runs of a point whose worker died (default: spec, else 2)")
@click.option("--method", type=click.Choice(["grid", "random", "optuna"]), default=None,
              help="search method (default: the spec's)")
@click.option("--points", type=click.IntRange(min=1), default=None, help="budget in evaluated points")
@click.option("--time", "time_budget", default=None, help="budget in wall time, e.g. '10 min'")
@click.option("--seed", type=int, default=None)
@click.option("--dry-run", is_flag=True, help="check the spec and print the size of the sweep")
@click.option("--progress/--no-progress", default=True)
@_handle_errors
def run_cmd(spec, out, executor, jobs, scheduler, dask_local, connect_timeout, resume, retry_failed, retries, method,
            points, time_budget, seed, dry_run, progress):
    """Run the sweep described by SPEC (YAML), writing every point to --out."""
    from archsim.sweep.executors import make_executor
    from archsim.sweep.runner import run_sweep
    from archsim.sweep.search import make_proposer
    from archsim.sweep.spec import compile_spec, load_spec, parse_duration, spec_summary, with_search
    from archsim.sweep.store import Store, StoreError, as_stored

    if retry_failed and not resume:
        raise ArchsimError("--retry-failed runs the failed points of an existing results file again: "
                           "it needs --resume")
    if not (0 < connect_timeout < float("inf")):
        raise ArchsimError(f"--connect-timeout: expected a positive number of seconds, got {connect_timeout:g}")
    spec_obj, base = load_spec(spec)
    budget_time = None
    if time_budget is not None:
        try:
            budget_time = parse_duration(time_budget)
        except ValueError as e:
            raise ArchsimError(f"--time: {e}") from None
        if not (0 < budget_time < float("inf")):
            raise ArchsimError(f"--time: expected a positive duration, got {time_budget!r}")
    # the command line's search options are part of the spec before it is checked
    spec_obj = with_search(spec_obj, method=method, points=points, time=time_budget, seed=seed)
    sw = compile_spec(spec_obj, base)
    click.echo(f"sweep {sw.spec.name or Path(spec).stem}: {spec_summary(sw)}", err=True)
    if dry_run:
        return
    outp = Path(out)
    if outp.exists() and not resume:
        raise StoreError(f"{outp} already exists; pass --resume to continue it or choose another --out")
    if outp.exists():
        Store.open(outp, readonly=True).close()      # a results file we can use, before any worker starts
    elif not outp.parent.exists():
        raise StoreError(f"folder {outp.parent} does not exist")
    proposer = make_proposer(sw)                     # e.g. optuna missing: before any file is touched
    kind = "dask" if (scheduler or dask_local) else executor
    ex = make_executor(kind, jobs=jobs, scheduler=scheduler, dask_local=dask_local, evaluator=sw.evaluator,
                       connect_timeout=connect_timeout)
    store = None
    try:
        meta = {"spec": sw.spec.model_dump(mode="json"), "spec_path": str(Path(spec).resolve()),
                "size": sw.size, "objectives": [o.model_dump() for o in sw.objectives],
                "axes": [a.name for a in sw.axes], "workloads": [w.label for w in sw.workloads],
                "labelled_fields": sorted(f for a in sw.axes if a.label for f in a.fields)}
        if outp.exists():
            store = Store.open(outp)
            old = store.meta().get("spec")
            if isinstance(old, dict) and {**old, "search": None} != {**as_stored(meta["spec"]), "search": None}:
                click.echo("note: the spec differs from the one that started this file; "
                           "points that match are reused", err=True)
            for k, v in meta.items():
                store.set_meta(k, v)
        else:
            store = Store.create(outp, meta)
        runs = store.meta().get("runs", [])
        runs.append({"started_at": time.time(), "executor": ex.describe(),
                     "archsim_version": __import__("archsim").__version__})
        store.set_meta("runs", runs)
        click.echo(f"executor: {ex.describe()}; results: {outp}", err=True)
        with _Reporter(progress, "sweep") as rep:
            prog = run_sweep(sw, store, ex, proposer=proposer, retries=retries, retry_failed=retry_failed,
                             budget_points=points, budget_time=budget_time, on_progress=rep)
        counts = store.counts()
        msg = (f"done: {prog.done} points run in {_fmt_duration(prog.elapsed)} ({prog.rate:.2f} pts/s): "
               f"{prog.ok} ok, {prog.failed} failed, {prog.infeasible} infeasible, {prog.skipped} skipped"
               f"{f', {prog.retried} retried' if prog.retried else ''}"
               f"{f', {prog.resumed} already done' if prog.resumed else ''}"
               f"{f' (stopped by the {prog.stopped_by} budget)' if prog.stopped_by else ''}; "
               f"file holds {counts['ok']} ok of {sum(counts.values())} points")
        click.echo(msg, err=True)
        if prog.undefined:
            click.echo("undefined derived metrics (stored as null): " + ", ".join(
                f"metrics.{n} on {c} of {prog.measured} points" for n, c in prog.undefined.items()), err=True)
        for n in prog.all_undefined():
            click.echo(f"warning: metrics.{n} is undefined on every point of this run "
                       f"({prog.undefined_why.get(n)})", err=True)
    except KeyboardInterrupt:
        click.echo(f"interrupted; finished points are in {outp}; continue with --resume", err=True)
        sys.exit(130)
    finally:
        ex.close()
        if store is not None:
            store.close()


@sweep.command("status")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--errors", "n_errors", type=int, default=5, show_default=True, help="failure and infeasibility messages to show")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
@_handle_errors
def status_cmd(db, n_errors, as_json):
    """Progress and health of a results file (also while the sweep runs)."""
    from archsim.sweep.store import Store

    with Store.open(db, readonly=True) as st:
        meta = st.meta()
        counts = st.counts()
        rows = st.conn.execute("SELECT MIN(finished_at), MAX(finished_at), COUNT(*) FROM points "
                               "WHERE status != 'skipped'").fetchone()
        errors = st.conn.execute("SELECT error, COUNT(*) c FROM points WHERE status='failed' "
                                 "GROUP BY error ORDER BY c DESC LIMIT ?", (n_errors,)).fetchall()
        reasons = st.conn.execute("SELECT error, COUNT(*) c FROM points WHERE status='infeasible' "
                                  "GROUP BY error ORDER BY c DESC LIMIT ?", (n_errors,)).fetchall()
        versions = [v for (v,) in st.conn.execute(
            "SELECT DISTINCT archsim_version FROM points WHERE archsim_version IS NOT NULL")]
        # in Python, not with SQLite's json functions: a file written by an older archsim may
        # hold Infinity or NaN, which they reject as malformed JSON
        objectives = [o for o in meta.get("objectives") or [] if isinstance(o, dict) and "metric" in o]
        best: dict = {f"{o.get('goal', 'min')} {o['metric']}": None for o in objectives}
        derived = list(((meta.get("spec") or {}).get("metrics") or {}))
        undefined = {n: 0 for n in derived}
        measured = 0
        measured_points = ("SELECT status, metrics FROM points "
                           "WHERE status != 'skipped' AND metrics IS NOT NULL")
        for status, text in st.conn.execute(measured_points):
            try:
                m = json.loads(text) if text else {}
            except (TypeError, ValueError):
                m = {}
            if not isinstance(m, dict):
                m = {}
            measured += 1
            for n in derived:
                if not _finite(m.get(n)) and not isinstance(m.get(n), (str, bool)):
                    undefined[n] += 1
            if status != "ok":
                continue
            for o in objectives:
                goal = o.get("goal", "min")
                k, v = f"{goal} {o['metric']}", m.get(o["metric"])
                if _finite(v) and (best[k] is None or (v < best[k] if goal == "min" else v > best[k])):
                    best[k] = v
    total = meta.get("size")
    finished = sum(counts.values())
    first, last, n = rows
    rate = (n - 1) / (last - first) if n and n > 1 and last > first else None
    summary = {"file": str(db), "name": (meta.get("spec") or {}).get("name"), "planned": total,
               "stored": finished, **counts, "rate_pts_per_s": rate,
               "last_finished_at": last, "archsim_versions": versions, "best": best,
               "top_failures": [{"error": e, "count": c} for e, c in errors],
               "top_infeasible": [{"reason": e, "count": c} for e, c in reasons],
               "undefined_metrics": undefined}
    if as_json:
        click.echo(json.dumps(summary, indent=2, default=str))
        return
    name = summary["name"] or Path(db).stem
    click.echo(f"{name}: {finished} of {total if total is not None else '?'} points stored")
    click.echo("  " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if rate:
        ago = time.time() - last
        click.echo(f"  {rate:.2f} pts/s overall; last point {_fmt_duration(ago)} ago")
    if versions:
        click.echo(f"  archsim version{'s' if len(versions) > 1 else ''}: {', '.join(versions)}")
    for k, v in best.items():
        if v is not None:
            click.echo(f"  best {k.split()[1]} ({k.split()[0]}): {v:.6g}")
    for title, top in (("failures", errors), ("infeasible", reasons)):
        if top:
            click.echo(f"  {title}:")
            for e, c in top:
                first_line = (e or "").splitlines()[0] if e else ""
                click.echo(f"    {c} x {first_line[:200]}")
    if any(undefined.values()):
        click.echo("  undefined derived metrics (stored as null): " + ", ".join(
            f"metrics.{n} on {c} of {measured} points" for n, c in undefined.items() if c))
        for n, c in undefined.items():
            if c == measured:
                click.echo(f"  warning: metrics.{n} is undefined on every point")


def _finite(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    return isinstance(v, int) or math.isfinite(v)


@sweep.command("export")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), default=None)
@click.option("--parquet", "pq_path", type=click.Path(dir_okay=False), default=None)
@click.option("--all", "all_rows", is_flag=True, help="include failed, infeasible and skipped points")
@_handle_errors
def export_cmd(db, csv_path, pq_path, all_rows):
    """Write the results as CSV and/or Parquet (one row per point, one column per field/metric)."""
    from archsim.sweep.store import Store

    if csv_path is None and pq_path is None:
        raise ArchsimError("give --csv FILE and/or --parquet FILE")
    if csv_path is not None and pq_path is not None and Path(csv_path).resolve() == Path(pq_path).resolve():
        raise ArchsimError(f"--csv and --parquet name the same file {csv_path}")
    status = None if all_rows else ("ok",)
    with Store.open(db, readonly=True) as st:
        # every path is checked before anything is written; the files appear together
        n = st.export(csv_path=csv_path, parquet_path=pq_path, status=status)
    for p in (csv_path, pq_path):
        if p is not None:
            click.echo(f"wrote {n} rows to {p}", err=True)


def _load_rows(db: str, where: Optional[str], workload: Optional[str]):
    from archsim.sweep.pareto import filter_rows
    from archsim.sweep.store import Store

    with Store.open(db, readonly=True) as st:
        rows = list(st.rows(("ok",)))
        meta = st.meta()
    if workload:
        labels = sorted({r["workload"] for r in rows})
        if workload not in labels:
            from archsim.errors import did_you_mean
            raise ArchsimError(f"no workload {workload!r} in {db}{did_you_mean(workload, labels)}; "
                               f"workloads: {', '.join(labels)}")
        rows = [r for r in rows if r["workload"] == workload]
    rows = filter_rows(rows, where)
    if not rows:
        raise ArchsimError(f"no finished points in {db}" + (" match the filter" if where or workload else ""))
    return rows, meta


@click.command("pareto")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--x", "x", required=True, help="metric on x (e.g. cycles, energy, area)")
@click.option("--y", "y", required=True, help="metric on y")
@click.option("--goal-x", type=click.Choice(["min", "max"]), default=None, help="default: from the spec's objectives")
@click.option("--goal-y", type=click.Choice(["min", "max"]), default=None)
@click.option("--where", default=None, help="filter, e.g. \"workload.batch == 8 and area_mm2 < 100\"")
@click.option("--workload", default=None, help="only this workload label")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), default=None, help="write a plot (PNG/SVG/PDF)")
@click.option("--json", "as_json", is_flag=True, help="print the front as JSON")
@_handle_errors
def pareto(db, x, y, goal_x, goal_y, where, workload, plot_path, as_json):
    """The Pareto front of two metrics over the finished points of DB."""
    from archsim.sweep import pareto as P

    if plot_path is not None:       # a bad file name or format fails before the front is printed
        from archsim.sweep.plots import check_plot_path
        check_plot_path(plot_path, "--plot")
    rows, meta = _load_rows(db, where, workload)
    x, y = P.resolve_name(x, rows), P.resolve_name(y, rows)
    gx = goal_x or P.default_goal(x, meta.get("objectives"))
    gy = goal_y or P.default_goal(y, meta.get("objectives"))
    keep, vals, mask = P.front(rows, x, y, gx, gy)
    if not keep:
        raise ArchsimError(f"no finished point has numeric {x!r} and {y!r}")
    idx = [i for i in sorted(range(len(keep)), key=lambda i: vals[i, 0]) if mask[i]]
    hide = frozenset(meta.get("labelled_fields") or ())
    # the fields that vary over the finished points: the front's rows say where in the space they sit
    names = P.varying_fields(keep, hide)
    if as_json:
        click.echo(json.dumps([{"id": keep[i]["id"], "workload": keep[i]["workload"], "fields": keep[i]["fields"],
                                x: vals[i, 0], y: vals[i, 1]} for i in idx], indent=2))
    else:
        from rich.console import Console
        from rich.table import Table
        t = Table(title=f"Pareto front: {len(idx)} of {len(keep)} points ({gx} {x}, {gy} {y})")
        for n in names:
            t.add_column(n)
        t.add_column(x, justify="right")
        t.add_column(y, justify="right")
        for i in idx:
            r = keep[i]
            t.add_row(*[str(r["workload"] if n == "workload" else r["fields"].get(n)) for n in names],
                      f"{vals[i, 0]:.5g}", f"{vals[i, 1]:.5g}")
        Console(width=max(120, int(os.environ.get("COLUMNS", "120")))).print(t)
    if plot_path is not None:
        from archsim.sweep.plots import pareto_plot
        pareto_plot(keep, vals, mask, x, y, plot_path, gx=gx, gy=gy, hide=hide, option="--plot",
                    title=f"{(meta.get('spec') or {}).get('name') or Path(db).stem}: {len(keep)} points")
        click.echo(f"wrote {plot_path}", err=True)


@click.command("plot")
@click.argument("db", type=click.Path(dir_okay=False))
@click.option("--x", "x", required=True, help="field or metric on x (e.g. array.rows)")
@click.option("--y", "y", required=True, help="metric on y (e.g. cycles)")
@click.option("--hue", default=None, help="field whose values get one series each (e.g. sram.ifmap)")
@click.option("--where", default=None, help="filter expression over fields and metrics")
@click.option("--workload", default=None, help="only this workload label")
@click.option("--out", "-o", "out", type=click.Path(dir_okay=False), default="plot.png", show_default=True)
@click.option("--logx/--linx", default=None, help="log x axis (default: automatic)")
@click.option("--logy/--liny", default=None, help="log y axis (default: automatic)")
@_handle_errors
def plot(db, x, y, hue, where, workload, out, logx, logy):
    """Plot a metric of DB's finished points against a field, one series per --hue value."""
    from archsim.sweep import pareto as P
    from archsim.sweep.plots import check_plot_path, field_plot

    check_plot_path(out, "--out")
    rows, _ = _load_rows(db, where, workload)
    x, y = P.resolve_name(x, rows), P.resolve_name(y, rows)
    if hue:
        hue = P.resolve_name(hue, rows)
    field_plot(rows, x, y, out, hue=hue, logx=logx, logy=logy, option="--out")
    click.echo(f"wrote {out}", err=True)


#: everything ``python -m archsim.sweep`` offers: run (default), status, export, pareto, plot
main = DefaultGroup(name="archsim-sweep", commands={**sweep.commands, "pareto": pareto, "plot": plot},
                    help="archsim design-space sweeps (run is the default command)",
                    context_settings={"help_option_names": ["-h", "--help"]})
