"""Weight-tile geometry of a GEMM on CIM macros and per-round aggregation (numpy, vectorised).

A GEMM C[M, N] = A[M, K] @ B[K, N] (``count`` times) keeps B in macros: a tile is the part
of one B that one macro holds, ``tk <= rows`` values of K by ``tn <= cols / (weight_bits *
groups)`` values of N, where ``groups = ceil(bits(B) / weight_bits)`` column groups hold a
wider weight (TranCIM combines two 8-bit groups for INT16 attention). Every input row of A
that meets a tile is one *MAC wave*: the ``tk`` inputs are fed bit-serially,
``ceil(input_bits / input_bits_per_cycle)`` cycles, and the tile's ``tn`` dot products come
out of the adder trees and shift-accumulators.

Tiles are ordered set-major (one set per distinct B), then N tile, then K tile: the K tiles
of one output block sit in neighbouring macros of a round and their partial sums are added
by the adder network between macros; only blocks cut by a round boundary send partial
sums through the global buffer. Input slices are read once per round and broadcast to the
macros of the round that use them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def ceil_div(a, b):
    return -(-a // b)


@dataclass
class TileSet:
    """Per-tile arrays of one GEMM op (all int64, length n_tiles)."""

    set_id: np.ndarray        # which B (head / request), 0..n_sets-1
    kt: np.ndarray            # K-tile index
    nt: np.ndarray            # N-tile index
    tk: np.ndarray            # K extent (macro rows used)
    tn: np.ndarray            # N extent (weights per row used)
    rows: int                 # input rows (MAC waves) each tile meets when dense
    kept: np.ndarray          # waves actually run (sparse attention skips the rest)
    nk: int
    nn: int
    n_sets: int
    per_row: int              # weights per macro row at this weight precision
    groups: int               # column groups per weight

    @property
    def n(self) -> int:
        return int(self.tk.shape[0])


def weight_layout(cols: int, weight_bits: int, b_bits: int) -> tuple[int, int]:
    """(column groups per weight, weights per macro row) for a B of ``b_bits`` bits."""
    groups = ceil_div(int(b_bits), int(weight_bits))
    return groups, int(cols) // (int(weight_bits) * groups)


def kept_waves(rows: int, n_tiles: int, density: float) -> np.ndarray:
    """Waves kept per tile when a fraction ``density`` of (row, tile) blocks is kept.

    ``ceil(density * rows * n_tiles)`` waves in total, spread as evenly as possible over the
    tiles (the first tiles take the remainder); tiles left with no wave are skipped whole.
    """
    n_tiles = int(n_tiles)
    dense = rows * n_tiles
    if density >= 1.0:
        return np.full(n_tiles, rows, np.int64)
    total = int(np.ceil(max(density, 0.0) * dense - 1e-9))
    total = min(max(total, 0), dense)
    q, r = divmod(total, n_tiles) if n_tiles else (0, 0)
    out = np.full(n_tiles, q, np.int64)
    out[:r] += 1
    return out


def make_tiles(M: int, N: int, K: int, count: int, b_shared: bool, R: int, cols: int,
               weight_bits: int, b_bits: int, density: float = 1.0) -> TileSet:
    groups, per_row = weight_layout(cols, weight_bits, b_bits)
    n_sets = 1 if b_shared else int(count)
    rows = int(M) * (int(count) if b_shared else 1)
    nk, nn = ceil_div(int(K), R), ceil_div(int(N), per_row)
    s, n, k = (x.ravel().astype(np.int64) for x in np.meshgrid(np.arange(n_sets), np.arange(nn),
                                                                np.arange(nk), indexing="ij"))
    tk = np.minimum(R, K - k * R)
    tn = np.minimum(per_row, N - n * per_row)
    kept = kept_waves(rows, s.shape[0], density)
    return TileSet(s, k, n, tk, tn, rows, kept, nk, nn, n_sets, per_row, groups)


def round_starts(n_tiles: int, per_round: int) -> np.ndarray:
    return np.arange(0, n_tiles, per_round, dtype=np.int64)


def reduce_rounds(values: np.ndarray, starts: np.ndarray, how: str = "sum") -> np.ndarray:
    if values.shape[0] == 0:
        return np.zeros(0, np.int64)
    if how == "sum":
        return np.add.reduceat(values, starts).astype(np.int64)
    return np.maximum.reduceat(values, starts).astype(np.int64)


def round_of(n_tiles: int, starts: np.ndarray) -> np.ndarray:
    rnd = np.zeros(n_tiles, np.int64)
    rnd[starts[1:]] = 1
    return np.cumsum(rnd)


def buffer_flags(set_id, kt, nt, nk: int, nn: int, starts: np.ndarray):
    """(input_read, psum_out, complete) flags per tile for tiles in round order.

    ``input_read``: first tile of its (round, set, K tile) -- its input slice is read from the
    buffer, the other macros of the round get it broadcast. ``psum_out``: first tile of its
    (round, set, N tile) block -- the block's sum leaves the round once (written to the
    buffer; read back first when the block started in an earlier round, i.e. its first K
    tile is not 0)."""
    n = set_id.shape[0]
    rnd = round_of(n, starts)
    key_in = (rnd * (set_id.max(initial=0) + 1) + set_id) * nk + kt
    _, first_in = np.unique(key_in, return_index=True)
    inp = np.zeros(n, bool)
    inp[first_in] = True
    blk = (rnd * (set_id.max(initial=0) + 1) + set_id) * nn + nt
    out = np.ones(n, bool)
    out[1:] = blk[1:] != blk[:-1]
    # a block whose K tiles all sit in this round leaves as a finished output
    last = np.ones(n, bool)
    last[:-1] = blk[1:] != blk[:-1]
    fi, li = np.nonzero(out)[0], np.nonzero(last)[0]
    complete = np.zeros(n, bool)
    complete[fi] = (kt[fi] == 0) & (kt[li] == nk - 1)
    return inp, out, complete
