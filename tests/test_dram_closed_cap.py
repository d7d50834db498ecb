"""The closed_cap row policy (``page_policy="closed_cap"``, ``cap``), timelines derived by hand.

DDR4-2400 (CK = controller tick): tRCD 16, tRP 16, tRAS 39, tRC 55, CL 16, BL 4, tCCD_L 6,
tRTP 9; read latency CL + BL = 20. RDA -> ACT of its bank is tRTP + tRP = 25. One channel,
requests to bank 0 (bank group 0), row 0 unless said; a read to another bank group at cycle 300
keeps the run going. The frontend offers one request before tick 1 and the rest before tick 2.

Six reads to one row, cap 4:

- tick 1: ACT (request 0); 17: its RD (tRCD); the other five arrived at 1 and hit the open row:
  RDs at 23, 29, 35 (tCCD_L). After the RD at 35 the bank has had 4 column accesses;
- the bank's PRE would be ready at max(1 + tRAS, 35 + tRTP) = 44, but the fifth read's RD is
  ready at 41 first: it issues as RDA at 41 (closing the row, count back to 0);
- the sixth read finds the bank closed (a row miss): ACT at max(41 + 25, 1 + tRC) = 66, RD at 82.

Data at RD + 20: 37, 43, 49, 55, 61, 102. With cap 1 every second read closes the row: ACT 1,
RD 17, RDA 23; ACT max(23 + 25, 1 + 55) = 56, RD 72, RDA 78; ACT max(78 + 25, 56 + 55) = 111,
RD 127, RDA 133.

Four reads, then a fifth at cycle 100 (cap 4): nothing is queued for the bank after the RD at
35, so the policy queues its row close when the PRE is ready, at 44, and it issues there (a
maintenance command). The fifth read is a miss: ACT at 101 (it arrives at 100), RD at 117.
"""
import numpy as np
import pytest

from archsim.errors import ConfigError
from archsim.mem.dram import kernel as K
from archsim.mem.dram.presets import load_preset
from archsim.mem.dram.sim import controller_rules, run_trace, static_arrays


def replay(p, reqs, cap, refresh=False, closed=False):
    """reqs: (cycle, bank, row) reads on one channel -> (depart, first-command kind, counters),
    with a trailing read to bank 5 at cycle 300."""
    cyc = np.array([r[0] for r in reqs] + [300], np.int64)
    bank = np.array([r[1] for r in reqs] + [5], np.int64)
    row = np.array([r[2] for r in reqs] + [0], np.int64)
    n = len(cyc)
    isw = np.zeros(n, np.bool_)
    addr = (row * 16 + bank) * 1024 + np.arange(n) * 64
    L, lsize, ncount, NB, bnode, haswin, hassib, rscope = static_arrays(p)
    loff = np.zeros(L, dtype=np.int64)
    for lv in range(1, L):
        loff[lv] = loff[lv - 1] + ncount[lv - 1]
    t = p.tables
    arrive = np.full(n, -1, np.int64); depart = np.full(n, -1, np.int64); first = np.full(n, -1, np.int64)
    cc = np.zeros((1, K.N_CC), np.int64)
    K.run_controller(np.zeros(n, np.int64), bank, row, isw, addr, cyc, L, lsize, ncount, loff, bnode, rscope,
                     t.c_start, t.c_fol, t.c_lat, t.c_win, t.c_sib, haswin, hassib, False, False,
                     t.read_latency, 1 if refresh else 0, t.timing["nREFI"], t.timing["nREFIpb"], 32, 32,
                     0.8, 0.2, 16, closed, 1, NB, arrive, depart, cc, first, *controller_rules(p), False, cap)
    return list(depart[:-1]), list(first[:-1]), cc[0]


def test_six_reads_cap_4_the_fifth_auto_precharges():
    p = load_preset("DDR4-2400")
    d, f, cc = replay(p, [(0, 0, 0)] * 6, cap=4)
    assert d == [37, 43, 49, 55, 61, 102]
    assert f == [1, 0, 0, 0, 0, 1]          # miss, four hits, miss
    assert cc[[K.CC_ACT, K.CC_RD, K.CC_PRE, K.CC_CAPPRE]].tolist() == [2, 6, 1, 0]
    # open page: one ACT, the reads tCCD_L apart
    d, f, cc = replay(p, [(0, 0, 0)] * 6, cap=0)
    assert d == [37, 43, 49, 55, 61, 67] and f == [1, 0, 0, 0, 0, 0] and cc[K.CC_PRE] == 0


def test_six_reads_cap_1_close_every_second_read():
    p = load_preset("DDR4-2400")
    d, f, cc = replay(p, [(0, 0, 0)] * 6, cap=1)
    assert d == [37, 43, 92, 98, 147, 153]
    assert f == [1, 0, 1, 0, 1, 0]
    assert cc[[K.CC_ACT, K.CC_PRE, K.CC_CAPPRE]].tolist() == [3, 3, 0]


def test_idle_bank_at_the_cap_gets_a_queued_precharge():
    p = load_preset("DDR4-2400")
    d, f, cc = replay(p, [(0, 0, 0)] * 4 + [(100, 0, 0)], cap=4)
    assert d == [37, 43, 49, 55, 137]
    assert f == [1, 0, 0, 0, 1]
    assert cc[[K.CC_ACT, K.CC_PRE, K.CC_CAPPRE]].tolist() == [2, 1, 1]
    # the same through run_trace: the queued PRE counts as a maintenance command, not a refresh
    cyc = np.array([0, 0, 0, 0, 100, 300], np.int64)
    addr = np.array([0, 64, 128, 192, 256, 5 * 8192], np.int64)
    r = run_trace(p, addr, cycles=cyc, refresh="off", page_policy="closed_cap", cap=4)
    assert (r["refresh_cmds"], r["maintenance_cmds"], r["commands"]["cap_pre"]) == (0, 1, 1)
    # (the read at 300 is accepted last: the run ends before its ACT)
    assert (r["row_hits"], r["row_misses"], r["row_conflicts"]) == (3, 2, 0)


def test_closed_cap_arguments_are_checked():
    p = load_preset("DDR4-2400")
    for kw in ({"page_policy": "closed_cap", "cap": 0}, {"page_policy": "closedcap"}):
        with pytest.raises(ConfigError):
            run_trace(p, np.array([0, 64]), **kw)


def test_row_policy_column_values():
    """A table's row_policy column: empty / open, closed, closed_cap (the peer's default cap 4),
    closed_cap:N; the peer's own spellings are taken too."""
    from archsim.mem.dram import row_policy
    assert row_policy("") == row_policy(None) == row_policy("Open") == ("open", 4)
    assert row_policy("closed") == ("closed", 4)
    assert row_policy("closed_cap") == row_policy("ClosedCAP") == ("closed_cap", 4)
    assert row_policy("closed_cap:8") == row_policy("ClosedCAP=8") == ("closed_cap", 8)
    for bad in ("closed_cap:0", "closed_cap:x", "closed:2", "lru"):
        with pytest.raises(ConfigError):
            row_policy(bad)
