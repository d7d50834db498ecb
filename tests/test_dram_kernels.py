"""Kernels vs naive Python twins on small random inputs: the controller (event-skipping numba
kernel vs a tick-by-tick Python model over a tree of nodes), the address decoder, and the
transfer engine (row-visit aggregation vs burst by burst)."""
import numpy as np
from hypothesis import example, given, settings, strategies as st

from archsim.mem.dram import kernel as K
from archsim.mem.dram.mapping import build_mapping
from archsim.mem.dram.presets import load_preset
from archsim.mem.dram.sim import controller_rules, static_arrays

ACT, PRE, PREA, RD, WR, REF = K.ACT, K.PRE, K.PREA, K.RD, K.WR, K.REF


# ------------------------------------------------------------------ naive controller
class NaiveDRAM:
    """Tree of nodes keyed by their id path; constraints applied as the standard describes."""

    def __init__(self, preset, C):
        self.p = preset
        self.sizes = list(preset.tables.level_sizes)
        self.L = len(self.sizes)
        self.by = {}
        for lv, pcmd, f, lat, win, sib in preset.tables.entries:
            self.by.setdefault((lv, pcmd), []).append((f, lat, win, sib))
        self.ready, self.hist = {}, {}
        self.C = C

    def ids(self, b):
        out = []
        for lv in range(self.L - 1, 0, -1):
            out.append(b % self.sizes[lv]); b //= self.sizes[lv]
        return tuple(reversed(out))

    def nodes_under(self, c, path, lv):
        """All level-lv nodes whose id path starts with ``path``."""
        res = [path]
        for l2 in range(len(path) + 1, lv + 1):
            res = [r + (i,) for r in res for i in range(self.sizes[l2])]
        return [(c, r) for r in res]

    def ready_at(self, cmd, c, path):
        """Max over the addressed path, and over every node below a partial path."""
        r = -1
        for lv in range(self.L):
            nodes = [(c, path[:lv])] if lv <= len(path) else self.nodes_under(c, path, lv)
            for n in nodes:
                r = max(r, self.ready.get((n, cmd), -1))
        return r

    def issue(self, cmd, c, path, t):
        for lv in range(self.L):
            if lv <= len(path):
                n = (c, path[:lv])
                self._target(n, lv, cmd, t)
                if lv >= 1:
                    for j in range(self.sizes[lv]):
                        if j != path[lv - 1]:
                            m = (c, path[:lv - 1] + (j,))
                            for f, lat, win, sib in self.by.get((lv, cmd), []):
                                if sib:
                                    self.ready[(m, f)] = max(self.ready.get((m, f), -1), t + lat)
            else:
                for n in self.nodes_under(c, path, lv):
                    self._target(n, lv, cmd, t)

    def _target(self, n, lv, cmd, t):
        cons = self.by.get((lv, cmd), [])
        if any(w > 1 for _, _, w, _ in cons):
            h = self.hist.setdefault((n, cmd), [-1] * 4)
            h.insert(0, t); h.pop()
        for f, lat, win, sib in cons:
            if sib:
                continue
            past = t if win == 1 else self.hist[(n, cmd)][win - 1]
            if past >= 0:
                self.ready[(n, f)] = max(self.ready.get((n, f), -1), past + lat)


