"""Trace replay vs the peer runs (Ramulator 2.1) of validation/dram: bandwidth within 5 % and
row-buffer hit rate within 2 percentage points on every row; the controller reproduces the
peer's cycle counts."""
from pathlib import Path

import pytest
import yaml

from archsim.mem.dram import validate_case

VDIR = Path(__file__).resolve().parents[1] / "validation" / "dram"
CASES = [p for p in sorted(VDIR.glob("*.yaml")) if yaml.safe_load(p.read_text())["kind"] == "dram_trace"]


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_peer_row(path):
    case = yaml.safe_load(path.read_text())
    assert case["kind"] == "dram_trace"
    got = validate_case(case)
    bw, hr = case["metrics"]["bandwidth_GBps"], case["metrics"]["row_hit_rate"]
    assert got["bandwidth_GBps"] == pytest.approx(bw["ref"], rel=bw["tol_rel"])
    assert abs(got["row_hit_rate"] - hr["ref"]) <= hr["tol_abs"]


def test_cases_cover_the_reference_csv():
    csv = Path("/work/shared/validation/dram/reference_public.csv")
    if csv.exists():
        assert len(CASES) == len(csv.read_text().strip().splitlines()) - 1


def test_cycle_exact_on_a_row():
    from archsim.mem.dram.presets import load_preset
    from archsim.mem.dram.sim import run_trace
    from archsim.mem.dram.traces import geometry, pattern
    p = load_preset("HBM2-2000")
    a, w = pattern("stride_row", **geometry(p))
    r = run_trace(p, a, w)
    assert (r["dram_cycles"], r["row_misses"], r["row_conflicts"], r["refresh_cmds"]) == (108382, 651, 32093, 432)


def test_grid_rows_cycle_exact():
    """The short-pattern rows of the Ramulator 2.1 grid (ramulator21_grid.csv: other mappings,
    queue depths, HBM3, DDR5, LPDDR5 -- its split activation and WCK sync, and WCK always on --
    and GDDR6 -- with its read-to-write turnaround in STREAM-add --, no refresh and per-bank
    refresh, the row-hit-first scheduler, the ClosedCAP row policy, DDR4 organisations and ranks):
    every one reproduces the peer's cycles, row outcomes and maintenance commands (refreshes, and
    the PREs ClosedCAP queues) exactly (the whole table runs in archsim validate)."""
    import csv

    from archsim.mem.dram import _replay
    rows = [r for r in csv.DictReader((VDIR / "ramulator21_grid.csv").read_text().splitlines())
            if (r["pattern"] in ("stride_row", "stride_row_skew", "stride_bank")
                and r["row_policy"] in ("", "closed_cap:1"))
            or (r["standard"] == "LPDDR5" and r["pattern"] == "rand_read" and r["mapping"] == "RoBaRaCoCh")
            or (r["scheduler"] == "frfcfs_rowhit" and r["pattern"] == "mix_2r1w" and r["standard"] == "HBM2")
            or (r["standard"] == "GDDR6" and r["pattern"] == "mix_2r1w" and r["mapping"] == "MOP4CLXOR"
                and r["queue_depth"] == "32")
            or (r["standard"] == "DDR4" and r["mapping"] == "RoBaRaCoCh" and r["refresh"] == "all_bank"
                and (r["row_policy"], r["pattern"]) in (("closed_cap:4", "gemv"), ("closed_cap:8", "mix_2r1w")))
            # HBM3 per-bank refresh: the second pseudo-channel's REFpb is queued a tick after the
            # first, behind the PREs ClosedCAP queued at the due tick
            or (r["standard"] == "HBM3" and r["refresh"] == "per_bank" and r["row_policy"] == "closed_cap:4"
                and r["pattern"] == "gemv")
            # two ranks: the read-after-write rank switch (DDR4-3200AA), the ACT-2 that holds back
            # only its own rank's refresh (LPDDR5)
            or (r["ranks"] == "2" and r["mapping"] == "RoBaRaCoCh" and not r["row_policy"]
                and (r["preset"], r["pattern"]) in (("DDR4-3200AA", "mix_2r1w"), ("LPDDR5-6400", "rand_read")))]
    assert {r["standard"] for r in rows} == {"HBM2", "DDR4", "HBM3", "DDR5", "LPDDR5", "GDDR6"} and len(rows) >= 40
    # DDR4 organisations: x16 (2 bank groups), x4, 16 Gb, the 3200AA bin; 2 and 4 ranks
    assert {r["preset"] for r in rows if r["standard"] == "DDR4"} >= {
        "DDR4-2400", "DDR4-2400-x16", "DDR4-2400-x4", "DDR4-2400-16Gb", "DDR4-3200AA", "DDR4-3200AA-x16"}
    assert {r["ranks"] for r in rows if r["standard"] == "DDR4"} == {"", "2", "4"}
    assert {r["preset"] for r in rows if r["pattern"] == "mix_2r1w" and r["standard"] == "GDDR6"} == {
        "GDDR6-7000", "GDDR6-7000-1350mV"}
    assert {r["wck"] for r in rows if r["standard"] == "LPDDR5"} == {"", "always_on"}
    # ClosedCAP: caps 1 / 4 / 8 (cap 1 queues a PRE after every strided read; gemv and STREAM-add
    # reach the cap with hits: auto-precharges and queued PREs)
    assert {r["row_policy"] for r in rows} >= {"", "closed_cap:1", "closed_cap:4", "closed_cap:8"}
    # the row-hit scheduler's STREAM-add run differs from plain FR-FCFS by 1.8 %: the rule is exercised
    assert any(r["scheduler"] == "frfcfs_rowhit" and r["pattern"] == "mix_2r1w" for r in rows)
    for r in rows:
        got = _replay(r)
        want = tuple(int(r[k]) for k in ("dram_cycles", "row_hits", "row_misses", "row_conflicts", "refresh_cmds"))
        have = tuple(got[k] for k in ("dram_cycles", "row_hits", "row_misses", "row_conflicts", "maintenance_cmds"))
        assert have == want, (r["preset"], r["pattern"], r["mapping"], r["queue_depth"])


def test_per_bank_refresh_rate_by_standard():
    """Per-bank refresh over 20,000 idle ticks of one channel: HBM2-2000 sends one REFpb to the
    channel every tREFIpb = 122 ticks (tREFI / 32 banks of the channel): 163; HBM3-6400 one to
    each of its two pseudo-channels every tREFIpb = 195 CK = 390 ticks (tREFI / 32 banks of a
    pseudo-channel, JESD238), so every bank still gets one per tREFI: 2 x 51 = 102."""
    import numpy as np

    from archsim.mem.dram.presets import load_preset
    from archsim.mem.dram.sim import run_trace
    got = {}
    for name in ("HBM2-2000", "HBM3-6400"):
        r = run_trace(load_preset(name), np.array([0, 64]), cycles=np.array([0, 20000]), channels=1,
                      refresh="per_bank")
        assert r["dram_cycles"] == 20000
        got[name] = r["refresh_cmds"]
    assert got == {"HBM2-2000": 20000 // 122, "HBM3-6400": 2 * (20000 // 390)}
