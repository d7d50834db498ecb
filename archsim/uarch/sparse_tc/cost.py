"""Cost kernel of the tensor-core variants: per-instruction durations and per-layer action
counts, from each tile's non-zero structure.

A GEMM instruction is one k chunk of one CTA tile on one SM. Its warp tiles (wm x wn) are
dealt round-robin to the SM's tensor cores; the instruction takes the busiest tensor
core's cycles (load imbalance across cores). Per warp tile and chunk of kt k-steps:

- ``tc_dense``  ceil(wm/mm) * ceil(wn/mn) * ceil(kt/mk); every MAC issued, zeros included.
- ``stc_2to4``  if every row of the tile keeps <= n of each aligned m along K:
                ceil(wm/mm) * ceil(wn/mn) * ceil(kt / (mk*m/n)), issuing n/m of the MACs,
                reading n/m values and metadata_bits per kept value; otherwise dense.
- ``ds_stc``    sum over k of ceil(a_k/ga) * s_k, where a_k = non-zeros of A's column k in
                the tile and s_k the scatter cycles of B row k's non-zeros (groups of gb;
                per group the most columns landing in one accumulation bank; equals
                ceil(b_k/gb) without conflicts), 0 if a_k or b_k is 0; at least the bitmap
                decode time kt*(wm+wn)/decode_bits. Products a_k*b_k issued, each a
                read-modify-write of the accumulation buffer.
- ``rm_stc``    rows of the tile go to row unit (row mod units); a unit's lanes take one A
                non-zero each per cycle and stream the matching B row's b_k non-zeros
                ``vector`` per cycle: lane cycles = sum ceil(b_k/vector) over the unit's A
                non-zeros; unit cycles = max(ceil(lane cycles / lanes), ceil(products /
                merge_width)); the tile takes its busiest unit (row imbalance), at least
                the bitmap decode time. Output rows are merged in the unit and written once
                per chunk.

In statistics mode the row merge uses per-(row, chunk) non-zero counts p and the chunk's
mean of ceil(b_k/vector) and b_k (the expectation over which k's are non-zero).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from archsim.isa import Op
from archsim.jitcache import drop_stale
from archsim.uarch.systolic.cost import PRIMS, vector_cycles

# kernels here inline the systolic vector-unit arithmetic: drop their cache when it changes
drop_stale(__file__, [Path(__file__).parents[1] / "systolic" / "cost.py",
                      Path(__file__).parents[1] / "systolic" / "folds.py"])

COUNTERS = (
    "array.mac", "array.mac_skipped",
    "operand.read_bytes", "metadata.read_bytes",
    "acc.read_bytes", "acc.write_bytes",
    "merge.ops", "scatter.conflict_cycles", "decode.bits",
    "smem.write_bytes", "l2.read_bytes", "acc.spill_bytes", "bfetch.stall_cycles",
) + tuple(f"vector.{p}" for p in PRIMS)
(C_MAC, C_SKIP, C_OPND, C_META, C_ACC_R, C_ACC_W, C_MERGE, C_CONFL, C_DEC, C_SMEM, C_L2, C_SPILL,
 C_BSTALL) = range(13)
C_VEC0 = 13
N_COUNTERS = len(COUNTERS)

VARIANT_CODE = {"tc_dense": 0, "stc_2to4": 1, "ds_stc": 2, "rm_stc": 3}

# op table columns
(T_MH, T_NH, T_K, T_BM, T_BN, T_BK, T_RB, T_CB, T_J, T_DENSE_A, T_DENSE_B, T_STATS, T_ACNT, T_COMP,
 T_BCNT, T_BSCAT, T_RMPTR, T_RMIDX, T_RMP, T_RMF, T_ABITS, T_BBITS, T_K4, T_DSPRE) = range(24)
N_OPT = 24
# parameter vector
(P_MM, P_MN, P_MK, P_T, P_WM, P_WN, P_GA, P_GB, P_BANKS, P_DSDEC, P_R, P_L, P_V, P_W, P_ACCB,
 P_STCN, P_STCM, P_METAB, P_RMDEC, P_BF) = range(20)
N_PAR = 20

OP_GEMM = int(Op.GEMM)
OP_VECTOR = int(Op.VECTOR)


def _cdiv(a, b):
    return -(-a // b)


@njit(cache=True)
def cdiv(a, b):
    return (a + b - 1) // b


@njit(cache=True)
def dense_scatter_cycles(cols, group, banks):
    tot = 0
    c = 0
    while c < cols:
        g = min(group, cols - c)
        tot += (g + banks - 1) // banks
        c += g
    return tot


@njit(cache=True)
def warp_dense(wma, wna, kt, mm, mn, mk, abits, bbits, accb, out):
    cyc = cdiv(wma, mm) * cdiv(wna, mn) * cdiv(kt, mk)
    out[0] = wma * wna * kt                      # issued MACs
    out[1] = cyc * (mm * mk * abits + mk * mn * bbits)   # operand bits
    out[2] = 0                                   # metadata bits
    out[3] = cyc * mm * mn * accb                # accumulator bytes read (= written)
    out[4] = 0                                   # merge ops
    out[5] = 0                                   # conflict cycles
    out[6] = 0                                   # decoded bitmap bits
    return cyc


@njit(cache=True)
def warp_stc(wma, wna, kt, mm, mn, mk, n, m, meta_bits, abits, bbits, accb, out):
    klog = mk * m // n                           # logical k per cycle
    cyc = cdiv(wma, mm) * cdiv(wna, mn) * cdiv(kt, klog)
    kept = cdiv(kt * n, m)
    out[0] = wma * wna * kept
    out[1] = cyc * (mm * mk * abits + klog * mn * bbits)
    out[2] = cyc * mm * mk * meta_bits
    out[3] = cyc * mm * mn * accb
    out[4] = 0
    out[5] = 0
    out[6] = 0
    return cyc


@njit(cache=True)
def warp_outer(rb, cb, j, k0, k1, wma, wna, K, CB, J, dense_a, dense_b, acnt, aoff, bcnt, bscat, boff,
               dspre, dspre_off, ga, gb, banks, dec_rate, abits, bbits, accb, out, RB):
    comp = 0
    issued = 0
    opb = 0
    acc = 0
    confl = 0
    dsc = dense_scatter_cycles(wna, gb, banks)
    kt = k1 - k0
    dec = kt * (wma + wna)
    if dspre_off >= 0:
        # per (chunk, row block, column block) sums of the k loop below, precomputed by
        # the lowerer as products of count matrices (same arithmetic, BLAS speed)
        q = dspre_off + ((j * RB + rb) * CB + cb) * 4
        out[0] = dspre[q + 1]
        out[1] = dspre[q + 3]
        out[2] = dec
        out[3] = dspre[q + 1] * accb
        out[4] = 0
        out[5] = dspre[q + 2]
        out[6] = dec
        return max(dspre[q], cdiv(dec, dec_rate))
    if dense_a and dense_b:
        ca = cdiv(wma, ga)
        cbq = cdiv(wna, gb)
        out[0] = kt * wma * wna
        out[1] = kt * (wma * cbq * abits + wna * ca * bbits)
        out[2] = dec
        out[3] = kt * wma * wna * accb
        out[4] = 0
        out[5] = kt * ca * (dsc - cbq)
        out[6] = dec
        return max(kt * ca * dsc, cdiv(dec, dec_rate))
    for kk in range(k0, k1):
        if dense_a:
            a = wma
        else:
            a = acnt[aoff + rb * K + kk]
        if a == 0:
            continue
        if dense_b:
            b = wna
            sc = dsc
        else:
            b = bcnt[boff + kk * CB + cb]
            sc = bscat[boff + kk * CB + cb]
        if b == 0:
            continue
        ca = cdiv(a, ga)
        cbq = cdiv(b, gb)
        comp += ca * sc
        issued += a * b
        confl += ca * (sc - cbq)
        opb += a * cbq * abits + b * ca * bbits
        acc += a * b * accb
    cyc = max(comp, cdiv(dec, dec_rate))
    out[0] = issued
    out[1] = opb
    out[2] = dec
    out[3] = acc
    out[4] = 0
    out[5] = confl
    out[6] = dec
    return cyc


@njit(cache=True)
def warp_rowmerge(rb, cb, j, k0, k1, wm, wma, wna, K, CB, J, dense_a, dense_b, stats, rm_ptr, rm_idx,
                  ptroff, idxoff, rm_p, poff, rm_mf, rm_mb, rm_mz, foff, bcnt, boff, R, L, V, W, dec_rate,
                  fetch_bytes, abits, bbits, accb, lanes, mrg, seen, out):
    for u in range(R):
        lanes[u] = 0.0
        mrg[u] = 0.0
    a_nnz = 0.0
    rows_active = 0
    kt = k1 - k0
    # B rows fetched from shared memory: each non-empty row k needed by some row of the
    # tile, once per chunk (broadcast to the row units), values + the row's bitmap
    fetch_bits = 0.0
    miss = 1.0                       # statistics: probability that no row needs a given k
    if dense_b:
        mz = 1.0
        mbv = wna * 1.0
    elif stats or dense_a:
        mz = rm_mz[foff + j * CB + cb]
        mbv = rm_mb[foff + j * CB + cb]
    else:
        mz = 0.0
        mbv = 0.0
    if not (stats or dense_a):
        for q in range(kt):
            seen[q] = 0
    for rr in range(wma):
        r = rb * wm + rr
        u = rr % R
        if stats or dense_a:
            if dense_a:
                p = kt
            else:
                p = rm_p[poff + r * J + j]
            if dense_b:
                f = cdiv(wna, V) * 1.0
                mb = wna * 1.0
            else:
                f = rm_mf[foff + j * CB + cb]
                mb = rm_mb[foff + j * CB + cb]
            lanes[u] += p * f
            mrg[u] += p * mb
            a_nnz += p
            miss *= 1.0 - p / kt
            if p > 0 and mb > 0:
                rows_active += 1
        else:
            lo = rm_ptr[ptroff + r]
            hi = rm_ptr[ptroff + r + 1]
            # first non-zero with k >= k0 (binary search)
            a0 = lo
            a1 = hi
            while a0 < a1:
                mid = (a0 + a1) // 2
                if rm_idx[idxoff + mid] < k0:
                    a0 = mid + 1
                else:
                    a1 = mid
            act = False
            q = a0
            while q < hi and rm_idx[idxoff + q] < k1:
                kk = rm_idx[idxoff + q]
                a_nnz += 1.0
                if dense_b:
                    b = wna
                else:
                    b = bcnt[boff + kk * CB + cb]
                if b > 0:
                    lanes[u] += cdiv(b, V)
                    mrg[u] += b
                    act = True
                    if seen[kk - k0] == 0:
                        seen[kk - k0] = 1
                        fetch_bits += b * bbits + wna
                q += 1
            if act:
                rows_active += 1
    if stats or dense_a:
        fetch_bits = (1.0 - miss) * kt * (mbv * bbits + mz * wna)
    cyc = 0
    tot = 0.0
    for u in range(R):
        c = max(np.ceil(lanes[u] / L - 1e-9), np.ceil(mrg[u] / W - 1e-9))
        if c > cyc:
            cyc = np.int64(c)
        tot += mrg[u]
    dec = kt * (wma + wna)
    cyc = max(cyc, cdiv(dec, dec_rate))
    fb = np.int64(np.ceil(fetch_bits / 8.0 - 1e-9))
    fcyc = cdiv(fb, fetch_bytes)
    stall = 0
    if fcyc > cyc:
        stall = fcyc - cyc
        cyc = fcyc
    issued = np.int64(np.round(tot))
    out[0] = issued
    out[1] = np.int64(np.round(a_nnz)) * abits + np.int64(np.round(fetch_bits))
    out[2] = dec
    out[3] = rows_active * wna * accb
    out[4] = issued
    out[5] = 0
    out[6] = dec
    out[7] = 0
    out[8] = stall
    return cyc


@njit(cache=True)
def _add_sums(cnt, bits, Ly, acc):
    """Add one GEMM instruction's warp-tile sums (see ``acc`` in :func:`sparse_tc_cost`)."""
    cnt[Ly, C_SPILL] += acc[0]
    cnt[Ly, C_BSTALL] += acc[1]
    cnt[Ly, C_MAC] += acc[2]
    cnt[Ly, C_SKIP] += acc[3]
    bits[Ly, 0] += acc[4]
    bits[Ly, 1] += acc[5]
    cnt[Ly, C_ACC_R] += acc[6]
    cnt[Ly, C_ACC_W] += acc[6]
    cnt[Ly, C_MERGE] += acc[7]
    cnt[Ly, C_CONFL] += acc[8]
    cnt[Ly, C_DEC] += acc[9]