def naive_controller(preset, C, ch, bank, row, isw, addr, cyc, refresh, Q=32, F=16, closed=False, rowhit=False,
                     cap=0):
    d = NaiveDRAM(preset, C)
    N = len(ch)
    NB = preset.banks_per_channel
    dual = preset.standard.dual_bus
    RL = preset.tables.read_latency
    tm = preset.tables.timing
    refi = tm["nREFI"]
    rscope_n = preset.level_sizes[1] if preset.standard.levels[1] != "BankGroup" else 1
    # LPDDR5: pending ACT-2 (request, deadline), WCK expiry, access whose CAS issued
    split, wck = preset.standard.split_act, preset.standard.wck_sync
    a2 = [None] * C; wexp = [0] * C; cas = [None] * C
    wck_rd, wck_wr = tm["nCL"] + tm["nBL"] + tm["nWCKPST"], tm["nCWL"] + tm["nBL"] + tm["nWCKPST"]
    openr = {}
    rq = [[] for _ in range(C)]; wq = [[] for _ in range(C)]; aq = [[] for _ in range(C)]; pq = [[] for _ in range(C)]
    wmode = [False] * C
    arrive = [-1] * N; depart = [-1] * N; first = [-1] * N
    cnt = {}
    # closed_cap (cap > 0): column accesses per (channel, bank) since the row last closed, and
    # whether the bank's row close is queued
    capn, capq = {}, set()

    def closes(c, b):
        capn[(c, b)] = 0
        capq.discard((c, b))

    t, i = 0, 0
    while True:
        for _ in range(1 if t == 0 else F):
            if i >= N or cyc[i] > t:
                break
            c = ch[i]
            if isw[i]:
                if any(addr[q] == addr[i] for q in wq[c]):
                    arrive[i] = depart[i] = t
                elif len(wq[c]) < Q:
                    wq[c].append(i); arrive[i] = t
                else:
                    break
            else:
                if any(addr[q] == addr[i] for q in wq[c]):
                    arrive[i] = t; depart[i] = t + 1
                elif len(rq[c]) < Q:
                    rq[c].append(i); arrive[i] = t
                else:
                    break
            i += 1
        if i >= N:
            return t, arrive, depart, first, cnt
        t += 1
        if refresh and t % refi == 0:
            for c in range(C):
                pq[c] += [("REF", s) for s in range(rscope_n)]
        for c in range(C):
            for b in range(NB if cap else 0):
                # closed_cap: a bank at the cap gets its row close queued once its PRE is ready
                if capn.get((c, b), 0) >= cap and (c, b) not in capq and d.ready_at(PRE, c, d.ids(b)) <= t:
                    pq[c].append(("PRE", b))
                    capq.add((c, b))
            for slot in range(2 if dual else 1):
                col_ok = (not dual) or slot == 0
                row_ok = (not dual) or slot == 1
                sel = None
                forced = False
                opening = [a2[c][0]] if a2[c] else []       # the request whose ACT-2 is pending
                if cas[c]:
                    kind, q, cm = cas[c]
                    cas[c] = None
                    sel = (kind, {"A": aq[c], "R": rq[c], "W": wq[c]}[kind].index(q), cm)
                    forced = True
                elif a2[c] and a2[c][1] <= t:
                    aq[c].append(a2[c][0]); a2[c] = None
                    cnt["ACT2"] = cnt.get("ACT2", 0) + 1
                    continue

                def cmd_of(q):
                    o = openr.get((c, bank[q]), -1)
                    return ACT if o < 0 else ((WR if isw[q] else RD) if o == row[q] else PRE)

                if col_ok and sel is None:
                    best = None
                    for k, q in enumerate(aq[c]):
                        cm = WR if isw[q] else RD
                        if d.ready_at(cm, c, d.ids(bank[q])) <= t and (best is None or arrive[q] < arrive[aq[c][best]]):
                            best = k
                    if best is not None:
                        sel = ("A", best, WR if isw[aq[c][best]] else RD)
                if sel is None and pq[c] and pq[c][0][0] == "PRE":
                    b = pq[c][0][1]
                    blocked = any(bank[q] == b for q in aq[c] + opening)
                    if row_ok and not blocked and d.ready_at(PRE, c, d.ids(b)) <= t:
                        sel = ("P", 0, PRE)
                elif sel is None and pq[c]:
                    s = pq[c][0][1]
                    per = NB // rscope_n
                    banks = range(s * per, (s + 1) * per)
                    cm = PREA if any(openr.get((c, b), -1) >= 0 for b in banks) else REF
                    # (an ACT-2 pending in the refresh's rank holds it back: it would close or
                    # refresh the activating bank)
                    blocked = (cm == PREA and any(bank[q] in banks for q in aq[c])) \
                        or any(bank[q] in banks for q in opening)
                    path = (s,) if preset.standard.levels[1] != "BankGroup" else ()
                    if row_ok and not blocked and d.ready_at(cm, c, path) <= t:
                        sel = ("P", 0, cm)
                if sel is None and not pq[c]:
                    if not wmode[c]:
                        if len(wq[c]) > 0.8 * Q or not rq[c]:
                            wmode[c] = True
                    elif len(wq[c]) < 0.2 * Q and rq[c]:
                        wmode[c] = False
                    buf = wq[c] if wmode[c] else rq[c]
                    for k, q in enumerate(buf):
                        cm = cmd_of(q)
                        colc = cm in (RD, WR)
                        if (colc and not col_ok) or (not colc and not row_ok):
                            continue
                        if cm == PRE and any(bank[x] == bank[q] for x in aq[c] + opening):
                            continue
                        if cm == ACT and opening:
                            continue
                        if rowhit and cm == PRE and any(bank[x] == bank[q] and cmd_of(x) in (RD, WR)
                                                        and arrive[x] <= arrive[q] for x in buf):
                            continue
                        if d.ready_at(cm, c, d.ids(bank[q])) <= t:
                            sel = ("W" if wmode[c] else "R", k, cm)
                            break
                if sel is None:
                    if a2[c]:
                        aq[c].append(a2[c][0]); a2[c] = None
                        cnt["ACT2"] = cnt.get("ACT2", 0) + 1
                    continue
                kind, k, cm = sel
                if wck and not forced and kind != "P" and cm in (RD, WR) and t >= wexp[c]:
                    if a2[c] and a2[c][1] <= t + 1:
                        aq[c].append(a2[c][0]); a2[c] = None
                        cnt["ACT2"] = cnt.get("ACT2", 0) + 1
                    else:
                        cas[c] = (kind, {"A": aq[c], "R": rq[c], "W": wq[c]}[kind][k], cm)
                        cnt["CAS"] = cnt.get("CAS", 0) + 1
                    continue
                cnt[cm] = cnt.get(cm, 0) + 1
                if kind == "P" and pq[c][0][0] == "PRE":
                    b = pq[c].pop(0)[1]
                    d.issue(PRE, c, d.ids(b), t)
                    openr[(c, b)] = -1
                    closes(c, b)
                    cnt["CAPPRE"] = cnt.get("CAPPRE", 0) + 1
                    continue
                if kind == "P":
                    s = pq[c][0][1]
                    path = (s,) if preset.standard.levels[1] != "BankGroup" else ()
                    d.issue(cm, c, path, t)
                    per = NB // rscope_n
                    if cm == PREA:
                        for b in range(s * per, (s + 1) * per):
                            openr[(c, b)] = -1
                            closes(c, b)
                    else:
                        pq[c].pop(0)
                    continue
                buf = {"A": aq[c], "R": rq[c], "W": wq[c]}[kind]
                q = buf[k]
                if first[q] < 0:
                    o = openr.get((c, bank[q]), -1)
                    first[q] = 0 if o == row[q] else (2 if o >= 0 else 1)
                iss = cm
                if cap and cm in (RD, WR) and not forced and capn.get((c, bank[q]), 0) >= cap \
                        and d.ready_at(K.WRA if cm == WR else K.RDA, c, d.ids(bank[q])) <= t:
                    iss = K.WRA if cm == WR else K.RDA
                    cnt[PRE] = cnt.get(PRE, 0) + 1
                if cap and iss in (PRE, K.RDA, K.WRA):
                    closes(c, bank[q])
                elif cap and iss in (RD, WR):
                    capn[(c, bank[q])] = capn.get((c, bank[q]), 0) + 1
                if closed and cm in (RD, WR) and not any(
                        x != q and bank[x] == bank[q] and row[x] == row[q] for x in rq[c] + wq[c]):
                    # closed page: auto-precharge unless another queued request hits the row
                    iss = K.WRA if cm == WR else K.RDA
                    cnt[PRE] = cnt.get(PRE, 0) + 1
                d.issue(iss, c, d.ids(bank[q]), t)
                if cm == ACT:
                    openr[(c, bank[q])] = row[q]
                    buf.pop(k)
                    if split:
                        a2[c] = (q, t + tm["nAAD"])
                    else:
                        aq[c].append(q)
                elif cm == PRE:
                    openr[(c, bank[q])] = -1
                else:
                    if iss != cm:
                        openr[(c, bank[q])] = -1
                    depart[q] = t + (0 if isw[q] else RL)
                    buf.pop(k)
                    if wck:
                        wexp[c] = max(wexp[c], t + (wck_wr if isw[q] else wck_rd))


