"""The sweep commands: a full round trip, and bad input (exit status 2, clear message,
no results file created or damaged)."""
import hashlib
import socket

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
