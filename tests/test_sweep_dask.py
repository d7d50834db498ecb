"""A real Dask LocalCluster (scheduler and workers as separate processes on loopback)
gives results identical to the local executor, on the real simulator."""
import pytest

pytest.importorskip("distributed")

from archsim.sweep.executors import DaskExecutor, LocalExecutor  # noqa: E402
from archsim.sweep.runner import run_sweep  # noqa: E402
from archsim.sweep.spec import compile_spec, load_spec  # noqa: E402
from archsim.sweep.store import Store  # noqa: E402
from archsim.sweep.testing import comparable  # noqa: E402

SPEC = {
    "name": "dask-vs-local",
    "arch": "systolic_128x128",
    "workloads": [{"workload": "llama2-7b", "label": "decode",
                   "set": {"phase": "decode", "kv_len": 256}}],
    "axes": {"array.rows": [32, 64, 128], "array.cols": [32, 128],
             "sram.ifmap": {"values": [256, 1024], "unit": "KiB"}},
    "constraints": ["array.rows * array.cols >= 2048"],
}


def test_dask_local_cluster_matches_local_executor(tmp_path):
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("archsim.api")
    sw = compile_spec(*load_spec(SPEC))
    with LocalExecutor(1, evaluator=sw.evaluator) as ex, Store.create(tmp_path / "local.db", {}) as st:
        p_local = run_sweep(sw, st, ex, poll=0.05)
    cluster = distributed.LocalCluster(processes=True, n_workers=2, threads_per_worker=1, host="127.0.0.1",
                                       dashboard_address=None)
    try:
        with DaskExecutor(scheduler=cluster.scheduler_address) as ex:
            assert ex.capacity == 2
            with Store.create(tmp_path / "dask.db", {}) as st:
                p_dask = run_sweep(sw, st, ex, poll=0.05)
            workers = {r["host"] for r in Store.open(tmp_path / "dask.db").rows()}
    finally:
        cluster.close()
    assert p_local.ok == p_dask.ok == 10 and p_local.skipped == p_dask.skipped == 2
    assert p_dask.failed == 0
    assert comparable(tmp_path / "dask.db") == comparable(tmp_path / "local.db")
    assert workers


def test_dask_worker_killed_mid_point_is_retried(tmp_path):
    """The nanny restarts a worker killed with SIGKILL; the point runs again and the sweep completes."""
    from archsim.sweep.testing import toy_spec
    flag = tmp_path / "kill"
    flag.write_text("")
    sw = compile_spec(*load_spec(toy_spec(evaluator={"module": "archsim.sweep.testing",
                                                     "options": {"kill_flag": str(flag), "delay_s": 0.05}})))
    with DaskExecutor(local_workers=2) as ex, Store.create(tmp_path / "r.db", {}) as st:
        prog = run_sweep(sw, st, ex, poll=0.05)
    assert not flag.exists() and prog.ok == 24 and prog.failed == 0
