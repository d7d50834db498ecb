"""The sweep driver: proposer -> executor -> store, one point at a time.

The parent process alone writes the store; every outcome is committed as it arrives.
A point whose worker died is resubmitted up to ``retries`` times; a point that failed
inside the simulator is recorded as ``failed`` with its message; a point that violates
a constraint over fields is recorded as ``skipped`` without running; one that violates
a constraint over metrics, or whose workload its hardware cannot hold or map (the worker's
``infeasible``: a model larger than the memory, a tile larger than the buffers), is recorded
as ``infeasible``. A point on which a constraint cannot be evaluated, or whose result holds
a non-finite number, is ``failed`` with a message naming the constraint or the metric.
Derived metrics undefined on a point are stored as null and counted in :class:`Progress`
(``undefined``).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from archsim.sweep.executors import Executor
from archsim.sweep.expr import ExprEvalError
from archsim.sweep.search import Proposer, make_proposer, point_of_row
from archsim.sweep.spec import Point, Sweep, parse_duration
from archsim.sweep.store import Store, nonfinite, nonfinite_message


@dataclass
class Progress:
    total: Optional[int] = None       # points the search may visit (None: open-ended)
    done: int = 0                     # finished in this run (ok + failed + infeasible)
    ok: int = 0
    failed: int = 0
    infeasible: int = 0
    skipped: int = 0
    retried: int = 0
    resumed: int = 0                  # already in the store, not run again
    started: float = field(default_factory=time.time)
    budget_points: Optional[int] = None
    stopped_by: Optional[str] = None  # "points", "time" or None (search exhausted)
    measured: int = 0                 # points of this run whose derived metrics were computed
    undefined: dict = field(default_factory=dict)      # derived metric -> points where it was undefined
    undefined_why: dict = field(default_factory=dict)  # derived metric -> the first reason

    def all_undefined(self) -> list[str]:
        """Derived metrics that were undefined on every point of this run that computed them."""
        return [n for n, c in self.undefined.items() if self.measured and c == self.measured]

    @property
    def elapsed(self) -> float:
        return time.time() - self.started

    @property
    def rate(self) -> float:
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


def run_sweep(sw: Sweep, store: Store, executor: Executor, *, proposer: Optional[Proposer] = None,
              retries: Optional[int] = None, retry_failed: bool = False,
              budget_points: Optional[int] = None, budget_time: Optional[float] = None,
              on_progress: Optional[Callable[[Progress], None]] = None,
              poll: float = 0.25) -> Progress:
    proposer = proposer or make_proposer(sw)
    retries = sw.spec.execution.retries if retries is None else retries
    if budget_points is None:
        budget_points = sw.spec.search.points
    if budget_time is None and sw.spec.search.time is not None:
        budget_time = parse_duration(sw.spec.search.time)

    # what earlier runs finished
    stored: dict[str, tuple[str, Optional[dict]]] = {}
    for r in store.rows(status=None):
        stored[r["id"]] = (r["status"], r["metrics"])
    done_before = {pid for pid, (st, _) in stored.items()
                   if st in ("ok", "infeasible") or (st == "failed" and not retry_failed)}
    evaluated = 0
    if sw.spec.search.method == "optuna":    # teach the study what is already known
        for r in store.rows(status=("ok", "infeasible", "failed")):
            p = point_of_row(sw, r)
            if p is not None and r["id"] in done_before:
                proposer.preload(p, r["status"], r["metrics"])
                evaluated += 1

    prog = Progress(total=proposer.total, budget_points=budget_points)
    if budget_points is not None and (prog.total is None or budget_points < prog.total):
        prog.total = budget_points
    inflight: dict[str, tuple[Point, int, dict]] = {}
    deadline = time.time() + budget_time if budget_time else None
    exhausted = False
    asks = 0
    max_asks = None if budget_points is None else 50 * budget_points + sw.size

    def notify():
        if on_progress is not None:
            on_progress(prog)

    notify()
    last_note = time.time()
    try:
        while True:
            # keep the executor fed: a little more than it can run at once
            while not exhausted and executor.inflight < 2 * executor.capacity:
                if budget_points is not None and evaluated + len(inflight) >= budget_points:
                    exhausted, prog.stopped_by = True, "points"
                    break
                if deadline is not None and time.time() >= deadline:
                    exhausted, prog.stopped_by = True, "time"
                    break
                if max_asks is not None and asks >= max_asks:
                    exhausted = True
                    break
                p = proposer.ask()
                asks += 1
                if p is None:
                    exhausted = True
                    break
                pid = sw.point_id(p)
                if pid in inflight:
                    continue
                if pid in done_before:
                    st, m = stored[pid]
                    if sw.spec.search.method != "optuna":
                        evaluated += 1
                        prog.resumed += 1
                    proposer.tell(p, st, m)
                    continue
                try:
                    why = sw.violated(p)
                except ExprEvalError as e:      # a constraint that cannot be evaluated here
                    _record(store, sw, p, "failed", error=str(e), attempts=0)
                    evaluated += 1
                    prog.done += 1
                    prog.failed += 1
                    proposer.tell(p, "failed", None)
                    notify()
                    continue
                if why is not None:
                    if stored.get(pid, (None,))[0] != "skipped":
                        _record(store, sw, p, "skipped", error=f"violates constraint: {why}")
                    prog.skipped += 1
                    proposer.tell(p, "skipped", None)
                    continue
                task = sw.task(p)
                inflight[pid] = (p, 1, task)
                executor.submit(task)
            if not inflight:
                break
            for task, out in executor.wait(timeout=poll):
                pid = task["id"]
                if pid not in inflight:       # not ours (cannot happen) or already handled
                    continue
                p, attempts, task = inflight[pid]
                if out.get("status") == "crashed":
                    if attempts <= retries:
                        inflight[pid] = (p, attempts + 1, task)
                        prog.retried += 1
                        executor.submit(task)
                        continue
                    out = dict(out, status="failed",
                               error=f"{out.get('error')}; gave up after {attempts} attempts")
                del inflight[pid]
                evaluated += 1
                prog.done += 1
                bad_values = nonfinite(out.get("metrics")) if out["status"] == "ok" else []
                if bad_values:     # never stored as a result (nor as invalid JSON)
                    out = dict(out, status="failed", metrics=None, error=nonfinite_message(bad_values))
                if out["status"] == "ok":
                    o = sw.evaluate_metrics(p, out["metrics"])
                    prog.measured += 1
                    for name, why in o.undefined.items():
                        prog.undefined[name] = prog.undefined.get(name, 0) + 1
                        prog.undefined_why.setdefault(name, why)
                    if o.error:
                        status, error = "failed", o.error
                    elif o.violated:
                        status, error = "infeasible", f"violates constraint: {o.violated}"
                    else:
                        status, error = "ok", None
                    _record(store, sw, p, status, metrics=o.metrics, out=out, attempts=attempts, error=error)
                    if status == "ok":
                        prog.ok += 1
                    elif status == "infeasible":
                        prog.infeasible += 1
                    else:
                        prog.failed += 1
                    proposer.tell(p, status, o.metrics if status != "failed" else None)
                elif out["status"] == "infeasible":     # the hardware cannot run the workload
                    _record(store, sw, p, "infeasible", out=out, attempts=attempts, error=out.get("error"))
                    prog.infeasible += 1
                    proposer.tell(p, "infeasible", None)
                else:
                    _record(store, sw, p, "failed", out=out, attempts=attempts, error=out.get("error"))
                    prog.failed += 1
                    proposer.tell(p, "failed", None)
                notify()
                last_note = time.time()
            if time.time() - last_note > 1.0:
                notify()
                last_note = time.time()
    finally:
        notify()
    return prog


def _record(store: Store, sw: Sweep, p: Point, status: str, *, metrics=None, out=None,
            attempts: int = 1, error=None) -> None:
    out = out or {}
    store.record(id=sw.point_id(p), status=status, workload=sw.workloads[p.workload].label,
                 fields=sw.fields(p), overrides=sw.task(p)["overrides"], metrics=metrics,
                 config=out.get("config"), workload_config=out.get("workload"), error=error,
                 attempts=attempts, archsim_version=out.get("archsim_version"), host=out.get("host"),
                 elapsed_s=out.get("elapsed_s"))
