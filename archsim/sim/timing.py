"""The shared event-ordered timing kernel.

Each unit (DMA read queue, DMA write queue, vector unit, compute arrays, ...) executes its
instructions in program order. An instruction starts when its unit is free and all its
dependencies have finished; among the units whose head instruction is ready, the one that
can start earliest goes next, so the memory model sees requests in time order.

- Memory instructions (LOAD/STORE/PIM) are timed by the memory model through
  :func:`archsim.mem.interface.mem_transfer`; their unit (a DMA queue) is free again one
  cycle after issue, so transfers pipeline and only the memory model serialises them. The
  queue counts as busy while at least one of its transfers is in flight (the union of their
  intervals, so its utilisation never exceeds 1).
- SHARED instructions (a tile to or from an on-chip memory shared by the compute units, the
  program's ``meta["shared_bytes_per_cycle"]``) are issued the same way and serialised by
  that memory's own pipe: ``ceil(bytes / bytes per cycle)`` each, in issue order.
- Every other instruction occupies its unit for ``duration`` cycles (from the
  microarchitecture's cost kernel).

Double buffering and buffer slots are expressed by the lowerer as dependencies (a load
into a slot depends on the compute that last read that slot), so this kernel needs no
knowledge of buffers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from archsim.isa import Op
from archsim.jitcache import drop_stale
from archsim.mem.interface import N_MEM_COUNTERS, mem_transfer

# the kernel inlines the memory models: recompile when any of them changed
drop_stale(__file__, [Path(__file__).parents[1] / "mem"])

OP_LOAD = int(Op.LOAD)
OP_STORE = int(Op.STORE)
OP_PIM = int(Op.PIM)
OP_SYNC = int(Op.SYNC)
OP_SHARED = int(Op.SHARED)


@njit(cache=True, inline="always")
def shared_transfer(free, t_issue, nbytes, bytes_per_cycle):
    """Completion of a transfer through the shared on-chip memory's pipe, free from ``free``:
    transfers go one after another in issue order, ``ceil(bytes / bytes per cycle)`` each."""
    b = t_issue if t_issue > free else free
    return b + np.int64(np.ceil(nbytes / bytes_per_cycle))


@njit(cache=True)
def _head_time(u, heads, qend, queue, deps, finish, unit_free, cand, wait_first, wait_next, big):
    """Earliest start of unit ``u``'s head instruction into ``cand[u]``: ``big`` when the unit
    is done, or when a dependency has not issued yet (then ``u`` waits on that instruction)."""
    h = heads[u]
    if h >= qend[u]:
        cand[u] = big
        return
    i = queue[h]
    t = unit_free[u]
    for j in range(deps.shape[1]):
        d = deps[i, j]
        if d >= 0:
            f = finish[d]
            if f < 0:
                wait_next[u] = wait_first[d]
                wait_first[d] = u
                cand[u] = big
                return
            if f > t:
                t = f
    cand[u] = t


@njit(cache=True)
def _schedule(op, unit, layer, deps, nbytes, addr, duration, queue, qstart, qend,
              n_layers, mem_kind, mem_params, mem_state, shared_bpc):
    n = op.shape[0]
    n_units = qstart.shape[0]
    start = np.full(n, -1, np.int64)
    finish = np.full(n, -1, np.int64)
    unit_free = np.zeros(n_units, np.int64)
    heads = qstart.copy()
    mem_counters = np.zeros((n_layers, N_MEM_COUNTERS), np.int64)
    busy = np.zeros((n_layers, n_units), np.int64)
    # a DMA queue's transfers overlap: it is busy while at least one is in flight
    covered = np.zeros(n_units, np.int64)
    big = np.int64(1) << np.int64(62)
    shared_free = np.int64(0)          # the shared on-chip memory's pipe
    # each unit's head start time, kept up to date: it changes only when the unit issues or
    # when the instruction its head waits on issues (units waiting on an instruction form a
    # list: wait_first[instruction] -> wait_next[unit] -> ...)
    cand = np.full(n_units, big, np.int64)
    wait_first = np.full(n, -1, np.int64)
    wait_next = np.full(n_units, -1, np.int64)
    for u in range(n_units):
        _head_time(u, heads, qend, queue, deps, finish, unit_free, cand, wait_first, wait_next, big)
    for _ in range(n):
        # the ready head that can start earliest; ties to the lowest unit
        best_u = -1
        best_t = big
        for u in range(n_units):
            if cand[u] < best_t:
                best_t = cand[u]
                best_u = u
        if best_u < 0:
            # cannot happen for a valid program (deps point backwards)
            return start, finish, mem_counters, busy, False
        i = queue[heads[best_u]]
        heads[best_u] += 1
        o = op[i]
        t = best_t
        start[i] = t
        lyr = layer[i]
        if o == OP_LOAD or o == OP_STORE or o == OP_PIM or o == OP_SHARED:
            if o == OP_SHARED:
                f = shared_transfer(shared_free, t, nbytes[i], shared_bpc)
                shared_free = f
            else:
                f = mem_transfer(mem_kind, mem_params, mem_state, mem_counters[lyr], addr[i],
                                 nbytes[i], o == OP_STORE, t)
            finish[i] = f
            unit_free[best_u] = t + 1
            c = covered[best_u]
            if f > c:
                busy[lyr, best_u] += f - (t if t > c else c)
                covered[best_u] = f
        else:
            f = t + duration[i]
            finish[i] = f
            unit_free[best_u] = f
            busy[lyr, best_u] += duration[i]
        _head_time(best_u, heads, qend, queue, deps, finish, unit_free, cand, wait_first, wait_next, big)
        w = wait_first[i]
        while w >= 0:
            nxt = wait_next[w]
            _head_time(w, heads, qend, queue, deps, finish, unit_free, cand, wait_first, wait_next, big)
            w = nxt
    return start, finish, mem_counters, busy, True


def unit_queues(unit: np.ndarray, n_units: int):
    """Per-unit instruction lists in program order (CSR form)."""
    queue = np.argsort(unit, kind="stable").astype(np.int64)
    counts = np.bincount(unit, minlength=n_units).astype(np.int64)
    qend = np.cumsum(counts)
    qstart = qend - counts
    return queue, qstart, qend


def schedule(program, duration: np.ndarray, memory):
    """Run the timing kernel. Returns (start, finish, mem_counters[layer, slot], busy[layer, unit])."""
    n_units = len(program.unit_names)
    queue, qstart, qend = unit_queues(program.unit, n_units)
    state = memory.fresh_state()
    start, finish, memc, busy, ok = _schedule(
        program.op, program.unit, program.layer, program.deps, program.nbytes, program.addr,
        duration.astype(np.int64), queue, qstart, qend, max(1, len(program.layer_names)),
        memory.kind, memory.params, state, float(program.meta.get("shared_bytes_per_cycle", 1.0)))
    if not ok:
        raise RuntimeError("timing kernel deadlocked: the program has a forward dependency")
    memory.final_state = state
    return start, finish, memc, busy
