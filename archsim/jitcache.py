"""Keeping Numba's on-disk kernel cache honest.

Numba invalidates a module's cached kernels only when that module's own file changes, but a
kernel that calls jitted functions of other modules inlines them. :func:`drop_stale` removes a
module's cached kernels when any file it depends on is newer than the cache.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable


def drop_stale(module_file: str, deps: Iterable[str | Path]) -> None:
    here = Path(module_file)
    cache_dir = here.parent / "__pycache__"
    cached = list(cache_dir.glob(f"{here.stem}.*.nbi"))
    if not cached:
        return
    files: list[Path] = []
    for d in deps:
        d = Path(d)
        files += list(d.rglob("*.py")) if d.is_dir() else [d]
    if not files:
        return
    if max(p.stat().st_mtime for p in files) > min(p.stat().st_mtime for p in cached):
        for p in cache_dir.glob(f"{here.stem}.*.nb[ic]"):
            try:
                p.unlink()
            except OSError:
                pass
