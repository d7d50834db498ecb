"""Running sweeps in-process: executors, retries, failures, constraints, budgets, resume."""
import pytest

from archsim.sweep.executors import LocalExecutor
from archsim.sweep.runner import run_sweep
from archsim.sweep.search import make_proposer
from archsim.sweep.spec import compile_spec, load_spec
from archsim.sweep.store import Store
from archsim.sweep.testing import comparable, toy_spec


def sweep(tmp_path, name, jobs=1, retries=None, **changes):
    spec, base = load_spec(toy_spec(**changes))
    sw = compile_spec(spec, base)
    db = tmp_path / f"{name}.db"
    with LocalExecutor(jobs, evaluator=sw.evaluator) as ex, Store.create(db, {"size": sw.size}) as st:
        prog = run_sweep(sw, st, ex, proposer=make_proposer(sw), retries=retries, poll=0.05)
        restarts = ex.restarts
    return sw, db, prog, restarts


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return sweep(tmp_path_factory.mktemp("ref"), "ref", jobs=1)


def test_every_point_once(reference):
    sw, db, prog, _ = reference
    rows = comparable(db)
    assert len(rows) == sw.size == prog.ok == 24
    assert {sw.point_id(p) for p in sw.grid()} == set(rows)
    assert all(r[0] == "ok" and r[3]["cycles"] > 0 and r[4]["array"]["rows"] in (32, 64, 128)
               for r in rows.values())


def test_two_processes_give_identical_results(tmp_path, reference):
    _, db2, prog, _ = sweep(tmp_path, "two", jobs=2)
    assert comparable(db2) == comparable(reference[1])


def test_worker_killed_mid_point_is_retried(tmp_path, reference):
    flag = tmp_path / "kill-once"
    flag.write_text("")
    sw, db, prog, restarts = sweep(tmp_path, "killed", jobs=2,
                                   evaluator={"module": "archsim.sweep.testing",
                                              "options": {"kill_flag": str(flag)}})
    assert not flag.exists()                 # some worker found the flag and died
    assert restarts == 1 and prog.retried == 1 and prog.failed == 0
    rows = comparable(db)
    assert len(rows) == 24 and all(r[0] == "ok" for r in rows.values())
    # same results as the undisturbed run (ids differ: the evaluator options are not identity)
    ref = comparable(reference[1])
    assert sorted(r[3]["cycles"] for r in rows.values()) == sorted(r[3]["cycles"] for r in ref.values())


def test_worker_that_keeps_dying_gives_a_failure_not_a_crash(tmp_path):
    flag = tmp_path / "kill"
    flag.write_text("5")          # more deaths than attempts
    spec = toy_spec(axes={"array.rows": [64, 128]}, workloads=["toy-llm"],
                    evaluator={"module": "archsim.sweep.testing", "options": {"kill_flag": str(flag)}})
    sw = compile_spec(*load_spec(spec))
    with LocalExecutor(1, evaluator=sw.evaluator) as ex, Store.create(tmp_path / "r.db", {}) as st:
        prog = run_sweep(sw, st, ex, retries=1, poll=0.05)
        rows = list(st.rows(status=None))
    # point 1: 2 attempts, gives up; point 2: 2 attempts, gives up; 1 death left in the flag
    assert prog.failed == 2 and prog.retried == 2 and flag.read_text() == "1"
    assert all(r["status"] == "failed" and "gave up after 2 attempts" in r["error"] for r in rows)


def test_failures_skips_and_infeasible_are_counted(tmp_path):
    sw, db, prog, _ = sweep(tmp_path, "mixed", jobs=2,
                            constraints=["array.rows * array.cols <= 8192", "area_mm2 < 14"],
                            evaluator={"module": "archsim.sweep.testing",
                                       "options": {"fail_if": "array.rows=32"}})
    counts = Store.open(db).counts()
    assert prog.skipped == counts["skipped"] == 4
    assert prog.failed == counts["failed"] == 8
    assert counts["infeasible"] == prog.infeasible > 0
    assert sum(counts.values()) == 24
    failed = [r for r in comparable(db).values() if r[0] == "failed"]
    assert all("rejected by the toy evaluator" in r[5] for r in failed)


def test_budget_then_resume_completes_without_rerunning(tmp_path, reference):
    spec, base = load_spec(toy_spec())
    sw = compile_spec(spec, base)
    db = tmp_path / "r.db"
    with LocalExecutor(2) as ex:
        with Store.create(db, {}) as st:
            p1 = run_sweep(sw, st, ex, proposer=make_proposer(sw), budget_points=10, poll=0.05)
        assert p1.done == 10 and p1.stopped_by == "points"
        with Store.open(db) as st:
            p2 = run_sweep(sw, st, ex, proposer=make_proposer(sw), poll=0.05)
    assert p2.resumed == 10 and p2.done == 14
    assert comparable(db) == comparable(reference[1])


