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


def test_a_repeated_layer_is_timed_without_the_layers_after_it():
    # Units: 0 DMA read queue, 1 DMA write queue, 2 a compute unit. Memory: 10 B/cycle, no latency.
    # Layer 1 (repeated 4 times) loads 100 B (cycles 0-10), computes 5 cycles (10-15) and stores
    # 100 B. Layer 2 (once) prefetches 1000 B with no dependency: queued behind layer 1's load on
    # the read queue it issues at cycle 1 and holds the bus 10-110, so layer 1's store (issued at
    # 15) waits for it, 110-120. Alone, layer 1 ends at 25 (store 15-25). Its span counts 4 times:
    # 25 each, and the 95 cycles layer 2 cost it fall to layer 2, once.
    from archsim.sim.run import isolated_ends, layer_ends

    op = np.array([Op.LOAD, Op.GEMM, Op.STORE, Op.LOAD], np.uint8)
    unit = np.array([0, 2, 1, 0], np.int32)
    layer = np.array([1, 1, 1, 2], np.int32)
    deps = np.full((4, 4), -1, np.int64)
    deps[1, 0], deps[2, 0] = 0, 1
    z = np.zeros(4, np.int64)
    prog = Program(op=op, unit=unit, layer=layer, m=z, n=z, k=z, nbytes=np.array([100, 0, 100, 1000]),
                   addr=z, deps=deps, aux=np.zeros((4, 4), np.int64), unit_names=["rd", "wr", "pe"],
                   layer_names=["l0", "l1", "l2"], layer_weights=np.array([1, 4, 1]))
    mem = MemoryModel(MEM_BANDWIDTH, np.array([10.0, 0.0]), np.zeros((1, 1), np.int64), 10.0)
    dur = np.array([0, 5, 0, 0], np.int64)
    start, finish, _, _ = schedule(prog, dur, mem)
    assert list(finish) == [10, 15, 120, 110]
    assert list(layer_ends(prog.layer, finish, 3)) == [0, 120, 120]
    ends = isolated_ends(prog, dur, mem, start, finish, prog.layer_weights)
    assert list(ends) == [0, 25, 120]
    spans = np.diff(np.concatenate(([0], ends)))
    assert int((spans * prog.layer_weights).sum()) == 4 * 25 + 95
    # without the later layer's early start nothing is re-timed: the same program with the
    # prefetch waiting for layer 1's store
    deps[3, 0] = 2
    start, finish, _, _ = schedule(prog, dur, mem)
    assert list(isolated_ends(prog, dur, mem, start, finish, prog.layer_weights)) == [0, 25, 125]


def test_dedup_follows_every_layer_when_a_later_layer_prefetches():
    # cim_llm streams Mamba-130M's weights through its macros; with 1024 macros the head's weight
    # loads start during the (once-simulated) block and used to delay it in each of its 24 repeats
    from archsim.api import simulate
    wl = dict(phase="decode", batch=1, kv_len=256)
    dedup = [simulate("cim_llm", "workloads/mamba-130m.yaml", overrides=[f"macro.count={c}"], **wl).cycles
             for c in (256, 512, 1024)]
    full = simulate("cim_llm", "workloads/mamba-130m.yaml", overrides=["macro.count=1024"], all_layers=True,
                    **wl).cycles
    assert dedup == sorted(dedup, reverse=True)          # more macros never slower
    assert abs(dedup[-1] / full - 1) < 0.02
