"""Pareto fronts over stored sweep results."""
from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import numpy as np

from archsim.errors import ArchsimError, did_you_mean
from archsim.sweep import expr as _expr
from archsim.sweep.spec import MAXIMISED, METRIC_ALIASES


def pareto_mask(values: np.ndarray, goals: Sequence[str]) -> np.ndarray:
    """Boolean mask of the non-dominated rows of ``values`` (n x k).

    ``goals[j]`` is ``"min"`` or ``"max"``. A row is dominated when another row is at
    least as good in every column and strictly better in one. Exact duplicates of a
    front point are all on the front."""
    v = np.asarray(values, dtype=float)
    n = v.shape[0]
    if n == 0:
        return np.zeros(0, dtype=bool)
    sign = np.array([1.0 if g == "min" else -1.0 for g in goals])
    v = v * sign
    if v.shape[1] == 2:
        order = np.lexsort((v[:, 1], v[:, 0]))
        mask = np.zeros(n, dtype=bool)
        best_y = math.inf
        i = 0
        while i < n:     # rows with equal x form a group; only the group's best y can be on the front
            j = i
            x0 = v[order[i], 0]
            while j < n and v[order[j], 0] == x0:
                j += 1
            ys = v[order[i:j], 1]
            ymin = ys.min()
            if ymin < best_y:
                mask[order[i:j][ys == ymin]] = True
                best_y = ymin
            i = j
        return mask
    mask = np.ones(n, dtype=bool)
    for start in range(0, n, 512):
        blk = v[start:start + 512]
        le = (v[None, :, :] <= blk[:, None, :]).all(axis=2)
        lt = (v[None, :, :] < blk[:, None, :]).any(axis=2)
        mask[start:start + 512] = ~(le & lt).any(axis=1)
    return mask


def default_goal(name: str, objectives: Optional[list] = None) -> str:
    for o in objectives or []:
        if isinstance(o, dict) and o.get("metric") == name:
            return o.get("goal", "min")
    return "max" if name in MAXIMISED else "min"


def resolve_name(name: str, rows: list[dict]) -> str:
    """A metric or field name as stored (aliases like 'energy' -> 'energy_pj')."""
    known = set()
    for r in rows[:200]:
        known |= set(r.get("metrics") or {}) | set(r["fields"]) | {"workload"}
    if name in known:
        return name
    alias = METRIC_ALIASES.get(name)
    if alias in known:
        return alias
    raise ArchsimError(f"no metric or field named {name!r} in the results"
                       f"{did_you_mean(name, sorted(known | set(METRIC_ALIASES)))}; "
                       f"known: {', '.join(sorted(known))}")


def value(row: dict, name: str) -> Any:
    if name == "workload":
        return row["workload"]
    m = row.get("metrics") or {}
    if name in m:
        return m[name]
    return row["fields"].get(name)


def numeric(v: Any) -> Optional[float]:
    v = _expr.coerce(v)
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return None if math.isnan(v) or math.isinf(v) else v


def filter_rows(rows: list[dict], where: Optional[str]) -> list[dict]:
    if not where:
        return rows
    e = _expr.parse(where, "--where")
    out = []
    for r in rows:
        env = {"workload": r["workload"], **r["fields"], **(r.get("metrics") or {})}
        for a, real in METRIC_ALIASES.items():
            if real in env and a not in env:
                env[a] = env[real]
        try:
            if e(env):
                out.append(r)
        except _expr.ExprEvalError as err:
            raise ArchsimError(f"--where: {err}") from None
    return out


def front(rows: list[dict], x: str, y: str, gx: str, gy: str) -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Rows with numeric x and y, their (n, 2) values and the Pareto mask."""
    keep, vals = [], []
    for r in rows:
        a, b = numeric(value(r, x)), numeric(value(r, y))
        if a is not None and b is not None:
            keep.append(r)
            vals.append((a, b))
    arr = np.array(vals, dtype=float).reshape(-1, 2)
    return keep, arr, pareto_mask(arr, [gx, gy])


def varying_fields(rows: list[dict], hide=frozenset()) -> list[str]:
    """Fields (and 'workload') whose value differs between rows, in first-seen order;
    ``hide`` names fields not to show (those behind a named zip's label)."""
    names: list[str] = []
    for r in rows:
        for k in ["workload", *r["fields"]]:
            if k not in names and k not in hide:
                names.append(k)
    out = []
    for k in names:
        vals = {repr(value(r, k) if k != "workload" else r["workload"]) for r in rows}
        if len(vals) > 1:
            out.append(k)
    return out


def label(row: dict, names: list[str]) -> str:
    parts = []
    for k in names:
        v = row["workload"] if k == "workload" else row["fields"].get(k)
        short = k.split(".")[-1] if k != "workload" else "wl"
        parts.append(f"{short}={v}")
    return ", ".join(parts)
