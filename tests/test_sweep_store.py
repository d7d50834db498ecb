"""The SQLite results store: one row per point, commits, exports."""
import csv
import sqlite3

import pytest

from archsim.sweep.store import Store, StoreError


def _rec(st, pid, status="ok", **kw):
    base = dict(id=pid, status=status, workload="w", fields={"array.rows": 64, "sram.ifmap": "64 KiB"},
                overrides=["array.rows=64"], metrics={"cycles": 10, "energy_pj": 2.5} if status == "ok" else None)
    base.update(kw)
    return st.record(**base)


def test_create_is_wal_and_refuses_existing(tmp_path):
    p = tmp_path / "r.db"
    st = Store.create(p, {"size": 3})
    assert st.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert st.meta()["size"] == 3
    st.close()
    with pytest.raises(StoreError, match="--resume"):
        Store.create(p, {})
    assert not list(tmp_path.glob("*.creating*"))


def test_one_row_per_point_and_success_is_final(tmp_path):
    st = Store.create(tmp_path / "r.db", {})
    assert _rec(st, "a", "failed", error="boom")
    assert _rec(st, "a", "ok")                     # a failure may be replaced by a success
    assert not _rec(st, "a", "failed", error="x")  # a success is never replaced
    assert _rec(st, "b", "skipped", error="violates")
    assert st.counts() == {"ok": 1, "infeasible": 0, "skipped": 1, "failed": 0}
    (row,) = list(st.rows())
    assert row["id"] == "a" and row["metrics"] == {"cycles": 10, "energy_pj": 2.5} and row["attempts"] == 2
    assert list(row["fields"]) == ["array.rows", "sram.ifmap"]   # axis order kept


def test_commits_are_visible_to_another_connection(tmp_path):
    st = Store.create(tmp_path / "r.db", {})
    _rec(st, "a")
    other = sqlite3.connect(str(tmp_path / "r.db"))
    assert other.execute("SELECT COUNT(*) FROM points").fetchone()[0] == 1
    other.close()


def test_not_a_results_file(tmp_path):
    p = tmp_path / "x.db"
    p.write_text("hello")
    with pytest.raises(StoreError):
        Store.open(p)
    assert p.read_text() == "hello"


def test_export_csv_and_parquet(tmp_path):
    st = Store.create(tmp_path / "r.db", {})
    _rec(st, "a")
    _rec(st, "b", metrics={"cycles": 20, "energy_pj": 1.0, "tokens_per_s": None})
    _rec(st, "c", "failed", error="boom")
    assert st.export_csv(tmp_path / "r.csv") == 2
    rows = list(csv.DictReader(open(tmp_path / "r.csv")))
    assert [r["cycles"] for r in rows] == ["10", "20"] and rows[0]["array.rows"] == "64"
    assert st.export_csv(tmp_path / "all.csv", status=None) == 3
    pq = pytest.importorskip("pyarrow.parquet")
    assert st.export_parquet(tmp_path / "r.parquet") == 2
    t = pq.read_table(tmp_path / "r.parquet")
    assert t.column("cycles").to_pylist() == [10, 20]
    assert t.column("energy_pj").to_pylist() == [2.5, 1.0]


def test_non_finite_numbers_are_never_written_as_json(tmp_path):
    st = Store.create(tmp_path / "r.db", {"x": float("inf")})
    assert _rec(st, "a", metrics={"cycles": 10, "energy_pj": float("inf"), "edp": float("nan")},
                fields={"memory.energy_per_bit": float("inf")}, config={"e": float("-inf")})
    _rec(st, "b")
    (a, b) = list(st.rows(status=None, full=True))
    assert a["status"] == "failed" and "energy_pj" in a["error"] and "edp" in a["error"]
    assert a["metrics"] == {"cycles": 10, "energy_pj": None, "edp": None}
    assert a["fields"] == {"memory.energy_per_bit": "inf"} and a["config"] == {"e": "-inf"}
    assert b["status"] == "ok"
    # every JSON column is valid for SQLite's json functions
    assert st.conn.execute("SELECT COUNT(*) FROM points WHERE json_valid(metrics) AND json_valid(fields) "
                           "AND json_valid(COALESCE(config, '{}'))").fetchone()[0] == 2
    assert st.conn.execute("SELECT json_valid(value) FROM meta WHERE key='x'").fetchone()[0] == 1


def test_export_checks_every_path_first(tmp_path):
    from archsim.sweep.store import OutputPathError
    st = Store.create(tmp_path / "r.db", {})
    _rec(st, "a")
    with pytest.raises(OutputPathError, match="folder"):
        st.export(csv_path=tmp_path / "ok.csv", parquet_path=tmp_path / "nodir" / "x.parquet")
    assert not (tmp_path / "ok.csv").exists()
    with pytest.raises(OutputPathError, match="is a folder"):
        st.export_csv(tmp_path)
