"""Pipeline parallelism: the layers of the model split over ``P`` stages (each stage one
tensor-parallel group of devices), the batch split into micro-batches that flow through them.

Each micro-batch is simulated once through every layer on one stage's devices (the per-layer
cycles of the timing kernel); stage ``p`` owns a contiguous share of the layers (embedding on
the first stage, LM head on the last), so its time for micro-batch ``j`` is ``s[j][p]``; between
stages the micro-batch's activations (tokens x d_model) cross the device interconnect in
``x[j]`` cycles. Then:

- prefill (and any single pass): a forward-only fill-and-drain schedule,
  ``f[j][p] = max(f[j][p-1] + x[j], f[j-1][p]) + s[j][p]``; the run ends at ``f[m-1][P-1]``;
- decode: the steady state of repeated steps, in which a micro-batch starts its next token on
  stage 0 once its last token left stage ``P-1``. The step period (time between two tokens of
  a request) is the larger of the busiest stage's work per step, ``max_p sum_j s[j][p]``, and
  the longest round trip of one micro-batch, ``max_j (sum_p s[j][p] + (P-1) x[j] + back)``,
  where ``back`` is the latency of returning the sampled tokens to stage 0.

Energy is the sum over micro-batches (the same work is done, split over more devices) plus
the leakage of all ``P`` stages over the whole run. Weights and KV caches are checked against
the capacity of one device for the whole batch (1 / (tensor x pipeline) of them per device).
"""
from __future__ import annotations

import copy
import math

from archsim import uarch as uarch_registry
from archsim.config.types import PRECISION_BITS
from archsim.errors import ConfigError
from archsim.report.result import LayerRecord, Result
from archsim.workload.batching import rebuild, split_requests

EDGE_GROUPS = ("embed", "head")


def pipeline_stages(cfg) -> int:
    par = getattr(cfg, "parallel", None)
    return int(getattr(par, "pipeline", 1) or 1)


def stage_cycles(layers: list[LayerRecord], P: int) -> list[int]:
    """Cycles of each of ``P`` stages for one micro-batch: the block layers (every instance of
    every group but embed / head, in order) split contiguously into shares differing by at
    most one layer, the embedding on the first stage and the LM head on the last."""
    inst = []
    pre = post = 0
    for rec in layers:
        if rec.name == "embed":
            pre += rec.cycles * rec.repeat
        elif rec.name == "head":
            post += rec.cycles * rec.repeat
        else:
            inst += [rec.cycles] * rec.repeat
    n = len(inst)
    out, pos = [], 0
    for p in range(P):
        k = n // P + (1 if p < n % P else 0)
        out.append(int(sum(inst[pos:pos + k])))
        pos += k
    out[0] += pre
    out[-1] += post
    return out


def fill_drain(s: list[list[int]], x: list[int]) -> int:
    """End of a forward-only pipeline pass of the micro-batches in order (s[j][p] stage cycles,
    x[j] the transfer between consecutive stages)."""
    m, P = len(s), len(s[0])
    prev = [0] * P                      # finish time of the previous micro-batch per stage
    for j in range(m):
        cur = [0] * P
        for p in range(P):
            ready = cur[p - 1] + x[j] if p else 0
            cur[p] = max(ready, prev[p]) + s[j][p]
        prev = cur
    return prev[-1]


def decode_period(s: list[list[int]], x: list[int], back: int) -> tuple[int, int, int]:
    """Steady-state step period of repeated decode steps: (period, stage bound, round-trip bound)."""
    P = len(s[0])
    stage_bound = max(sum(row[p] for row in s) for p in range(P))
    trip_bound = max(sum(row) + (P - 1) * xj + back for row, xj in zip(s, x))
    return max(stage_bound, trip_bound), stage_bound, trip_bound


def _activation_bytes(cfg, wl, batch: int) -> float:
    d = wl.spec.get("d_model")
    if not d:
        raise ConfigError([("parallel.pipeline", f"workload kind {wl.spec.get('kind')!r} has no d_model; "
                            "pipeline parallelism needs a layered model")])
    prec = (wl.spec.get("precision") or {}).get("activations") or cfg.precision
    tokens = batch * (1 if wl.phase == "decode" else int(wl.seq_len))
    return tokens * int(d) * PRECISION_BITS[prec] / 8.0


def _link(cfg):
    ic = getattr(cfg, "interconnect", None)
    if ic is None:
        raise ConfigError([("parallel.pipeline", f"{cfg.uarch} has no interconnect section for the "
                            "transfers between pipeline stages")])
    return ic.bandwidth * getattr(ic, "efficiency", 1.0), ic.latency


