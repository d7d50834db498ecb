"""Killing the sweep process (SIGKILL) half way loses no finished point, and --resume
completes the sweep with every point present exactly once and equal to an
uninterrupted run."""
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import yaml

from archsim.sweep.testing import comparable, toy_spec

ROOT = Path(__file__).resolve().parents[1]


def _run(args, **kw):
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "archsim.sweep", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _committed(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(str(db), timeout=5)
        try:
            return con.execute("SELECT COUNT(*) FROM points").fetchone()[0]
        finally:
            con.close()
    except sqlite3.DatabaseError:
        return 0


def test_sigkill_then_resume_equals_uninterrupted_run(tmp_path):
    spec = tmp_path / "spec.yaml"
    # 24 points of ~0.15 s each on 2 workers: ~2 s in all
    spec.write_text(yaml.safe_dump(toy_spec(evaluator={"module": "archsim.sweep.testing",
                                                       "options": {"delay_s": 0.15}})))
    db = tmp_path / "killed.db"
    proc = _run([spec, "--out", db, "--jobs", 2, "--no-progress"])
    deadline = time.time() + 60
    while _committed(db) < 8 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    n_before = _committed(db)
    assert 8 <= n_before < 24, n_before

    resumed = _run([spec, "--out", db, "--resume", "--jobs", 2, "--no-progress"])
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert f"{n_before} already done" in err

    ref = tmp_path / "ref.db"
    full = _run([spec, "--out", ref, "--jobs", 2, "--no-progress"])
    _, err = full.communicate(timeout=120)
    assert full.returncode == 0, err

    got, want = comparable(db), comparable(ref)
    assert len(got) == 24 and got == want
    con = sqlite3.connect(str(db))
    assert con.execute("SELECT COUNT(*), COUNT(DISTINCT id) FROM points").fetchone() == (24, 24)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
