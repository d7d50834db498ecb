"""Parsing of quantities with units: "1 GHz", "512 KiB", "1.2 TB/s", "3.9 pJ/bit".

Every parser accepts a bare number (taken in the base unit) or a string with a
unit; the result is a float in the base unit (Hz, bytes, bytes/s, s, pJ).
"""
from __future__ import annotations

import re

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_RE = re.compile(rf"^\s*({_NUM})\s*([A-Za-z/%]*)\s*$")

_SI = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15}
_BIN = {"Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40}

FREQUENCY = {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}
TIME = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12}
ENERGY = {"J": 1e12, "mJ": 1e9, "uJ": 1e6, "nJ": 1e3, "pJ": 1.0, "fJ": 1e-3}
POWER = {"W": 1.0, "mW": 1e-3, "uW": 1e-6, "kW": 1e3}
AREA = {"mm2": 1.0, "um2": 1e-6}


def _bytes_units() -> dict[str, float]:
    out = {"B": 1.0, "b": 0.125, "bit": 0.125, "bits": 0.125}
    for p, f in _SI.items():
        if p:
            out[p + "B"] = f
            out[p + "b"] = f / 8
    out["kB"] = 1e3
    for p, f in _BIN.items():
        out[p + "B"] = f
        out[p + "b"] = f / 8
    return out


BYTES = _bytes_units()
BANDWIDTH = {k + "/s": v for k, v in BYTES.items()} | {k + "ps": v for k, v in BYTES.items() if k.endswith("B")}


class UnitError(ValueError):
    """A value whose unit is missing, unknown or of the wrong kind."""


def _parse(value, table: dict[str, float], kind: str, default_unit: str | None) -> float:
    if isinstance(value, bool):
        raise UnitError(f"expected a {kind}, got a boolean")
    if isinstance(value, (int, float)):
        return float(value) * (table[default_unit] if default_unit else 1.0)
    if not isinstance(value, str):
        raise UnitError(f"expected a {kind} (number or string with unit), got {type(value).__name__}")
    m = _RE.match(value)
    if not m:
        raise UnitError(f"cannot parse {value!r} as a {kind}")
    num, unit = float(m.group(1)), m.group(2)
    if unit == "":
        return num * (table[default_unit] if default_unit else 1.0)
    if unit not in table:
        known = ", ".join(sorted(table, key=lambda u: (len(u), u))[:12])
        raise UnitError(f"unknown {kind} unit {unit!r} in {value!r} (expected one of {known}, ...)")
    return num * table[unit]


def parse_frequency(v) -> float:
    """Hz. Bare numbers are Hz."""
    return _parse(v, FREQUENCY, "frequency", "Hz")


def parse_bytes(v) -> float:
    """Bytes. Bare numbers are bytes."""
    return _parse(v, BYTES, "size", "B")


def parse_bandwidth(v) -> float:
    """Bytes per second. Bare numbers are bytes/s."""
    return _parse(v, BANDWIDTH, "bandwidth", "B/s")


def parse_time(v) -> float:
    """Seconds. Bare numbers are seconds."""
    return _parse(v, TIME, "time", "s")


def parse_energy(v) -> float:
    """Picojoules. Bare numbers are pJ."""
    return _parse(v, ENERGY, "energy", "pJ")


def parse_power(v) -> float:
    """Watts. Bare numbers are W."""
    return _parse(v, POWER, "power", "W")


def format_bytes(n: float) -> str:
    for unit, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= f:
            return f"{n / f:.3g} {unit}"
    return f"{n:.0f} B"