def kernel_controller(preset, C, ch, bank, row, isw, addr, cyc, refresh, Q=32, closed=False, wck_always_on=False,
                      rowhit=False, cap=0):
    L, lsize, ncount, NB, bnode, haswin, hassib, rscope = static_arrays(preset)
    loff = np.zeros(L, dtype=np.int64)
    for lv in range(1, L):
        loff[lv] = loff[lv - 1] + C * ncount[lv - 1]
    t = preset.tables
    n = len(ch)
    arrive = np.full(n, -1, np.int64); depart = np.full(n, -1, np.int64); first = np.full(n, -1, np.int64)
    cc = np.zeros((C, K.N_CC), np.int64)
    ticks = K.run_controller(ch, bank, row, isw, addr, cyc, L, lsize, ncount, loff, bnode, rscope,
                             t.c_start, t.c_fol, t.c_lat, t.c_win, t.c_sib, haswin, hassib,
                             preset.standard.dual_bus, False, t.read_latency, 1 if refresh else 0,
                             t.timing["nREFI"], t.timing["nREFIpb"], Q, Q, 0.8, 0.2, 16, closed,
                             C, NB, arrive, depart, cc, first, *controller_rules(preset, wck_always_on), rowhit,
                             cap)
    return ticks, arrive, depart, first, cc


@settings(max_examples=12, deadline=None)
@given(st.data())
def test_controller_matches_naive_twin(data):
    name = data.draw(st.sampled_from(["DDR4-2400", "HBM2-2000", "LPDDR5-6400", "GDDR6-7000", "DDR4-2400-x16:2",
                                      "DDR4-3200AA:2", "LPDDR5-6400:2"]))
    name, _, ranks = name.partition(":")
    p = load_preset(name, ranks=int(ranks) if ranks else None)
    C = data.draw(st.sampled_from([1, 2]))
    n = data.draw(st.integers(5, 50))
    NB = p.banks_per_channel
    ch = np.array(data.draw(st.lists(st.integers(0, C - 1), min_size=n, max_size=n)), np.int64)
    bank = np.array(data.draw(st.lists(st.integers(0, min(NB, 6) - 1), min_size=n, max_size=n)), np.int64)
    row = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), np.int64)
    isw = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.bool_)
    col = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), np.int64)
    addr = ((row * NB + bank) * 8 + col) * C + ch
    gaps = data.draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    cyc = np.cumsum(np.array(gaps, np.int64)) * data.draw(st.sampled_from([0, 1, 20]))
    refresh = data.draw(st.booleans())
    t1, a1, d1, f1, cc = kernel_controller(p, C, ch, bank, row, isw, addr, cyc, refresh)
    t2, a2, d2, f2, cnt = naive_controller(p, C, list(ch), list(bank), list(row), list(isw), list(addr), list(cyc), refresh)
    assert t1 == t2
    assert list(a1) == a2
    assert list(d1) == d2
    assert list(f1) == f2
    tot = cc.sum(axis=0)
    assert tot[K.CC_ACT] == cnt.get(ACT, 0) and tot[K.CC_RD] == cnt.get(RD, 0) and tot[K.CC_WR] == cnt.get(WR, 0)
    assert tot[K.CC_REF] == cnt.get(REF, 0) and tot[K.CC_PRE] == cnt.get(PRE, 0)
    assert tot[K.CC_ACT2] == cnt.get("ACT2", 0) and tot[K.CC_CAS] == cnt.get("CAS", 0)


