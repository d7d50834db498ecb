"""DRAM presets: ``arch_configs/dram/<NAME>.yaml`` -> a resolved :class:`Preset`."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from archsim.errors import ConfigError, did_you_mean
from archsim.mem.dram.spec import STANDARDS, Standard, Tables, build_tables

# YAML timing key -> canonical CK-cycle name used by the constraint expressions
TIMING_KEYS = {
    "tBL": "nBL", "CL": "nCL", "CWL": "nCWL", "tRCDRD": "nRCDRD", "tRCDWR": "nRCDWR",
    "tRP": "nRP", "tRAS": "nRAS", "tRC": "nRC", "tWR": "nWR", "tRTP": "nRTP",
    "tCCD_S": "nCCDS", "tCCD_L": "nCCDL", "tCCDR": "nCCDR", "tRRD_S": "nRRDS", "tRRD_L": "nRRDL",
    "tFAW": "nFAW", "tWTR_S": "nWTRS", "tWTR_L": "nWTRL", "tRTW": "nRTW", "tCS": "nCS",
    "tPPD": "nPPD", "tRFC": "nRFC", "tRFCab": "nRFCab", "tRFCpb": "nRFCpb", "tRREFD": "nRREFD", "tREFI": "nREFI",
    "tREFIpb": "nREFIpb", "tCCD_S_WR": "nCCDSWR", "tCCD_L_WR": "nCCDLWR", "tBL_max": "nBLmax",
    "tRPab": "nRPab", "tAAD": "nAAD", "tWCKPST": "nWCKPST",
}
#: other spellings of the timing names (the canonical CK names, JEDEC's t-prefixed latencies)
#: -> the name a preset or ``memory.dram.timing`` override uses
TIMING_ALIASES = {**{v: k for k, v in TIMING_KEYS.items()}, "nRCD": "tRCD", "tCL": "CL", "tCWL": "CWL",
                  "BL": "tBL", "tCK": "tCK_ps", "nCK": "tCK_ps", "RL": "CL", "WL": "CWL"}


def timing_names() -> list[str]:
    """Every timing name a preset's ``timing`` section (or a ``memory.dram.timing`` override) takes."""
    return ["tCK_ps", *TIMING_KEYS, "tRCD"]


def unknown_timing(name: str) -> str | None:
    """Why ``name`` is not a timing name (with the spelling meant, or the closest one), or None."""
    names = timing_names()
    if name in names:
        return None
    if name in TIMING_ALIASES:
        hint = f" (timings are spelled as in the DRAM presets: write {TIMING_ALIASES[name]!r})"
    else:
        hint = did_you_mean(name, names) or f" (known: {', '.join(names)})"
    return f"unknown timing {name!r}{hint}"


REQUIRED = ("tCK_ps", "tBL", "CL", "CWL", "tRP", "tRAS", "tRC", "tWR", "tRTP", "tCCD_S", "tCCD_L",
            "tRRD_S", "tRRD_L", "tFAW", "tWTR_S", "tWTR_L", "tRFC", "tREFI")


def preset_dir() -> Path:
    env = os.environ.get("ARCHSIM_DRAM_PRESETS")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "arch_configs" / "dram"


def preset_names() -> list[str]:
    d = preset_dir()
    return sorted(p.stem for p in d.glob("*.yaml")) if d.is_dir() else []


@dataclass
class Preset:
    name: str
    standard: Standard
    channels: int
    level_sizes: list[int]          # channel(=1), ranks/pseudo-channels, [sids], bankgroups, banks
    rows: int
    columns: int
    tx_bytes: int
    tck_ps: float
    timing: dict                    # canonical CK-cycle values
    energy: dict = field(default_factory=dict)
    organisation: dict = field(default_factory=dict)
    raw: dict = field(default_factory=dict)
    tables: Tables | None = None

    @property
    def tick_ps(self) -> float:
        return self.tck_ps / self.standard.tick_multiplier

    @property
    def banks_per_channel(self) -> int:
        return int(math.prod(self.level_sizes[1:]))

    @property
    def cols_per_row(self) -> int:
        """Column commands (tx-sized) per row."""
        return self.columns // self.organisation.get("prefetch", 1)

    @property
    def n_ranks(self) -> int:
        return self.level_sizes[1] if self.standard.levels[1] != "BankGroup" else 1

    @property
    def capacity_bytes(self) -> int:
        return self.channels * self.banks_per_channel * self.rows * self.cols_per_row * self.tx_bytes

    @property
    def peak_bytes_per_tick(self) -> float:
        """All channels; every rank / pseudo-channel with its own data bus (HBM) counts once."""
        buses = self.level_sizes[1] if self.standard.levels[1] == "PseudoChannel" else 1
        return self.channels * buses * self.tx_bytes / self.tables.timing["nBL"]

    @property
    def peak_GBps(self) -> float:
        return self.peak_bytes_per_tick / (self.tick_ps * 1e-3)


