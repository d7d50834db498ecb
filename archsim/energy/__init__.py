"""Energy reference tables, technology scaling and pricing of counters.

Energy is priced after the run: counters x pJ per action, plus leakage x time, so a new
technology node or table needs no re-simulation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml

from archsim.errors import ConfigError

TABLES = Path(__file__).parent / "tables"


def _interp_loglog(points, x: float) -> float:
    pts = sorted(points)
    xs = np.log([p[0] for p in pts])
    ys = np.log([p[1] for p in pts])
    lx = np.log(x)
    if lx <= xs[0]:
        i = 0
    elif lx >= xs[-1]:
        i = len(xs) - 2
    else:
        i = int(np.searchsorted(xs, lx)) - 1
    t = (lx - xs[i]) / (xs[i + 1] - xs[i])
    return float(np.exp(ys[i] + t * (ys[i + 1] - ys[i])))


@lru_cache(maxsize=None)
def _load(name: str) -> dict:
    p = TABLES / f"{name}.yaml"
    if not p.is_file():
        names = sorted(x.stem for x in TABLES.glob("*.yaml") if x.stem != "scaling")
        raise ConfigError([("energy.table", f"unknown energy table {name!r}; known: {', '.join(names)}")])
    return yaml.safe_load(p.read_text())


@dataclass
class EnergyTable:
    """A base table scaled to a technology node."""

    base: dict
    node_nm: float
    logic_scale: float
    sram_scale: float
    mac_override: dict = field(default_factory=dict)   # EnergyConfig.mac_pj of the design

    @property
    def name(self) -> str:
        return f"{self.base['id']}@{self.node_nm:g}nm"

    def mac_pj(self, precision: str) -> float:
        return mac_price(self.mac_override, precision, lambda p: self.base["mac_pj"][p] * self.logic_scale)

    def vector_pj(self, prim: str) -> float:
        return self.base["vector_pj"][prim] * self.logic_scale

    def sram_pj_per_byte(self, size_bytes: float) -> float:
        return _interp_loglog(self.base["sram_pj_per_byte"], max(size_bytes, 1.0)) * self.sram_scale

    def dram_pj_per_bit(self) -> float:
        return self.base["dram_pj_per_bit"]["default"]

    def mac_area_mm2(self, precision: str) -> float:
        return self.base["area_um2"]["mac"][precision] * 1e-6 * (self.node_nm / self.base["tech_node_nm"]) ** 2

    def sram_area_mm2(self, size_bytes: float) -> float:
        return (self.base["sram_mm2_per_mib"] * size_bytes / 2**20
                * (self.node_nm / self.base["tech_node_nm"]) ** 2)

    def sram_leakage_w(self, size_bytes: float) -> float:
        return self.base["leakage"]["sram_mw_per_mib"] * 1e-3 * size_bytes / 2**20 * self.sram_scale

    @property
    def logic_leak_fraction(self) -> float:
        return self.base["leakage"]["logic_fraction"]


def mac_price(override: dict, precision: str, table_price) -> float:
    """pJ of one MAC at ``precision``: the design's ``energy.mac_pj`` entry when it has one (an
    energy, or another precision whose table price it takes), else ``table_price(precision)``."""
    v = override.get(precision)
    if v is None:
        return table_price(precision)
    return table_price(v) if isinstance(v, str) else float(v)


def table_of(cfg) -> EnergyTable:
    """The energy table that prices a design: its node, ``energy.table`` and ``energy.mac_pj``."""
    return table_for(cfg.tech_node_nm, cfg.energy.table, cfg.energy.mac_pj)


def table_for(node_nm: float, name: str | None = None, mac_override: dict | None = None) -> EnergyTable:
    base = _load(name or "horowitz_45nm")
    sc = _load("scaling")
    ratio_logic = _interp_loglog(sc["logic"], node_nm) / _interp_loglog(sc["logic"], base["tech_node_nm"])
    ratio_sram = _interp_loglog(sc["sram"], node_nm) / _interp_loglog(sc["sram"], base["tech_node_nm"])
    return EnergyTable(base, float(node_nm), ratio_logic, ratio_sram, dict(mac_override or {}))


def price(counter_names, counters: np.ndarray, prices: dict[str, float]) -> np.ndarray:
    """pJ per counter column: counters[..., c] * prices[name_c]."""
    vec = np.array([prices.get(n, 0.0) for n in counter_names], np.float64)
    return counters.astype(np.float64) * vec