def test_lpddr5_split_activation_and_wck_sync_by_hand():
    """LPDDR5-6400 (tRCD 15, tRRD_S 4, CL 17, BL 2, tWCKPST 1), two reads at t = 0 to banks 0 and
    4 (bank groups 0 and 1) of channel 0; a read at cycle 100 on channel 1 keeps the run going.
    Tick 1: ACT-1 of A. Tick 2: nothing else can issue (B's ACT-1 waits for A's ACT-2, and for
    tRRD_S until 5 anyway): A's ACT-2. Tick 5: ACT-1 of B, tick 6 its ACT-2. Tick 16 (1 + tRCD):
    A's read, but WCK is stopped: CAS at 16, the read at 17 (data at 17 + CL + BL = 36); WCK runs
    until 17 + 17 + 2 + 1 = 37. Tick 20 (5 + tRCD): B's read with WCK running, no CAS (data at 39).
    With WCK always on A's read goes at 16 (35)."""
    p = load_preset("LPDDR5-6400")
    ch, bank, row = np.array([0, 0, 1]), np.array([0, 4, 0]), np.zeros(3, np.int64)
    isw, addr, cyc = np.zeros(3, np.bool_), np.array([0, 512, 1]), np.array([0, 0, 100])
    t, a, d, f, cc = kernel_controller(p, 2, ch, bank, row, isw, addr, cyc, False)
    assert t == 100 and list(a[:2]) == [0, 1] and list(d[:2]) == [36, 39]
    assert cc[0, [K.CC_ACT, K.CC_ACT2, K.CC_CAS, K.CC_RD]].tolist() == [2, 2, 1, 2]
    t, a, d, f, cc = kernel_controller(p, 2, ch, bank, row, isw, addr, cyc, False, wck_always_on=True)
    assert list(d[:2]) == [35, 39] and cc[0, K.CC_CAS] == 0 and cc[0, K.CC_ACT2] == 2
    # the DDR4 controller has neither rule
    t, a, d, f, cc = kernel_controller(load_preset("DDR4-2400"), 2, ch, bank, row, isw, addr, cyc, False)
    assert cc[0, K.CC_ACT2] == 0 and cc[0, K.CC_CAS] == 0


def test_lpddr5_no_activation_while_an_act2_is_pending():
    """200 reads and writes over four bank groups and three rows, queued at once, refresh on:
    the same timeline as the tick-by-tick twin; one ACT-2 at a time, so at the end the ACT-1s
    lead the ACT-2s by at most the one still pending; the write-drain switches let WCK stop, so
    some accesses pay a CAS."""
    p = load_preset("LPDDR5-6400")
    rng = np.random.default_rng(3)
    n = 200
    ch = np.zeros(n, np.int64)
    bank = rng.choice([0, 4, 8, 12], n).astype(np.int64)
    row = rng.integers(0, 3, n).astype(np.int64)
    isw = rng.random(n) < 0.2
    addr = (row * 16 + bank) * 64 + rng.integers(0, 64, n)
    cyc = np.zeros(n, np.int64)
    t, a, d, f, cc = kernel_controller(p, 1, ch, bank, row, isw, addr, cyc, True)
    t2, a2, d2, f2, cnt = naive_controller(p, 1, list(ch), list(bank), list(row), list(isw), list(addr), list(cyc), True)
    assert (t, list(d)) == (t2, d2)
    assert 0 < cc[0, K.CC_ACT] - cc[0, K.CC_ACT2] <= 1 and cc[0, K.CC_CAS] == cnt["CAS"] > 0


@settings(max_examples=10, deadline=None)
@given(st.data())
def test_controller_matches_naive_twin_queue_depths_and_closed_page(data):
    """The queue scan evaluates one request per (bank, hits open row) class, found through bit
    masks over queue positions (several words beyond 64 entries); closed page auto-precharges
    unless another queued request hits the row. Both against the tick-by-tick twin."""
    name = data.draw(st.sampled_from(["DDR4-2400", "HBM2-2000", "LPDDR5-6400", "GDDR6-7000"]))
    p = load_preset(name)
    Q = data.draw(st.sampled_from([2, 5, 32, 70]))
    closed = data.draw(st.booleans())
    rowhit = data.draw(st.booleans())
    C = 1 if Q == 70 else data.draw(st.sampled_from([1, 2]))
    n = data.draw(st.integers(75, 110)) if Q == 70 else data.draw(st.integers(5, 50))
    NB = p.banks_per_channel
    nb = data.draw(st.sampled_from([1, 3, 6]))
    ch = np.array(data.draw(st.lists(st.integers(0, C - 1), min_size=n, max_size=n)), np.int64)
    bank = np.array(data.draw(st.lists(st.integers(0, min(NB, nb) - 1), min_size=n, max_size=n)), np.int64)
    row = np.array(data.draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)), np.int64)
    isw = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.bool_)
    col = np.array(data.draw(st.lists(st.integers(0, 7), min_size=n, max_size=n)), np.int64)
    addr = ((row * NB + bank) * 8 + col) * C + ch
    cyc = np.zeros(n, np.int64) if Q == 70 else \
        np.cumsum(np.array(data.draw(st.lists(st.integers(0, 40), min_size=n, max_size=n)), np.int64)) \
        * data.draw(st.sampled_from([0, 1, 20]))
    refresh = data.draw(st.booleans())
    t1, a1, d1, f1, cc = kernel_controller(p, C, ch, bank, row, isw, addr, cyc, refresh, Q=Q, closed=closed,
                                           rowhit=rowhit)
    t2, a2, d2, f2, cnt = naive_controller(p, C, list(ch), list(bank), list(row), list(isw), list(addr),
                                           list(cyc), refresh, Q=Q, closed=closed, rowhit=rowhit)
    assert (t1, list(a1), list(d1), list(f1)) == (t2, a2, d2, f2)
    tot = cc.sum(axis=0)
    assert tot[K.CC_ACT] == cnt.get(ACT, 0) and tot[K.CC_RD] == cnt.get(RD, 0) and tot[K.CC_WR] == cnt.get(WR, 0)
    assert tot[K.CC_REF] == cnt.get(REF, 0) and tot[K.CC_PRE] == cnt.get(PRE, 0)


