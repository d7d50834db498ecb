"""``archsim dram``: trace replay (table / JSON), selftest, and bad input -> exit 2, no traceback."""
import json

import pytest
import yaml
from click.testing import CliRunner

from archsim.mem.dram.cli import dram
from archsim.mem.dram.presets import preset_dir


@pytest.fixture
def trace(tmp_path):
    p = tmp_path / "t.trace"
    p.write_text("".join(f"LD 0x{i * 64:x}\n" for i in range(200)) + "ST 0x40\n")
    return p


def test_replay_json_has_the_documented_keys(trace):
    r = CliRunner().invoke(dram, [str(trace), "--preset", "DDR4-2400", "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    for k in ("dram_cycles", "bandwidth_GBps", "row_hits", "row_misses", "row_conflicts", "row_hit_rate",
              "avg_read_latency_ns", "p99_read_latency_ns", "refresh_cmds", "energy_total_nJ", "channel_utilization"):
        assert k in d
    assert d["requests"] == 201 and d["writes"] == 1


def test_replay_table_and_options(trace):
    r = CliRunner().invoke(dram, [str(trace), "--preset", "HBM2-2000", "--channels", "4", "--mapping", "MOP4CLXOR",
                                  "--queue-depth", "16", "--refresh", "off"])
    assert r.exit_code == 0, r.output
    assert "bandwidth" in r.output and "row hit rate" in r.output


def test_replay_lpddr5_wck_option(tmp_path):
    """LPDDR5: reads 200 cycles apart each find WCK stopped and pay a CAS (sync, the default);
    --wck always_on issues none. Both show the ACT-2 and CAS counts in the table."""
    p = tmp_path / "t.csv"
    p.write_text("cycle,op,addr\n" + "".join(f"{200 * i},LD,0x{i * 4096:x}\n" for i in range(8)))
    out = {}
    for wck in ("sync", "always_on"):
        r = CliRunner().invoke(dram, [str(p), "--preset", "LPDDR5-6400", "--wck", wck, "--format", "json"])
        assert r.exit_code == 0, r.output
        out[wck] = json.loads(r.output)["commands"]
    assert out["sync"]["cas"] == out["sync"]["rd"] > 0 and out["always_on"]["cas"] == 0
    assert out["sync"]["act2"] == out["sync"]["act"] > 0
    r = CliRunner().invoke(dram, [str(p), "--preset", "LPDDR5-6400"])
    assert "ACT-2" in r.output and "CAS" in r.output
    r = CliRunner().invoke(dram, [str(p), "--preset", "LPDDR5-6400", "--wck", "sometimes"])
    assert r.exit_code == 2 and "--wck" in r.output


def test_replay_scheduler_option(trace):
    for sched in ("frfcfs", "frfcfs_rowhit"):
        r = CliRunner().invoke(dram, [str(trace), "--preset", "HBM2-2000", "--scheduler", sched, "--format", "json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.output)["requests"] == 201
    r = CliRunner().invoke(dram, [str(trace), "--scheduler", "fcfs"])
    assert r.exit_code == 2 and "--scheduler" in r.output
    import numpy as np
    from archsim.errors import ConfigError
    from archsim.mem.dram.sim import run_trace
    with pytest.raises(ConfigError) as e:
        run_trace("HBM2-2000", np.array([0, 64]), scheduler="frfcfs_row_hit")
    assert "scheduler" in str(e.value) and "frfcfs_rowhit" in str(e.value)


def test_csv_trace(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("cycle,op,addr\n0,LD,0x0\n5,ST,0x40\n900,LD,0x80\n")
    r = CliRunner().invoke(dram, [str(p), "--preset", "DDR4-3200", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["dram_cycles"] >= 900


@pytest.mark.parametrize("content,needle", [("LD 0x0\nLD 0xZZ\n", ":2:"), ("LD 0x0\nXX 0x40\nLD 0x0\n", ":2:"),
                                            ("LD 0x0\nLD\n", ":2:"),
                                            ("LD 0x0\nLD 0xffffffffffffffffffffffff\n", ":2: address"),
                                            ("cycle,op,addr\n99999999999999999999,LD,0x0\n", ":2: cycle")])
def test_malformed_line_names_its_number(tmp_path, content, needle):
    p = tmp_path / "bad.trace"
    p.write_text(content)
    r = CliRunner().invoke(dram, [str(p)])
    assert r.exit_code == 2
    assert needle in r.output and "Traceback" not in r.output


def test_address_beyond_capacity(tmp_path):
    p = tmp_path / "big.trace"
    p.write_text("LD 0x0\nLD 0x4000000000\n")
    r = CliRunner().invoke(dram, [str(p), "--preset", "DDR4-2400"])
    assert r.exit_code == 2 and "capacity" in r.output


def test_unknown_preset(trace):
    r = CliRunner().invoke(dram, [str(trace), "--preset", "HBM2-2001"])
    assert r.exit_code == 2 and "HBM2-2000" in r.output


def test_timing_set_violating_trc(tmp_path, trace):
    doc = yaml.safe_load((preset_dir() / "DDR4-2400.yaml").read_text())
    doc["timing"]["tRC"] = 30
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(doc))
    r = CliRunner().invoke(dram, [str(trace), "--preset", str(bad)])
    assert r.exit_code == 2 and "tRC" in r.output and "Traceback" not in r.output


def test_missing_trace_file():
    r = CliRunner().invoke(dram, ["/nonexistent/trace.txt"])
    assert r.exit_code == 2


def test_selftest_prints_a_table():
    r = CliRunner().invoke(dram, ["selftest", "--preset", "DDR4-2400", "--scale", "0.02"])
    assert r.exit_code == 0, r.output
    assert "streaming read" in r.output and "random read" in r.output


def test_binary_trace_and_preset_are_not_text(tmp_path):
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    for args in ([str(p)], ["selftest", "--preset", str(p)]):
        res = CliRunner().invoke(dram, args)
        assert res.exit_code == 2 and "not a text file" in res.output, args
        assert "Traceback" not in res.output


def test_replay_closed_cap_option(trace):
    """--page-policy closed_cap --cap N: 201 requests over two rows of one bank, the run ending
    when the last one is accepted (about 170 issued); with cap 1 every second access closes its
    row, with cap 4 every fifth."""
    acts = {}
    for cap in (1, 4):
        r = CliRunner().invoke(dram, [str(trace), "--preset", "DDR4-2400", "--refresh", "off",
                                      "--page-policy", "closed_cap", "--cap", str(cap), "--format", "json"])
        assert r.exit_code == 0, r.output
        d = json.loads(r.output)
        assert d["page_policy"] == "closed_cap" and d["cap"] == cap
        acts[cap] = d["commands"]["act"]
    assert acts == {1: 84, 4: 34}
    r = CliRunner().invoke(dram, [str(trace), "--preset", "DDR4-2400", "--page-policy", "closed_cap"])
    assert r.exit_code == 0 and "row closes queued" in r.output
    r = CliRunner().invoke(dram, [str(trace), "--page-policy", "closed_cap", "--cap", "0"])
    assert r.exit_code == 2 and "--cap" in r.output


def test_replay_ranks_option(trace):
    """--ranks 2 on DDR4-2400: two refresh scopes (one REFab per rank per tREFI) and the rank in
    the name; HBM has pseudo-channels, not ranks: exit status 2 naming the option's field."""
    r = CliRunner().invoke(dram, [str(trace), "--preset", "DDR4-2400", "--ranks", "2", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["preset"] == "DDR4-2400 (2 ranks)"
    r = CliRunner().invoke(dram, [str(trace), "--preset", "HBM2-2000", "--ranks", "2"])
    assert r.exit_code == 2 and "ranks" in r.output and "no rank level" in r.output
