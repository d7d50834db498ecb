"""CTA tiling of a GEMM on a GPU: tile shape and split-K choice, wave quantisation across
SMs, and the HBM traffic of each wave after L2 reuse.

A GEMM of ``count`` independent C[M,N] = A[M,K] @ B[K,N] is cut into CTA tiles (tm x tn,
optionally split along K into ``s`` slices). CTAs run in waves of ``sm.count x
max_ctas_per_sm``; every CTA of a wave streams its A and B panels through shared memory.
CTAs are rasterised in swizzle groups (``tiles.swizzle`` M tiles at a time), so a wave
touches a near-square block of tiles and panels shared by CTAs of the wave are fetched from
HBM once (L2 hit for the others). A panel used by the previous wave is still in L2 if that
wave's panels fit in L2; an operand that fits in half the L2 is fetched only once.

The library picks, per shape, the candidate with the smallest estimated time (as cuBLAS'
heuristics / autotuning do): waves x per-CTA time (MMA issue, L2 feed, in-flight-limited
memory pull, shared-memory fragment reads, main-loop overhead) against HBM traffic at the
memory bandwidth, plus the part the kernel's first and last chunk leave unoverlapped.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numba import njit


CHUNKS = 8          # k-loop chunks per wave of a GEMM kernel (loads run two chunks ahead)


@dataclass(frozen=True)
class GemmPlan:
    tm: int                 # CTA tile rows (compute granule, padded)
    tn: int
    split: int              # split-K slices
    per_sm: int             # co-resident CTAs per SM
    kk: int                 # K per slice
    ctas: int
    waves: int
    wave_ctas: tuple        # CTAs in each wave
    wave_hbm_a: tuple       # HBM bytes of A per wave
    wave_hbm_b: tuple       # HBM bytes of B per wave
    wave_c: tuple           # output bytes per wave (written once, k complete)
    wave_macs: tuple        # useful MACs per wave
    est_cycles: float


@njit(cache=True)
def k_depth(tk, bits):
    """K depth of one main-loop iteration for operands of ``bits``: ``tiles.k`` is the depth for
    16-bit operands, and a pipeline stage holds the same bytes whatever the width, so 8-bit
    operands run twice as deep (CUTLASS / cuBLAS Ampere: 128x256x32 FP16 against 128x256x64
    INT8 tiles; Hopper: k 64 FP16, 128 FP8) and 32-bit ones half as deep."""
    return max(1, (tk * 16) // max(1, bits))


def _round_up(x: int, g: int) -> int:
    return -(-x // g) * g


def wave_traffic(M, N, K, G, b_shared, tm, tn, s, ctas_per_wave, swizzle, a_bpe, b_bpe,
                 l2_bytes, a_resident, b_resident):
    """Per-wave (ctas, hbm_a_bytes, hbm_b_bytes, useful_macs, out_elems) arrays. ``M``: the rows
    of every one of the ``G`` problems, or a sequence of each problem's rows (a grouped GEMM:
    the problems' tiles one after the other in one grid, e.g. a mixture-of-experts layer's
    experts with their own token counts)."""
    Ms = np.broadcast_to(np.asarray(M, np.int64), (G,))
    nm_g = -(-Ms // tm)                       # M tiles of each problem
    nn = -(-N // tn)
    kk = -(-K // s)
    per_g = nm_g * nn * s
    ends = np.cumsum(per_g)
    ctas = int(ends[-1])
    c = np.arange(ctas, dtype=np.int64)
    g = np.searchsorted(ends, c, side="right")
    r = c - (ends - per_g)[g]
    nm = nm_g[g]
    sidx = r // (nm * nn)
    r = r % (nm * nn)
    sw = np.maximum(1, np.minimum(swizzle, nm))
    grp = r // (sw * nn)
    in_grp = r % (sw * nn)
    rows_in = np.minimum(sw, nm - grp * sw)
    mi = grp * sw + in_grp % rows_in
    ni = in_grp // rows_in
    wave = c // ctas_per_wave
    n_w = int(wave[-1]) + 1
    rows = np.minimum(tm, Ms[g] - mi * tm)
    cols = np.minimum(tn, N - ni * tn)
    ks = np.minimum(kk, K - sidx * kk)
    ks = np.maximum(ks, 0)
    a_key = ((np.cumsum(nm_g) - nm_g)[g] + mi) * s + sidx
    gb = np.zeros_like(g) if b_shared else g
    b_key = (gb * nn + ni) * s + sidx
    a_size = rows * ks * a_bpe
    b_size = cols * ks * b_bpe
    a_tot = float(Ms.sum()) * K * a_bpe
    b_tot = K * N * b_bpe * (1 if b_shared else G)

    def per_wave(key, size, total, resident):
        out = np.zeros(n_w, np.float64)
        if resident:
            return out, np.zeros(n_w)
        comb = wave * (key.max() + 1) + key
        u, first = np.unique(comb, return_index=True)
        uw = wave[first]
        usize = size[first]
        foot = np.bincount(uw, weights=usize, minlength=n_w)
        if total <= 0.5 * l2_bytes:
            # the whole operand stays in L2: each panel comes from HBM once
            _, f1 = np.unique(key, return_index=True)
            np.add.at(out, wave[f1], size[f1])
            return out, foot
        prev = u - (key.max() + 1)          # same key one wave earlier
        hit = np.isin(prev, u)
        return None, (u, uw, usize, hit, foot)

    res_a = per_wave(a_key, a_size, a_tot, a_resident)
    res_b = per_wave(b_key, b_size, b_tot, b_resident)
    foot = np.zeros(n_w)
    for res in (res_a, res_b):
        foot += res[1] if res[0] is not None else res[1][4]
    fits_prev = np.concatenate(([False], foot[:-1] <= l2_bytes))
    outs = []
    for res in (res_a, res_b):
        if res[0] is not None:
            outs.append(res[0])
            continue
        u, uw, usize, hit, _ = res[1]
        miss = ~(hit & fits_prev[uw])
        outs.append(np.bincount(uw, weights=usize * miss, minlength=n_w))
    w_ctas = np.bincount(wave, minlength=n_w)
    w_macs = np.bincount(wave, weights=(rows * cols * ks).astype(np.float64), minlength=n_w)
    w_out = np.bincount(wave, weights=(rows * cols).astype(np.float64), minlength=n_w)
    return w_ctas, outs[0], outs[1], w_macs, w_out


def resident_ctas(tm, tn, tk, bpe, acc_bytes, stages, smem, regs, max_ctas) -> int:
    """CTAs one SM holds at once: shared-memory stages and accumulator registers (half the file)."""
    by_smem = int(smem // (stages * (tm + tn) * tk * bpe))
    by_regs = int((0.5 * regs) // (tm * tn * acc_bytes))
    return max(0, min(max_ctas, by_smem, by_regs))


def warp_grid(tm, tn, wm, wn, min_warps):
    """(warp tile rows, columns, warps) of a tm x tn CTA tile whose warps multiply at most wm x wn
    each: the CTA is cut into warp tiles of that size, halved (the longer side first) until the
    CTA has ``min_warps`` of them (a warp on each tensor-core sub-partition), as CUTLASS' Ampere
    configurations do: 256x128 in 8 warps of 64x64, 128x128 in 4 of 64x64, 128x64 in 4 of 64x32,
    64x64 in 4 of 32x32."""
    wm, wn = min(wm, tm), min(wn, tn)
    while -(-tm // wm) * -(-tn // wn) < min_warps and max(wm, wn) > 8:
        if wm >= wn:
            wm = -(-wm // 2)
        else:
            wn = -(-wn // 2)
    return wm, wn, -(-tm // wm) * -(-tn // wn)


def fragment_bytes(tm, tn, tk, bpe, b_feed, warp) -> float:
    """Bytes one CTA reads from shared memory into registers per main-loop iteration: every warp
    its A (wm x tk) and B (wn x tk) fragments, so a CTA reads A once per warp column and B once per
    warp row. ``warp``: (wm, wn, min_warps) of ``sm.warp_tile``, or () when not modelled (0)."""
    if not warp:
        return 0.0
    wm, wn, nw = warp_grid(tm, tn, *warp)
    return nw * (wm + wn * b_feed) * tk * bpe


# the kernel's first chunk of the k loop is cut into parts of these eighths (its last chunk into
# the same, reversed): a CTA's multistage pipeline fills in a few k steps, so the kernel's first
# load and its last MMAs, which nothing overlaps, are short
RAMP = (1, 3, 4)
FULL = sum(RAMP)


def n_chunks(iters: int) -> int:
    """Chunks of a wave's k loop of ``iters`` main-loop iterations (at least 4 iterations each)."""
    return max(1, min(CHUNKS, iters // 4))


def exposed_share(nc: int) -> float:
    """The share of a wave's work in the kernel's first (or last) chunk piece: what the pipeline
    leaves unoverlapped at the kernel's start (end) when a wave is cut into ``nc`` chunks."""
    return RAMP[0] / (FULL * nc) if nc > 1 else 1.0


def chunk_plan(waves: int, nc: int):
    """(wave, weight, last of its wave) of each chunk of a GEMM's k loops, wave-major: ``nc``
    chunks of weight ``FULL`` per wave, the kernel's first and last chunk cut into ``RAMP``."""
    w = np.full(waves * nc, FULL, np.int64)
    wv = np.repeat(np.arange(waves, dtype=np.int64), nc)
    if nc > 1:
        r = np.asarray(RAMP, np.int64)
        w = np.concatenate((r, w[1:-1], r[::-1]))
        wv = np.concatenate((np.zeros(len(r), np.int64), wv[1:-1], np.full(len(r), waves - 1, np.int64)))
    last = np.ones(len(w), bool)
    last[:-1] = wv[1:] != wv[:-1]
    return wv, w, last


def split_chunks(total, wv, w) -> np.ndarray:
    """Integer parts of each wave's ``total`` over its chunks, in proportion to their weights
    ``w`` (each wave's parts sum to its total)."""
    total = np.asarray(total, np.int64)
    cum = np.cumsum(w)
    first = np.ones(len(w), bool)
    first[1:] = wv[1:] != wv[:-1]
    base = np.maximum.accumulate(np.where(first, cum - w, 0))
    within = cum - base
    size = np.bincount(wv, weights=w).astype(np.int64)
    edges = total[wv] * within // size[wv]
    prev = np.concatenate(([0], edges[:-1]))
    return edges - np.where(first, 0, prev)


@njit(cache=True)
def smem_cycles(frag, tm, tn, tk, bpe, b_feed, smem_bpc):
    """Cycles of one CTA's shared-memory traffic per main-loop iteration: the stage it writes and
    the ``frag`` bytes its warps read (:func:`fragment_bytes`); 0 when fragments are not modelled."""
    if frag <= 0:
        return 0.0
    return (frag + (tm + tn * b_feed) * tk * bpe) / smem_bpc


@njit(cache=True)
def iter_cycles(tm, tn, tk, rate, eff, bpe, feed_bpc, overhead, c, b_feed=1.0, smem=0.0):
    """Cycles of one main-loop iteration of ``c`` co-resident CTAs on one SM: the tensor cores,
    the operand feed and the shared memory are shared; one CTA's barrier/stage-wait overhead is
    hidden by the others' MMAs. ``b_feed``: the B (weight) panel's bytes relative to a dense one
    (a compressed structured-sparse weight with its index metadata: below 1). ``smem``: cycles
    of one CTA's shared-memory traffic per iteration (the stage written, the warps' fragments
    read; 0: not modelled)."""
    mma = tm * tn * tk / (rate * eff)
    feed = (tm + tn * b_feed) * tk * bpe / feed_bpc
    return max(c * mma, c * feed, c * smem, max(mma, feed, smem) + overhead)


@lru_cache(maxsize=4096)
def plan_gemm(M: int, N: int, K: int, G: int, b_shared: bool, a_bpe: float, b_bpe: float, c_bpe: float,
              a_resident: bool, b_resident: bool, c_resident: bool,
              tms: tuple, tns: tuple, tk: int, min_m: int, splits: tuple, swizzle: int,
              n_sm: int, max_ctas: int, rate: float, l2_bpc: float, mlp_bpc: float, overhead: float,
              epi_bpc: float, acc_bytes: int, l2_bytes: float, hbm_bpc: float, smem: float,
              regs: float, stages: int, eff: float, host_cycles: float, gap_cycles: float, ws_l2: float,
              b_feed: float = 1.0, smem_bpc: float = 128.0, warp: tuple = (), lat_cycles: float = 0.0) -> GemmPlan:
    best = None
    bpe = max(a_bpe, b_bpe)

    def wave_cycles(tm, tn, iters, c):
        # one wave with ``c`` CTAs on each SM, as the cost kernel times it
        sm_cyc = smem_cycles(fragment_bytes(tm, tn, tk, bpe, b_feed, warp), tm, tn, tk, bpe, b_feed, smem_bpc)
        return iters * iter_cycles(tm, tn, tk, rate, eff, bpe, min(l2_bpc, mlp_bpc), overhead,
                                   c, b_feed, sm_cyc) + c * tm * tn * acc_bytes / epi_bpc

    m_g = _round_up(M, min_m)
    n_g = _round_up(N, 8)
    cand_m = sorted({min(t, m_g) for t in tms})
    cand_n = sorted({min(t, n_g) for t in tns})
    for tm in cand_m:
        for tn in cand_n:
            c_res = resident_ctas(tm, tn, tk, max(a_bpe, b_bpe), acc_bytes, stages, smem, regs, max_ctas)
            if c_res < 1:
                continue
            slots = n_sm * c_res
            for s in splits:
                if s > 1 and -(-K // s) < tk:
                    continue
                kk = -(-K // s)
                iters = -(-kk // tk)
                nm, nn = -(-M // tm), -(-N // tn)
                ctas = G * nm * nn * s
                waves = -(-ctas // slots)
                # full waves hold c_res CTAs per SM; the last one only as many as it has (a wave of
                # fewer CTAs than SMs runs one per SM, not sharing tensor cores)
                c_last = min(c_res, -(-(ctas - (waves - 1) * slots) // n_sm))
                full_w, last_w = wave_cycles(tm, tn, iters, c_res), wave_cycles(tm, tn, iters, c_last)
                comp = (waves - 1) * full_w + last_w
                # quick traffic estimate for the search (exact per-wave traffic below)
                a_b = 0.0 if a_resident else M * K * a_bpe * G * (1 if M * K * a_bpe * G <= 0.5 * l2_bytes
                                                                  else max(1, -(-nn // max(1, slots // max(1, min(swizzle, nm))))))
                b_b = 0.0 if b_resident else K * N * b_bpe * (1 if b_shared else G) * (
                    1 if K * N * b_bpe <= 0.5 * l2_bytes else max(1, -(-nm // max(1, min(swizzle, nm)))))
                c_b = 0.0 if c_resident else M * N * c_bpe * G
                red_bytes = 0.0
                if s > 1:
                    ws = s * M * N * acc_bytes * G
                    c_b = 0.0 if ws <= ws_l2 else ws          # fp32 partials stay in L2 if they fit
                    red_bytes = c_b + (0.0 if c_resident else M * N * c_bpe * G)
                mem = (a_b + b_b + c_b) / hbm_bpc
                # the k loop runs in chunks whose loads run ahead of the MMAs: the shorter side is
                # exposed for the kernel's first chunk (its first load or its last MMAs)
                nc = n_chunks(iters)
                # waves run one after the other, each bound by its MMAs or its share of the traffic:
                # a part-full last wave cannot hide behind the full ones' memory time
                last_ctas = ctas - (waves - 1) * slots
                body = (waves - 1) * max(full_w, mem * slots / ctas) + max(last_w, mem * last_ctas / ctas)
                # (+ the memory latency of the kernel's first load)
                est = body + min(comp, mem) / waves * exposed_share(nc) + lat_cycles
                own = est               # the GEMM kernel alone: breaks ties of host-bound plans
                if s > 1:
                    # the reduction kernel: the host launches it while the GEMM (started a gap after
                    # its own launch) runs, so it starts a gap after the GEMM ends, or after its
                    # launch if the GEMM is the shorter
                    est += gap_cycles + max(0.0, host_cycles - gap_cycles - est) + red_bytes / hbm_bpc
                cand = (est, own, tm, tn, s, c_res)
                if best is None or cand < best:
                    best = cand
    if best is None:
        from archsim.errors import LoweringError
        raise LoweringError(f"no CTA tile of GEMM {M}x{N}x{K} fits the shared memory", path="sm.smem")
    est, _, tm, tn, s, c_res = best
    return wave_plan(M, N, K, G, b_shared, tm, tn, s, c_res, n_sm, swizzle, a_bpe, b_bpe, c_bpe, l2_bytes,
                     a_resident, b_resident, est)


def wave_plan(M, N, K, G, b_shared, tm, tn, s, per_sm, n_sm, swizzle, a_bpe, b_bpe, c_bpe, l2_bytes,
              a_resident, b_resident, est) -> GemmPlan:
    """The plan of tm x tn CTA tiles, K split ``s`` ways, ``per_sm`` CTAs on each of ``n_sm`` SMs:
    its waves and their traffic (:func:`wave_traffic`; ``M`` the rows of every problem or of each)."""
    w_ctas, w_a, w_b, w_macs, w_out = wave_traffic(M, N, K, G, b_shared, tm, tn, s, n_sm * per_sm, swizzle,
                                                   a_bpe, b_bpe, l2_bytes, a_resident, b_resident)
    return GemmPlan(tm, tn, s, per_sm, -(-K // s), int(w_ctas.sum()), len(w_ctas), tuple(int(x) for x in w_ctas),
                    tuple(float(x) for x in w_a), tuple(float(x) for x in w_b),
                    tuple(float(x) * c_bpe for x in w_out), tuple(float(x) for x in w_macs), float(est))


@njit(cache=True)
def list_schedule(work, slots):
    """Makespan of CTAs with ``work`` (any unit) dispatched in order, each to the slot that frees
    first (the hardware block scheduler over ``slots`` = SMs x resident CTAs); a binary min-heap
    of slot finish times."""
    n = work.shape[0]
    p = min(slots, n)
    if p <= 0:
        return 0.0
    heap = np.zeros(p)
    span = 0.0
    for i in range(n):
        t = heap[0] + work[i]            # the earliest free slot takes the next CTA
        if t > span:
            span = t
        j = 0                            # sift the root down with its new finish time
        while True:
            a = 2 * j + 1
            if a >= p:
                break
            b = a + 1
            c = b if b < p and heap[b] < heap[a] else a
            if heap[c] >= t:
                break
            heap[j] = heap[c]
            j = c
        heap[j] = t
    return span


def flash_tiles(hd: int, bpe: float, smem: float, regs: float, acc_bytes: int, max_ctas: int):
    """(query rows, keys per block, resident CTAs per SM) of a FlashAttention-2-style forward
    kernel: Q tiles of 128 rows (64 when Q plus double-buffered K and V blocks of 64 keys do not
    fit shared memory), fp32 O accumulator and score block in registers."""
    bk = 64
    for bq in (128, 64):                 # 64 rows whether or not they fit
        need = (bq + 4 * bk) * hd * bpe
        if need <= smem:
            break
    by_regs = int(regs // (bq * (hd + bk) * acc_bytes))
    return bq, bk, max(1, min(max_ctas, int(smem // need), by_regs))
