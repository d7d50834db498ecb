"""Search strategies: which points to run, in which order.

A proposer hands out points with :meth:`ask` and learns outcomes through :meth:`tell`.
Grid and random search are fixed sequences (the same for the same spec and seed, so a
resumed sweep walks the same points); Optuna adapts to the results it is told.
"""
from __future__ import annotations

from typing import Any, Iterator, Optional

import numpy as np

from archsim.errors import ArchsimError
from archsim.sweep.spec import Point, Sweep


class Proposer:
    #: total points this proposer may hand out (None: unknown)
    total: Optional[int] = None

    def ask(self) -> Optional[Point]:
        """The next point, or None when there are no more."""
        raise NotImplementedError

    def tell(self, point: Point, status: str, metrics: Optional[dict]) -> None:
        pass

    def preload(self, point: Point, status: str, metrics: Optional[dict]) -> None:
        """A point finished in an earlier run of the same sweep (resume)."""
        self.tell(point, status, metrics)


class GridSearch(Proposer):
    def __init__(self, sw: Sweep):
        self.total = sw.size
        self._it: Iterator[Point] = sw.grid()

    def ask(self) -> Optional[Point]:
        return next(self._it, None)


class RandomSearch(Proposer):
    """Points drawn without replacement with a seeded generator; a fixed sequence."""

    def __init__(self, sw: Sweep, seed: int = 0):
        self.sw = sw
        self.total = sw.size
        self._rng = np.random.default_rng(seed)
        if sw.size <= 2_000_000:
            self._perm: Optional[np.ndarray] = self._rng.permutation(sw.size)
        else:
            self._perm = None
            self._seen: set[int] = set()
        self._i = 0

    def ask(self) -> Optional[Point]:
        if self._i >= self.sw.size:
            return None
        if self._perm is not None:
            idx = int(self._perm[self._i])
        else:
            while True:
                idx = int(self._rng.integers(self.sw.size))
                if idx not in self._seen:
                    self._seen.add(idx)
                    break
        self._i += 1
        return self.sw.point_at(idx)


class OptunaSearch(Proposer):
    """Optuna ask-and-tell: TPE for one objective, NSGA-II for several (``sampler: auto``).

    One study per workload, asked in turn, so every workload gets its share of the
    budget. A proposal that repeats a finished point is answered from the known result
    without running it again."""

    MAX_REPEATS = 200

    def __init__(self, sw: Sweep, seed: int = 0, sampler: str = "auto"):
        try:
            import optuna
        except ImportError:
            raise ArchsimError("optuna search needs optuna: pip install 'archsim[dist]'") from None
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.optuna = optuna
        self.sw = sw
        self.total = None
        directions = ["minimize" if o.goal == "min" else "maximize" for o in sw.objectives]
        self.studies = []
        for w in range(len(sw.workloads)):
            s = seed + 7919 * w
            if sampler == "auto":
                kind = "tpe" if len(directions) == 1 else "nsga2"
            else:
                kind = sampler
            if kind == "tpe":
                smp = optuna.samplers.TPESampler(seed=s, n_startup_trials=10)
            elif kind == "nsga2":
                smp = optuna.samplers.NSGAIISampler(seed=s, population_size=max(8, min(50, sw.size // 4 or 8)))
            else:
                smp = optuna.samplers.RandomSampler(seed=s)
            self.studies.append(optuna.create_study(directions=directions, sampler=smp))
        self.dists = {}
        for a in sw.axes:
            if a.ordered:
                self.dists[a.name] = optuna.distributions.IntDistribution(0, len(a) - 1)
            else:
                self.dists[a.name] = optuna.distributions.CategoricalDistribution(list(range(len(a))))
        self._turn = 0
        self._known: dict[str, Any] = {}          # point id -> objective values, or None (failed)
        self._waiting: dict[str, list] = {}       # point id -> trials waiting for its result
        self._exhausted = False

    def _values(self, status: str, metrics: Optional[dict]):
        if status != "ok" or not metrics:
            return None
        return self.sw.objective_values(metrics)

    def _finish(self, study, trial, values) -> None:
        if values is None:
            study.tell(trial, state=self.optuna.trial.TrialState.FAIL)
        else:
            study.tell(trial, values if len(values) > 1 else values[0])

    def ask(self) -> Optional[Point]:
        if self._exhausted:
            return None
        for _ in range(self.MAX_REPEATS):
            w = self._turn % len(self.studies)
            self._turn += 1
            study = self.studies[w]
            trial = study.ask(self.dists)
            steps = tuple(int(trial.params[a.name]) for a in self.sw.axes)
            p = Point(w, steps)
            pid = self.sw.point_id(p)
            if pid in self._known:
                self._finish(study, trial, self._known[pid])
                continue
            if pid in self._waiting:
                self._waiting[pid].append((study, trial))
                continue
            self._waiting[pid] = [(study, trial)]
            return p
        # every recent proposal repeated a known point: the space is (nearly) covered
        self._exhausted = True
        return None

    def tell(self, point: Point, status: str, metrics: Optional[dict]) -> None:
        pid = self.sw.point_id(point)
        vals = self._values(status, metrics)
        self._known[pid] = vals
        for study, trial in self._waiting.pop(pid, []):
            self._finish(study, trial, vals)

    def preload(self, point: Point, status: str, metrics: Optional[dict]) -> None:
        pid = self.sw.point_id(point)
        vals = self._values(status, metrics)
        self._known[pid] = vals
        params = {a.name: int(s) for a, s in zip(self.sw.axes, point.steps)}
        state = self.optuna.trial.TrialState.COMPLETE if vals is not None else self.optuna.trial.TrialState.FAIL
        t = self.optuna.trial.create_trial(params=params, distributions=self.dists, state=state,
                                           values=vals if vals is not None else None)
        self.studies[point.workload].add_trial(t)


def make_proposer(sw: Sweep, method: Optional[str] = None, seed: Optional[int] = None,
                  sampler: Optional[str] = None) -> Proposer:
    method = method or sw.spec.search.method
    seed = sw.spec.search.seed if seed is None else seed
    if method == "grid":
        return GridSearch(sw)
    if method == "random":
        return RandomSearch(sw, seed)
    if method == "optuna":
        return OptunaSearch(sw, seed, sampler or sw.spec.search.sampler)
    raise ArchsimError(f"unknown search method {method!r} (expected grid, random or optuna)")


def point_of_row(sw: Sweep, row: dict) -> Optional[Point]:
    """The point of ``sw`` that a stored row describes, or None if it is not in this sweep."""
    labels = {w.label: i for i, w in enumerate(sw.workloads)}
    w = labels.get(row["workload"])
    if w is None:
        return None
    fields = row["fields"]
    steps = []
    for a in sw.axes:
        step = tuple(fields.get(f) for f in a.fields)
        try:
            steps.append(a.values.index(step))
        except ValueError:
            return None
    p = Point(w, tuple(steps))
    return p if sw.point_id(p) == row["id"] else None
