"""Split of a CIM run into compute / rewrite / stall cycles and into energy by purpose."""
from __future__ import annotations

import numpy as np

from archsim.isa import Op


def _union_length(s: np.ndarray, f: np.ndarray) -> int:
    """Total length of the union of intervals [s, f)."""
    keep = f > s
    s, f = s[keep], f[keep]
    if s.size == 0:
        return 0
    o = np.argsort(s, kind="stable")
    s, f = s[o], f[o]
    run_end = np.maximum.accumulate(f)
    # a new block starts where s exceeds every earlier end
    new = np.ones(s.size, bool)
    new[1:] = s[1:] > run_end[:-1]
    starts = s[new]
    idx = np.nonzero(new)[0]
    ends = np.maximum.reduceat(f, idx)
    return int((ends - starts).sum())


def timeline(uarch, result):
    if result.timeline is not None:
        return result.timeline
    from archsim.mem.interface import build_memory
    from archsim.sim.timing import schedule
    cfg, prog = result.cfg, result.program
    dur, _ = uarch.cost(cfg, prog)
    start, finish, _, _ = schedule(prog, dur, build_memory(cfg.memory, cfg.clock))
    return start, finish


def cycle_split(uarch, result) -> dict:
    """Per layer (weighted by repeat): cycles with a macro computing (``compute``), with only
    macro writes in flight (``rewrite``) and the rest (``stall``: waiting for DRAM, the
    vector unit or the transpose unit)."""
    prog = result.program
    start, finish = timeline(uarch, result)
    names = prog.unit_names
    macro_units = np.array([n == "res" or (n.startswith("s") and not n.endswith(".wr")) for n in names])
    is_comp = (prog.op == Op.GEMM) & macro_units[prog.unit] & (finish > start)
    is_wr = prog.op == Op.WRITE
    comp = rew = stall = 0
    for li, rec in enumerate(result.layers):
        inl = prog.layer == li
        c = _union_length(start[inl & is_comp], finish[inl & is_comp])
        cw = _union_length(start[inl & (is_comp | is_wr)], finish[inl & (is_comp | is_wr)])
        cyc = rec.cycles
        c = min(c, cyc)
        w = min(cw, cyc) - c
        comp += c * rec.repeat
        rew += w * rec.repeat
        stall += (cyc - c - w) * rec.repeat
    return {"compute_cycles": int(comp), "rewrite_cycles": int(rew), "stall_cycles": int(stall)}


def energy_split(result) -> dict:
    comp = result.components
    def e(c, a=None):
        d = comp.get(c, {}).get("energy_pj", {})
        return float(sum(v for k, v in d.items() if (a is None and k != "leakage") or k == a))
    leak = float(sum(c["energy_pj"].get("leakage", 0.0) for c in comp.values()))
    return {"compute_pj": e("cim", "bitop") + e("cim", "shift_acc") + e("cim", "wave"),
            "rewrite_pj": e("cim", "bit_write") + e("cim", "transpose"),
            "buffer_pj": e("buffer"),
            "dram_pj": e("offchip"),
            "vector_pj": e("vector"),
            "leakage_pj": leak}


def summary(uarch, result) -> dict:
    out = dict(cycle_split(uarch, result))
    out.update(energy_split(result))
    cnt = result.components.get("cim", {}).get("counts", {})
    arr = result.components.get("array", {}).get("counts", {})
    out.update({"macro_waves": int(cnt.get("wave", 0)), "macro_row_writes": int(cnt.get("row_write", 0)),
                "macro_bits_written": int(cnt.get("bit_write", 0)),
                "skipped_macs": int(arr.get("skipped_mac", 0)),
                "mapping": dict(result.program.meta.get("cim", {}))})
    return out
