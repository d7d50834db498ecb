"""Thin adapter over the bank-level DRAM package: the geometry and the timing parameters (CK
cycles) of a preset as the PIM engine needs them."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from archsim.config.types import PRECISION_BITS
from archsim.errors import ConfigError
from archsim.mem.dram.presets import load_preset
from archsim.uarch.dram_pim import engine as E


@dataclass
class PimDevice:
    """A resolved DRAM-PIM device: organisation, timing vector and unit parameters."""

    preset: object                  # archsim.mem.dram.presets.Preset
    channels: int
    pch: int                        # pseudo-channels per channel (1 if none)
    ranks: int                      # ranks / stack IDs per pseudo-channel
    bankgroups: int
    banks: int                      # banks per bank group
    rows: int
    cols_per_row: int
    tx_bytes: int
    tck_ns: float
    timing: dict                    # canonical CK values
    T: np.ndarray                   # engine timing vector (int64[N_T])
    burst_elems: int
    elem_bytes: float
    mac_gap: int
    stacks: int
    energy: dict = field(default_factory=dict)

    # ---- geometry ----
    @property
    def banks_per_channel(self) -> int:
        return self.pch * self.ranks * self.bankgroups * self.banks

    @property
    def row_bytes(self) -> int:
        return self.cols_per_row * self.tx_bytes

    @property
    def capacity_bytes(self) -> int:
        return self.stacks * self.channels * self.banks_per_channel * self.rows * self.row_bytes

    @property
    def peak_external_bytes_per_ck(self) -> float:
        """All data buses of one device (pseudo-channels have their own)."""
        return self.channels * self.pch * self.tx_bytes / self.timing["nBL"]

    def stream_geom(self, stream: str) -> tuple[np.ndarray, int]:
        """(engine geometry (P, R, G, B), streams per device)."""
        if stream == "pseudo_channel":
            return np.array([1, self.ranks, self.bankgroups, self.banks], np.int64), self.channels * self.pch
        return np.array([self.pch, self.ranks, self.bankgroups, self.banks], np.int64), self.channels


def _levels(preset) -> dict:
    out = {"PseudoChannel": 1, "Rank": 1, "Sid": 1, "BankGroup": 1, "Bank": 1}
    for name, size in zip(preset.standard.levels[1:], preset.level_sizes[1:]):
        out[name] = int(size)
    return out


def resolve(cfg, *, power_constrained: bool | None = None) -> PimDevice:
    """Resolve ``cfg.memory.dram`` and ``cfg.pim`` into a :class:`PimDevice` (every problem at
    once as a :class:`ConfigError` naming the field)."""
    d = cfg.memory.dram
    pim = cfg.pim
    try:
        preset = load_preset(d.preset, overrides=dict(d.timing) if d.timing else None)
    except ConfigError as e:
        raise ConfigError([(f"memory.dram.{p}" if p else "memory.dram", m) for p, m in e.problems]) from None
    lv = _levels(preset)
    pch = lv["PseudoChannel"]
    ranks = lv["Rank"] * lv["Sid"]
    bg, banks = lv["BankGroup"], lv["Bank"]
    channels = int(d.channels or preset.channels)
    t = dict(preset.timing)
    bits = PRECISION_BITS[pim.precision]
    burst_elems = preset.tx_bytes * 8 // bits
    problems = []
    if burst_elems <= 0 or burst_elems % pim.simd_lanes:
        problems.append(("pim.simd_lanes", f"{pim.simd_lanes} lanes do not divide the {burst_elems} "
                         f"{pim.precision} elements of one {preset.tx_bytes}-byte column burst"))
    nb_unit = bg * banks
    if pim.placement == "bank" and (nb_unit % pim.banks_per_unit):
        problems.append(("pim.banks_per_unit", f"{pim.banks_per_unit} does not divide the {nb_unit} banks "
                         f"of a rank"))
    if pim.placement != "bank" and pim.banks_per_unit != 1:
        problems.append(("pim.banks_per_unit", f"only meaningful for placement 'bank' (got placement "
                         f"{pim.placement!r})"))
    from archsim.mem.dram.build import replay_only_settings
    problems += replay_only_settings(d, "the PIM command engine")
    # ganged activation: an all-bank ACT's last gang opens (gangs - 1) tFAW after its first
    gangs = E._gangs(E.S_AB, bg, banks) if pim.pim_activation == "faw" else 0
    gang_ck = max(0, gangs - 1) * t["nFAW"]
    if d.refresh != "off" and t["nREFI"] <= t["nRFC"] + gang_ck + max(t["nRCDRD"], t["nRCDWR"]):
        # after a refresh no ACT for tRFC, then tRCD to the first column command: a shorter
        # refresh interval never lets a column command through
        gang = f" + {gangs - 1} tFAW of ganged activation ({gang_ck:g})" if gang_ck else ""
        problems.append(("memory.dram.timing.tREFI", f"refresh interval {t['nREFI']:g} CK must exceed "
                         f"tRFC + tRCD = {t['nRFC']:g} + {max(t['nRCDRD'], t['nRCDWR']):g} CK{gang} (or set "
                         f"memory.dram.refresh: off)"))
    if problems:
        raise ConfigError(problems)
    pc = pim.power_constrained if power_constrained is None else power_constrained
    base_gap = int(pim.mac_interval_ck or t["nCCDL"])
    gap = int(pim.mac_interval_power_ck or base_gap) if pc else base_gap
    # the unit must finish one burst before the next: burst_elems / lanes unit cycles
    unit_ck = math.ceil((burst_elems / pim.simd_lanes) / pim.clock_ratio - 1e-9)
    gap = max(gap, unit_ck, 1)
    std = preset.standard
    act_ck = int(math.ceil(std.cmd_ticks.get("ACT", 1)))
    if std.dual_bus:
        act_ck = max(act_ck, 2)
    T = np.zeros(E.N_T, np.int64)
    T[E.T_BL], T[E.T_CL], T[E.T_CWL] = t["nBL"], t["nCL"], t["nCWL"]
    T[E.T_RCDRD], T[E.T_RCDWR] = t["nRCDRD"], t["nRCDWR"]
    T[E.T_RP], T[E.T_RAS], T[E.T_RC], T[E.T_WR], T[E.T_RTP] = t["nRP"], t["nRAS"], t["nRC"], t["nWR"], t["nRTP"]
    T[E.T_CCDS], T[E.T_CCDL], T[E.T_RRDS], T[E.T_RRDL] = t["nCCDS"], t["nCCDL"], t["nRRDS"], t["nRRDL"]
    T[E.T_FAW], T[E.T_WTRS], T[E.T_WTRL], T[E.T_RTW] = t["nFAW"], t["nWTRS"], t["nWTRL"], t["nRTW"]
    T[E.T_RFC], T[E.T_REFI] = t["nRFC"], t["nREFI"]
    T[E.T_MACGAP] = gap
    T[E.T_UNIT] = unit_ck                  # a buffer-die unit's cycles per burst (MAC_PB spacing)
    T[E.T_ACTCK] = act_ck
    T[E.T_GANG] = 1 if pim.pim_activation == "faw" else 0
    T[E.T_REFRESH] = 0 if d.refresh == "off" else (2 if pim.refresh_policy == "postponed" else 1)
    T[E.T_WINDOW] = pim.window
    T[E.T_CTRL] = ((E.CTRL_EAGER_PRE if pim.precharge_policy == "eager" else 0)
                   | (E.CTRL_ONE_BUS if pim.command_bus == "single" else 0)
                   | (E.CTRL_TAGGED_BARRIER if pim.barrier_policy == "tagged" else 0)
                   | (E.CTRL_INTAKE_ONE if pim.intake == "one_per_cycle" else 0)
                   | (E.CTRL_DATA_END if pim.stream_end == "last_data" else 0)
                   | (E.CTRL_COL_FIRST if pim.scheduler == "column_first" else 0))
    # staggered refresh: the stream's rank (the first) refreshes first at tREFI / ranks
    T[E.T_REF0] = int(t["nREFI"]) // pim.refresh_ranks if pim.refresh_ranks > 1 else 0
    return PimDevice(preset, channels, pch, ranks, bg, banks, preset.rows, preset.cols_per_row,
                     preset.tx_bytes, preset.tck_ps / 1000.0, t, T, burst_elems, bits / 8.0, gap,
                     pim.stacks, dict(preset.energy))
