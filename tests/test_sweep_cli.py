"""The sweep commands: a full round trip, and bad input (exit status 2, clear message,
no results file created or damaged)."""
import hashlib
import json
import socket
import sqlite3
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from archsim.sweep.cli import main
from archsim.sweep.store import Store
from archsim.sweep.testing import toy_spec


def write_spec(tmp_path, **changes):
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(toy_spec(**changes), sort_keys=False))
    return p


def invoke(*args):
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return r


def digest(p):
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_round_trip(tmp_path):
    spec = write_spec(tmp_path, constraints=["array.rows * array.cols <= 8192"],
                      metrics={"tps_per_mm2": "tokens_per_s / area_mm2"})
    db = tmp_path / "r.db"
    r = invoke(spec, "--out", db, "--jobs", 2, "--no-progress")
    assert r.exit_code == 0, r.output
    assert "20 ok" in r.output and "4 skipped" in r.output
    r = invoke("status", db)
    assert r.exit_code == 0 and "24 of 24 points stored" in r.output and "ok 20" in r.output
    r = invoke("export", db, "--csv", tmp_path / "r.csv", "--parquet", tmp_path / "r.parquet")
    assert r.exit_code == 0, r.output
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 21
    r = invoke("pareto", db, "--x", "cycles", "--y", "area", "--plot", tmp_path / "p.png")
    assert r.exit_code == 0, r.output
    assert "Pareto front" in r.output and (tmp_path / "p.png").stat().st_size > 10_000
    r = invoke("plot", db, "--x", "array.rows", "--y", "tps_per_mm2", "--hue", "sram.ifmap",
               "--where", "workload == 'decode'", "--out", tmp_path / "q.png")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "q.png").stat().st_size > 10_000
    # running again: resume finds everything done
    r = invoke(spec, "--out", db, "--resume", "--no-progress")
    assert r.exit_code == 0 and "0 points run" in r.output and "20 already done" in r.output


def test_pareto_rows_say_where_in_the_space_they_sit(tmp_path):
    """The front's table shows every field that varies over the points it was drawn from, also
    when the front holds one value of it: here both front points are the wide hardware's prefill
    (it beats the narrow one's decode on both metrics), and the table still says so."""
    spec = write_spec(tmp_path, arch=[{"arch": "toy", "label": "narrow", "set": {"array.cols": 32}},
                                      {"arch": "toy", "label": "wide", "set": {"array.cols": 512}}],
                      axes={"array.rows": [32, 64]})
    db = tmp_path / "r.db"
    assert invoke(spec, "--out", db, "--no-progress").exit_code == 0
    where = "workload == 'wide/prefill' or workload == 'narrow/decode'"
    args = ("pareto", db, "--x", "utilization", "--y", "tokens_per_s", "--where", where)
    r = invoke(*args, "--json")
    assert r.exit_code == 0, r.output
    front = json.loads(r.output)
    assert len(front) == 2 and {row["workload"] for row in front} == {"wide/prefill"}
    r = invoke(*args)
    assert r.exit_code == 0, r.output
    header = " ".join(r.output.split("\n")[:4])
    for col in ("workload", "arch", "array.rows"):
        assert col in header, (col, header)


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("changes, needle", [
    ({"axes": {"array.rowz": [64, 128]}}, "did you mean 'array.rows'"),
    ({"axes": {"array.rows": []}}, "empty axis"),
    ({"axes": {"workload.batch": {"range": [8, 1]}}}, "empty axis"),
    ({"constraints": ["array.rows *** 2 < 4"]}, "cannot parse"),
    ({"constraints": ["open('x').read()"]}, "not allowed"),
    ({"objectives": ["min cylces"]}, "did you mean 'cycles'"),
    ({"serach": {"method": "grid"}}, "did you mean 'search'"),
    # a derived metric may not replace a built-in one (or an alias of one)
    ({"metrics": {"cycles": "cycles * 2"}}, "metrics.cycles: 'cycles' is a built-in metric"),
    ({"metrics": {"energy": "energy_pj * 2"}}, "metrics.energy: 'energy' is an alias"),
    # constraints that can only fail when evaluated are found before any file is made
    ({"constraints": ["array.rows < 'abc'"]}, "constraints[0]: cannot evaluate"),
    ({"constraints": ["array.rows * array.cols > 0", "array.rows / 0 < 1"]}, "constraints[1]: cannot evaluate"),
    ({"constraints": ["10 ** 10 ** 10 > 1"]}, "constraints[0]: cannot evaluate"),
    ({"constraints": ["1 / (array.rows - 64) < 1"]}, "division by zero (at workload 'prefill', array.rows=64)"),
    ({"constraints": ["cycles / 0 < 1"]}, "constraints[0]: cannot evaluate"),
    ({"metrics": {"x": "cycles + 'abc'"}}, "metrics.x: cannot evaluate"),
    # an evaluator module without the entry points
    ({"evaluator": {"module": "os"}}, "evaluator.module: 'os' is not a sweep evaluator"),
    # two workloads with one label (given, or made from the same workload)
    ({"workloads": [{"workload": "toy-llm", "label": "w"},
                    {"workload": "toy-llm", "label": "w", "set": {"batch": 2}}]}, "workloads[1].label: duplicate"),
    ({"workloads": ["toy-llm", "toy-llm"]}, "workloads[1].label"),
    ({"workloads": [{"workload": "toy-llm", "label": "a"}, {"workload": "toy-llm", "label": "b"}]},
     "workloads[1]: resolves to the same hardware and workload as workloads[0]"),
    # a bad base override is named as the spec's own field
    ({"set": {"clock": 0}}, "set.clock: must be positive"),
    ({"workloads": [{"workload": "toy-llm", "label": "w", "set": {"batch": 0}}]}, "workloads[0].set.batch:"),
])
def test_bad_spec_exits_2_and_writes_nothing(tmp_path, changes, needle):
    spec = write_spec(tmp_path, **changes)
    db = tmp_path / "r.db"
    r = invoke(spec, "--out", db)
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output
    assert not db.exists() and not list(tmp_path.glob("r.db*"))


