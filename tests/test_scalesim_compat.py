"""SCALE-Sim compatible report: reference cases, parsing, errors and the CLI."""

import csv
import json
import os
import re

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from archsim.errors import ArchsimError, ConfigError, InputFileError
from archsim.uarch.systolic import folds
from archsim.uarch.systolic import scalesim_compat as sc
from archsim.uarch.systolic.scalesim_buffers import replay
from archsim.uarch.systolic.scalesim_cli import scalesim as scalesim_cmd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VAL = os.path.join(ROOT, "validation", "scalesim")

EXACT_INT = [
    ("total_cycles", "Total Cycles"),
    ("stall_cycles", "Stall Cycles"),
    ("sram_ifmap_reads", "SRAM IFMAP Reads"),
    ("sram_filter_reads", "SRAM Filter Reads"),
    ("sram_ofmap_writes", "SRAM OFMAP Writes"),
]
EXACT_FLOAT = [
    ("overall_util_pct", "Overall Util %"),
    ("mapping_eff_pct", "Mapping Efficiency %"),
    ("compute_util_pct", "Compute Util %"),
]
DRAM = [
    ("dram_ifmap_reads", "DRAM IFMAP Reads"),
    ("dram_filter_reads", "DRAM Filter Reads"),
    ("dram_ofmap_writes", "DRAM OFMAP Writes"),
]


def _rows(name):
    with open(os.path.join(VAL, name), newline="") as fh:
        return list(csv.DictReader(fh))


PUBLIC = _rows("cases_public.csv")
EXTRA = _rows("cases_extra.csv") if os.path.exists(os.path.join(VAL, "cases_extra.csv")) else []
LLM = _rows("cases_llm.csv") if os.path.exists(os.path.join(VAL, "cases_llm.csv")) else []
USER = _rows("cases_user.csv") if os.path.exists(os.path.join(VAL, "cases_user.csv")) else []
USER_LLM = (_rows("cases_user_llm.csv") if os.path.exists(os.path.join(VAL, "cases_user_llm.csv"))
            else [])


# --- validation: SCALE-Sim 3.0.0 runs ---------------------------------------------


@pytest.mark.parametrize("case", PUBLIC, ids=lambda r: f"{r['gemm']}-{r['dataflow']}")
def test_public_case_exact(case):
    cfg, rows = sc.run(os.path.join(VAL, case["config_file"]),
                       os.path.join(VAL, case["topology_file"]))
    assert (cfg.array_rows, cfg.array_cols, cfg.dataflow) == (
        int(case["array_rows"]), int(case["array_cols"]), case["dataflow"])
    (row,) = rows
    assert row["Layer"] == case["gemm"]
    assert row["Compute Cycles"] == int(case["compute_cycles"])
    for ref_key, col in EXACT_INT:
        assert row[col] == int(case[ref_key]), col
    for ref_key, col in EXACT_FLOAT:
        assert row[col] == pytest.approx(float(case[ref_key]), rel=1e-9, abs=0), col


def test_public_case_dram_counts():
    """DRAM counts come from the buffer replay: every public case exactly, the os out-projection
    FILTER reads included (622504, where reading each element once per fold gives 589824)."""
    misses = []
    for case in PUBLIC:
        _, (row,) = sc.run(os.path.join(VAL, case["config_file"]),
                           os.path.join(VAL, case["topology_file"]))
        assert row["Buffers"] == "replayed"
        for ref_key, col in DRAM:
            if row[col] != int(case[ref_key]):
                misses.append((case["gemm"], case["dataflow"], col, row[col], int(case[ref_key])))
    assert misses == []


