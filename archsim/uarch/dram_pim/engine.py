"""PIM command engine: one DRAM command stream (a channel or pseudo-channel) timed against
bank state, in the style of a Ramulator-2 controller with a PIM request buffer.

A *request* is one entry of the stream: a PIM MAC (all-bank, half-bank, same-bank or per-bank), a
data-path command (input-vector write into the unit buffers, move to / from the softmax or
GEMV buffers, result read-out), a plain read / write, an all-bank write (HBM-PIM style
register / bank writes in all-bank mode), a half-bank read / write (HBM-PIM's HAB mode
addressing the even or the odd banks: a column command to bank parity h acts on every bank
whose index in its bank group has parity h) or a barrier. Requests that need a row open get
the prerequisite ACT / PRE of their scope first (all banks, the even or odd half, the same
bank in every bank group, one bank in every pseudo-channel, or one bank).

Scheduling (per stream):

- a window of ``window`` unissued requests (the controller's PIM request buffer, barriers
  included); a barrier at the head of the window is dropped; behind a barrier only row
  commands (ACT / PRE prerequisites) may be picked, so the next row opens early but no
  column command passes the barrier;
- the first ready request wins (FCFS among ready ones); a ready row command of a later
  request is held back while another request in the window hits an open row of a bank the
  command's scope covers (no premature precharge: an all-bank PRE waits for the hits of
  every bank, a same-bank one for those of its bank in every bank group), and while an older
  request waits to open another row of one of those banks (rows open in request order);
- one row command and one column command per cycle (separate buses), ACT-class commands
  occupy the row bus for ``row_act_ck`` cycles;
- all-bank refresh every nREFI: everything stops, open banks are precharged, REF, and no
  ACT for nRFC.

Controller policies (T[T_CTRL] bits; PIMSimulator's DRAMSim2-derived MemoryController /
CommandQueue when all are set):

- CTRL_EAGER_PRE: in a cycle with nothing else to issue, a bank whose open row no request up
  to the first barrier needs is precharged as soon as it may close;
- CTRL_ONE_BUS: one command per cycle (row and column share one bus);
- CTRL_TAGGED_BARRIER: a barrier tags the last request of its group: that request issues only
  at the head of the window (every earlier request issued), nothing behind it issues, and row
  commands are taken only from the requests before the first tagged one (or, with a tagged
  request at the head, before the next tagged one); barrier entries do not count against the
  window (they are tags, not queue entries);
- CTRL_INTAKE_ONE: requests enter the window one per cycle (the i-th request, barriers not
  counted, from cycle i + 1 on);
- CTRL_DATA_END: the stream ends when the last data has left the bus (read: command transfer
  1 CK + nCL + nBL, write: nCWL + nBL after the command), not with the last command;
- CTRL_COL_FIRST: any column command that may issue now goes before every row command (the
  command queue is scanned for an issuable column command first, for an ACT only when none
  is); without it the oldest command that may issue goes first, whatever its kind.

T[T_REF0] (when > 0) is the time of the first refresh (a controller staggering the refreshes
of several ranks refreshes rank r first at (r + 1) nREFI / ranks).

T[T_REFRESH] = 2 (postponed refresh, DRAMSim2's bookkeeping): a due refresh precharges each
open bank as soon as it may close while every other command, ACTs included, keeps issuing; REF
goes out right behind the last PRE (the command queue times a REF against nothing, not even
tRP) once no bank is open. The controller holds one pending refresh: with ranks staggered, the
next rank's refresh falls due T[T_REF0] later and takes it over, so a refresh still waiting
then is never issued; with one rank a refresh falling due while one waits merges into it. A
stream that keeps reopening its banks (a write stream in write recovery, a row switch in
progress when the refresh falls due) can therefore skip refreshes (counter ``ref_skipped``).

Timing relations (CK cycles; levels as in the AttAcc HBM3-PIM model):

- MAC_AB / MAC_HB -> MAC_AB / MAC_HB >= mac_gap (channel), MAC_SB -> MAC_SB >= mac_gap (channel);
  MAC_PB -> MAC_PB >= max(nBL, T[T_UNIT]) (stream: the bus, and the buffer-die unit's time for a
  burst), nCCDS (rank), nCCDL (bank group);
- ACT -> MAC/RD >= nRCDRD, ACT -> WR >= nRCDWR, ACT -> PRE >= nRAS, ACT -> ACT >= nRC,
  PRE -> ACT >= nRP, MAC/RD -> PRE >= nRTP, WR -> PRE >= nCWL + nBL + nWR (per bank, taken
  over the scope of the command);
- data path (DATA, RD, WR, WR_AB, WR_HB): nBL per pseudo-channel, nCCDS per rank, nCCDL per bank
  group; WR -> RD >= nCWL + nBL + nWTRL, RD -> WR >= nRTW per pseudo-channel;
- plain ACT (for RD / WR): nRRDS per rank, nRRDL per bank group, tFAW (4 ACTs per rank);
  PIM ACTs (all-bank / same-bank / per-bank) follow the AttAcc model and are limited by
  the bank relations only — the power limit of all-bank operation is ``mac_gap``;
- with T[T_GANG] > 0 (Newton-style ganged activation) a PIM ACT opening n >= 4 banks of each
  rank goes out as ceil(n / 4) ganged ACTs of four banks, one per tFAW (each counts as four ACTs
  in the window): its last banks open (ceil(n / 4) - 1) tFAW after its first, and the relations
  that start at an ACT (-> MAC / WR nRCD, -> PRE nRAS, -> ACT nRC) count from that last gang;
  the last gang fills each rank's tFAW window, so a plain ACT waits tFAW after it, and the next
  ganged ACT's first gang waits tFAW after it too (but not for the plain ACTs in the window:
  younger requests opening their banks could starve it). A PIM ACT of fewer banks per rank
  (per-bank MACs on the buffer die) is not ganged.

Times are kept per bank, per bank id (same-bank scope; a half is the bank ids of one
parity) and per stream (all-bank scope); a query over a scope takes the maximum of the three
levels, so every update and query is O(B) at most however many banks a command touches.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# request kinds
K_BARRIER, K_MAC_AB, K_MAC_SB, K_MAC_PB, K_DATA, K_RD, K_WR, K_WR_AB, K_MAC_HB, K_WR_HB = range(10)
KIND_NAMES = ("BARRIER", "MAC_AB", "MAC_SB", "MAC_PB", "DATA", "RD", "WR", "WR_AB", "MAC_HB", "WR_HB")
# data-path sub kinds (counting only)
D_WRGB, D_MVSB, D_MVGB, D_SFM, D_READOUT, D_OTHER = range(6)
DATA_NAMES = ("wrgb", "mvsb", "mvgb", "sfm", "readout", "other")

# timing vector indices
(T_BL, T_CL, T_CWL, T_RCDRD, T_RCDWR, T_RP, T_RAS, T_RC, T_WR, T_RTP, T_CCDS, T_CCDL,
 T_RRDS, T_RRDL, T_FAW, T_WTRS, T_WTRL, T_RTW, T_RFC, T_REFI, T_MACGAP, T_ACTCK,
 T_REFRESH, T_WINDOW, T_CTRL, T_REF0, T_UNIT, T_GANG) = range(28)
N_T = 28
# T[T_CTRL] bits: controller policies
CTRL_EAGER_PRE = 1      # precharge rows no queued request (before a barrier) needs
CTRL_ONE_BUS = 2        # one command per cycle on a single command bus (row and column)
CTRL_TAGGED_BARRIER = 4  # a barrier tags the last request of its group (PIMSimulator "BAR")
CTRL_INTAKE_ONE = 8     # requests enter the window one per cycle
CTRL_DATA_END = 16      # the stream ends when the last data has left the bus
CTRL_COL_FIRST = 32     # issuable column commands before any row command
# refreshes without any column command in between after which the stream is declared stalled
# (the refresh interval leaves no room for an ACT and its column command): counters[C_CYCLES] = -1
STALL_REFRESHES = 8
CMD_CK = 1              # a command's transfer to the device (tCMD) before its read latency counts

# counter indices
(C_CYCLES, C_ACT_AB, C_ACT_SB, C_ACT_PB, C_ACT, C_PRE_AB, C_PRE_SB, C_PRE_PB, C_PRE, C_REF,
 C_MAC_AB, C_MAC_SB, C_MAC_PB, C_RD, C_WR, C_WR_AB, C_BANK_ACTS, C_D0) = range(18)
C_ACT_HB, C_PRE_HB, C_MAC_HB, C_WR_HB = C_D0 + 6, C_D0 + 7, C_D0 + 8, C_D0 + 9
C_WR_HB_DQ = C_D0 + 10          # half-bank writes whose data comes from the host (sub 1)
C_REF_SKIP = C_D0 + 11          # postponed refreshes never issued (taken over / merged)
N_C = C_D0 + 12
COUNTER_NAMES = ("cycles", "act_ab", "act_sb", "act_pb", "act", "pre_ab", "pre_sb", "pre_pb", "pre",
                 "ref", "mac_ab", "mac_sb", "mac_pb", "rd", "wr", "wr_ab", "bank_acts") + DATA_NAMES + (
                 "act_hb", "pre_hb", "mac_hb", "wr_hb", "wr_hb_dq", "ref_skipped")

# quantities kept per scope level
Q_ACT, Q_PRE, Q_RD, Q_WR = range(4)
NEG = -(1 << 40)
INF = 1 << 62

# command codes (what a request needs next)
CMD_FINAL, CMD_ACT, CMD_PRE = 0, 1, 2
# scopes
S_AB, S_SB, S_PB, S_BANK, S_NONE, S_HB = 0, 1, 2, 3, 4, 5


@njit(cache=True)
def _scope_of(kind):
    if kind == K_MAC_AB or kind == K_WR_AB:
        return S_AB
    if kind == K_MAC_SB:
        return S_SB
    if kind == K_MAC_PB:
        return S_PB
    if kind == K_RD or kind == K_WR:
        return S_BANK
    if kind == K_MAC_HB or kind == K_WR_HB:
        return S_HB
    return S_NONE


@njit(cache=True)
def _q(qa, qs, qb, qbid, qbmax, qsmax, q, scope, bank, bid, P, nbpp):
    """Latest time of quantity q over the banks of a scope."""
    if scope == S_AB:
        return max(qa[q], qsmax[q], qbmax[q])
    if scope == S_SB:
        return max(qa[q], qs[q, bid], qbid[q, bid])
    if scope == S_HB:                      # bank ids of parity bank % 2, every bank group
        m = qa[q]
        for i in range(bank % 2, qs.shape[1], 2):
            m = max(m, qs[q, i], qbid[q, i])
        return m
    if scope == S_PB:
        m = max(qa[q], qs[q, bid])
        loc = bank % nbpp
        for p in range(P):
            v = qb[q, p * nbpp + loc]
            if v > m:
                m = v
        return m
    return max(qa[q], qs[q, bid], qb[q, bank])


@njit(cache=True)
def _gangs(scope, G, B):
    """Ganged ACTs of four banks a PIM ACT of this scope needs in each rank (0: it opens fewer
    than four banks of a rank and is not ganged)."""
    if scope == S_AB:
        n = G * B
    elif scope == S_HB:
        n = (G * B) // 2
    elif scope == S_SB:
        n = G
    else:
        n = 1
    return (n + 3) // 4 if n >= 4 else 0


@njit(cache=True)
def _upd(qa, qs, qb, qbid, qbmax, qsmax, q, scope, bank, bid, P, nbpp, t):
    if scope == S_AB:
        qa[q] = t
    elif scope == S_SB:
        qs[q, bid] = t
        qsmax[q] = t
    elif scope == S_HB:
        for i in range(bank % 2, qs.shape[1], 2):
            qs[q, i] = t
        qsmax[q] = t
    elif scope == S_PB:
        loc = bank % nbpp
        for p in range(P):
            qb[q, p * nbpp + loc] = t
        qbid[q, bid] = t
        qbmax[q] = t
    else:
        qb[q, bank] = t
        qbid[q, bid] = t
        qbmax[q] = t


@njit(cache=True)
def _pre_ready(qa, qs, qb, qbid, qbmax, qsmax, scope, bank, bid, P, nbpp, T, wr_rec):
    """Earliest tick a precharge over ``scope`` may issue: ACT + nRAS, RD + nRTP, WR + write
    recovery (CWL + BL + nWR) of the banks it covers."""
    t = _q(qa, qs, qb, qbid, qbmax, qsmax, Q_ACT, scope, bank, bid, P, nbpp) + T[T_RAS]
    t = max(t, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_RD, scope, bank, bid, P, nbpp) + T[T_RTP])
    return max(t, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_WR, scope, bank, bid, P, nbpp) + wr_rec)


@njit(cache=True)
def _row_issue(t, span, col_free, one_bus):
    """A row command at ``t``: the row bus is busy for ``span`` ticks; on a single command bus
    the column command of tick ``t`` is taken too. Returns (row_free, col_free)."""
    if one_bus and col_free < t + 1:
        col_free = t + 1
    return t + span, col_free


@njit(cache=True)
def _row_status(open_row, scope, bank, bid, row, P, nbpp, B):
    """CMD_FINAL if every bank of the scope has ``row`` open, CMD_ACT if the first bank in
    order that is not is closed, CMD_PRE if it holds another row."""
    nb = open_row.shape[0]
    if scope == S_AB:
        for i in range(nb):
            o = open_row[i]
            if o != row:
                return CMD_ACT if o < 0 else CMD_PRE
        return CMD_FINAL
    if scope == S_SB:
        for i in range(bid, nb, B):
            o = open_row[i]
            if o != row:
                return CMD_ACT if o < 0 else CMD_PRE
        return CMD_FINAL
    if scope == S_HB:
        for i in range(bank % 2, nb, 2):
            o = open_row[i]
            if o != row:
                return CMD_ACT if o < 0 else CMD_PRE
        return CMD_FINAL
    if scope == S_PB:
        loc = bank % nbpp
        for p in range(P):
            o = open_row[p * nbpp + loc]
            if o != row:
                return CMD_ACT if o < 0 else CMD_PRE
        return CMD_FINAL
    o = open_row[bank]
    if o == row:
        return CMD_FINAL
    return CMD_ACT if o < 0 else CMD_PRE


@njit(cache=True)
def _covers(scope, bank, bid, i, P, nbpp, B):
    """Does a request of this scope addressing ``bank`` need bank ``i``?"""
    if scope == S_AB:
        return True
    if scope == S_SB:
        return i % B == bid
    if scope == S_HB:
        return i % 2 == bank % 2
    if scope == S_PB:
        return i % nbpp == bank % nbpp
    if scope == S_BANK:
        return i == bank
    return False


@njit(cache=True)
def _overlap(s1, b1, s2, b2, P, nbpp, B):
    """Do a request of scope ``s1`` addressing ``b1`` and one of ``s2`` addressing ``b2`` need a
    bank in common?"""
    if s1 == S_AB or s2 == S_AB:
        return True
    if s1 == S_BANK:
        return _covers(s2, b2, b2 % B, b1, P, nbpp, B)
    if s2 == S_BANK:
        return _covers(s1, b1, b1 % B, b2, P, nbpp, B)
    if s1 == s2:
        if s1 == S_SB:
            return b1 % B == b2 % B
        if s1 == S_HB:
            return b1 % 2 == b2 % 2
        return b1 % nbpp == b2 % nbpp
    for i in range(P * nbpp):
        if _covers(s1, b1, b1 % B, i, P, nbpp, B) and _covers(s2, b2, b2 % B, i, P, nbpp, B):
            return True
    return False


@njit(cache=True)
def _set_rows(open_row, scope, bank, bid, row, P, nbpp, B):
    nb = open_row.shape[0]
    if scope == S_AB:
        for i in range(nb):
            open_row[i] = row
    elif scope == S_SB:
        for i in range(bid, nb, B):
            open_row[i] = row
    elif scope == S_HB:
        for i in range(bank % 2, nb, 2):
            open_row[i] = row
    elif scope == S_PB:
        loc = bank % nbpp
        for p in range(P):
            open_row[p * nbpp + loc] = row
    else:
        open_row[bank] = row


@njit(cache=True)
def run_stream(kind, sub, bank, row, geom, T, tick_mode=False):
    """Time one command stream. ``bank`` is the flat bank index ((p*R + r)*G + g)*B + b of
    the addressed bank (for all-bank / same-bank requests: the bank the address names);
    ``row`` the row it needs (-1: none). ``geom`` = (P, R, G, B). Returns the counters
    (int64[N_C]); counters[C_CYCLES] is the cycle after the last command."""
    P, R, G, B = geom[0], geom[1], geom[2], geom[3]
    nbpp = R * G * B
    nb = P * nbpp
    n = kind.shape[0]
    W = T[T_WINDOW]
    cnt = np.zeros(N_C, np.int64)
    open_row = -np.ones(nb, np.int64)
    qa = np.full(4, NEG, np.int64)
    qs = np.full((4, B), NEG, np.int64)
    qb = np.full((4, nb), NEG, np.int64)
    qbid = np.full((4, B), NEG, np.int64)
    qbmax = np.full(4, NEG, np.int64)
    qsmax = np.full(4, NEG, np.int64)
    last_mac_ab = NEG
    last_mac_sb = NEG
    mpb_stream = NEG
    mpb_rank = np.full(R, NEG, np.int64)
    mpb_bg = np.full(R * G, NEG, np.int64)
    dp_pch = np.full(P, NEG, np.int64)
    dp_rank = np.full(P * R, NEG, np.int64)
    dp_bg = np.full(P * R * G, NEG, np.int64)
    last_rd_p = np.full(P, NEG, np.int64)
    last_wr_p = np.full(P, NEG, np.int64)
    act_rank = np.full(P * R, NEG, np.int64)
    act_bg = np.full(P * R * G, NEG, np.int64)
    faw = np.full((P * R, 4), NEG, np.int64)
    faw_pos = np.zeros(P * R, np.int64)
    gang_last = NEG              # ganged activation: the last gang of the last PIM ACT
    row_free = 0
    col_free = 0
    ref_block = 0
    refi = T[T_REFI]
    first_ref = T[T_REF0] if T[T_REF0] > 0 else refi
    ref_due = first_ref if (T[T_REFRESH] != 0 and refi > 0) else INF
    postponed = T[T_REFRESH] == 2
    ref_drop = INF               # postponed: when the next rank's refresh takes the slot over
    eager = (T[T_CTRL] & CTRL_EAGER_PRE) != 0
    one_bus = (T[T_CTRL] & CTRL_ONE_BUS) != 0
    tagged = (T[T_CTRL] & CTRL_TAGGED_BARRIER) != 0
    intake = (T[T_CTRL] & CTRL_INTAKE_ONE) != 0
    data_end = (T[T_CTRL] & CTRL_DATA_END) != 0
    col_first = (T[T_CTRL] & CTRL_COL_FIRST) != 0
    # tag[j]: request j is the last of its group (a barrier follows it); arrive[j]: first cycle
    # request j may issue with one-per-cycle intake (the i-th request, barriers not counted: i + 1)
    tag = np.zeros(n, np.bool_)
    arrive = np.zeros(n, np.int64)
    nreq = 0
    for j in range(n):
        if kind[j] == K_BARRIER:
            if j > 0 and kind[j - 1] != K_BARRIER:
                tag[j - 1] = True
        else:
            nreq += 1
            if intake:
                arrive[j] = nreq
    end_t = -1                   # last data on the bus (CTRL_DATA_END)
    refs_idle = 0                # refreshes since the last column command
    ref_wait = False
    issued = np.zeros(n, np.bool_)
    # window scratch
    wi = np.zeros(W, np.int64)
    wcmd = np.zeros(W, np.int64)
    wrdy = np.zeros(W, np.int64)
    welig = np.zeros(W, np.bool_)
    hitkeys = np.zeros(W, np.int64)
    # per addressed bank: the last command timed in this window pass (kind, row) and its status
    # and ready time; valid while mep equals the pass number
    mep = np.zeros(nb, np.int64)
    mk = np.zeros(nb, np.int64)
    mrow = np.zeros(nb, np.int64)
    mc = np.zeros(nb, np.int64)
    mrdy = np.zeros(nb, np.int64)
    epoch = 0
    hitscope = np.zeros(W, np.int64)
    pscope = np.zeros(W, np.int64)        # older requests waiting for a row command
    pbank = np.zeros(W, np.int64)
    prow = np.zeros(W, np.int64)
    wr_rec = T[T_CWL] + T[T_BL] + T[T_WR]
    t = 0
    last_issue = -1
    head = 0
    while True:
        while head < n and (issued[head] or kind[head] == K_BARRIER):
            issued[head] = True
            head += 1
        if head >= n:
            break
        # ---- postponed refresh (T_REFRESH == 2): precharge open banks as soon as each may
        # close, keep scheduling everything else, REF once no bank is open; one pending slot ----
        ref_ready = INF
        if postponed:
            if ref_wait and t >= ref_drop:
                ref_wait = False
                ref_drop = INF
                cnt[C_REF_SKIP] += P
            if t >= ref_due:
                if ref_wait:
                    cnt[C_REF_SKIP] += P
                ref_wait = True
                if T[T_REF0] > 0:
                    ref_drop = ref_due + T[T_REF0]
                ref_due += refi
            if ref_wait:
                best = INF
                bb = -1
                for i in range(nb):
                    if open_row[i] >= 0:
                        bi = i % B
                        tp = max(row_free, _pre_ready(qa, qs, qb, qbid, qbmax, qsmax, S_BANK, i, bi, P, nbpp, T, wr_rec))
                        if tp < best:
                            best = tp
                            bb = i
                if bb < 0:
                    # every bank closed: REF right behind the last PRE (DRAMSim2's command
                    # queue times a REF against nothing, not even tRP), then no ACT for nRFC
                    tr = max(t, row_free)
                    cnt[C_REF] += P
                    refs_idle += 1
                    if refs_idle >= STALL_REFRESHES:
                        cnt[C_CYCLES] = -1
                        return cnt
                    row_free, col_free = _row_issue(tr, 1, col_free, one_bus)
                    ref_block = tr + T[T_RFC]
                    last_issue = max(last_issue, tr)
                    ref_wait = False
                    ref_drop = INF
                    t = tr
                    continue
                if best <= t:
                    _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_PRE, S_BANK, bb, bb % B, P, nbpp, t)
                    open_row[bb] = -1
                    row_free, col_free = _row_issue(t, 1, col_free, one_bus)
                    cnt[C_PRE] += 1
                    last_issue = max(last_issue, t)
                    continue
                ref_ready = best
        # ---- refresh (priority: blocks every other command) ----
        if not postponed and t >= ref_due:
            tr = t
            need_pre = False
            for i in range(nb):
                if open_row[i] >= 0:
                    need_pre = True
                    break
            if need_pre:
                tp = max(tr, row_free)
                tp = max(tp, _pre_ready(qa, qs, qb, qbid, qbmax, qsmax, S_AB, 0, 0, P, nbpp, T, wr_rec))
                _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_PRE, S_AB, 0, 0, P, nbpp, tp)
                for i in range(nb):
                    open_row[i] = -1
                row_free, col_free = _row_issue(tp, 1, col_free, one_bus)
                cnt[C_PRE_AB] += 1
                last_issue = max(last_issue, tp)
                tr = tp + T[T_RP]
            tr = max(tr, row_free)
            tr = max(tr, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_ACT, S_AB, 0, 0, P, nbpp) + T[T_RC])
            cnt[C_REF] += P
            refs_idle += 1
            if refs_idle >= STALL_REFRESHES:
                cnt[C_CYCLES] = -1
                return cnt
            row_free, col_free = _row_issue(tr, 1, col_free, one_bus)
            ref_block = tr + T[T_RFC]
            last_issue = max(last_issue, tr)
            ref_due += refi
            t = tr
            continue
        # ---- pass 1: the window ----
        nw = 0
        nh = 0
        barrier = False
        tag0 = False                 # tagged barriers: the head request is tagged
        t_arr = INF                  # next arrival (one-per-cycle intake)
        row_ready = False            # an eligible row command in the window is ready now
        epoch += 1                   # the memo of the window's commands (per bank) starts over
        j = head
        while j < n and nw < W:
            if issued[j]:
                j += 1
                continue
            k = kind[j]
            if k == K_BARRIER and tagged:
                j += 1                   # the tag on the request before it is the barrier
                continue
            if intake and arrive[j] > t:
                t_arr = arrive[j]
                break
            if tagged:
                # column: the head, or no tagged request up to and including this one (a tagged
                # request issues only at the head); row: the head, or untagged (the first tagged
                # request after the head ends the window)
                if nw == 0:
                    tag0 = tag[j]
                    col_ok = True
                    row_ok = True
                else:
                    col_ok = (not tag0) and (not tag[j])
                    row_ok = not tag[j]
            else:
                col_ok = not barrier
                row_ok = True
            if k == K_BARRIER:
                barrier = True
                wi[nw] = j
                welig[nw] = False
                wrdy[nw] = INF
                wcmd[nw] = -1
                nw += 1
                j += 1
                continue
            b = bank[j]
            bid = b % B
            scope = _scope_of(k)
            memo = 0 <= b < nb
            if memo and mep[b] == epoch and mk[b] == k and mrow[b] == row[j]:
                # a command this window already timed for the same bank and row: nothing has
                # changed since, so the same status and ready time
                c = mc[b]
                rdy = mrdy[b]
            else:
                if scope != S_NONE:
                    c = _row_status(open_row, scope, b, bid, row[j], P, nbpp, B)
                else:
                    c = CMD_FINAL
                if c == CMD_FINAL:
                    rdy = col_free
                    if k == K_MAC_AB:
                        rdy = max(rdy, last_mac_ab + T[T_MACGAP])
                        rdy = max(rdy, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_ACT, S_AB, b, bid, P, nbpp) + T[T_RCDRD])
                        rdy = max(rdy, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_WR, S_AB, b, bid, P, nbpp)
                                  + T[T_CWL] + T[T_BL] + T[T_WTRL])
                    elif k == K_MAC_HB:
                        rdy = max(rdy, last_mac_ab + T[T_MACGAP])
                        rdy = max(rdy, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_ACT, S_HB, b, bid, P, nbpp) + T[T_RCDRD])
                        rdy = max(rdy, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_WR, S_AB, b, bid, P, nbpp)
                                  + T[T_CWL] + T[T_BL] + T[T_WTRL])
                    elif k == K_MAC_SB:
                        rdy = max(rdy, last_mac_sb + T[T_MACGAP])
                        rdy = max(rdy, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_ACT, S_SB, b, bid, P, nbpp) + T[T_RCDRD])
                    elif k == K_MAC_PB:
                        loc = b % nbpp
                        r_ = loc // (G * B)
                        g_ = (loc // B) % G
                        # the buffer-die unit takes a burst per T_UNIT cycles (its lanes and clock)
                        rdy = max(rdy, mpb_stream + max(T[T_BL], T[T_UNIT]))
                        rdy = max(rdy, mpb_rank[r_] + T[T_CCDS])
                        rdy = max(rdy, mpb_bg[r_ * G + g_] + T[T_CCDL])
                        rdy = max(rdy, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_ACT, S_PB, b, bid, P, nbpp) + T[T_RCDRD])
                    else:
                        p_ = b // nbpp
                        pr = b // (G * B)
                        pg = b // B
                        rdy = max(rdy, dp_pch[p_] + T[T_BL])
                        rdy = max(rdy, dp_rank[pr] + T[T_CCDS])
                        rdy = max(rdy, dp_bg[pg] + T[T_CCDL])
                        if k == K_RD:
                            rdy = max(rdy, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_ACT, S_BANK, b, bid, P, nbpp) + T[T_RCDRD])
                            rdy = max(rdy, last_wr_p[p_] + T[T_CWL] + T[T_BL] + T[T_WTRL])
                        elif k == K_WR or k == K_WR_AB or k == K_WR_HB:
                            sc = S_BANK if k == K_WR else (S_AB if k == K_WR_AB else S_HB)
                            rdy = max(rdy, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_ACT, sc, b, bid, P, nbpp) + T[T_RCDWR])
                            rdy = max(rdy, last_rd_p[p_] + T[T_RTW])
                            if k != K_WR:
                                rdy = max(rdy, last_mac_ab + T[T_RTW])
                elif c == CMD_ACT:
                    rdy = max(row_free, ref_block)
                    rdy = max(rdy, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_PRE, scope, b, bid, P, nbpp) + T[T_RP])
                    rdy = max(rdy, _q(qa, qs, qb, qbid, qbmax, qsmax, Q_ACT, scope, b, bid, P, nbpp) + T[T_RC])
                    if T[T_GANG] > 0 and _gangs(scope, G, B) > 0:
                        # the next gang waits tFAW after the last one (not after the plain ACTs
                        # younger requests keep issuing: waiting for a window free of them could
                        # starve the gang)
                        rdy = max(rdy, gang_last + T[T_FAW])
                    if scope == S_BANK:
                        pr = b // (G * B)
                        pg = b // B
                        rdy = max(rdy, act_rank[pr] + T[T_RRDS])
                        rdy = max(rdy, act_bg[pg] + T[T_RRDL])
                        if T[T_FAW] > 0:
                            rdy = max(rdy, faw[pr, faw_pos[pr]] + T[T_FAW])
                else:
                    rdy = row_free
                    rdy = max(rdy, _pre_ready(qa, qs, qb, qbid, qbmax, qsmax, scope, b, bid, P, nbpp, T, wr_rec))
                if memo:
                    mep[b] = epoch
                    mk[b] = k
                    mrow[b] = row[j]
                    mc[b] = c
                    mrdy[b] = rdy
            if c == CMD_FINAL:
                # data-path commands touch no row; a hit like the last one adds nothing
                if scope != S_NONE and not (nh > 0 and hitscope[nh - 1] == scope
                                            and (hitkeys[nh - 1] == b or scope == S_AB)):
                    hitkeys[nh] = b
                    hitscope[nh] = scope
                    nh += 1
                welig[nw] = col_ok
            else:
                welig[nw] = row_ok
            wi[nw] = j
            wcmd[nw] = c
            wrdy[nw] = rdy
            nw += 1
            j += 1
            if welig[nw - 1] and rdy <= t:
                if c != CMD_FINAL:
                    row_ready = True
                elif not row_ready:
                    # the oldest ready column command, and no row command before it is ready:
                    # it is the pick whatever the rest of the window holds
                    break
            if tagged and nw > 1 and tag[j - 1]:
                break
        # ---- pass 2: pick ----
        pick = -1
        tnext = INF
        # the oldest request waiting to close or open the rows of several banks: no younger
        # request opens one of them meanwhile (it would undo the precharge the oldest needs)
        hscope = S_NONE
        hbank = 0
        if nw > 0 and (wcmd[0] == CMD_ACT or wcmd[0] == CMD_PRE):
            hs = _scope_of(kind[wi[0]])
            if hs != S_BANK:
                hscope = hs
                hbank = bank[wi[0]]
        if col_first:
            for w in range(nw):
                if welig[w] and wcmd[w] == CMD_FINAL and wrdy[w] <= t:
                    pick = w
                    break
        npend = 0
        for w in range(nw):
            if pick >= 0:
                break
            cw = wcmd[w]
            if welig[w]:
                blocked = False
                if w > 0 and cw != CMD_FINAL:
                    bw = bank[wi[w]]
                    sw = _scope_of(kind[wi[w]])
                    for h in range(nh):
                        # a row command closing or opening a bank that another request hits
                        if _overlap(sw, bw, hitscope[h], hitkeys[h], P, nbpp, B):
                            blocked = True
                            break
                    if (not blocked and hscope != S_NONE and cw == CMD_ACT
                            and (sw != S_BANK or _covers(hscope, hbank, hbank % B, bw, P, nbpp, B))):
                        blocked = True
                    # rows open in request order: an older request waiting to open another row
                    # of one of these banks goes first
                    h = 0
                    while not blocked and h < npend:
                        blocked = prow[h] != row[wi[w]] and _overlap(sw, bw, pscope[h], pbank[h], P, nbpp, B)
                        h += 1
                if not blocked:
                    if wrdy[w] <= t:
                        pick = w
                        break
                    if wrdy[w] < tnext:
                        tnext = wrdy[w]
            if cw == CMD_ACT or cw == CMD_PRE:
                ps = _scope_of(kind[wi[w]])
                # one like the last adds nothing to the hold-backs
                if not (npend > 0 and pscope[npend - 1] == ps and pbank[npend - 1] == bank[wi[w]]
                        and prow[npend - 1] == row[wi[w]]):
                    pscope[npend] = ps
                    pbank[npend] = bank[wi[w]]
                    prow[npend] = row[wi[w]]
                    npend += 1
        if pick < 0 and eager:
            # nothing to issue now: precharge an open bank that no request before the first
            # barrier of the window needs, as soon as it may close
            best = INF
            bb = -1
            for i in range(nb):
                if open_row[i] < 0:
                    continue
                need = False
                for w in range(nw):
                    jj = wi[w]
                    kk = kind[jj]
                    if kk == K_BARRIER:
                        break
                    sc = _scope_of(kk)
                    if sc != S_NONE and row[jj] == open_row[i] and _covers(sc, bank[jj], bank[jj] % B, i, P, nbpp, B):
                        need = True
                        break
                    if tagged and tag[jj]:
                        break
                if need:
                    continue
                bi = i % B
                tp = max(row_free, _pre_ready(qa, qs, qb, qbid, qbmax, qsmax, S_BANK, i, bi, P, nbpp, T, wr_rec))
                if tp < best:
                    best = tp
                    bb = i
            if bb >= 0:
                if best <= t:
                    _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_PRE, S_BANK, bb, bb % B, P, nbpp, t)
                    open_row[bb] = -1
                    row_free, col_free = _row_issue(t, 1, col_free, one_bus)
                    cnt[C_PRE] += 1
                    last_issue = max(last_issue, t)
                    continue
                tnext = min(tnext, best)
        if pick < 0:
            tnext = min(tnext, ref_ready, t_arr)
            if tnext < INF:
                t = t + 1 if tick_mode else min(tnext, ref_due, ref_drop)
                continue
            # only held-back row commands are left: release the earliest one
            best = INF
            for w in range(nw):
                if welig[w] and wrdy[w] < best:
                    best = wrdy[w]
                    pick = w
            if pick < 0:
                break
            if best > t:
                t = t + 1 if tick_mode else min(best, ref_due, ref_ready, ref_drop)
                continue
        # ---- issue ----
        j = wi[pick]
        k = kind[j]
        c = wcmd[pick]
        b = bank[j]
        bid = b % B
        scope = _scope_of(k)
        last_issue = max(last_issue, t)
        if c == CMD_ACT:
            te = t
            ng = _gangs(scope, G, B) if T[T_GANG] > 0 else 0
            if ng > 0:
                te = t + (ng - 1) * T[T_FAW]
                gang_last = te
                for pr in range(P * R):          # the last gang fills each rank's window
                    for i in range(4):
                        faw[pr, i] = te
            _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_ACT, scope, b, bid, P, nbpp, te)
            _set_rows(open_row, scope, b, bid, row[j], P, nbpp, B)
            row_free, col_free = _row_issue(t, T[T_ACTCK], col_free, one_bus)
            if scope == S_AB:
                cnt[C_ACT_AB] += 1
                cnt[C_BANK_ACTS] += nb
            elif scope == S_SB:
                cnt[C_ACT_SB] += 1
                cnt[C_BANK_ACTS] += P * R * G
            elif scope == S_HB:
                cnt[C_ACT_HB] += 1
                cnt[C_BANK_ACTS] += nb // 2
            elif scope == S_PB:
                cnt[C_ACT_PB] += 1
                cnt[C_BANK_ACTS] += P
            else:
                cnt[C_ACT] += 1
                cnt[C_BANK_ACTS] += 1
                pr = b // (G * B)
                act_rank[pr] = t
                act_bg[b // B] = t
                faw[pr, faw_pos[pr]] = t
                faw_pos[pr] = (faw_pos[pr] + 1) % 4
        elif c == CMD_PRE:
            _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_PRE, scope, b, bid, P, nbpp, t)
            _set_rows(open_row, scope, b, bid, -1, P, nbpp, B)
            row_free, col_free = _row_issue(t, 1, col_free, one_bus)
            if scope == S_AB:
                cnt[C_PRE_AB] += 1
            elif scope == S_SB:
                cnt[C_PRE_SB] += 1
            elif scope == S_HB:
                cnt[C_PRE_HB] += 1
            elif scope == S_PB:
                cnt[C_PRE_PB] += 1
            else:
                cnt[C_PRE] += 1
        else:
            issued[j] = True
            refs_idle = 0
            col_free = t + 1
            if one_bus:
                row_free = max(row_free, t + 1)
            if data_end:
                if k == K_WR or k == K_WR_AB or k == K_WR_HB:
                    e = t + T[T_CWL] + T[T_BL]            # write data from CWL on, nBL long
                elif k == K_DATA:
                    e = t
                else:
                    e = t + CMD_CK + T[T_CL] + T[T_BL]    # command transfer, read latency, burst
                end_t = max(end_t, e)
            if k == K_MAC_AB:
                last_mac_ab = t
                _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_RD, S_AB, b, bid, P, nbpp, t)
                cnt[C_MAC_AB] += 1
            elif k == K_MAC_HB:
                last_mac_ab = t
                _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_RD, S_HB, b, bid, P, nbpp, t)
                cnt[C_MAC_HB] += 1
            elif k == K_MAC_SB:
                last_mac_sb = t
                _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_RD, S_SB, b, bid, P, nbpp, t)
                cnt[C_MAC_SB] += 1
            elif k == K_MAC_PB:
                loc = b % nbpp
                r_ = loc // (G * B)
                g_ = (loc // B) % G
                mpb_stream = t
                mpb_rank[r_] = t
                mpb_bg[r_ * G + g_] = t
                _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_RD, S_PB, b, bid, P, nbpp, t)
                cnt[C_MAC_PB] += 1
            else:
                p_ = b // nbpp
                dp_pch[p_] = t
                dp_rank[b // (G * B)] = t
                dp_bg[b // B] = t
                if k == K_RD:
                    _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_RD, S_BANK, b, bid, P, nbpp, t)
                    last_rd_p[p_] = t
                    cnt[C_RD] += 1
                elif k == K_WR:
                    _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_WR, S_BANK, b, bid, P, nbpp, t)
                    last_wr_p[p_] = t
                    cnt[C_WR] += 1
                elif k == K_WR_AB or k == K_WR_HB:
                    _upd(qa, qs, qb, qbid, qbmax, qsmax, Q_WR, S_AB if k == K_WR_AB else S_HB, b, bid,
                         P, nbpp, t)
                    for p in range(P):
                        last_wr_p[p] = t
                    if k == K_WR_AB:
                        cnt[C_WR_AB] += 1
                    else:
                        cnt[C_WR_HB] += 1
                        if sub[j] == 1:
                            cnt[C_WR_HB_DQ] += 1
                else:
                    s = sub[j]
                    if s < 0 or s > 5:
                        s = 5
                    cnt[C_D0 + s] += 1
    cnt[C_CYCLES] = max(last_issue, end_t) + 1
    return cnt


def counters_dict(cnt) -> dict:
    return {name: int(cnt[i]) for i, name in enumerate(COUNTER_NAMES)}