def test_unreachable_scheduler(tmp_path):
    pytest.importorskip("distributed")
    spec = write_spec(tmp_path)
    db = tmp_path / "r.db"
    addr = f"tcp://127.0.0.1:{_free_port()}"
    r = invoke(spec, "--out", db, "--scheduler", addr, "--connect-timeout", 1)
    assert r.exit_code == 2 and "cannot reach Dask scheduler" in r.output and addr in r.output
    assert not list(tmp_path.glob("r.db*"))
    # an existing results file is left exactly as it was
    assert invoke(spec, "--out", db, "--no-progress", "-j", 1).exit_code == 0
    before = digest(db)
    r = invoke(spec, "--out", db, "--resume", "--scheduler", addr, "--connect-timeout", 1)
    assert r.exit_code == 2 and digest(db) == before
    assert Store.open(db).counts()["ok"] == 24


def test_other_bad_input(tmp_path):
    spec = write_spec(tmp_path)
    db = tmp_path / "r.db"
    assert invoke(tmp_path / "missing.yaml", "--out", db).exit_code == 2
    (tmp_path / "bad.yaml").write_text("axes: [unclosed\n")
    r = invoke(tmp_path / "bad.yaml", "--out", db)
    assert r.exit_code == 2 and "malformed YAML" in r.output
    db.write_text("not a database")
    r = invoke(spec, "--out", db)
    assert r.exit_code == 2 and "--resume" in r.output
    r = invoke(spec, "--out", db, "--resume")
    assert r.exit_code == 2 and "not an archsim sweep results file" in r.output
    assert db.read_text() == "not a database"
    r = invoke("status", tmp_path / "nope.db")
    assert r.exit_code == 2 and "no such results file" in r.output
    good = tmp_path / "g.db"
    assert invoke(spec, "--out", good, "--no-progress").exit_code == 0
    r = invoke("pareto", good, "--x", "cycels", "--y", "energy")
    assert r.exit_code == 2 and "did you mean 'cycles'" in r.output
    r = invoke("plot", good, "--x", "array.rows", "--y", "cycles", "--where", "array.rows >")
    assert r.exit_code == 2 and "cannot parse" in r.output


