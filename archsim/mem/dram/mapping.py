"""Address mapping: which address bits select channel, rank / pseudo-channel, bank group,
bank, row and column.

Named schemes (bit order MSB -> LSB, as in the peer simulator):

- ``RoBaRaCoCh``: row | bank levels (the level right under the channel lowest) | column | channel.
  A whole row lies in one bank.
- ``ChRaBaRoCo``: channel | rank | bank levels (bank lowest) | row | column.
- ``RoCoBaRaCh``: row | column | bank levels | channel (consecutive transactions rotate over banks).
- ``MOP4CLXOR``: 4 consecutive transactions share a row, then the bank levels change; the bank
  indices are XOR-ed with column bits (bank interleaving for streams).
- any other string is a bit order of tokens ``Ro``, ``Co``, ``Ch``, ``Ra`` (rank or
  pseudo-channel), ``Sid``, ``Bg``, ``Ba``, e.g. ``RoBaBgRaCoCh``; levels not named explicitly
  are placed in the ``Ba`` field below the bank (top of the hierarchy lowest).

With ``channel_interleave: cacheline`` (default) the channel bits sit right above the
transaction offset whatever the scheme says (cache-line interleaving across channels).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from archsim.errors import ConfigError
from archsim.mem.dram.kernel import F_CH, F_COL, F_ROW, map_addresses

NAMED = ("RoBaRaCoCh", "ChRaBaRoCo", "RoCoBaRaCh", "MOP4CLXOR")
_TOKENS = ("Sid", "Ro", "Co", "Ch", "Ra", "Bg", "Ba")


@dataclass
class Mapping:
    name: str
    tx_bits: int
    fkind: np.ndarray
    fbits: np.ndarray
    mode: int
    xor_mode: int
    row_bits: int
    col_bits: int

    def decode(self, preset, addrs: np.ndarray):
        addrs = np.ascontiguousarray(addrs, dtype=np.int64)
        n = len(addrs)
        ch = np.empty(n, np.int64); bank = np.empty(n, np.int64)
        row = np.empty(n, np.int64); col = np.empty(n, np.int64)
        t = preset.tables
        map_addresses(addrs, self.tx_bits, self.fkind, self.fbits, self.mode, self.xor_mode,
                      t.n_levels, t.level_sizes, self.row_bits, self.col_bits, ch, bank, row, col)
        return ch, bank, row, col


def _log2(n: int) -> int:
    return int(round(math.log2(n))) if n > 0 else 0


def build_mapping(preset, name: str = "RoBaRaCoCh", channels: int | None = None,
                  xor: str = "none", channel_interleave: str = "cacheline") -> Mapping:
    std = preset.standard
    L = len(std.levels)
    C = channels or preset.channels
    ch_bits = _log2(C)
    lv_bits = {lv: _log2(preset.level_sizes[lv]) for lv in range(1, L)}
    row_bits = _log2(preset.rows)
    col_bits = _log2(preset.cols_per_row)
    tx_bits = _log2(preset.tx_bytes)
    by_name = {n: i for i, n in enumerate(std.levels)}
    rank_lv = 1 if std.levels[1] in ("Rank", "PseudoChannel") else None
    fields: list[tuple[int, int]] = []       # LSB first
    mode = 0
    if name == "RoBaRaCoCh":
        fields = [(F_CH, ch_bits), (F_COL, col_bits)] + [(lv, lv_bits[lv]) for lv in range(1, L)] \
            + [(F_ROW, row_bits)]
    elif name == "ChRaBaRoCo":
        fields = [(F_COL, col_bits), (F_ROW, row_bits)] + [(lv, lv_bits[lv]) for lv in range(L - 1, 0, -1)] \
            + [(F_CH, ch_bits)]
    elif name == "RoCoBaRaCh":
        fields = [(F_CH, ch_bits)] + [(lv, lv_bits[lv]) for lv in range(1, L)] + [(F_COL, col_bits), (F_ROW, row_bits)]
    elif name == "MOP4CLXOR":
        if col_bits < 2:
            raise ConfigError([("mapping", "MOP4CLXOR needs at least 4 transactions per row")])
        fields = [(F_CH, ch_bits)]
        mode = 1
    else:
        toks = re.findall(r"Sid|Ro|Co|Ch|Ra|Bg|Ba", name)
        if not toks or "".join(toks) != name or len(set(toks)) != len(toks) \
                or not {"Ro", "Co", "Ba"} <= set(toks):
            raise ConfigError([("mapping", f"unknown address mapping {name!r}: use one of {', '.join(NAMED)} "
                                           "or a bit order of Ro/Ba/Bg/Ra/Sid/Co/Ch tokens containing Ro, Co and Ba")])
        explicit = set()
        tokmap = {}
        if "Ra" in toks and rank_lv is not None:
            tokmap["Ra"] = [rank_lv]; explicit.add(rank_lv)
        if "Sid" in toks and "Sid" in by_name:
            tokmap["Sid"] = [by_name["Sid"]]; explicit.add(by_name["Sid"])
        if "Bg" in toks:
            tokmap["Bg"] = [by_name["BankGroup"]]; explicit.add(by_name["BankGroup"])
        rest = [lv for lv in range(1, L - 1) if lv not in explicit]
        tokmap["Ba"] = rest + [L - 1]
        for tok in reversed(toks):              # LSB first
            if tok == "Ro":
                fields.append((F_ROW, row_bits))
            elif tok == "Co":
                fields.append((F_COL, col_bits))
            elif tok == "Ch":
                fields.append((F_CH, ch_bits))
            else:
                fields += [(lv, lv_bits[lv]) for lv in tokmap.get(tok, [])]
        if "Ch" not in toks:
            fields.insert(0, (F_CH, ch_bits))
    if channel_interleave == "cacheline" and mode == 0:
        fields = [(F_CH, ch_bits)] + [f for f in fields if f[0] != F_CH]
    xor_mode = {"none": 0, "bank": 1, "channel": 2, "both": 3}[xor]
    fk = np.array([f[0] for f in fields], dtype=np.int64)
    fb = np.array([f[1] for f in fields], dtype=np.int64)
    return Mapping(name, tx_bits, fk, fb, mode, xor_mode, row_bits, col_bits)