@pytest.mark.skipif(not (EXTRA and LLM and USER and USER_LLM), reason="reference CSVs not present")
def test_extra_cases_exact():
    """Random arrays (non-square too), GEMMs, dataflows, CALC and USER bandwidths; LLM-sized
    GEMMs on arrays up to 128 x 128 with SRAMs of 32 kB to 6 MB; and bandwidth-limited USER
    runs with their own fill rates and SRAMs from 1 kB, of small and LLM-sized GEMMs.  Every
    column, stalls and DRAM counts included, equals SCALE-Sim's."""
    assert len(EXTRA) >= 100 and len(LLM) >= 90 and len(USER) >= 180 and len(USER_LLM) >= 120
    assert sum(int(c["stall_cycles"]) > 0 for c in EXTRA + USER + USER_LLM) >= 100
    for case in EXTRA + LLM + USER + USER_LLM:
        cfg, layer = sc.table_row_case(case, "cases.csv")
        (row,) = sc.report_rows(cfg, [layer])
        where = f"{case['layer']} {case['dataflow']} {cfg.array_rows}x{cfg.array_cols}"
        stall_free = int(case["total_cycles"]) - int(case["stall_cycles"])
        assert row["Compute Cycles"] == stall_free, where
        for ref_key, col in EXACT_INT[2:]:
            assert row[col] == int(case[ref_key]), (where, col)
        for ref_key, col in EXACT_FLOAT[1:]:
            assert row[col] == pytest.approx(float(case[ref_key]), rel=1e-9, abs=0), (where, col)
        assert row["Buffers"] == "replayed", where
        for ref_key, col in EXACT_INT[:2] + DRAM:
            assert row[col] == int(case[ref_key]), (where, col)
        for ref_key, col in sc.TABLE_COLUMNS.items():  # the windows and bandwidths, when recorded
            if case.get(ref_key):
                assert row[col] == pytest.approx(float(case[ref_key]), rel=1e-9, abs=0), (where, col)
        assert row["Overall Util %"] == pytest.approx(float(case["overall_util_pct"]),
                                                      rel=1e-9), where


def test_replay_hand_case_user_prefetch():
    # os on a 1 x 1 array, M = N = 1, K = 12: cycle line t reads IFMAP k = t and FILTER k = t;
    # the OFMAP word is written at line 11 (stall-free Total Cycles 11).  IFMAP SRAM of 4 words:
    # sets of 1 element, active A = 2 sets, prefetch P = 2 sets, 2 request lines at 1 word per
    # cycle, so prefetch n finishes at -1 + 3n.  Misses at t = 2, 4, 6, 8, 10 (cycles 2, 4, 6,
    # 10, 12 with stalls): prefetches done at 2, 5, 8, 11, 14 -> lateness -1, 0, +1, 0, +1; a
    # late prefetch delays the line by twice its lateness, so 2 + 2 = 4 stall cycles and
    # Total Cycles 11 + 4 = 15.  DRAM IFMAP reads: first fill 2 + 5 prefetches x 2 = 12; the
    # FILTER (1000 words) fits: 12; one OFMAP word drains after the last line.
    # Windows: reads served at cycle + delay + 1, lines 0 and 11 -> SRAM 1..16; the OFMAP word
    # accepted at 15 and drained at 15; the first fills answer before cycle 0, one request line
    # per cycle (IFMAP 2 lines: -2; FILTER 12 lines: -12, nothing later: stop -1), the IFMAP's
    # last prefetch is done at 14.
    out = replay(0, 1, 1, 1, 1, 12, 4, 1000, 1000, 1, 1, 1, True)
    assert list(out) == [15, 4, 12, 12, 1,  1, 16, 1, 16, 15, 15,  -2, 14, -12, -1, 15, 15]


def test_replay_hand_case_write_drain():
    # os 2 x 2, M = N = 2, K = 1, CALC: lines 0..2 write 1, 2, 1 OFMAP words.  OFMAP SRAM of 4
    # words (active 2, drain 2) at 1 word per cycle: the second word of line 1 leaves 1 word
    # free (< active 2), so lines 0-1 drain in cycles 1-2; the last two after the run.  No
    # stall; reads in CALC mode fetch each element once (IFMAP 2, FILTER 2); DRAM writes 4.
    # Windows: IFMAP / FILTER read at lines 0-1, served a cycle later (1..2); OFMAP 0..2; the
    # reads' one set (10 words at 10 per cycle) is prefetched at -1; drains at 1-2 and, from the
    # last line's cycle, 2-3.
    out = replay(0, 2, 2, 2, 2, 1, 1000, 1000, 4, 1, 1, 1, False)
    assert list(out) == [2, 0, 2, 2, 4,  1, 2, 1, 2, 0, 2,  -1, -1, -1, -1, 1, 3]


@pytest.mark.skipif(not USER, reason="cases_user.csv not present")
def test_replay_limit_falls_back_to_closed_forms(monkeypatch):
    cfg, _ = sc.table_row_case(USER[0], "cases_user.csv")
    monkeypatch.setattr(sc, "REPLAY_LIMIT", 10)
    (row,) = sc.report_rows(cfg, [sc.GemmLayer("big", 64, 64, 64)])
    assert row["Buffers"] == "closed form"
    assert row["Total Cycles"] == row["Compute Cycles"] + row["Stall Cycles"]


