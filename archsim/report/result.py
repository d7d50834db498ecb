"""The Result of a simulation: hierarchical, additive per layer, with a stable JSON form.

JSON keys (stable): ``archsim_version, arch, uarch, workload, cycles, seconds, energy_pj,
power_w, tokens_per_s, tokens_per_j, macs, utilization, area_mm2, edp, bounds, dedup,
layers, components, units, memory, config``, and ``ops`` (:mod:`archsim.report.ops`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Optional

from archsim import __version__


@dataclass
class LayerRecord:
    name: str
    repeat: int
    cycles: int                      # cycles of one instance
    macs: int                        # MACs of one instance
    dynamic_pj: float                # dynamic energy of one instance (incl. off-chip)
    leakage_pj: float                # leakage energy of one instance
    offchip_read_bytes: int
    offchip_write_bytes: int
    unit_busy: dict = field(default_factory=dict)
    group: str = ""                  # the layer group an instance belongs to ('' : its name)

    def to_dict(self) -> dict:
        e = self.dynamic_pj + self.leakage_pj
        return {"name": self.name, "group": self.group or self.name, "repeat": self.repeat, "cycles": self.cycles,
                "total_cycles": self.cycles * self.repeat, "macs": self.macs,
                "energy_pj": e, "total_energy_pj": e * self.repeat,
                "offchip_read_bytes": self.offchip_read_bytes,
                "offchip_write_bytes": self.offchip_write_bytes, "unit_busy_cycles": self.unit_busy}


def _clean(x):
    if isinstance(x, float):
        if math.isnan(x) or math.isinf(x):
            return None
        return float(f"{x:.12g}")
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    return x


@dataclass
class Result:
    cfg: Any
    workload: Any
    program: Any
    cycles: int
    clock_hz: float
    macs: int                        # MACs issued by the datapath
    expected_macs: int               # the workload's analytic MAC count
    peak_macs_per_cycle: float
    peak_bytes_per_cycle: float
    offchip_bytes: int
    layers: list[LayerRecord]
    components: dict
    units: dict
    area: dict
    energy_table: str
    all_layers: bool = False
    timeline: Optional[tuple] = None
    memory_info: dict = field(default_factory=dict)
    peak_dynamic_w: float = 0.0
    skipped_macs: int = 0            # MACs a sparse datapath skipped
    padded_macs: int = 0             # issued MACs of lanes idle by padding (not useful work)
    extra: dict = field(default_factory=dict)

    # -- derived ------------------------------------------------------------------------------
    @property
    def seconds(self) -> float:
        return self.cycles / self.clock_hz

    @property
    def energy_pj(self) -> float:
        return float(sum(sum(c["energy_pj"].values()) for c in self.components.values()))

    @property
    def leakage_pj(self) -> float:
        """The static share of :attr:`energy_pj` (every component's ``leakage`` entry)."""
        return float(sum(c["energy_pj"].get("leakage", 0.0) for c in self.components.values()))

    @property
    def dynamic_pj(self) -> float:
        """:attr:`energy_pj` without leakage."""
        return self.energy_pj - self.leakage_pj

    @property
    def tokens(self) -> int:
        wl = self.workload
        if getattr(wl, "tokens", 0) <= 0:
            return 0
        if wl.phase == "decode":
            return wl.tokens
        return wl.batch * wl.seq_len

    @property
    def tokens_per_s(self) -> Optional[float]:
        return self.tokens / self.seconds if self.tokens and self.cycles else None

    @property
    def compute_bound_cycles(self) -> int:
        return math.ceil(self.macs / self.peak_macs_per_cycle)

    @property
    def memory_bound_cycles(self) -> int:
        return math.ceil(self.offchip_bytes / self.peak_bytes_per_cycle)

    def bounds_ok(self) -> bool:
        return (self.cycles >= self.compute_bound_cycles and self.cycles >= self.memory_bound_cycles
                and self.macs - self.padded_macs + self.skipped_macs == self.expected_macs)

    def metrics(self) -> dict[str, float]:
        """Flat scalar metrics (what a sweep stores per point)."""
        e = self.energy_pj
        s = self.seconds
        area = sum(self.area.values())
        tps = self.tokens_per_s
        tpj = (self.tokens / (e * 1e-12)) if self.tokens and e else None
        spec = self.extra.get("speculative")
        if spec:      # speculative decoding: the tokens that survive verification
            tps, tpj = spec["accepted_tokens_per_s"], spec["accepted_tokens_per_j"]
        return {
            "cycles": self.cycles, "seconds": s, "energy_pj": e,
            "power_w": e * 1e-12 / s if s > 0 else 0.0,
            "tokens_per_s": tps, "tokens_per_j": tpj,
            "macs": self.macs,
            "utilization": self.macs / (self.cycles * self.peak_macs_per_cycle) if self.cycles else 0.0,
            "area_mm2": area, "edp": e * s,
            "offchip_bytes": self.offchip_bytes,
            "peak_power_w": self.peak_power_w(),
        }

    def peak_power_w(self) -> float:
        """Leakage plus every unit at full rate (MAC array busy, memory at peak bandwidth)."""
        leak_w = self.leakage_pj * 1e-12 / self.seconds if self.seconds else 0.0
        return leak_w + self.peak_dynamic_w

    def to_dict(self) -> dict:
        m = self.metrics()
        wl = self.workload
        return _clean({
            "archsim_version": __version__,
            "arch": self.cfg.name,
            "uarch": self.cfg.uarch,
            "workload": {"name": wl.name, "phase": wl.phase, "batch": wl.batch, "seq_len": wl.seq_len,
                         "kv_len": wl.kv_len, "spec": wl.spec},
            "cycles": self.cycles,
            "seconds": m["seconds"],
            "energy_pj": m["energy_pj"],
            "power_w": m["power_w"],
            "tokens_per_s": m["tokens_per_s"],
            "tokens_per_j": m["tokens_per_j"],
            "macs": self.macs,
            "utilization": m["utilization"],
            "area_mm2": m["area_mm2"],
            "edp": m["edp"],
            "bounds": {"compute_bound_cycles": self.compute_bound_cycles,
                       "memory_bound_cycles": self.memory_bound_cycles,
                       "expected_macs": self.expected_macs, "skipped_macs": self.skipped_macs,
                       "padded_macs": self.padded_macs,
                       "ok": self.bounds_ok()},
            "dedup": {"all_layers": self.all_layers,
                      "note": ("every layer simulated" if self.all_layers else
                               "repeated blocks timed as first, steady-state (weighted) and last instances")},
            "layers": [r.to_dict() for r in self.layers],
            "components": self.components,
            "units": {k: {"busy_cycles": v, "idle_cycles": max(0, self.cycles - v),
                          "utilization": v / self.cycles if self.cycles else 0.0}
                      for k, v in self.units.items()},
            "memory": self.memory_info,
            "energy_table": self.energy_table,
            "area_breakdown_mm2": self.area,
            **self.extra,
            "config": self.cfg.model_dump(mode="json"),
        })
