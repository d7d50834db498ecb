"""A toy evaluator with fault-injection hooks, for tests and demonstrations.

It resolves a small synthetic hardware/workload description and prices it with closed
formulas, so sweeps over it are fast and deterministic. ``options`` (from the spec's
``evaluator.options``) add behaviour on the worker:

- ``delay_s``: sleep this long in every point (a stand-in for a long simulation);
- ``kill_flag``: a file path; a worker that finds it kills itself with SIGKILL in the
  middle of the point (a worker dying mid-point). The file holds how many deaths to
  stage (empty: one); it is removed with the last one;
- ``fail_if``: ``"field=value"``; points with that override fail with a ConfigError;
- ``inf_if``: ``"field=value"``; points with that override return an infinite energy
  (and so power and EDP), as an absurd input could make a simulator do.
"""
from __future__ import annotations

import copy
import math
import os
import signal
import time
from pathlib import Path

import yaml

import archsim
from archsim import units
from archsim.errors import ConfigError, did_you_mean

METRICS = ("cycles", "seconds", "energy_pj", "tokens_per_s", "macs", "area_mm2", "power_w",
           "edp", "utilization")

ARCH = {
    "name": "toy",
    "clock": "1 GHz",
    "array": {"rows": 128, "cols": 128, "dataflow": "ws"},
    "sram": {"ifmap": "256 KiB", "filter": "256 KiB", "ofmap": "128 KiB"},
    "memory": {"standard": "HBM2", "bandwidth": "256 GB/s"},
}
WORKLOAD = {"name": "toy-llm", "phase": "decode", "batch": 1, "seq_len": 512, "kv_len": 512,
            "d_model": 4096, "layers": 32}
STANDARDS = {"DDR4": 25.6e9, "DDR5": 51.2e9, "LPDDR5": 51.2e9, "HBM2": 256e9, "HBM2E": 460e9, "HBM3": 819e9}

_ARCH_TYPES = {"name": str, "clock": units.parse_frequency, "array.rows": int, "array.cols": int,
               "array.dataflow": ("os", "ws", "is"), "sram.ifmap": units.parse_bytes,
               "sram.filter": units.parse_bytes, "sram.ofmap": units.parse_bytes,
               "memory.standard": tuple(STANDARDS), "memory.bandwidth": units.parse_bandwidth}
_WL_TYPES = {"name": str, "phase": ("prefill", "decode"), "batch": int, "seq_len": int,
             "kv_len": int, "d_model": int, "layers": int}


def _set(d: dict, path: list[str], value, prefix: str, types: dict):
    full = ".".join(path)
    if full not in types:
        raise ConfigError([(prefix + full, "unknown field" + did_you_mean(prefix + full, [prefix + t for t in types]))])
    cur = d
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value


def _check(d: dict, types: dict, prefix: str) -> dict:
    out = copy.deepcopy(d)
    for path, t in types.items():
        parts = path.split(".")
        cur = out
        for p in parts[:-1]:
            cur = cur[p]
        v = cur[parts[-1]]
        where = prefix + path
        if t is int:
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError([(where, f"expected a positive integer (got {v!r})")])
        elif t is str:
            cur[parts[-1]] = str(v)
        elif isinstance(t, tuple):
            if v not in t:
                raise ConfigError([(where, f"expected one of {', '.join(t)} (got {v!r}){did_you_mean(v, t)}")])
        else:
            try:
                x = t(v)
            except units.UnitError as e:
                raise ConfigError([(where, str(e))]) from None
            if x <= 0:
                raise ConfigError([(where, f"must be positive (got {v!r})")])
            cur[parts[-1]] = x
    return out


def _source(src, default: dict) -> dict:
    if isinstance(src, dict):
        base = copy.deepcopy(default)
        for k, v in src.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                base[k].update(v)
            else:
                base[k] = v
        return base
    if isinstance(src, str) and Path(src).is_file():
        return _source(yaml.safe_load(Path(src).read_text()) or {}, default)
    out = copy.deepcopy(default)
    if isinstance(src, str):
        out["name"] = src
    return out


def resolve(arch, workload, overrides):
    a, w = _source(arch, ARCH), _source(workload, WORKLOAD)
    for ov in overrides:
        key, _, raw = ov.partition("=")
        val = yaml.safe_load(raw) if raw.strip() else ""
        path = key.strip().split(".")
        if path[0] == "workload":
            _set(w, path[1:], val, "workload.", _WL_TYPES)
        else:
            _set(a, path, val, "", _ARCH_TYPES)
    return _check(a, _ARCH_TYPES, ""), _check(w, _WL_TYPES, "workload.")


