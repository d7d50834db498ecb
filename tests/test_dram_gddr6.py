"""Hand-derived GDDR6 command timelines: the relations of Ramulator 2.1's GDDR6 table
(python/ramulator/dram/gddr6.py), which the GDDR6 standard of archsim.mem.dram.spec follows.

GDDR6-14000 timings (CK = controller tick): tRCDRD 26, tRCDWR 16, tRP 26, tRAS 53, CL 24,
CWL 6, BL 2 (a BL16 burst), tCCD_S/L 2/3, tRRD_S/L 7/7, tRTP 4, tRFC 210, tRFCpb 105, tRREFD
14, tREFI 3333, tREFIpb 208. One channel, no rank level (the channel is the refresh scope),
one command per tick. Address (RoBaRaCoCh, one channel): ((row * 4 + bank) * 4 + bankgroup) *
64 + column, times 32 bytes.

Relations these cases exercise, where the table differs from the JESD79-4 (DDR4) one:

- read -> write in the channel: CL + 1 (DDR4: CL + BL + 2 - CWL, here 22);
- all-bank refresh -> ACT: the larger of tRFC and tRFCab (the peer carries both);
- ACT -> per-bank refresh in the channel: tRRD_L (DDR4-style per-bank tables: tRRD_S).
"""
import numpy as np

from archsim.mem.dram import kernel as K
from archsim.mem.dram.presets import load_preset
from archsim.mem.dram.sim import run_trace
from dram_probe import run_channel

P = "GDDR6-14000"


def addr(row=0, bank=0, bg=0, col=0, cols=64, tx=32):
    return (((row * 4 + bank) * 4 + bg) * cols + col) * tx


def run(p, reqs, refresh="off"):
    """reqs: (cycle, is_write, address) on one channel -> (arrive, depart, counters, first command
    kind) per request."""
    return run_channel(p, reqs, addr(row=999, bg=3, bank=3), refresh)


def read_then_write(p, cols, tx):
    """Two reads and three writes to one row, offered at cycle 0, 2-entry queues, writes drained
    only when no read is queued (high watermark 1.0): the run ends when the third write is
    accepted, i.e. right after the first write issued."""
    reqs = [(False, addr(col=0, cols=cols, tx=tx)), (False, addr(col=1, cols=cols, tx=tx))]
    reqs += [(True, addr(col=c, cols=cols, tx=tx)) for c in (2, 3, 4)]
    return run_trace(p, np.array([a for _, a in reqs]), np.array([w for w, _ in reqs]), channels=1,
                     queue_depth=2, write_high_watermark=1.0, refresh="off")


def test_read_to_write_is_cl_plus_one():
    # Reads A, A2 and writes B, C are accepted before tick 1 (2 + 2 entries; 2 writes do not
    # exceed the high watermark 1.0 x 2), write D waits for a free entry (head of line).
    # ACT @1 (A moves to the active buffer), RD A @1 + tRCDRD = 27, RD A2 (same bank group)
    # @27 + tCCD_L = 30; the read queue is empty -> write mode; WR B (row hit) @30 + CL + 1 = 55
    # (the DDR4 form CL + BL + 2 - CWL = 22 would allow 52). B retires, D is accepted after
    # tick 55 and the run ends: 55 cycles. Read latency: A departs at 27 + CL + BL = 53, A2 at
    # 56 after the end; the peer divides the latencies of departed reads by the reads served:
    # 53 / 2.
    r = read_then_write(load_preset(P), 64, 32)
    assert r["dram_cycles"] == 30 + 24 + 1
    assert (r["row_hits"], r["row_misses"], r["row_conflicts"]) == (2, 1, 0)
    assert r["avg_read_latency_cycles"] == 53 / 2


def test_all_bank_refresh_waits_trfcab():
    # A read at cycle 0 leaves bank 0 open. At tick tREFI = 3333 the REFab is queued: PREab
    # @3333 (bank open), REFab @3333 + tRP = 3359. A read offered at 3333 waits for the refresh:
    # ACT @3359 + max(tRFC, tRFCab), RD + tRCDRD, data + CL + BL.
    for extra, rfc in (({}, 210), ({"tRFCab": 315}, 315)):
        p = load_preset(P, overrides=extra)
        arrive, depart, cc, first = run(p, [(0, False, addr(row=1)), (3333, False, addr(row=1))],
                                        refresh="all_bank")
        assert depart[1] == 3333 + 26 + rfc + 26 + 24 + 2
        assert list(first) == [1, 1]                  # both misses: the refresh closed the row
        assert cc[K.CC_REF] == 50_000 // 3333


def test_act_to_per_bank_refresh_is_trrd_l():
    # tRRD_L set to 9 (tRRD_S stays 7). A read to bank group 1 offered at 206: ACT @207. The
    # first REFpb (bank 0 of bank group 0, closed) is due at tREFIpb = 208 and waits for ACT +
    # tRRD_L = 216 (tRRD_S would allow 214). A read to bank 0 offered at 208: ACT @216 +
    # tRFCpb = 321, RD @321 + tRCDRD = 347, data @347 + CL + BL = 373.
    p = load_preset(P, overrides={"tRRD_L": 9})
    arrive, depart, cc, first = run(p, [(206, False, addr(bg=1)), (208, False, addr())], refresh="per_bank")
    assert depart[0] == 207 + 26 + 26
    assert depart[1] == 207 + 9 + 105 + 26 + 26


def test_read_to_write_on_the_peer_presets():
    # The trace of test_read_to_write_is_cl_plus_one on the two presets Ramulator 2.1 resolves
    # (one 32-bit channel, 64 B per request, tCCD_L 6): ACT @1, RD @1 + tRCDRD, RD + 6, WR at
    # that + CL + 1. GDDR6-7000 (tRCDRD 30): 31, 37, 62; GDDR6-7000-1350mV (26): 27, 33, 58.
    # The rebuilt peer gives the same cycles and average read latency on this trace (queue 2,
    # wr_high_watermark 1.0, no refresh): 62 / 29.5 and 58 / 27.5.
    for name, rcd in (("GDDR6-7000", 30), ("GDDR6-7000-1350mV", 26)):
        r = read_then_write(load_preset(name), 64, 64)
        assert r["dram_cycles"] == 1 + rcd + 6 + 24 + 1
        assert r["avg_read_latency_cycles"] == (1 + rcd + 24 + 4) / 2