def _problems_timing(t: dict, where: str, trc_below_ok: bool = False) -> list[tuple[str, str]]:
    """Problems of a timing set; ``trc_below_ok``: the preset takes a tRC below tRAS + tRP on
    purpose (``allow_trc_below_tras_trp: true``, e.g. the value a peer simulator's preset has)."""
    probs = []
    for k in REQUIRED:
        if k not in t:
            probs.append((f"{where}.{k}", "missing"))
    for k, v in t.items():
        bad = unknown_timing(k)
        if bad:
            probs.append((f"{where}.{k}", bad))
        elif not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
            probs.append((f"{where}.{k}", f"must be a number greater than zero, got {v!r}"))
    if not probs:
        if t["tRC"] < t["tRAS"] + t["tRP"] and not trc_below_ok:
            probs.append((f"{where}.tRC", f"tRC ({t['tRC']}) must be >= tRAS + tRP "
                                         f"({t['tRAS']} + {t['tRP']} = {t['tRAS'] + t['tRP']}); a preset "
                                         "that takes a lower tRC on purpose says allow_trc_below_tras_trp: true"))
        if t["tRAS"] < max(t.get("tRCD", 0), t.get("tRCDRD", 0)):
            probs.append((f"{where}.tRAS", "tRAS must be >= tRCD"))
    return probs


