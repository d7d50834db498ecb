"""Tile-size and loop-order selection for a GEMM on a systolic array with double-buffered
on-chip buffers.

A tile is (tm, tn, tk); the tile loop nest is ``g -> outer -> middle -> k`` with k
innermost (partial sums stay in the output buffer until the last k tile), and the outer
loop over either N tiles (``"nm"``) or M tiles (``"mn"``). Candidates are multiples of the
array's spatial extents, clipped to the problem; every candidate that fits the buffers is
scored by an estimate of its time (compute on the arrays vs. off-chip traffic at the
memory's peak) and traffic, and the best is kept. Evaluation is vectorised over candidates.

Panel residency: when the outer loop's whole operand panel fits its buffer twice over (the
A rows of an M tile, tm x K, under ``"mn"``; the B columns of an N tile, K x tn, under
``"nm"``), the panel is loaded once, on the first pass of the middle loop, and stays while
the middle loop sweeps the other operand; the next panel loads into the other half, waiting
only for the panel two back. This is how a TPU keeps a layer's activations in its unified
buffer while the weights stream. A panel is taken only where it saves traffic.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from archsim.errors import LoweringError
from archsim.uarch.systolic.folds import fold_counts_many, gemm_compute_cycles_many
from archsim.uarch.systolic.pipeline import pipeline_cycles

#: tilings within this fraction of the best estimate are timed (at most TIMED_MAX per loop order)
TIMED_NEAR = 0.05
TIMED_MAX = 12


class _Cand(NamedTuple):
    """A candidate tiling, ranked by ``rank``: its timed cycles, or the estimate's score when
    untimed."""
    rank: float
    order: str
    tm: int
    tn: int
    tk: int
    est: float
    traffic: float
    moved: float          # bytes through off-chip and shared memory


@dataclass(frozen=True)
class Tiling:
    tm: int
    tn: int
    tk: int
    order: str               # "nm": N tiles outer, M tiles middle; "mn": the reverse
    est_cycles: float
    est_traffic: float
    panel: bool = False      # the outer operand's panel stays on chip over the middle loop


def _candidates(X: int, base: int) -> np.ndarray:
    vals = {X}
    v = max(1, base)
    while v < X:
        vals.add(v)
        v *= 2
    # also multiples of base that split X into near-equal parts
    for parts in (2, 3, 4, 6, 8):
        t = -(-X // parts)
        t = -(-t // base) * base
        if 0 < t < X:
            vals.add(t)
    return np.array(sorted(vals), dtype=np.int64)


@lru_cache(maxsize=4096)
def choose_tiles(M: int, N: int, K: int, count: int, dataflow: int, R: int, C: int, n_arrays: int,
                 a_bytes: float, b_bytes: float, acc_bytes: float,
                 ifmap: float, filt: float, ofmap: float, unified: float,
                 a_off: bool, b_off: bool, b_shared: bool, bytes_per_cycle: float,
                 preload_overlap: bool = False, a_sh: bool = False, b_sh: bool = False,
                 shared_bytes_per_cycle: float = 0.0, latency: float = 0.0, c_off: bool = False,
                 c_bytes: float = 0.0, c_sh: bool = False, time_slack: float = 0.01) -> Tiling:
    """Best tiling; raises LoweringError if not even the smallest tile fits. ``a_off`` /
    ``b_off``: the operand's tiles come from off-chip memory (``est_traffic`` counts them);
    ``a_sh`` / ``b_sh``: from the arrays' shared on-chip memory, whose bandwidth
    (``shared_bytes_per_cycle``) bounds the estimate like the off-chip memory's.

    ``latency``: the off-chip memory's unloaded latency in cycles. With two slots per operand
    a load can only be issued when the compute two tiles back has freed its slot, so every two
    off-chip loads of an array take at least latency + their transfer + a tile's compute: a
    third bound, which keeps small tiles from looking free when memory-bound.

    With an operand from memory or the shared memory, the tilings the estimate ranks within
    ``TIMED_NEAR`` of its best (at most ``TIMED_MAX`` per loop order) are timed by replaying
    their tile pipeline (:func:`archsim.uarch.systolic.pipeline.pipeline_cycles`; ``c_off`` /
    ``c_sh``: the output tiles go to memory / the shared memory, ``c_bytes`` bytes an element),
    and of those within ``time_slack`` of the fastest the one that moves the fewest bytes: edge
    tiles (a one-column edge tile costs a whole fold for a tiny load) and uneven loads chain
    through the slots in ways the estimate averages away, with or without a latency."""
    # spatial bases per dataflow: os (M on rows, N on cols), ws (K rows, N cols), is (K rows, M cols)
    bm = R if dataflow == 0 else (C if dataflow == 2 else 16)
    bn = C if dataflow in (0, 1) else 16
    bk = R if dataflow in (1, 2) else 16
    cm, cn, ck = _candidates(M, bm), _candidates(N, bn), _candidates(K, bk)
    tm, tn, tk = (x.ravel() for x in np.meshgrid(cm, cn, ck, indexing="ij"))
    a_t = tm * tk * a_bytes
    b_t = tk * tn * b_bytes
    c_t = tm * tn * acc_bytes
    if unified > 0:
        fits = 2 * (a_t + b_t + c_t) <= unified
    else:
        fits = (2 * a_t <= ifmap) & (2 * b_t <= filt) & (2 * c_t <= ofmap)
    if not fits.any():
        smallest = (f"A {cm[0]}x{ck[0]}, B {ck[0]}x{cn[0]}, C {cm[0]}x{cn[0]}")
        raise LoweringError(
            f"no tile of GEMM {M}x{N}x{K} fits the on-chip buffers with double buffering "
            f"(smallest tile {smallest}); enlarge sram sizes", path="sram")
    tm, tn, tk = tm[fits], tn[fits], tk[fits]
    nm, nn, nk = -(-M // tm), -(-N // tn), -(-K // tk)
    # compute cycles of all tiles (full tiles approximate edge tiles here)
    if preload_overlap and dataflow != 0:
        # same arithmetic as the cost kernel's tile_cycles: folds of max(T, R); the drain is paid
        # once per array at the end of the op (added below)
        rf, cf, T = fold_counts_many(dataflow, R, C, tm, tn, tk)
        per_tile = (rf * cf * np.maximum(T, R)).astype(np.float64)
    else:
        per_tile = gemm_compute_cycles_many(dataflow, R, C, tm, tn, tk).astype(np.float64)
    steps = nm * nn * nk * count
    # whole panels of the outer operand, double-buffered in place of its tiles
    a_pan, b_pan = tm * K * a_bytes, K * tn * b_bytes
    if unified > 0:
        panel_a = 2 * (a_pan + b_t[fits] + c_t[fits]) <= unified
        panel_b = 2 * (a_t[fits] + b_pan + c_t[fits]) <= unified
    else:
        panel_a, panel_b = 2 * a_pan <= ifmap, 2 * b_pan <= filt
    near = {}                  # False: tile reuse only; True: a resident panel of the outer operand
    timed = a_off or b_off or a_sh or b_sh
    for order in ("nm", "mn"):
        outer = (nn if order == "nm" else nm) * count
        inner = steps // outer
        comp = np.ceil(outer / n_arrays) * inner * per_tile
        if preload_overlap and dataflow != 0:
            comp = comp + (R + C - 2)
        # traffic: k innermost; A reloaded per outer-N tile unless K and M tiles stay put
        if order == "nm":
            a_loads = np.where((nk == 1) & (nm == 1), 1, nn) * M * K * count
            b_tiles = np.where(nk == 1, 1, nm) * K * N * (1 if b_shared else count)
            b_panel = np.where(panel_b, 1, nm) * K * N * (1 if b_shared else count)
            variants = ((False, a_loads, b_tiles, np.ones_like(nk, bool)),
                        (True, a_loads, b_panel, panel_b & (nk > 1) & (nm > 1)))
        else:
            b_loads = np.where((nk == 1) & (nn == 1), 1, nm) * K * N * (1 if b_shared else count)
            a_tiles = np.where(nk == 1, 1, nn) * M * K * count
            a_panel = np.where(panel_a, 1, nn) * M * K * count
            variants = ((False, a_tiles, b_loads, np.ones_like(nk, bool)),
                        (True, a_panel, b_loads, panel_a & (nk > 1) & (nn > 1)))
        share = np.ceil(outer / n_arrays) / outer          # one array's part of the op
        for pan, a_loads, b_loads, ok in variants:
            if not ok.any():
                continue
            traffic = a_loads * a_bytes * a_off + b_loads * b_bytes * b_off
            mem = traffic / bytes_per_cycle
            moved = traffic
            if a_sh or b_sh:
                shared = a_loads * a_bytes * a_sh + b_loads * b_bytes * b_sh
                mem = np.maximum(mem, shared / shared_bytes_per_cycle)
                moved = traffic + shared
            bound = np.maximum(comp, mem)
            if latency > 0 and (a_off or b_off):
                # off-chip tile loads, edge tiles included (an A and a B tile of one step travel
                # together): each pass over an operand loads all its tiles
                loads = np.maximum(a_loads / (M * K) * (nm * nk) * a_off,
                                   b_loads / (K * N) * (nk * nn) * b_off) * share
                bound = np.maximum(bound, 0.5 * (loads * latency + traffic * share / bytes_per_cycle + comp))
            est = bound + 0.5 * np.minimum(comp, mem) / np.maximum(steps, 1)
            # prefer fewer, larger tiles among equals (less per-tile overhead)
            score = np.where(ok, est * (1 + 1e-9 * steps), np.inf)
            if timed:
                # the candidates near the best estimate, kept for timing
                idx = np.argsort(score, kind="stable")[:TIMED_MAX]
                idx = idx[score[idx] <= score[idx[0]] * (1 + TIMED_NEAR)]
            else:
                idx = [int(np.argmin(score))]
            for i in idx:
                near.setdefault(pan, []).append(_Cand(float(score[i]), order, int(tm[i]), int(tn[i]),
                                                      int(tk[i]), float(est[i]), float(traffic[i]), float(moved[i])))
    if timed:
        # time each near candidate's tile pipeline; of those within time_slack of the fastest,
        # the one that moves the fewest bytes off chip, then through the shared memory, then the
        # fastest (the first among equals)
        timed_cs = [(c._replace(rank=float(pipeline_cycles(
            M, N, K, count, c.tm, c.tn, c.tk, c.order == "nm", pan, a_off, b_off, c_off, b_shared, a_bytes,
            b_bytes, c_bytes, n_arrays, dataflow, R, C, preload_overlap, bytes_per_cycle, int(round(latency)),
            a_sh, b_sh, c_sh, max(shared_bytes_per_cycle, 1e-9)))), pan) for pan, cs in near.items() for c in cs]
        fastest = min(c.rank for c, _ in timed_cs)
        pick, pan = min(((c, p) for c, p in timed_cs if c.rank <= fastest * (1 + time_slack)),
                        key=lambda cp: (cp[0].traffic, cp[0].moved, cp[0].rank))
        return Tiling(pick.tm, pick.tn, pick.tk, pick.order, pick.est, pick.traffic, pan)
    best = {pan: min(cs, key=lambda c: c.rank) for pan, cs in near.items()}   # the first among equals
    # a resident panel is taken only where it saves traffic (off-chip and shared) over the best
    # tiling without one (the estimate alone would trade larger tiles for more, smaller ones at
    # equal traffic)
    pick, pan = best[False], False
    if True in best and best[True].moved < pick.moved and best[True].rank < pick.rank:
        pick, pan = best[True], True
    return Tiling(pick.tm, pick.tn, pick.tk, pick.order, pick.est, pick.traffic, pan)