@settings(max_examples=12, deadline=None)
@given(st.data())
def test_controller_matches_naive_twin_closed_cap(data):
    """Row policy closed_cap: per-bank column-access counts, the auto-precharge of the access
    after the cap, and row closes queued as maintenance (behind refreshes, blocked by activated
    requests of the bank, stale once a refresh closed the bank) against the tick-by-tick twin."""
    name = data.draw(st.sampled_from(["DDR4-2400", "HBM2-2000", "LPDDR5-6400", "GDDR6-7000", "DDR5-4800AN",
                                      "DDR4-2400:2"]))
    name, _, ranks = name.partition(":")
    p = load_preset(name, ranks=int(ranks) if ranks else None)
    Q = data.draw(st.sampled_from([2, 5, 32]))
    cap = data.draw(st.sampled_from([1, 2, 4]))
    C = data.draw(st.sampled_from([1, 2]))
    n = data.draw(st.integers(10, 60))
    NB = p.banks_per_channel
    nb = data.draw(st.sampled_from([1, 3, 6]))
    ch = np.array(data.draw(st.lists(st.integers(0, C - 1), min_size=n, max_size=n)), np.int64)
    bank = np.array(data.draw(st.lists(st.integers(0, min(NB, nb) - 1), min_size=n, max_size=n)), np.int64)
    row = np.array(data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.int64)
    isw = np.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), np.bool_)
    col = np.array(data.draw(st.lists(st.integers(0, 7), min_size=n, max_size=n)), np.int64)
    addr = ((row * NB + bank) * 8 + col) * C + ch
    cyc = np.cumsum(np.array(data.draw(st.lists(st.integers(0, 60), min_size=n, max_size=n)), np.int64)) \
        * data.draw(st.sampled_from([0, 1, 20]))
    refresh = data.draw(st.booleans())
    t1, a1, d1, f1, cc = kernel_controller(p, C, ch, bank, row, isw, addr, cyc, refresh, Q=Q, cap=cap)
    t2, a2, d2, f2, cnt = naive_controller(p, C, list(ch), list(bank), list(row), list(isw), list(addr),
                                           list(cyc), refresh, Q=Q, cap=cap)
    assert (t1, list(a1), list(d1), list(f1)) == (t2, a2, d2, f2)
    tot = cc.sum(axis=0)
    assert tot[K.CC_ACT] == cnt.get(ACT, 0) and tot[K.CC_PRE] == cnt.get(PRE, 0)
    assert tot[K.CC_REF] == cnt.get(REF, 0) and tot[K.CC_CAPPRE] == cnt.get("CAPPRE", 0)


def test_closed_page_active_request_whose_row_was_auto_precharged():
    """HBM2, 5-entry queues, closed page: a request in the active buffer can see its row closed
    by the auto-precharge of another request to that row (the check looks at the queues only);
    its own auto-precharge check then has to look for its row among requests that do not hit
    the (closed) bank. Fixed random example that needs this, against the twin."""
    p = load_preset("HBM2-2000")
    NB = p.banks_per_channel
    bank = np.array([1, 0, 0, 0, 1, 2, 2, 2, 1, 2, 1, 0, 0, 1, 0, 1, 2, 0, 2, 2, 0, 2, 2, 2, 0, 0, 2, 2, 0, 2], np.int64)
    row = np.array([3, 0, 1, 3, 1, 3, 0, 1, 3, 3, 2, 2, 3, 3, 3, 3, 2, 0, 3, 1, 1, 3, 3, 1, 2, 0, 0, 3, 1, 0], np.int64)
    isw = np.array([0, 1, 1, 0, 1, 0, 1, 0, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1], np.bool_)
    col = np.array([3, 0, 6, 5, 3, 1, 5, 4, 7, 2, 3, 2, 2, 4, 5, 4, 5, 0, 0, 4, 7, 2, 6, 1, 4, 0, 6, 4, 0, 2], np.int64)
    n = len(bank)
    ch = np.zeros(n, np.int64)
    addr = (row * NB + bank) * 8 + col
    cyc = np.zeros(n, np.int64)
    t1, a1, d1, f1, cc = kernel_controller(p, 1, ch, bank, row, isw, addr, cyc, False, Q=5, closed=True)
    t2, a2, d2, f2, cnt = naive_controller(p, 1, list(ch), list(bank), list(row), list(isw), list(addr),
                                           list(cyc), False, Q=5, closed=True)
    assert (t1, list(a1), list(d1), list(f1)) == (t2, a2, d2, f2)
    assert cc.sum(axis=0)[K.CC_PRE] == cnt.get(PRE, 0)


# ------------------------------------------------------------------ address decoder
def naive_decode(preset, name, C, a):
    tx = preset.tx_bytes
    L = len(preset.level_sizes)
    bits = lambda n: int(n).bit_length() - 1
    lb = [bits(s) for s in preset.level_sizes]
    cb, rb, ch_b = bits(preset.cols_per_row), bits(preset.rows), bits(C)
    x = a // tx
    take = lambda k: (x & ((1 << k) - 1), x >> k)
    ch, x = take(ch_b)
    lv = [0] * L
    if name == "RoBaRaCoCh":
        col, x = take(cb)
        for l in range(1, L):
            lv[l], x = take(lb[l])
        row, x = take(rb)
    elif name == "ChRaBaRoCo":
        col, x = take(cb)
        row, x = take(rb)
        for l in range(L - 1, 0, -1):
            lv[l], x = take(lb[l])
    else:  # MOP4CLXOR
        col, x = take(2)
        for l in range(1, L):
            lv[l], x = take(lb[l])
        hi, x = take(cb - 2)
        col += hi << 2
        row = x
        xi = 0
        for l in range(1, L):
            lv[l] ^= (col >> xi) & ((1 << lb[l]) - 1)
            xi += lb[l]
        row = (row ^ (col >> xi)) & ((1 << rb) - 1)
    b = 0
    for l in range(1, L):
        b = b * preset.level_sizes[l] + lv[l]
    return ch, b, row, col


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["HBM2-2000", "HBM3-6400", "DDR4-2400"]), st.sampled_from(["RoBaRaCoCh", "ChRaBaRoCo", "MOP4CLXOR"]),
       st.lists(st.integers(0, (1 << 31) - 1), min_size=1, max_size=20))
