"""The tile pipeline of a GEMM on the arrays, timed step by step for the tiler.

The lowerer's program runs a GEMM's tiles in order on each array (array p takes the outer
iterations p, p + P, ...), each array's loads in order on its DMA read queue and its output
tiles in order on its write queue, all through one memory pipe. Each operand has two buffer
slots (the q-th load of an operand waits for the GEMM before the step that first used load
q-1, which frees the slot load q-2 held; a resident panel waits for the last GEMM of the outer
iteration two back), and the output tiles two slots of their own (the first k step of output
tile j waits for the store of tile j-2). :func:`pipeline_cycles` replays exactly that program,
with the memory's bandwidth and its latency after each transfer, without building it: the
queues issue as the timing kernel issues them (the ready head that can start earliest, ties in
the kernel's unit order), so the pipe sees the loads and stores in the same order. Edge tiles,
uneven loads and the latency chained through the slots are then timed instead of averaged: the
tiler uses it to choose among the tilings its closed-form estimate ranks near the best.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from archsim.mem.interface import N_MEM_COUNTERS, bw_transfer
from archsim.sim.timing import shared_transfer
from archsim.uarch.systolic.cost import tile_cycles


@njit(cache=True)
def _program(M, N, K, G, tm, tn, tk, order_nm, panel, a_ld, b_ld, c_st, b_shared, a_bytes, b_bytes,
             c_bytes, P, dataflow, R, C, preload, a_sh, b_sh):
    """Every array's part of the tiled GEMM as three in-order queues per array (array p runs
    the outer iterations p, p + P, ...), concatenated array after array; ``*_off[p]`` is where
    array p's entries begin. Steps: duration, the load serving each operand, the store whose
    slot the step waits for. Loads (program order, A before B within a step): bytes, the step
    whose GEMM end it waits for and whether it comes from the shared memory. Stores: bytes and
    the step that finishes the tile. All indices are global. ``a_ld`` / ``b_ld`` / ``c_st``:
    the operand moves through the queues (from or to off-chip or the shared memory)."""
    nm = -(-M // tm)
    nn = -(-N // tn)
    nk = -(-K // tk)
    n_out = nn if order_nm else nm
    n_mid = nm if order_nm else nn
    units = G * n_out
    steps = units * n_mid * nk
    dur = np.zeros(steps, np.int64)
    cur = np.full((steps, 2), -1, np.int64)       # the load each operand's tile comes from
    cwait = np.full(steps, -1, np.int64)          # the store the step's output slot waits for
    l_bytes = np.zeros(2 * steps, np.float64)
    l_dep = np.full(2 * steps, -1, np.int64)      # step whose GEMM end the load waits for
    l_sh = np.zeros(2 * steps, np.bool_)          # from the shared memory
    s_bytes = np.zeros(steps, np.float64)
    s_step = np.zeros(steps, np.int64)
    g_off = np.zeros(P + 1, np.int64)
    l_off = np.zeros(P + 1, np.int64)
    s_off = np.zeros(P + 1, np.int64)
    mine_max = (units + P - 1) // P
    last_of_u = np.zeros(mine_max, np.int64)      # the last step of each outer iteration
    ld = np.array([a_ld, b_ld])
    sh = np.array([a_sh, b_sh])
    pan = np.array([panel and not order_nm, panel and order_nm])
    bpe = np.array([a_bytes, b_bytes])
    prev = np.full(2, -1, np.int64)
    q = np.zeros(2, np.int64)
    use = np.zeros(2, np.int64)                   # first-use step of the operand's last load
    dep1 = np.full(2, -2, np.int64)               # the second panel's wait (-2: not yet set)
    key = np.zeros(2, np.int64)
    elems = np.zeros(2, np.int64)
    n_l = 0
    n_c = 0
    s = 0
    for p in range(P):
        g_off[p] = s
        l_off[p] = n_l
        s_off[p] = n_c
        s0 = s
        c0 = n_c
        mine = (units - p + P - 1) // P if p < units else 0
        prev[:] = -1
        q[:] = 0
        use[:] = 0
        dep1[:] = -2
        last = s0 + mine * n_mid * nk - 1         # the array's last step (drains the pipeline)
        for ui in range(mine):
            u = ui * P + p
            g = u // n_out
            o = u % n_out
            for mi in range(n_mid):
                for kk in range(nk):
                    im = mi if order_nm else o
                    jn = o if order_nm else mi
                    m = min(tm, M - im * tm)
                    n = min(tn, N - jn * tn)
                    k = min(tk, K - kk * tk)
                    key[0] = (g * nm + im) * nk + kk
                    key[1] = ((0 if b_shared else g) * nk + kk) * nn + jn
                    elems[0] = m * k
                    elems[1] = k * n
                    for x in range(2):
                        new = (ld[x] and (s == s0 or key[x] != prev[x])
                               and not (pan[x] and (jn if x == 0 else im) != 0))
                        prev[x] = key[x]
                        if new:
                            # the GEMM before load q-1's first use
                            dep = use[x] - 1 if q[x] >= 2 else np.int64(-1)
                            if pan[x] and ui >= 2:
                                dep = last_of_u[ui - 2]
                            elif pan[x] and ui == 1:
                                if dep1[x] == -2:       # the second panel: what its first load waits for
                                    dep1[x] = dep
                                dep = dep1[x]
                            l_bytes[n_l] = np.ceil(elems[x] * bpe[x])
                            l_dep[n_l] = dep
                            l_sh[n_l] = sh[x]
                            cur[s, x] = n_l
                            n_l += 1
                            use[x] = s
                            q[x] += 1
                        elif ld[x]:
                            cur[s, x] = cur[s - 1, x]
                    if c_st and kk == 0 and n_c - c0 >= 2:
                        cwait[s] = n_c - 2              # output slot: the store two tiles back
                    dur[s] = tile_cycles(dataflow, R, C, m, n, k, preload, s == last)
                    if c_st and kk == nk - 1:
                        s_bytes[n_c] = np.ceil(m * n * c_bytes)
                        s_step[n_c] = s
                        n_c += 1
                    s += 1
            last_of_u[ui] = s - 1
    g_off[P] = s
    l_off[P] = n_l
    s_off[P] = n_c
    return dur, cur, cwait, l_bytes[:n_l], l_dep[:n_l], l_sh[:n_l], s_bytes[:n_c], s_step[:n_c], g_off, l_off, s_off


@njit(cache=True, inline="always")
def _transfer(to_shared, is_write, t, nbytes, sh_free, sh_bpc, pipe, pipe_state, seen):
    """(completion, the shared pipe's next free cycle) of a tile transfer issued at ``t``:
    through the shared memory's pipe, or through the memory's bandwidth pipe."""
    if to_shared:
        f = shared_transfer(sh_free, t, nbytes, sh_bpc)
        return f, f
    return bw_transfer(pipe, pipe_state, seen, 0, nbytes, is_write, t), sh_free


@njit(cache=True)
def pipeline_cycles(M, N, K, G, tm, tn, tk, order_nm, panel, a_ld, b_ld, c_st, b_shared,
                    a_bytes, b_bytes, c_bytes, P, dataflow, R, C, preload, bpc, lat,
                    a_sh=False, b_sh=False, c_sh=False, sh_bpc=1.0):
    """Cycles of a GEMM tiled (tm, tn, tk) over ``P`` arrays with the loop order and panel
    residency given; ``a_ld`` / ``b_ld``: the operand's tiles come from memory, ``c_st``: the
    output tiles go back to it (``bpc`` bytes per cycle, ``lat`` cycles of latency). ``a_sh`` /
    ``b_sh`` / ``c_sh``: from or to the arrays' shared memory instead, whose pipe moves
    ``sh_bpc`` bytes per cycle, the transfers in issue order."""
    dur, cur, cwait, l_bytes, l_dep, l_sh, s_bytes, s_step, g_off, l_off, s_off = _program(
        M, N, K, G, tm, tn, tk, order_nm, panel, a_ld or a_sh, b_ld or b_sh, c_st or c_sh, b_shared, a_bytes,
        b_bytes, c_bytes, P, dataflow, R, C, preload, a_sh, b_sh)
    sh_free = np.int64(0)                         # the shared memory's pipe
    # the memory pipe (the bandwidth model's transfer)
    pipe = np.array([bpc, float(lat)])
    pipe_state = np.zeros((1, 1), np.int64)
    seen = np.zeros(N_MEM_COUNTERS, np.int64)
    gend = np.zeros(dur.shape[0], np.int64)       # end of each step's GEMM
    l_done = np.zeros(l_bytes.shape[0], np.int64)
    s_done = np.zeros(s_bytes.shape[0], np.int64)
    big = np.int64(1) << 62
    # queues in the timing kernel's unit order (its tie-break): array 0's read and write
    # queues, the arrays, the other arrays' read queues, then their write queues
    qid = np.zeros((P, 3), np.int64)              # per array: its read, write and array queue
    qid[0, 0], qid[0, 1] = 0, 1
    for p in range(P):
        qid[p, 2] = 2 + p
    for p in range(1, P):
        qid[p, 0] = 1 + P + p
        qid[p, 1] = 2 * P + p
    q_arr = np.zeros(3 * P, np.int64)             # and back: each queue's array and kind
    q_kind = np.zeros(3 * P, np.int64)
    for p in range(P):
        for kq in range(3):
            q_arr[qid[p, kq]] = p
            q_kind[qid[p, kq]] = kq
    hl = l_off[:P].copy()                         # per array: heads of its read queue,
    hs = s_off[:P].copy()                         # write queue
    hg = g_off[:P].copy()                         # and array
    free = np.zeros((P, 3), np.int64)             # when each queue can issue again
    # each queue's head start (big: done, or what it waits for has not issued): a load when
    # the GEMM it waits for has issued, a store when its tile's last GEMM has, a GEMM when its
    # loads and the store freeing its output slot have; an issue changes only its own array's
    # queues
    cand = np.full(3 * P, big, np.int64)
    end = np.int64(0)
    lo, hi = 0, P                                 # the arrays whose heads to update
    while True:
        for p in range(lo, hi):
            t = big
            h = hl[p]
            if h < l_off[p + 1]:
                d = l_dep[h]
                if d < hg[p]:
                    t = free[p, 0]
                    if d >= 0 and gend[d] > t:
                        t = gend[d]
            cand[qid[p, 0]] = t
            t = big
            h = hs[p]
            if h < s_off[p + 1] and s_step[h] < hg[p]:
                t = max(free[p, 1], gend[s_step[h]])
            cand[qid[p, 1]] = t
            t = big
            h = hg[p]
            if h < g_off[p + 1]:
                t = free[p, 2]
                for x in range(2):
                    li = cur[h, x]
                    if li >= 0:
                        if li >= hl[p]:
                            t = big
                            break
                        if l_done[li] > t:
                            t = l_done[li]
                w = cwait[h]
                if t < big and w >= 0:
                    if w >= hs[p]:
                        t = big
                    elif s_done[w] > t:
                        t = s_done[w]
            cand[qid[p, 2]] = t
        # the ready head that starts first; the first of equals in the kernel's unit order
        best = 0
        for i in range(1, 3 * P):
            if cand[i] < cand[best]:
                best = i
        best_t = cand[best]
        if best_t >= big:
            break
        p, kq = q_arr[best], q_kind[best]
        if kq == 0:
            h = hl[p]
            l_done[h], sh_free = _transfer(l_sh[h], False, best_t, l_bytes[h], sh_free, sh_bpc, pipe,
                                           pipe_state, seen)
            free[p, 0] = best_t + 1
            hl[p] += 1
        elif kq == 1:
            h = hs[p]
            s_done[h], sh_free = _transfer(c_sh, True, best_t, s_bytes[h], sh_free, sh_bpc, pipe,
                                           pipe_state, seen)
            free[p, 1] = best_t + 1
            end = max(end, s_done[h])
            hs[p] += 1
        else:
            h = hg[p]
            gend[h] = best_t + dur[h]
            free[p, 2] = gend[h]
            end = max(end, gend[h])
            hg[p] += 1
        lo, hi = p, p + 1
    return end
