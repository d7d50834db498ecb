"""The tile pipeline of one array, timed step by step for the tiler.

The lowerer's program runs a GEMM's tiles in order on each array, its loads in order on the
array's DMA queue through one memory pipe, each operand in two buffer slots (the q-th load of
an operand waits for the GEMM before the step that first used load q-1, which frees the slot
load q-2 held; a resident panel waits for the last GEMM of the outer iteration two back), and
the output tiles in two slots of their own (the first k step of output tile j waits for the
store of tile j-2). :func:`pipeline_cycles` replays exactly that sequence for array 0, its
share of the memory's bandwidth (``bytes_per_cycle`` over the arrays that have work) and the
memory's latency after each transfer, without building the program. Edge tiles, uneven loads
and the latency chained through the slots are then timed instead of averaged: the tiler uses
it to choose among the tilings its closed-form estimate ranks near the best.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from archsim.mem.interface import N_MEM_COUNTERS, bw_transfer
from archsim.uarch.systolic.cost import tile_cycles


@njit(cache=True)
def _send_stores(until, st_issue, st_bytes, st_done, n_sent, n_c, pipe, pipe_state, seen):
    """Put the issued stores from ``n_sent`` on through the pipe while they were issued by
    ``until`` (in issue order); returns the stores sent."""
    while n_sent < n_c and st_issue[n_sent] <= until:
        st_done[n_sent] = bw_transfer(pipe, pipe_state, seen, 0, st_bytes[n_sent], True, st_issue[n_sent])
        n_sent += 1
    return n_sent


@njit(cache=True)
def pipeline_cycles(M, N, K, G, tm, tn, tk, order_nm, panel, a_ld, b_ld, c_st, b_shared,
                    a_bytes, b_bytes, c_bytes, P, dataflow, R, C, preload, bpc, lat):
    """Cycles of array 0's part of a GEMM tiled (tm, tn, tk) with the loop order and panel
    residency given; ``a_ld`` / ``b_ld``: the operand's tiles come from memory, ``c_st``: the
    output tiles go back to it."""
    nm = -(-M // tm)
    nn = -(-N // tn)
    nk = -(-K // tk)
    n_out = nn if order_nm else nm
    n_mid = nm if order_nm else nn
    units = G * n_out
    active = P if P < units else units
    rate = bpc / active
    mine = (units + P - 1) // P                   # array 0 runs units 0, P, 2P, ...
    steps = mine * n_mid * nk
    gend = np.zeros(steps + 1, np.int64)          # gend[s + 1]: end of the GEMM of step s
    # per outer iteration of this array: its last GEMM (panels wait for the one two back)
    last_of_u = np.zeros(mine + 1, np.int64)
    # per operand (0: A, 1: B): loaded from memory, a resident panel, bytes per element; the
    # tile last loaded, loads so far, first-use step of the last load, its completion, the
    # second panel's wait
    ld = np.array([a_ld, b_ld])
    pan = np.array([panel and not order_nm, panel and order_nm])
    bpe = np.array([a_bytes, b_bytes])
    prev = np.full(2, -1, np.int64)
    q = np.zeros(2, np.int64)
    use = np.zeros(2, np.int64)
    done = np.zeros(2, np.int64)
    dep1 = np.full(2, -1, np.int64)
    key = np.zeros(2, np.int64)
    elems = np.zeros(2, np.int64)
    # the memory pipe (the bandwidth model's transfer, at array 0's share of the bandwidth)
    pipe = np.array([rate, float(lat)])
    pipe_state = np.zeros((1, 1), np.int64)
    seen = np.zeros(N_MEM_COUNTERS, np.int64)
    issue = np.int64(-1)
    # output tiles: the pipe takes transfers in issue order, so a store goes before any load
    # issued after it; stores are issued in order and sent in order
    st_issue = np.zeros(steps + 1, np.int64)
    st_bytes = np.zeros(steps + 1, np.float64)
    st_done = np.zeros(steps + 1, np.int64)
    n_c = 0                                       # stores issued
    n_sent = 0                                    # stores through the pipe
    s = 0
    for ui in range(mine):
        u = ui * P
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
                start = gend[s]
                for x in range(2):
                    new = ld[x] and (s == 0 or key[x] != prev[x]) and not (pan[x] and (jn if x == 0 else im) != 0)
                    prev[x] = key[x]
                    if new:
                        dep = gend[use[x]] if q[x] >= 2 else np.int64(0)   # the GEMM before load q-1's use
                        if pan[x] and ui >= 2:
                            dep = last_of_u[ui - 2]
                        elif pan[x] and ui == 1:
                            if dep1[x] < 0:                 # the second panel: what its first load waits for
                                dep1[x] = dep
                            dep = dep1[x]
                        issue = max(issue + 1, dep)
                        n_sent = _send_stores(issue, st_issue, st_bytes, st_done, n_sent, n_c, pipe, pipe_state, seen)
                        done[x] = bw_transfer(pipe, pipe_state, seen, 0, elems[x] * bpe[x], False, issue)
                        use[x] = s
                        q[x] += 1
                    if ld[x]:
                        start = max(start, done[x])
                if c_st and kk == 0 and n_c >= 2:
                    # output slot: the store two tiles back must be through
                    n_sent = _send_stores(st_issue[n_c - 2], st_issue, st_bytes, st_done, n_sent, n_c, pipe,
                                          pipe_state, seen)
                    start = max(start, st_done[n_c - 2])
                gend[s + 1] = start + tile_cycles(dataflow, R, C, m, n, k, preload, s == steps - 1)
                if c_st and kk == nk - 1:
                    st_issue[n_c] = max(st_issue[n_c - 1] + 1 if n_c > 0 else 0, gend[s + 1])
                    st_bytes[n_c] = m * n * c_bytes
                    n_c += 1
                s += 1
        last_of_u[ui] = gend[s]
    n_sent = _send_stores(np.int64(1) << 62, st_issue, st_bytes, st_done, n_sent, n_c, pipe, pipe_state, seen)
    end = gend[steps]
    for c in range(n_sent):
        end = max(end, st_done[c])
    return end