def test_command_line_budget_satisfies_random_search(tmp_path):
    """--method/--points/--time are merged into the spec before it is checked."""
    spec = write_spec(tmp_path)
    r = invoke(spec, "--out", tmp_path / "a.db", "--method", "random", "--points", 5, "--no-progress", "-j", 1)
    assert r.exit_code == 0, r.output
    assert sum(Store.open(tmp_path / "a.db").counts().values()) == 5
    spec = write_spec(tmp_path, search={"method": "random"})
    r = invoke(spec, "--out", tmp_path / "b.db", "--time", "1 min", "--no-progress", "-j", 1)
    assert r.exit_code == 0, r.output
    assert Store.open(tmp_path / "b.db").counts()["ok"] == 24
    r = invoke(spec, "--out", tmp_path / "c.db")                 # still no budget anywhere
    assert r.exit_code == 2 and "search.points" in r.output and "--points" in r.output
    assert not (tmp_path / "c.db").exists()


def test_constraint_error_leaves_existing_file_untouched(tmp_path):
    spec = write_spec(tmp_path)
    db = tmp_path / "r.db"
    assert invoke(spec, "--out", db, "--no-progress", "-j", 1).exit_code == 0
    before = digest(db)
    bad = write_spec(tmp_path, constraints=["array.rows < 'abc'"])
    r = invoke(bad, "--out", db, "--resume", "--no-progress")
    assert r.exit_code == 2 and "constraints[0]" in r.output and "Traceback" not in r.output
    assert digest(db) == before
    st = Store.open(db)
    assert st.meta()["spec"].get("constraints") == [] and len(st.meta()["runs"]) == 1


def test_undefined_derived_metrics_are_counted_and_warned(tmp_path):
    spec = write_spec(tmp_path, metrics={"never": "cycles / 0", "some": "1 / (array.rows - 32)",
                                         "fine": "cycles * 2"})
    db = tmp_path / "r.db"
    r = invoke(spec, "--out", db, "--no-progress", "-j", 1)
    assert r.exit_code == 0, r.output
    assert "metrics.never on 24 of 24 points" in r.output and "metrics.some on 8 of 24 points" in r.output
    assert "metrics.fine" not in r.output
    assert "warning: metrics.never is undefined on every point" in r.output and "division by zero" in r.output
    assert "warning: metrics.some" not in r.output
    rows = list(Store.open(db).rows())
    assert len(rows) == 24 and all(x["status"] == "ok" and x["metrics"]["never"] is None for x in rows)
    r = invoke("status", db)
    assert r.exit_code == 0 and "metrics.never on 24 of 24 points" in r.output
    assert "metrics.some on 8 of 24 points" in r.output and "warning: metrics.never" in r.output
    r = invoke("status", db, "--json")
    assert json.loads(r.output)["undefined_metrics"] == {"never": 24, "some": 8, "fine": 0}


def test_non_finite_result_is_a_failure_not_invalid_json(tmp_path):
    spec = write_spec(tmp_path, evaluator={"module": "archsim.sweep.testing",
                                           "options": {"inf_if": "array.rows=32"}})
    db = tmp_path / "r.db"
    r = invoke(spec, "--out", db, "--no-progress", "-j", 1)
    assert r.exit_code == 0 and "16 ok, 8 failed" in r.output, r.output
    con = sqlite3.connect(str(db))
    rows = con.execute("SELECT status, error, json_extract(metrics, '$.energy_pj') FROM points").fetchall()
    assert len(rows) == 24
    failed = [x for x in rows if x[0] == "failed"]
    assert len(failed) == 8 and all("energy_pj" in e and "not finite" in e for _, e, _ in failed)
    r = invoke("status", db)
    assert r.exit_code == 0 and "not finite" in r.output
    # a file written before this fix, holding Infinity and NaN: status and export tolerate it
    con.execute("""UPDATE points SET status='ok', error=NULL,
                   metrics='{"cycles": 5, "energy_pj": Infinity, "edp": NaN}' WHERE status='failed'""")
    con.commit()
    con.close()
    r = invoke("status", db)
    assert r.exit_code == 0 and "best cycles (min): 5" in r.output, r.output
    r = invoke("export", db, "--csv", tmp_path / "r.csv")
    assert r.exit_code == 0 and "inf" not in (tmp_path / "r.csv").read_text().lower()


@pytest.fixture(scope="module")
def small_db(tmp_path_factory):
    d = tmp_path_factory.mktemp("small")
    spec = write_spec(d)
    assert invoke(spec, "--out", d / "r.db", "--no-progress", "-j", 1).exit_code == 0
    return d / "r.db"


