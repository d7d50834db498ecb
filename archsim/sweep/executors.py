"""Executors: where points run. One small interface, two implementations.

``submit(task)`` hands a point to the executor; ``wait(timeout)`` returns the outcomes
that finished, each ``(task, outcome)``, where ``outcome`` is the worker's result dict
(``status`` ``ok`` or ``failed``) or ``{"status": "crashed", "error": ...}`` when the
worker process died during the point. The driver retries crashed points; the executor
never runs a point twice on its own after a success.

- :class:`LocalExecutor`: long-lived worker processes on this machine (forkserver start,
  the evaluator imported once per worker so numba's cache is loaded once), one pipe per
  worker so the parent knows exactly which point a dead worker was running.
- :class:`DaskExecutor`: a Dask distributed cluster (an existing scheduler address, or a
  LocalCluster started here).
"""
from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import time
from collections import deque
from multiprocessing.connection import wait as mp_wait
from typing import Any, Optional

from archsim.errors import ArchsimError


class ExecutorError(ArchsimError):
    """The executor could not start (e.g. an unreachable Dask scheduler)."""


class Executor:
    name = "base"
    capacity = 1          # points that run at once

    def submit(self, task: dict) -> None:
        raise NotImplementedError

    def wait(self, timeout: Optional[float] = None) -> list[tuple[dict, dict]]:
        raise NotImplementedError

    @property
    def inflight(self) -> int:
        raise NotImplementedError

    def describe(self) -> str:
        return self.name

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------- local

def _worker_main(conn, evaluator: str) -> None:
    from archsim.sweep import worker
    try:
        worker.warm(evaluator)
    except Exception:     # the failure shows up, with its message, in every point instead
        pass
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        if task is None:
            return
        try:
            out = worker.run_point(task)
        except KeyboardInterrupt:
            return
        try:
            conn.send(out)
        except (BrokenPipeError, OSError):
            return


class _Proc:
    __slots__ = ("proc", "conn", "task")

    def __init__(self, proc, conn):
        self.proc, self.conn, self.task = proc, conn, None


def _context():
    methods = mp.get_all_start_methods()
    if "forkserver" in methods:
        ctx = mp.get_context("forkserver")
        try:
            ctx.set_forkserver_preload(["archsim.sweep.worker", "numpy"])
        except Exception:  # pragma: no cover
            pass
        return ctx
    return mp.get_context("spawn")


class LocalExecutor(Executor):
    """Worker processes on this machine; a dead worker is replaced and its point reported."""

    name = "local"

    def __init__(self, jobs: Optional[int] = None, evaluator: str = "archsim.sweep.backend"):
        self.capacity = max(1, int(jobs or os.cpu_count() or 1))
        self.evaluator = evaluator
        self._ctx = _context()
        self._workers: list[_Proc] = []
        self._queue: deque[dict] = deque()
        self.restarts = 0
        for _ in range(self.capacity):
            self._workers.append(self._start())

    def _start(self) -> _Proc:
        parent, child = self._ctx.Pipe(duplex=True)
        p = self._ctx.Process(target=_worker_main, args=(child, self.evaluator), daemon=True,
                              name="archsim-sweep-worker")
        p.start()
        child.close()
        return _Proc(p, parent)

    def describe(self) -> str:
        return f"local, {self.capacity} process{'es' if self.capacity > 1 else ''}"

    @property
    def inflight(self) -> int:
        return len(self._queue) + sum(1 for w in self._workers if w.task is not None)

    def submit(self, task: dict) -> None:
        self._queue.append(task)
        self._dispatch()

    def _dispatch(self) -> None:
        for w in self._workers:
            if not self._queue:
                return
            if w.task is None:
                task = self._queue.popleft()
                try:
                    w.conn.send(task)
                    w.task = task
                except (BrokenPipeError, OSError):
                    self._queue.appendleft(task)    # the worker is gone; wait() replaces it

    def wait(self, timeout: Optional[float] = None) -> list[tuple[dict, dict]]:
        busy = [w for w in self._workers if w.task is not None]
        if not busy:
            self._dispatch()
            busy = [w for w in self._workers if w.task is not None]
            if not busy:
                return []
        handles = {}
        for w in busy:
            handles[w.conn] = w
            handles[w.proc.sentinel] = w
        ready = mp_wait(list(handles), timeout)
        done: list[tuple[dict, dict]] = []
        seen = set()
        for h in ready:
            w = handles[h]
            if id(w) in seen:
                continue
            seen.add(id(w))
            out = None
            try:
                if w.conn.poll():
                    out = w.conn.recv()
            except (EOFError, OSError):
                out = None
            if out is not None:
                done.append((w.task, out))
                w.task = None
                continue
            # no result: the worker died in the middle of its point
            w.proc.join(timeout=5)
            code = w.proc.exitcode
            done.append((w.task, {"id": w.task["id"], "status": "crashed",
                                  "error": f"worker process died (exit code {code}) during the point"}))
            try:
                w.conn.close()
            except OSError:
                pass
            self._workers[self._workers.index(w)] = self._start()
            self.restarts += 1
        self._dispatch()
        return done

    def close(self) -> None:
        for w in self._workers:
            try:
                w.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        deadline = time.time() + 3
        for w in self._workers:
            w.proc.join(timeout=max(0.0, deadline - time.time()))
            if w.proc.is_alive():
                w.proc.terminate()
                w.proc.join(timeout=2)
            try:
                w.conn.close()
            except OSError:
                pass
        self._workers = []


