"""Design-space sweeps: specs, search, executors, a resumable SQLite store, Pareto fronts.

``archsim sweep SPEC --out results.db`` runs one; see ``docs/sweeps.md``.
"""
from archsim.sweep.spec import Sweep, SweepSpec, compile_spec, load_spec

__all__ = ["Sweep", "SweepSpec", "compile_spec", "load_spec"]
