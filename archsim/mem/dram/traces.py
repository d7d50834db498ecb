"""Memory traces: the synthetic patterns of the peer reference set, and trace-file parsing.

:func:`pattern` re-implements the generator in ``validation/dram`` (``gen_traces.py`` of the
reference runs) with numpy, parameterised by the geometry of the simulated memory so that
"row stride" and "same-bank stride" mean the same on every standard.
"""
from __future__ import annotations

import random
from pathlib import Path

import numpy as np

from archsim.errors import ConfigError, InputFileError

MiB = 1 << 20
GiB = 1 << 30
PATTERNS = ("seq_read", "stride_row", "stride_row_skew", "stride_bank", "rand_read", "mix_2r1w", "gemv")


def geometry(preset, channels: int | None = None) -> dict:
    return {"tx": preset.tx_bytes, "channels": channels or preset.channels,
            "cols": preset.cols_per_row, "banks": preset.banks_per_channel}


def pattern(name: str, tx: int, channels: int, cols: int, banks: int, scale: float = 1.0,
            seed: int = 12345) -> tuple[np.ndarray, np.ndarray]:
    """(byte addresses int64, is_write bool) of a named pattern."""
    row_span = tx * channels * cols
    bank_span = row_span * banks
    n = lambda x: max(1, int(x * scale))
    if name == "seq_read":
        a = np.arange(n(64 * MiB // tx), dtype=np.int64) * tx
        return a, np.zeros(len(a), bool)
    if name == "stride_row":
        a = (np.arange(n(32768), dtype=np.int64) * row_span) % GiB
        return a, np.zeros(len(a), bool)
    if name == "stride_row_skew":
        a = (np.arange(n(65536), dtype=np.int64) * (row_span + tx)) % GiB
        return a, np.zeros(len(a), bool)
    if name == "stride_bank":
        a = (np.arange(n(8192), dtype=np.int64) * bank_span) % GiB
        return a, np.zeros(len(a), bool)
    if name == "rand_read":
        rng = random.Random(seed)
        k = GiB // tx
        a = np.fromiter((rng.randrange(k) for _ in range(n(262144))), dtype=np.int64) * tx
        return a, np.zeros(len(a), bool)
    if name == "mix_2r1w":
        S = n(16 * MiB // tx)
        base = np.array([0, 256 * MiB + row_span, 512 * MiB + 2 * row_span], dtype=np.int64)
        a = (base[None, :] + (np.arange(S, dtype=np.int64) * tx)[:, None]).reshape(-1)
        w = np.tile(np.array([False, False, True]), S)
        return a, w
    if name == "gemv":
        M, K, R = n(4096), 4096, 8
        pitch = K * 2
        Y0 = GiB - 64 * MiB
        out_a, out_w = [], []
        cs = np.arange(0, pitch, tx, dtype=np.int64)
        for t0 in range(0, M, R):
            rows = np.arange(t0, min(t0 + R, M), dtype=np.int64)
            blk = (rows[None, :] * pitch + cs[:, None]).reshape(-1)
            out_a.append(blk)
            out_w.append(np.zeros(len(blk), bool))
            out_a.append(np.array([Y0 + ((t0 * 2) // tx) * tx], dtype=np.int64))
            out_w.append(np.ones(1, bool))
        return np.concatenate(out_a), np.concatenate(out_w)
    raise ConfigError([("pattern", f"unknown trace pattern {name!r} (known: {', '.join(PATTERNS)})")])


def read_trace(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse ``LD 0xADDR`` / ``ST 0xADDR`` lines, or CSV ``cycle,op,addr`` (optional header).
    Returns (addresses, is_write, earliest issue cycle). Blank lines and ``#`` comments are
    skipped; a malformed line raises :class:`InputFileError` naming its line number."""
    from archsim.config.loader import read_text_file
    text = read_text_file(Path(path), "trace")
    addrs, writes, cycles = [], [], []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if "," in line:
            parts = [x.strip() for x in line.split(",")]
            if lineno == 1 and parts[0].lower() == "cycle":
                continue
            if len(parts) != 3:
                raise InputFileError(f"{path}:{lineno}: expected 'cycle,op,addr', got {raw!r}")
            cyc, op, ad = parts
            try:
                cyc_v = int(cyc, 0)
            except ValueError:
                raise InputFileError(f"{path}:{lineno}: bad cycle {cyc!r}") from None
            if cyc_v < 0 or cyc_v >= 1 << 62:
                raise InputFileError(f"{path}:{lineno}: cycle {cyc_v} out of range (0 to 2**62)")
        else:
            parts = line.split()
            if len(parts) != 2:
                raise InputFileError(f"{path}:{lineno}: expected 'LD|ST ADDR', got {raw!r}")
            op, ad = parts
            cyc_v = 0
        op = op.upper()
        if op in ("LD", "R", "RD", "READ"):
            w = False
        elif op in ("ST", "W", "WR", "WRITE"):
            w = True
        else:
            raise InputFileError(f"{path}:{lineno}: unknown operation {op!r} (expected LD or ST)")
        try:
            a = int(ad, 16) if ad.lower().startswith("0x") else int(ad)
        except ValueError:
            raise InputFileError(f"{path}:{lineno}: bad address {ad!r}") from None
        if a < 0 or a >= 1 << 63:
            raise InputFileError(f"{path}:{lineno}: address {ad!r} out of range (0 to 2**63 - 1)")
        addrs.append(a); writes.append(w); cycles.append(cyc_v)
    if not addrs:
        raise InputFileError(f"{path}: no requests in trace")
    return (np.array(addrs, dtype=np.int64), np.array(writes, dtype=bool),
            np.array(cycles, dtype=np.int64))
