"""Hand-derived command timelines of the bank-level DRAM controller (DDR4-2400, RoBaRaCoCh).

DDR4-2400 timings (CK = controller tick): tRCD 16, tRP 16, tRAS 39, CL 16, CWL 12, BL 4
(burst), tCCD_S/L 4/6, tRRD_S/L 4/6, tFAW 26, tWTR_L 9, tRTP 9, tRFC 433, tREFI 9364.
Read latency as the peer counts it: from the tick the request was accepted to RD + CL + BL.
Requests are offered by the frontend between ticks; a request accepted after tick t has
arrive = t and can be scheduled from tick t + 1. One command per tick (single command bus).

Address (RoBaRaCoCh, one channel, one rank): ((row * 4 + bank) * 4 + bankgroup) * 128 + column,
times 64 bytes.
"""
import numpy as np
import pytest

from archsim.mem.dram.presets import load_preset
from archsim.mem.dram.sim import run_trace
from dram_probe import run_channel

P = "DDR4-2400"


def addr(row=0, bank=0, bg=0, col=0):
    return (((row * 4 + bank) * 4 + bg) * 128 + col) * 64


def run(reqs, refresh="off"):
    """reqs: (cycle, is_write, address) -> (arrive, depart, counters, first command kind) per
    request."""
    return run_channel(load_preset(P), reqs, addr(row=999, bg=3, bank=3), refresh)


def test_row_miss_then_row_hit_read():
    # request 0 accepted before tick 1 (arrive 0): ACT @1, RD @1+tRCD=17, data @17+CL+BL = 37
    # request 1 to the same row, offered at cycle 100 (arrive 100): row hit, RD @101, data @101+20
    arrive, depart, cc, first = run([(0, False, addr(row=5)), (100, False, addr(row=5, col=3))])
    assert depart[0] == 1 + 16 + 16 + 4
    assert depart[1] - arrive[1] == 1 + 16 + 4          # one tick to schedule, CL + burst
    assert list(first) == [1, 0]                         # miss, hit


def test_row_conflict_read():
    # request 1 hits another row of bank 0 at cycle 100: PRE @101 (tRAS and tRTP long met),
    # ACT @101+tRP=117, RD @117+tRCD=133, data @133+CL+BL=153 -> latency 153-100 = 53
    arrive, depart, cc, first = run([(0, False, addr(row=5)), (100, False, addr(row=6))])
    assert depart[1] - arrive[1] == 1 + 16 + 16 + 16 + 4
    assert first[1] == 2                                 # conflict
    assert cc[1] == 1                                    # one PRE


def test_tfaw_delays_the_fifth_activate():
    # five reads to five closed banks, all offered at cycle 0 (the first accepted before tick 1,
    # the rest before tick 2). ACTs: BG0 @1, BG1 @5, BG2 @9, BG3 @13 (tRRD_S = 4); the fifth
    # (BG0, bank 1) could go @17 by tRRD_S / @7 by tRRD_L, but tFAW: 1 + 26 = 27.
    # Its RD @27+tRCD=43, data @43+20=63.
    reqs = [(0, False, addr(bg=g)) for g in range(4)] + [(0, False, addr(bank=1, bg=0))]
    arrive, depart, cc, first = run(reqs)
    assert depart[0] == 1 + 16 + 20
    assert depart[4] == 27 + 16 + 20
    # without the window the fifth ACT would have issued at 17: data at 17+16+20 = 53
    assert depart[4] - (17 + 16 + 20) == 10


def test_write_to_read_turnaround_twtr():
    # ST at cycle 0: the read queue is empty -> write mode; ACT @1, WR @1+tRCD=17.
    # LD to the same row at cycle 20 (arrive 20): back to read mode; same bank group after a
    # write: RD >= WR + CWL + BL + tWTR_L = 17+12+4+9 = 42; data @42+20 = 62 -> latency 42.
    arrive, depart, cc, first = run([(0, True, addr(row=2)), (20, False, addr(row=2, col=1))])
    assert depart[0] == 17                               # writes retire when WR issues
    assert depart[1] == 17 + 12 + 4 + 9 + 16 + 4
    assert depart[1] - arrive[1] == 42


def test_refresh_blocks_for_trfc_every_trefi():
    # a read at cycle 0 leaves bank 0 open. At tick tREFI = 9364 the refresh manager queues a
    # REFab: PREab @9364 (bank open), REFab @9364+tRP = 9380. A read offered at 9364 (arrive
    # 9364) must wait tRFC: ACT @9380+433 = 9813, RD @9829, data @9849 -> latency 485.
    arrive, depart, cc, first = run([(0, False, addr(row=1)), (9364, False, addr(row=1))], refresh="all_bank")
    assert depart[1] == 9364 + 16 + 433 + 16 + 16 + 4
    assert depart[1] - arrive[1] == 485
    # the run lasts until cycle 50000: floor(50000 / 9364) = 5 refreshes, none skipped
    assert cc[5] == 50_000 // 9364


@pytest.mark.parametrize("refresh", ["all_bank", "off"])
def test_refresh_count_is_time_over_trefi(refresh):
    p = load_preset("HBM2-2000")
    a = np.arange(20000, dtype=np.int64) * 8192 % (1 << 30)     # row misses on channel 0
    r = run_trace(p, a, refresh=refresh)
    # one REFab per pseudo-channel of every channel every tREFI = 3900
    want = (r["dram_cycles"] // 3900) * 8 * 2 if refresh == "all_bank" else 0
    assert r["refresh_cmds"] == want


def test_a_request_queued_between_visits_wakes_its_channel():
    # A, B to row 5 of BG0 at cycle 0: ACT @1, RD A @17, RD B @17+tCCD_L = 23. After RD A the
    # channel's next visit is tick 23 (nothing else can issue before). C (BG1, closed bank)
    # accepted after tick 18 heads a new class: its ACT is ready at 1+tRRD_S = 5, so the
    # channel must be visited at 19: ACT @19, RD @19+tRCD = 35 (tCCD_S after 23 met), data
    # @35+CL+BL = 55. D (row 5 of BG0, accepted after 18) joins B's class behind B: RD @23+6 = 29.
    reqs = [(0, False, addr(row=5)), (0, False, addr(row=5, col=1)), (18, False, addr(row=5, bg=1)),
            (18, False, addr(row=5, col=2))]
    arrive, depart, cc, first = run(reqs)
    assert list(arrive) == [0, 1, 18, 18]
    assert list(depart) == [17 + 20, 23 + 20, 35 + 20, 29 + 20]
    assert list(first) == [1, 0, 1, 0]
