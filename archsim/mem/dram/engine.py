"""Transfer engine: the DRAM model behind the timing kernel's ``mem_transfer``.

A tile load / store is a contiguous byte range. It is cut into *row visits*: the bursts of
one channel that fall in the same (bank, row), in address order. Each channel serves its
visits in order (channels are independent, as with one DMA queue per channel):

- a visit to a closed / other row issues PRE (if open) and ACT; a row command may run ahead of
  the column stream by at most ``lookahead`` bursts of that channel (the controller's queue),
- its column commands (RD / WR) follow, each at the first tick every constraint of the
  standard's tables allows,
- an all-bank refresh is due every tREFI per rank / pseudo-channel; it is issued before the
  first command that would start at or after its due time (PREab, then REFab), never skipped.

Two fidelities over the same state and tables:

- ``burst``: every column command is timed individually (ready check + table update),
- ``row_visit``: the column commands of a visit are issued in closed form — after the first,
  consecutive commands to the same bank are exactly ``gap`` ticks apart (the largest same-command
  constraint on the bank's path), a run stops where another visit's command, a window entry or
  a refresh could interleave, and the tables are updated once with the last command; visits
  whose column streams interleave at a fixed spacing (pseudo-channels, bank groups) are issued
  together in whole rounds (:func:`_interleave`); periodic schedules are extrapolated period by
  period (:func:`_x_try`); channels that receive the same visits in the same state, or in a
  state shifted in time as far as later commands read it, are served once
  (:func:`_serve_classes`). This is exact: the same ticks as ``burst`` (the column ticks a row
  command avoids on a shared bus are read burst by burst, whatever runs they were recorded in).

State layout (one int64 row, see :func:`build_state`): a header of scalars and offsets, the
static tables, then the dynamic state (ready / history per node and command, open rows, refresh
due times, the column-time ring of the lookahead window, per-channel busy ticks).
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from numba import njit

from archsim.mem.dram.kernel import ACT, F_CH, F_COL, F_ROW, INF, N_CMD, PRE, PREA, RD, REF, W_MAX, WR
from archsim.jitcache import drop_stale

# the kernel's command constants are compiled into these kernels
drop_stale(__file__, [Path(__file__).with_name("kernel.py")])

# header slots
H_L, H_C, H_NB, H_NNODES, H_Q, H_NSCOPE, H_RSCOPE, H_RL, H_WL, H_REFI, H_NBL, H_FID = range(12)
H_TXB, H_NF, H_MAPMODE, H_XOR, H_ROWB, H_COLB, H_PBITS, H_CHB, H_CHPOS, H_TX, H_BUSES = range(12, 23)
H_EDGE, H_DUAL, H_RCD, O_LAST, O_XLAT = 23, 24, 25, 26, 27
H_XCOLS = 28          # column commands issued by periodic extrapolation (a statistic)
O_LSIZE, O_NCOUNT, O_LOFF, O_BNODE, O_CSTART, O_CFOL, O_CLAT, O_CWIN, O_CSIB, O_HASWIN = range(32, 42)
O_HASSIB, O_GAP, O_FKIND, O_FBITS, O_READY, O_HIST, O_OPEN, O_NEXTREF, O_RING, O_RINGK = range(42, 52)
O_BUSY, O_MAXT, O_VCNT = 52, 53, 54
O_MCLS = 55           # per channel: its class (a channel whose dynamic state, busy ticks aside, equals
                      # this one's), then per-call scratch of _serve_classes (row_visit)
O_XSCR = 29          # periodic extrapolation scratch: offset, size (row_visit only)
H_DECB = 31           # channel bits that are the lowest transaction bits (bank and row depend only on
                      # the bits above them), 0 if not so
# rows of the per-transfer work array of _serve
W_START, W_REM, W_FRESH, W_ENT, W_LBR, W_LBO, W_LBE, W_BLK, W_BLKO, W_FRH, W_INF = range(11)
S_LVL = 56            # scratch for decoded level ids (up to 8 levels)
HEADER = 64
# column-run ring slot: first issue index, first tick, period, count, commands per round, the
# round's tick offsets (a plain run: one command per round, offset 0)
R_PMAX = 8
RS = 5 + R_PMAX

XCOPY = 600           # words a channel state copy costs per visit served instead (speed only)
# memory-counter slots (archsim.mem.interface MC_*)
MC_READ_BYTES, MC_WRITE_BYTES, MC_READ_REQS, MC_WRITE_REQS = 0, 1, 2, 3
MC_ACT, MC_PRE, MC_RD, MC_WR, MC_REF = 4, 5, 6, 7, 8
MC_ROW_HITS, MC_ROW_MISSES, MC_ROW_CONFLICTS, MC_BUSY_CYCLES = 9, 10, 11, 12


@njit(cache=True)
def _ready(s, cmd, c, b):
    L = s[H_L]
    r = np.int64(-1)
    o_nc = s[O_NCOUNT]; o_lo = s[O_LOFF]; o_bn = s[O_BNODE]; o_rd = s[O_READY]
    NB = s[H_NB]
    for lv in range(L):
        n = s[o_lo + lv] + c * s[o_nc + lv] + s[o_bn + lv * NB + b]
        v = s[o_rd + n * N_CMD + cmd]
        if v > r:
            r = v
    return r


@njit(cache=True)
def _ready_scope(s, cmd, c, sc, sidx):
    L = s[H_L]
    r = np.int64(-1)
    o_nc = s[O_NCOUNT]; o_lo = s[O_LOFF]; o_rd = s[O_READY]
    nsc = s[o_nc + sc]
    for lv in range(L):
        ncl = s[o_nc + lv]
        base = s[o_lo + lv] + c * ncl
        if lv <= sc:
            nl = sidx // (nsc // ncl)
            v = s[o_rd + (base + nl) * N_CMD + cmd]
            if v > r:
                r = v
        else:
            per = ncl // nsc
            for nl in range(sidx * per, (sidx + 1) * per):
                v = s[o_rd + (base + nl) * N_CMD + cmd]
                if v > r:
                    r = v
    return r


@njit(cache=True)
def _update(s, cmd, c, sc, sidx, t):
    """Apply the constraints of ``cmd`` issued at ``t`` to node ``sidx`` of level ``sc`` and
    everything below it (per-node step written out: calls cost more than the work)."""
    L = s[H_L]
    o_nc = s[O_NCOUNT]; o_lo = s[O_LOFF]; o_ls = s[O_LSIZE]
    nsc = s[o_nc + sc]
    NB = s[H_NB]
    o_bn = s[O_BNODE]
    o_rd = s[O_READY]; o_hi = s[O_HIST]; o_cs = s[O_CSTART]
    o_sib = s[O_CSIB]; o_win = s[O_CWIN]; o_lat = s[O_CLAT]; o_fol = s[O_CFOL]
    for lv in range(L):
        ncl = s[o_nc + lv]
        base = s[o_lo + lv] + c * ncl
        if lv <= sc:
            lo = s[o_bn + lv * NB + sidx] if sc == L - 1 else sidx // (nsc // ncl)
            hi = lo + 1
        else:
            per = ncl // nsc
            lo = sidx * per
            hi = lo + per
        cs = o_cs + lv * (N_CMD + 1) + cmd
        k0 = s[cs]
        k1 = s[cs + 1]
        win = s[s[O_HASWIN] + lv * N_CMD + cmd]
        for nn in range(lo, hi):
            n = base + nn
            h = o_hi + (n * N_CMD + cmd) * W_MAX
            if win:
                for w in range(W_MAX - 1, 0, -1):
                    s[h + w] = s[h + w - 1]
                s[h] = t
            for k in range(k0, k1):
                if s[o_sib + k]:
                    continue
                w = s[o_win + k]
                past = t if w == 1 else s[h + w - 1]
                if past < 0:
                    continue
                v = past + s[o_lat + k]
                idx = o_rd + n * N_CMD + s[o_fol + k]
                if v > s[idx]:
                    s[idx] = v
        if lv <= sc and lv >= 1 and s[s[O_HASSIB] + lv * N_CMD + cmd]:
            nl = lo
            ls = s[o_ls + lv]
            p0 = (nl // ls) * ls
            for j in range(ls):
                m = p0 + j
                if m == nl:
                    continue
                for k in range(k0, k1):
                    if s[o_sib + k]:
                        idx = o_rd + (base + m) * N_CMD + s[o_fol + k]
                        v = t + s[o_lat + k]
                        if v > s[idx]:
                            s[idx] = v


@njit(cache=True)
def _decode(s, addr):
    """(channel, bank, row) of a byte address (same scheme as kernel.map_addresses)."""
    a = addr >> s[H_TXB]
    L = s[H_L]
    o_ls = s[O_LSIZE]
    ch = np.int64(0); row = np.int64(0); col = np.int64(0)
    for lv in range(L):
        s[S_LVL + lv] = 0
    nf = s[H_NF]
    if s[H_MAPMODE] == 1:
        for k in range(nf):
            if s[s[O_FKIND] + k] == F_CH:
                fb = s[s[O_FBITS] + k]
                ch = a & ((np.int64(1) << fb) - 1)
                a >>= fb
        col = a & 3
        a >>= 2
        for lv in range(1, L):
            nb = 0
            while (np.int64(1) << nb) < s[o_ls + lv]:
                nb += 1
            s[S_LVL + lv] = a & ((np.int64(1) << nb) - 1)
            a >>= nb
        cb = s[H_COLB]
        col += (a & ((np.int64(1) << (cb - 2)) - 1)) << 2
        a >>= cb - 2
        row = a
        xi = 0
        for lv in range(1, L):
            nb = 0
            while (np.int64(1) << nb) < s[o_ls + lv]:
                nb += 1
            if nb > 0:
                s[S_LVL + lv] ^= (col >> xi) & ((np.int64(1) << nb) - 1)
                xi += nb
        rb = s[H_ROWB]
        row ^= (col >> xi) & ((np.int64(1) << rb) - 1)
        row &= (np.int64(1) << rb) - 1
    else:
        for k in range(nf):
            fb = s[s[O_FBITS] + k]
            v = a & ((np.int64(1) << fb) - 1)
            a >>= fb
            kd = s[s[O_FKIND] + k]
            if kd == F_CH:
                ch = v
            elif kd == F_ROW:
                row = v
            elif kd == F_COL:
                col = v
            else:
                s[S_LVL + kd] = v
    xm = s[H_XOR]
    if xm & 1:
        xi = 0
        for lv in range(L - 1, 0, -1):
            nb = 0
            while (np.int64(1) << nb) < s[o_ls + lv]:
                nb += 1
            if lv >= L - 2 and nb > 0:
                s[S_LVL + lv] ^= (row >> xi) & ((np.int64(1) << nb) - 1)
                xi += nb
    if xm & 2:
        cb = s[H_CHB]
        if cb > 0:
            ch ^= (row >> 4) & ((np.int64(1) << cb) - 1)
    b = np.int64(0)
    for lv in range(1, L):
        b = b * s[o_ls + lv] + s[S_LVL + lv]
    return ch, b, row


@njit(cache=True)
def _win_lat(s, lv, cm):
    """Largest latency of the rolling-window (tFAW-like) constraints that command ``cm`` at
    level ``lv`` imposes: issue-history entries older than that are never read again."""
    lm = np.int64(0)
    cs = s[O_CSTART] + lv * (N_CMD + 1) + cm
    for k in range(s[cs], s[cs + 1]):
        if s[s[O_CWIN] + k] > 1 and s[s[O_CLAT] + k] > lm:
            lm = s[s[O_CLAT] + k]
    return lm


@njit(cache=True)
def _refresh_due(s, counters, c, sidx, t_need):
    """Issue every all-bank refresh of scope node ``sidx`` due at or before ``t_need``."""
    refi = s[H_REFI]
    if refi <= 0:
        return
    nri = s[O_NEXTREF] + c * s[H_NSCOPE] + sidx
    sc = s[H_RSCOPE]
    NB = s[H_NB]
    per = NB // s[H_NSCOPE]
    while s[nri] <= t_need:
        due = s[nri]
        anyopen = False
        for b in range(sidx * per, (sidx + 1) * per):
            if s[s[O_OPEN] + c * NB + b] >= 0:
                anyopen = True
        if anyopen:
            tp = _ready_scope(s, PREA, c, sc, sidx)
            if tp < due:
                tp = due
            _update(s, PREA, c, sc, sidx, tp)
            for b in range(sidx * per, (sidx + 1) * per):
                s[s[O_OPEN] + c * NB + b] = -1
            counters[MC_PRE] += 1
        tr = _ready_scope(s, REF, c, sc, sidx)
        if tr < due:
            tr = due
        _update(s, REF, c, sc, sidx, tr)
        counters[MC_REF] += 1
        s[nri] = due + refi


@njit(cache=True)
def _ring_get(s, c, k):
    """Column tick of burst ``k`` of channel ``c`` (-1 if older than the lookahead window).
    The ring holds the last ``Q`` column runs (first burst, first tick, spacing, count)."""
    Q = s[H_Q]
    if k < 0 or k < s[s[O_RINGK] + c] - Q:
        return np.int64(-1)
    nv = s[s[O_VCNT] + c]
    base = s[O_RING] + c * Q * RS
    # the newest run starting at or before k (run starts increase with the run number)
    lo = nv - Q if nv > Q else 0
    hi = nv - 1
    if hi < lo or s[base + (lo % Q) * RS] > k:
        return np.int64(-1)
    while lo < hi:
        mid = (lo + hi + 1) >> 1
        if s[base + (mid % Q) * RS] <= k:
            lo = mid
        else:
            hi = mid - 1
    r = base + (lo % Q) * RS
    return _run_tick(s, r, k - s[r])


@njit(cache=True)
def _run_tick(s, r, e):
    """Tick of command ``e`` (0-based) of the ring run at slot offset ``r``."""
    p = s[r + 4]
    if p <= 1:
        return s[r + 1] + e * s[r + 2]
    return s[r + 1] + (e // p) * s[r + 2] + s[r + 5 + e % p]


@njit(cache=True)
def _run_holds(s, r, t):
    """Whether the ring run at slot offset ``r`` has a column command at tick ``t``."""
    t1 = s[r + 1]
    gp = s[r + 2]
    p = s[r + 4]
    if t < t1:
        return False
    if p <= 1:
        tl = t1 + (s[r + 3] - 1) * gp
        return t <= tl and (gp <= 0 and t == t1 or gp > 0 and (t - t1) % gp == 0)
    d = t - t1
    q = d // gp
    rr = d - q * gp
    for j in range(p):
        if s[r + 5 + j] == rr:
            return q * p + j < s[r + 3]
    return False


@njit(cache=True)
def _ring_put(s, c, t1, gap, m):
    """Record ``m`` column commands of channel ``c`` at ``t1, t1 + gap, ...``."""
    Q = s[H_Q]
    nv = s[s[O_VCNT] + c]
    r = s[O_RING] + c * Q * RS + (nv % Q) * RS
    k = s[s[O_RINGK] + c]
    s[r] = k
    s[r + 1] = t1
    s[r + 2] = gap
    s[r + 3] = m
    s[r + 4] = 1
    s[r + 5] = 0
    s[s[O_VCNT] + c] = nv + 1
    s[s[O_RINGK] + c] = k + m


@njit(cache=True)
def _col_free(s, c, t):
    """First tick at or after ``t`` that no column command of channel ``c`` holds: a row command
    on a shared command bus goes after a column command of the same tick (a column command
    first on a tie). The column commands are scanned from the newest back to the first one
    before ``t`` (column ticks of a channel increase in issue order), burst by burst within a
    run, so the answer depends only on the column ticks, not on how they were grouped into
    ring runs: the same in both fidelities (``burst`` records one run per command,
    ``row_visit`` a visit's run up to a tick past ``t``)."""
    Q = s[H_Q]
    nv = s[s[O_VCNT] + c]
    base = s[O_RING] + c * Q * RS
    lo = nv - Q if nv > Q else 0
    moved = True
    while moved:
        moved = False
        for v in range(nv - 1, lo - 1, -1):
            r = base + (v % Q) * RS
            t1 = s[r + 1]
            if _run_holds(s, r, t):
                t += 1
                moved = True
                break
            if t1 < t:
                break                     # this run reaches before t: older ones do too
    return t


@njit(cache=True)
def _entry(s, c, g, t0):
    """Tick burst ``g`` (channel-global arrival index) enters the ``Q``-deep window: when the
    column command ``g - Q`` (issue order) has issued; never before the transfer's ``t0``."""
    e = _ring_get(s, c, g - s[H_Q])
    return t0 if e < t0 else e


@njit(cache=True)
def _run_entries(s, c, g, t, gap, m):
    """How many of the ``m`` bursts of a run (channel-global arrival indices ``g``, ``g + 1``,
    ...; first at tick ``t``, then every ``gap``) can issue in closed form: burst ``g + j``
    enters the window when column command ``g + j - Q`` (issue order) has issued, and where that
    one has issued already its tick can lie after ``t + j * gap`` (an earlier transfer's
    commands ran later than this one's: transfers are served one after another but overlap in
    time), so the run stops before the first burst that would wait for its entry."""
    Q = s[H_Q]
    K = s[s[O_RINGK] + c]
    kb = g - Q                    # issue index whose command admits the run's first burst
    ks = kb + 1
    if ks < K - Q:
        ks = K - Q                # older commands are out of the window: entry is the transfer's t0 <= t
    if ks < 0:
        ks = 0
    ke = kb + m - 1
    if ke > K - 1:
        ke = K - 1                # later ones are the run's own bursts, issued before their followers
    if ks > ke:
        return m
    nv = s[s[O_VCNT] + c]
    base = s[O_RING] + c * Q * RS
    lo = nv - Q if nv > Q else 0
    for v in range(nv - 1, lo - 1, -1):
        r = base + (v % Q) * RS
        k0 = s[r]
        k1 = k0 + s[r + 3] - 1
        if k1 < ks:
            break
        ka = k0 if k0 > ks else ks
        if k1 > ke:
            k1 = ke
        if ka > k1:
            continue
        if s[r + 4] > 1:
            # an interleaved run: ticks are not linear in k, compare command by command
            for k in range(ka, k1 + 1):
                if _run_tick(s, r, k - k0) > t + (k - kb) * gap:
                    if k - kb < m:
                        m = k - kb
                    break
            continue
        # first k in [ka, k1] whose tick exceeds the run's tick of burst g + (k - kb): both linear in k
        f = s[r + 1] + (ka - k0) * s[r + 2] - (t + (ka - kb) * gap)
        slope = s[r + 2] - gap
        if f > 0:
            k = ka
        elif slope > 0:
            k = ka + (-f) // slope + 1
            if k > k1:
                continue
        else:
            continue
        if k - kb < m:
            m = k - kb
    return m


@njit(cache=True)
def _odd(s, t):
    """HBM3: column commands and ACT issue on rising CK edges (odd half-CK ticks)."""
    if s[H_EDGE] and (t & 1) == 0:
        return t + 1
    return t


@njit(cache=True)
def _cross(s, cmd, ba, bb):
    """Largest constraint from ``cmd`` at bank ``ba`` to ``cmd`` at bank ``bb`` (own-node
    entries of the levels they share, sibling entries of the level where they part); INF if a
    windowed one applies (not a fixed spacing)."""
    L = s[H_L]
    NB = s[H_NB]
    o_bn = s[O_BNODE]
    o_cs = s[O_CSTART]
    r = np.int64(0)
    for lv in range(L):
        same = s[o_bn + lv * NB + ba] == s[o_bn + lv * NB + bb]
        if not same and (lv == 0 or s[o_bn + (lv - 1) * NB + ba] != s[o_bn + (lv - 1) * NB + bb]):
            continue
        k0 = s[o_cs + lv * (N_CMD + 1) + cmd]
        k1 = s[o_cs + lv * (N_CMD + 1) + cmd + 1]
        for k in range(k0, k1):
            if s[s[O_CFOL] + k] != cmd:
                continue
            if (s[s[O_CSIB] + k] != 0) == same:
                continue
            if s[s[O_CWIN] + k] != 1:
                return INF
            v = s[s[O_CLAT] + k]
            if v > r:
                r = v
    return r


@njit(cache=True)
def _fill_cross(s):
    """Table of ``_cross`` for RD and WR over every pair of banks (the same in every channel)."""
    NB = s[H_NB]
    for w in range(2):
        cmd = WR if w else RD
        for ba in range(NB):
            for bb in range(NB):
                s[s[O_XLAT] + (w * NB + ba) * NB + bb] = _cross(s, cmd, ba, bb)


@njit(cache=True)
def _interleave(s, counters, c, vb, vr, vn, v0, lo, hi, nv, iw, t, cmd, gap, t0, wk, K, is_write, lg, xs):
    """Interleaved column streams in closed form (``row_visit``). The visits of the window whose
    column command can issue before ``t + gap`` (the winner ``iw`` at ``t`` among them) form a
    round: member ``a`` at tick ``mt[a]``, then every ``gap`` ticks (its own bank's spacing), if
    no member constrains another beyond those offsets (``_cross``: a command of ``a`` at
    ``mt[a]`` lets ``b`` issue at ``mt[b]`` of the same round, or of the next one where
    ``mt[b] < mt[a]``). Burst by burst the same ticks result as long as no other visit can
    issue (every one's candidate only grows: the rounds end before the smallest, a row
    command's + tRCD), no member's refresh falls due, no new visit enters the window, every
    member's bursts have entered it, and no member ends (its last burst goes through the
    ordinary step, so a PRE waiting for it cannot move). Whole rounds are issued; the tables
    take the last ``W_MAX`` rounds (earlier commands' constraints are dominated), the ring one
    interleaved run. Returns the completion tick of the last command, or -1 (not applicable)."""
    Q = s[H_Q]
    NB = s[H_NB]
    L = s[H_L]
    o_open = s[O_OPEN] + c * NB
    o_lc = s[O_LAST] + 2 * c
    o_lr = o_lc + 1
    dual = s[H_DUAL]
    rcd = s[H_RCD]
    refi = s[H_REFI]
    per = NB // s[H_NSCOPE]
    lim = s[o_lc] + 1
    if not dual and s[o_lr] + 1 > lim:
        lim = s[o_lr] + 1
    o_x = s[O_XLAT] + (NB if cmd == WR else 0) * NB
    mem = np.empty(R_PMAX, np.int64)
    mt = np.empty(R_PMAX, np.int64)
    p = 0
    X = INF
    tend = t + gap
    for u in range(lo, hi):
        if wk[W_REM, u] == 0:
            continue
        g = wk[W_START, u] + vn[v0 + u] - wk[W_REM, u]
        if g - Q >= K:
            return -1                          # a next burst outside the window: entry not known yet
        b = vb[v0 + u]
        if s[o_open + b] == vr[v0 + u]:
            if u == iw:
                r = t
            else:
                e = _entry(s, c, g, t0)
                r = _ready(s, cmd, c, b)
                if r < e:
                    r = e
                if r < lim:
                    r = lim
                r = _odd(s, r)
            if r < tend:
                if p == R_PMAX:
                    return -1
                # insert in tick order
                j = p
                while j > 0 and mt[j - 1] > r:
                    mt[j] = mt[j - 1]
                    mem[j] = mem[j - 1]
                    j -= 1
                mt[j] = r
                mem[j] = u
                p += 1
                continue
            if r < X:
                X = r
        elif wk[W_INF, u] < X:
            X = wk[W_INF, u]
    if p < 2:
        return -1
    for a in range(p):
        if a > 0 and mt[a] == mt[a - 1]:
            return -1
        ba = vb[v0 + mem[a]]
        for bq in range(p):
            if bq == a:
                continue
            x = s[o_x + ba * NB + vb[v0 + mem[bq]]]
            if x >= INF:
                return -1
            if mt[a] + x > (mt[bq] if a < bq else mt[bq] + gap):
                return -1
    M = INF
    for a in range(p):
        ra = wk[W_REM, mem[a]] - 1
        if ra < M:
            M = ra
        if refi > 0:
            due = s[s[O_NEXTREF] + c * s[H_NSCOPE] + vb[v0 + mem[a]] // per]
            kr = (due - mt[a] + gap - 1) // gap
            if kr < M:
                M = kr
    if X < INF:
        kx = (X - mt[p - 1] + gap - 1) // gap
        if kx < M:
            M = kx
    h = hi
    while h < nv and M >= 2:
        ie = wk[W_START, h] - Q - K             # command of the rounds whose issue admits visit h
        if ie < 0:
            ie = 0
        if ie >= M * p:
            break
        te = mt[ie % p] + (ie // p) * gap
        d = 0 if s[o_open + vb[v0 + h]] == vr[v0 + h] else rcd
        kx = (te + d - mt[p - 1] + gap - 1) // gap
        if kx < M:
            M = kx
        h += 1
    for a in range(p):
        if M < 2:
            return -1
        u = mem[a]
        g = wk[W_START, u] + vn[v0 + u] - wk[W_REM, u]
        M = _run_entries(s, c, g, mt[a], gap, M)
    if M < 2:
        return -1
    nrep = M if M < W_MAX else W_MAX
    for n in range(M - nrep, M):
        for a in range(p):
            _update(s, cmd, c, L - 1, vb[v0 + mem[a]], mt[a] + n * gap)
    Qr = s[H_Q]
    nvr = s[s[O_VCNT] + c]
    r0 = s[O_RING] + c * Qr * RS + (nvr % Qr) * RS
    s[r0] = K
    s[r0 + 1] = mt[0]
    s[r0 + 2] = gap
    s[r0 + 3] = M * p
    s[r0 + 4] = p
    for a in range(p):
        s[r0 + 5 + a] = mt[a] - mt[0]
    s[s[O_VCNT] + c] = nvr + 1
    s[s[O_RINGK] + c] = K + M * p
    t_last = mt[p - 1] + (M - 1) * gap
    s[o_lc] = t_last
    for a in range(p):
        u = mem[a]
        if wk[W_FRESH, u]:
            wk[W_FRESH, u] = 0
            counters[MC_ROW_HITS] += wk[W_REM, u]
        wk[W_REM, u] -= M
        wk[W_ENT, u] = -2
        _x_log(lg, xs, u, cmd, mt[a], gap, M)
    counters[MC_WR if is_write else MC_RD] += M * p
    s[s[O_BUSY] + c] += M * p * s[H_NBL]
    return t_last + (s[H_WL] if is_write else s[H_RL])


@njit(cache=True)
def _x_log(lg, xs, u, cmd, t, gap, m):
    """Record issued commands for the periodic extrapolation (``xs``: entries, on, snapshots)."""
    if xs.shape[0] == 0 or xs[1] == 0:
        return
    n = xs[0]
    if n >= lg.shape[1]:
        xs[0] = 0                 # full: start again, the snapshots that refer to it are dropped
        xs[2] = 0
        return
    lg[0, n] = u
    lg[1, n] = cmd
    lg[2, n] = t
    lg[3, n] = gap
    lg[4, n] = m
    xs[0] = n + 1
# ----------------------------------------------------------------- periodic extrapolation
# (row_visit) Streaming traffic settles into a periodic schedule: the state of a channel when
# visit x + lag becomes the oldest unfinished one is the state at visit x, shifted by a fixed
# number of ticks, with every bank renamed by the map that takes visit u's bank to visit
# u + lag's. Snapshots of the state are taken at such moments (at least one window of column
# commands apart); when two of them agree, the commands issued between them are the period,
# and the following periods are issued in closed form as far as the inputs stay periodic.
XJ = 32               # snapshots kept
XLCAP = 2048          # command log entries (visit, command, first tick, spacing, count)
XWV = 80              # window visits recorded per snapshot
SN_LO, SN_HI, SN_K, SN_T, SN_LR, SN_LOG, SN_BUSY, SN_DONE, SN_OK, SN_TABS, SN_HASH = range(11)
SN_CNT = 11           # counters MC_ACT .. MC_ROW_CONFLICTS (8)
SN_RING = 19


@njit(cache=True)
def _x_size(s):
    L = s[H_L]
    nn = 0
    for lv in range(L):
        nn += s[s[O_NCOUNT] + lv]
    return SN_RING + s[H_Q] + 2 * XWV + s[H_NB] + nn * 3 * (1 + W_MAX)


@njit(cache=True)
def _x_take(s, c, counters, wk, lo, hi, K, done, logn, sn):
    """Snapshot of channel ``c`` at the top of a step of ``_serve``: window, visit states, the
    last ``Q`` column ticks (open rows and tables come separately, :func:`_x_tables`)."""
    Q = s[H_Q]
    o_lc = s[O_LAST] + 2 * c
    sn[SN_LO] = lo
    sn[SN_HI] = hi
    sn[SN_K] = K
    sn[SN_T] = s[o_lc]
    sn[SN_LR] = s[o_lc + 1]
    sn[SN_LOG] = logn
    sn[SN_BUSY] = s[s[O_BUSY] + c]
    sn[SN_DONE] = done
    sn[SN_TABS] = 0
    for q in range(8):
        sn[SN_CNT + q] = counters[MC_ACT + q]
    ok = hi - lo <= XWV and K >= Q and s[o_lc] >= 0
    sn[SN_OK] = 1 if ok else 0
    if not ok:
        return
    # the last Q column ticks, run by run from the newest
    nv = s[s[O_VCNT] + c]
    base = s[O_RING] + c * Q * RS
    lo_v = nv - Q if nv > Q else 0
    for v in range(nv - 1, lo_v - 1, -1):
        r = base + (v % Q) * RS
        k0 = s[r]
        m = s[r + 3]
        if k0 + m - 1 < K - Q:
            break
        for e in range(m - 1, -1, -1):
            k = k0 + e
            if k < K - Q:
                break
            sn[SN_RING + k - K + Q] = _run_tick(s, r, e)
    ov = SN_RING + Q
    for j in range(hi - lo):
        sn[ov + j] = wk[W_REM, lo + j]
        sn[ov + XWV + j] = wk[W_FRESH, lo + j]
    # hash of what _x_pre compares (window shape, column ticks above the column-bus floor)
    T = s[o_lc]
    fc = T + 1
    if not s[H_DUAL] and s[o_lc + 1] + 1 > fc:
        fc = s[o_lc + 1] + 1
    h = (hi - lo) * 1000003 + (K - wk[W_START, lo]) * 10007 + (fc - T)
    for j in range(hi - lo):
        h = h * 31 + sn[ov + j] * 3 + sn[ov + XWV + j]
    for q in range(Q):
        x = sn[SN_RING + q]
        h = h * 1000003 + ((x if x > fc else fc) - T)
    sn[SN_HASH] = h


@njit(cache=True)
def _x_tables(s, c, cmd, sn):
    """Open rows and the ready / history tables (the transfer's column command, ACT, PRE) of
    every node of channel ``c`` into snapshot ``sn``."""
    L = s[H_L]
    NB = s[H_NB]
    oo = SN_RING + s[H_Q] + 2 * XWV
    o_open = s[O_OPEN] + c * NB
    for b in range(NB):
        sn[oo + b] = s[o_open + b]
    x = oo + NB
    o_rd = s[O_READY]
    o_hi = s[O_HIST]
    for lv in range(L):
        ncl = s[s[O_NCOUNT] + lv]
        base = s[s[O_LOFF] + lv] + c * ncl
        for jn in range(ncl):
            n = base + jn
            for ci in range(3):
                cm = cmd if ci == 0 else (ACT if ci == 1 else PRE)
                sn[x] = s[o_rd + n * N_CMD + cm]
                h = o_hi + (n * N_CMD + cm) * W_MAX
                for w in range(W_MAX):
                    sn[x + 1 + w] = s[h + w]
                x += 1 + W_MAX
    sn[SN_TABS] = 1


@njit(cache=True)
def _x_pre(s, wk, sa, sb):
    """The cheap necessary conditions of :func:`_x_try` (same window, same column ticks)."""
    Q = s[H_Q]
    if sa[SN_OK] == 0 or sb[SN_OK] == 0 or sa[SN_HASH] != sb[SN_HASH]:
        return False
    loA = sa[SN_LO]
    loB = sb[SN_LO]
    nw = sa[SN_HI] - loA
    if loB <= loA or sb[SN_HI] - loB != nw:
        return False
    KA = sa[SN_K]
    KB = sb[SN_K]
    TA = sa[SN_T]
    TB = sb[SN_T]
    if KB <= KA or TB <= TA or (s[H_EDGE] and ((TB - TA) & 1)):
        return False
    if sb[SN_CNT + MC_REF - MC_ACT] != sa[SN_CNT + MC_REF - MC_ACT]:
        return False
    if wk[W_START, loA] - KA != wk[W_START, loB] - KB:
        return False
    ov = SN_RING + Q
    for j in range(nw):
        if sa[ov + j] != sb[ov + j] or sa[ov + XWV + j] != sb[ov + XWV + j]:
            return False
    fcA = TA + 1
    fcB = TB + 1
    if not s[H_DUAL]:
        if sa[SN_LR] + 1 > fcA:
            fcA = sa[SN_LR] + 1
        if sb[SN_LR] + 1 > fcB:
            fcB = sb[SN_LR] + 1
        if fcA - TA != fcB - TB:
            return False
    for q in range(Q):
        x = sa[SN_RING + q]
        y = sb[SN_RING + q]
        if (x if x > fcA else fcA) - TA != (y if y > fcB else fcB) - TB:
            return False
    return True


@njit(cache=True)
def _x_try(s, counters, c, vb, vr, vn, v0, nv, wk, sa, sb, lg, cmd, t0, is_write, done, xw):
    """Compare snapshot ``sa`` (visit x oldest) with the current one ``sb`` (visit x + lag):
    if the state at ``sb`` is the state at ``sa`` shifted by ``D`` ticks with banks renamed by
    the visit map u -> u + lag, issue ``k`` further periods in closed form and return the new
    completion tick (-1: not applicable).

    Equivalence is checked on everything the next ``k`` periods read: values below the lowest
    tick a command of the horizon can take (the command-bus slots: every later command of this
    call is at or after them) are all alike; the bank map must be a renaming that keeps the
    hierarchy (nodes of one level to one level, parents to parents, one to one) on every visit
    of the horizon; per bank the rows of the visits must be non-decreasing with the same
    same-row pattern, and each bank's open row must relate to its first visit of the horizon
    alike. The horizon ends before the visit map, the burst counts or the row pattern break
    (end of the transfer), and the periods end before the next refresh is due; the period
    itself must not contain one. The state after ``k`` periods is then exact: counters grow by
    ``k`` times the period's, the tables take the commands of the last periods that are not
    dominated (per bank and command the last one, the last ``W_MAX`` where a windowed
    constraint reads the history), the ring the last ``Q`` column ticks."""
    Q = s[H_Q]
    NB = s[H_NB]
    L = s[H_L]
    if sa[SN_OK] == 0 or sb[SN_OK] == 0:
        return -1
    loA = sa[SN_LO]
    loB = sb[SN_LO]
    lag = loB - loA
    nw = sa[SN_HI] - loA
    if lag <= 0 or sb[SN_HI] - loB != nw:
        return -2
    KA = sa[SN_K]
    KB = sb[SN_K]
    dK = KB - KA
    TA = sa[SN_T]
    TB = sb[SN_T]
    D = TB - TA
    if dK <= 0 or D <= 0:
        return -3
    if s[H_EDGE] and (D & 1):
        return -4
    if sb[SN_CNT + MC_REF - MC_ACT] != sa[SN_CNT + MC_REF - MC_ACT]:
        return -5
    if wk[W_START, loA] - KA != wk[W_START, loB] - KB:
        return -6
    ov = SN_RING + Q
    for j in range(nw):
        if sa[ov + j] != sb[ov + j] or sa[ov + XWV + j] != sb[ov + XWV + j]:
            return -7
    dual = s[H_DUAL]
    fcA = TA + 1
    fcB = TB + 1
    frA = sa[SN_LR] + 1
    frB = sb[SN_LR] + 1
    if not dual:
        if frA > fcA:
            fcA = frA
        if frB > fcB:
            fcB = frB
        if fcA - TA != fcB - TB:
            return -8
    # visits the period observed (entered or looked ahead at): W_START < K + Q
    vobs = loB
    while vobs < nv and wk[W_START, vobs] < KB + Q + 1:
        vobs += 1
    vobs += 1
    if vobs + lag > nv:
        return -9
    o_bn = s[O_BNODE]
    o_nc = s[O_NCOUNT]
    # quick rejection: column-command readiness of the window visits' banks, pair by pair (the
    # current state is sb's)
    if sa[SN_TABS]:
        ot0 = ov + 2 * XWV + NB
        o_rd = s[O_READY]
        o_lo = s[O_LOFF]
        for u in range(loA, sa[SN_HI]):
            b = vb[v0 + u]
            b2 = vb[v0 + u + lag]
            no = 0
            for lv in range(L):
                ncl = s[o_nc + lv]
                va = sa[ot0 + (no + s[o_bn + lv * NB + b]) * 3 * (1 + W_MAX)]
                vbb = s[o_rd + (s[o_lo + lv] + c * ncl + s[o_bn + lv * NB + b2]) * N_CMD + cmd]
                if (va if va > fcA else fcA) - TA != (vbb if vbb > fcB else fcB) - TB:
                    return -19
                no += ncl
    # horizon: the visit map u -> u + lag renames banks consistently, burst counts and row
    # patterns repeat
    NN = 0
    for lv in range(L):
        NN += s[o_nc + lv]
    nmap = xw[0]
    ninv = xw[1]
    bmap = xw[3]                  # bank map (a bank seen again maps to the same bank: same nodes)
    lastb = xw[4]
    for x in range(NN):
        nmap[x] = -1
        ninv[x] = -1
    for b in range(NB):
        bmap[b] = -1
        lastb[b] = -1
    u = loA
    stage = 0
    while True:
        ulim = vobs if stage == 0 else nv
        broken = False
        while u + lag < nv and u < ulim:
            if vn[v0 + u] != vn[v0 + u + lag]:
                broken = True
                break
            b = vb[v0 + u]
            b2 = vb[v0 + u + lag]
            if bmap[b] != b2:
                if bmap[b] >= 0:
                    broken = True             # bank b already maps to another bank
                    break
                # the first visit of bank b: the nodes of its path map onto b2's
                good = True
                no = 0
                for lv in range(L):
                    jn = no + s[o_bn + lv * NB + b]
                    j2 = no + s[o_bn + lv * NB + b2]
                    m = nmap[jn]
                    if m < 0:
                        if ninv[j2] >= 0:
                            good = False
                            break
                        nmap[jn] = j2
                        ninv[j2] = jn
                    elif m != j2:
                        good = False
                        break
                    no += s[o_nc + lv]
                if not good:
                    broken = True
                    break
                bmap[b] = b2
            p = lastb[b]
            if p >= 0:
                r0 = vr[v0 + p]
                r1 = vr[v0 + u]
                q0 = vr[v0 + p + lag]
                q1 = vr[v0 + u + lag]
                if r1 < r0 or q1 < q0 or (r1 == r0) != (q1 == q0):
                    broken = True
                    break
            lastb[b] = u
            u += 1
        if stage == 1 or broken or u < ulim:
            break
        # the period's own visits map: a quick necessary check before the long scan (column
        # ticks of the window, column-command tables of the nodes the next period reads); the
        # tables of a snapshot are copied only now (the first time one gets this far)
        if sb[SN_TABS] == 0:
            _x_tables(s, c, cmd, sb)
        if sa[SN_TABS] == 0:
            return -20
        for q in range(Q):
            x = sa[SN_RING + q]
            y = sb[SN_RING + q]
            if (x if x > fcA else fcA) - TA != (y if y > fcB else fcB) - TB:
                return -17
        ot0 = ov + 2 * XWV + NB
        for uu in range(loA, vobs):
            b = vb[v0 + uu]
            no = 0
            for lv in range(L):
                x = no + s[o_bn + lv * NB + b]
                y = nmap[x]
                pa = ot0 + x * 3 * (1 + W_MAX)
                pb = ot0 + y * 3 * (1 + W_MAX)
                va = sa[pa]
                vbb = sb[pb]
                if (va if va > fcA else fcA) - TA != (vbb if vbb > fcB else fcB) - TB:
                    return -18
                no += s[o_nc + lv]
        stage = 1
    hmax = u
    if hmax < vobs:
        return -10
    k = (hmax - vobs) // lag + 1
    # the period's commands: none may reach the next refresh in the following k periods
    la = sa[SN_LOG]
    lb = sb[SN_LOG]
    tmax = np.int64(-1)
    fmax = np.int64(-1)
    rowp = False
    for e in range(la, lb):
        tl = lg[2, e] + (lg[4, e] - 1) * lg[3, e]
        if tl > tmax:
            tmax = tl
        if lg[1, e] == cmd:
            if tl > fmax:
                fmax = tl
        else:
            rowp = True
    if fmax < 0:
        return -11
    if s[H_REFI] > 0:
        nref = INF
        nsc = s[H_NSCOPE]
        for x in range(nsc):
            v = s[s[O_NEXTREF] + c * nsc + x]
            if v < nref:
                nref = v
        kr = (nref - 1 - tmax) // D
        if kr < k:
            k = kr
    if k < 1:
        return -12
    hc = vobs + (k - 1) * lag            # visits the k periods from sa read (in sa's frame)
    # nodes the horizon reads, with the first visit that reads each (a mismatch there ends the
    # horizon before that visit); open rows against each bank's first visit of the horizon
    fv = xw[2]
    for x in range(NN):
        fv[x] = INF
    rowcmd = rowp
    oo = ov + 2 * XWV
    lim = hc
    for b in range(NB):
        lastb[b] = -1
    for u in range(loA, hc):
        b = vb[v0 + u]
        p = lastb[b]
        if p < 0:
            # the first visit of bank b: the first reader of the nodes of its path not read yet
            no = 0
            for lv in range(L):
                x = no + s[o_bn + lv * NB + b]
                if fv[x] == INF:
                    fv[x] = u
                no += s[o_nc + lv]
        if p >= 0:
            if vr[v0 + p] != vr[v0 + u]:
                rowcmd = True
        else:
            b2 = vb[v0 + u + lag]
            oa = sa[oo + b]
            ob = sb[oo + b2]
            ra = vr[v0 + u]
            rb = vr[v0 + u + lag]
            ca = -1 if oa < 0 else (0 if oa == ra else (1 if oa < ra else 2))
            cb = -1 if ob < 0 else (0 if ob == rb else (1 if ob < rb else 2))
            if ca != cb or ca == 2:
                if u < lim:
                    lim = u
            elif ca != 0:
                rowcmd = True
        lastb[b] = u
    fmA = fcA
    fmB = fcB
    if rowcmd:
        if frA - TA != frB - TB:
            return -13
        if frA < fmA:
            fmA = frA
        if frB < fmB:
            fmB = frB
    if t0 > fmA:
        return -14                        # the transfer's issue tick still matters
    for q in range(Q):
        x = sa[SN_RING + q]
        y = sb[SN_RING + q]
        if (x if x > fmA else fmA) - TA != (y if y > fmB else fmB) - TB:
            return -15
    # tables of every node the horizon reads
    ot = oo + NB
    o_hw = s[O_HASWIN]
    no = 0
    for lv in range(L):
        ncl = s[o_nc + lv]
        for jn in range(ncl):
            x = no + jn
            if fv[x] >= lim:
                continue
            y = nmap[x]
            eq = True
            for ci in range(3 if rowcmd else 1):
                cm = cmd if ci == 0 else (ACT if ci == 1 else PRE)
                fa = fcA if ci == 0 else frA
                fb = fcB if ci == 0 else frB
                pa = ot + (x * 3 + ci) * (1 + W_MAX)
                pb = ot + (y * 3 + ci) * (1 + W_MAX)
                va = sa[pa]
                vbb = sb[pb]
                if (va if va > fa else fa) - TA != (vbb if vbb > fb else fb) - TB:
                    eq = False
                    break
                if s[o_hw + lv * N_CMD + cm]:
                    # history entries only matter through windowed constraints of this command
                    lm = _win_lat(s, lv, cm)
                    ha = fmA - lm
                    hb = fmB - lm
                    for w in range(W_MAX):
                        va = sa[pa + 1 + w]
                        vbb = sb[pb + 1 + w]
                        if (va if va > ha else ha) - TA != (vbb if vbb > hb else hb) - TB:
                            eq = False
                    if not eq:
                        break
            if not eq:
                if fv[x] < lim:
                    lim = fv[x]
        no += ncl
    if lim < hc:
        if lim < vobs:
            return -16
        k = (lim - vobs) // lag + 1
    # ---- k periods in closed form
    for q in range(8):
        counters[MC_ACT + q] += k * (sb[SN_CNT + q] - sa[SN_CNT + q])
    s[s[O_BUSY] + c] += k * (sb[SN_BUSY] - sa[SN_BUSY])
    # table updates that are not dominated: per (bank, command) the last one (the last W_MAX
    # where a level keeps that command's history), in tick order
    nd = xw[5]
    for ci in range(3):
        cm = cmd if ci == 0 else (ACT if ci == 1 else PRE)
        nd[ci] = 1
        for lv in range(L):
            if s[o_hw + lv * N_CMD + cm]:
                nd[ci] = W_MAX
    got = xw[6]
    for x in range(3 * NB):
        got[x] = 0
    sel = xw[7:11]
    nsel = 0
    for jj in range(k, 0, -1):
        for e in range(lb - 1, la - 1, -1):
            uu = lg[0, e] + jj * lag
            b = vb[v0 + uu]
            cm = lg[1, e]
            ci = 0 if cm == cmd else (1 if cm == ACT else 2)
            key = b * 3 + ci
            if got[key] >= nd[ci]:
                continue
            for i in range(lg[4, e] - 1, -1, -1):
                sel[0, nsel] = lg[2, e] + i * lg[3, e] + jj * D
                sel[1, nsel] = b
                sel[2, nsel] = cm
                sel[3, nsel] = uu
                nsel += 1
                got[key] += 1
                if got[key] >= nd[ci]:
                    break
    order = np.argsort(sel[0, :nsel], kind="mergesort")
    o_open = s[O_OPEN] + c * NB
    for z in range(nsel):
        x = order[z]
        b = sel[1, x]
        cm = sel[2, x]
        _update(s, cm, c, L - 1, b, sel[0, x])
        if cm == ACT:
            s[o_open + b] = vr[v0 + sel[3, x]]
        elif cm == PRE:
            s[o_open + b] = -1
    # the ring: the last Q column ticks (period jj repeats the period's commands + jj * D)
    Kf = KB + k * dK
    vc = s[O_VCNT] + c
    nvr = s[vc]
    base = s[O_RING] + c * Q * RS
    for q in range(Q):
        kf = Kf - Q + q
        if kf >= KB:
            o = kf - KB
            jj = o // dK + 1
            pp = o - (jj - 1) * dK
            t = sb[SN_RING + pp - dK + Q] + jj * D
        else:
            t = sb[SN_RING + kf - KB + Q]
        r = base + ((nvr + q) % Q) * RS
        s[r] = kf
        s[r + 1] = t
        s[r + 2] = 0
        s[r + 3] = 1
        s[r + 4] = 1
        s[r + 5] = 0
    s[vc] = nvr + Q
    s[s[O_RINGK] + c] = Kf
    s[H_XCOLS] += k * dK
    o_lc = s[O_LAST] + 2 * c
    s[o_lc] = TB + k * D
    if rowp:
        s[o_lc + 1] = sb[SN_LR] + k * D
    # visits: the window moves by k * lag, the ones before it are done
    sh = k * lag
    for j in range(nw - 1, -1, -1):
        wk[W_REM, loB + j + sh] = wk[W_REM, loB + j]
        wk[W_FRESH, loB + j + sh] = wk[W_FRESH, loB + j]
    for uu in range(loB, loB + sh):
        wk[W_REM, uu] = 0
        wk[W_FRESH, uu] = 0
    for uu in range(loB + sh, loB + sh + nw):
        wk[W_ENT, uu] = -2
        wk[W_LBR, uu] = -1
        wk[W_BLK, uu] = -1
        wk[W_FRH, uu] = 0
    fin = fmax + k * D + (s[H_WL] if is_write else s[H_RL])
    return fin if fin > done else done


@njit(cache=True)
def _serve(s, counters, c, vb, vr, vn, v0, v1, is_write, t0, wk, xs, lg, snaps, xw):
    """Serve the row visits ``v0 .. v1-1`` of channel ``c`` (in address order) as a ``Q``-deep
    FR-FCFS window would: burst ``j`` enters the window when the ``(j - Q)``-th column command
    of the channel has issued; at each step the command (PRE / ACT / RD / WR) of a visit in the
    window that can issue first goes first (a column command before a row command on a tie,
    then the oldest visit), one command per command bus and tick (separate row and column
    buses where the standard has them). A PRE waits while a visit in the window still needs the
    open row. Returns the tick the last burst completes."""
    NB = s[H_NB]
    L = s[H_L]
    Q = s[H_Q]
    cmd = WR if is_write else RD
    gap = s[s[O_GAP] + cmd]
    if s[H_EDGE] and (gap & 1):
        gap += 1
    fid = s[H_FID]
    dual = s[H_DUAL]
    rcd = s[H_RCD]
    refi = s[H_REFI]
    per = NB // s[H_NSCOPE]
    o_open = s[O_OPEN] + c * NB
    # command-bus slots taken by this call (column bus, row bus; one shared bus without dual)
    o_lc = s[O_LAST] + 2 * c
    o_lr = o_lc + 1
    s[o_lc] = -1
    s[o_lr] = -1
    nv = v1 - v0
    # per-visit work rows of a (10, n) scratch array of the transfer (rows W_*, columns 0..nv-1;
    # rows rather than slices: a slice costs a reference count per call)
    # W_ENT: entry tick of a visit's next burst (-2: not known yet).
    # W_LBR: lower bound of each visit's candidate tick (-1: none): every term of it (table
    # ready times, window entry, command-bus slot, rising edge) only grows while the bank's open
    # row stays W_LBO (same next command), so a visit whose bound exceeds the best tick found so
    # far cannot win a step and is not evaluated again; W_LBE: the bound raised by this step's
    # command-bus slots.
    # W_INF: this step's lower bound of the tick a visit could issue a column command (its row
    # command's + tRCD), INF when blocked: what bounds interleaved rounds of other visits.
    # W_BLK: a PRE found blocked by visit W_BLK needing open row W_BLKO stays blocked while that
    # visit has bursts left and the row stays open; one found free with open row W_BLKO stays
    # free as far as visit W_FRH (the visits before it keep their bank and row, and finished
    # ones stay finished).
    for i in range(nv):
        wk[W_FRESH, i] = 1
        wk[W_ENT, i] = -2
        wk[W_LBR, i] = -1
        wk[W_BLK, i] = -1
        wk[W_FRH, i] = 0
    g0 = s[s[O_RINGK] + c]
    acc = g0
    for i in range(nv):
        wk[W_START, i] = acc
        wk[W_REM, i] = vn[v0 + i]
        acc += vn[v0 + i]
    done = np.int64(0)
    lo = 0
    hi = 0
    skip = 0
    backoff = 0
    # periodic extrapolation (row_visit, transfers of at least 8 windows): xs = log entries,
    # logging on, snapshots taken
    # periodic extrapolation (row_visit, at least 8 windows of bursts in this call): the
    # scratch views come from dram_transfer (empty when off)
    if xs.shape[0] > 0:
        xs[0] = 0
        xs[1] = 1 if acc - g0 >= 8 * Q else 0
        xs[2] = 0
    # a snapshot whenever the oldest unfinished visit changes (moments a periodic schedule
    # repeats at the same phase)
    xlo = -1
    xwait = 0
    xbk = 1
    while True:
        while lo < nv and wk[W_REM, lo] == 0:
            lo += 1
        if lo >= nv:
            break
        K = s[s[O_RINGK] + c]
        while hi < nv and wk[W_START, hi] - Q < K:
            hi += 1
        if xs.shape[0] > 0 and xs[1] and lo != xlo and lo >= xwait:
            xlo = lo
            # compared with the earlier snapshots whose hash matches; the tables are copied once
            # a comparison gets past the visit pattern. Where the visit pattern does not repeat
            # (the period's visits do not map onto the next ones), snapshots pause for a
            # growing number of visits (only how often it is tried)
            ns = xs[2]
            sb = snaps[ns % XJ]
            _x_take(s, c, counters, wk, lo, hi, K, done, xs[0], sb)
            xs[2] = ns + 1
            f = np.int64(-1)
            for back in range(1, min(ns + 1, XJ)):
                if snaps[(ns - back) % XJ, SN_HASH] != sb[SN_HASH]:
                    continue
                sa = snaps[(ns - back) % XJ]
                if not _x_pre(s, wk, sa, sb):
                    continue
                f = _x_try(s, counters, c, vb, vr, vn, v0, nv, wk, sa, sb, lg, cmd, t0, is_write, done, xw)
                if f >= 0 or f == -9 or f == -10 or f == -19:
                    break
            if f == -9 or f == -10 or f == -19:
                xwait = lo + xbk
                if xbk < 256:
                    xbk *= 2
                if f != -19:
                    xs[2] = 0
            elif f >= 0:
                xbk = 1
            if f >= 0:
                done = f
                xs[0] = 0
                xs[2] = 0
                continue
        best_t = INF
        best_v = -1
        best_cmd = -1
        best_col = False
        best_infl = INF        # earliest tick another visit could issue a column command
        sec_t = INF
        # evaluate the visit with the smallest bound first, then the others against it
        lim_c = s[o_lc] + 1
        if not dual and s[o_lr] + 1 > lim_c:
            lim_c = s[o_lr] + 1
        lim_r = s[o_lr] + 1
        j0 = -1
        jr = INF
        for i in range(lo, hi):
            if wk[W_REM, i] == 0:
                continue
            lb = wk[W_LBR, i]
            u = wk[W_BLK, i]
            if u >= 0:
                if wk[W_REM, u] > 0 and s[o_open + vb[v0 + i]] == wk[W_BLKO, i]:
                    wk[W_LBE, i] = -2        # still blocked: not a candidate this step
                    continue
                wk[W_BLK, i] = -1
            if lb >= 0:
                o = s[o_open + vb[v0 + i]]
                if wk[W_LBO, i] != o:
                    lb = -1
                elif o == vr[v0 + i]:
                    if lb < lim_c:
                        lb = _odd(s, lim_c)
                elif lb < lim_r:
                    lb = _odd(s, lim_r) if o < 0 else lim_r
            wk[W_LBE, i] = lb
            if lb < jr:
                jr = lb
                j0 = i
        for it in range(lo - 1, hi):
            if it < lo:
                if j0 < 0:
                    continue
                i = j0
            else:
                i = it
                if i == j0:
                    continue
            if wk[W_REM, i] == 0:
                continue
            b = vb[v0 + i]
            row = vr[v0 + i]
            o = s[o_open + b]
            lb = wk[W_LBE, i]
            wk[W_INF, i] = INF
            if lb == -2:
                continue
            # (a visit tied with a column command of a lower index loses the tie)
            if lb >= 0 and (lb > best_t or lb == best_t and best_col and i > best_v):
                infl = lb if o == row else lb + rcd
                wk[W_INF, i] = infl
                if infl < sec_t:
                    sec_t = infl
                continue
            e = wk[W_ENT, i]
            known = True
            if e == -2:
                g = wk[W_START, i] + vn[v0 + i] - wk[W_REM, i]
                e = _entry(s, c, g, t0)
                if g - Q < K:
                    wk[W_ENT, i] = e
                else:
                    known = False      # extrapolated from the last run: may still drop
            if o == row:
                r = _ready(s, cmd, c, b)
                lim = s[o_lc] + 1
                if not dual and s[o_lr] + 1 > lim:
                    lim = s[o_lr] + 1
                isc = True
                fc = cmd
            else:
                if o >= 0:
                    blocked = False
                    u0 = lo
                    if wk[W_BLK, i] < 0 and wk[W_BLKO, i] == o and wk[W_FRH, i] > lo:
                        u0 = wk[W_FRH, i]
                    for u in range(u0, hi):
                        if u != i and wk[W_REM, u] > 0 and vb[v0 + u] == b and vr[v0 + u] == o:
                            blocked = True
                            wk[W_BLK, i] = u
                            break
                    wk[W_BLKO, i] = o
                    wk[W_FRH, i] = 0 if blocked else hi
                    if blocked:
                        wk[W_LBR, i] = -1
                        continue
                    fc = PRE
                else:
                    fc = ACT
                r = _ready(s, fc, c, b)
                lim = s[o_lr] + 1
                isc = False
            if r < e:
                r = e
            if r < lim:
                r = lim
            if isc or fc == ACT:
                r = _odd(s, r)
            if not isc and not dual:
                # one command bus: issued column commands keep their ticks
                r = _col_free(s, c, r)
            infl = r if isc else r + rcd
            wk[W_INF, i] = infl
            if known and (isc or dual):
                wk[W_LBR, i] = r
                wk[W_LBO, i] = o
            else:
                wk[W_LBR, i] = -1            # (the column-tick avoidance above is not monotone)
            if r < best_t or (r == best_t and (isc and not best_col or isc == best_col and i < best_v)):
                if best_v >= 0:
                    if best_infl < sec_t:
                        sec_t = best_infl
                best_t = r
                best_v = i
                best_cmd = fc
                best_col = isc
                best_infl = infl
            elif infl < sec_t:
                sec_t = infl
        t_other = sec_t
        i = best_v
        b = vb[v0 + i]
        row = vr[v0 + i]
        t = best_t
        sidx = b // per
        nri = s[O_NEXTREF] + c * s[H_NSCOPE] + sidx
        if refi > 0 and s[nri] <= t:
            _refresh_due(s, counters, c, sidx, t)
            continue
        if wk[W_FRESH, i]:
            wk[W_FRESH, i] = 0
            n = wk[W_REM, i]
            if best_cmd == PRE:
                counters[MC_ROW_CONFLICTS] += 1
                counters[MC_ROW_HITS] += n - 1
            elif best_cmd == ACT:
                counters[MC_ROW_MISSES] += 1
                counters[MC_ROW_HITS] += n - 1
            else:
                counters[MC_ROW_HITS] += n
        if not best_col:
            _update(s, best_cmd, c, L - 1, b, t)
            if best_cmd == PRE:
                s[o_open + b] = -1
                counters[MC_PRE] += 1
            else:
                s[o_open + b] = row
                counters[MC_ACT] += 1
            s[o_lr] = t
            _x_log(lg, xs, i, best_cmd, t, 0, 1)
            continue
        # column commands: one, or (row_visit) a run in closed form up to the first tick another
        # visit could interleave, a window entry could, a refresh falls due, or a burst of the run
        # would still wait for its own window entry
        m = 1
        if fid != 0 and wk[W_REM, i] > 1:
            m = wk[W_REM, i]
            if refi > 0:
                kr = (s[nri] - t + gap - 1) // gap
                if kr < m:
                    m = kr
            if t_other < INF:
                ko = (t_other - t + gap - 1) // gap
                if ko < m:
                    m = ko
            h = hi
            while h < nv:
                ie = wk[W_START, h] - Q - K           # run offset whose issue admits visit h
                if ie < 0:
                    ie = 0
                if ie >= m:
                    break
                d = 0 if s[o_open + vb[v0 + h]] == vr[v0 + h] else rcd
                ko = (ie * gap + d + gap - 1) // gap
                if ko < m:
                    m = ko
                h += 1
            if m > 1:
                m = _run_entries(s, c, wk[W_START, i] + vn[v0 + i] - wk[W_REM, i], t, gap, m)
            if m < 1:
                m = 1
            if m == 1 and wk[W_REM, i] > 2 and t_other < t + gap:
                # interleaved rounds; after a failed attempt the next ones are spaced out (only
                # how often it is tried, every issued command is exact either way)
                if skip > 0:
                    skip -= 1
                else:
                    fin = _interleave(s, counters, c, vb, vr, vn, v0, lo, hi, nv, i, t, cmd, gap, t0, wk, K, is_write, lg, xs)
                    if fin >= 0:
                        backoff = 0
                        if fin > done:
                            done = fin
                        continue
                    backoff = 1 if backoff == 0 else (backoff * 2 if backoff < 32 else backoff)
                    skip = backoff
        t_last = t + (m - 1) * gap
        _update(s, cmd, c, L - 1, b, t_last)
        _ring_put(s, c, t, gap, m)
        _x_log(lg, xs, i, cmd, t, gap, m)
        s[o_lc] = t_last
        wk[W_REM, i] -= m
        wk[W_ENT, i] = -2
        counters[MC_WR if is_write else MC_RD] += m
        s[s[O_BUSY] + c] += m * s[H_NBL]
        fin = t_last + (s[H_WL] if is_write else s[H_RL])
        if fin > done:
            done = fin
    if done > s[O_MAXT]:
        s[O_MAXT] = done
    return done


@njit(cache=True)
def _ch_copy(s, src, dst, D, dbusy):
    """Give channel ``dst`` the dynamic state of channel ``src`` shifted by ``D`` ticks (ready /
    windowed history of every node, open rows, column-run ring with its command numbering,
    command-bus slots; the refresh due ticks only when ``D == 0``) and add ``dbusy`` to its
    busy ticks (an output, never read by the model)."""
    L = s[H_L]
    NB = s[H_NB]
    Q = s[H_Q]
    o_nc = s[O_NCOUNT]; o_lo = s[O_LOFF]; o_rd = s[O_READY]; o_hi = s[O_HIST]; o_hw = s[O_HASWIN]
    for lv in range(L):
        ncl = s[o_nc + lv]
        a = s[o_lo + lv] + src * ncl
        b = s[o_lo + lv] + dst * ncl
        if D == 0:
            s[o_rd + b * N_CMD:o_rd + (b + ncl) * N_CMD] = s[o_rd + a * N_CMD:o_rd + (a + ncl) * N_CMD]
        else:
            for j in range(ncl * N_CMD):
                v = s[o_rd + a * N_CMD + j]
                s[o_rd + b * N_CMD + j] = v + D if v >= 0 else v
        for cm in range(N_CMD):
            if s[o_hw + lv * N_CMD + cm] == 0:
                continue                  # history kept only where a windowed constraint reads it
            for j in range(ncl):
                ha = o_hi + ((a + j) * N_CMD + cm) * W_MAX
                hb = o_hi + ((b + j) * N_CMD + cm) * W_MAX
                for w in range(W_MAX):
                    v = s[ha + w]
                    s[hb + w] = v + D if v >= 0 else v
    for j in range(NB):
        s[s[O_OPEN] + dst * NB + j] = s[s[O_OPEN] + src * NB + j]
    if D == 0:
        ns = s[H_NSCOPE]
        for j in range(ns):
            s[s[O_NEXTREF] + dst * ns + j] = s[s[O_NEXTREF] + src * ns + j]
    o_r = s[O_RING]
    s[o_r + dst * Q * RS:o_r + (dst + 1) * Q * RS] = s[o_r + src * Q * RS:o_r + (src + 1) * Q * RS]
    if D != 0:
        for j in range(Q):
            r = o_r + dst * Q * RS + j * RS
            if s[r + 1] >= 0:
                s[r + 1] += D
    s[s[O_RINGK] + dst] = s[s[O_RINGK] + src]
    s[s[O_VCNT] + dst] = s[s[O_VCNT] + src]
    s[s[O_BUSY] + dst] += dbusy
    for j in range(2):
        v = s[s[O_LAST] + 2 * src + j]
        s[s[O_LAST] + 2 * dst + j] = v + D if v >= 0 else v


@njit(cache=True)
def _ch_floor(s, c, t0):
    """Lowest tick a command of channel ``c`` can take in a call issued at ``t0``: every burst
    enters the window at or after the column command ``Q`` bursts before it, so at or after the
    oldest of the last ``Q`` (-1: fewer than ``Q`` column commands so far)."""
    K = s[s[O_RINGK] + c]
    Q = s[H_Q]
    if K < Q:
        return np.int64(-1)
    f = _ring_get(s, c, K - Q)
    return f if f > t0 else t0


@njit(cache=True)
def _ch_equiv(s, m, c, t0):
    """Whether channel ``c`` at the start of a call issued at ``t0`` is in the state of channel
    ``m`` shifted by ``D`` ticks, as far as any later command reads it; returns ``D`` or INF.
    Every command of the call (and of later ones) is at or after the floor ``F``
    (:func:`_ch_floor`), so values below it are alike: ready ticks only enter maxima with terms
    at or above ``F``, history entries only through ``+ latency`` of a windowed constraint (below
    ``F - max latency``), column ticks of the window only as entry ticks (with ``t0``) or
    through the shared-bus check at ticks at or after ``F``. Open rows must be the same, the
    refresh due ticks the same where ``D == 0`` (otherwise the call must not reach them:
    checked once the call is known), ``D`` even where commands keep to rising edges. A refresh
    due below ``F`` is issued at its due tick or its ready tick, whichever is later: the values
    alike are those below the lower of ``F`` and the due ticks."""
    Q = s[H_Q]
    Fm = _ch_floor(s, m, t0)
    Fc = _ch_floor(s, c, t0)
    if Fm < 0 or Fc < 0:
        return INF
    D = Fc - Fm
    if s[H_EDGE] and (D & 1):
        return INF
    NB = s[H_NB]
    for j in range(NB):
        if s[s[O_OPEN] + m * NB + j] != s[s[O_OPEN] + c * NB + j]:
            return INF
    ns = s[H_NSCOPE]
    if D == 0:
        for j in range(ns):
            if s[s[O_NEXTREF] + m * ns + j] != s[s[O_NEXTREF] + c * ns + j]:
                return INF
    if s[H_REFI] > 0:
        for j in range(ns):
            x = s[s[O_NEXTREF] + m * ns + j]
            if x < Fm:
                Fm = x
            x = s[s[O_NEXTREF] + c * ns + j]
            if x < Fc:
                Fc = x
        if Fc - Fm != D:
            return INF
    Km = s[s[O_RINGK] + m]
    Kc = s[s[O_RINGK] + c]
    for j in range(Q):
        a = _ring_get(s, m, Km - Q + j)
        b = _ring_get(s, c, Kc - Q + j)
        if (a if a >= Fm else Fm - 1) - Fm != (b if b >= Fc else Fc - 1) - Fc:
            return INF
    L = s[H_L]
    o_nc = s[O_NCOUNT]; o_lo = s[O_LOFF]; o_rd = s[O_READY]; o_hi = s[O_HIST]; o_hw = s[O_HASWIN]
    lm = np.int64(0)
    for lv in range(L):
        for cm in range(N_CMD):
            x = _win_lat(s, lv, cm)
            if x > lm:
                lm = x
    Hm = Fm - lm
    Hc = Fc - lm
    for lv in range(L):
        ncl = s[o_nc + lv]
        a = s[o_lo + lv] + m * ncl
        b = s[o_lo + lv] + c * ncl
        for j in range(ncl * N_CMD):
            x = s[o_rd + a * N_CMD + j]
            y = s[o_rd + b * N_CMD + j]
            if (x if x >= Fm else Fm - 1) - Fm != (y if y >= Fc else Fc - 1) - Fc:
                return INF
        for cm in range(N_CMD):
            if s[o_hw + lv * N_CMD + cm] == 0:
                continue
            for j in range(ncl):
                ha = o_hi + ((a + j) * N_CMD + cm) * W_MAX
                hb = o_hi + ((b + j) * N_CMD + cm) * W_MAX
                for w in range(W_MAX):
                    x = s[ha + w]
                    y = s[hb + w]
                    if (x if x >= Hm else Hm - 1) - Hm != (y if y >= Hc else Hc - 1) - Hc:
                        return INF
    return D


@njit(cache=True)
def _copy_cost(s):
    """What copying a channel's state costs, in the words of :data:`XCOPY` per visit served."""
    nn = 0
    for lv in range(s[H_L]):
        nn += s[s[O_NCOUNT] + lv]
    return nn * N_CMD + s[H_Q] * RS


@njit(cache=True)
def _classes_split(s, vb, vr, vn, cnt, pos):
    """The classes after a call that served every channel: a channel stays with the lowest
    channel of its class that received the same visits (the classes of :func:`_serve_classes`
    without copies; from the highest channel down, so the lower ones still hold their class)."""
    C = s[H_C]
    o_cls = s[O_MCLS]
    for c in range(C - 1, -1, -1):
        r = s[o_cls + c]
        v0 = cnt[c]
        nv = pos[c] - v0
        nw = c
        for c2 in range(r, c):
            if s[o_cls + c2] != r or pos[c2] - cnt[c2] != nv:
                continue
            w0 = cnt[c2]
            eq = True
            for j in range(nv if w0 != v0 else 0):
                if vb[v0 + j] != vb[w0 + j] or vr[v0 + j] != vr[w0 + j] or vn[v0 + j] != vn[w0 + j]:
                    eq = False
                    break
            if eq:
                nw = c2
                break
        s[o_cls + c] = nw


@njit(cache=True)
def _serve_classes(s, counters, vb, vr, vn, cnt, pos, is_write, t0, wk, xs, lg, snaps, xw):
    """Serve every channel's visits (``row_visit``), once per group of channels whose outcome is
    known to be the same. Channels are independent and alike (the static tables do not depend
    on the channel):

    - a channel whose state equals an earlier one's at the start of the call (``O_MCLS``: the
      lowest channel it has equalled since, every value but the busy ticks, which are never
      read) and whose visits (bank, row, bursts) are the same ends in that one's final state
      with the same counter increments and completion tick;
    - a channel with the same visits as an earlier one in another class whose state is that
      one's shifted by ``D`` ticks as far as any later command reads it (:func:`_ch_equiv`)
      ends in that one's final state shifted by ``D``, if that one's call issued at least
      ``Q`` column commands (the window then holds only this call's commands: the values that
      differed stay below every later command), its refresh due ticks stay at or above the
      floor, and for ``D != 0`` neither reaches a refresh. With ``D == 0`` it joins the class.

    The state is copied where that is cheaper than serving the visits."""
    C = s[H_C]
    Q = s[H_Q]
    o_cls = s[O_MCLS]
    o_ld = o_cls + C               # scratch: leader of each channel in this call,
    o_dn = o_ld + C                # the leader's completion tick,
    o_dx = o_dn + C                # its extrapolated column commands,
    o_db = o_dx + C                # its busy ticks,
    o_ms = o_db + C                # channel whose state this leader's is, shifted (itself: none),
    o_sh = o_ms + C                # by how many ticks,
    o_dl = o_sh + C                # its counter increments (MC_BUSY_CYCLES per channel)
    o_st = o_dl + C * MC_BUSY_CYCLES   # statistics: channels copied within a class, from an equivalent one
    o_bk = o_st + 2                # per channel: calls to skip comparisons of states, next backoff
    done = np.int64(0)
    lat = s[H_WL] if is_write else s[H_RL]
    # a copy moves about the channel's ready tables and ring; serving costs about a step per
    # visit (only the speed depends on this choice)
    cost_copy = _copy_cost(s)
    # groups: same class and visits (before anything is served: the equivalence is of states at
    # the start of the call)
    for c in range(C):
        v0 = cnt[c]
        nv = pos[c] - v0
        ld = c
        ms = c
        tried = nv == 0 or nv * XCOPY < cost_copy     # (no comparison of states)
        if not tried and s[o_bk + 2 * c] > 0:
            # after comparisons that failed, the next ones are spaced out (only the speed
            # depends on how often they are made)
            s[o_bk + 2 * c] -= 1
            tried = True
        # (a class's number is its lowest channel: without a comparison of states the leaders
        # to look at lie from there on)
        for c2 in range(s[o_cls + c] if tried else 0, c):
            if s[o_ld + c2] != c2 or pos[c2] - cnt[c2] != nv:
                continue
            if s[o_cls + c2] != s[o_cls + c] and (tried or s[o_ms + c2] != c2):
                continue
            w0 = cnt[c2]
            eq = True
            for j in range(nv if w0 != v0 else 0):    # (channels may share their visits)
                if vb[v0 + j] != vb[w0 + j] or vr[v0 + j] != vr[w0 + j] or vn[v0 + j] != vn[w0 + j]:
                    eq = False
                    break
            if not eq:
                continue
            if s[o_cls + c2] == s[o_cls + c]:
                ld = c2
                break
            if not tried:
                tried = True                  # (one comparison per channel and call)
                D = _ch_equiv(s, c2, c, t0)
                if D < INF:
                    ms = c2
                    s[o_sh + c] = D
                    s[o_bk + 2 * c + 1] = 0
                else:
                    bk = s[o_bk + 2 * c + 1]
                    bk = 1 if bk == 0 else (bk * 2 if bk < 8 else bk)
                    s[o_bk + 2 * c + 1] = bk
                    s[o_bk + 2 * c] = bk
        s[o_ld + c] = ld
        s[o_ms + c] = ms if ld == c else c
    for c in range(C):
        v0 = cnt[c]
        nv = pos[c] - v0
        ld = s[o_ld + c]
        if nv == 0:
            continue
        if nv * XCOPY < cost_copy:
            # serving is cheaper (for a member of a class: the same result; no one copies from
            # a leader then, its members have the same visits)
            f = _serve(s, counters, c, vb, vr, vn, v0, pos[c], is_write, t0, wk, xs, lg, snaps, xw)
            if f > done:
                done = f
            continue
        src = ld
        D = np.int64(0)
        if ld == c:
            m = s[o_ms + c]
            if m != c:
                D = s[o_sh + c]
                fl = _ch_floor(s, c, t0)
                nr = INF
                ns = s[H_NSCOPE]
                for j in range(ns):
                    x = s[s[O_NEXTREF] + (c if D != 0 else m) * ns + j]
                    if x < nr:
                        nr = x
                ok = (s[o_dl + m * MC_BUSY_CYCLES + MC_RD] + s[o_dl + m * MC_BUSY_CYCLES + MC_WR] >= Q
                      and nr >= fl)
                if ok and D != 0:
                    ok = (s[o_dl + m * MC_BUSY_CYCLES + MC_REF] == 0 and s[o_dn + m] - lat + D < nr)
                if ok:
                    src = m
                    if D == 0:
                        s[o_ld + c] = m       # joins m's class
            if src == c:
                for q in range(MC_BUSY_CYCLES):
                    s[o_dl + c * MC_BUSY_CYCLES + q] = counters[q]
                x0 = s[H_XCOLS]
                b0 = s[s[O_BUSY] + c]
                f = _serve(s, counters, c, vb, vr, vn, v0, pos[c], is_write, t0, wk, xs, lg, snaps, xw)
                for q in range(MC_BUSY_CYCLES):
                    s[o_dl + c * MC_BUSY_CYCLES + q] = counters[q] - s[o_dl + c * MC_BUSY_CYCLES + q]
                s[o_dx + c] = s[H_XCOLS] - x0
                s[o_db + c] = s[s[O_BUSY] + c] - b0
                s[o_dn + c] = f
                if f > done:
                    done = f
                continue
        _ch_copy(s, src, c, D, s[o_db + src])
        s[o_st + (0 if src == ld else 1)] += 1
        for q in range(MC_BUSY_CYCLES):
            counters[q] += s[o_dl + src * MC_BUSY_CYCLES + q]
        s[H_XCOLS] += s[o_dx + src]
        f = s[o_dn + src] + D
        if f > done:
            done = f
        if f > s[O_MAXT]:
            s[O_MAXT] = f
        if ld == c:
            # a leader served by a shifted copy: its group copies from it
            for q in range(MC_BUSY_CYCLES):
                s[o_dl + c * MC_BUSY_CYCLES + q] = s[o_dl + src * MC_BUSY_CYCLES + q]
            s[o_dx + c] = s[o_dx + src]
            s[o_db + c] = s[o_db + src]
            s[o_dn + c] = f
    for c in range(C):
        ld = s[o_ld + c]
        s[o_cls + c] = s[o_ld + ld]        # (a leader that joined another class passes it on)
    return done


@njit(cache=True)
def dram_transfer(params, state, counters, addr, nbytes, is_write, t_issue):
    """``mem_transfer`` for ``MEM_DRAM``: accelerator cycles in and out."""
    s = state[0]
    t0 = np.int64(np.ceil(t_issue * params[0]))
    tx = s[H_TX]
    if nbytes <= 0:
        return t_issue
    j0 = addr // tx
    j1 = (addr + nbytes - 1) // tx
    C = s[H_C]
    pb = s[H_PBITS]
    chpos = s[H_CHPOS]
    done = t0
    blk = np.int64(1) << pb
    nblk = (j1 >> pb) - (j0 >> pb) + 1
    decb = s[H_DECB]
    cnt = np.zeros(C + 1, np.int64)
    pos = np.zeros(C, np.int64)
    if chpos == 0 and C > 1 and decb > 0:
        # channel bits lowest: channel c's bursts are jc = (r << decb) | c for the rounds r of the
        # transfer, each block gives it (at most) one visit (decoded at its first burst in the
        # block), a visit to the same bank and row as the channel's previous one joins it. Bank
        # and row depend only on the bits above the channel's, so the channels that start in the
        # same round (c >= the first burst's channel) and end in the same round (c <= the last
        # burst's) receive the same visits: built once per such group (at most four), the group's
        # channels share them
        vis = np.empty((3, 4 * nblk), np.int64)
        vb = vis[0]
        vr = vis[1]
        vn = vis[2]
        l0 = j0 & (C - 1)
        l1 = j1 & (C - 1)
        gs = np.full(8, -1, np.int64)
        ng = 0
        for c in range(C):
            g = (2 if c < l0 else 0) + (1 if c > l1 else 0)
            if gs[g] < 0:
                p0 = ng * nblk
                p = p0
                jb = (j0 >> pb) << pb
                while jb <= j1:
                    lo = jb if jb > j0 else j0
                    hi = jb + blk - 1
                    if hi > j1:
                        hi = j1
                    jb += blk
                    jc = lo + ((c - lo) & (C - 1))
                    if jc > hi:
                        continue
                    ch, b, row = _decode(s, jc * tx)
                    n = ((hi - jc) >> decb) + 1
                    if p > p0 and vb[p - 1] == b and vr[p - 1] == row:
                        vn[p - 1] += n
                    else:
                        vb[p] = b; vr[p] = row; vn[p] = n
                        p += 1
                gs[g] = p0
                gs[4 + g] = p
                ng += 1
            cnt[c] = gs[g]
            pos[c] = gs[4 + g]
    else:
        cap = nblk * C if (chpos == 0 and C > 1) else nblk
        # row visits in address order, then grouped per channel (order kept within a channel)
        buf = np.empty(4 * cap, np.int64)
        rch = buf[0:cap]
        rb = buf[cap:2 * cap]
        rr = buf[2 * cap:3 * cap]
        rn = buf[3 * cap:4 * cap]
        nvis = 0
        jb = (j0 >> pb) << pb
        while jb <= j1:
            lo = jb if jb > j0 else j0
            hi = jb + blk - 1
            if hi > j1:
                hi = j1
            if chpos == 0 and C > 1:
                for c in range(C):
                    jc = lo + ((c - lo) % C)
                    if jc > hi:
                        continue
                    ch, b, row = _decode(s, jc * tx)
                    rch[nvis] = ch; rb[nvis] = b; rr[nvis] = row; rn[nvis] = (hi - jc) // C + 1
                    nvis += 1
            else:
                ch, b, row = _decode(s, lo * tx)
                rch[nvis] = ch; rb[nvis] = b; rr[nvis] = row; rn[nvis] = hi - lo + 1
                nvis += 1
            jb += blk
        for k in range(nvis):
            cnt[rch[k] + 1] += 1
        for c in range(C):
            cnt[c + 1] += cnt[c]
        for c in range(C):
            pos[c] = cnt[c]
        vis = np.empty((3, nvis), np.int64)
        vb = vis[0]
        vr = vis[1]
        vn = vis[2]
        for k in range(nvis):
            c = rch[k]
            p = pos[c]
            if p > cnt[c] and vb[p - 1] == rb[k] and vr[p - 1] == rr[k]:
                vn[p - 1] += rn[k]            # same bank and row as the channel's previous visit
                continue
            vb[p] = rb[k]; vr[p] = rr[k]; vn[p] = rn[k]
            pos[c] = p + 1
    # per-visit work rows: as many columns as the most visits of one channel
    mx = 1
    for c in range(C):
        if pos[c] - cnt[c] > mx:
            mx = pos[c] - cnt[c]
    wk = np.empty((11, mx), np.int64)
    # periodic extrapolation scratch (row_visit, transfers of at least 8 windows of bursts):
    # views of the state, empty when off (no allocation per call)
    xs = s[0:0]
    lg = s[0:0].reshape((1, 0))
    snaps = lg
    xw = lg
    if s[H_FID] != 0 and s[O_XSCR + 1] > 0 and j1 - j0 + 1 >= 8 * s[H_Q]:
        L = s[H_L]
        NB = s[H_NB]
        nn = 0
        for lv in range(L):
            nn += s[s[O_NCOUNT] + lv]
        sz = _x_size(s)
        wcap = max(nn, 3 * NB * W_MAX)
        o = s[O_XSCR]
        xs = s[o:o + 3]
        o += 3
        snaps = s[o:o + XJ * sz].reshape((XJ, sz))
        o += XJ * sz
        lg = s[o:o + 5 * XLCAP].reshape((5, XLCAP))
        o += 5 * XLCAP
        xw = s[o:o + 11 * wcap].reshape((11, wcap))
    # channel classes (row_visit, several channels) where a copy can pay; otherwise every
    # channel is served and the classes follow the visits
    cls = s[H_FID] != 0 and C > 1
    if cls and mx * XCOPY >= _copy_cost(s):
        f = _serve_classes(s, counters, vb, vr, vn, cnt, pos, is_write, t0, wk, xs, lg, snaps, xw)
        if f > done:
            done = f
    else:
        for c in range(C):
            if pos[c] > cnt[c]:
                f = _serve(s, counters, c, vb, vr, vn, cnt[c], pos[c], is_write, t0, wk, xs, lg, snaps, xw)
                if f > done:
                    done = f
        if cls:
            _classes_split(s, vb, vr, vn, cnt, pos)
    if is_write:
        counters[MC_WRITE_BYTES] += nbytes
        counters[MC_WRITE_REQS] += 1
    else:
        counters[MC_READ_BYTES] += nbytes
        counters[MC_READ_REQS] += 1
    counters[MC_BUSY_CYCLES] += np.int64(np.ceil((j1 - j0 + 1) * s[H_NBL] * params[1] / (C * s[H_BUSES])))
    return np.int64(np.ceil(done * params[1]))


def build_state(preset, mapping, channels: int, fidelity: str = "row_visit", lookahead: int = 32,
                refresh: str = "all_bank") -> np.ndarray:
    """Pack the static tables and a fresh dynamic state into one int64 row."""
    from archsim.mem.dram.sim import static_arrays
    t = preset.tables
    L, lsize, ncount, NB, bnode, haswin, hassib, rscope = static_arrays(preset)
    C = channels
    loff = np.zeros(L, dtype=np.int64)
    for lv in range(1, L):
        loff[lv] = loff[lv - 1] + C * ncount[lv - 1]
    n_nodes = int(loff[L - 1] + C * ncount[L - 1])
    n_scope = int(ncount[rscope])
    gap = np.zeros(N_CMD, dtype=np.int64)
    for lv, p, f, lat, win, sib in t.entries:
        if p == f and win == 1 and not sib:
            gap[p] = max(gap[p], lat)
    gap = np.maximum(gap, 1)
    # ACT -> first column command of the bank (tRCD, ticks): how soon a row command can let
    # another visit join the column stream
    rcd = min([lat for lv, p, f, lat, win, sib in t.entries if p == ACT and f in (RD, WR) and not sib] or [1])
    # a constraint between a column command and another bank's row command (multi-tick commands
    # on one command bus, DDR5): a row command issued between two column commands of a run
    # delays the later ones, and is delayed by the earlier ones only, so a run stops at the
    # tick a row command of another visit could issue (its own tick, not + tRCD)
    Lt = len(t.level_sizes)
    cross = any((lv < Lt - 1 or sib) and (p in (RD, WR) and f in (ACT, PRE) or p in (ACT, PRE) and f in (RD, WR) and lat > 1)
                for lv, p, f, lat, win, sib in t.entries)
    rcd = 0 if cross else max(1, rcd)
    # visit block: leading channel / column fields of the mapping
    pbits, chpos, pos = 0, -1, 0
    if mapping.mode == 1:
        # MOP4CLXOR XORs the bank levels with the column bits from bit 0 on: the bursts of a
        # 4-burst block share a row index but go to different banks, so a visit is one burst
        pbits = int(sum(b for k, b in zip(mapping.fkind, mapping.fbits) if k == F_CH))
        chpos = 0
    else:
        for k, bits in zip(mapping.fkind, mapping.fbits):
            if k not in (F_CH, F_COL):
                break
            if k == F_CH:
                chpos = pos
            pbits += int(bits)
            pos += int(bits)
    if mapping.xor_mode & 2:
        pbits, chpos = 0, -1          # channel depends on row bits: no aggregation across channels
    if chpos not in (0, -1) and C > 1:
        pbits, chpos = 0, -1
    if chpos == -1 and C > 1 and any(k == F_CH for k in mapping.fkind):
        chpos = -1
    segs = [
        ("lsize", lsize), ("ncount", ncount), ("loff", loff), ("bnode", bnode.reshape(-1)),
        ("cstart", t.c_start.reshape(-1)), ("cfol", t.c_fol), ("clat", t.c_lat), ("cwin", t.c_win),
        ("csib", t.c_sib), ("haswin", haswin.reshape(-1).astype(np.int64)),
        ("hassib", hassib.reshape(-1).astype(np.int64)), ("gap", gap), ("fkind", mapping.fkind),
        ("fbits", mapping.fbits), ("ready", np.full(n_nodes * N_CMD, -1, np.int64)),
        ("hist", np.full(n_nodes * N_CMD * W_MAX, -1, np.int64)), ("open", np.full(C * NB, -1, np.int64)),
        ("nextref", np.full(C * n_scope, t.timing["nREFI"] if refresh != "off" else 0, np.int64)),
        ("ring", np.full(C * lookahead * RS, -1, np.int64)), ("ringk", np.zeros(C, np.int64)),
        ("busy", np.zeros(C, np.int64)), ("vcnt", np.zeros(C, np.int64)),
        ("last", np.full(2 * C, -1, np.int64)), ("xlat", np.zeros(2 * NB * NB, np.int64)),
        ("mcls", np.zeros(C * (10 + MC_BUSY_CYCLES) + 2, np.int64)),
    ]
    if fidelity != "burst":
        nn = int(sum(int(x) for x in ncount))
        snap = SN_RING + lookahead + 2 * XWV + NB + nn * 3 * (1 + W_MAX)
        xsize = 3 + XJ * snap + 5 * XLCAP + 11 * max(nn, 3 * NB * W_MAX)
        segs.append(("xscr", np.zeros(xsize, np.int64)))
    total = HEADER + sum(len(a) for _, a in segs) + 1
    s = np.zeros(total, dtype=np.int64)
    off = HEADER
    slots = [O_LSIZE, O_NCOUNT, O_LOFF, O_BNODE, O_CSTART, O_CFOL, O_CLAT, O_CWIN, O_CSIB, O_HASWIN,
             O_HASSIB, O_GAP, O_FKIND, O_FBITS, O_READY, O_HIST, O_OPEN, O_NEXTREF, O_RING, O_RINGK, O_BUSY,
             O_VCNT, O_LAST, O_XLAT, O_MCLS]
    for slot, (_, a) in zip(slots + [O_XSCR], segs):
        s[slot] = off
        s[off:off + len(a)] = a
        off += len(a)
    if fidelity != "burst":
        s[O_XSCR + 1] = len(segs[-1][1])
    nbl = t.timing["nBL"]
    hdr = {H_L: L, H_C: C, H_NB: NB, H_NNODES: n_nodes, H_Q: lookahead, H_NSCOPE: n_scope, H_RSCOPE: rscope,
           H_RL: t.read_latency, H_WL: t.timing["nCWL"] + nbl,
           H_REFI: t.timing["nREFI"] if refresh != "off" else 0, H_NBL: nbl,
           H_FID: 0 if fidelity == "burst" else 1, H_TXB: mapping.tx_bits, H_NF: len(mapping.fkind),
           H_MAPMODE: mapping.mode, H_XOR: mapping.xor_mode, H_ROWB: mapping.row_bits, H_COLB: mapping.col_bits,
           H_PBITS: pbits, H_CHB: int(round(math.log2(C))), H_CHPOS: chpos, H_TX: preset.tx_bytes,
           H_BUSES: preset.level_sizes[1] if preset.standard.levels[1] == "PseudoChannel" else 1,
           H_EDGE: int(preset.standard.edge_rules), H_DUAL: int(preset.standard.dual_bus), H_RCD: rcd,
           H_DECB: _low_channel_bits(mapping, C)}
    for k, v in hdr.items():
        s[k] = int(v)
    s[O_MAXT] = 0
    _fill_cross(s)
    return s.reshape(1, -1)


def _low_channel_bits(mapping, C: int) -> int:
    """log2(C) if :func:`_decode` takes the channel from the lowest log2(C) transaction bits and
    the bank and row from the bits above them only (one channel field, first in the decode
    order, no channel XOR), else 0."""
    cb = int(round(math.log2(C))) if C > 1 else 0
    if cb == 0 or mapping.xor_mode & 2:
        return 0
    kinds = [int(k) for k in mapping.fkind]
    bits = [int(b) for b in mapping.fbits]
    if mapping.mode == 1:
        chf = [b for k, b in zip(kinds, bits) if k == F_CH]
        return cb if chf == [cb] else 0
    return cb if kinds and kinds[0] == F_CH and bits[0] == cb else 0


def report(preset, state: np.ndarray, clock_hz: float) -> dict:
    """Per-channel data-bus utilisation and refresh bookkeeping of a finished run."""
    s = state[0]
    C = int(s[H_C])
    busy = s[int(s[O_BUSY]):int(s[O_BUSY]) + C]
    end = max(1, int(s[O_MAXT]))
    buses = preset.level_sizes[1] if preset.standard.levels[1] == "PseudoChannel" else 1
    return {"dram_ticks": int(s[O_MAXT]),
            "channel_utilization": [float(b) / (end * buses) for b in busy]}