def resolve(doc: dict, source: str = "preset", overrides: dict | None = None, ranks: int | None = None) -> Preset:
    """Validate a preset document (all problems at once) and evaluate its tables. ``ranks``
    replaces the organisation's rank count (standards with a Rank level: DDR4, DDR5, LPDDR5);
    every rank adds its banks to the channel, refreshes on its own (one REFab per rank) and
    pays the rank-switch relations (tCS) against the others."""
    doc = dict(doc)
    probs: list[tuple[str, str]] = []
    std_name = doc.get("standard")
    if std_name not in STANDARDS:
        probs.append(("standard", f"unknown DRAM standard {std_name!r}{did_you_mean(str(std_name), STANDARDS)}"
                                  f" (known: {', '.join(sorted(STANDARDS))})"))
    org = dict(doc.get("organisation") or {})
    if ranks is not None:
        if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks <= 0 or ranks & (ranks - 1):
            probs.append(("ranks", f"must be a positive power of two, got {ranks!r}"))
        elif std_name in STANDARDS and STANDARDS[std_name].levels[1] != "Rank":
            probs.append(("ranks", f"{std_name} has no rank level (its level under the channel is "
                                   f"{STANDARDS[std_name].levels[1]})"))
        else:
            org["ranks"] = ranks
    timing = dict(doc.get("timing") or {})
    if overrides:
        # every override is a timing: an unknown name is reported by _problems_timing
        timing.update(overrides)
    for k in ("bankgroups", "banks_per_group", "rows", "columns", "channel_width_bits", "prefetch"):
        v = org.get(k)
        if not isinstance(v, int) or v <= 0 or (v & (v - 1)):
            probs.append((f"organisation.{k}", f"must be a positive power of two, got {v!r}"))
    channels = doc.get("channels", 1)
    if not isinstance(channels, int) or channels <= 0 or channels & (channels - 1):
        probs.append(("channels", f"must be a positive power of two, got {channels!r}"))
    trc_below_ok = doc.get("allow_trc_below_tras_trp", False)
    if not isinstance(trc_below_ok, bool):
        probs.append(("allow_trc_below_tras_trp", f"must be true or false, got {trc_below_ok!r}"))
        trc_below_ok = False
    probs += _problems_timing(timing, "timing", trc_below_ok)
    if probs:
        raise ConfigError(probs, source=source)
    std = STANDARDS[std_name]
    ck = {TIMING_KEYS[k]: v for k, v in timing.items() if k in TIMING_KEYS}
    if "tRCD" in timing:
        ck.setdefault("nRCDRD", timing["tRCD"])
        ck.setdefault("nRCDWR", timing["tRCD"])
    if "nRCDRD" not in ck:
        raise ConfigError([("timing.tRCD", "missing (tRCD or tRCDRD/tRCDWR)")], source=source)
    ck.setdefault("nRCDWR", ck["nRCDRD"])
    ck.setdefault("nCS", 2)
    ck.setdefault("nPPD", 2)
    ck.setdefault("nCCDR", ck["nCCDS"] + 1)
    ck.setdefault("nCCDSWR", ck["nCCDS"])
    ck.setdefault("nCCDLWR", ck["nCCDL"])
    ck.setdefault("nBLmax", ck["nBL"])
    ck.setdefault("nRPab", ck["nRP"])
    ck.setdefault("nRFCab", ck["nRFC"])  # GDDR6: a second all-bank refresh time (see spec)
    ck.setdefault("nAAD", 8)            # LPDDR5 ACT-1 to ACT-2, at most (JESD209-5 tAAD)
    ck.setdefault("nWCKPST", 1)         # LPDDR5 WCK postamble after a burst
    ck.setdefault("nRTW", ck["nCL"] + ck["nBL"] + 2 - ck["nCWL"])
    ck.setdefault("nRREFD", ck["nRRDL"])
    ck.setdefault("nRFCpb", ck["nRFC"] // 2)
    sizes = [1]
    for lv in std.levels[1:]:
        if lv in ("Rank", "PseudoChannel"):
            sizes.append(int(org.get("ranks", 1)))
        elif lv == "Sid":
            sizes.append(int(org.get("sids", 1)))
        elif lv == "BankGroup":
            sizes.append(int(org["bankgroups"]))
        elif lv == "Bank":
            sizes.append(int(org["banks_per_group"]))
    nbanks = math.prod(sizes[1:])
    ck.setdefault("nREFIpb", ck["nREFI"] // nbanks)
    tx = org["channel_width_bits"] // 8 * org["prefetch"]
    name = doc.get("name", source)
    if ranks is not None and ranks != int((doc.get("organisation") or {}).get("ranks", 1)):
        name = f"{name} ({ranks} ranks)"
    p = Preset(name, std, channels, sizes, org["rows"], org["columns"], tx,
               float(timing["tCK_ps"]), ck, dict(doc.get("energy") or {}), org, doc)
    p.tables = build_tables(std, sizes, ck)
    return p


_CACHE: dict = {}


def load_preset(name_or_path, overrides: dict | None = None, ranks: int | None = None) -> Preset:
    """A preset by name (``HBM2-2000``) or YAML path; ``overrides``: timings, ``ranks``: the rank
    count (see :func:`resolve`)."""
    key = (str(name_or_path), tuple(sorted((overrides or {}).items())), ranks)
    if key in _CACHE:
        return _CACHE[key]
    path = Path(str(name_or_path))
    if not (path.suffix in (".yaml", ".yml") and path.exists()):
        path = preset_dir() / f"{name_or_path}.yaml"
        if not path.exists():
            if Path(str(name_or_path)).is_dir():
                raise ConfigError([("preset", f"{str(name_or_path)!r} is a directory, not a DRAM preset "
                                              "name or YAML file")])
            names = preset_names()
            raise ConfigError([("preset", f"unknown DRAM preset {str(name_or_path)!r}"
                                          f"{did_you_mean(str(name_or_path), names)} (known: {', '.join(names)})")])
    from archsim.config.loader import DuplicateKeyError, read_text_file, yaml_load
    text = read_text_file(path, "DRAM preset")
    try:
        doc = yaml_load(text)
    except DuplicateKeyError as e:
        raise ConfigError([("", f"duplicate key {e.key!r} on line {e.line} (first given on line "
                                f"{e.first_line})")], source=str(path)) from None
    except yaml.YAMLError as e:
        raise ConfigError([("", f"cannot parse YAML: {e}")], source=str(path)) from None
    if not isinstance(doc, dict):
        raise ConfigError([("", "a DRAM preset must be a mapping")], source=str(path))
    p = resolve(doc, source=str(path), overrides=overrides, ranks=ranks)
    _CACHE[key] = p
    return p


def resolved_timing(name_or_path, overrides: dict | None = None, ranks: int | None = None) -> dict:
    """Public view of a resolved preset for other models (e.g. DRAM-PIM): a fresh dict with

    - every timing in CK cycles under its canonical name (``nBL``, ``nCL``, ``nCWL``, ``nRCDRD``,
      ``nRCDWR``, ``nRP``, ``nRAS``, ``nRC``, ``nWR``, ``nRTP``, ``nCCDS``, ``nCCDL``, ``nRRDS``,
      ``nRRDL``, ``nFAW``, ``nWTRS``, ``nWTRL``, ``nRTW``, ``nRFC``, ``nRFCpb``, ``nREFI``,
      ``nREFIpb``, ...), defaults filled in as the controller uses them;
    - ``tCK_ps`` and ``tick_ps`` (controller tick; HBM3 runs on half-CK ticks);
    - ``levels``: ``{level name: size}`` below the channel (``PseudoChannel`` / ``Rank``, ``Sid``,
      ``BankGroup``, ``Bank``), and ``channels``, ``rows``, ``cols_per_row``, ``tx_bytes``,
      ``banks_per_channel``, ``standard``.

    Callers should use this instead of reading ``Preset.timing`` / ``Preset.level_sizes``."""
    p = load_preset(name_or_path, overrides=overrides, ranks=ranks)
    out = {k: int(v) if float(v).is_integer() else v for k, v in p.timing.items()}
    out.update({"tCK_ps": p.tck_ps, "tick_ps": p.tick_ps, "standard": p.standard.name,
                "levels": {lv: int(s) for lv, s in zip(p.standard.levels[1:], p.level_sizes[1:])},
                "channels": p.channels, "rows": p.rows, "cols_per_row": p.cols_per_row,
                "tx_bytes": p.tx_bytes, "banks_per_channel": p.banks_per_channel})
    return out
