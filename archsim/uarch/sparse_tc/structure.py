"""Non-zero structure of one GEMM, in the orientation of the sparse tensor core.

The core's A operand is the layer's weight, transposed (rows = output features Mh, columns
= the reduction K), and its B operand is the activation, transposed (K x Nh tokens): the
usual mapping of pruned-weight inference (W . X^T). Per GEMM the lowerer needs, depending
on the variant:

- ``acnt[rb, k]``   non-zeros of A's column k within warp row-block rb (outer product);
- ``comp[rb, g]``   1 if every row of row-block rb has <= n non-zeros in the aligned
                    group g of m along K (N:M structured core);
- row structure     (row merge) the column indices of each A row's non-zeros (CSR, mask
                    mode) or the non-zero count per (row, k chunk) (statistics mode);
- ``bcnt[k, cb]``   non-zeros of B's row k within warp column-block cb;
- ``bscat[k, cb]``  cycles to scatter the products of B row k's non-zeros (compressed,
                    in groups of b_group) into the banked accumulation buffer: per group
                    the largest number of its columns that fall in one bank.

Masks are drawn per op from the workload's seed (:mod:`archsim.workload.sparsity`); for
large weights (``structure: auto``) the same quantities are drawn as per-tile statistics
of the same distribution: binomial counts, Bernoulli compliance flags.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numba import njit

from archsim.workload.sparsity import (activation_mask, binom_counts, group_ok_prob, op_rng, prunable,
                                       weight_mask)


@njit(cache=True)
def scatter_cycles(xt, wn, group, banks):
    """xt: uint8 (K, Nh) activation mask transposed. For each (k, column block) the
    cycles to scatter its compressed non-zeros in groups of ``group``: per group, the
    largest count of its columns in one bank (bank = column within block mod ``banks``)."""
    K, Nh = xt.shape
    CB = (Nh + wn - 1) // wn
    out = np.zeros((K, CB), np.int32)
    load = np.zeros(banks, np.int64)
    for k in range(K):
        for cb in range(CB):
            c0 = cb * wn
            c1 = min(Nh, c0 + wn)
            tot = 0
            cnt = 0
            mx = 0
            for b in range(banks):
                load[b] = 0
            for c in range(c0, c1):
                if xt[k, c]:
                    bk = (c - c0) % banks
                    load[bk] += 1
                    if load[bk] > mx:
                        mx = load[bk]
                    cnt += 1
                    if cnt == group:
                        tot += mx
                        cnt = 0
                        mx = 0
                        for b in range(banks):
                            load[b] = 0
            if cnt > 0:
                tot += mx
            out[k, cb] = tot
    return out


def dense_scatter(cols: int, group: int, banks: int) -> int:
    """Scatter cycles of a dense B row segment of ``cols`` consecutive columns: per group
    of ``group`` consecutive columns, ceil(group / banks) (consecutive columns spread
    round-robin over the banks)."""
    tot, c = 0, 0
    while c < cols:
        g = min(group, cols - c)
        tot += -(-g // banks)
        c += g
    return tot


@dataclass
class OpStructure:
    """Per-op structure arrays (absent ones are empty)."""

    dense_a: bool = True
    dense_b: bool = True
    stats: bool = False
    acnt: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))     # [RB, K]
    comp: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int8))      # [RB, K4]
    rm_ptr: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # [Mh+1] CSR
    rm_idx: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))   # [nnz] k of each
    rm_p: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))     # [Mh, J] stats
    bcnt: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))     # [K, CB]
    bscat: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))    # [K, CB]
    rb_nnz: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))   # [RB, J] A non-zeros
    b_nnz: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))    # [J, CB] B non-zeros
    a_density: float = 1.0
    b_density: float = 1.0


def _pad_to(x: np.ndarray, axis: int, size: int) -> np.ndarray:
    if x.shape[axis] == size:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (0, size - x.shape[axis])
    return np.pad(x, pad)


def _chunk_sum(x: np.ndarray, axis: int, bk: int) -> np.ndarray:
    """Sum along ``axis`` in chunks of bk (last chunk partial)."""
    n = x.shape[axis]
    J = -(-n // bk)
    x = _pad_to(x, axis, J * bk)
    shp = list(x.shape)
    shp[axis:axis + 1] = [J, bk]
    return x.reshape(shp).sum(axis=axis + 1)


def build_structure(op, variant: str, wm: int, wn: int, bk: int, outer, stc) -> OpStructure:
    """Draw (or take) the non-zero structure the variant needs for one GEMM op."""
    Mh, Nh, K = int(op.N), int(op.M), int(op.K)
    RB, CB = -(-Mh // wm), -(-Nh // wn)
    J = -(-K // bk)
    s = OpStructure()
    attrs = op.attrs.get("sparsity") if prunable(op) else None
    if variant == "tc_dense" or attrs is None:
        return s
    dA, dB = float(op.b.density), float(op.a.density)
    s.a_density, s.b_density = dA, dB
    pattern = attrs["pattern"]
    mask = attrs.get("mask")
    dense_a = mask is None and (pattern == "dense" or (pattern != "nm" and dA >= 1.0))
    s.dense_a = dense_a
    s.dense_b = (dB >= 1.0 and attrs.get("activation_mask") is None) or variant == "stc_2to4"
    seed = attrs["seed"]
    big = K * Mh > attrs["mask_max_elements"]
    stats = mask is None and (attrs["structure"] == "stats" or (attrs["structure"] == "auto" and big))
    if stats and pattern == "block":
        stats = False                       # block masks are drawn at block granularity (cheap)
    if stats and variant == "stc_2to4" and np.isnan(group_ok_prob(pattern, dA, attrs["n"], attrs["m"],
                                                                 stc.n, stc.m)):
        stats = False
    s.stats = stats
    rows_rb = np.minimum(wm, Mh - np.arange(RB) * wm)                      # rows in each row block
    if not dense_a:
        rng = op_rng(seed, op.name, "weights")
        if not stats:
            W = mask if mask is not None else weight_mask(K, Mh, pattern, dA, attrs["n"], attrs["m"],
                                                         attrs["block"], rng)       # (K, Mh)
            if variant == "ds_stc":
                s.acnt = _pad_to(W, 1, RB * wm).reshape(K, RB, wm).sum(2, dtype=np.int32).T.copy()
                s.rb_nnz = _chunk_sum(s.acnt, 1, bk).astype(np.int64)
            elif variant == "stc_2to4":
                K4 = -(-K // stc.m)
                g = _pad_to(W, 0, K4 * stc.m).reshape(K4, stc.m, Mh).sum(1) <= stc.n   # (K4, Mh)
                g = _pad_to(g, 1, RB * wm)
                if RB * wm > Mh:
                    g[:, Mh:] = True
                s.comp = g.reshape(K4, RB, wm).all(2).T.astype(np.int8).copy()
            elif variant == "rm_stc":
                WT = np.ascontiguousarray(W.T)                                     # (Mh, K)
                rows, ks = np.nonzero(WT)
                s.rm_idx = ks.astype(np.int32)
                s.rm_ptr = np.concatenate(([0], np.cumsum(np.bincount(rows, minlength=Mh)))).astype(np.int64)
                per_row_chunk = _chunk_sum(WT.astype(np.int32), 1, bk)              # (Mh, J)
                s.rb_nnz = _pad_to(per_row_chunk, 0, RB * wm).reshape(RB, wm, J).sum(1).astype(np.int64)
        else:
            p = attrs["n"] / attrs["m"] if pattern == "nm" else dA
            if variant == "ds_stc":
                s.acnt = binom_counts(np.broadcast_to(rows_rb[:, None], (RB, K)), p, rng).astype(np.int32)
                s.rb_nnz = _chunk_sum(s.acnt, 1, bk).astype(np.int64)
            elif variant == "stc_2to4":
                K4 = -(-K // stc.m)
                q = group_ok_prob(pattern, dA, attrs["n"], attrs["m"], stc.n, stc.m)
                probs = q ** rows_rb.astype(np.float64)
                s.comp = (rng.random((RB, K4)) < probs[:, None]).astype(np.int8)
            elif variant == "rm_stc":
                kts = np.minimum(bk, K - np.arange(J) * bk)
                if pattern == "nm" and bk % attrs["m"] == 0 and K % attrs["m"] == 0:
                    s.rm_p = np.broadcast_to((kts * attrs["n"] // attrs["m"]).astype(np.int32), (Mh, J)).copy()
                else:
                    s.rm_p = binom_counts(np.broadcast_to(kts[None, :], (Mh, J)), p, rng).astype(np.int32)
                s.rb_nnz = _pad_to(s.rm_p, 0, RB * wm).reshape(RB, wm, J).sum(1).astype(np.int64)
    if not s.dense_b and variant in ("ds_stc", "rm_stc"):
        X = attrs.get("activation_mask")                                         # (Nh, K) if given
        if X is None:
            X = activation_mask(Nh, K, dB, op_rng(seed, op.name, "activations"))
        XT = np.ascontiguousarray(X.T)                                          # (K, Nh)
        s.bcnt = _pad_to(XT, 1, CB * wn).reshape(K, CB, wn).sum(2, dtype=np.int32)
        s.b_nnz = _chunk_sum(s.bcnt, 0, bk).astype(np.int64)                  # (J, CB)
        if variant == "ds_stc":
            s.bscat = scatter_cycles(XT.view(np.uint8), wn, outer.b_group, outer.acc_banks)
    return s
