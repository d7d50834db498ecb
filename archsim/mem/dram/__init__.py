"""Bank-level DRAM model: standards and presets, address mapping, a per-channel controller
(FR-FCFS, open / closed page, read / write queues with write drain, refresh) timed at
command level, a row-visit transfer engine for whole-model runs, energy, and trace replay.

See docs/dram.md.
"""
from __future__ import annotations

from pathlib import Path

from archsim.jitcache import drop_stale

# archsim.mem.interface.mem_transfer inlines the transfer engine: recompile it when this
# package changed (runs before the interface module loads its cached kernels)
drop_stale(str(Path(__file__).resolve().parents[1] / "interface.py"), [Path(__file__).resolve().parent])


def _replay(case: dict, traces: dict | None = None) -> dict:
    """Replay one synthetic-pattern run described by ``case`` (preset, pattern, and optionally
    channels, ranks, mapping, queue_depth, refresh, xor, wck, scheduler, row_policy, scale, seed;
    values may be strings, as in a CSV row); returns the full metrics dict of
    :func:`archsim.mem.dram.sim.run_trace`. A ``traces`` dict caches the generated patterns
    between calls."""
    from archsim.mem.dram.presets import load_preset
    from archsim.mem.dram.sim import run_trace
    from archsim.mem.dram.traces import geometry, pattern

    ranks = int(case["ranks"]) if case.get("ranks") not in (None, "") else None
    p = load_preset(case["preset"], ranks=ranks)
    ch = int(case.get("channels") or p.channels)
    key = (case["preset"], ranks, ch, case["pattern"], float(case.get("scale", 1.0)), int(case.get("seed", 12345)))
    tr = traces.get(key) if traces is not None else None
    if tr is None:
        tr = pattern(case["pattern"], **geometry(p, ch), scale=key[4], seed=key[5])
        if traces is not None:
            traces[key] = tr
    addrs, writes = tr
    policy, cap = row_policy(case.get("row_policy"))
    return run_trace(p, addrs, writes, channels=ch, mapping=case.get("mapping") or "RoBaRaCoCh",
                     queue_depth=int(case.get("queue_depth") or 32), refresh=case.get("refresh") or "all_bank",
                     xor=case.get("xor") or "none", check_capacity=False,
                     wck_always_on=(case.get("wck") or "sync") == "always_on",
                     scheduler=case.get("scheduler") or "frfcfs", page_policy=policy, cap=cap)


def row_policy(value) -> tuple[str, int]:
    """A ``row_policy`` value of a case or table row -> (page policy, cap) of
    :func:`archsim.mem.dram.sim.run_trace`: empty or ``open``, ``closed``, ``closed_cap`` (cap 4,
    the peer's default) or ``closed_cap:N`` (also spelt as the peer names it, ``Open`` /
    ``ClosedCAP``, and ``closed_cap=N``)."""
    from archsim.errors import ConfigError
    v = str(value or "open").strip()
    name, sep, n = v.replace("=", ":").partition(":")
    name = {"open": "open", "closed": "closed", "closedcap": "closed_cap"}.get(
        name.strip().lower().replace("_", "").replace("-", ""), name)
    n = n.strip()
    if name in ("open", "closed") and not sep:
        return name, 4
    if name == "closed_cap":
        if not sep:
            return name, 4
        if n.isdigit() and int(n) > 0:
            return name, int(n)
    raise ConfigError([("row_policy", f"{v!r} is not a row policy (open, closed, closed_cap or closed_cap:N "
                                      "with N column accesses before a row closes)")])


def validate_case(case: dict) -> dict:
    """Run one ``validation/dram/*.yaml`` case (``kind: dram_trace``); returns
    ``{metric: simulated value}`` for every metric the case lists."""
    res = _replay(case)
    metrics = case.get("metrics") or {"bandwidth_GBps": {}, "row_hit_rate": {}}
    return {m: res[m] for m in metrics}


def ramulator_table(case: dict) -> dict:
    """Rows of ``case["table"]`` (a CSV of Ramulator 2.1 trace runs beside the case file:
    preset, channels, pattern, mapping, queue_depth, refresh, [wck, scheduler, row_policy, ranks,] dram_cycles,
    row_hits, row_misses,
    row_conflicts, refresh_cmds) replayed as :func:`validate_case` replays a case. Metrics:
    ``rows``; ``cycles_*`` (relative error of the simulated cycles: share within
    ``case["row_tol"]``, default 0.05, mean and largest); ``row_outcomes_exact`` and
    ``refreshes_exact`` (share of rows whose hit / miss / conflict counts, refresh count equal
    the peer's). ``refresh_cmds`` of a row is the peer's count of maintenance commands served
    (num_maintenance_reqs_served), compared with ``maintenance_cmds``: the refreshes, and with
    ``row_policy`` closed_cap also the row closes that policy queues as maintenance."""
    from archsim.validate import error_summary, table_rows

    traces: dict = {}

    def one(r):
        res = _replay(r, traces)
        outcomes = all(res[k] == int(r[k]) for k in ("row_hits", "row_misses", "row_conflicts"))
        return res["dram_cycles"] / int(r["dram_cycles"]) - 1.0, outcomes, res["maintenance_cmds"] == int(r["refresh_cmds"])

    rows = table_rows(case, "Ramulator table", one)
    n = max(1, len(rows))
    return {"rows": len(rows), **error_summary([e for e, _, _ in rows], float(case.get("row_tol", 0.05)), "cycles_"),
            "row_outcomes_exact": sum(o for _, o, _ in rows) / n, "refreshes_exact": sum(f for _, _, f in rows) / n}


__all__ = ["validate_case", "ramulator_table"]