def test_random_search_is_reproducible(tmp_path):
    ids = []
    for i in range(2):
        _, db, prog, _ = sweep(tmp_path, f"rand{i}", jobs=1,
                               search={"method": "random", "points": 7, "seed": 3})
        assert prog.done == 7
        ids.append(set(comparable(db)))
    assert ids[0] == ids[1]


def test_optuna_search_respects_the_budget(tmp_path):
    pytest.importorskip("optuna")
    axes = {"array.rows": [16, 32, 64, 128, 256], "array.cols": [16, 32, 64, 128, 256],
            "sram.ifmap": {"values": [64, 256, 1024], "unit": "KiB"}}
    for objectives, sampler in ((["min edp"], "tpe"), (["min cycles", "min area"], "nsga2")):
        _, db, prog, _ = sweep(tmp_path, f"opt-{sampler}", jobs=2, axes=axes, workloads=["toy-llm"],
                               objectives=objectives, search={"method": "optuna", "points": 20, "seed": 1,
                                                              "sampler": "auto"})
        rows = comparable(db)
        assert prog.done == len(rows) == 20


def test_optuna_resume_continues_the_study(tmp_path):
    pytest.importorskip("optuna")
    spec, base = load_spec(toy_spec(workloads=["toy-llm"],
                                    axes={"array.rows": [16, 32, 64, 128, 256], "array.cols": [16, 32, 64, 128]},
                                    search={"method": "optuna", "points": 8, "seed": 2}))
    sw = compile_spec(spec, base)
    db = tmp_path / "r.db"
    with LocalExecutor(2) as ex:
        with Store.create(db, {}) as st:
            assert run_sweep(sw, st, ex, poll=0.05).done == 8
        with Store.open(db) as st:
            p2 = run_sweep(sw, st, ex, proposer=make_proposer(sw), budget_points=14, poll=0.05)
    assert p2.done == 6 and len(comparable(db)) == 14


def test_constraint_that_fails_on_some_points_fails_those_points(tmp_path, monkeypatch):
    from archsim.sweep.spec import Sweep
    monkeypatch.setattr(Sweep, "PROBE_LIMIT", 1)       # the up-front check sees only the first point
    _, db, prog, _ = sweep(tmp_path, "c", jobs=1, constraints=["1 / (array.rows - 64) < 1",
                                                               "cycles / (array.cols - 128) < 0"])
    rows = comparable(db).values()
    pre = [r for r in rows if r[0] == "failed" and r[5].startswith("constraints[0]:")]
    post = [r for r in rows if r[0] == "failed" and r[5].startswith("constraints[1]:")]
    assert len(pre) == 8 and all("division by zero" in r[5] and r[3] is None for r in pre)
    assert len(post) == 8 and all("division by zero" in r[5] for r in post)
    assert prog.failed == 16 and prog.infeasible == 0 and len(rows) == 24


def test_a_design_that_cannot_hold_the_model_is_infeasible_not_failed(tmp_path):
    """One H100 cannot hold Llama-2-70B (about 140 GB of FP16 weights); two can. The lowering
    error of the first point is the point's infeasibility, stored with its reason and told to
    the search as such; the run goes on."""
    spec = {"name": "fit", "arch": "h100",
            "workloads": [{"workload": "llama2-70b", "label": "decode",
                           "set": {"phase": "decode", "batch": 1, "kv_len": 256}}],
            "axes": {"parallel.tensor": [1, 2]},
            "objectives": ["max tokens_per_s"]}
    sw = compile_spec(*load_spec(spec))
    told = []
    proposer = make_proposer(sw)
    tell = proposer.tell
    proposer.tell = lambda p, status, metrics: (told.append(status), tell(p, status, metrics))
    db = tmp_path / "fit.db"
    with LocalExecutor(1, evaluator=sw.evaluator) as ex, Store.create(db, {"size": sw.size}) as st:
        prog = run_sweep(sw, st, ex, proposer=proposer, poll=0.05)
    assert (prog.ok, prog.infeasible, prog.failed) == (1, 1, 0)
    assert sorted(told) == ["infeasible", "ok"]
    rows = {r[2]["parallel.tensor"]: r for r in comparable(db).values()}
    assert rows[2][0] == "ok" and rows[2][3]["tokens_per_s"] > 0
    status, *_, error = rows[1]
    assert status == "infeasible" and error.startswith("memory.capacity: the model's weights")
    assert Store.open(db).counts()["infeasible"] == 1
