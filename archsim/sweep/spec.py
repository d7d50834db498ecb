"""Sweep specifications (YAML) and their compiled form.

A spec names a base hardware description, one or more workloads, axes over any
config or workload field, constraints, derived metrics, objectives and a search
method; see ``docs/sweeps.md``. :func:`load_spec` reads and checks the YAML (pydantic,
every problem with its dotted path); :func:`compile_spec` resolves the base
configurations through the evaluator, checks every axis field and value and every
name in the expressions, and returns a :class:`Sweep` that enumerates points.
"""
from __future__ import annotations

import hashlib
import importlib
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from archsim.config.loader import load_yaml_file
from archsim.errors import ArchsimError, ConfigError, InputFileError, did_you_mean
from archsim.sweep import expr as _expr

DEFAULT_EVALUATOR = "archsim.sweep.backend"

#: Short names accepted wherever a metric is named.
METRIC_ALIASES = {
    "energy": "energy_pj", "area": "area_mm2", "power": "power_w", "latency": "seconds",
    "time": "seconds", "tps": "tokens_per_s", "util": "utilization",
}
#: Metrics where larger is better (used when a goal is not given).
MAXIMISED = {"tokens_per_s", "utilization", "tops", "tokens_per_s_per_mm2", "tokens_per_j"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WorkloadEntry(_Strict):
    workload: Union[str, dict] = Field(..., description="workload name, path or inline mapping")
    label: Optional[str] = Field(None, description="name of this workload in results and plots")
    set: dict[str, Any] = Field(default_factory=dict,
                                description="workload fields to set, e.g. {phase: decode, batch: 8}")


class ArchEntry(_Strict):
    """One hardware description of a sweep over several: a preset, path or inline mapping with
    its own overrides, e.g. ``{arch: neupims, label: npu+pim-serial, set: {schedule: serial}}``."""
    arch: Union[str, dict] = Field(..., description="preset name, path or inline mapping")
    label: Optional[str] = Field(None, description="name of this hardware in results and plots")
    set: dict[str, Any] = Field(default_factory=dict,
                                description="fields of this hardware to set, dotted path -> value")


def _arch_entry(src, where: str) -> ArchEntry:
    """``src`` of ``arch`` / ``arch[i]`` as an entry: a mapping with an ``arch`` key is an entry
    (checked), anything else the hardware itself with no overrides of its own."""
    if isinstance(src, dict) and "arch" in src:
        try:
            return ArchEntry.model_validate(src)
        except ValidationError as e:
            raise ConfigError([(".".join([where] + [str(x) for x in err["loc"]]), err["msg"])
                               for err in e.errors()]) from None
    return ArchEntry(arch=src)


class Objective(_Strict):
    metric: str
    goal: Literal["min", "max"] = "min"


class SearchSpec(_Strict):
    method: Literal["grid", "random", "optuna"] = "grid"
    points: Optional[int] = Field(None, ge=1, description="budget in evaluated points")
    time: Optional[Union[str, float]] = Field(None, description="budget in wall time ('30 s', '10 min', '2 h')")
    seed: int = 0
    sampler: Literal["auto", "tpe", "nsga2", "random"] = "auto"

    @field_validator("time")
    @classmethod
    def _time(cls, v):
        if v is None:
            return v
        if not 0 < parse_duration(v) < math.inf:
            raise ValueError(f"expected a positive duration, got {v!r}")
        return v


class ExecutionSpec(_Strict):
    retries: int = Field(2, ge=0, description="re-runs of a point whose worker died")


class EvaluatorSpec(_Strict):
    module: str = DEFAULT_EVALUATOR
    options: dict[str, Any] = Field(default_factory=dict)


class SweepSpec(_Strict):
    name: Optional[str] = None
    description: Optional[str] = None
    arch: Union[str, dict, list[Union[str, dict]]] = Field(
        ..., description="base hardware: preset name, path or mapping, or {arch, label, set} with "
                         "overrides of its own; a list sweeps over them")
    set: dict[str, Any] = Field(default_factory=dict, description="base overrides, dotted path -> value")
    workloads: list[Union[str, WorkloadEntry]] = Field(..., min_length=1)
    axes: Union[dict[str, Any], list[dict[str, Any]]] = Field(default_factory=dict)
    constraints: list[str] = Field(default_factory=list)
    metrics: dict[str, str] = Field(default_factory=dict, description="derived metrics: name -> expression")
    objectives: list[Union[str, Objective]] = Field(default_factory=lambda: ["min cycles", "min energy_pj"])
    search: SearchSpec = Field(default_factory=SearchSpec)
    execution: ExecutionSpec = Field(default_factory=ExecutionSpec)
    evaluator: EvaluatorSpec = Field(default_factory=EvaluatorSpec)

    @model_validator(mode="before")
    @classmethod
    def _single_workload(cls, data):
        if isinstance(data, dict) and "workload" in data and "workloads" not in data:
            data = dict(data)
            data["workloads"] = [data.pop("workload")]
        return data


# --------------------------------------------------------------------------- helpers

_DUR = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?\s*$")


def parse_duration(v) -> float:
    """Seconds from ``90``, ``"30 s"``, ``"10 min"``, ``"2 h"``."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    m = _DUR.match(str(v))
    if not m:
        raise ValueError(f"cannot read {v!r} as a duration (e.g. '30 s', '10 min', '2 h')")
    unit = (m.group(2) or "s")[0]
    return float(m.group(1)) * {"s": 1.0, "m": 60.0, "h": 3600.0}[unit]


def format_value(v: Any) -> str:
    """The override text for a value, read back as the same value by YAML (1.1, as PyYAML)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return ".nan"
        if math.isinf(v):
            return ".inf" if v > 0 else "-.inf"
        r = repr(v)
        if "e" in r:
            mant, _, exp = r.partition("e")
            if "." not in mant:
                mant += ".0"
            if exp[0] not in "+-":
                exp = "+" + exp
            r = f"{mant}e{exp}"
        return r
    if isinstance(v, str):
        try:
            if yaml.safe_load(v) == v and "\n" not in v and v.isprintable():
                return v
        except yaml.YAMLError:
            pass
        return yaml.safe_dump(v, default_style='"', width=10**9).strip()
    return json.dumps(v, sort_keys=True)


def canonical_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """Nested mapping -> {dotted path: leaf value}; a sub-mapping's own path is kept too."""
    out: dict[str, Any] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            p = f"{prefix}.{k}" if prefix else str(k)
            out[p] = v
            if isinstance(v, dict):
                out.update(flatten(v, p))
    return out


def load_evaluator(module: str):
    """Import an evaluator module and check it has the entry points a sweep calls."""
    if not isinstance(module, str) or not module.strip():
        raise ConfigError([("evaluator.module", "expected an importable module name")])
    try:
        mod = importlib.import_module(module)
    except ImportError as e:
        raise ConfigError([("evaluator.module", f"cannot import {module!r}: {e}")]) from None
    except Exception as e:  # the module itself raised while importing
        raise ConfigError([("evaluator.module", f"importing {module!r} failed: {type(e).__name__}: {e}")]) from None
    missing = [f for f in ("resolve", "evaluate") if not callable(getattr(mod, f, None))]
    if missing:
        raise ConfigError([("evaluator.module", f"{module!r} is not a sweep evaluator: it has no "
                                                f"{' and no '.join(f + '()' for f in missing)} (an evaluator "
                                                f"defines resolve(arch, workload, overrides) and "
                                                f"evaluate(arch, workload, overrides, options))")])
    return mod


# --------------------------------------------------------------------------- axes

@dataclass(frozen=True)
class Axis:
    """One sweep dimension: one field, or several zipped fields moving together."""

    fields: tuple[str, ...]
    values: tuple[tuple[Any, ...], ...]   # one tuple per step, aligned with ``fields``
    label: Optional[str] = None            # a named zip: its step names are stored as this field
    labels: Optional[tuple[str, ...]] = None

    @property
    def name(self) -> str:
        return self.label or "+".join(self.fields)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def ordered(self) -> bool:
        """True when every value is a number or a quantity (an ordered optuna parameter)."""
        return all(isinstance(_expr.coerce(x), (int, float)) and not isinstance(x, bool)
                   for step in self.values for x in step)


def _num(v, where):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ConfigError([(where, f"expected a number, got {v!r}")])
    return v


def _expand(defn: Any, where: str, unique: bool = True) -> list:
    """Values of one axis definition: a list, a scalar, or a range/logrange mapping."""
    if isinstance(defn, list):
        vals = list(defn)
    elif isinstance(defn, dict):
        keys = set(defn)
        unit = defn.get("unit")
        allowed = {"values", "range", "logrange", "step", "num", "factor", "unit"}
        extra = keys - allowed
        if extra:
            k = sorted(extra)[0]
            raise ConfigError([(f"{where}.{k}", f"unknown axis key{did_you_mean(k, allowed)}")])
        kinds = [k for k in ("values", "range", "logrange") if k in defn]
        if len(kinds) != 1:
            raise ConfigError([(where, "an axis needs exactly one of 'values', 'range' or 'logrange'")])
        kind = kinds[0]
        if kind == "values":
            vals = defn["values"]
            if not isinstance(vals, list):
                vals = [vals]
            vals = list(vals)
        else:
            rng = defn[kind]
            if not (isinstance(rng, list) and len(rng) in (2, 3)):
                raise ConfigError([(f"{where}.{kind}", "expected [start, stop] or [start, stop, step]")])
            start = _num(rng[0], f"{where}.{kind}")
            stop = _num(rng[1], f"{where}.{kind}")
            if kind == "range":
                step = _num(rng[2] if len(rng) == 3 else defn.get("step", 1), f"{where}.step")
                if step == 0:
                    raise ConfigError([(f"{where}.step", "step must not be zero")])
                n = int(math.floor((stop - start) / step + 1e-9)) + 1
                vals = [start + i * step for i in range(max(n, 0))]
            else:
                if start <= 0 or stop <= 0:
                    raise ConfigError([(f"{where}.logrange", "start and stop must be positive")])
                if "num" in defn:
                    num = defn["num"]
                    if not isinstance(num, int) or num < 1:
                        raise ConfigError([(f"{where}.num", "expected a positive integer")])
                    if num == 1:
                        vals = [start]
                    else:
                        r = (stop / start) ** (1.0 / (num - 1))
                        vals = [start * r ** i for i in range(num)]
                        if isinstance(start, int) and isinstance(stop, int):
                            vals = [int(round(x)) for x in vals]
                        else:
                            vals = [float(f"{x:.6g}") for x in vals]
                else:
                    factor = _num(rng[2] if len(rng) == 3 else defn.get("factor", 2), f"{where}.factor")
                    if factor <= 1:
                        raise ConfigError([(f"{where}.factor", "factor must be > 1")])
                    vals, x = [], start
                    while x <= stop * (1 + 1e-9):
                        vals.append(x)
                        x = x * factor
                    if all(isinstance(v, int) for v in (start, factor)):
                        vals = [int(v) for v in vals]
            if isinstance(start, float) or isinstance(stop, float):
                vals = [float(f"{v:.12g}") if isinstance(v, float) else v for v in vals]
        if unit is not None:
            vals = [f"{v:g} {unit}" if isinstance(v, (int, float)) and not isinstance(v, bool) else v
                    for v in vals]
    else:
        vals = [defn]
    for i, v in enumerate(vals):
        if not isinstance(v, (int, float, str, bool)) or v is None:
            raise ConfigError([(f"{where}[{i}]", f"axis values must be numbers, strings or booleans, got {v!r}")])
    if not vals:
        raise ConfigError([(where, "empty axis: it has no values, so the sweep would have no points")])
    if unique and len(set(map(canonical_json, vals))) != len(vals):
        dup = next(v for i, v in enumerate(vals) if v in vals[:i])
        raise ConfigError([(where, f"duplicate value {dup!r} in axis")])
    return vals


def _zip_axis(defn: Any, where: str) -> Axis:
    if isinstance(defn, dict):
        items = list(defn.items())
    elif isinstance(defn, list):
        items = []
        for i, a in enumerate(defn):
            if not (isinstance(a, dict) and "field" in a):
                raise ConfigError([(f"{where}[{i}]", "expected a mapping with 'field'")])
            a = dict(a)
            items.append((a.pop("field"), a if set(a) != {"values"} else a["values"]))
    else:
        raise ConfigError([(where, "zip expects a mapping field -> values or a list of axes")])
    if len(items) < 2:
        raise ConfigError([(where, "zip needs at least two fields")])
    fields, cols = [], []
    for f, d in items:
        fields.append(str(f))
        cols.append(_expand(d, f"{where}.{f}", unique=False))
    n = {len(c) for c in cols}
    if len(n) != 1:
        lens = ", ".join(f"{f}: {len(c)}" for f, c in zip(fields, cols))
        raise ConfigError([(where, f"zipped axes must have equal lengths ({lens})")])
    steps = list(zip(*cols))
    if len(set(map(canonical_json, steps))) != len(steps):
        raise ConfigError([(where, "two steps of the zipped axis have the same values")])
    return Axis(tuple(fields), tuple(steps))


def _named_zip(name: str, item: dict, where: str) -> Axis:
    extra = set(item) - {"zip", "labels", "name"}
    if extra:
        k = sorted(extra)[0]
        raise ConfigError([(f"{where}.{k}", f"unknown key in a named zip{did_you_mean(k, ['zip', 'labels'])}")])
    a = _zip_axis(item["zip"], f"{where}.zip")
    labels = item.get("labels")
    if labels is None:
        raise ConfigError([(f"{where}.labels", "a named zip needs 'labels', one per step")])
    if not isinstance(labels, list) or len(labels) != len(a):
        raise ConfigError([(f"{where}.labels", f"expected a list of {len(a)} labels, one per step")])
    labels = tuple(str(x) for x in labels)
    if len(set(labels)) != len(labels):
        raise ConfigError([(f"{where}.labels", "labels must be distinct")])
    if "." in name or name == "workload":
        raise ConfigError([(where, f"the name of a zipped axis is a plain word (got {name!r})")])
    return Axis(a.fields, a.values, name, labels)


def parse_axes(raw: Union[dict, list]) -> list[Axis]:
    axes: list[Axis] = []
    if isinstance(raw, dict):
        for k, d in raw.items():
            where = f"axes.{k}"
            if isinstance(d, dict) and "zip" in d:
                axes.append(_named_zip(str(k), d, where))
            elif str(k).startswith("zip"):
                axes.append(_zip_axis(d, where))
            else:
                axes.append(Axis((str(k),), tuple((v,) for v in _expand(d, where))))
    else:
        for i, item in enumerate(raw):
            where = f"axes[{i}]"
            if "zip" in item:
                if "name" in item or "labels" in item:
                    axes.append(_named_zip(str(item.get("name", "")), item, where))
                    continue
                if set(item) != {"zip"}:
                    raise ConfigError([(where, "a zip axis has only the keys 'zip', 'name' and 'labels'")])
                axes.append(_zip_axis(item["zip"], f"{where}.zip"))
                continue
            if "field" not in item:
                raise ConfigError([(where, "an axis needs 'field' (a dotted config or workload path)")])
            item = dict(item)
            f = str(item.pop("field"))
            axes.append(Axis((f,), tuple((v,) for v in _expand(item, f"axes.{f}"))))
    seen: set[str] = set()
    for a in axes:
        for f in a.fields + ((a.label,) if a.label else ()):
            if f in seen:
                raise ConfigError([(f"axes.{f}", "field appears on more than one axis")])
            seen.add(f)
    return axes


# --------------------------------------------------------------------------- loading

def _format_validation(e: ValidationError) -> list[tuple[str, str]]:
    probs = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"] if not str(x).startswith("function-after"))
        # drop pydantic's union branch names from the path
        loc = re.sub(r"\.(str|dict\[str,any\]|list\[dict\[str,any\]\]|WorkloadEntry|Objective)\b", "", loc)
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            fields = list(SweepSpec.model_fields) if "." not in loc else []
            msg = f"unknown field{did_you_mean(loc.split('.')[-1], fields)}"
        probs.append((loc, msg))
    # keep one message per path
    seen, out = set(), []
    for p, m in probs:
        if p not in seen:
            seen.add(p)
            out.append((p, m))
    return out


def load_spec(source: Union[str, Path, dict]) -> tuple[SweepSpec, Path]:
    """Read a sweep spec (path or mapping). Returns the spec and its folder."""
    if isinstance(source, dict):
        data, base, where = source, Path.cwd(), "<dict>"
    else:
        path = Path(source)
        data = load_yaml_file(path)
        base, where = path.resolve().parent, str(path)
    try:
        spec = SweepSpec.model_validate(data)
    except ValidationError as e:
        raise ConfigError(_format_validation(e), source=where) from None
    return spec, base


# --------------------------------------------------------------------------- compiled sweep

@dataclass(frozen=True)
class Point:
    """One design point: a workload (index) and one step of every axis."""

    workload: int
    steps: tuple[int, ...]


@dataclass
class WorkloadInfo:
    """One base of the sweep: a hardware description and a workload (with their overrides)."""

    label: str
    source: Union[str, dict]
    overrides: list[str]            # base + workload overrides (all "workload." ones included)
    config: dict                    # resolved base arch (for fields not on an axis)
    workload: dict                  # resolved base workload
    key: str                        # hash of the resolved base
    env: Optional[dict] = None      # flattened base fields (filled on first use)
    arch: Union[str, dict, None] = None
    arch_label: Optional[str] = None  # set when the spec lists several archs


@dataclass
class Sweep:
    spec: SweepSpec
    workloads: list[WorkloadInfo]
    axes: list[Axis]
    pre_constraints: list[_expr.Expr]
    post_constraints: list[_expr.Expr]
    derived: dict[str, _expr.Expr]
    objectives: list[Objective]
    evaluator: str
    options: dict = field(default_factory=dict)
    metric_names: frozenset = frozenset()   # the evaluator's metrics and their aliases

    # -- geometry
    @property
    def dims(self) -> list[int]:
        return [len(self.workloads)] + [len(a) for a in self.axes]

    @property
    def size(self) -> int:
        return math.prod(self.dims)

    def point_at(self, index: int) -> Point:
        """The index-th point of the grid (workload outermost, last axis fastest)."""
        steps = []
        for d in reversed(self.dims[1:]):
            index, r = divmod(index, d)
            steps.append(r)
        return Point(index, tuple(reversed(steps)))

    def grid(self):
        for w in range(len(self.workloads)):
            for steps in itertools.product(*[range(len(a)) for a in self.axes]):
                yield Point(w, steps)

    # -- per point
    def values(self, p: Point) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for a, s in zip(self.axes, p.steps):
            out.update(zip(a.fields, a.values[s]))
        return out

    def fields(self, p: Point) -> dict[str, Any]:
        """What a results row stores: zipped-axis labels, then every axis field's value."""
        out: dict[str, Any] = {}
        w = self.workloads[p.workload]
        if w.arch_label is not None:
            out["arch"] = w.arch_label
        for a, s in zip(self.axes, p.steps):
            if a.label:
                out[a.label] = a.labels[s]
        out.update(self.values(p))
        return out

    def overrides(self, p: Point) -> list[str]:
        return [f"{k}={format_value(v)}" for k, v in self.values(p).items()]

    def point_id(self, p: Point) -> str:
        ident = {"evaluator": self.evaluator, "base": self.workloads[p.workload].key,
                 "overrides": sorted(self.overrides(p))}
        return hashlib.sha256(canonical_json(ident).encode()).hexdigest()[:24]

    def task(self, p: Point) -> dict:
        w = self.workloads[p.workload]
        return {"id": self.point_id(p), "arch": w.arch, "workload": w.source,
                "overrides": w.overrides + self.overrides(p),
                "evaluator": self.evaluator, "options": self.options}

    def field_env(self, p: Point) -> dict[str, Any]:
        """Field values for expressions: base values, then this point's axis values."""
        w = self.workloads[p.workload]
        env = dict(_base_env(w))
        env.update(self.fields(p))
        env["workload"] = w.label
        env.setdefault("arch", w.arch_label or (w.arch if isinstance(w.arch, str) else "arch"))
        return env

    def violated(self, p: Point) -> Optional[str]:
        """The first constraint (over fields only) that ``p`` violates, or None. A constraint
        that cannot be evaluated on ``p`` raises :class:`ExprEvalError` naming it."""
        if not self.pre_constraints:
            return None
        env = self.field_env(p)
        for c in self.pre_constraints:
            try:
                ok = c(env)
            except _expr.ExprEvalError as e:
                raise _expr.ExprEvalError(f"{c.where}: {e}", cause=e.cause) from None
            if not ok:
                return c.text
        return None

    def evaluate_metrics(self, p: Point, metrics: dict[str, Any]) -> "MetricsOutcome":
        """Add the derived metrics to a point's ``metrics`` and check the constraints over metrics.

        A derived metric that is undefined on this point (division by zero, a math domain
        error, an overflow, a non-finite or complex result, an undefined input) is stored
        as None and reported in ``undefined``; a constraint that cannot be evaluated is an
        ``error`` naming it (``constraints[i]: ...``), not a violation."""
        env = self.field_env(p)
        m = dict(metrics)
        env.update(m)
        for alias, real in METRIC_ALIASES.items():
            if real in m and alias not in env:
                env[alias] = m[real]
        undefined: dict[str, str] = {}
        for name, e in self.derived.items():
            try:
                v = e(env)
                why = _undefined_value(v)
            except _expr.ExprEvalError as err:
                v, why = None, _why(err, e, env)
            if why is not None:
                v = None
                undefined[name] = why
            m[name] = v
            env[name] = v
        for c in self.post_constraints:
            try:
                ok = c(env)
            except _expr.ExprEvalError as err:
                return MetricsOutcome(m, None, f"{c.where}: {_why(err, c, env)}", undefined)
            if not ok:
                return MetricsOutcome(m, c.text, None, undefined)
        return MetricsOutcome(m, None, None, undefined)

    def finish(self, p: Point, metrics: dict[str, Any]) -> tuple[dict[str, Any], Optional[str]]:
        """Add derived metrics; return (metrics, first violated metric constraint or None).
        A constraint that cannot be evaluated raises :class:`ExprEvalError` naming it."""
        o = self.evaluate_metrics(p, metrics)
        if o.error:
            raise _expr.ExprEvalError(o.error)
        return o.metrics, o.violated

    # -- checks before anything runs
    PROBE_LIMIT = 10_000
    #: made-up metric values for checking expressions over metrics before any point has run
    PROBES = (0.37, 1000.5, 7.3e9, 3.1e17, 5.5e40)

    def describe(self, p: Point, names=None) -> str:
        """'workload 'w', field=value, ...' (only the axes that ``names`` read, if given)."""
        parts = [f"workload {self.workloads[p.workload].label!r}"]
        for a, s in zip(self.axes, p.steps):
            if names is None or set(a.fields) & names or (a.label and a.label in names):
                if a.label:
                    parts.append(f"{a.label}={a.labels[s]!r}")
                else:
                    parts.extend(f"{f}={v!r}" for f, v in zip(a.fields, a.values[s]))
        return ", ".join(parts)

    def _points_reading(self, names: set[str]):
        """One point per combination of workload and the values of the axes ``names`` read
        (other axes at their first value); only the first point of each workload when that
        is more than PROBE_LIMIT points."""
        rel = [k for k, a in enumerate(self.axes)
               if set(a.fields) & names or (a.label and a.label in names)]
        n = len(self.workloads) * math.prod(len(self.axes[k]) for k in rel)
        zero = (0,) * len(self.axes)
        for w in range(len(self.workloads)):
            if n > self.PROBE_LIMIT:
                yield Point(w, zero)
                continue
            for combo in itertools.product(*(range(len(self.axes[k])) for k in rel)):
                steps = list(zero)
                for k, s in zip(rel, combo):
                    steps[k] = s
                yield Point(w, tuple(steps))

    def check_expressions(self) -> None:
        """Evaluate every constraint and derived metric before anything runs, so that one
        that can only fail (``array.rows < 'abc'``, ``array.rows / 0 < 1``) is a ConfigError
        naming it (``constraints[i]``, ``metrics.NAME``), not a failure half way.

        Constraints over fields are evaluated on every combination of the values they read
        (up to PROBE_LIMIT points). Derived metrics and constraints over metrics are
        evaluated on the first point of every workload with made-up metric values: a
        constraint that fails for all of them, or a derived metric whose operands have the
        wrong type for all of them, is an error. (A derived metric that is merely undefined,
        like ``cycles / 0``, is not: it is stored as null and reported after the run.)"""
        for c in self.pre_constraints:
            for p in self._points_reading(c.names):
                try:
                    c(self.field_env(p))
                except _expr.ExprEvalError as e:
                    raise ConfigError([(c.where, f"{e} (at {self.describe(p, c.names)})")]) from None
        if not self.derived and not self.post_constraints:
            return
        for w in range(len(self.workloads)):
            p = Point(w, (0,) * len(self.axes))
            base = self.field_env(p)
            fails: dict[str, list] = {}
            for v in self.PROBES:
                env = dict(base)
                env.update({m: v for m in self.metric_names | set(METRIC_ALIASES.values())})
                unknown: set[str] = set()
                for name, e in self.derived.items():
                    if e.names & unknown:
                        unknown.add(name)
                        env[name] = None
                        continue
                    try:
                        val = e(env)
                    except _expr.ExprEvalError as err:
                        if err.cause is TypeError:
                            fails.setdefault(e.where, []).append(err)
                        val = None
                    if _undefined_value(val) is not None:
                        unknown.add(name)
                        val = None
                    env[name] = val
                for c in self.post_constraints:
                    if c.names & unknown:
                        continue
                    try:
                        c(env)
                    except _expr.ExprEvalError as err:
                        fails.setdefault(c.where, []).append(err)
            for where, errs in fails.items():
                if len(errs) == len(self.PROBES):
                    raise ConfigError([(where, f"{errs[0]} (whatever the values of the metrics it reads)")])

    def objective_values(self, metrics: dict[str, Any]) -> Optional[list[float]]:
        out = []
        for o in self.objectives:
            v = metrics.get(o.metric)
            if v is None or not isinstance(v, (int, float)) or math.isnan(float(v)):
                return None
            out.append(float(v))
        return out


@dataclass
class MetricsOutcome:
    """What :meth:`Sweep.evaluate_metrics` found for one point."""

    metrics: dict[str, Any]
    violated: Optional[str] = None    # text of the first violated constraint over metrics
    error: Optional[str] = None       # a constraint that could not be evaluated ("constraints[i]: ...")
    undefined: dict[str, str] = field(default_factory=dict)   # derived metric -> why it is undefined


def _undefined_value(v: Any) -> Optional[str]:
    """Why a derived metric's value cannot be stored (None when it can)."""
    if v is None:
        return "undefined"
    if isinstance(v, complex):
        return f"not a real number ({v})"
    if isinstance(v, float) and not math.isfinite(v):
        return f"not finite ({v})"
    return None


def _why(err: "_expr.ExprEvalError", e: "_expr.Expr", env: dict) -> str:
    nulls = sorted(n for n in e.names if n in env and env[n] is None)
    if nulls and err.cause is TypeError:
        return (f"cannot evaluate {e.text!r}: {', '.join(nulls)} "
                f"{'is' if len(nulls) == 1 else 'are'} undefined (null) for this point")
    return str(err)


def _base_env(w: WorkloadInfo) -> dict:
    if w.env is None:
        env = dict(flatten(w.config))
        env.update({f"workload.{k}": v for k, v in flatten(w.workload).items()})
        w.env = env
    return w.env


def _objective(o: Union[str, Objective], i: int) -> Objective:
    if isinstance(o, Objective):
        return o
    parts = str(o).split()
    if len(parts) == 2 and parts[0].lower() in ("min", "max", "minimise", "minimize", "maximise", "maximize"):
        return Objective(metric=parts[1], goal="min" if parts[0].lower().startswith("min") else "max")
    if len(parts) == 1:
        m = parts[0]
        return Objective(metric=m, goal="max" if METRIC_ALIASES.get(m, m) in MAXIMISED else "min")
    raise ConfigError([(f"objectives[{i}]", f"expected 'min METRIC' or 'max METRIC', got {o!r}")])


def _workload_label(src, sets: dict) -> str:
    base = Path(src).stem if isinstance(src, str) else str(src.get("name", "workload"))
    if sets:
        base += "-" + ",".join(f"{k}={v}" for k, v in sets.items())
    return base


def _resolve_path(v, base: Path):
    if isinstance(v, str):
        p = base / v
        if not Path(v).is_absolute() and p.is_file():
            return str(p)
    return v


def compile_spec(spec: SweepSpec, base_dir: Path = Path("."), evaluator: Optional[str] = None,
                 check_values: bool = True) -> Sweep:
    """Resolve and check everything a run needs; raise ConfigError on any problem."""
    module = evaluator or spec.evaluator.module
    ev = load_evaluator(module)
    axes = parse_axes(spec.axes)
    multi = isinstance(spec.arch, list) and len(spec.arch) > 1
    if isinstance(spec.arch, list):
        archs = [_arch_entry(a, f"arch[{i}]" if multi else "arch") for i, a in enumerate(spec.arch)]
    else:
        archs = [_arch_entry(spec.arch, "arch")]
    if not archs:
        raise ConfigError([("arch", "an empty list: give at least one hardware description")])
    base_ovs = [f"{k}={format_value(v)}" for k, v in spec.set.items()]

    entries = [e if isinstance(e, WorkloadEntry) else WorkloadEntry(workload=e) for e in spec.workloads]
    first_with: dict[str, int] = {}
    for i, entry in enumerate(entries):
        label = entry.label or _workload_label(entry.workload, entry.set)
        if label in first_with:
            j = first_with[label]
            how = "duplicate label" if entry.label else "no label, and the one made for it is"
            raise ConfigError([(f"workloads[{i}].label",
                                f"{how} {label!r}, the label of workloads[{j}] too: results are stored "
                                f"by label, so every workload needs its own")])
        first_with[label] = i

    def where_of(p: str, ai: int, i: int, entry: WorkloadEntry) -> tuple[str, bool]:
        """The spec path behind a problem the evaluator reports at ``p`` (and whether it is
        one of the spec's own ``set`` values rather than something in the preset)."""
        a_where = f"arch[{ai}]" if multi else "arch"
        if p:
            for k in reversed(list(entry.set)):          # the workload's own values come last
                if p == f"workload.{k}" or p.startswith(f"workload.{k}."):
                    return f"workloads[{i}].set.{k}", True
            for k in reversed(list(archs[ai].set)):      # then the hardware's own
                if p == k or p.startswith(f"{k}."):
                    return f"{a_where}.set.{k}", True
            for k in reversed(list(spec.set)):
                if p == k or p.startswith(f"{k}."):
                    return f"set.{k}", True
        where = (f"arch[{ai}] " if multi else "") + f"workloads[{i}]"
        return where + (f" ({p})" if p else ""), False

    workloads: list[WorkloadInfo] = []
    labels: set[str] = set()
    keys: dict[str, str] = {}
    a_labels: dict[str, int] = {}
    for ai, a_entry in enumerate(archs):
        arch_src = a_entry.arch
        arch = _resolve_path(arch_src, base_dir)
        a_label = a_entry.label or (Path(arch_src).stem if isinstance(arch_src, str)
                                    else str(arch_src.get("name", f"arch{ai}")))
        if multi and a_label in a_labels:
            how = "duplicate label" if a_entry.label else "no label, and the one made for it is"
            raise ConfigError([(f"arch[{ai}].label" if a_entry.label else f"arch[{ai}]",
                                f"{how} {a_label!r}, the label of arch[{a_labels[a_label]}] too: results "
                                f"are stored by label, so every hardware needs its own")])
        a_labels[a_label] = ai
        a_ovs = [f"{k}={format_value(v)}" for k, v in a_entry.set.items()]
        for i, entry in enumerate(entries):
            src = _resolve_path(entry.workload, base_dir)
            w_ovs = [f"workload.{k}={format_value(v)}" for k, v in entry.set.items()]
            label = entry.label or _workload_label(entry.workload, entry.set)
            if multi:
                label = f"{a_label}/{label}"
            if label in labels:
                label = f"{label}#{len(workloads)}"
            labels.add(label)
            ovs = base_ovs + a_ovs + w_ovs
            try:
                cfg, wl = ev.resolve(arch, src, ovs)
            except ConfigError as e:
                probs = [where_of(p, ai, i, entry) + (m,) for p, m in e.problems]
                ours = all(own for _, own, _ in probs)
                raise ConfigError([(w, m) for w, _, m in probs], source=None if ours else e.source) from None
            except InputFileError as e:
                # a hardware description or workload that cannot be found or read: name the entry
                text = str(e)
                if isinstance(arch_src, str) and repr(str(arch_src)) in text:
                    where = f"arch[{ai}]" if multi else "arch"
                elif isinstance(entry.workload, str) and repr(str(entry.workload)) in text:
                    where = f"workloads[{i}].workload"
                else:
                    where = (f"arch[{ai}] " if multi else "") + f"workloads[{i}]"
                raise ConfigError([(where, text)]) from None
            key = hashlib.sha256(canonical_json({"arch": cfg, "workload": wl}).encode()).hexdigest()
            here = (f"arch[{ai}] " if multi else "") + f"workloads[{i}]"
            if key in keys:
                raise ConfigError([(here, f"resolves to the same hardware and workload as {keys[key]}, "
                                          f"so its points would be the same points")])
            keys[key] = here
            workloads.append(WorkloadInfo(label, src, ovs, cfg, wl, key, arch=arch,
                                          arch_label=a_label if multi else None))

    # axis fields exist
    known = set(flatten(workloads[0].config)) | {f"workload.{k}" for k in flatten(workloads[0].workload)}
    for w in workloads[1:]:
        known |= set(flatten(w.config)) | {f"workload.{k}" for k in flatten(w.workload)}

    def field_exists(f: str) -> bool:
        if f in known:
            return True
        parts = f.split(".")
        for n in range(len(parts) - 1, 0, -1):     # below an optional (None) or free-form section
            pre = ".".join(parts[:n])
            if pre in known:
                v = _lookup(workloads, pre)
                return v is None or isinstance(v, dict) and not _is_model_section(pre, workloads)
        return False

    leaves = sorted(known)
    axis_labels = {a.label for a in axes if a.label}
    for a in axes:
        for f in a.fields:
            if not field_exists(f):
                raise ConfigError([(f"axes.{f}", f"no such config or workload field{did_you_mean(f, leaves)}")])
    if check_values:
        for a in axes:
            for step in a.values:
                for i, w in enumerate(workloads):
                    ovs = w.overrides + [f"{f}={format_value(v)}" for f, v in zip(a.fields, step)]
                    try:
                        ev.resolve(w.arch, w.source, ovs)
                    except ConfigError as e:
                        val = ", ".join(f"{f}={v!r}" for f, v in zip(a.fields, step))
                        raise ConfigError([(f"axes.{p or a.name}", f"{m} (value {val})")
                                           for p, m in e.problems]) from None

    metric_names = set(getattr(ev, "METRICS", ())) | set(METRIC_ALIASES)
    derived: dict[str, _expr.Expr] = {}
    for name, text in spec.metrics.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ConfigError([(f"metrics.{name}", "a derived metric name is a plain identifier")])
        if name in metric_names or name in METRIC_ALIASES.values():
            real = METRIC_ALIASES.get(name, name)
            what = f"an alias of the built-in metric {real!r}" if real != name else "a built-in metric"
            raise ConfigError([(f"metrics.{name}", f"{name!r} is {what}; a derived metric needs a name of "
                                                   f"its own (it would replace the simulator's value)")])
        if name in ("workload", "arch") or name in axis_labels or field_exists(name):
            raise ConfigError([(f"metrics.{name}", f"{name!r} is already a field name; a derived metric "
                                                   f"needs a name of its own")])
        e = _expr.parse(text, f"metrics.{name}")
        _check_names(e, f"metrics.{name}", field_exists, metric_names | set(derived) | axis_labels, leaves)
        derived[name] = e
    all_metrics = metric_names | set(derived)

    pre, post = [], []
    for i, text in enumerate(spec.constraints):
        e = _expr.parse(text, f"constraints[{i}]")
        _check_names(e, f"constraints[{i}]", field_exists, all_metrics | axis_labels, leaves)
        (post if any(n in all_metrics for n in e.names) else pre).append(e)

    objectives = []
    for i, o in enumerate(spec.objectives):
        o = _objective(o, i)
        m = METRIC_ALIASES.get(o.metric, o.metric)
        if m not in all_metrics:
            raise ConfigError([(f"objectives[{i}]", f"unknown metric {o.metric!r}"
                                                   f"{did_you_mean(o.metric, sorted(all_metrics))}")])
        objectives.append(Objective(metric=m, goal=o.goal))
    if not objectives:
        raise ConfigError([("objectives", "at least one objective is needed")])
    if spec.search.method in ("random", "optuna") and spec.search.points is None and spec.search.time is None:
        raise ConfigError([("search.points", f"{spec.search.method} search needs a budget: points or time "
                                             f"(search.points / search.time, or --points / --time)")])

    sw = Sweep(spec=spec, workloads=workloads, axes=axes, pre_constraints=pre,
               post_constraints=post, derived=derived, objectives=objectives,
               evaluator=module, options=dict(spec.evaluator.options), metric_names=frozenset(metric_names))
    sw.check_expressions()
    return sw


def with_search(spec: SweepSpec, method: Optional[str] = None, points: Optional[int] = None,
                time: Union[str, float, None] = None, seed: Optional[int] = None) -> SweepSpec:
    """``spec`` with the command line's search options merged in (before it is compiled, so
    that a budget given only on the command line satisfies a random or optuna search)."""
    upd = {k: v for k, v in (("method", method), ("points", points), ("time", time), ("seed", seed))
           if v is not None}
    if not upd:
        return spec
    search = spec.search.model_dump()
    search.update(upd)
    try:
        new_search = SearchSpec.model_validate(search)
    except ValidationError as e:
        probs = _format_validation(e)
        raise ConfigError([(f"--{p}" if p in upd else f"search.{p}", m) for p, m in probs]) from None
    return spec.model_copy(update={"search": new_search})


def _lookup(workloads: list[WorkloadInfo], path: str):
    for w in workloads:
        env = _base_env(w)
        if path in env:
            return env[path]
    return None


def _is_model_section(path: str, workloads) -> bool:
    """A dict-valued path is a fixed section (unknown keys below are typos) unless free-form.

    Resolved configs do not say which mappings are free-form; sections whose keys are all
    present in every resolved config are treated as fixed."""
    v = _lookup(workloads, path)
    return isinstance(v, dict) and bool(v)


def _check_names(e: _expr.Expr, where: str, field_exists, metrics: set[str], leaves: list[str]) -> None:
    for n in sorted(e.names):
        if n in metrics or n in ("workload", "arch") or field_exists(n):
            continue
        choices = leaves if "." in n else sorted(metrics)
        raise ConfigError([(where, f"unknown name {n!r} in {e.text!r}{did_you_mean(n, choices)}")])


def spec_summary(sw: Sweep) -> str:
    dims = " x ".join(f"{a.name}[{len(a)}]" for a in sw.axes)
    return f"{len(sw.workloads)} workload(s) x {dims or 'no axes'} = {sw.size} points"


__all__ = ["SweepSpec", "Sweep", "Point", "Axis", "load_spec", "compile_spec", "parse_axes", "with_search",
           "parse_duration", "format_value", "METRIC_ALIASES", "MAXIMISED", "ArchsimError"]
