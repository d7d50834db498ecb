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

from archsim.uarch.systolic.cost import tile_cycles


@njit(cache=True)
def _xfer(nbytes, issue, bus, bpc, lat):
    """(done, bus free) of a transfer issued at ``issue`` through a pipe free from ``bus``."""
    dur = np.int64(np.ceil(nbytes / bpc))
    if dur < 1:
        dur = 1
    begin = issue if issue > bus else bus
    return begin + dur + lat, begin + dur


@njit(cache=True)
def _pop(pend_t, pend_b, n):
    """Drop the oldest pending store; returns the new count."""
    for i in range(n - 1):
        pend_t[i] = pend_t[i + 1]
        pend_b[i] = pend_b[i + 1]
    return n - 1


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
    pan_a = panel and not order_nm
    pan_b = panel and order_nm
    mine = (units + P - 1) // P                   # array 0 runs units 0, P, 2P, ...
    steps = mine * n_mid * nk
    gend = np.zeros(steps + 1, np.int64)          # gend[s + 1]: end of the GEMM of step s
    bus = np.int64(0)
    issue = np.int64(-1)
    wr_issue = np.int64(-1)
    prev_a = -1
    prev_b = -1
    qa = 0
    qb = 0
    dep1_a = np.int64(-1)                         # the second panel's wait (per operand)
    dep1_b = np.int64(-1)
    use_a = -1                                    # first-use step of the operand's last load
    use_b = -1
    done_a = np.int64(0)
    done_b = np.int64(0)
    # per outer iteration of this array: its last GEMM (panels wait for the one two back)
    last_of_u = np.zeros(mine + 1, np.int64)
    # output tiles: stores issued and not yet through the pipe (issue, bytes), at most a few;
    # the pipe takes transfers in issue order, so a store goes before any later-issued load
    pend_t = np.zeros(4, np.int64)
    pend_b = np.zeros(4, np.float64)
    n_pend = 0
    st_done = np.zeros(steps + 1, np.int64)      # completion of the c-th store
    n_c = 0                                       # stores issued
    n_sent = 0                                    # stores through the pipe
    s = 0
    end = np.int64(0)
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
                a_key = (g * nm + im) * nk + kk
                b_key = ((0 if b_shared else g) * nk + kk) * nn + jn
                la = a_ld and (s == 0 or a_key != prev_a)
                lb = b_ld and (s == 0 or b_key != prev_b)
                if pan_a and jn != 0:
                    la = False
                if pan_b and im != 0:
                    lb = False
                prev_a = a_key
                prev_b = b_key
                if la:
                    dep = np.int64(0)
                    if qa >= 2:
                        dep = gend[use_a]    # the GEMM before load q-1's first use
                    if pan_a and ui >= 2:
                        dep = last_of_u[ui - 2]
                    elif pan_a and ui == 1:
                        # the second panel: what its first load waits for
                        if dep1_a < 0:
                            dep1_a = dep
                        dep = dep1_a
                    t = issue + 1
                    if dep > t:
                        t = dep
                    issue = t
                    while n_pend > 0 and pend_t[0] <= t:
                        st_done[n_sent], bus = _xfer(pend_b[0], pend_t[0], bus, rate, lat)
                        n_sent += 1
                        n_pend = _pop(pend_t, pend_b, n_pend)
                    done_a, bus = _xfer(m * k * a_bytes, t, bus, rate, lat)
                    use_a = s
                    qa += 1
                if lb:
                    dep = np.int64(0)
                    if qb >= 2:
                        dep = gend[use_b]    # the GEMM before load q-1's first use
                    if pan_b and ui >= 2:
                        dep = last_of_u[ui - 2]
                    elif pan_b and ui == 1:
                        # the second panel: what its first load waits for
                        if dep1_b < 0:
                            dep1_b = dep
                        dep = dep1_b
                    t = issue + 1
                    if dep > t:
                        t = dep
                    issue = t
                    while n_pend > 0 and pend_t[0] <= t:
                        st_done[n_sent], bus = _xfer(pend_b[0], pend_t[0], bus, rate, lat)
                        n_sent += 1
                        n_pend = _pop(pend_t, pend_b, n_pend)
                    done_b, bus = _xfer(k * n * b_bytes, t, bus, rate, lat)
                    use_b = s
                    qb += 1
                start = gend[s]
                if a_ld and done_a > start:
                    start = done_a
                if b_ld and done_b > start:
                    start = done_b
                if c_st and kk == 0 and n_c >= 2:
                    # output slot: the store two tiles back must be through
                    while n_sent < n_c - 1:
                        st_done[n_sent], bus = _xfer(pend_b[0], pend_t[0], bus, rate, lat)
                        n_sent += 1
                        n_pend = _pop(pend_t, pend_b, n_pend)
                    if st_done[n_c - 2] > start:
                        start = st_done[n_c - 2]
                last = s == steps - 1
                gend[s + 1] = start + tile_cycles(dataflow, R, C, m, n, k, preload, last)
                if c_st and kk == nk - 1:
                    t = wr_issue + 1
                    if gend[s + 1] > t:
                        t = gend[s + 1]
                    wr_issue = t
                    if n_pend == pend_t.shape[0]:
                        st_done[n_sent], bus = _xfer(pend_b[0], pend_t[0], bus, rate, lat)
                        n_sent += 1
                        n_pend = _pop(pend_t, pend_b, n_pend)
                    pend_t[n_pend] = t
                    pend_b[n_pend] = m * n * c_bytes
                    n_pend += 1
                    n_c += 1
                s += 1
        last_of_u[ui] = gend[s]
    while n_pend > 0:
        st_done[n_sent], bus = _xfer(pend_b[0], pend_t[0], bus, rate, lat)
        n_sent += 1
        n_pend = _pop(pend_t, pend_b, n_pend)
    if gend[steps] > end:
        end = gend[steps]
    for c in range(n_sent):
        if st_done[c] > end:
            end = st_done[c]
    return end
