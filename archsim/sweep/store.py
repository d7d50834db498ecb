"""The results store: one SQLite file in WAL mode, one row per point.

Only the parent process writes. Every finished point is committed in its own
transaction the moment it arrives, so killing the sweep at any instant loses no
finished point (SQLite's WAL survives a killed process; ``synchronous=NORMAL`` keeps
commits cheap and only a power cut could roll back the last few).

A point is identified by a stable hash (:meth:`archsim.sweep.spec.Sweep.point_id`);
the primary key makes "exactly one row per point" a property of the file.
"""
from __future__ import annotations

import csv
import json
import math
import os
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import archsim
from archsim.errors import ArchsimError, InputFileError, OutputError
from archsim.report.files import atomic_outputs

SCHEMA_VERSION = 1
FINAL = ("ok", "infeasible", "skipped", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    id              TEXT PRIMARY KEY,
    seq             INTEGER NOT NULL,
    status          TEXT NOT NULL,      -- ok | failed | infeasible | skipped
    workload        TEXT NOT NULL,      -- workload label
    fields          TEXT NOT NULL,      -- JSON: axis field -> value
    overrides       TEXT NOT NULL,      -- JSON list of dotted overrides
    metrics         TEXT,               -- JSON: metric -> value (incl. derived)
    config          TEXT,               -- JSON: resolved hardware description
    workload_config TEXT,               -- JSON: resolved workload
    error           TEXT,               -- failure message or violated constraint
    attempts        INTEGER NOT NULL DEFAULT 1,
    archsim_version TEXT,
    host            TEXT,
    elapsed_s       REAL,
    finished_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS points_status ON points(status);
"""


class StoreError(ArchsimError):
    """A results file that cannot be used (not a sweep database, wrong schema, locked)."""


class Store:
    def __init__(self, path: str | os.PathLike, conn: sqlite3.Connection):
        self.path = Path(path)
        self.conn = conn
        self._seq = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM points").fetchone()[0]

    # ------------------------------------------------------------------ opening
    @classmethod
    def create(cls, path: str | os.PathLike, meta: dict[str, Any]) -> "Store":
        path = Path(path)
        if path.exists():
            raise StoreError(f"{path} already exists; pass --resume to continue that sweep "
                             f"or choose another --out")
        if path.parent and not path.parent.exists():
            raise StoreError(f"folder {path.parent} does not exist")
        tmp = path.with_name(path.name + ".creating")
        for p in (tmp, Path(str(tmp) + "-wal"), Path(str(tmp) + "-shm")):
            if p.exists():
                p.unlink()
        conn = _connect(tmp)
        conn.executescript(_SCHEMA)
        with conn:
            conn.executemany("INSERT INTO meta VALUES (?, ?)", [
                ("schema_version", str(SCHEMA_VERSION)),
                ("created_at", repr(time.time())),
                ("archsim_version", archsim.__version__),
                *[(k, _j(v)) for k, v in meta.items()],
            ])
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.close()
        for p in (Path(str(tmp) + "-wal"), Path(str(tmp) + "-shm")):
            if p.exists():
                p.unlink()
        os.replace(tmp, path)     # the file appears complete or not at all
        return cls(path, _connect(path))

    @classmethod
    def open(cls, path: str | os.PathLike, readonly: bool = False) -> "Store":
        path = Path(path)
        if not path.is_file():
            raise InputFileError(f"no such results file: {path}")
        try:
            conn = sqlite3.connect(str(path), timeout=30)
            row = conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        except sqlite3.DatabaseError as e:
            conn.close()
            raise StoreError(f"{path} is not an archsim sweep results file ({e})") from None
        if row is None or int(row[0]) != SCHEMA_VERSION:
            conn.close()
            raise StoreError(f"{path}: unsupported results schema {row[0] if row else '?'}")
        if not readonly:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
        return cls(path, conn)

    def close(self) -> None:
        try:
            self.conn.close()
        except sqlite3.Error:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ------------------------------------------------------------------ meta
    def meta(self) -> dict[str, Any]:
        out = {}
        for k, v in self.conn.execute("SELECT key, value FROM meta"):
            try:
                out[k] = json.loads(v)
            except json.JSONDecodeError:
                out[k] = v
        return out

    def set_meta(self, key: str, value: Any) -> None:
        with self.conn:
            self.conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                              (key, _j(value)))

    # ------------------------------------------------------------------ points
    def record(self, *, id: str, status: str, workload: str, fields: dict, overrides: list,
               metrics: Optional[dict] = None, config: Any = None, workload_config: Any = None,
               error: Optional[str] = None, attempts: int = 1, archsim_version: Optional[str] = None,
               host: Optional[str] = None, elapsed_s: Optional[float] = None) -> bool:
        """Commit one finished point. Only a stored failure or skip is ever replaced; returns
        False when the point was already stored as finished."""
        assert status in FINAL, status
        bad = nonfinite(metrics)
        if bad:
            # a number that is not finite is not a result, and not valid JSON either
            if status in ("ok", "infeasible"):
                status = "failed"
                error = nonfinite_message(bad) + (f"; {error}" if error else "")
            metrics = {k: (None if k in dict(bad) else v) for k, v in metrics.items()}
        self._seq += 1
        with self.conn:
            cur = self.conn.execute(
                """INSERT INTO points (id, seq, status, workload, fields, overrides, metrics, config,
                       workload_config, error, attempts, archsim_version, host, elapsed_s, finished_at)
                   VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
                   ON CONFLICT(id) DO UPDATE SET
                       seq=excluded.seq, status=excluded.status, metrics=excluded.metrics,
                       config=excluded.config, workload_config=excluded.workload_config,
                       error=excluded.error, attempts=points.attempts + excluded.attempts,
                       archsim_version=excluded.archsim_version, host=excluded.host,
                       elapsed_s=excluded.elapsed_s, finished_at=excluded.finished_at
                   WHERE points.status IN ('failed', 'skipped')""",
                (id, self._seq, status, workload, _j(fields, sort=False), _j(overrides), _j(metrics), _j(config),
                 _j(workload_config), error, attempts, archsim_version, host, elapsed_s, time.time()))
            return cur.rowcount > 0

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in FINAL}
        out.update(dict(self.conn.execute("SELECT status, COUNT(*) FROM points GROUP BY status")))
        return out

    def rows(self, status: Optional[Iterable[str]] = ("ok",), full: bool = False) -> Iterator[dict]:
        """Points as dicts with keys id, status, workload, fields, metrics, error, ... (seq order)."""
        cols = "id, seq, status, workload, fields, overrides, metrics, error, attempts, archsim_version, host, elapsed_s, finished_at"
        if full:
            cols += ", config, workload_config"
        q = f"SELECT {cols} FROM points"
        args: tuple = ()
        if status is not None:
            status = list(status)
            q += f" WHERE status IN ({','.join('?' * len(status))})"
            args = tuple(status)
        q += " ORDER BY seq"
        cur = self.conn.execute(q, args)
        names = [d[0] for d in cur.description]
        for r in cur:
            d = dict(zip(names, r))
            for k in ("fields", "overrides", "metrics", "config", "workload_config"):
                if k in d:
                    d[k] = json.loads(d[k]) if d[k] is not None else None
            yield d

    # ------------------------------------------------------------------ export
    def table(self, status=("ok",)) -> tuple[list[str], list[list[Any]]]:
        """A flat table: id, status, workload, one column per field, one per metric, error."""
        rows = list(self.rows(status))
        fields: list[str] = []
        metrics: list[str] = []
        for r in rows:
            for k in r["fields"]:
                if k not in fields and k != "workload":
                    fields.append(k)
            for k in (r["metrics"] or {}):
                if k not in metrics:
                    metrics.append(k)
        header = ["id", "status", "workload", *fields, *metrics, "error", "archsim_version"]
        out = []
        for r in rows:
            m = r["metrics"] or {}
            out.append([r["id"], r["status"], r["workload"], *[r["fields"].get(f) for f in fields],
                        *[_finite_or_none(m.get(k)) for k in metrics], r["error"], r["archsim_version"]])
        return header, out

    def export_csv(self, path: str | os.PathLike, status=("ok",)) -> int:
        return self.export(csv_path=path, status=status)

    def export_parquet(self, path: str | os.PathLike, status=("ok",)) -> int:
        return self.export(parquet_path=path, status=status)

    def export(self, csv_path=None, parquet_path=None, status=("ok",)) -> int:
        """Write the table as CSV and/or Parquet: every path is checked before anything is
        written, and the files appear together or not at all. Returns the number of rows."""
        writers = [(p, o, w) for p, o, w in ((csv_path, "--csv", _write_csv), (parquet_path, "--parquet",
                                                                                _write_parquet)) if p is not None]
        if parquet_path is not None:
            _pyarrow()
        with atomic_outputs([(p, o) for p, o, _ in writers]) as tmps:
            header, rows = self.table(status)
            for tmp, (_, _, write) in zip(tmps, writers):
                write(tmp, header, rows)
        return len(rows)


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ArchsimError("Parquet export needs pyarrow: pip install 'archsim[dist]'") from None
    return pa, pq


def _write_csv(tmp: Path, header: list, rows: list) -> None:
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow(["" if v is None else v for v in r])


def _write_parquet(tmp: Path, header: list, rows: list) -> None:
    pa, pq = _pyarrow()
    cols = {}
    for i, h in enumerate(header):
        vals = [r[i] for r in rows]
        kinds = {type(v) for v in vals if v is not None}
        if kinds <= {int} and kinds:
            cols[h] = pa.array(vals, pa.int64())
        elif kinds <= {int, float} and kinds:
            cols[h] = pa.array([None if v is None else float(v) for v in vals], pa.float64())
        elif kinds <= {bool} and kinds:
            cols[h] = pa.array(vals, pa.bool_())
        else:
            cols[h] = pa.array([None if v is None else str(v) for v in vals], pa.string())
    pq.write_table(pa.table(cols), tmp)


#: an output file that cannot be written (the one error of archsim.report.files)
OutputPathError = OutputError


def nonfinite(metrics: Optional[dict]) -> list[tuple[str, Any]]:
    """(name, value) of every metric that is a number but not a finite one (inf, nan)."""
    out = []
    for k, v in (metrics or {}).items():
        if isinstance(v, (bool, int, str)) or v is None or not hasattr(v, "__float__"):
            continue
        try:
            if not math.isfinite(float(v)):
                out.append((k, v))
        except (TypeError, ValueError, OverflowError):
            continue
    return out


def nonfinite_message(bad: list[tuple[str, Any]]) -> str:
    names = ", ".join(f"{k} = {float(v)}" for k, v in bad)
    return (f"the result has a metric that is not finite ({names}): not stored; "
            f"an input value is probably out of range")


def _finite_or_none(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _sanitize(v: Any) -> Any:
    """``v`` with every non-finite float replaced by its name ('inf', '-inf', 'nan'), so
    that the JSON written is valid (SQLite's json functions reject Infinity and NaN)."""
    if isinstance(v, float):
        return v if math.isfinite(v) else str(v)
    if isinstance(v, dict):
        return {k: _sanitize(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_sanitize(x) for x in v]
    return v


def as_stored(v: Any) -> Any:
    """``v`` as the store keeps it (and gives it back)."""
    return None if v is None else json.loads(_j(v))


def _j(v: Any, sort: bool = True) -> Optional[str]:
    if v is None:
        return None
    try:
        return json.dumps(v, sort_keys=sort, default=_jsonable, allow_nan=False)
    except ValueError:      # a non-finite number somewhere (numpy ones become floats first)
        return json.dumps(_sanitize(json.loads(json.dumps(v, sort_keys=sort, default=_jsonable))),
                          sort_keys=sort, allow_nan=False)


def _jsonable(v):
    try:
        import numpy as np
        if isinstance(v, np.integer):
            return int(v)
        if isinstance(v, np.floating):
            return float(v)
        if isinstance(v, np.ndarray):
            return v.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(v)


def _connect(path: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(str(path), timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    except sqlite3.DatabaseError as e:
        raise StoreError(f"cannot open results file {path}: {e}") from None
    return conn


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not (isinstance(v, float) and math.isnan(v))