@pytest.mark.skipif(not USER, reason="cases_user.csv not present")
def test_table_matches_counts_rows():
    counts = sc.table_matches(os.path.join(VAL, "cases_user.csv"))
    assert counts["rows"] == len(USER) == counts["rows exact"] == counts["Stall Cycles exact"]


# --- hand-derived -------------------------------------------------------------------


def _cfg(tmp_path, R=8, C=16, df="os", mode="CALC", extra=""):
    p = tmp_path / "a.cfg"
    p.write_text(f"""[general]
run_name = t
[architecture_presets]
ArrayHeight: {R}
ArrayWidth: {C}
IfmapSramSzkB: 64
FilterSramSzkB: 64
OfmapSramSzkB: 32
Bandwidth : 10
Dataflow : {df}
{extra}
[run_presets]
InterfaceBandwidth: {mode}
""")
    return str(p)


def _topo(tmp_path, text):
    p = tmp_path / "t.csv"
    p.write_text(text)
    return str(p)


def test_hand_case_ws_non_square(tmp_path):
    # ws on 8 rows x 16 cols, M=20 N=30 K=40: Sr=K=40 -> 5 row folds, Sc=N=30 -> 2
    # col folds; fold = 20 + 2*8 + 16 - 2 = 50 cycles; 10 folds -> 500, reported 499.
    cfg, rows = sc.run(_cfg(tmp_path, df="ws"), _topo(tmp_path, "Layer,M,N,K,\nx,20,30,40,\n"))
    (r,) = rows
    assert r["Total Cycles"] == 499 and r["Stall Cycles"] == 0
    assert r["Mapping Efficiency %"] == pytest.approx(93.75)
    assert r["Compute Util %"] == pytest.approx(100 * 0.9375 * 20 / (16 + 32 + 20 - 3))
    assert r["Overall Util %"] == pytest.approx(100 * 24000 / (499 * 128))
    assert (r["SRAM IFMAP Reads"], r["SRAM Filter Reads"], r["SRAM OFMAP Writes"]) == (
        1600, 1200, 3000)
    assert (r["DRAM IFMAP Reads"], r["DRAM Filter Reads"]) == (800, 1200)


def test_word_size_and_case_insensitive_keys(tmp_path):
    cfg = sc.read_config(_cfg(tmp_path, df=" IS ", extra="WordSize: 2"))
    assert cfg.dataflow == "is" and cfg.word_bytes == 2
    assert cfg.ifmap_sram_words == 64 * 1024 // 2


def test_topology_whitespace_and_multiple_layers(tmp_path):
    layers = sc.read_topology(_topo(tmp_path, "Layer, M, N, K,\n a, 1, 2, 3,\n\nb,4,5,6\n"))
    assert [(x.name, x.M, x.N, x.K) for x in layers] == [("a", 1, 2, 3), ("b", 4, 5, 6)]
    assert layers[1].line == 4


def test_sparsity_ratio_column_runs_dense_as_scalesim(tmp_path):
    # SCALE-Sim 3 topologies may carry an N:M sparsity ratio; without SparsitySupport it runs dense
    dense = sc.run(_cfg(tmp_path, df="ws"), _topo(tmp_path, "Layer,M,N,K,\nx,37,50,45,\n"))[1]
    topo = _topo(tmp_path, "Layer, M, N, K, Sparsity,\nx, 37, 50, 45, 2:4,\n")
    assert sc.read_topology(topo)[0].sparsity == (2, 4)
    assert sc.run(_cfg(tmp_path, df="ws"), topo)[1] == dense
    off = "[sparsity]\nSparsitySupport : false"
    assert sc.run(_cfg(tmp_path, df="ws", extra=off), topo)[1] == dense
    # SparsitySupport true: a dense ratio still runs dense; a sparse one is refused, naming the line
    on = "[sparsity]\nSparsitySupport : true"
    full = tmp_path / "full.csv"
    full.write_text("Layer, M, N, K, Sparsity,\nx, 37, 50, 45, 4:4,\n")
    assert sc.run(_cfg(tmp_path, df="ws", extra=on), str(full))[1] == dense
    with pytest.raises(InputFileError, match=r"t.csv:2: layer 'x' has sparsity ratio 2:4 .*SparsitySupport"):
        sc.run(_cfg(tmp_path, df="ws", extra=on), topo)
    res = CliRunner().invoke(scalesim_cmd, [_cfg(tmp_path, df="ws", extra=on), topo])
    assert res.exit_code == 2 and "SparsitySupport" in res.output
    with pytest.raises(ConfigError, match="SparsitySupport"):
        sc.read_config(_cfg(tmp_path, extra="[sparsity]\nSparsitySupport : maybe"))
    for bad, msg in (("3:2", "1 <= N <= M"), ("a:4", "integers"), ("7", "convolution")):
        with pytest.raises(InputFileError, match=msg):
            sc.read_topology(_topo(tmp_path, f"Layer,M,N,K,S,\nx,1,2,3,{bad},\n"))


