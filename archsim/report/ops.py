"""Per-op breakdown of a run: which workload op (or fused group of ops) the time goes to.

Lowerers tag every instruction with the op it implements (:meth:`archsim.isa.ProgramBuilder.tag`).
Per simulated layer instance and op this gives:

- ``start`` / ``end``: first instruction start (off the ``host`` unit, whose queued launches run
  ahead of the device, unless the op is host work only) and last finish, cycles from the
  layer's start;
- ``span_cycles``: ``end - start`` (ops overlap, so spans may add up to more than the layer);
- ``added_cycles``: the time the op adds to the layer: ops taken in order of their ends, each
  is credited from the previous end (or its own start, if later) to its own end. The credits
  add up to the layer's span minus the gaps in which no op was running;
- ``busy_cycles``: busy time of its busiest compute unit (any unit but the memory queues);
- ``offchip_bytes``: bytes of its loads and stores;
- ``macs``: the model's MACs of its workload ops (None when an op is split over several tags).
"""
from __future__ import annotations

import numpy as np

from archsim.isa import Op


def op_breakdown(prog, wl, dur: np.ndarray, start: np.ndarray, finish: np.ndarray,
                 bytes_from_instructions: bool = True) -> list[dict]:
    """The breakdown rows, layer by layer in program order of the layers, ops by end time.
    ``bytes_from_instructions`` False: the microarchitecture counts its off-chip traffic in
    counters, not in load / store instructions (``offchip_bytes`` is then None)."""
    n = len(prog)
    if not n or len(prog.op_tag) != n or not prog.op_names:
        return []
    tag = prog.op_tag.astype(np.int64)
    layer = prog.layer.astype(np.int64)
    T = len(prog.op_names) + 1                      # slot 0: untagged instructions
    key = layer * T + (tag + 1)
    # instructions of an op are mostly consecutive: reduce runs of equal keys first (linear
    # time), then the few runs per key
    cut = np.concatenate(([0], np.flatnonzero(np.diff(key)) + 1))
    keys, run_inv = np.unique(key[cut], return_inverse=True)
    K = len(keys)
    inv = np.repeat(run_inv, np.diff(np.append(cut, n)))
    big = np.iinfo(np.int64).max
    # an op starts with its first instruction off the host: a host that queues work (kernel
    # launches) runs ahead of the device; an op with only host work starts with it
    host = np.array([u == "host" for u in prog.unit_names])[prog.unit]
    first = np.full(K, big)
    np.minimum.at(first, run_inv, np.minimum.reduceat(np.where(host, big, start), cut))
    only_host = first == big
    if only_host.any():
        h = np.full(K, big)
        np.minimum.at(h, run_inv, np.minimum.reduceat(start, cut))
        first[only_host] = h[only_host]
    last = np.full(K, np.iinfo(np.int64).min)
    np.maximum.at(last, run_inv, np.maximum.reduceat(finish, cut))
    U = len(prog.unit_names)
    compute = np.array([not u.startswith("dma") for u in prog.unit_names])[prog.unit]
    per_unit = np.bincount(inv[compute] * U + prog.unit[compute], weights=dur[compute], minlength=K * U)
    busy = np.rint(per_unit.reshape(K, U).max(axis=1)).astype(np.int64) if U else np.zeros(K, np.int64)
    mem = (prog.op == Op.LOAD) | (prog.op == Op.STORE)
    nbytes = np.rint(np.bincount(inv[mem], weights=prog.nbytes[mem], minlength=K)).astype(np.int64)
    macs_of = {op.name: int(op.macs) for op in wl.ops() if hasattr(op, "macs")}
    members = prog.meta.get("op_members") or [[nm] for nm in prog.op_names]
    k_layer, k_tag = keys // T, keys % T - 1
    out = []
    for L in np.unique(k_layer):
        sel = np.nonzero(k_layer == L)[0]
        t0 = int(first[sel].min())
        # an op's MACs are its members' when no other tag of the layer shares one of them
        owners: dict = {}
        for i in sel:
            for m in (members[k_tag[i]] if k_tag[i] >= 0 else []):
                owners[m] = owners.get(m, 0) + 1
        prev = t0
        for i in sel[np.lexsort((first[sel], last[sel]))]:
            s, e = int(first[i]), int(last[i])
            added = max(0, e - max(prev, s))
            prev = max(prev, e)
            t = int(k_tag[i])
            mem_names = members[t] if t >= 0 else []
            shared = any(owners.get(m, 0) > 1 for m in mem_names)
            out.append({
                "layer": prog.layer_names[int(L)],
                "name": prog.op_names[t] if t >= 0 else "(untagged)",
                "ops": list(mem_names),
                "start": s - t0, "end": e - t0, "span_cycles": e - s, "added_cycles": added,
                "busy_cycles": int(busy[i]),
                "offchip_bytes": int(nbytes[i]) if bytes_from_instructions else None,
                "macs": None if shared else sum(macs_of.get(m, 0) for m in mem_names),
            })
    return out