@njit(cache=True)
def sparse_tc_cost(op, layer, m, n, k, nbytes, aux, n_layers, variant, optab, par, acnt, comp, bcnt,
                   bscat, rm_ptr, rm_idx, rm_p, rm_mf, rm_mb, rm_mz, dspre, prim, rates, pipeline):
    N = op.shape[0]
    dur = np.zeros(N, np.int64)
    cnt = np.zeros((n_layers, N_COUNTERS), np.int64)
    bits = np.zeros((n_layers, 2), np.int64)
    mm = np.int64(par[P_MM]); mn = np.int64(par[P_MN]); mk = np.int64(par[P_MK])
    T = np.int64(par[P_T]); wm = np.int64(par[P_WM]); wn = np.int64(par[P_WN])
    ga = np.int64(par[P_GA]); gb = np.int64(par[P_GB]); banks = np.int64(par[P_BANKS])
    dsdec = np.int64(par[P_DSDEC]); R = np.int64(par[P_R]); L = np.int64(par[P_L])
    V = np.int64(par[P_V]); W = np.int64(par[P_W]); accb = np.int64(par[P_ACCB])
    sn = np.int64(par[P_STCN]); sm = np.int64(par[P_STCM]); metab = np.int64(par[P_METAB])
    rmdec = np.int64(par[P_RMDEC]); bfetch = np.int64(par[P_BF])
    kmax = 1
    for t in range(optab.shape[0]):
        kmax = max(kmax, optab[t, T_BK])
    seen = np.zeros(kmax, np.int8)
    tc = np.zeros(T, np.int64)
    out = np.zeros(9, np.int64)
    lanes = np.zeros(R, np.float64)
    mrg = np.zeros(R, np.float64)
    # per-instruction sums over its warp tiles: spill, B stall, MACs, skipped, A bits, B bits,
    # accumulator accesses, merges, conflicts, decodes
    acc = np.zeros(10, np.int64)
    # a tile of dense operands (any core) costs what its shape and operand widths say: the last
    # one is kept (consecutive steps of a GEMM mostly share it)
    memo_key = np.full(5, -1, np.int64)
    memo_acc = np.zeros(10, np.int64)
    memo_dur = np.int64(0)
    for i in range(N):
        o = op[i]
        Ly = layer[i]
        if o == OP_GEMM:
            t = aux[i, 0]
            im = aux[i, 1]
            inn = aux[i, 2]
            j = aux[i, 3]
            Mh = optab[t, T_MH]; Nh = optab[t, T_NH]; K = optab[t, T_K]
            bm = optab[t, T_BM]; bn = optab[t, T_BN]; bk = optab[t, T_BK]
            CB = optab[t, T_CB]; J = optab[t, T_J]; K4 = optab[t, T_K4]
            dense_a = optab[t, T_DENSE_A] == 1
            dense_b = optab[t, T_DENSE_B] == 1
            stats = optab[t, T_STATS] == 1
            abits = optab[t, T_ABITS]; bbits = optab[t, T_BBITS]
            plain = (variant == 0 or (variant == 1 and dense_a)
                     or (variant >= 2 and dense_a and dense_b and not stats))
            if plain and memo_key[0] == m[i] and memo_key[1] == n[i] and memo_key[2] == k[i] \
                    and memo_key[3] == abits and memo_key[4] == bbits:
                dur[i] = memo_dur
                _add_sums(cnt, bits, Ly, memo_acc)
                cnt[Ly, C_SMEM] += nbytes[i]
                cnt[Ly, C_L2] += nbytes[i]
                continue
            for q in range(10):
                acc[q] = 0
            r0 = im * bm
            r1 = min(Mh, r0 + bm)
            c0 = inn * bn
            c1 = min(Nh, c0 + bn)
            k0 = j * bk
            k1 = min(K, k0 + bk)
            kt = k1 - k0
            rb0 = r0 // wm
            rb1 = (r1 + wm - 1) // wm
            cb0 = c0 // wn
            cb1 = (c1 + wn - 1) // wn
            for q in range(T):
                tc[q] = 0
            w = 0
            for rb in range(rb0, rb1):
                wma = min(wm, Mh - rb * wm)
                for cb in range(cb0, cb1):
                    wna = min(wn, Nh - cb * wn)
                    if variant == 0:
                        cyc = warp_dense(wma, wna, kt, mm, mn, mk, abits, bbits, accb, out)
                    elif variant == 1:
                        ok = not dense_a
                        if ok:
                            g0 = k0 // sm
                            g1 = (k1 + sm - 1) // sm
                            coff = optab[t, T_COMP] + rb * K4
                            for g in range(g0, g1):
                                if comp[coff + g] == 0:
                                    ok = False
                                    break
                        if ok:
                            cyc = warp_stc(wma, wna, kt, mm, mn, mk, sn, sm, metab, abits, bbits, accb, out)
                        else:
                            cyc = warp_dense(wma, wna, kt, mm, mn, mk, abits, bbits, accb, out)
                    elif variant == 2:
                        cyc = warp_outer(rb, cb, j, k0, k1, wma, wna, K, CB, J, dense_a, dense_b, acnt,
                                         optab[t, T_ACNT], bcnt, bscat, optab[t, T_BCNT], dspre,
                                         optab[t, T_DSPRE], ga, gb, banks,
                                         dsdec, abits, bbits, accb, out, optab[t, T_RB])
                    else:
                        cyc = warp_rowmerge(rb, cb, j, k0, k1, wm, wma, wna, K, CB, J, dense_a, dense_b,
                                            stats, rm_ptr, rm_idx, optab[t, T_RMPTR], optab[t, T_RMIDX],
                                            rm_p, optab[t, T_RMP], rm_mf, rm_mb, rm_mz, optab[t, T_RMF],
                                            bcnt, optab[t, T_BCNT], R, L, V, W, rmdec, bfetch, abits,
                                            bbits, accb, lanes, mrg, seen, out)
                    if variant == 2:
                        # partial sums leave the accumulation buffer once per warp tile
                        # and chunk, merged into the output registers
                        out[7] = wma * wna * accb if out[0] > 0 else 0
                        out[8] = 0
                    elif variant != 3:
                        out[7] = 0
                        out[8] = 0
                    tc[w % T] += cyc
                    w += 1
                    acc[0] += out[7]
                    acc[1] += out[8]
                    acc[2] += out[0]
                    acc[3] += wma * wna * kt - out[0]
                    acc[4] += out[1]
                    acc[5] += out[2]
                    acc[6] += out[3]
                    acc[7] += out[4]
                    acc[8] += out[5]
                    acc[9] += out[6]
            best = 0
            for q in range(T):
                if tc[q] > best:
                    best = tc[q]
            dur[i] = best
            _add_sums(cnt, bits, Ly, acc)
            if plain:
                memo_key[0] = m[i]
                memo_key[1] = n[i]
                memo_key[2] = k[i]
                memo_key[3] = abits
                memo_key[4] = bbits
                memo_dur = best
                for q in range(10):
                    memo_acc[q] = acc[q]
            cnt[Ly, C_SMEM] += nbytes[i]
            cnt[Ly, C_L2] += nbytes[i]
        elif o == OP_VECTOR:
            kind = aux[i, 0]
            dur[i] = vector_cycles(kind, m[i], n[i], prim, rates, pipeline)
            for p in range(rates.shape[0]):
                cnt[Ly, C_VEC0 + p] += np.int64(np.ceil(prim[kind, 0, p] * m[i] + prim[kind, 1, p] * n[i]))
    for Ly in range(n_layers):
        cnt[Ly, C_OPND] = (bits[Ly, 0] + 7) // 8
        cnt[Ly, C_META] = (bits[Ly, 1] + 7) // 8
    return dur, cnt