def test_user_mode_stall_free_cycles_unchanged(tmp_path):
    topo = _topo(tmp_path, "Layer,M,N,K,\nx,64,64,64,\n")
    _, (calc,) = sc.run(_cfg(tmp_path, df="os"), topo)
    _, (user,) = sc.run(_cfg(tmp_path, df="os", mode="USER"), topo)
    assert user["Compute Cycles"] == calc["Compute Cycles"]
    assert user["Total Cycles"] == user["Compute Cycles"] + user["Stall Cycles"]


# --- bad input ----------------------------------------------------------------------


def test_missing_files(tmp_path):
    with pytest.raises(InputFileError, match="config not found"):
        sc.read_config(str(tmp_path / "nope.cfg"))
    with pytest.raises(InputFileError, match="topology file not found"):
        sc.read_topology(str(tmp_path / "nope.csv"))


def test_missing_key_named(tmp_path):
    p = tmp_path / "bad.cfg"
    p.write_text("[architecture_presets]\nArrayHeight: 8\nDataflow: os\n"
                 "[run_presets]\nInterfaceBandwidth: CALC\n")
    with pytest.raises(ConfigError) as ei:
        sc.read_config(str(p))
    msg = str(ei.value)
    for key in ("ArrayWidth", "IfmapSramSzkB", "FilterSramSzkB", "OfmapSramSzkB"):
        assert f"architecture_presets.{key}: missing key" in msg
    assert str(p) in msg


def test_bad_values_named(tmp_path):
    with pytest.raises(ConfigError, match="Dataflow: unknown dataflow 'rs'"):
        sc.read_config(_cfg(tmp_path, df="rs"))
    with pytest.raises(ConfigError, match="ArrayHeight: must be >= 1"):
        sc.read_config(_cfg(tmp_path, R=0))
    with pytest.raises(ConfigError, match="ArrayWidth: expected an integer"):
        sc.read_config(_cfg(tmp_path, C="wide"))
    with pytest.raises(ConfigError, match="InterfaceBandwidth: expected CALC or USER"):
        sc.read_config(_cfg(tmp_path, mode="FAST"))


def test_not_a_config(tmp_path):
    p = tmp_path / "x.cfg"
    p.write_text("ArrayHeight = 3\n")
    with pytest.raises(InputFileError, match="not a valid SCALE-Sim .cfg"):
        sc.read_config(str(p))


@pytest.mark.parametrize("text, match", [
    ("Layer,M,N,K,\nx,1,2\n", r":2: expected 'name, M, N, K'"),
    ("Layer,M,N,K,\nx,1,two,3,\n", r":2: layer 'x': N must be an integer"),
    ("Layer,M,N,K,\nx,1,2,3,\ny,0,2,3,\n", r":3: layer 'y': M must be >= 1"),
    ("Layer,M,N,K,\ny,4,2,-3,\n", r":2: layer 'y': K must be >= 1"),
    ("Layer,M,N,K,\ny,4,2,99999999999999999999999,\n", r":2: layer 'y': K must be at most 2\*\*31"),
    ("Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, "
     "Num Filter, Strides,\nconv1, 224, 224, 7, 7, 3, 64, 2,\n", "convolution topology"),
    ("Layer,M,N,K,\n", "no layers"),
    ("", "empty topology"),
])
def test_bad_topology(tmp_path, text, match):
    with pytest.raises(InputFileError, match=match):
        sc.read_topology(_topo(tmp_path, text))


# --- CLI ------------------------------------------------------------------------------


