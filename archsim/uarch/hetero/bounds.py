"""Reference systems bounding an xPU + PIM system.

- lower: the same xPU, with infinite memory bandwidth (no memory latency), running the ops the
  hetero system places on it (the PIM's work and the transfers for free): the system cannot
  beat its own xPU share with free memory. With ``ff_parallel`` the FFN GEMMs are left out
  (the PIM may take any share of them). (The xPU running *every* op at infinite bandwidth
  is not a bound: attention on the xPU also costs MMA tiles padded for one query row and
  kernel launches, which the PIM removes.)
- upper: the same xPU running every op itself, plus the link time the hetero system spends;
  offloading must not be slower than not offloading at all plus the transfers, except by what
  the PIM itself takes longer for its ops than the xPU would (:func:`bounds`). With the
  interleaved schedule the xPU alone runs the same sub-batches one after another (each
  re-streams the weights, as the interleaved xPU does; the run's host cost is paid once):
  interleaving two halves of a small batch is slower than one pass of the whole batch on the
  xPU, which is the schedule's cost, not offloading's.
"""
from __future__ import annotations

from archsim.uarch.hetero.plan import FF_COL, FF_ROW, _suffix
from archsim.uarch.hetero.spec import ATTENTION_ROLES, KNOWN_ROLES
from archsim.workload.graph import GemmOp


def xpu_only(cfg, infinite_bandwidth: bool = False) -> dict:
    """A hetero config dict with every op on the xPU (serial schedule), optionally with an
    infinitely fast xPU memory."""
    d = cfg.model_dump(mode="json")
    d["placement"] = {r: "xpu" for r in KNOWN_ROLES}
    d["schedule"] = "serial"
    d["head_chunks"] = 1
    d["ff_parallel"] = False
    d["pim"]["shared_with_xpu"] = False
    if infinite_bandwidth:
        d["xpu"]["set"] = list(d["xpu"]["set"]) + ["memory.model=bandwidth", "memory.bandwidth=1e18",
                                                   "memory.latency=0"]
    return d


def _xpu_share(cfg, wl):
    """``wl`` with only the ops the hetero system runs on its xPU (decode; prefill runs every op
    there). With ``ff_parallel`` the FFN GEMMs are left out too: the PIM may take any share of
    them, so the xPU's own share is not known in advance."""
    from archsim.uarch.hetero.plan import _sub_workload
    keep = [op for op in wl.ops() if wl.phase != "decode" or cfg.device_of(op.role) == "xpu"]
    if cfg.ff_parallel and wl.phase == "decode":
        keep = [op for op in keep if not (isinstance(op, GemmOp) and op.role == "fc"
                                          and _suffix(op) in FF_COL + FF_ROW)]
    sub = _sub_workload(wl, keep)
    sub.groups = [g for g in wl.groups if any(op.layer == g.name for op in keep)]
    sub.tokens = wl.tokens
    return sub


def bounds(cfg, wl, result) -> dict:
    """Bounds of ``result`` (a hetero Result for ``cfg`` x ``wl``), in seconds:

    - ``lower_s``: the xPU's share at infinite memory bandwidth;
    - ``xpu_only_s``: the xPU alone running every op (the same sub-batches one after another
      under the interleaved schedule, the run's host cost paid once);
    - ``handoff_s``: how much the hetero xPU's busy time exceeds its share run alone at the same
      bandwidth: what splitting its work around the PIM calls costs it (a systolic NPU drains
      its pipeline at each hand-off) and, with ``ff_parallel``, the xPU's part of the FFN GEMMs,
      which the share run leaves out;
    - ``pim_excess_s``: how much longer the PIM takes for its ops than the xPU alone takes for
      them (``pim`` busy time -- with shared single-buffered banks, the banks' whole occupancy,
      the xPU's memory phases included -- minus ``xpu_only_s`` less the xPU's share at the same
      bandwidth;
      0 when the PIM is faster). It is positive where offloading cannot pay: a grouped-query
      model whose few KV heads per device leave most PIM channels idle at batch 1;
    - ``upper_s`` = ``xpu_only_s`` + ``link_s`` + ``handoff_s`` + ``pim_excess_s``: offloading
      is never slower than the xPU alone plus the transfers, except by what these two name."""
    from archsim.config.loader import load_arch
    from archsim.sim.run import simulate_loaded
    from archsim.uarch.hetero.plan import parts, run_fixed_seconds, sub_batches
    lo = simulate_loaded(load_arch(xpu_only(cfg, True)), _xpu_share(cfg, wl)).seconds
    alone = load_arch(xpu_only(cfg, False))
    _, subs = sub_batches(cfg, wl)                     # the whole batch unless interleaved decode
    once = (len(subs) - 1) * run_fixed_seconds(parts(cfg))
    only = sum(simulate_loaded(alone, w).seconds for w in subs) - once
    busy = result.extra["uarch_summary"]["busy_s"]
    # with shared banks and one row buffer the banks serve the xPU's memory phases too: the PIM
    # side's time is the banks' whole occupancy, the xPU's its time off them
    pim_s = busy.get("banks", busy["pim"])
    xpu_s = busy["xpu"] - (pim_s - busy["pim"])
    excess = handoff = 0.0
    if pim_s > 0:
        share = sum(simulate_loaded(alone, _xpu_share(cfg, w)).seconds for w in subs) - once
        excess = max(0.0, pim_s - (only - share))
        handoff = max(0.0, xpu_s - share)
    link = busy["link"]
    return {"lower_s": lo, "xpu_only_s": only, "link_s": link, "handoff_s": handoff,
            "pim_excess_s": excess, "upper_s": only + link + handoff + excess,
            "sub_batches": len(subs), "seconds": result.seconds}


__all__ = ["xpu_only", "bounds", "ATTENTION_ROLES"]