def test_decoder_matches_naive(name, mapping, addrs):
    p = load_preset(name)
    m = build_mapping(p, mapping, p.channels)
    a = np.array(addrs, np.int64)
    ch, b, r, c = m.decode(p, a)
    for k, x in enumerate(addrs):
        assert (ch[k], b[k], r[k], c[k]) == naive_decode(p, mapping, p.channels, x)


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(["HBM2-2000", "HBM3-6400", "DDR4-2400", "DDR5-4800", "GDDR6-14000"]),
       st.sampled_from(["RoBaRaCoCh", "ChRaBaRoCo", "RoCoBaRaCh", "MOP4CLXOR", "RoBaBgRaCoCh", "RoCoBaBgRaCh"]),
       st.sampled_from(["none", "bank", "channel", "both"]), st.sampled_from([None, 1, 2]),
       st.lists(st.integers(0, (1 << 31) - 1), min_size=1, max_size=20))
def test_trace_decoder_equals_the_general_one(name, mapping, xor, channels, addrs):
    """Trace replay decodes channel, bank and row with one shift and mask per field (bit-field
    schemes, power-of-two levels): the same as map_addresses on every scheme and XOR mode."""
    p = load_preset(name)
    C = channels or p.channels
    m = build_mapping(p, mapping, C, xor)
    a = np.array(addrs, np.int64)
    ch, b, r, c = m.decode(p, a)
    out = [np.empty(len(a), np.int64) for _ in range(3)]
    t = p.tables
    K.map_channel_bank_row(a, m.tx_bits, m.fkind, m.fbits, m.mode, m.xor_mode, t.n_levels, t.level_sizes,
                           m.row_bits, m.col_bits, *out)
    assert (list(out[0]), list(out[1]), list(out[2])) == (list(ch), list(b), list(r))


def test_read_latencies_are_the_completed_reads():
    rng = np.random.default_rng(3)
    n, ticks = 500, 700
    isw = rng.random(n) < 0.3
    arrive = np.where(rng.random(n) < 0.9, rng.integers(0, 600, n), -1).astype(np.int64)
    depart = np.where(rng.random(n) < 0.9, arrive + rng.integers(0, 300, n), -1).astype(np.int64)
    lat, tot = K.read_latencies(isw, arrive, depart, ticks)
    done = ~isw & (depart >= 0) & (depart <= ticks) & (arrive >= 0)
    assert list(lat) == list(depart[done] - arrive[done]) and tot == (depart[done] - arrive[done]).sum()


# ------------------------------------------------------------------ transfer engine
def _engine_run(preset, mapping, fidelity, transfers, refresh="all_bank"):
    from types import SimpleNamespace
    from archsim.config.dram import DramConfig
    from archsim.mem.interface import N_MEM_COUNTERS, build_memory, mem_transfer
    cfg = SimpleNamespace(model="dram", dram=DramConfig(preset=preset, mapping=mapping, fidelity=fidelity, refresh=refresh))
    m = build_memory(cfg, 1.0e9)
    s = m.fresh_state()
    cnt = np.zeros(N_MEM_COUNTERS, np.int64)
    out = [mem_transfer(m.kind, m.params, s, cnt, a, nb, w, t) for a, nb, w, t in transfers]
    return out, cnt


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["HBM2-2000", "HBM3-6400", "DDR4-2400", "DDR5-4800"]),
       st.sampled_from(["RoBaRaCoCh", "MOP4CLXOR", "RoCoBaRaCh"]),
       st.integers(1, 6), st.integers(1, 64), st.integers(0, 1 << 20), st.booleans())
# a row command of the second transfer on a tick of a column command of the first (one command bus)
@example(name="DDR4-2400", mapping="RoBaRaCoCh", ntr=2, kib=22, stride=128, writes=False)
# a PRE between two column commands of a run (DDR5: two-tick column commands on one bus)
@example(name="DDR5-4800", mapping="MOP4CLXOR", ntr=4, kib=17, stride=1023339, writes=False)
def test_row_visit_equals_burst_on_streams_and_strides(name, mapping, ntr, kib, stride, writes):
    t = 0
    tr = []
    for k in range(ntr):
        tr.append((k * (kib * 1024 + stride), kib * 1024, writes and k % 2 == 1, t))
        t += 500
    a, ca = _engine_run(name, mapping, "burst", tr)
    b, cb = _engine_run(name, mapping, "row_visit", tr)
    assert a == b
    assert (ca == cb).all()


def test_row_command_avoids_an_earlier_transfers_column_ticks():
    """DDR4 (one command bus), two 22 KiB reads 500 ns apart: the second transfer's first ACT
    (bank 12) is ready at DRAM tick 1882, where a RD of the first transfer's last run issues
    (1810, 1816, ..., 1888); a column command goes first on a tie, so the ACT issues at 1883 in
    both fidelities (burst-level timing used to check only the newest RD, 1888, and put both
    commands on tick 1882, one cycle earlier: [1590, 3056])."""
    tr = [(0, 22 * 1024, False, 0), (22 * 1024 + 128, 22 * 1024, False, 500)]
    for fid in ("burst", "row_visit"):
        out, cnt = _engine_run("DDR4-2400", "RoBaRaCoCh", fid, tr)
        assert [int(x) for x in out] == [1590, 3057]
        assert cnt[4:9].tolist() == [6, 0, 704, 0, 0]          # ACT, PRE, RD, WR, REF