def simulate_pipelined(cfg, wl, *, seed: int = 0, all_layers: bool = False) -> Result:
    from archsim.sim.run import simulate_loaded
    P = pipeline_stages(cfg)
    u = uarch_registry.get(cfg.uarch)
    n_block = sum(g.repeat for g in wl.groups if g.name not in EDGE_GROUPS)
    if n_block < P:
        raise ConfigError([("parallel.pipeline", f"{P} pipeline stages but the model has only {n_block} "
                            "layer(s) to split")])
    check = getattr(u, "check_capacity", None)
    if callable(check):
        check(cfg, wl)
    # a once-per-run cost of the microarchitecture (a GPU's host dispatch) is paid once, not per
    # micro-batch
    split = getattr(u, "split_run_overhead", None)
    cfg, run_fixed = split(cfg) if callable(split) else (cfg, 0)
    m_req = getattr(cfg.parallel, "microbatches", None) or P
    parts = split_requests(wl, m_req)
    cache: dict = {}
    runs = []
    for b, lens in parts:
        key = (b, tuple(lens) if lens is not None else None)
        if key not in cache:
            w = wl if len(parts) == 1 else rebuild(wl, cfg.precision, b, lens, all_layers)
            cache[key] = simulate_loaded(cfg, w, seed=seed, all_layers=all_layers, pipeline=False)
        runs.append(cache[key])
    bw, lat = _link(cfg)
    s = [stage_cycles(r.layers, P) for r in runs]
    xbytes = [_activation_bytes(cfg, wl, b) for b, _ in parts]
    x = [int(math.ceil((lat + xb / bw) * cfg.clock)) for xb in xbytes]
    back = int(math.ceil(lat * cfg.clock))
    busy = [sum(row[p] for row in s) for p in range(P)]
    if wl.phase == "decode":
        cycles, _, trip_bound = decode_period(s, x, back)
        schedule = "decode steady state"
    else:
        cycles, trip_bound = fill_drain(s, x), None
        schedule = "fill and drain"
    cycles += run_fixed
    info = {"stages": P, "microbatches": len(parts), "microbatch_sizes": [b for b, _ in parts],
            "schedule": schedule, "stage_busy_cycles": busy, "stage_bound_cycles": max(busy),
            "round_trip_cycles": trip_bound, "transfer_cycles": max(x), "transfer_bytes": float(sum(xbytes) * (P - 1)),
            "bubble_fraction": 1.0 - sum(busy) / (P * cycles) if cycles else 0.0}
    return _combine(cfg, wl, runs, cycles, P, info)


def _combine(cfg, wl, runs: list[Result], cycles: int, P: int, info: dict) -> Result:
    r0 = runs[0]
    work_cycles = sum(r.cycles for r in runs)
    leak_scale = P * cycles / work_cycles if work_cycles else 0.0
    layers = []
    for i, rec in enumerate(r0.layers):
        recs = [r.layers[i] for r in runs]
        ub: dict = {}
        for q in recs:
            for k, v in q.unit_busy.items():
                ub[k] = ub.get(k, 0) + v
        layers.append(LayerRecord(
            name=rec.name, group=rec.group, repeat=rec.repeat, cycles=sum(q.cycles for q in recs), macs=sum(q.macs for q in recs),
            dynamic_pj=sum(q.dynamic_pj for q in recs), leakage_pj=sum(q.leakage_pj for q in recs) * leak_scale,
            offchip_read_bytes=sum(q.offchip_read_bytes for q in recs),
            offchip_write_bytes=sum(q.offchip_write_bytes for q in recs), unit_busy=ub))
    components: dict = {}
    for r in runs:
        for comp, c in r.components.items():
            dst = components.setdefault(comp, {"counts": {}, "energy_pj": {}})
            for k, v in c["counts"].items():
                dst["counts"][k] = dst["counts"].get(k, 0) + v
            for k, v in c["energy_pj"].items():
                dst["energy_pj"][k] = dst["energy_pj"].get(k, 0.0) + (v * leak_scale if k == "leakage" else v)
    units: dict = {}
    for r in runs:
        for k, v in r.units.items():
            units[k] = units.get(k, 0) + v
    res = Result(
        cfg=cfg, workload=wl, program=r0.program, cycles=int(cycles), clock_hz=r0.clock_hz,
        macs=sum(r.macs for r in runs), expected_macs=int(wl.macs()),
        skipped_macs=sum(r.skipped_macs for r in runs), padded_macs=sum(r.padded_macs for r in runs),
        peak_macs_per_cycle=r0.peak_macs_per_cycle * P, peak_bytes_per_cycle=r0.peak_bytes_per_cycle * P,
        offchip_bytes=sum(r.offchip_bytes for r in runs), layers=layers, components=components, units=units,
        area={k: v * P for k, v in r0.area.items()}, energy_table=r0.energy_table, all_layers=r0.all_layers,
        memory_info=dict(r0.memory_info), peak_dynamic_w=r0.peak_dynamic_w * P,
        extra=copy.deepcopy(r0.extra))
    res.extra["pipeline"] = info
    if res.extra.get("ops"):
        res.extra["ops_scope"] = (f"the first micro-batch ({info['microbatch_sizes'][0]} request(s)) through "
                                  f"every layer, as one device would run it")
    # the activations crossing stage boundaries, priced per bit of the interconnect when it has a price
    e_bit = float(getattr(getattr(cfg, "interconnect", None), "energy_per_bit", 0.0) or 0.0)
    if e_bit > 0 and info.get("transfer_bytes"):
        link = res.components.setdefault("link", {"counts": {}, "energy_pj": {}})
        link["counts"]["stage_transfer_bytes"] = int(info["transfer_bytes"])
        link["energy_pj"]["stage_transfer"] = float(info["transfer_bytes"]) * 8 * e_bit
    summary = getattr(uarch_registry.get(cfg.uarch), "summary", None)
    if callable(summary):
        # busy times are summed over the stages; utilisation is per stage
        sm = summary(res)
        if isinstance(sm.get("utilisation"), dict):
            sm["utilisation"] = {k: v / P for k, v in sm["utilisation"].items()}
        res.extra["uarch_summary"] = sm
    from archsim.sim.run import check_range
    check_range(res)
    return res
