"""SCALE-Sim's double-buffered SRAM model, replayed cycle line by cycle line.

SCALE-Sim 3.0.0 times a layer by walking its demand matrices (one row per array
cycle, the operand addresses the array edge reads or writes that cycle) through
three buffers.  The stall-free schedule is the fold geometry of
:mod:`archsim.uarch.systolic.folds`; what this module adds is the buffers, so
that a run gets SCALE-Sim's stall cycles, total cycles, DRAM counts, the first
and last cycle of every SRAM and DRAM stream, and from those its bandwidths.

**IFMAP / FILTER read buffers, USER mode.**  Each operand's prefetch order
(the operand cut into the dataflow's folds; for some operands read along
anti-diagonals) is cut into *sets* of ``ceil(words / 100)`` elements.  Half the
SRAM (rounded up) is the active part, the rest the prefetch part; measured in
sets, ``A`` and ``P``.  At cycle 0 the first ``A`` sets are resident (the fill,
answered at cycles ``-lines .. -1``, is not counted).  A read of an element
outside the resident window ``[start, start + A)`` (cyclic over the sets)
advances the window by ``P`` sets, as often as needed; every advance issues one
prefetch of ``ceil(prefetch words / bank bandwidth)`` request lines that
finishes ``lines + 1`` cycles after the previous prefetch finished.  When that
is later than the request, the line's delay grows by twice the difference
(SCALE-Sim adds it twice); when it is earlier, the delay shrinks by the
difference, which can reach below the hit latency of one cycle.  DRAM reads are
the words of every request line issued, the first fill included.

**IFMAP / FILTER read buffers, CALC mode** (never stall).  Elements are fetched
on demand into sets of ``floor(words / 100)``; one is fetched again once the
window (the current block of 50 sets) has moved past it.  Each time the window
moves, the block before it is prefetched over the interval between the two
previous moves, which sets SCALE-Sim's estimated bandwidth.

**OFMAP write buffer** (both modes).  Writes fill request lines of
``Bandwidth`` words (``ArrayWidth`` in ``CALC`` mode).  When the buffer holds
more than its drain part (half the SRAM, rounded down) and no drain is in
flight, the partial line is closed and up to ``ceil(drain words / Bandwidth)``
lines are drained, one line per cycle; the words drained are the lines' slots,
less the empty slots of the last line only (so a partial line in the middle of
a drain counts as full).  A write that finds the buffer full while a drain is
in flight waits for it.

Per cycle line the array waits for the slowest of the three; the stall count
grows by the largest delay (IFMAP and FILTER less their hit latency).  "Total
Cycles" is the latest cycle at which an OFMAP line was accepted.

The replay is one ``@njit`` pass over the stall-free cycles, visiting only the
array ports a line can use, with a table of one entry per operand element (its
set in the prefetch order, or the set it was last fetched into).
``docs/scalesim.md`` compares it with SCALE-Sim runs.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from archsim.uarch.systolic.folds import DATAFLOW_IS, DATAFLOW_OS, DATAFLOW_WS, fold_counts, fold_cycles
from archsim.uarch.systolic.folds import _ceil_div as _cdiv

#: Result slots of :func:`replay`: the counts, then (first, last) cycle pairs.
(TOTAL, STALL, DRAM_IFMAP, DRAM_FILTER, DRAM_OFMAP,
 SRAM_IFMAP_START, SRAM_IFMAP_STOP, SRAM_FILTER_START, SRAM_FILTER_STOP,
 SRAM_OFMAP_START, SRAM_OFMAP_STOP, DRAM_IFMAP_START, DRAM_IFMAP_STOP,
 DRAM_FILTER_START, DRAM_FILTER_STOP, DRAM_OFMAP_START, DRAM_OFMAP_STOP) = range(17)


# --- element ids: IFMAP (m, k) -> m*K + k; FILTER (k, n) -> k*N + n ------------------------


@njit(cache=True)
def _prefetch_shape(df, op, R, C, M, N, K):
    """(rows, cols, anti-diagonal order?) of an operand's prefetch matrix."""
    if df == DATAFLOW_OS:
        if op == 0:
            return _cdiv(M, R) * K, R, True
        return _cdiv(N, C) * K, C, True
    if df == DATAFLOW_WS:
        if op == 0:
            return _cdiv(K, R) * M, R, True
        return _cdiv(N, C) * K, C, False
    if op == 0:
        return _cdiv(M, C) * K, C, False
    return _cdiv(K, R) * N, R, True


