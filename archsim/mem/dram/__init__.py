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


def validate_case(case: dict) -> dict:
    """Run one ``validation/dram/*.yaml`` case (``kind: dram_trace``); returns
    ``{metric: simulated value}`` for every metric the case lists."""
    from archsim.mem.dram.presets import load_preset
    from archsim.mem.dram.sim import run_trace
    from archsim.mem.dram.traces import geometry, pattern

    p = load_preset(case["preset"])
    ch = int(case.get("channels") or p.channels)
    g = geometry(p, ch)
    addrs, writes = pattern(case["pattern"], **g, scale=float(case.get("scale", 1.0)),
                            seed=int(case.get("seed", 12345)))
    res = run_trace(p, addrs, writes, channels=ch, mapping=case.get("mapping", "RoBaRaCoCh"),
                    queue_depth=int(case.get("queue_depth", 32)), refresh=case.get("refresh", "all_bank"),
                    xor=case.get("xor", "none"), check_capacity=False)
    metrics = case.get("metrics") or {"bandwidth_GBps": {}, "row_hit_rate": {}}
    return {m: res[m] for m in metrics}


__all__ = ["validate_case"]
