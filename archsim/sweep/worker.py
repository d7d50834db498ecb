"""What runs on a worker: evaluate one point and return a plain, picklable dict.

Workers never touch the results store; the parent commits what they return.
A point whose workload cannot be mapped onto its hardware
(:class:`archsim.errors.LoweringError`: the model does not fit the memory, no tile fits the
buffers, the heads do not split over the devices) comes back ``infeasible``; other
user-caused errors (:class:`archsim.errors.ArchsimError`) and bugs come back ``failed``, each
with its message, so one bad point never stops a sweep. Only the death of the worker process
itself (signal, ``os._exit``, out of memory) is retried.
"""
from __future__ import annotations

import importlib
import os
import socket
import time
import traceback

_MODULES: dict[str, object] = {}


def _evaluator(name: str):
    mod = _MODULES.get(name)
    if mod is None:
        mod = _MODULES[name] = importlib.import_module(name)
    return mod


def warm(evaluator: str) -> None:
    """Import the evaluator (and so archsim and its jitted kernels) once per worker."""
    mod = _evaluator(evaluator)
    fn = getattr(mod, "warmup", None)
    if fn is not None:
        fn()


def run_point(task: dict) -> dict:
    t0 = time.time()
    out: dict = {"id": task["id"], "host": socket.gethostname(), "pid": os.getpid(), "started": t0}
    try:
        from archsim.errors import ArchsimError, LoweringError
        mod = _evaluator(task["evaluator"])
        res = mod.evaluate(task["arch"], task["workload"], list(task["overrides"]), dict(task.get("options") or {}))
        out.update(status="ok", metrics=res["metrics"], config=res.get("config"),
                   workload=res.get("workload"), archsim_version=res.get("archsim_version"))
    except LoweringError as e:  # noqa: F821 (imported above): the design point cannot run it
        out.update(status="infeasible", error=str(e))
    except ArchsimError as e:   # noqa: F821 (imported above)
        out.update(status="failed", error=str(e))
    except Exception as e:  # a bug in the simulator: keep the sweep going, keep the evidence
        tb = traceback.format_exc(limit=6)
        out.update(status="failed", error=f"{type(e).__name__}: {e}\n{tb}")
    out["elapsed_s"] = time.time() - t0
    return out