def evaluate(arch, workload, overrides, options=None) -> dict:
    options = options or {}
    flag = options.get("kill_flag")
    if options.get("delay_s"):
        time.sleep(float(options["delay_s"]) / 2)
    if flag and os.path.exists(flag):
        _maybe_die(flag)
    fail_if = options.get("fail_if")
    if fail_if and fail_if in overrides:
        raise ConfigError([(fail_if.split("=")[0], "rejected by the toy evaluator (fail_if)")])
    a, w = resolve(arch, workload, overrides)
    if options.get("delay_s"):
        time.sleep(float(options["delay_s"]) / 2)
    metrics = model(a, w)
    inf_if = options.get("inf_if")
    if inf_if and inf_if in overrides:
        metrics.update(energy_pj=math.inf, power_w=math.inf, edp=math.inf)
    return {"metrics": metrics, "config": a, "workload": w, "archsim_version": archsim.__version__}


def _maybe_die(flag: str) -> None:
    """The flag file holds how many more deaths to stage (empty: one); 0 deaths: remove it."""
    try:
        text = open(flag).read().strip()
    except FileNotFoundError:
        return
    left = int(text) if text else 1
    if left <= 1:
        try:
            os.unlink(flag)
        except FileNotFoundError:
            return        # another worker took the last one
    else:
        with open(flag, "w") as f:
            f.write(str(left - 1))
    os.kill(os.getpid(), signal.SIGKILL)


def model(a: dict, w: dict) -> dict:
    """Closed-form toy costs: compute and memory bounds of a decoder stack."""
    R, C = a["array"]["rows"], a["array"]["cols"]
    d, L, B = w["d_model"], w["layers"], w["batch"]
    tokens = B * (w["seq_len"] if w["phase"] == "prefill" else 1)
    kv = w["kv_len"] + (w["seq_len"] if w["phase"] == "prefill" else 1)
    macs = L * (12 * d * d * tokens + 2 * d * kv * tokens)
    sram = a["sram"]["ifmap"] + a["sram"]["filter"] + a["sram"]["ofmap"]
    bw = min(a["memory"]["bandwidth"], STANDARDS[a["memory"]["standard"]])
    weight_bytes = L * 12 * d * d
    refetch = max(1.0, (d * tokens) / max(a["sram"]["ifmap"], 1.0))
    mem_bytes = weight_bytes * min(refetch, 4.0) + L * 2 * d * kv * B
    folds = math.ceil(d / R) * math.ceil(d / C)
    compute_cycles = L * 12 * folds * (tokens + R + C)
    mem_cycles = mem_bytes / bw * a["clock"]
    cycles = int(max(compute_cycles, mem_cycles) + 0.1 * min(compute_cycles, mem_cycles))
    seconds = cycles / a["clock"]
    area = 0.0012 * R * C + 0.9 * sram / 2**20 + 5.0
    energy = macs * 0.25 + mem_bytes * 8 * 3.9 + sram / 1024 * cycles * 1e-4
    return {"cycles": cycles, "seconds": seconds, "energy_pj": energy,
            "tokens_per_s": tokens / seconds, "macs": float(macs), "area_mm2": area,
            "power_w": energy * 1e-12 / seconds, "edp": energy * seconds,
            "utilization": macs / (cycles * R * C)}


def toy_spec(**changes) -> dict:
    """A small sweep over the toy evaluator (2 workloads x 3 x 2 x 2 = 24 points)."""
    spec = {
        "name": "toy",
        "arch": "toy",
        "workloads": [{"workload": "toy-llm", "label": "prefill", "set": {"phase": "prefill", "seq_len": 256}},
                      {"workload": "toy-llm", "label": "decode", "set": {"phase": "decode"}}],
        "axes": {"array.rows": [32, 64, 128], "array.cols": [64, 128],
                 "sram.ifmap": {"values": [64, 1024], "unit": "KiB"}},
        "objectives": ["min cycles", "min energy"],
        "evaluator": {"module": "archsim.sweep.testing"},
    }
    spec.update(changes)
    return spec


def comparable(db_path) -> dict:
    """id -> (status, workload, fields, metrics, config) of a results file, for equality checks."""
    from archsim.sweep.store import Store
    with Store.open(db_path) as st:
        return {r["id"]: (r["status"], r["workload"], r["fields"], r["metrics"], r["config"], r["error"])
                for r in st.rows(status=None, full=True)}
