"""The shared timing kernel against a naive Python twin on random programs."""

import numpy as np
from hypothesis import given, settings, strategies as st

from archsim.isa import Op, Program
from archsim.mem.interface import MemoryModel, MEM_BANDWIDTH
from archsim.sim.timing import schedule


def naive(op, unit, deps, nbytes, dur, n_units, bpc, lat):
    """Same semantics, written plainly: per-unit FIFO queues, pick the earliest ready head."""
    n = len(op)
    queues = [[i for i in range(n) if unit[i] == u] for u in range(n_units)]
    free = [0] * n_units
    fin = [None] * n
    bus = 0
    for _ in range(n):
        cands = []
        for u in range(n_units):
            if not queues[u]:
                continue
            i = queues[u][0]
            ds = [d for d in deps[i] if d >= 0]
            if any(fin[d] is None for d in ds):
                continue
            t = max([free[u]] + [fin[d] for d in ds])
            cands.append((t, u))
        t, u = min(cands)
        i = queues[u].pop(0)
        if op[i] in (Op.LOAD, Op.STORE):
            d = max(1, int(np.ceil(nbytes[i] / bpc)))
            b = max(t, bus)
            bus = b + d
            fin[i] = b + d + lat
            free[u] = t + 1
        else:
            fin[i] = t + dur[i]
            free[u] = fin[i]
    return fin


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(0, 10_000), st.data())
def test_kernel_matches_naive(n, seed, data):
    rng = np.random.default_rng(seed)
    n_units = 4
    op = rng.choice([Op.LOAD, Op.STORE, Op.GEMM, Op.VECTOR], size=n).astype(np.uint8)
    unit = np.where(op == Op.LOAD, 0, np.where(op == Op.STORE, 1, rng.integers(2, 4, n))).astype(np.int32)
    deps = np.full((n, 4), -1, np.int64)
    for i in range(1, n):
        k = rng.integers(0, 3)
        if k:
            deps[i, :k] = rng.integers(0, i, k)
    nbytes = rng.integers(1, 5000, n).astype(np.int64)
    dur = rng.integers(0, 300, n).astype(np.int64)
    prog = Program(op=op, unit=unit, layer=np.zeros(n, np.int32), m=np.zeros(n, np.int64),
                   n=np.zeros(n, np.int64), k=np.zeros(n, np.int64), nbytes=nbytes,
                   addr=np.zeros(n, np.int64), deps=deps, aux=np.zeros((n, 4), np.int64),
                   unit_names=["rd", "wr", "a", "b"], layer_names=["l"], layer_weights=np.ones(1, np.int64))
    prog.validate()
    bpc, lat = 7.0, 13
    mem = MemoryModel(MEM_BANDWIDTH, np.array([bpc, lat], float), np.zeros((1, 1), np.int64), bpc)
    start, finish, memc, busy = schedule(prog, dur, mem)
    assert list(finish) == naive(op, unit, deps, nbytes, dur, n_units, bpc, lat)
    assert memc[0, 0] == nbytes[op == Op.LOAD].sum()
    assert (finish >= start).all()
    for i in range(n):
        for d in deps[i]:
            if d >= 0:
                assert start[i] >= finish[d]
    # busy: a DMA queue while any of its transfers is in flight (union of intervals), a
    # compute unit for the sum of its durations; never more than the whole run
    for u in range(n_units):
        idx = np.flatnonzero(unit == u)
        if u < 2:
            covered = set()
            for i in idx:
                covered.update(range(int(start[i]), int(finish[i])))
            assert busy[0, u] == len(covered)
        else:
            assert busy[0, u] == dur[idx].sum()
        assert busy[0, u] <= finish.max()