def test_cli_csv_matches_reference():
    case = next(c for c in PUBLIC if c["gemm"] == "gpt2_pf128_qk" and c["dataflow"] == "os")
    res = CliRunner().invoke(scalesim_cmd, [os.path.join(VAL, case["config_file"]),
                                            os.path.join(VAL, case["topology_file"]),
                                            "--format", "csv"])
    assert res.exit_code == 0, res.output
    (row,) = list(csv.DictReader(res.output.splitlines()))
    assert list(row) == list(sc.ALL_COLUMNS)
    assert int(row["Total Cycles"]) == int(case["total_cycles"])
    assert int(row["DRAM Filter Reads"]) == int(case["dram_filter_reads"])
    assert int(row["Total Cycles (incl. prefetch)"]) > int(row["Total Cycles"])
    assert float(row["Compute Util %"]) == pytest.approx(float(case["compute_util_pct"]), rel=1e-12)
    assert int(row["SRAM OFMAP Writes"]) == int(case["sram_ofmap_writes"])


def test_cli_table_json_and_out(tmp_path):
    cfg = os.path.join(VAL, "configs", "a32_ws_calc.cfg")
    topo = os.path.join(VAL, "topologies", "gpt2_dec1_qkv.csv")
    res = CliRunner().invoke(scalesim_cmd, [cfg, topo])
    assert res.exit_code == 0 and "gpt2_dec1_qkv" in res.output and "164,159" in res.output
    out = tmp_path / "r.json"
    res = CliRunner().invoke(scalesim_cmd, [cfg, topo, "--format", "json", "--out", str(out)])
    assert res.exit_code == 0 and res.output == ""
    doc = json.loads(out.read_text())
    assert doc["config"]["dataflow"] == "ws"
    assert doc["layers"][0]["Total Cycles"] == 164159


def test_cli_bad_input_exit_2(tmp_path):
    runner = CliRunner()
    res = runner.invoke(scalesim_cmd, [str(tmp_path / "nope.cfg"),
                                       os.path.join(VAL, "topologies", "gpt2_dec1_qkv.csv")])
    assert res.exit_code == 2
    assert "config not found" in res.output and "Traceback" not in res.output
    bad_topo = _topo(tmp_path, "Layer,M,N,K,\nx,1,0,3,\n")
    out = tmp_path / "never.csv"
    res = runner.invoke(scalesim_cmd, [_cfg(tmp_path), bad_topo, "--format", "csv",
                                       "--out", str(out)])
    assert res.exit_code == 2 and "N must be >= 1" in res.output
    assert not out.exists()
    assert isinstance(res.exception, SystemExit)


def test_errors_are_archsim_errors():
    assert issubclass(InputFileError, ArchsimError) and issubclass(ConfigError, ArchsimError)


