"""Microarchitecture registry. One line per built-in microarchitecture below; each
package registers a :class:`archsim.uarch.base.Uarch` instance on import."""
from __future__ import annotations

import importlib

from archsim.errors import ConfigError, did_you_mean

BUILTIN = (
    "systolic",
    "dram_pim",
    "gpu",
    "sram_cim",
    "sparse_tc",
    "hetero",
)

REGISTRY: dict = {}
_loaded = False


def register(uarch) -> None:
    REGISTRY[uarch.name] = uarch


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for name in BUILTIN:
        importlib.import_module(f"archsim.uarch.{name}")


def get(name: str):
    _load_builtin()
    if name not in REGISTRY:
        raise ConfigError([("uarch", f"unknown microarchitecture {name!r}{did_you_mean(name, REGISTRY)}; "
                                     f"known: {', '.join(sorted(REGISTRY))}")])
    return REGISTRY[name]


def names() -> list[str]:
    _load_builtin()
    return sorted(REGISTRY)


def config_model(name: str):
    return get(name).config_cls