def _engine_run_cfg(fidelity, transfers, **kw):
    from types import SimpleNamespace
    from archsim.config.dram import DramConfig
    from archsim.mem.interface import N_MEM_COUNTERS, build_memory, mem_transfer
    m = build_memory(SimpleNamespace(model="dram", dram=DramConfig(fidelity=fidelity, **kw)), 1.0e9)
    s = m.fresh_state()
    cnt = np.zeros(N_MEM_COUNTERS, np.int64)
    return [int(mem_transfer(m.kind, m.params, s, cnt, a, nb, w, t)) for a, nb, w, t in transfers], cnt


@settings(max_examples=15, deadline=None)
@given(st.sampled_from(["DDR4-2400", "DDR5-4800", "GDDR6-14000", "GDDR6-7000", "LPDDR5-6400", "HBM2-2000",
                        "HBM3-6400"]),
       st.sampled_from(["RoBaRaCoCh", "MOP4CLXOR", "RoCoBaRaCh", "ChRaBaRoCo"]),
       st.sampled_from([4, 8, 32]), st.sampled_from(["all_bank", "off"]), st.sampled_from(["none", "bank", "channel"]),
       st.lists(st.tuples(st.integers(0, (1 << 22) - 1), st.integers(1, 1 << 15), st.booleans(), st.integers(0, 300)),
                min_size=1, max_size=8))
# lookahead 4: a visit's run goes more than 4 bursts past the tick of another visit's ACT
@example(name="GDDR6-14000", mapping="RoBaRaCoCh", lookahead=4, refresh="all_bank", xor="none",
         reqs=[(62897792 >> 6, 16384, True, 0), (146341824 >> 6, 27337, False, 0)])
# an earlier transfer's burst issued after this run's first ticks admits one of the run's bursts
@example(name="HBM2-2000", mapping="RoBaRaCoCh", lookahead=32, refresh="off", xor="channel",
         reqs=[(7242304 >> 6, 128, False, 50), (7242432 >> 6, 128, False, 500), (7242560 >> 6, 128, False, 4735),
               (7242688 >> 6, 42639, False, 50), (7242816 >> 6, 128, True, 0), (7242944 >> 6, 37544, True, 500),
               (7243072 >> 6, 128, False, 0)])
def test_row_visit_equals_burst_on_overlapping_transfers(name, mapping, lookahead, refresh, xor, reqs):
    """Random transfers (64 B aligned, any size), issued before earlier ones complete."""
    tr, t = [], 0
    for blk, nb, w, dt in reqs:
        tr.append((blk * 64, nb, w, t))
        t += dt
    kw = dict(preset=name, mapping=mapping, lookahead=lookahead, refresh=refresh, xor=xor)
    a, ca = _engine_run_cfg("burst", tr, **kw)
    b, cb = _engine_run_cfg("row_visit", tr, **kw)
    assert a == b
    assert (ca == cb).all()


# ------------------------------------------------------------------ interleaved rounds (row_visit)
def _ring_runs(state, c=0):
    """The column-run ring of channel ``c``: (first issue index, first tick, period, commands,
    commands per round, offsets), oldest first."""
    from archsim.mem.dram import engine as E
    s = state[0]
    Q = int(s[E.H_Q])
    nv = int(s[int(s[E.O_VCNT]) + c])
    out = []
    for v in range(max(0, nv - Q), nv):
        r = int(s[E.O_RING]) + c * Q * E.RS + (v % Q) * E.RS
        p = int(s[r + 4])
        out.append((int(s[r]), int(s[r + 1]), int(s[r + 2]), int(s[r + 3]), p, [int(x) for x in s[r + 5:r + 5 + p]]))
    return out


def _engine_state(fidelity, transfers, **kw):
    from types import SimpleNamespace
    from archsim.config.dram import DramConfig
    from archsim.mem.interface import N_MEM_COUNTERS, build_memory, mem_transfer
    m = build_memory(SimpleNamespace(model="dram", dram=DramConfig(fidelity=fidelity, **kw)), 1.0e9)
    s = m.fresh_state()
    cnt = np.zeros(N_MEM_COUNTERS, np.int64)
    out = [int(mem_transfer(m.kind, m.params, s, cnt, a, nb, w, t)) for a, nb, w, t in transfers]
    return out, cnt, s


def test_pseudo_channel_rounds_by_hand():
    """HBM2-2000, one channel, RoBaRaCoCh, refresh off, a 2 KiB read: 64 bursts of 32 B, two
    visits of one row's 32 columns (A: pseudo-channel 0, B: pseudo-channel 1, bank 0).
    A: ACT at 0 (a two-tick command, received at 1), first RD at 1 + tRCDRD 14 = 15, then every
    tCCD_L = 4 (same bank): 15, 19, ..., 139. B's first burst (arrival 32) enters the 32-deep
    window when command 0 (A's RD at 15) has issued: ACT at 15, RD at 30, 34, ..., 154. The
    pseudo-channels do not constrain each other (one column bus: distinct ticks), so from 30 the
    stream is a round (B at +0, A at +1) every 4 ticks. The row-visit path records A's four lone
    RDs as a plain run and then one interleaved run of 27 rounds (A keeps its last burst for an
    ordinary step: 28 left - 1); the last data leave at 154 + CL 14 + tBL 2 = 170. Burst level
    gives the same ticks (its ring holds the newest 32 commands) and counters."""
    tr = [(0, 2048, False, 0)]
    kw = dict(preset="HBM2-2000", mapping="RoBaRaCoCh", channels=1, refresh="off")
    a, ca, sa = _engine_state("burst", tr, **kw)
    b, cb, sb = _engine_state("row_visit", tr, **kw)
    assert a == b == [170] and (ca == cb).all()
    ticks = sorted([15 + 4 * j for j in range(32)] + [30 + 4 * j for j in range(32)])
    assert [x[1] for x in _ring_runs(sa)] == ticks[-32:]
    assert _ring_runs(sb)[:2] == [(0, 15, 4, 4, 1, [0]), (4, 30, 4, 54, 2, [0, 1])]
    assert cb[4:8].tolist() == [2, 0, 64, 0]                              # ACT, PRE, RD, WR


