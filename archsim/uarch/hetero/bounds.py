"""Reference systems bounding an xPU + PIM system.

- lower: the same xPU, with infinite memory bandwidth (no memory latency), running the ops the
  hetero system places on it (the PIM's work and the transfers for free): the system cannot
  beat its own xPU share with free memory. With ``ff_parallel`` the FFN GEMMs are left out
  (the PIM may take any share of them). (The xPU running *every* op at infinite bandwidth
  is not a bound: attention on the xPU also costs MMA tiles padded for one query row and
  kernel launches, which the PIM removes.)
- upper: the same xPU running every op itself, plus the link time the hetero system spends;
  offloading must not be slower than not offloading at all plus the transfers.
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


def bounds(cfg, wl, result) -> dict:
    """(lower_s, upper_s) of ``result`` (a hetero Result for ``cfg`` x ``wl``)."""
    from archsim.sim.run import simulate_loaded
    from archsim.config.loader import load_arch
    from archsim.uarch.hetero.plan import _sub_workload
    keep = [op for op in wl.ops() if wl.phase != "decode" or cfg.device_of(op.role) == "xpu"]
    if cfg.ff_parallel and wl.phase == "decode":
        # the PIM may take any share of the FFN GEMMs: the xPU's own share is not known in advance
        keep = [op for op in keep if not (isinstance(op, GemmOp) and op.role == "fc"
                                          and _suffix(op) in FF_COL + FF_ROW)]
    sub = _sub_workload(wl, keep)
    sub.groups = [g for g in wl.groups if any(op.layer == g.name for op in keep)]
    sub.tokens = wl.tokens
    lo = simulate_loaded(load_arch(xpu_only(cfg, True)), sub).seconds
    only = simulate_loaded(load_arch(xpu_only(cfg, False)), wl).seconds
    link = result.extra["uarch_summary"]["busy_s"]["link"]
    return {"lower_s": lo, "xpu_only_s": only, "link_s": link, "upper_s": only + link,
            "seconds": result.seconds}


__all__ = ["xpu_only", "bounds", "ATTENTION_ROLES"]
