"""Trace replay vs the peer runs (Ramulator 2.1) of validation/dram: bandwidth within 5 % and
row-buffer hit rate within 2 percentage points on every row; the controller reproduces the
peer's cycle counts."""
from pathlib import Path

import pytest
import yaml

from archsim.mem.dram import validate_case

CASES = sorted((Path(__file__).resolve().parents[1] / "validation" / "dram").glob("*.yaml"))


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
