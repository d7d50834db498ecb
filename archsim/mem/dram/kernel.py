"""Numba kernels of the bank-level DRAM model.

Three pieces, all over flat integer arrays:

- the timing state: per node (channel, rank / pseudo-channel, [stack id], bank group, bank) and
  per command, the first tick the command may issue there (``ready``), plus the issue history
  needed by rolling-window constraints (tFAW). :func:`ready_bank` / :func:`ready_scope` read it,
  :func:`issue_update` applies a command's constraints (:mod:`archsim.mem.dram.spec` tables).
- :func:`map_addresses`: byte address -> (channel, bank, row, column) for a configured mapping.
- :func:`run_controller`: a per-channel memory controller driven by an in-order request
  frontend (trace replay). Burst level: every ACT / PRE / RD / WR / REF is timed.

The transfer engine of the timing kernel lives in :mod:`archsim.mem.dram.engine`.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir as llir
from numba import njit, types
from numba.extending import intrinsic

ACT, PRE, PREA, RD, WR, RDA, WRA, REF, REFPB = 0, 1, 2, 3, 4, 5, 6, 7, 8
N_CMD = 9
W_MAX = 4
INF = np.int64(1) << np.int64(62)
NV_HEADS = 4      # candidates evaluated for a channel's next visit after an issue (more: visit t + 1)

# field kinds of an address mapping (levels 1..L-1 use their level index)
F_CH = 100
F_ROW = 101
F_COL = 102

# controller counters (per channel rows of an int64 [C, N_CC] array)
CC_ACT, CC_PRE, CC_PREA, CC_RD, CC_WR, CC_REF, CC_REFPB = 0, 1, 2, 3, 4, 5, 6
CC_RHIT, CC_RMISS, CC_RCONF, CC_WHIT, CC_WMISS, CC_WCONF = 7, 8, 9, 10, 11, 12
CC_RSERVED, CC_WSERVED, CC_FWD, CC_COALESCED, CC_RACCEPT, CC_WACCEPT = 13, 14, 15, 16, 17, 18
CC_ACT2, CC_CAS = 19, 20       # LPDDR5: second activate commands, WCK-sync CAS commands
CC_CAPPRE = 21                  # closed_cap row policy: PREs it queued as maintenance (also in CC_PRE)
N_CC = 22


# ------------------------------------------------------------------ timing state
@njit(cache=True)
def node_of(loff, ncount, c, lv, local):
    return loff[lv] + c * ncount[lv] + local


@njit(cache=True)
def ready_bank(ready, loff, ncount, bnode, L, cmd, c, b):
    """First tick ``cmd`` may issue to bank ``b`` of channel ``c`` (max over its path)."""
    r = np.int64(-1)
    for lv in range(L):
        v = ready[loff[lv] + c * ncount[lv] + bnode[lv, b], cmd]
        if v > r:
            r = v
    return r


@njit(cache=True, inline='always')
def ready_path(ready, pnode, L, cmd, cb):
    """:func:`ready_bank` over a precomputed row of node ids (``pnode[c * NB + b]``)."""
    r = ready[pnode[cb, 0], cmd]
    for lv in range(1, L):
        v = ready[pnode[cb, lv], cmd]
        if v > r:
            r = v
    return r


@njit(cache=True, inline='always')
def ready_scope(ready, loff, ncount, L, cmd, c, s, sidx):
    """First tick an all-bank command may issue to node ``sidx`` of level ``s``."""
    r = np.int64(-1)
    for lv in range(L):
        if lv <= s:
            nl = sidx // (ncount[s] // ncount[lv])
            v = ready[loff[lv] + c * ncount[lv] + nl, cmd]
            if v > r:
                r = v
        else:
            per = ncount[lv] // ncount[s]
            base = loff[lv] + c * ncount[lv]
            for nl in range(sidx * per, (sidx + 1) * per):
                v = ready[base + nl, cmd]
                if v > r:
                    r = v
    return r


@njit(cache=True)
def _apply_target(ready, hist, haswin, c_start, c_fol, c_lat, c_win, c_sib, n, lv, cmd, t):
    if haswin[lv, cmd]:
        for w in range(W_MAX - 1, 0, -1):
            hist[n, cmd, w] = hist[n, cmd, w - 1]
        hist[n, cmd, 0] = t
    for k in range(c_start[lv, cmd], c_start[lv, cmd + 1]):
        if c_sib[k]:
            continue
        w = c_win[k]
        past = t if w == 1 else hist[n, cmd, w - 1]
        if past < 0:
            continue
        v = past + c_lat[k]
        f = c_fol[k]
        if v > ready[n, f]:
            ready[n, f] = v


@njit(cache=True, inline='always')
def issue_update(ready, hist, haswin, hassib, c_start, c_fol, c_lat, c_win, c_sib,
                 loff, ncount, lsize, bnode, L, cmd, c, s, sidx, t):
    """Apply the constraints of ``cmd`` issued at tick ``t`` to node ``sidx`` of level ``s``
    (a bank for ordinary commands, ``s = L-1``; a rank / pseudo-channel for all-bank ones):
    the addressed node at every level down to ``s`` and all nodes below it, plus the sibling
    constraints to the other nodes under the same parent. (The per-node step is written out
    here rather than called: a call passing many arrays costs more than the work.)"""
    for lv in range(L):
        ncl = ncount[lv]
        base = loff[lv] + c * ncl
        if s == L - 1:
            lo = bnode[lv, sidx]
            hi = lo + 1
        elif lv <= s:
            lo = sidx // (ncount[s] // ncl)
            hi = lo + 1
        else:
            per = ncl // ncount[s]
            lo = sidx * per
            hi = lo + per
        k0 = c_start[lv, cmd]
        k1 = c_start[lv, cmd + 1]
        win = haswin[lv, cmd]
        for nn in range(lo, hi):
            n = base + nn
            if win:
                for w in range(W_MAX - 1, 0, -1):
                    hist[n, cmd, w] = hist[n, cmd, w - 1]
                hist[n, cmd, 0] = t
            for k in range(k0, k1):
                if c_sib[k]:
                    continue
                w = c_win[k]
                past = t if w == 1 else hist[n, cmd, w - 1]
                if past < 0:
                    continue
                v = past + c_lat[k]
                f = c_fol[k]
                if v > ready[n, f]:
                    ready[n, f] = v
        if lv <= s and lv >= 1 and hassib[lv, cmd]:
            nl = lo
            p0 = (nl // lsize[lv]) * lsize[lv]
            for j in range(lsize[lv]):
                m = p0 + j
                if m == nl:
                    continue
                mm = base + m
                for k in range(k0, k1):
                    if c_sib[k]:
                        v = t + c_lat[k]
                        if v > ready[mm, c_fol[k]]:
                            ready[mm, c_fol[k]] = v


@njit(cache=True)
def split_tables(c_start, c_fol, c_lat, c_win, c_sib, L):
    """The constraint tables regrouped per (level, command): own-node entries, then sibling
    entries. Returns (start [L, N_CMD, 3]: own begin, sibling begin, end; fol; lat; win)."""
    n = len(c_fol)
    start = np.zeros((L, N_CMD, 3), dtype=np.int64)
    fol = np.empty(n, dtype=np.int64)
    lat = np.empty(n, dtype=np.int64)
    win = np.empty(n, dtype=np.int64)
    j = 0
    for lv in range(L):
        for cmd in range(N_CMD):
            start[lv, cmd, 0] = j
            for sib in range(2):
                if sib == 1:
                    start[lv, cmd, 1] = j
                for k in range(c_start[lv, cmd], c_start[lv, cmd + 1]):
                    if (c_sib[k] != 0) == (sib == 1):
                        fol[j] = c_fol[k]
                        lat[j] = c_lat[k]
                        win[j] = c_win[k]
                        j += 1
            start[lv, cmd, 2] = j
    return start, fol, lat, win


@njit(cache=True, inline='always')
def issue_bank(ready, hist, haswin, hassib, e_start, e_fol, e_lat, e_win, pnode, pown, lsize,
               L, cmd, cb, b, t):
    """:func:`issue_update` for a bank-level command (``s = L-1``) over the precomputed path
    (``pnode[cb]``: node ids, ``pown[b]``: index of the path node among its siblings) and the
    regrouped tables of :func:`split_tables`. Same updates in the same order."""
    for lv in range(L):
        n = pnode[cb, lv]
        k0 = e_start[lv, cmd, 0]
        k1 = e_start[lv, cmd, 1]
        k2 = e_start[lv, cmd, 2]
        if haswin[lv, cmd]:
            for w in range(W_MAX - 1, 0, -1):
                hist[n, cmd, w] = hist[n, cmd, w - 1]
            hist[n, cmd, 0] = t
        for k in range(k0, k1):
            w = e_win[k]
            past = t if w == 1 else hist[n, cmd, w - 1]
            if past < 0:
                continue
            v = past + e_lat[k]
            f = e_fol[k]
            if v > ready[n, f]:
                ready[n, f] = v
        if lv >= 1 and k2 > k1:
            own = pown[b, lv]
            first = n - own
            for j in range(lsize[lv]):
                if j == own:
                    continue
                mm = first + j
                for k in range(k1, k2):
                    v = t + e_lat[k]
                    f = e_fol[k]
                    if v > ready[mm, f]:
                        ready[mm, f] = v


@njit(cache=True)
def fast_tables(e_start, e_fol, e_lat, e_win, haswin, lsize, L):
    """Per command, the own-node entries of every level that do not look back in the issue
    history (window 1) as one list (``fe[cmd, j]`` = level, following command, latency; ``fn[cmd]``
    entries), the sibling entries of the levels with siblings as another (``fs``, ``fsn``), and
    whether the command has rolling-window entries (``rest``: those stay with
    :func:`issue_bank_rest`). All updates are maxima: the split keeps the result. Readiness is
    a maximum over a bank's path (or over a refresh scope with its ancestors), so an own-node
    entry is dropped when an entry of the same or a higher level (an ancestor, read with it
    wherever it is read) raises the same command at least as far."""
    fe = np.zeros((N_CMD, len(e_fol) + 1, 3), dtype=np.int64)
    fn = np.zeros(N_CMD, dtype=np.int64)
    fs = np.zeros((N_CMD, len(e_fol) + 1, 3), dtype=np.int64)
    fsn = np.zeros(N_CMD, dtype=np.int64)
    rest = np.zeros(N_CMD, dtype=np.bool_)
    for cmd in range(N_CMD):
        j = 0
        js = 0
        for lv in range(L):
            if haswin[lv, cmd]:
                rest[cmd] = True
            for k in range(e_start[lv, cmd, 0], e_start[lv, cmd, 1]):
                if e_win[k] != 1:
                    continue
                # an entry is left out when the same or a higher level (a node on every path
                # through this one) already raises the same command at least as far
                covered = False
                for jj in range(j):
                    if fe[cmd, jj, 1] == e_fol[k] and fe[cmd, jj, 0] <= lv and fe[cmd, jj, 2] >= e_lat[k]:
                        covered = True
                if covered:
                    continue
                fe[cmd, j, 0] = lv
                fe[cmd, j, 1] = e_fol[k]
                fe[cmd, j, 2] = e_lat[k]
                j += 1
            if lv >= 1 and lsize[lv] > 1:
                for k in range(e_start[lv, cmd, 1], e_start[lv, cmd, 2]):
                    fs[cmd, js, 0] = lv
                    fs[cmd, js, 1] = e_fol[k]
                    fs[cmd, js, 2] = e_lat[k]
                    js += 1
        fn[cmd] = j
        fsn[cmd] = js
    return fe, fn, fs, fsn, rest


@njit(cache=True, inline='always')
def issue_bank_rest(ready, hist, haswin, e_start, e_fol, e_lat, e_win, pnode, L, cmd, cb, t):
    """The part of :func:`issue_bank` that :func:`fast_tables` leaves out: issue history and
    rolling-window entries."""
    for lv in range(L):
        if haswin[lv, cmd]:
            n = pnode[cb, lv]
            for w in range(W_MAX - 1, 0, -1):
                hist[n, cmd, w] = hist[n, cmd, w - 1]
            hist[n, cmd, 0] = t
            for k in range(e_start[lv, cmd, 0], e_start[lv, cmd, 1]):
                w = e_win[k]
                if w == 1:
                    continue
                past = hist[n, cmd, w - 1]
                if past < 0:
                    continue
                v = past + e_lat[k]
                f = e_fol[k]
                if v > ready[n, f]:
                    ready[n, f] = v


# ------------------------------------------------------------------ address mapping
@njit(cache=True)
def map_addresses(addrs, tx_bits, fkind, fbits, mode, xor_mode, L, lsize, row_bits, col_bits,
                  ch_out, bank_out, row_out, col_out):
    """Decode byte addresses. ``fkind/fbits`` list the fields from the LSB up (after the
    transaction offset); ``mode`` 1 is the MOP4CLXOR scheme (channel fields first, then two
    column bits, the bank levels, the other column bits, the row; bank levels XOR-ed with
    column bits). ``xor_mode`` bit 0: bank levels ^= low row bits, bit 1: channel ^= low row bits."""
    lvl = np.zeros(8, dtype=np.int64)
    nf = len(fkind)
    lbits = np.zeros(8, dtype=np.int64)          # address bits of each level
    for lv in range(1, L):
        nb = 0
        while (np.int64(1) << nb) < lsize[lv]:
            nb += 1
        lbits[lv] = nb
    for i in range(len(addrs)):
        a = addrs[i] >> tx_bits
        ch = np.int64(0)
        row = np.int64(0)
        col = np.int64(0)
        for lv in range(L):
            lvl[lv] = 0
        if mode == 1:
            for k in range(nf):                      # channel fields only
                if fkind[k] == F_CH:
                    ch = a & ((np.int64(1) << fbits[k]) - 1)
                    a >>= fbits[k]
            col = a & 3
            a >>= 2
            for lv in range(1, L):
                nb = lbits[lv]
                lvl[lv] = a & ((np.int64(1) << nb) - 1)
                a >>= nb
            col += (a & ((np.int64(1) << (col_bits - 2)) - 1)) << 2
            a >>= col_bits - 2
            row = a
            xi = 0
            for lv in range(1, L):
                nb = lbits[lv]
                if nb > 0:
                    lvl[lv] ^= (col >> xi) & ((np.int64(1) << nb) - 1)
                    xi += nb
            row ^= (col >> xi) & ((np.int64(1) << row_bits) - 1)
            row &= (np.int64(1) << row_bits) - 1
        else:
            for k in range(nf):
                v = a & ((np.int64(1) << fbits[k]) - 1)
                a >>= fbits[k]
                kd = fkind[k]
                if kd == F_CH:
                    ch = v
                elif kd == F_ROW:
                    row = v
                elif kd == F_COL:
                    col = v
                else:
                    lvl[kd] = v
        if xor_mode & 1:
            xi = 0
            for lv in range(L - 1, 0, -1):
                nb = lbits[lv]
                if lv >= L - 2 and nb > 0:       # bank group and bank
                    lvl[lv] ^= (row >> xi) & ((np.int64(1) << nb) - 1)
                    xi += nb
        if xor_mode & 2:
            cb = 0
            for k in range(nf):
                if fkind[k] == F_CH:
                    cb = fbits[k]
            if cb > 0:
                ch ^= (row >> 4) & ((np.int64(1) << cb) - 1)
        b = np.int64(0)
        for lv in range(1, L):
            b = b * lsize[lv] + lvl[lv]
        ch_out[i] = ch
        bank_out[i] = b
        row_out[i] = row
        col_out[i] = col


@njit(cache=True)
def map_channel_bank_row(addrs, tx_bits, fkind, fbits, mode, xor_mode, L, lsize, row_bits, col_bits,
                         ch_out, bank_out, row_out):
    """:func:`map_addresses` without the column (trace replay does not use it). Bit-field
    schemes (``mode`` 0) with power-of-two level sizes take each field with one shift and mask
    and place the bank levels by shifts; the others go through :func:`map_addresses`."""
    N = len(addrs)
    pow2 = True
    lbits = np.zeros(8, dtype=np.int64)
    for lv in range(1, L):
        nb = 0
        while (np.int64(1) << nb) < lsize[lv]:
            nb += 1
        lbits[lv] = nb
        if (np.int64(1) << nb) != lsize[lv]:
            pow2 = False
    if mode != 0 or not pow2:
        col = np.empty(N, dtype=np.int64)
        map_addresses(addrs, tx_bits, fkind, fbits, mode, xor_mode, L, lsize, row_bits, col_bits,
                      ch_out, bank_out, row_out, col)
        return
    # per kind the last field wins (as in map_addresses): shift and mask in the address
    ch_sh, ch_m, row_sh, row_m, ch_bits = 0, 0, 0, 0, 0
    lv_sh = np.zeros(8, dtype=np.int64)
    lv_m = np.zeros(8, dtype=np.int64)
    sh = 0
    for k in range(len(fkind)):
        m = (np.int64(1) << fbits[k]) - 1
        kd = fkind[k]
        if kd == F_CH:
            ch_sh, ch_m, ch_bits = sh, m, fbits[k]
        elif kd == F_ROW:
            row_sh, row_m = sh, m
        elif kd != F_COL:
            lv_sh[kd] = sh
            lv_m[kd] = m
        sh += fbits[k]
    # position of each level in the bank index (the last level lowest)
    b_sh = np.zeros(8, dtype=np.int64)
    pos = 0
    for lv in range(L - 1, 0, -1):
        b_sh[lv] = pos
        pos += lbits[lv]
    # xor_mode bit 0: bank group and bank ^= low row bits (the bank lowest)
    x_sh = np.zeros(8, dtype=np.int64)
    x_m = np.zeros(8, dtype=np.int64)
    if xor_mode & 1:
        xi = 0
        for lv in range(L - 1, 0, -1):
            if lv >= L - 2 and lbits[lv] > 0:
                x_sh[lv] = xi
                x_m[lv] = (np.int64(1) << lbits[lv]) - 1
                xi += lbits[lv]
    ch_x = (xor_mode & 2) != 0 and ch_bits > 0
    ch_xm = (np.int64(1) << ch_bits) - 1
    for i in range(N):
        a = addrs[i] >> tx_bits
        ch = (a >> ch_sh) & ch_m
        row = (a >> row_sh) & row_m
        b = np.int64(0)
        for lv in range(1, L):
            v = ((a >> lv_sh[lv]) & lv_m[lv]) ^ ((row >> x_sh[lv]) & x_m[lv])
            b |= v << b_sh[lv]
        if ch_x:
            ch ^= (row >> 4) & ch_xm
        ch_out[i] = ch
        bank_out[i] = b
        row_out[i] = row


@njit(cache=True)
def read_latencies(is_write, arrive, depart, ticks):
    """Latencies (depart - arrive) of the reads completed by tick ``ticks``, in trace order,
    and their sum."""
    n = 0
    for i in range(len(arrive)):
        if not is_write[i] and depart[i] >= 0 and depart[i] <= ticks and arrive[i] >= 0:
            n += 1
    lat = np.empty(n, dtype=np.int64)
    tot = np.int64(0)
    j = 0
    for i in range(len(arrive)):
        if not is_write[i] and depart[i] >= 0 and depart[i] <= ticks and arrive[i] >= 0:
            lat[j] = depart[i] - arrive[i]
            tot += lat[j]
            j += 1
    return lat, tot


# ------------------------------------------------------------------ controller (trace replay)
@njit(cache=True, inline='always')
def _is_col(cmd):
    return cmd == RD or cmd == WR or cmd == RDA or cmd == WRA


@njit(cache=True, inline='always')
def _scope_active(act_cnt, c, NB, ncount, s, sidx, L):
    per = ncount[L - 1] // ncount[s]
    for b in range(sidx * per, (sidx + 1) * per):
        if act_cnt[c * NB + b] > 0:
            return True
    return False


# Request queues (read and write queue of each channel, row ``qr = 2 * channel + (1 if write)``)
# are kept in age order, with bit masks over the positions: per (queue, bank) the positions of
# that bank's requests (``bm``), per queue the live positions (``lm``), the requests that hit
# their bank's open row (``hm``) and the class heads (``hd``): the oldest request of each (bank,
# hits open row) class. Requests of one class have the same next command (column command, or
# ACT / PRE), the same filters and the same readiness, so an FR-FCFS scan ("oldest ready
# first") only needs to evaluate the class heads, in position order. A request keeps its
# position until it leaves (removal clears its bits; positions of the masks hold twice the
# queue depth); appends go to the end, and the queue is compacted only when the end reaches
# the last position (or restarts at 0 when it empties).
@intrinsic
def _ctz(typingctx, x):
    """Index of the lowest set bit of a non-zero uint64."""
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], llir.Constant(llir.IntType(1), 0))
    return sig, codegen


@intrinsic
def _popc(typingctx, x):
    """Number of set bits of a uint64."""
    sig = types.int64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])
    return sig, codegen


@njit(cache=True)
def _prio_candidate(kd, sx, c, NB, n_scope, open_row, act_cnt, ncount, rscope, L, ready, loff, pnode):
    """Next command of the head of channel ``c``'s priority buffer (a refresh of scope node
    ``sx`` for REF, of bank ``sx`` else): PREA / PRE while a row is open, then REF / REFPB; a
    row close of the closed_cap policy (kind PRE) is a PRE whether or not the bank is still open.
    Returns (command, blocked by a pending activation, first tick it may issue)."""
    if kd == REF:
        per = NB // n_scope
        anyopen = False
        for b in range(sx * per, (sx + 1) * per):
            if open_row[c * NB + b] >= 0:
                anyopen = True
                break
        cmd = PREA if anyopen else REF
        blocked_a = cmd == PREA and _scope_active(act_cnt, c, NB, ncount, rscope, sx, L)
        r = ready_scope(ready, loff, ncount, L, cmd, c, rscope, sx)
    else:
        cmd = PRE if (kd == PRE or open_row[c * NB + sx] >= 0) else REFPB
        blocked_a = cmd == PRE and act_cnt[c * NB + sx] > 0
        r = ready_path(ready, pnode, L, cmd, c * NB + sx)
    return cmd, blocked_a, r


@njit(cache=True, inline='always')
def _q_heads(bm, hm, hd, qr, bi, W):
    """Recompute the class heads of one bank (row ``bi`` of ``bm``) in queue ``qr``."""
    one = np.uint64(1)
    fh = True
    fn = True
    for w in range(W):
        x = bm[bi, w]
        if x == 0:
            continue
        hd[qr, w] &= ~x
        h = x & hm[qr, w]
        nh = x & ~hm[qr, w]
        if fh and h != 0:
            hd[qr, w] |= h & (~h + one)
            fh = False
        if fn and nh != 0:
            hd[qr, w] |= nh & (~nh + one)
            fn = False


@njit(cache=True)
def _q_compact(qbuf, qend, bm, hm, hd, lm, t_bank, qr, NB, W, scr):
    """Move the live requests of queue ``qr`` to positions 0, 1, ... (same order) and rebuild
    its masks; returns the new end. ``scr``: scratch of 2 * 64 * W entries."""
    one = np.uint64(1)
    n = 0
    for w in range(W):
        y = lm[qr, w]
        while y != 0:
            s = _ctz(y)
            y &= y - one
            bit = one << np.uint64(s)
            scr[n] = qbuf[qr, w * 64 + s]
            scr[64 * W + n] = (1 if (hm[qr, w] & bit) != 0 else 0) + (2 if (hd[qr, w] & bit) != 0 else 0)
            n += 1
    base = qr * NB
    for j in range(n):
        bi = base + t_bank[scr[j]]
        for w in range(W):
            bm[bi, w] = 0
    for w in range(W):
        hm[qr, w] = 0
        hd[qr, w] = 0
        lm[qr, w] = 0
    for j in range(n):
        q = scr[j]
        qbuf[qr, j] = q
        w = j >> 6
        bit = one << np.uint64(j & 63)
        bm[base + t_bank[q], w] |= bit
        lm[qr, w] |= bit
        f = scr[64 * W + j]
        if f & 1:
            hm[qr, w] |= bit
        if f & 2:
            hd[qr, w] |= bit
    qend[qr] = n
    return n


@njit(cache=True, inline='always')
def _q_reopen(qbuf, bm, hm, hd, colb, t_row, qr, bi, cb, kq, orow, W):
    """The open row of a bank became ``orow`` (-1: closed): hit flags and count of its queued
    requests, and its class heads."""
    any_ = False
    for w in range(W):
        if bm[bi, w] != 0:
            any_ = True
    if not any_:
        return
    n = 0
    for w in range(W):
        x = bm[bi, w]
        if x == 0:
            continue
        h = np.uint64(0)
        if orow >= 0:
            y = x
            while y != 0:
                s = _ctz(y)
                y &= y - np.uint64(1)
                if t_row[qbuf[qr, w * 64 + s]] == orow:
                    h |= np.uint64(1) << np.uint64(s)
                    n += 1
        hm[qr, w] = (hm[qr, w] & ~x) | h
    colb[cb, kq] = n
    _q_heads(bm, hm, hd, qr, bi, W)


@njit(cache=True, inline='always')
def _q_has_row(qbuf, bm, t_row, qr, bi, row, W):
    """Whether queue ``qr`` holds a request of the bank (row ``bi`` of ``bm``) to ``row``."""
    for w in range(W):
        y = bm[bi, w]
        while y != 0:
            s = _ctz(y)
            y &= y - np.uint64(1)
            if t_row[qbuf[qr, w * 64 + s]] == row:
                return True
    return False


@njit(cache=True, inline='always')
def _q_has_addr(qbuf, lm, t_addr, qr, addr, W):
    """Whether queue ``qr`` holds a request to byte address ``addr``."""
    for w in range(W):
        y = lm[qr, w]
        while y != 0:
            s = _ctz(y)
            y &= y - np.uint64(1)
            if t_addr[qbuf[qr, w * 64 + s]] == addr:
                return True
    return False


@njit(cache=True, inline='always')
def _row_changed(qbuf, bm, hm, hd, colb, pb, t_row, c, b, NB, orow, W):
    cb = c * NB + b
    for kq in range(2):
        qr = 2 * c + kq
        _q_reopen(qbuf, bm, hm, hd, colb, t_row, qr, qr * NB + b, cb, kq, orow, W)
        # the next command of the bank's queued requests changes: drop their cached bounds
        for w in range(W):
            y = bm[qr * NB + b, w]
            while y != 0:
                s = _ctz(y)
                y &= y - np.uint64(1)
                pb[qr, w * 64 + s] = -16


@njit(cache=True)
def _oldest_hit(qbuf, bm, hm, qr, bi, W):
    """The oldest request of queue ``qr`` that hits its bank's open row (bank row ``bi`` of the
    bank masks; the caller knows there is one)."""
    for w in range(W):
        x = bm[bi, w] & hm[qr, w]
        if x != 0:
            return qbuf[qr, w * 64 + _ctz(x)]
    return -1


@njit(cache=True)
def _issue_act2(abuf, abr, alen, a2q, cc, c):
    """The pending ACT-2 of channel ``c`` (counted): its request's column command becomes
    selectable."""
    cc[c, CC_ACT2] += 1
    q = a2q[c]
    for k in range(alen[c]):
        if abuf[c, k] == q:
            abr[c, k] = -1
            break
    a2q[c] = -1


@njit(cache=True)
def _find_pos(abuf, alen, qbuf, lm, qend, c, sel_buf, q):
    """Position of request ``q`` in channel ``c``'s active buffer (``sel_buf`` 0) or read / write
    queue (2 / 3); queue positions move when a queue is compacted."""
    if sel_buf == 0:
        for k in range(alen[c]):
            if abuf[c, k] == q:
                return k
        return -1
    qr = 2 * c + (sel_buf - 2)
    for k in range(qend[qr]):
        if qbuf[qr, k] == q and (lm[qr, k >> 6] >> np.uint64(k & 63)) & np.uint64(1):
            return k
    return -1


@njit(cache=True)
def run_controller(t_ch, t_bank, t_row, t_isw, t_addr, t_cyc,
                   L, lsize, ncount, loff, bnode, rscope,
                   c_start, c_fol, c_lat, c_win, c_sib, haswin, hassib,
                   dual_bus, edge_rules, read_latency, refresh_mode, n_refi, n_refipb,
                   q_read, q_write, wr_hi, wr_lo, frontend_per_cycle, closed_page,
                   C, NB, arrive, depart, cc, first_cmd,
                   split_act=False, n_aad=8, wck_sync=False, wck_rd=0, wck_wr=0, rowhit_first=False,
                   close_cap=0):
    """Replay a request trace; returns the number of controller ticks simulated.

    Semantics: the frontend offers requests in trace order (one before the first tick, then
    ``frontend_per_cycle`` between ticks) and stalls as a whole when the target channel's queue
    is full; the run ends when the last request is accepted. Per channel and tick: requests
    whose row was activated (active buffer) first, then maintenance (refresh), then the read or
    write queue (write drain between the watermarks); within a buffer the oldest request whose
    next command is timing-ready (FR-FCFS). With separate row/column command buses one command
    of each kind may issue per tick. Reads forward from queued writes to the same address;
    writes to a queued address coalesce.

    ``rowhit_first`` (FR-FCFS with row-hit protection): a request may not close a bank's open row
    while the same queue holds a request that hits that row and arrived no later than it.

    ``close_cap`` > 0 (row policy closed_cap, instead of open / closed page): each bank counts its
    RD / WR since its row was last closed (by a PRE, PREA, RDA or WRA). Once the count has reached
    ``close_cap``, the next RD / WR chosen for the bank issues as RDA / WRA (if that command is
    timing-ready: it is wherever the RD / WR is), and at the start of every tick each such bank
    whose PRE is timing-ready gets a row close queued in the priority buffer (bank order, once
    until its row closes): a PRE that issues even if the bank has been closed meanwhile, that
    waits while an activated request of the bank is pending and, like a refresh, holds back the
    read and write queues while it is queued. (An access issued right after its CAS, on LPDDR5,
    is not turned into an auto-precharge.)

    LPDDR5 (JESD209-5) controller rules:

    - ``split_act``: an activation is two commands. ACT-1 (the ``ACT`` of the tables) opens
      the bank's activation; its ACT-2 must follow within ``n_aad`` ticks. The ACT-2 goes out
      at the first tick nothing else can issue, or at its deadline ahead of everything; while
      it is pending no other ACT-1 issues and the activating bank serves no command.
    - ``wck_sync``: a read or write needs the WCK clock synchronised. Each access keeps it
      running until its data burst ends plus the postamble (``wck_rd`` / ``wck_wr`` ticks
      after the command); an access chosen after that first issues a CAS (WCK2CK sync) and
      issues itself on the next tick, which the channel gives to nothing else. A CAS that
      would take the last tick of a pending ACT-2 gives way to the ACT-2.
    """
    N = len(t_ch)
    n_nodes = loff[L - 1] + C * ncount[L - 1]
    ready = np.full((n_nodes, N_CMD), -1, dtype=np.int64)
    hist = np.full((n_nodes, N_CMD, W_MAX), -1, dtype=np.int64)
    open_row = np.full(C * NB, -1, dtype=np.int64)
    act_cnt = np.zeros(C * NB, dtype=np.int64)
    QM = q_read if q_read > q_write else q_write
    W = (2 * QM + 63) // 64             # mask words: positions for twice the queue depth
    QP = 64 * W
    qbuf = np.zeros((2 * C, QP), dtype=np.int64)
    qlen = np.zeros(2 * C, dtype=np.int64)         # requests in the queue
    qend = np.zeros(2 * C, dtype=np.int64)         # next append position
    bm = np.zeros((2 * C * NB, W), dtype=np.uint64)
    hm = np.zeros((2 * C, W), dtype=np.uint64)
    hd = np.zeros((2 * C, W), dtype=np.uint64)
    lm = np.zeros((2 * C, W), dtype=np.uint64)
    cscr = np.zeros(2 * QP, dtype=np.int64)
    abuf = np.zeros((C, NB + 1), dtype=np.int64)
    alen = np.zeros(C, dtype=np.int64)
    # per active-buffer entry, a lower bound of its column command's ready tick (-1: none)
    abr = np.full((C, NB + 1), -1, dtype=np.int64)
    n_scope = ncount[rscope]
    PQ = 4 * n_scope + 2 * NB + 4
    pkind = np.zeros((C, PQ), dtype=np.int64)
    pidx = np.zeros((C, PQ), dtype=np.int64)
    plen = np.zeros(C, dtype=np.int64)
    wmode = np.zeros(C, dtype=np.bool_)
    # the write-drain mode under which a channel's next visit tick was found
    nmode = np.zeros(C, dtype=np.bool_)
    nxt = np.full(C, INF, dtype=np.int64)
    due = np.zeros(C, dtype=np.int64)
    # queued writes per (channel, address hash): the frontend looks for a queued write to the
    # same address (coalescing, read forwarding) only when its bucket is not empty
    WH = 1024
    whash = np.zeros(C * WH, dtype=np.int64)
    # queue sizes seen by the ticks a channel skips (nothing issues there, but the write-drain
    # mode is still re-evaluated on each of them)
    last_proc = np.zeros(C, dtype=np.int64)
    snap_r = np.zeros(C, dtype=np.int64)
    snap_w = np.zeros(C, dtype=np.int64)
    snap_p = np.zeros(C, dtype=np.int64)
    pb_rr = np.zeros(C, dtype=np.int64)
    # HBM3 command pairing: last rising-edge row command per channel
    rise_cmd = np.full(C, -1, dtype=np.int64)
    rise_pc = np.full(C, -1, dtype=np.int64)
    rise_bank = np.full(C, -1, dtype=np.int64)
    rise_edge = np.full(C, -1, dtype=np.int64)
    banks_per_pc = NB // lsize[1] if L > 2 else NB
    # node id of every level on the path of each (channel, bank)
    pnode = np.empty((C * NB, L), dtype=np.int64)
    for c in range(C):
        for b in range(NB):
            for lv in range(L):
                pnode[c * NB + b, lv] = loff[lv] + c * ncount[lv] + bnode[lv, b]
    pown = np.zeros((NB, L), dtype=np.int64)
    for b in range(NB):
        for lv in range(1, L):
            pown[b, lv] = bnode[lv, b] % lsize[lv]
    e_start, e_fol, e_lat, e_win = split_tables(c_start, c_fol, c_lat, c_win, c_sib, L)
    fe, fn, fs, fsn, frest = fast_tables(e_start, e_fol, e_lat, e_win, haswin, lsize, L)
    # queued requests (read queue 0, write queue 1) that hit their bank's open row, per
    # (channel, bank)
    colb = np.zeros((C * NB, 2), dtype=np.int64)
    # lower bounds of ready_path per (channel * NB + bank, command)
    lbr = np.full((C * NB, N_CMD), -1, dtype=np.int64)
    # per queue position, a lower bound of the ready tick of its request's next command, as
    # last looked up, times 16 plus that command (-16: none). The next command stays the same
    # until the bank's open row changes, so the bound stays valid until then (it is dropped
    # there); a class head whose bound lies in the future is skipped with this one load.
    pb = np.full((2 * C, QP), -16, dtype=np.int64)

    # LPDDR5: the request whose ACT-2 is pending and its deadline; the WCK expiry tick; the
    # access whose CAS issued (its buffer and command)
    a2q = np.full(C, -1, dtype=np.int64)
    a2dl = np.zeros(C, dtype=np.int64)
    wexp = np.zeros(C, dtype=np.int64)
    casq = np.full(C, -1, dtype=np.int64)
    casb = np.zeros(C, dtype=np.int64)
    casc = np.zeros(C, dtype=np.int64)

    # closed_cap: column accesses per bank since its row was last closed, whether its row close
    # has been queued, and per channel the banks at the cap without one queued
    capn = np.zeros(C * NB, dtype=np.int64)
    capq = np.zeros(C * NB, dtype=np.bool_)
    capw = np.zeros(C, dtype=np.int64)

    next_ref = n_refi if refresh_mode == 1 else (n_refipb if refresh_mode >= 2 else INF)
    # per-bank refresh of every scope (refresh_mode 3): the scopes after the first get their
    # REFPB queued one per tick after the due tick (the next scope, the tick)
    stag_s = 0
    stag_t = INF
    ref_step = n_refi if refresh_mode == 1 else n_refipb
    t = np.int64(0)
    i = 0
    while True:
        # ---- frontend window before tick t+1 (arrive = t)
        nsend = 1 if t == 0 else frontend_per_cycle
        blocked = False
        wait_until = INF
        for _s in range(nsend):
            if i >= N:
                break
            if t_cyc[i] > t:
                blocked = True
                wait_until = t_cyc[i]
                break
            c = t_ch[i]
            ok = False
            qa = -1             # queue the request joins
            wr = 2 * c + 1
            cb = c * NB + t_bank[i]
            ah = c * WH + ((t_addr[i] >> 5) & (WH - 1))
            if t_isw[i]:
                dup = whash[ah] > 0 and _q_has_addr(qbuf, lm, t_addr, wr, t_addr[i], W)
                if dup:
                    ok = True
                    cc[c, CC_COALESCED] += 1
                    cc[c, CC_WACCEPT] += 1
                    arrive[i] = t
                    depart[i] = t
                elif qlen[wr] < q_write:
                    qa = wr
                    whash[ah] += 1
                    cc[c, CC_WACCEPT] += 1
            else:
                fwd = whash[ah] > 0 and _q_has_addr(qbuf, lm, t_addr, wr, t_addr[i], W)
                if fwd:
                    ok = True
                    arrive[i] = t
                    depart[i] = t + 1
                    cc[c, CC_FWD] += 1
                    cc[c, CC_RACCEPT] += 1
                elif qlen[wr - 1] < q_read:
                    qa = wr - 1
                    cc[c, CC_RACCEPT] += 1
            if qa >= 0:
                # append at the end of queue qa (written out here: an inlined helper taking
                # the queue arrays costs reference counting on every call)
                ok = True
                arrive[i] = t
                if qend[qa] == QP:
                    _q_compact(qbuf, qend, bm, hm, hd, lm, t_bank, qa, NB, W, cscr)
                    pb[qa, :] = -16
                bi = qa * NB + t_bank[i]
                hit = open_row[cb] == t_row[i]
                pos = qend[qa]
                wq = pos >> 6
                bit = np.uint64(1) << np.uint64(pos & 63)
                head = True
                for ww in range(W):
                    if (bm[bi, ww] & (hm[qa, ww] if hit else ~hm[qa, ww])) != 0:
                        head = False
                qbuf[qa, pos] = i
                pb[qa, pos] = -16
                bm[bi, wq] |= bit
                lm[qa, wq] |= bit
                if hit:
                    hm[qa, wq] |= bit
                    colb[cb, qa - 2 * c] += 1
                if head:
                    hd[qa, wq] |= bit
                qend[qa] = pos + 1
                qlen[qa] += 1
            if not ok:
                blocked = True
                break
            if qa >= 0 and nxt[c] > t + 1:
                # a queued request moves the channel's next visit only if it changes the
                # write-drain mode or heads a class of the queue being scanned
                if plen[c] > 0:
                    nxt[c] = t + 1
                else:
                    # the ticks skipped up to t saw the old queue sizes
                    if last_proc[c] < t and snap_p[c] == 0:
                        if not wmode[c]:
                            if snap_w[c] > wr_hi * q_write or snap_r[c] == 0:
                                wmode[c] = True
                        else:
                            if snap_w[c] < wr_lo * q_write and snap_r[c] != 0:
                                wmode[c] = False
                    last_proc[c] = t
                    snap_r[c] = qlen[2 * c]
                    snap_w[c] = qlen[2 * c + 1]
                    snap_p[c] = plen[c]
                    wm = wmode[c]
                    if not wm:
                        if qlen[2 * c + 1] > wr_hi * q_write or qlen[2 * c] == 0:
                            wm = True
                    else:
                        if qlen[2 * c + 1] < wr_lo * q_write and qlen[2 * c] != 0:
                            wm = False
                    if wm != nmode[c]:
                        nxt[c] = t + 1
                    elif head and qa == 2 * c + (1 if wm else 0):
                        if hit:
                            cmd = WR if wm else RD
                        else:
                            cmd = ACT if open_row[cb] < 0 else PRE
                        if not (cmd == PRE and act_cnt[cb] > 0):
                            r = lbr[cb, cmd]
                            if r <= t:
                                r = ready[pnode[cb, 0], cmd]
                                for lv in range(1, L):
                                    v = ready[pnode[cb, lv], cmd]
                                    if v > r:
                                        r = v
                                lbr[cb, cmd] = r
                            if r < t + 1:
                                r = t + 1
                            if edge_rules and r % 2 == 0 and cmd != PRE:
                                r += 1
                            if r < nxt[c]:
                                nxt[c] = r
            i += 1
        if i >= N:
            break
        # ---- next tick
        if not blocked:
            tn = t + 1
        else:
            tn = next_ref if next_ref < wait_until else wait_until
            if stag_t < tn:
                tn = stag_t
            for c in range(C):
                if nxt[c] < tn:
                    tn = nxt[c]
            if tn < t + 1:
                tn = t + 1
            if tn >= INF:
                break          # cannot happen with a consistent configuration
        t = tn
        if t == next_ref:
            for c in range(C):
                if refresh_mode == 1:
                    for sidx in range(n_scope):
                        pkind[c, plen[c]] = REF
                        pidx[c, plen[c]] = sidx
                        plen[c] += 1
                elif refresh_mode == 2:
                    pkind[c, plen[c]] = REFPB
                    pidx[c, plen[c]] = pb_rr[c]
                    plen[c] += 1
                    pb_rr[c] = (pb_rr[c] + 1) % NB
                else:
                    # one bank of every refresh scope (pseudo-channel), each scope stepping
                    # through its own banks: the first scope's REFPB now, the others' on the
                    # following ticks, one per tick (below)
                    pkind[c, plen[c]] = REFPB
                    pidx[c, plen[c]] = pb_rr[c]
                    plen[c] += 1
                nxt[c] = t
            next_ref += ref_step
            if refresh_mode == 3:
                stag_s = 1
                stag_t = t + 1 if n_scope > 1 else INF
                if n_scope == 1:
                    for c in range(C):
                        pb_rr[c] = (pb_rr[c] + 1) % NB
        elif t == stag_t:
            per = NB // n_scope
            for c in range(C):
                pkind[c, plen[c]] = REFPB
                pidx[c, plen[c]] = stag_s * per + pb_rr[c]
                plen[c] += 1
                nxt[c] = t
                if stag_s == n_scope - 1:
                    pb_rr[c] = (pb_rr[c] + 1) % per
            stag_s += 1
            stag_t = t + 1 if stag_s < n_scope else INF
        # ---- controllers (the channels due at t)
        nd = 0
        for c in range(C):
            if nxt[c] <= t:
                due[nd] = c
                nd += 1
        for di in range(nd):
            c = due[di]
            if last_proc[c] < t - 1 and snap_p[c] == 0:
                if not wmode[c]:
                    if snap_w[c] > wr_hi * q_write or snap_r[c] == 0:
                        wmode[c] = True
                else:
                    if snap_w[c] < wr_lo * q_write and snap_r[c] != 0:
                        wmode[c] = False
            n_issued = 0
            minr = INF
            rising = (t % 2) == 1
            nslots = 2 if dual_bus else 1
            if capw[c] > 0:
                # closed_cap: queue the row close of every bank at the cap whose PRE is ready
                for b in range(NB):
                    cb = c * NB + b
                    if capn[cb] < close_cap or capq[cb]:
                        continue
                    r = ready_path(ready, pnode, L, PRE, cb)
                    if r <= t:
                        pkind[c, plen[c]] = PRE
                        pidx[c, plen[c]] = b
                        plen[c] += 1
                        capq[cb] = True
                        capw[c] -= 1
                    elif r < minr:
                        minr = r
            for slot in range(nslots):
                # slot: 0 = any (single bus) / column bus, 1 = row bus
                col_ok = (not dual_bus) or slot == 0
                row_ok = (not dual_bus) or slot == 1
                if edge_rules and not rising:
                    col_ok = False
                sel_buf = -1        # 0 active, 1 priority, 2 read, 3 write
                sel_pos = -1
                sel_cmd = -1
                forced = False
                if casq[c] >= 0:
                    # the access of last tick's CAS: this tick is its own
                    sel_buf = casb[c]
                    sel_cmd = casc[c]
                    sel_pos = _find_pos(abuf, alen, qbuf, lm, qend, c, sel_buf, casq[c])
                    casq[c] = -1
                    forced = True
                elif a2q[c] >= 0 and a2dl[c] <= t:
                    # an ACT-2 at its deadline goes ahead of everything
                    _issue_act2(abuf, abr, alen, a2q, cc, c)
                    n_issued += 1
                    continue
                # 1. active buffer (column commands)
                if col_ok and sel_buf < 0:
                    best_arr = INF
                    for k in range(alen[c]):
                        r = abr[c, k]
                        if r > t:
                            # cached bound (the column command of an activated request stays)
                            if r < minr:
                                minr = r
                            continue
                        q = abuf[c, k]
                        cmd = WR if t_isw[q] else RD
                        # the bank path's readiness (ready_path) through the lower-bound cache
                        # lbr: ready ticks only grow, so a cached value still in the future is a
                        # lower bound, exact once it is <= t (written out: as a call in the tick
                        # loop it pays reference counting on the arrays it takes)
                        cb = c * NB + t_bank[q]
                        r = lbr[cb, cmd]
                        if r <= t:
                            r = ready[pnode[cb, 0], cmd]
                            for lv in range(1, L):
                                v = ready[pnode[cb, lv], cmd]
                                if v > r:
                                    r = v
                            lbr[cb, cmd] = r
                        abr[c, k] = r
                        if r <= t:
                            if arrive[q] < best_arr:
                                best_arr = arrive[q]
                                sel_buf = 0
                                sel_pos = k
                                sel_cmd = cmd
                        elif r < minr:
                            minr = r
                # 2. priority buffer (refresh)
                if sel_buf < 0 and plen[c] > 0:
                    kd = pkind[c, 0]
                    sx = pidx[c, 0]
                    cmd, blocked_a, r = _prio_candidate(kd, sx, c, NB, n_scope, open_row, act_cnt, ncount,
                                                        rscope, L, ready, loff, pnode)
                    ok = row_ok and not blocked_a
                    if a2q[c] >= 0 and (t_bank[a2q[c]] // (NB // n_scope) == sx if kd == REF
                                        else sx == t_bank[a2q[c]]):
                        ok = False          # would close or refresh the activating bank (its rank)
                    if ok and edge_rules and not rising:
                        if cmd != PRE and cmd != PREA:
                            ok = False
                        elif t == rise_edge[c]:
                            pc = sx if kd == REF else sx // banks_per_pc
                            if pc == rise_pc[c]:
                                # same pseudo-channel: only a per-bank PRE to another bank pairs
                                if not (cmd == PRE and rise_bank[c] >= 0 and sx != rise_bank[c]):
                                    ok = False
                    if ok:
                        if r <= t:
                            sel_buf = 1
                            sel_cmd = cmd
                        elif r < minr:
                            minr = r
                # 3. read / write queue
                if sel_buf < 0 and plen[c] == 0:
                    if not wmode[c]:
                        if qlen[2 * c + 1] > wr_hi * q_write or qlen[2 * c] == 0:
                            wmode[c] = True
                    else:
                        if qlen[2 * c + 1] < wr_lo * q_write and qlen[2 * c] != 0:
                            wmode[c] = False
                    isw = wmode[c]
                    qr = 2 * c + (1 if isw else 0)
                    found = False
                    pbok = not (edge_rules and not rising)
                    for w in range(W):
                        if found:
                            break
                        x = hd[qr, w]
                        hw = hm[qr, w]
                        if not col_ok:
                            x &= ~hw
                        if not row_ok:
                            x &= hw
                        while x != 0:
                            s = _ctz(x)
                            x &= x - np.uint64(1)
                            k = w * 64 + s
                            e = pb[qr, k]
                            r = e >> 4
                            if r > t:
                                # not ready: only its bound counts (on a falling edge only a
                                # PRE's: the others are skipped there)
                                if pbok or (e & 15) == PRE:
                                    if r < minr:
                                        minr = r
                                continue
                            q = qbuf[qr, k]
                            b = t_bank[q]
                            cb = c * NB + b
                            if (hw >> np.uint64(s)) & np.uint64(1):
                                cmd = WR if isw else RD
                            else:
                                cmd = ACT if open_row[cb] < 0 else PRE
                                if cmd == PRE and act_cnt[cb] > 0:
                                    continue
                                if cmd == ACT and a2q[c] >= 0:
                                    continue        # no ACT-1 while an ACT-2 is pending
                                if cmd == PRE and rowhit_first and colb[cb, qr - 2 * c] > 0:
                                    # an older (or as old) hit of the open row keeps it open
                                    if arrive[_oldest_hit(qbuf, bm, hm, qr, qr * NB + b, W)] <= arrive[q]:
                                        continue
                                if edge_rules and not rising:
                                    if cmd != PRE:
                                        continue
                                    if t == rise_edge[c] and b // banks_per_pc == rise_pc[c]:
                                        if rise_bank[c] < 0 or b == rise_bank[c]:
                                            continue
                            r = lbr[cb, cmd]
                            if r <= t:
                                r = ready[pnode[cb, 0], cmd]
                                for lv in range(1, L):
                                    v = ready[pnode[cb, lv], cmd]
                                    if v > r:
                                        r = v
                                lbr[cb, cmd] = r
                            pb[qr, k] = r * 16 + cmd
                            if r <= t:
                                sel_buf = 3 if isw else 2
                                sel_pos = k
                                sel_cmd = cmd
                                found = True
                                break
                            elif r < minr:
                                minr = r
                if sel_buf < 0:
                    if a2q[c] >= 0:
                        # a free tick: the pending ACT-2
                        _issue_act2(abuf, abr, alen, a2q, cc, c)
                        n_issued += 1
                    continue
                if wck_sync and not forced and sel_buf != 1 and _is_col(sel_cmd) and t >= wexp[c]:
                    if a2q[c] >= 0 and a2dl[c] <= t + 1:
                        # the CAS would take the ACT-2's last tick
                        _issue_act2(abuf, abr, alen, a2q, cc, c)
                    else:
                        casq[c] = abuf[c, sel_pos] if sel_buf == 0 else qbuf[2 * c + (sel_buf - 2), sel_pos]
                        casb[c] = sel_buf
                        casc[c] = sel_cmd
                        cc[c, CC_CAS] += 1
                    n_issued += 1
                    continue
                # ---- issue
                n_issued += 1
                cmd = sel_cmd
                if sel_buf == 1:
                    kd = pkind[c, 0]
                    sx = pidx[c, 0]
                    if kd == REF:
                        issue_update(ready, hist, haswin, hassib, c_start, c_fol, c_lat, c_win, c_sib,
                                     loff, ncount, lsize, bnode, L, cmd, c, rscope, sx, t)
                        per = NB // n_scope
                        if cmd == PREA:
                            for b in range(sx * per, (sx + 1) * per):
                                if open_row[c * NB + b] >= 0:
                                    open_row[c * NB + b] = -1
                                    _row_changed(qbuf, bm, hm, hd, colb, pb, t_row, c, b, NB, -1, W)
                                cb = c * NB + b
                                if close_cap > 0 and capn[cb] >= close_cap and not capq[cb]:
                                    capw[c] -= 1
                                capn[cb] = 0
                                capq[cb] = False
                            cc[c, CC_PREA] += 1
                        else:
                            cc[c, CC_REF] += 1
                        pc = sx
                        bk = -1
                    else:
                        issue_bank(ready, hist, haswin, hassib, e_start, e_fol, e_lat, e_win, pnode, pown,
                                   lsize, L, cmd, c * NB + sx, sx, t)
                        if cmd == PRE:
                            open_row[c * NB + sx] = -1
                            _row_changed(qbuf, bm, hm, hd, colb, pb, t_row, c, sx, NB, -1, W)
                            cc[c, CC_PRE] += 1
                            cb = c * NB + sx
                            if close_cap > 0 and capn[cb] >= close_cap and not capq[cb]:
                                capw[c] -= 1
                            capn[cb] = 0
                            capq[cb] = False
                            if kd == PRE:
                                cc[c, CC_CAPPRE] += 1
                        else:
                            cc[c, CC_REFPB] += 1
                        pc = sx // banks_per_pc
                        bk = sx
                    if cmd == REF or cmd == REFPB or kd == PRE:
                        for k in range(plen[c] - 1):
                            pkind[c, k] = pkind[c, k + 1]
                            pidx[c, k] = pidx[c, k + 1]
                        plen[c] -= 1
                    if edge_rules and rising:
                        rise_cmd[c] = cmd
                        rise_pc[c] = pc
                        rise_bank[c] = -1 if (cmd == PREA or cmd == REF) else bk
                        rise_edge[c] = t + 1
                    continue
                if sel_buf == 0:
                    q = abuf[c, sel_pos]
                else:
                    q = qbuf[2 * c + (sel_buf - 2), sel_pos]
                b = t_bank[q]
                isw = t_isw[q]
                if first_cmd[q] < 0:
                    o = open_row[c * NB + b]
                    if o >= 0 and o == t_row[q]:
                        kind = 0
                    elif o >= 0:
                        kind = 2
                    else:
                        kind = 1
                    first_cmd[q] = kind
                    cc[c, (CC_WHIT if isw else CC_RHIT) + kind] += 1
                final = _is_col(cmd)
                cb = c * NB + b
                if close_cap > 0:
                    if final and not forced and capn[cb] >= close_cap:
                        # the bank is at the cap: the access closes the row if its auto-precharge
                        # form is ready
                        ca = WRA if isw else RDA
                        r = ready[pnode[cb, 0], ca]
                        for lv in range(1, L):
                            v = ready[pnode[cb, lv], ca]
                            if v > r:
                                r = v
                        if r <= t:
                            cmd = ca
                    if cmd == PRE or cmd == RDA or cmd == WRA:
                        if capn[cb] >= close_cap and not capq[cb]:
                            capw[c] -= 1
                        capn[cb] = 0
                        capq[cb] = False
                    elif final:
                        capn[cb] += 1
                        if capn[cb] == close_cap and not capq[cb]:
                            capw[c] += 1
                if final and closed_page:
                    # auto-precharge unless another queued request hits the same row (the row
                    # is open: those are the hits of the bank, minus q itself)
                    if open_row[cb] == t_row[q]:
                        other = (colb[cb, 0] - (1 if sel_buf == 2 else 0) > 0
                                 or colb[cb, 1] - (1 if sel_buf == 3 else 0) > 0)
                    else:
                        # an active-buffer request whose row another request's auto-precharge
                        # closed: look for its row among the bank's queued requests
                        other = (_q_has_row(qbuf, bm, t_row, 2 * c, (2 * c) * NB + b, t_row[q], W)
                                 or _q_has_row(qbuf, bm, t_row, 2 * c + 1, (2 * c + 1) * NB + b, t_row[q], W))
                    if not other:
                        cmd = WRA if isw else RDA
                # issue_bank, the window-1 own-node and the sibling entries written out (see
                # fast_tables)
                for j in range(fn[cmd]):
                    n = pnode[cb, fe[cmd, j, 0]]
                    f = fe[cmd, j, 1]
                    ready[n, f] = max(ready[n, f], t + fe[cmd, j, 2])
                for j in range(fsn[cmd]):
                    lv = fs[cmd, j, 0]
                    f = fs[cmd, j, 1]
                    v = t + fs[cmd, j, 2]
                    own = pown[b, lv]
                    n0 = pnode[cb, lv] - own
                    for jj in range(lsize[lv]):
                        if jj != own:
                            ready[n0 + jj, f] = max(ready[n0 + jj, f], v)
                if frest[cmd]:
                    issue_bank_rest(ready, hist, haswin, e_start, e_fol, e_lat, e_win, pnode, L, cmd, cb, t)
                if cmd == ACT:
                    open_row[c * NB + b] = t_row[q]
                    cc[c, CC_ACT] += 1
                elif cmd == PRE:
                    open_row[c * NB + b] = -1
                    cc[c, CC_PRE] += 1
                else:
                    if cmd == RDA or cmd == WRA:
                        open_row[c * NB + b] = -1
                        cc[c, CC_PRE] += 1
                    if isw:
                        cc[c, CC_WR] += 1
                    else:
                        cc[c, CC_RD] += 1
                if edge_rules and rising and not _is_col(cmd):
                    rise_cmd[c] = cmd
                    rise_pc[c] = b // banks_per_pc
                    rise_bank[c] = b
                    rise_edge[c] = t + (3 if cmd == ACT else 1)
                if final and wck_sync:
                    e = t + (wck_wr if isw else wck_rd)
                    if e > wexp[c]:
                        wexp[c] = e
                if final:
                    # retire
                    if isw:
                        depart[q] = t
                        cc[c, CC_WSERVED] += 1
                    else:
                        depart[q] = t + read_latency
                        cc[c, CC_RSERVED] += 1
                    if sel_buf == 0:
                        for k in range(sel_pos, alen[c] - 1):
                            abuf[c, k] = abuf[c, k + 1]
                            abr[c, k] = abr[c, k + 1]
                        alen[c] -= 1
                        act_cnt[cb] -= 1
                elif cmd == ACT:
                    # promote to the active buffer (held there until its ACT-2 with split_act)
                    abuf[c, alen[c]] = q
                    abr[c, alen[c]] = INF if split_act else -1
                    alen[c] += 1
                    act_cnt[cb] += 1
                    if split_act:
                        a2q[c] = q
                        a2dl[c] = t + n_aad
                if sel_buf >= 2 and (final or cmd == ACT):
                    # remove from its queue (written out, as the append): the next request of
                    # its class becomes the class head if it was one
                    kq = sel_buf - 2
                    qr = 2 * c + kq
                    bi = qr * NB + b
                    wq = sel_pos >> 6
                    bit = np.uint64(1) << np.uint64(sel_pos & 63)
                    hit = (hm[qr, wq] & bit) != 0
                    head = (hd[qr, wq] & bit) != 0
                    bm[bi, wq] &= ~bit
                    hm[qr, wq] &= ~bit
                    hd[qr, wq] &= ~bit
                    lm[qr, wq] &= ~bit
                    qlen[qr] -= 1
                    if qlen[qr] == 0:
                        qend[qr] = 0
                    if hit:
                        colb[cb, kq] -= 1
                    if head:
                        for ww in range(W):
                            x = bm[bi, ww] & (hm[qr, ww] if hit else ~hm[qr, ww])
                            if x != 0:
                                hd[qr, ww] |= x & (~x + np.uint64(1))
                                break
                    if kq == 1:
                        whash[c * WH + ((t_addr[q] >> 5) & (WH - 1))] -= 1
                if cmd == ACT or cmd == PRE or cmd == RDA or cmd == WRA:
                    # _row_changed written out (as a call in the tick loop it pays reference
                    # counting): hit flags, hit counts and class heads of the bank's queued
                    # requests under its new open row
                    orow = t_row[q] if cmd == ACT else np.int64(-1)
                    for kq in range(2):
                        qr = 2 * c + kq
                        bi = qr * NB + b
                        nhit = 0
                        fh = True
                        fn_ = True
                        for w in range(W):
                            x = bm[bi, w]
                            if x == 0:
                                continue
                            h = np.uint64(0)
                            y = x
                            while y != 0:
                                s = _ctz(y)
                                y &= y - np.uint64(1)
                                pb[qr, w * 64 + s] = -16         # next command changes
                                if orow >= 0 and t_row[qbuf[qr, w * 64 + s]] == orow:
                                    h |= np.uint64(1) << np.uint64(s)
                                    nhit += 1
                            hw = (hm[qr, w] & ~x) | h
                            hm[qr, w] = hw
                            # class heads (_q_heads): the first hit and the first other request
                            hd[qr, w] &= ~x
                            xh = x & hw
                            xn = x & ~hw
                            if fh and xh != 0:
                                hd[qr, w] |= xh & (~xh + np.uint64(1))
                                fh = False
                            if fn_ and xn != 0:
                                hd[qr, w] |= xn & (~xn + np.uint64(1))
                                fn_ = False
                        if not (fh and fn_):
                            colb[cb, kq] = nhit
            if n_issued > 0 or (edge_rules and not rising):
                # the next visit: the first tick after t at which a command may issue, from the
                # tables as this visit left them (a lower bound: cached ready ticks, pairing
                # rules left out; a visit that finds nothing sets it again). Skipped ticks issue
                # nothing; requests the frontend queues meanwhile are checked on arrival.
                tt = t + 1
                m = INF
                wm = wmode[c]
                if plen[c] == 0:
                    if not wm:
                        if qlen[2 * c + 1] > wr_hi * q_write or qlen[2 * c] == 0:
                            wm = True
                    else:
                        if qlen[2 * c + 1] < wr_lo * q_write and qlen[2 * c] != 0:
                            wm = False
                qr = 2 * c + (1 if wm else 0)
                ncand = alen[c]
                if plen[c] == 0:
                    for w in range(W):
                        ncand += _popc(hd[qr, w])
                if ncand > NV_HEADS and not edge_rules:
                    # many candidates: one of them is likely ready at tt, which the visit
                    # there finds anyway (tt is a valid lower bound). With HBM3 edge rules the
                    # scan goes on: after a rising edge tt is a falling one, where only a PRE
                    # may issue, and the cached bounds make the scan cheap
                    m = tt
                for k in range(alen[c] if m > tt else 0):
                    r = abr[c, k]
                    if r <= t:
                        q = abuf[c, k]
                        # readiness through the lower-bound cache lbr, as in the scan above
                        cmd = WR if t_isw[q] else RD
                        cb = c * NB + t_bank[q]
                        r = lbr[cb, cmd]
                        if r <= t:
                            r = ready[pnode[cb, 0], cmd]
                            for lv in range(1, L):
                                v = ready[pnode[cb, lv], cmd]
                                if v > r:
                                    r = v
                            lbr[cb, cmd] = r
                        abr[c, k] = r
                    if r < tt:
                        r = tt
                    if edge_rules and r % 2 == 0:
                        r += 1
                    if r < m:
                        m = r
                if plen[c] > 0:
                    if m > tt:
                        kd = pkind[c, 0]
                        sx = pidx[c, 0]
                        cmd, blocked_a, r = _prio_candidate(kd, sx, c, NB, n_scope, open_row, act_cnt, ncount,
                                                            rscope, L, ready, loff, pnode)
                        if not blocked_a:
                            if r < tt:
                                r = tt
                            if edge_rules and r % 2 == 0 and cmd != PRE and cmd != PREA:
                                r += 1
                            if r < m:
                                m = r
                else:
                    for w in range(W):
                        x = hd[qr, w] if m > tt else np.uint64(0)       # nothing is earlier than tt
                        hw = hm[qr, w]
                        while x != 0:
                            s = _ctz(x)
                            x &= x - np.uint64(1)
                            k = w * 64 + s
                            e = pb[qr, k]
                            r = e >> 4
                            if r > t:
                                # cached bound of the head
                                if edge_rules and r % 2 == 0 and (e & 15) != PRE:
                                    r += 1
                                if r < m:
                                    m = r
                                    if m == tt:
                                        break
                                continue
                            cb = c * NB + t_bank[qbuf[qr, k]]
                            if (hw >> np.uint64(s)) & np.uint64(1):
                                cmd = WR if wm else RD
                            else:
                                cmd = ACT if open_row[cb] < 0 else PRE
                                if cmd == PRE and act_cnt[cb] > 0:
                                    continue
                            r = lbr[cb, cmd]
                            if r <= t:
                                r = ready[pnode[cb, 0], cmd]
                                for lv in range(1, L):
                                    v = ready[pnode[cb, lv], cmd]
                                    if v > r:
                                        r = v
                                lbr[cb, cmd] = r
                            pb[qr, k] = r * 16 + cmd
                            if r < tt:
                                r = tt
                            if edge_rules and r % 2 == 0 and cmd != PRE:
                                r += 1
                            if r < m:
                                m = r
                                if m == tt:
                                    break
                if capw[c] > 0 and m > tt:
                    # closed_cap: a bank's row close is queued at the tick its PRE is ready
                    for b in range(NB):
                        cb = c * NB + b
                        if capn[cb] < close_cap or capq[cb]:
                            continue
                        r = ready_path(ready, pnode, L, PRE, cb)
                        if r < tt:
                            r = tt
                        if r < m:
                            m = r
                nxt[c] = m
                nmode[c] = wm
            else:
                nxt[c] = minr if minr > t else t + 1
                nmode[c] = wmode[c]
            if a2q[c] >= 0 or casq[c] >= 0:
                nxt[c] = t + 1
            last_proc[c] = t
            snap_r[c] = qlen[2 * c]
            snap_w[c] = qlen[2 * c + 1]
            snap_p[c] = plen[c]
    return t