@njit(cache=True)
def _prefetch_elem(df, op, row, col, R, C, M, N, K):
    """Element id at (row, col) of an operand's prefetch matrix, -1 for padding."""
    if df == DATAFLOW_OS:
        if op == 0:
            m = (row // K) * R + col
            return m * K + row % K if m < M else -1
        n = (row // K) * C + col
        return (row % K) * N + n if n < N else -1
    if df == DATAFLOW_WS:
        if op == 0:
            k = (row // M) * R + col
            return (row % M) * K + k if k < K else -1
        n = (row // K) * C + col
        return (row % K) * N + n if n < N else -1
    if op == 0:
        m = (row // K) * C + col
        return m * K + row % K if m < M else -1
    k = (row // N) * R + col
    return k * N + row % N if k < K else -1


@njit(cache=True)
def _set_of_elements(df, op, R, C, M, N, K, elems_per_set):
    """Set index of every element of an operand, in its prefetch order."""
    n_ids = M * K if op == 0 else K * N
    sets = np.empty(n_ids, dtype=np.int32)
    rows, cols, diagonal = _prefetch_shape(df, op, R, C, M, N, K)
    pos = 0
    if diagonal:
        for d in range(rows + cols - 1):
            top = min(d, rows - 1)
            bottom = max(0, d - cols + 1)
            for row in range(top, bottom - 1, -1):
                e = _prefetch_elem(df, op, row, d - row, R, C, M, N, K)
                if e >= 0:
                    sets[e] = pos // elems_per_set
                    pos += 1
    else:
        for row in range(rows):
            for col in range(cols):
                e = _prefetch_elem(df, op, row, col, R, C, M, N, K)
                if e >= 0:
                    sets[e] = pos // elems_per_set
                    pos += 1
    return sets


@njit(cache=True)
def _demand(df, op, fc, fr, line, c, R, C, M, N, K):
    """Element id read (op 0 IFMAP, 1 FILTER) or written (op 2 OFMAP: 0 / -1) by array
    port ``c`` at ``line`` of fold (column fold ``fc``, row fold ``fr``); -1 when idle."""
    if df == DATAFLOW_OS:  # Sr = M, Sc = N, T = K; all three skewed
        u = line - c
        if op == 0:
            m = fr * R + c
            return m * K + u if 0 <= u < K and m < M else -1
        n = fc * C + c
        if n >= N:
            return -1
        if op == 1:
            return u * N + n if 0 <= u < K else -1
        j = u - (K - 1)
        return 0 if 0 <= j < R and fr * R + R - 1 - j < M else -1
    if df == DATAFLOW_WS:  # Sr = K, Sc = N, T = M
        if op == 0:  # skewed, after R idle rows
            m = line - c - R
            k = fr * R + c
            return m * K + k if 0 <= m < M and k < K else -1
        n = fc * C + c
        if n >= N:
            return -1
        if op == 1:  # the weights, bottom row first, not skewed
            k = fr * R + R - 1 - line
            return k * N + n if line < R and k < K else -1
        m = line - c - (2 * R - 1)
        return 0 if 0 <= m < M else -1
    # is: Sr = K, Sc = M, T = N
    if op == 0:  # the stationary inputs, bottom row first, not skewed
        k = fr * R + R - 1 - line
        m = fc * C + c
        return m * K + k if line < R and k < K and m < M else -1
    if op == 1:  # skewed, after R idle rows
        n = line - c - R
        k = fr * R + c
        return k * N + n if 0 <= n < N and k < K else -1
    n = line - c - (2 * R - 1)
    return 0 if 0 <= n < N and fc * C + c < M else -1


@njit(cache=True)
def _ports(df, op, line, width, R, M, N, K):
    """[lo, hi) of the array ports that can be busy at ``line`` of a fold: a skewed operand
    whose rows ``[u0, u1)`` carry data is at port ``c`` on lines ``c + u0 .. c + u1 - 1``; an
    unskewed one (ws FILTER, is IFMAP) on the first R lines only."""
    if df == DATAFLOW_OS:
        u0, u1 = (0, K) if op < 2 else (K - 1, K - 1 + R)
    elif df == DATAFLOW_WS:
        if op == 1:
            return 0, (width if line < R else 0)
        u0, u1 = (R, R + M) if op == 0 else (2 * R - 1, 2 * R - 1 + M)
    else:
        if op == 0:
            return 0, (width if line < R else 0)
        u0, u1 = (R, R + N) if op == 1 else (2 * R - 1, 2 * R - 1 + N)
    return max(0, line - u1 + 1), min(width, line - u0 + 1)


# --- the read buffer ---------------------------------------------------------------------------


@njit(cache=True)
def _resident(s, start, end):
    if start < end:
        return start <= s < end
    return s >= start or s < end


@njit(cache=True)
def _line_demands(df, op, fc, fr, line, width, R, C, M, N, K, elems):
    """The operand elements one cycle line reads, in port order, into ``elems``; returns how
    many."""
    n = 0
    lo, hi = _ports(df, op, line, width, R, M, N, K)
    for c in range(lo, hi):
        e = _demand(df, op, fc, fr, line, c, R, C, M, N, K)
        if e >= 0:
            elems[n] = e
            n += 1
    return n


@njit(cache=True)
def _read_line(elems, n, cycle, sets, st):
    """USER mode: the delay of one cycle line's ``n`` reads ``elems`` of one operand; ``st`` =
    [start, end, last prefetch done, prefetches, sets L, active A, prefetch P, lines per
    prefetch]."""
    offset = 1  # hit latency
    for q in range(n):
        s = sets[elems[q]]
        while not _resident(s, st[0], st[1]):
            if st[6] == 0:  # nothing left to prefetch into: cannot happen for a valid operand
                return -1 << 40
            st[0] = (st[0] + st[6]) % st[4]
            st[1] = (st[0] + st[5]) % st[4]
            st[2] += st[7] + 1
            st[3] += 1
            wait = st[2] - (cycle + offset)
            offset += wait
            if wait > 0:
                offset += wait
    return offset - 1


@njit(cache=True)
def _read_state(n_ids, rows, cols, words, bw, elems_per_set):
    """Initial window of a read buffer, and the request lines of its first fill."""
    active = (words + 1) // 2
    prefetch = words - active
    n_sets = n_ids // elems_per_set + 1
    a = min(_cdiv(active, elems_per_set), n_sets)
    p = min(_cdiv(prefetch, elems_per_set), n_sets - a)
    st = np.zeros(8, dtype=np.int64)
    st[0], st[1], st[2] = 0, a, -1
    st[4], st[5], st[6], st[7] = n_sets, a, p, _cdiv(prefetch, bw)
    return st, min(_cdiv(active, bw), _cdiv(rows * cols, bw))


#: CALC read state: current set, its fill, first resident set, set capacity, words fetched,
#: first request's cycle, prefetch window start / end, window moves, first / last DRAM cycle.
_C_SET, _C_FILL, _C_FIRST, _C_CAP, _C_WORDS, _C_REQ, _C_START, _C_END, _C_MOVES, _C_D0, _C_D1 = \
    range(11)
#: The fill rate (words per cycle) SCALE-Sim's CALC read buffers start from.
_CALC_FILL_BW = 10


@njit(cache=True)
def _calc_prefetch(cst):
    """Issue the prefetch of the window [start, end]: one request line per cycle, answered one
    cycle later.  The first one (the active half) ends two cycles before the first request and
    takes 50 sets at the default fill rate."""
    if cst[_C_MOVES] == 0:
        cst[_C_END] = cst[_C_REQ] - 2
        cst[_C_START] = cst[_C_END] - _cdiv(50 * cst[_C_CAP], _CALC_FILL_BW) + 1
        cst[_C_D0] = cst[_C_START] + 1
    cst[_C_D1] = cst[_C_END] + 1


@njit(cache=True)
def _calc_read_line(elems, n, cycle, last_set, cst):
    """CALC mode: fetch the ``n`` elements ``elems`` one cycle line reads that are not
    resident."""
    if n > 0 and cst[_C_REQ] < -(1 << 61):
        cst[_C_REQ] = cycle
    for q in range(n):
        e = elems[q]
        held = last_set[e]
        if held >= 0 and cst[_C_FIRST] <= held <= cst[_C_SET]:
            continue
        last_set[e] = cst[_C_SET]
        cst[_C_WORDS] += 1
        cst[_C_FILL] += 1
        if cst[_C_FILL] == cst[_C_CAP]:
            cst[_C_SET] += 1
            cst[_C_FILL] = 0
            if cst[_C_SET] == cst[_C_FIRST] + 100 // 2:  # the active half is full: prefetch it,
                _calc_prefetch(cst)                       # the window moves on
                cst[_C_MOVES] += 1
                cst[_C_FIRST] += 100 - 100 // 2
                cst[_C_START] = cst[_C_END] + 1
                cst[_C_END] = cycle


@njit(cache=True)
def _calc_finish(cst):
    """The prefetch of what is left after the last line."""
    if cst[_C_MOVES] == 0:
        n_sets = cst[_C_SET] + 1 if cst[_C_FILL] > 0 else cst[_C_SET]
        n = _cdiv(n_sets * cst[_C_CAP], _CALC_FILL_BW)
        cst[_C_D0] = -n
        cst[_C_D1] = -1
    else:
        cst[_C_D1] = cst[_C_END] + 1


# --- the write buffer --------------------------------------------------------------------------

#: Write buffer state: free words, drain done, open-line fill, closed lines, first undrained line,
#: words written to DRAM, words, drain words, bandwidth, first / last DRAM cycle.
_W_FREE, _W_DONE, _W_OPEN, _W_LINES, _W_NEXT, _W_WORDS, _W_SIZE, _W_DRAIN, _W_BW, _W_D0, _W_D1 = \
    range(11)


@njit(cache=True)
def _drain(wst, lines, start_cycle):
    """Drain up to one drain part of closed lines from ``start_cycle``, one line per cycle;
    returns the cycle the last line leaves."""
    bw = wst[_W_BW]
    first = wst[_W_NEXT]
    last = min(first + _cdiv(wst[_W_DRAIN], bw), wst[_W_LINES])
    n = last - first
    if n <= 0:
        return start_cycle - 1
    words = n * bw - (bw - lines[last - 1])
    wst[_W_WORDS] += words
    wst[_W_FREE] += words
    wst[_W_NEXT] = last
    if wst[_W_D0] < -(1 << 61):
        wst[_W_D0] = start_cycle
    wst[_W_D1] = max(wst[_W_D1], start_cycle + n - 1)
    return start_cycle + n - 1


@njit(cache=True)
def _close_line(wst, lines, fill):
    if wst[_W_LINES] == lines.shape[0]:
        first = wst[_W_NEXT]
        if 2 * first >= wst[_W_LINES]:  # drained lines are not looked at again
            for j in range(wst[_W_LINES] - first):
                lines[j] = lines[first + j]
            wst[_W_LINES] -= first
            wst[_W_NEXT] = 0
        else:
            grown = np.empty(2 * lines.shape[0], dtype=np.int64)
            grown[: lines.shape[0]] = lines
            lines = grown
    lines[wst[_W_LINES]] = fill
    wst[_W_LINES] += 1
    return lines


@njit(cache=True)
def _write_line(df, fc, fr, line, R, C, M, N, K, cycle, wst, lines):
    """(cycle the line's writes are accepted, lines, any write)."""
    current = cycle
    busy = False
    bw = wst[_W_BW]
    lo, hi = _ports(df, 2, line, C, R, M, N, K)
    for c in range(lo, hi):
        if _demand(df, 2, fc, fr, line, c, R, C, M, N, K) < 0:
            continue
        busy = True
        wst[_W_OPEN] += 1
        wst[_W_FREE] -= 1
        if wst[_W_OPEN] == bw:
            lines = _close_line(wst, lines, bw)
            wst[_W_OPEN] = 0
        if current < wst[_W_DONE]:
            if wst[_W_FREE] <= 0:
                current = wst[_W_DONE]
        elif wst[_W_FREE] < wst[_W_SIZE] - wst[_W_DRAIN]:
            if wst[_W_OPEN] > 0:
                lines = _close_line(wst, lines, wst[_W_OPEN])
                wst[_W_OPEN] = 0
            wst[_W_DONE] = _drain(wst, lines, current)
    return current, lines, busy


# --- the replay ----------------------------------------------------------------------------------


@njit(cache=True)
def _mark(out, slot, cycle):
    """Record a busy cycle in the (first, last) pair at ``slot``."""
    if out[slot] < -(1 << 61):
        out[slot] = cycle
    out[slot + 1] = cycle


@njit(cache=True)
def replay(df, R, C, M, N, K, ifmap_words, filter_words, ofmap_words,
           ifmap_bw, filter_bw, ofmap_bw, user):
    """Replay one GEMM through SCALE-Sim's buffers.

    ``user``: bandwidth-limited reads (``USER`` mode); otherwise (``CALC``) reads never stall
    and the read counts are SCALE-Sim's bandwidth-estimating buffer's.
    Returns int64[17], indexed by the slot names of this module: total cycles (SCALE-Sim's
    "Total Cycles"), stall cycles, DRAM IFMAP / FILTER reads and OFMAP writes (words), then
    the first and last cycle of each SRAM's accesses and of each DRAM stream.  Total is -1
    when a read buffer has no prefetch half.
    """
    out = np.full(17, -(1 << 62), dtype=np.int64)
    row_folds, col_folds, T = fold_counts(df, R, C, M, N, K)
    fold_len = fold_cycles(df, R, C, T)
    iw, fw = (C, R) if df == DATAFLOW_IS else (R, C)  # IFMAP / FILTER ports of the array edge

    if user:
        i_eps = _cdiv(ifmap_words, 100)
        f_eps = _cdiv(filter_words, 100)
        i_sets = _set_of_elements(df, 0, R, C, M, N, K, i_eps)
        f_sets = _set_of_elements(df, 1, R, C, M, N, K, f_eps)
        ir, ic, _d = _prefetch_shape(df, 0, R, C, M, N, K)
        fr_, fc_, _d = _prefetch_shape(df, 1, R, C, M, N, K)
        i_st, i_fill = _read_state(M * K, ir, ic, ifmap_words, ifmap_bw, i_eps)
        f_st, f_fill = _read_state(K * N, fr_, fc_, filter_words, filter_bw, f_eps)
    else:
        # CALC: an element is fetched when it is not in a resident set; sets hold a hundredth
        # of the SRAM, the window keeps the current block of 50 sets
        i_sets = np.full(M * K, -1, dtype=np.int32)
        f_sets = np.full(K * N, -1, dtype=np.int32)
        i_st = np.zeros(11, dtype=np.int64)
        f_st = np.zeros(11, dtype=np.int64)
        i_st[_C_CAP] = ifmap_words // 100
        f_st[_C_CAP] = filter_words // 100
        i_st[_C_REQ] = f_st[_C_REQ] = -(1 << 62)
        i_fill = f_fill = 0

    wst = np.zeros(11, dtype=np.int64)
    wst[_W_FREE] = wst[_W_SIZE] = ofmap_words
    wst[_W_DRAIN] = ofmap_words - (ofmap_words + 1) // 2
    wst[_W_BW] = ofmap_bw
    wst[_W_D0] = wst[_W_D1] = -(1 << 62)
    lines = np.empty(1024, dtype=np.int64)
    i_elems = np.empty(max(1, iw), dtype=np.int64)      # one cycle line's reads of each operand
    f_elems = np.empty(max(1, fw), dtype=np.int64)

    stall = 0
    total = 0
    done = 0
    i = 0
    for fc in range(col_folds):
        for fr in range(row_folds):
            for line in range(fold_len):
                cycle = i + stall
                delay = 0
                n_i = _line_demands(df, 0, fc, fr, line, iw, R, C, M, N, K, i_elems)
                n_f = _line_demands(df, 1, fc, fr, line, fw, R, C, M, N, K, f_elems)
                r_i, r_f = n_i > 0, n_f > 0
                if user:
                    d_i = _read_line(i_elems, n_i, cycle, i_sets, i_st)
                    d_f = _read_line(f_elems, n_f, cycle, f_sets, f_st)
                    if d_i < -(1 << 39) or d_f < -(1 << 39):
                        out[TOTAL] = -1
                        return out
                    delay = max(d_i, d_f)
                else:
                    d_i = d_f = 0
                    _calc_read_line(i_elems, n_i, cycle, i_sets, i_st)
                    _calc_read_line(f_elems, n_f, cycle, f_sets, f_st)
                if r_i:
                    _mark(out, SRAM_IFMAP_START, cycle + d_i + 1)
                if r_f:
                    _mark(out, SRAM_FILTER_START, cycle + d_f + 1)
                done, lines, w = _write_line(df, fc, fr, line, R, C, M, N, K, cycle, wst, lines)
                if w:
                    _mark(out, SRAM_OFMAP_START, done)
                delay = max(delay, done - cycle)
                total = max(total, done)
                stall += delay
                i += 1
    # the rest of the OFMAP buffer drains from the cycle the last line was accepted
    if wst[_W_OPEN] > 0:
        lines = _close_line(wst, lines, wst[_W_OPEN])
        wst[_W_OPEN] = 0
    cycle = done
    while wst[_W_NEXT] < wst[_W_LINES]:
        cycle = _drain(wst, lines, cycle) + 1
    out[TOTAL] = total
    out[STALL] = stall
    if user:
        out[DRAM_IFMAP] = (i_fill + i_st[3] * i_st[7]) * ifmap_bw
        out[DRAM_FILTER] = (f_fill + f_st[3] * f_st[7]) * filter_bw
        # the first fill answers at cycles -lines .. -1; each prefetch when it is done
        out[DRAM_IFMAP_START], out[DRAM_IFMAP_STOP] = -i_fill, max(-1, i_st[2])
        out[DRAM_FILTER_START], out[DRAM_FILTER_STOP] = -f_fill, max(-1, f_st[2])
    else:
        _calc_finish(i_st)
        _calc_finish(f_st)
        out[DRAM_IFMAP] = i_st[_C_WORDS]
        out[DRAM_FILTER] = f_st[_C_WORDS]
        out[DRAM_IFMAP_START], out[DRAM_IFMAP_STOP] = i_st[_C_D0], i_st[_C_D1]
        out[DRAM_FILTER_START], out[DRAM_FILTER_STOP] = f_st[_C_D0], f_st[_C_D1]
    out[DRAM_OFMAP] = wst[_W_WORDS]
    out[DRAM_OFMAP_START], out[DRAM_OFMAP_STOP] = wst[_W_D0], wst[_W_D1]
    return out
