"""The default sweep evaluator: :func:`archsim.api.simulate`.

An evaluator is any importable module with

- ``resolve(arch, workload, overrides) -> (config: dict, workload: dict)``: validate
  and return the resolved configuration (JSON-able); raises ``ConfigError``;
- ``evaluate(arch, workload, overrides, options) -> dict`` with keys ``metrics`` (flat
  dict of scalars), ``config``, ``workload`` and ``archsim_version``;
- optionally ``warmup()`` (called once per worker) and ``METRICS`` (names that
  constraints and objectives may use).
"""
from __future__ import annotations

from typing import Any

import archsim

METRICS = ("cycles", "seconds", "energy_pj", "power_w", "tokens_per_s", "tokens_per_j", "macs",
           "utilization", "area_mm2", "edp", "offchip_bytes", "peak_power_w")


def _dump(obj: Any) -> Any:
    if obj is None or isinstance(obj, (dict, list, str, int, float, bool)):
        return obj
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dict__"):
        return {k: _dump(v) for k, v in vars(obj).items() if not k.startswith("_")}
    return str(obj)


def resolve(arch, workload, overrides):
    """Resolved hardware description and workload spec (validation only, no graph)."""
    from archsim.api import _check_prefixes
    from archsim.config.loader import load_arch
    from archsim.workload.loader import load_workload_spec
    overrides = list(overrides)
    _check_prefixes(overrides)
    cfg = load_arch(arch, overrides)
    wl = load_workload_spec(workload, overrides)
    return _dump(cfg), _dump(wl)


def evaluate(arch, workload, overrides, options=None) -> dict:
    from archsim.api import simulate
    res = simulate(arch, workload, overrides=list(overrides))
    d = res.to_dict()
    return {"metrics": dict(res.metrics()), "config": d.get("config"), "workload": d.get("workload"),
            "archsim_version": d.get("archsim_version", archsim.__version__)}


def warmup() -> None:
    import archsim.api  # noqa: F401  (imports the simulator and loads its numba cache)