def test_compare_tool_without_scalesim(capsys, monkeypatch):
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "compare_scalesim", os.path.join(ROOT, "tools", "compare_scalesim.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    monkeypatch.setattr(mod, "scalesim_importable", lambda: False)
    monkeypatch.delenv("SCALESIM_PYTHON", raising=False)
    rc = mod.main([os.path.join(VAL, "configs", "a32_is_calc.cfg"),
                   os.path.join(VAL, "topologies", "gpt2_pf128_qk.csv")])
    out = capsys.readouterr().out
    assert rc == 0 and "not installed" in out and "1,775" in out
    # Side-by-side printing with a reference that differs in one DRAM count.
    ours = mod.run_archsim(os.path.join(VAL, "configs", "a32_is_calc.cfg"),
                           os.path.join(VAL, "topologies", "gpt2_pf128_qk.csv"))
    theirs = {"seconds": 1.0, "layers": [dict(ours["layers"][0])]}
    theirs["layers"][0]["DRAM Filter Reads"] += 8
    assert mod.print_comparison(ours, theirs) == 1


@pytest.mark.skipif(not USER, reason="cases_user.csv not present")
def test_validate_table_case_fails_on_a_changed_row(tmp_path):
    from archsim.validate import run_case
    rows = USER[:6]
    rows[2] = dict(rows[2], stall_cycles=str(int(rows[2]["stall_cycles"]) + 1))
    table = tmp_path / "t.csv"
    with open(table, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(USER[0]))
        w.writeheader()
        w.writerows(rows)
    case = {"id": "t", "kind": "scalesim_table", "table": "t.csv", "_file": str(tmp_path / "c.yaml"),
            "metrics": {"rows exact": {"ref": 6, "tol_abs": 0},
                        "Stall Cycles exact": {"ref": 6, "tol_abs": 0},
                        "DRAM IFMAP Reads exact": {"ref": 6, "tol_abs": 0}}}
    got = {r["metric"]: (r["simulated"], r["pass"]) for r in run_case(case)}
    assert got == {"rows exact": (5, False), "Stall Cycles exact": (5, False),
                   "DRAM IFMAP Reads exact": (6, True)}


_dims = st.integers(1, 31)  # operands of at most 961 elements


@settings(max_examples=150, deadline=None)
@given(df=st.integers(0, 2), R=st.integers(1, 20), C=st.integers(1, 20), M=_dims, N=_dims, K=_dims,
       ofmap_words=st.integers(4, 3000))
def test_replay_calc_never_stalls(df, R, C, M, N, K, ofmap_words):
    """CALC mode: the OFMAP drain (ArrayWidth words per cycle) keeps up with the array, reads do
    not stall, so Total Cycles is the stall-free count; operands that fit are read once."""
    out = replay(df, R, C, M, N, K, 2048, 2048, ofmap_words, 0, 0, C, False)
    assert out[1] == 0
    assert out[0] == folds.gemm_compute_cycles(df, R, C, M, N, K) - 1
    # 2048 words: sets of 20 elements; an operand within one block of 50 sets is read once
    assert (out[2], out[3]) == (M * K, K * N)


@settings(max_examples=150, deadline=None)
@given(df=st.integers(0, 2), R=st.integers(1, 20), C=st.integers(1, 20), M=_dims, N=_dims, K=_dims,
       fill_bw=st.integers(1, 64), words=st.integers(1922, 20000))
def test_replay_user_resident_operands_do_not_stall(df, R, C, M, N, K, fill_bw, words):
    """USER mode, operands within the active half: nothing is prefetched after cycle 0, so any fill
    bandwidth gives no stall; the DRAM reads are the first fill, in whole request lines."""
    out = replay(df, R, C, M, N, K, words, words, 4096, fill_bw, fill_bw, C, True)
    assert out[1] == 0
    assert out[0] == folds.gemm_compute_cycles(df, R, C, M, N, K) - 1
    for op, n in ((0, M * K), (1, K * N)):
        assert n <= out[2 + op] < n + 20 * 31 + fill_bw  # + the padding of edge folds


def test_layer_beyond_64_bit_counts_refused(tmp_path):
    # 2^31 on every side of a 32 x 32 os array: 2^52 folds of 2^31 + 94 cycles, beyond 2^62
    topo = _topo(tmp_path, "Layer,M,N,K,\nsmall,4,4,4,\nbig,2147483648,2147483648,2147483648,\n")
    with pytest.raises(InputFileError, match=r"t\.csv:3: layer 'big' .* exceed 2\*\*62"):
        sc.run(_cfg(tmp_path, R=32, C=32), topo)
    out = tmp_path / "never.csv"
    res = CliRunner().invoke(scalesim_cmd, [_cfg(tmp_path, R=32, C=32), topo, "--format", "csv",
                                            "--out", str(out)])
    assert res.exit_code == 2 and "too large" in res.output and not out.exists()


def test_sram_of_fewer_than_two_words_refused(tmp_path):
    # WordSize 1024 B leaves one word in 1 kB: no room for the active and the prefetch half
    text = open(_cfg(tmp_path, mode="USER")).read()
    p = tmp_path / "w.cfg"
    p.write_text(text.replace("IfmapSramSzkB: 64", "IfmapSramSzkB: 1")
                 .replace("Dataflow", "WordSize: 1024\nDataflow"))
    with pytest.raises(ConfigError, match=r"IfmapSramSzkB: 1 kB holds 1 word\(s\)"):
        sc.read_config(str(p))


def test_validate_table_case_bad_table_is_an_error_row(tmp_path):
    from archsim.validate import run_case
    (tmp_path / "t.csv").write_text("layer,M,N,K\nx,1,2,3\n")
    (tmp_path / "u.csv").write_text(open(os.path.join(VAL, "cases_user.csv")).read()
                                    .replace(",os,", ",xs,", 1))
    base = {"kind": "scalesim_table", "_file": str(tmp_path / "c.yaml"),
            "metrics": {"rows exact": {"ref": 1, "tol_abs": 0}}}
    for table, message in (("t.csv", "missing column"), ("u.csv", r"u\.csv:\d+: dataflow"),
                           ("nope.csv", "not found"), (None, "needs table")):
        (row,) = run_case({**base, "id": "t", "table": table})
        assert row["status"] == "error" and not row["pass"]
        assert re.search(message, row["message"]), row["message"]