@pytest.mark.parametrize("args, needle", [
    (["export", "{db}", "--csv", "nodir/x.csv"], "--csv nodir/x.csv: folder nodir does not exist"),
    (["export", "{db}", "--parquet", "nodir/x.parquet"], "--parquet nodir/x.parquet: folder nodir"),
    (["export", "{db}", "--csv", "ok.csv", "--parquet", "nodir/x.parquet"], "--parquet nodir/x.parquet"),
    (["export", "{db}", "--csv", "/proc/x.csv"], "--csv /proc/x.csv: cannot create a file in /proc"),
    (["pareto", "{db}", "--x", "cycles", "--y", "energy", "--plot", "p.xyz"], "unknown image format '.xyz'"),
    (["pareto", "{db}", "--x", "cycles", "--y", "energy", "--plot", "p"], "no file suffix"),
    (["pareto", "{db}", "--x", "cycles", "--y", "energy", "--plot", "/proc/p.png"], "--plot /proc/p.png"),
    (["pareto", "{db}", "--x", "cycles", "--y", "energy", "--plot", "nodir/p.png"], "folder nodir does not"),
    (["plot", "{db}", "--x", "array.rows", "--y", "cycles", "--out", "/proc/p.png"], "--out /proc/p.png"),
    (["plot", "{db}", "--x", "array.rows", "--y", "cycles", "--out", "nodir/p.png"], "--out nodir/p.png"),
])
def test_output_paths_are_checked_before_anything_is_written(tmp_path, small_db, monkeypatch, args, needle):
    if "/proc/" in needle and not Path("/proc").is_dir():
        pytest.skip("no /proc")
    if "parquet" in " ".join(args):
        pytest.importorskip("pyarrow")
    monkeypatch.chdir(tmp_path)
    r = invoke(*[a.format(db=small_db) for a in args])
    assert r.exit_code == 2 and needle in r.output and "Traceback" not in r.output, r.output
    assert "Pareto front" not in r.output          # the front is not printed before the failure
    assert not list(tmp_path.iterdir())            # not ok.csv, no temporary file


def test_option_combinations(tmp_path):
    spec = write_spec(tmp_path)
    db = tmp_path / "r.db"
    r = invoke(spec, "--out", db, "--retry-failed")
    assert r.exit_code == 2 and "--retry-failed" in r.output and "--resume" in r.output
    for t in ("-1", "0", "nan"):
        r = invoke(spec, "--out", db, "--dask-local", 1, "--connect-timeout", t)
        assert r.exit_code == 2 and "--connect-timeout: expected a positive number" in r.output, r.output
        assert "could not convert" not in r.output
    assert not list(tmp_path.glob("r.db*"))


def test_real_simulator_names_the_spec_set_field(tmp_path):
    pytest.importorskip("archsim.api")
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump({"arch": "systolic_128x128", "set": {"clock": 0},
                                 "workloads": [{"workload": "gemm", "label": "g"}],
                                 "axes": {"array.rows": [32, 64]}}))
    r = invoke(p, "--out", tmp_path / "r.db")
    assert r.exit_code == 2 and "set.clock:" in r.output and "workloads[0] (clock)" not in r.output, r.output
    assert not list(tmp_path.glob("r.db*"))


def test_status_lists_why_points_are_infeasible(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump({"name": "fit", "arch": "h100",
                                 "workloads": [{"workload": "llama2-70b", "label": "decode",
                                                "set": {"phase": "decode", "batch": 1, "kv_len": 256}}],
                                 "axes": {"parallel.tensor": [1, 2]}}))
    db = tmp_path / "r.db"
    r = invoke(p, "--out", db, "--no-progress")
    assert r.exit_code == 0 and "1 ok, 0 failed, 1 infeasible" in r.output, r.output
    r = invoke("status", db)
    assert "infeasible:\n    1 x memory.capacity: the model's weights" in r.output, r.output
    summary = json.loads(invoke("status", db, "--json").output)
    assert summary["infeasible"] == 1 and summary["top_failures"] == []
    assert summary["top_infeasible"][0]["count"] == 1
    assert "memory.capacity" in summary["top_infeasible"][0]["reason"]