def _uses_rounds(state):
    from archsim.mem.dram import engine as E
    s = state[0]
    C = int(s[E.H_C])
    return any(p > 1 for c in range(C) for *_, p, _o in _ring_runs(state, c))


@settings(max_examples=24, deadline=None)
@given(st.sampled_from(["HBM2-2000", "HBM3-6400", "DDR4-2400", "DDR5-4800"]),
       st.sampled_from(["RoBaRaCoCh", "RoCoBaRaCh", "MOP4CLXOR"]),
       st.integers(1, 4), st.sampled_from([16, 64, 256]), st.sampled_from([0, 0, 128, 4096, 1 << 20]),
       st.sampled_from([0, 0, 300, 5000]), st.sampled_from([8, 32]), st.booleans(), st.booleans())
# long visits of both pseudo-channels interleaving across a refresh, reads then writes
@example(name="HBM2-2000", mapping="RoBaRaCoCh", ntr=4, kib=256, gap=0, dt=0, lookahead=32, writes=True, refresh=True)
@example(name="HBM3-6400", mapping="RoBaRaCoCh", ntr=3, kib=64, gap=4096, dt=300, lookahead=32, writes=True, refresh=True)
@example(name="DDR4-2400", mapping="RoBaRaCoCh", ntr=2, kib=256, gap=128, dt=5000, lookahead=8, writes=False, refresh=True)
def test_row_visit_rounds_equal_burst_on_streams(name, mapping, ntr, kib, gap, dt, lookahead, writes, refresh):
    """Streaming tiles (the traffic the interleaved rounds are for): row_visit == burst, ticks
    and counters, with refresh, write-to-read turnarounds and overlapping transfers."""
    tr, t = [], 0
    for k in range(ntr):
        tr.append((k * (kib * 1024 + gap), kib * 1024, writes and k % 2 == 1, t))
        t += dt
    kw = dict(preset=name, mapping=mapping, lookahead=lookahead, refresh="all_bank" if refresh else "off")
    a, ca, _ = _engine_state("burst", tr, **kw)
    b, cb, sb = _engine_state("row_visit", tr, **kw)
    assert a == b
    assert (ca == cb).all()


def test_rounds_are_used_on_streaming():
    """The interleaved path is exercised where the visits of different pseudo-channels / bank
    groups stream at a common spacing equal to their own bank's (tCCD_L): HBM2 / HBM2E / HBM3
    pseudo-channels, DDR4-3200 and LPDDR5 bank groups (tCCD_L = 2 tCCD_S), RoBaRaCoCh. (Where
    the round is longer than tCCD_L, e.g. DDR4-2400's 2 x tCCD_S = 8 > tCCD_L = 6, or where each
    visit is a single burst (RoCoBaRaCh), runs stay per visit.)"""
    for name in ("HBM2-2000", "HBM2E-3200", "HBM3-6400", "DDR4-3200", "LPDDR5-6400"):
        tr = [(0, 1 << 16, False, 0)]
        a, ca, _ = _engine_state("burst", tr, preset=name, mapping="RoBaRaCoCh", channels=1)
        b, cb, sb = _engine_state("row_visit", tr, preset=name, mapping="RoBaRaCoCh", channels=1)
        assert a == b and (ca == cb).all()
        assert _uses_rounds(sb), name


def test_controller_matches_naive_twin_across_queue_compaction():
    """A queued request keeps its position until it leaves; appends go to the end of twice the
    queue depth positions (64 for 4-entry queues) and a queue is compacted when its end reaches
    the last one. 300 requests offered at once into 4-entry queues: the read queue stays full
    and is compacted several times. Against the tick-by-tick twin."""
    rng = np.random.default_rng(11)
    for name, wshare in [("DDR4-2400", 0.0), ("HBM2-2000", 0.0), ("DDR4-2400", 0.3), ("LPDDR5-6400", 0.3)]:
        p = load_preset(name)
        C, n = 1, 300
        NB = p.banks_per_channel
        ch = np.zeros(n, np.int64)
        bank = rng.integers(0, 3, n).astype(np.int64)
        row = rng.integers(0, 2, n).astype(np.int64)
        isw = rng.random(n) < wshare
        col = rng.integers(0, 8, n).astype(np.int64)
        addr = ((row * NB + bank) * 8 + col) * C + ch
        cyc = np.zeros(n, np.int64)
        t1, a1, d1, f1, cc = kernel_controller(p, C, ch, bank, row, isw, addr, cyc, False, Q=4)
        t2, a2, d2, f2, cnt = naive_controller(p, C, list(ch), list(bank), list(row), list(isw), list(addr),
                                               list(cyc), False, Q=4)
        assert (t1, list(a1), list(d1), list(f1)) == (t2, a2, d2, f2), name
