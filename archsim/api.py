"""Public Python API.

>>> from archsim.api import simulate
>>> res = simulate("systolic_128x128", "llama2-7b", phase="decode", batch=1, kv_len=2048)
>>> res.to_dict()["cycles"]
"""
from __future__ import annotations

from typing import Optional, Sequence

from archsim.config.loader import load_arch
from archsim.errors import ConfigError
from archsim.workload.graph import Workload
from archsim.workload.loader import load_workload


def _check_prefixes(overrides: Sequence[str]) -> None:
    for ov in overrides:
        if "=" not in ov:
            raise ConfigError([(ov, "an override must look like path.to.field=value")])


def load(arch, workload, *, overrides: Sequence[str] = (), phase: Optional[str] = None,
         batch: Optional[int] = None, seq_len: Optional[int] = None, kv_len: Optional[int] = None,
         all_layers: bool = False):
    """Validate a hardware description and build the workload graph (no simulation).

    ``arch`` and ``workload`` are preset names, paths, dicts or what :func:`load` returned
    (a loaded config, a built workload; a built workload takes no ``workload.*`` override and
    no phase/batch/length, which are fixed when it is built). ``overrides`` are ``path=value``
    strings; ``workload.*`` paths address the workload, all others the hardware description.
    Raises ConfigError naming every bad field.
    """
    overrides = list(overrides)
    _check_prefixes(overrides)
    cfg = load_arch(arch, overrides)
    if isinstance(workload, Workload):
        fixed = [o.split("=", 1)[0] for o in overrides if o.startswith("workload.")]
        fixed += [k for k, v in (("phase", phase), ("batch", batch), ("seq_len", seq_len),
                                 ("kv_len", kv_len)) if v is not None]
        if fixed:
            raise ConfigError([(f, "a built workload is fixed; pass its name, path or spec to "
                                   "change it") for f in fixed])
        return cfg, workload
    wl = load_workload(workload, cfg.precision, overrides, all_layers=all_layers,
                       phase=phase, batch=batch, seq_len=seq_len, kv_len=kv_len)
    return cfg, wl


def simulate(arch, workload, *, overrides: Sequence[str] = (), phase: Optional[str] = None,
             batch: Optional[int] = None, seq_len: Optional[int] = None, kv_len: Optional[int] = None,
             all_layers: bool = False, seed: int = 0, keep_timeline: bool = False):
    """Simulate ``workload`` on ``arch``; returns an :class:`archsim.report.Result`."""
    from archsim.sim.run import simulate_loaded

    cfg, wl = load(arch, workload, overrides=overrides, phase=phase, batch=batch, seq_len=seq_len,
                   kv_len=kv_len, all_layers=all_layers)
    return simulate_loaded(cfg, wl, seed=seed, keep_timeline=keep_timeline, all_layers=all_layers)