# --------------------------------------------------------------------------- dask

class DaskExecutor(Executor):
    """Points as Dask tasks. ``scheduler`` is an address (``tcp://host:8786``); with
    ``local_workers`` a LocalCluster of that many single-threaded worker processes is
    started on the loopback interface and closed with the executor."""

    name = "dask"

    def __init__(self, scheduler: Optional[str] = None, local_workers: Optional[int] = None,
                 connect_timeout: float = 10.0):
        if isinstance(connect_timeout, bool) or not isinstance(connect_timeout, (int, float)) \
                or not 0 < connect_timeout < float("inf"):
            raise ExecutorError(f"--connect-timeout: expected a positive number of seconds, got {connect_timeout!r}")
        try:
            import distributed
        except ImportError:
            raise ExecutorError("the Dask executor needs dask[distributed]: pip install 'archsim[dist]'") from None
        import logging
        self._distributed = distributed
        self.cluster = None
        self.client = None
        self._futures: dict[Any, dict] = {}
        self._attempt: dict[str, int] = {}
        try:
            if scheduler is None:
                n = int(local_workers or os.cpu_count() or 1)
                logging.getLogger("distributed").setLevel(logging.ERROR)
                self.cluster = distributed.LocalCluster(
                    n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address=None, silence_logs=logging.ERROR)
                self.client = distributed.Client(self.cluster, timeout=connect_timeout)
            else:
                self.client = distributed.Client(scheduler, timeout=connect_timeout)
        except (OSError, TimeoutError) as e:
            self.close()
            where = scheduler or "a local cluster"
            raise ExecutorError(f"cannot reach Dask scheduler at {where}: {e}".rstrip(": ")) from None
        except Exception as e:  # e.g. a malformed address
            self.close()
            raise ExecutorError(f"cannot start the Dask executor ({scheduler or 'local'}): "
                                f"{type(e).__name__}: {e}") from None
        self.scheduler = scheduler or self.cluster.scheduler_address
        self.capacity = max(1, sum(self.client.nthreads().values()))

    def describe(self) -> str:
        return f"dask {self.scheduler}, {self.capacity} worker thread{'s' if self.capacity > 1 else ''}"

    @property
    def inflight(self) -> int:
        return len(self._futures)

    def submit(self, task: dict) -> None:
        from archsim.sweep.worker import run_point
        n = self._attempt.get(task["id"], 0) + 1
        self._attempt[task["id"]] = n
        fut = self.client.submit(run_point, task, key=f"archsim-point-{task['id']}-{n}", pure=False)
        self._futures[fut] = task

    def wait(self, timeout: Optional[float] = None) -> list[tuple[dict, dict]]:
        if not self._futures:
            return []
        d = self._distributed
        try:
            done, _ = d.wait(list(self._futures), timeout=timeout, return_when="FIRST_COMPLETED")
        except (TimeoutError, asyncio.TimeoutError):
            return []
        out = []
        for f in done:
            task = self._futures.pop(f)
            if f.status == "finished":
                try:
                    res = f.result()
                except Exception as e:  # lost between completion and fetch
                    res = {"id": task["id"], "status": "crashed", "error": f"result lost: {e}"}
            elif f.status == "error":
                try:
                    exc = f.exception()
                except BaseException as e:  # noqa: BLE001 (the exception itself was lost)
                    exc = e
                kind = type(exc).__name__
                if kind in ("KilledWorker", "CommClosedError") or isinstance(exc, OSError):
                    res = {"id": task["id"], "status": "crashed",
                           "error": f"worker died during the point ({kind}: {exc})"}
                else:
                    res = {"id": task["id"], "status": "failed", "error": f"{kind}: {exc}"}
            else:        # cancelled or lost by the scheduler: run it again
                res = {"id": task["id"], "status": "crashed", "error": f"task {f.status} by the scheduler"}
            f.release()
            out.append((task, res))
        return out

    def close(self) -> None:
        for f in list(self._futures):
            try:
                f.cancel()
            except Exception:
                pass
        self._futures = {}
        if self.client is not None:
            try:
                self.client.close(timeout=5)
            except Exception:
                pass
            self.client = None
        if self.cluster is not None:
            try:
                self.cluster.close(timeout=10)
            except Exception:
                pass
            self.cluster = None


def make_executor(kind: str = "local", jobs: Optional[int] = None, scheduler: Optional[str] = None,
                  dask_local: Optional[int] = None, evaluator: str = "archsim.sweep.backend",
                  connect_timeout: float = 10.0) -> Executor:
    if scheduler or dask_local or kind == "dask":
        if scheduler is None and dask_local is None:
            dask_local = jobs
        return DaskExecutor(scheduler=scheduler, local_workers=dask_local, connect_timeout=connect_timeout)
    if kind != "local":
        raise ExecutorError(f"unknown executor {kind!r} (expected local or dask)")
    return LocalExecutor(jobs=jobs, evaluator=evaluator)
