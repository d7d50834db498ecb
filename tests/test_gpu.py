"""GPU xPU model: cost kernel vs naive twin, hand-derived cycles, bounds, TP, bad input."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from archsim.api import simulate
from archsim.config.loader import load_arch
from archsim.errors import ArchsimError
from archsim.uarch import names
from archsim.uarch.gpu.cost import gemm_chunk_cycles, link_cycles
from archsim.uarch.gpu.tiling import (chunk_plan, fragment_bytes, iter_cycles, k_depth, plan_gemm, resident_ctas,
                                      split_chunks, warp_grid, wave_traffic)


def naive_chunk(tm, tn, k, tk, rate, eff, bits, feed_bpc, overhead, c, last, epi, acc, b_frac=1.0, frag=0,
                smem_bpc=128.0):
    tk = max(1, tk * 16 // bits)               # the same stage bytes at every operand width
    iters = -(-k // tk)
    mma = tm * tn * tk / (rate * eff)
    feed = (tm + tn * b_frac) * tk * bits / 8 / feed_bpc
    smem = (frag + (tm + tn * b_frac) * tk * bits / 8) / smem_bpc if frag else 0.0
    per = max(c * mma, c * feed, c * smem, max(mma, feed, smem) + overhead)
    return math.ceil(iters * per + (c * tm * tn * acc / epi if last else 0))


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([16, 64, 128, 256]), st.sampled_from([64, 128, 256]), st.integers(1, 4096),
       st.sampled_from([512.0, 1024.0, 2048.0]), st.floats(0.5, 1.0), st.sampled_from([8, 16]),
       st.floats(10, 200), st.floats(0, 100), st.integers(1, 4), st.booleans())
def test_chunk_kernel_matches_naive(tm, tn, k, rate, eff, bits, feed, ovh, c, last):
    got = gemm_chunk_cycles(tm, tn, k, 32, rate, eff, bits, feed, ovh, c, last, 64.0, 4)
    assert abs(int(got) - naive_chunk(tm, tn, k, 32, rate, eff, bits, feed, ovh, c, last, 64.0, 4)) <= 1
    # a compressed (structured-sparse) B panel: 2:4 with 2-bit indices is 144/256 of a 16-bit panel
    got = gemm_chunk_cycles(tm, tn, k, 32, rate, eff, bits, feed, ovh, c, last, 64.0, 4, 144)
    assert abs(int(got) - naive_chunk(tm, tn, k, 32, rate, eff, bits, feed, ovh, c, last, 64.0, 4,
                                      144 / 256)) <= 1
    # warps reading their fragments from shared memory (A100: 64 x 64 warp tiles, 4 a CTA)
    frag = int(fragment_bytes(tm, tn, k_depth(32, bits), bits / 8, 144 / 256, (64, 64, 4)))
    got = gemm_chunk_cycles(tm, tn, k, 32, rate, eff, bits, feed, ovh, c, last, 64.0, 4, 144, frag, 128.0)
    assert abs(int(got) - naive_chunk(tm, tn, k, 32, rate, eff, bits, feed, ovh, c, last, 64.0, 4,
                                      144 / 256, frag, 128.0)) <= 1


def test_chunk_and_ring_by_hand():
    # one 128x256 CTA, 32-deep iterations at 1024 MAC/cycle: 1024 cycles of MMA per iteration;
    # feed (128+256)*32*2 B / 47.4 = 518.5 < 1024; + 20 overhead -> 1044 per iteration, 4 iterations
    assert gemm_chunk_cycles(128, 256, 128, 32, 1024.0, 1.0, 16, 47.4, 20.0, 1, False, 64.0, 4) == 4 * 1044
    # the same CTA in INT8 at twice the MMA rate: 64-deep iterations (same stage bytes), 1024
    # cycles of MMA, feed 384*64*1 B / 47.4 = 518.5, + 20 -> 1044 per iteration, 2 iterations:
    # exactly twice as fast (32-deep iterations would pay the overhead 4 times: 4 * 532)
    assert gemm_chunk_cycles(128, 256, 128, 32, 2048.0, 1.0, 8, 47.4, 20.0, 1, False, 64.0, 4) == 2 * 1044
    assert k_depth(32, 8) == 64 and k_depth(64, 8) == 128 and k_depth(32, 4) == 128 and k_depth(32, 32) == 16
    # ring all-reduce of 1 MB over 4 devices at 100 B/cycle, 10-cycle hops:
    # 2*(4-1)/4 * 1e6 / 100 + 6 * 10 = 15000 + 60
    assert link_cycles(1_000_000, 4, 100.0, 10.0) == 15060
    assert link_cycles(1_000_000, 1, 100.0, 10.0) == 0


def test_warp_tiles_and_shared_memory_reads_by_hand():
    # CUTLASS's Ampere CTA tiles: 256x128 in 8 warps of 64x64, 128x128 in 4, 128x64 in 4 of 32x64
    # (the same traffic as 64x32), 64x64 in 4 of 32x32; a 16-row tile splits along N
    assert warp_grid(256, 128, 64, 64, 4) == (64, 64, 8)
    assert warp_grid(128, 128, 64, 64, 4) == (64, 64, 4)
    assert warp_grid(128, 64, 64, 64, 4) == (32, 64, 4)
    assert warp_grid(64, 64, 64, 64, 4) == (32, 32, 4)
    assert warp_grid(16, 64, 64, 64, 4) == (16, 16, 4)
    # Hopper: warpgroups of 64 x up to 256, one at least
    assert warp_grid(128, 256, 64, 256, 1) == (64, 256, 2)
    assert warp_grid(64, 64, 64, 256, 1) == (64, 64, 1)
    # 128x64 CTA, k 32, 16-bit: 4 warps x (32 + 64) rows x 32 x 2 B = 24,576 B a k step
    assert fragment_bytes(128, 64, 32, 2.0, 1.0, (64, 64, 4)) == 4 * (32 + 64) * 32 * 2
    assert fragment_bytes(128, 64, 32, 2.0, 1.0, ()) == 0.0
    # 64x64 CTA at 1024 MAC/cycle: 128 cycles of MMA an iteration; the warps read 4 x 64 x 32 x 2
    # = 16,384 B and the stage writes 128 x 32 x 2 = 8,192 B: 192 cycles at 128 B/cycle. Four
    # co-resident CTAs share the shared memory: 4 x 192 = 768 cycles an iteration, not 4 x 128
    frag = fragment_bytes(64, 64, 32, 2.0, 1.0, (64, 64, 4))
    assert frag == 16384
    assert gemm_chunk_cycles(64, 64, 320, 32, 1024.0, 1.0, 16, 1e9, 20.0, 4, False, 64.0, 4, 256,
                             int(frag), 128.0) == 10 * 768
    assert gemm_chunk_cycles(64, 64, 320, 32, 1024.0, 1.0, 16, 1e9, 20.0, 4, False, 64.0, 4) == 10 * 512
    # 256x128 (8 warps of 64x64): 65,536 B read + 24,576 B written = 704 cycles < 1024 of MMA
    frag = fragment_bytes(256, 128, 32, 2.0, 1.0, (64, 64, 4))
    assert frag == 65536
    assert gemm_chunk_cycles(256, 128, 32, 32, 1024.0, 1.0, 16, 1e9, 20.0, 1, False, 64.0, 4, 256,
                             int(frag), 128.0) == 1024 + 20


def test_chunks_ramp_at_the_kernels_ends():
    # 3 waves of 4 chunks: the kernel's first chunk is cut into eighths 1, 3, 4, its last into 4, 3, 1
    wv, w, last = chunk_plan(3, 4)
    assert list(w) == [1, 3, 4, 8, 8, 8] + [8] * 4 + [8, 8, 8, 4, 3, 1]
    assert list(wv) == [0] * 6 + [1] * 4 + [2] * 6
    assert list(np.flatnonzero(last)) == [5, 9, 15]
    # one wave, one chunk: nothing to cut
    wv, w, last = chunk_plan(1, 1)
    assert list(w) == [8] and list(last) == [True]
    # each wave's bytes / iterations are split in proportion (the first wave's weights sum to 32)
    # and conserved
    parts = split_chunks([64_000, 1000, 64_000], *chunk_plan(3, 4)[:2])
    assert parts[0] == 2000 and parts[15] == 2000 and parts[3] == 16000
    assert parts[:6].sum() == 64_000 and parts[6:10].sum() == 1000 and parts[10:].sum() == 64_000


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 40), st.integers(1, 8), st.lists(st.integers(0, 10**12), min_size=40, max_size=40))
def test_chunk_split_conserves_every_wave(W, nc, totals):
    wv, w, last = chunk_plan(W, nc)
    parts = split_chunks(totals[:W], wv, w)
    assert (parts >= 0).all()
    assert list(np.bincount(wv, weights=parts, minlength=W).astype(np.int64)) == totals[:W]
    assert last.sum() == W and last[-1]


def test_a_kernel_fills_and_drains_in_short_chunks():
    """A compute-bound wave starts its MMAs after the first 1/64 of its loads, and a memory-bound
    one ends less than half a chunk of MMAs after its last load (a whole chunk, 1/8 of them, with
    equal chunks)."""
    from archsim.api import load
    from archsim import uarch as registry
    from archsim.isa import Op
    from archsim.mem.interface import build_memory
    from archsim.sim.timing import schedule
    from archsim.uarch.base import LowerOptions

    def timeline(M, N, K):
        cfg, wl = load("a100", {"kind": "gemm", "M": M, "N": N, "K": K},
                       overrides=["launch.fixed=0us", "tiles.m=[128]", "tiles.n=[128]", "tiles.split_k=[1]"])
        u = registry.get("gpu")
        mem = build_memory(cfg.memory, cfg.clock)
        prog = u.lower(cfg, wl, LowerOptions(), memory=mem)
        dur, _ = u.cost(cfg, prog)
        start, finish, _, _ = schedule(prog, dur, mem)
        return prog, dur, start, finish

    # compute bound: 1024 x 1024 x 8192, 64 CTAs of 128x128 in one wave, 256 iterations in 8 chunks
    prog, dur, start, finish = timeline(1024, 1024, 8192)
    g = np.flatnonzero(prog.op == Op.GEMM)
    ld = np.flatnonzero(prog.op == Op.LOAD)
    assert prog.k[g].sum() == 8192 and prog.k[g[0]] == 8192 // 64
    assert prog.nbytes[ld[0]] == pytest.approx(prog.nbytes[ld].sum() / 64, abs=1)
    assert start[g[0]] == finish[ld[0]]
    # the MMAs run back to back after it
    assert (start[g[1:]] == finish[g[:-1]]).all()
    # memory bound: 16 x 8192 x 8192 (one wave of 64 CTAs of 16 x 128); the last chunk's MMAs are
    # 1/64 of them
    prog, dur, start, finish = timeline(16, 8192, 8192)
    g = np.flatnonzero(prog.op == Op.GEMM)
    ld = np.flatnonzero(prog.op == Op.LOAD)
    assert prog.k[g[-1]] == 8192 // 64
    assert (finish[ld[1:]] > finish[ld[:-1]]).all()
    assert 0 < finish[g[-1]] - finish[ld[-1]] < dur[g].sum() / 16


@pytest.mark.parametrize("arch,prec,M,N,K", [
    ("a100", "bf16", 256, 12288, 12288),     # a 6-way split was estimated fastest and ran 8.6% slow
    ("a100", "bf16", 128, 12288, 12288),
    ("a100", "bf16", 16, 256, 4096),         # host-bound: every split ties, the GEMM alone decides
    ("h100", "int8", 64, 3072, 12288),       # a part-full second wave cannot hide behind memory
    ("h100", "fp8", 256, 64, 4096),          # the first load's latency decides between near ties
])
def test_the_plan_search_picks_a_near_best_tiling(arch, prec, M, N, K):
    """The library's choice, simulated, is within 4% of the fastest candidate tiling simulated."""
    import archsim.uarch.gpu.lower as lower
    orig = lower.plan_gemm
    names = orig.__wrapped__.__code__.co_varnames[:orig.__wrapped__.__code__.co_argcount]
    wl = {"kind": "gemm", "M": M, "N": N, "K": K, "precision": {"weights": prec, "activations": prec}}
    ov = ["launch.fixed=0us"]
    calls = []

    def spy(*a, **kw):
        calls.append((a, kw))
        return orig(*a, **kw)

    def forced(plan):
        return lambda *a, **kw: plan

    lower.plan_gemm = spy
    try:
        chosen = simulate(arch, wl, overrides=ov).seconds
        args, kw = calls[0]
        times = []
        for tm in args[names.index("tms")]:
            for tn in args[names.index("tns")]:
                for s in args[names.index("splits")]:
                    a = list(args)
                    a[names.index("tms")], a[names.index("tns")], a[names.index("splits")] = (tm,), (tn,), (s,)
                    try:
                        plan = orig.__wrapped__(*a, **kw)
                    except ArchsimError:
                        continue
                    lower.plan_gemm = forced(plan)
                    times.append(simulate(arch, wl, overrides=ov).seconds)
    finally:
        lower.plan_gemm = orig
    assert chosen <= 1.04 * min(times)


def test_resident_ctas_limits():
    # 128x256 tile: accumulators 128 KiB = half of the 256 KiB register file -> 1 CTA
    assert resident_ctas(128, 256, 32, 2, 4, 3, 164 * 1024, 256 * 1024, 4) == 1
    # 64x64: regs allow 8, smem allows 164K / (3 * 128 * 32 * 2) = 6, capped at 4
    assert resident_ctas(64, 64, 32, 2, 4, 3, 164 * 1024, 256 * 1024, 4) == 4
    assert iter_cycles(64, 64, 32, 1024, 1.0, 2, 47.4, 20, 4) == pytest.approx(4 * 8192 / 47.4)


def test_wave_quantisation_and_macs():
    # 256 x 12288 x 12288 on 108 SMs: CTA count and waves follow the chosen tile
    p = plan_gemm(256, 12288, 12288, 1, True, 2.0, 2.0, 2.0, False, False, False, (64, 128, 256),
                  (64, 128, 256), 32, 16, (1,), 8, 108, 4, 1024.0, 47.4, 130.0, 20.0, 64.0, 4,
                  40 * 2**20, 1326.0, 164 * 1024.0, 256 * 1024.0, 3, 0.95, 7600.0, 1400.0, 20 * 2**20)
    assert p.ctas == -(-256 // p.tm) * -(-12288 // p.tn)
    assert p.waves == -(-p.ctas // (108 * p.per_sm))
    assert sum(p.wave_macs) == 256 * 12288 * 12288
    # B (302 MB) is read from HBM at least once
    assert sum(p.wave_hbm_b) >= 12288 * 12288 * 2


def test_a_partial_wave_is_estimated_as_the_cost_kernel_times_it():
    # 128 x 3072 x 768 (GPT-2's MLP up at 128 tokens) in 64 x 64 tiles, no split: 2 x 48 = 96
    # CTAs on 108 SMs, one per SM although 4 could reside. Each of the 24 main-loop iterations
    # (k 32) is bound by the operand feed plus the loop overhead on one CTA:
    # max(64*64*32 / (1024*0.95), 128*32*2 / 47.4) + 20 = 172.8 + 20; the epilogue writes
    # 64*64*4 B at 64 B/cycle. Memory: A 196,608 B, B 4,718,592 B and C 786,432 B at 1326
    # B/cycle. The k loop runs in 6 chunks (24 iterations / 4), the kernel's first cut into eighths
    # 1, 3, 4: the shorter of the two (the MMAs) is exposed for an eighth of a chunk, the kernel's
    # last MMAs after its last load.
    args = (128, 3072, 768, 1, True, 2.0, 2.0, 2.0, False, False, False, (64,), (64,), 32, 16, (1,), 8,
            108, 4, 1024.0, 47.4, 130.0, 20.0, 64.0, 4, 40 * 2**20, 1326.0, 164 * 1024.0, 256 * 1024.0, 3,
            0.95, 7600.0, 1400.0, 20 * 2**20)
    p = plan_gemm(*args)
    assert (p.ctas, p.waves, p.per_sm) == (96, 1, 4)
    comp = 24 * (128 * 32 * 2 / 47.4 + 20) + 64 * 64 * 4 / 64
    mem = (196608 + 4718592 + 786432) / 1326.0
    assert p.est_cycles == pytest.approx(max(comp, mem) + min(comp, mem) / (6 * 8))
    # the cost kernel charges the same wave (one CTA per SM)
    assert gemm_chunk_cycles(64, 64, 768, 32, 1024.0, 0.95, 16, 47.4, 20.0, 1, True, 64.0, 4) == \
        math.ceil(comp)


def test_gemm_time_grows_with_the_tokens():
    # the chosen plans' simulated times never fall as the GEMMs grow (GPT-2 prefill: host bound at
    # small M, its split-K choices then turn on and off)
    for arch in ("a100", "h100"):
        cyc = [simulate(arch, "workloads/gpt2.yaml", phase="prefill", seq_len=s).cycles
               for s in (64, 128, 192, 256, 384, 512, 768)]
        assert cyc == sorted(cyc), (arch, cyc)


def test_registered_and_presets():
    assert "gpu" in names()
    for p in ("a100", "h100"):
        cfg = load_arch(p)
        assert cfg.uarch == "gpu"
    a = load_arch("a100")
    peak = 2 * a.sm.count * a.mma_rate("bf16") * a.clock / 1e12
    assert peak == pytest.approx(312, rel=0.01)


@pytest.mark.parametrize("M,N,K", [(64, 4096, 4096), (4096, 4096, 4096), (8192, 64, 64)])
def test_gemm_bounds(M, N, K):
    r = simulate("a100", {"kind": "gemm", "M": M, "N": N, "K": K})
    assert r.bounds_ok()
    assert r.macs == M * N * K


def test_tensor_parallel_conserves_macs_and_adds_link():
    r1 = simulate("a100", "llama2-7b", phase="decode", batch=4, kv_len=256)
    r4 = simulate("a100", "llama2-7b", phase="decode", batch=4, kv_len=256, overrides=["parallel.tensor=4"])
    assert r1.macs == r4.macs == r1.expected_macs
    assert r4.units["link"] > 0 and r1.units["link"] == 0
    assert r4.bounds_ok() and r1.bounds_ok()
    assert r4.seconds < r1.seconds
    # area, like leakage and energy, is the whole system's: four devices, four times one;
    # pipeline stages are devices too
    a1 = r1.to_dict()["area_mm2"]
    assert r4.to_dict()["area_mm2"] == pytest.approx(4 * a1)
    r2 = simulate("a100", "llama2-7b", phase="decode", batch=4, kv_len=256, overrides=["parallel.pipeline=2"])
    assert r2.to_dict()["area_mm2"] == pytest.approx(2 * a1)


def test_tensor_parallel_splits_mamba_channels():
    """Mamba blocks split like a Megatron MLP: in_proj / dt_proj by columns, the conv, the scan and
    the gate on each device's channels, x_proj and out_proj by rows with their partial sums
    all-reduced. Decode of mamba-2.8b (d_model 2560, dt_rank 160, d_state 16) at batch 8: per
    layer the all-reduces carry 8 x (2560 + 160 + 2 x 16) fp16 values = 44,032 B on each of the
    two devices, 64 layers."""
    from archsim.api import load
    from archsim.uarch.gpu.lower import GpuLowerer
    r1 = simulate("a100", "mamba-2.8b", phase="decode", batch=8, kv_len=512)
    r2 = simulate("a100", "mamba-2.8b", phase="decode", batch=8, kv_len=512, overrides=["parallel.tensor=2"])
    assert r1.macs == r2.macs == r1.expected_macs and r2.bounds_ok()
    assert r2.to_dict()["components"]["link"]["counts"]["bytes"] == 2 * 64 * 8 * (2560 + 160 + 32) * 2
    cfg, wl = load("a100", "mamba-2.8b", phase="decode", batch=8, kv_len=512, overrides=["parallel.tensor=2"])
    low = GpuLowerer(cfg, 1.0)
    ops = {op.name.rsplit(".", 1)[-1]: op for op in wl.ops() if op.layer == "block"}
    assert low.shard_gemm(ops["in_proj"])[:4] == (8, 5120, 2560, 1)        # 2 x d_inner / 2 columns
    assert low.shard_gemm(ops["out_proj"]) == (8, 2560, 2560, 1, True)    # d_inner / 2 rows, reduced
    assert low.shard_gemm(ops["x_proj"]) == (8, 192, 2560, 1, True)
    assert low.shard_vector(ops["scan"]) == (8 * 5120 // 2, 16)
    assert low.shard_vector(ops["conv1d"]) == (8, 2560)
    assert low.shard_vector(ops["norm"]) == (8, 2560)                      # the residual stream is whole
    # Mamba-2 prefill: heads split, the single B/C group's C B^T computed on both devices
    p = [simulate("a100", "mamba2-2.7b", phase="prefill", batch=1, seq_len=2048,
                  overrides=[f"parallel.tensor={T}"]) for T in (1, 2)]
    assert p[1].macs == p[0].macs and p[1].seconds < 0.75 * p[0].seconds
    cfg, wl = load("a100", "mamba2-2.7b", phase="prefill", batch=1, seq_len=2048, overrides=["parallel.tensor=2"])
    low = GpuLowerer(cfg, 1.0)
    ops = {op.name.rsplit(".", 1)[-1]: op for op in wl.ops() if op.layer == "block"}
    assert low.shard_gemm(ops["ssd_cb"])[3] == ops["ssd_cb"].count
    assert low.shard_gemm(ops["ssd_diag"])[3] == ops["ssd_diag"].count // 2


def test_fp8_run_is_bounded_and_priced_at_the_fp8_tensor_rate():
    """An FP8 workload on the bf16-default h100 preset: the tensor cores issue its GEMMs at the
    FP8 rate (4096 MACs per SM and cycle), so utilisation is measured against that peak and the
    MACs are priced at the FP8 MAC energy, not the preset's bf16 one."""
    from archsim.energy import table_for
    h = load_arch("h100")
    fp8 = ["workload.precision.weights=fp8", "workload.precision.activations=fp8"]
    r8 = simulate("h100", {"kind": "gemm", "M": 4096, "N": 4096, "K": 4096}, overrides=fp8)
    r16 = simulate("h100", {"kind": "gemm", "M": 4096, "N": 4096, "K": 4096})
    assert r8.peak_macs_per_cycle == h.sm.count * 4096 == 2 * r16.peak_macs_per_cycle
    assert 0 < r8.to_dict()["utilization"] <= 1.0 and r8.bounds_ok()
    table = table_for(h.tech_node_nm, h.energy.table)
    e8 = r8.components["array"]["energy_pj"]["mac"]
    e16 = r16.components["array"]["energy_pj"]["mac"]
    assert e8 == pytest.approx(r8.macs * table.mac_pj("fp8"))
    assert e16 == pytest.approx(r16.macs * table.mac_pj("bf16"))


def test_model_too_big_is_clear_error():
    with pytest.raises(ArchsimError) as e:
        simulate("a100", "llama2-70b", phase="decode", batch=1, kv_len=128)
    assert "memory.capacity" in str(e.value) or getattr(e.value, "path", "") == "memory.capacity"


def test_bad_config_names_field():
    with pytest.raises(ArchsimError) as e:
        load_arch("a100", ["sm.count=0"])
    assert "sm.count" in str(e.value)
    # (64 + 64) x 32 x 2 B x 2 stages = 16384 B is the smallest double-buffered tile
    with pytest.raises(ArchsimError) as e:
        load_arch("a100", ["sm.smem=16383 B"])
    assert e.value.path == "sm.smem" and "16384 B" in str(e.value)
    assert load_arch("a100", ["sm.smem=16384 B"]).sm.smem == 16384


def test_fused_decode_attention_one_kernel_reads_kv_once():
    """Decode attention of requests with different KV lengths is one fused kernel per layer: one
    launch, the K and V caches loaded once (per device: 1 / tensor of them), MACs conserved."""
    from archsim.api import load
    from archsim.isa import Op
    from archsim.sim.run import simulate_loaded
    from archsim.uarch.gpu.lower import U_HOST
    wl = dict(name="t", kind="transformer", d_model=512, n_layers=2, n_heads=8, d_ff=2048, vocab_size=1000,
              norm="layernorm", mlp="gelu", position="learned", phase="decode", batch=4,
              kv_lens=[100, 200, 300, 400], precision={"weights": "fp16", "activations": "fp16"})
    cfg, w = load("a100", wl, overrides=["parallel.tensor=2"])
    r = simulate_loaded(cfg, w)
    p = r.program
    blk = [g.name for g in w.groups if g.name not in ("embed", "head")][0]
    L = p.layer_names.index(blk)
    ops = [op for op in w.ops() if op.layer == blk]
    n_att = sum(op.role in ("attn_qk", "attn_sv", "softmax") for op in ops)
    assert n_att > 3                                     # one GEMM / softmax per distinct length
    launches = int(((p.op == Op.SYNC) & (p.unit == U_HOST) & (p.layer == L)).sum())
    # every non-attention op is a kernel (+1 all-reduce per row-split GEMM), attention is one;
    # one more host step: the runtime's setup of the layer (launch.layer_setup)
    n_ar = sum(op.role == "fc" and op.name.rsplit(".", 1)[-1] in ("o", "down") for op in ops)
    n_split = sum(p.meta["tilings"][op.name]["split_k"] > 1 for op in ops
                  if op.role == "fc")                 # split-K reduction kernels
    assert launches == len(ops) - n_att + 1 + n_ar + n_split + 1
    # the KV of 4 requests (100+200+300+400 (+1 new) keys x 8 heads x 64 x 2 (K, V) x 2 B) over 2 devices
    kv = sum((n + 1) for n in (100, 200, 300, 400)) * 8 * 64 * 2 * 2 / 2
    loads = p.nbytes[(p.op == Op.LOAD) & (p.layer == L)]
    assert loads.sum() >= kv
    assert r.bounds_ok()
    g = simulate_loaded(*load("a100", wl, overrides=["parallel.tensor=2", "decode_attention=gemm"]))
    assert r.seconds < g.seconds and r.macs == g.macs


def test_per_query_head_decode_attention_reads_a_gqa_group_once_per_query_head():
    """decode_attention_kv: a GQA model (8 query heads over 2 KV heads, 4 per group) loads its KV
    cache once per KV head with 'shared' and once per query head with 'per_query_head': the layer's
    load bytes differ by exactly (4 - 1) x the KV bytes (KV lengths 4000..16000 plus the new
    token, 2 KV heads x 64 x 2 (K, V) x 2 B) and the step takes longer; an MHA model (group of 1)
    is unchanged."""
    from archsim.api import load
    from archsim.isa import Op
    from archsim.sim.run import simulate_loaded
    wl = dict(name="t", kind="transformer", d_model=512, n_layers=1, n_heads=8, n_kv_heads=2, d_ff=2048,
              vocab_size=1000, max_seq_len=16384, norm="rmsnorm", mlp="swiglu", position="rope",
              phase="decode", batch=4, kv_lens=[4000, 8000, 12000, 16000],
              precision={"weights": "fp16", "activations": "fp16"})
    kv = sum(n + 1 for n in (4000, 8000, 12000, 16000)) * 2 * 64 * 2 * 2

    def block_loads(w, mode):
        cfg, wk = load("a100", w, overrides=[f"decode_attention_kv={mode}"])
        r = simulate_loaded(cfg, wk)
        p = r.program
        L = p.layer_names.index([g.name for g in wk.groups if g.name not in ("embed", "head")][0])
        return int(p.nbytes[(p.op == Op.LOAD) & (p.layer == L)].sum()), r

    shared, rs = block_loads(wl, "shared")
    per_q, rq = block_loads(wl, "per_query_head")
    assert per_q - shared == 3 * kv
    assert rq.cycles > rs.cycles and rq.macs == rs.macs
    mha = dict(wl, n_kv_heads=8)
    assert block_loads(mha, "shared")[0] == block_loads(mha, "per_query_head")[0]


def test_unsplit_decode_attention_streams_at_an_sms_share_in_waves():
    """decode_attention_split=none: one CTA per (request, head) streams its whole K and V at the
    SM's share of the memory bandwidth, CTAs in waves over the SMs. By hand, 12 SMs, 8 heads of
    64, KV length 1023 (+1 new key): a CTA moves 1024 x 64 x 2 (K, V) x 2 B = 262144 B at
    bandwidth / 12, i.e. 12 / CTAs of the kernel's bytes over the bandwidth per wave. Batch 1
    (8 CTAs, one wave): the busiest SM streams 12/8 = 1.5 x the memory time; batch 2 (16 CTAs,
    two waves of 12 + 4): 2 x 12/16 = 1.5 x; batch 3 (24 CTAs, two full waves): 1.0 x. The
    kernel ends when the busiest SM is done and the loads and tensor-core work (the split
    kernel's chain) are done: batch 1 and 2 wait for the SM, batch 3 takes the split kernel's
    cycles. The step time never falls with the batch."""
    from archsim.api import load
    from archsim.isa import Op
    from archsim.sim.run import simulate_loaded
    from archsim.uarch.gpu.lower import U_CTRL, U_STREAM
    ov = ["sm.count=12", "memory.bandwidth=200 GB/s", "launch.layer_setup=0 us"]
    wl = dict(name="t", kind="transformer", d_model=512, n_layers=1, n_heads=8, d_ff=2048, vocab_size=1000,
              norm="layernorm", mlp="gelu", position="learned", phase="decode", kv_len=1023,
              precision={"weights": "fp16", "activations": "fp16"})

    def run(batch, split):
        cfg, w = load("a100", dict(wl, batch=batch), overrides=ov + [f"decode_attention_split={split}"])
        return simulate_loaded(cfg, w, keep_timeline=True), cfg

    steps = []
    for batch, busiest in ((1, 1.5), (2, 1.5), (3, 1.0)):
        rk, cfg = run(batch, "kv")
        rn, _ = run(batch, "none")
        p, (start, finish) = rn.program, rn.timeline
        mem = batch * 8 * 1024 * 64 * 2 * 2 / (200e9 / cfg.clock)      # the kernel's bytes at the bandwidth
        s = np.flatnonzero((p.op == Op.SYNC) & (p.unit == U_STREAM))
        assert len(s) == 1
        s = int(s[0])
        assert finish[s] - start[s] == pytest.approx(busiest * mem, abs=2), batch
        assert start[s] == finish[p.deps[s, 0]]                        # from the kernel's start
        j = np.flatnonzero((p.unit == U_CTRL) & (p.deps == s).any(axis=1))
        assert len(j) == 1
        chain = int(p.deps[j[0], 0])                                   # the loads' and MMAs' end
        assert p.op[chain] == Op.GEMM
        assert finish[j[0]] == max(finish[s], finish[chain])
        assert rn.cycles - rk.cycles == max(0, finish[s] - finish[chain]), batch
        assert rn.macs == rk.macs
        if busiest > 1:
            assert finish[s] > finish[chain]
        else:
            assert rn.cycles == rk.cycles
        steps.append(rn.cycles)
    assert steps == sorted(steps)


def test_per_op_sync_pays_one_timed_call_per_op():
    """launch.sync=per_op: the host waits for each op and pays launch.fixed before the next, so
    a run of n ops is at least n x fixed longer than the kernels alone, and never shorter than the
    queued (per_run) execution; a single GEMM is the same either way."""
    gemm = {"kind": "gemm", "M": 256, "N": 1024, "K": 1024, "precision": {"weights": "fp16", "activations": "fp16"}}
    a = simulate("a100", gemm, overrides=["launch.sync=per_run"])
    b = simulate("a100", gemm, overrides=["launch.sync=per_op"])
    assert a.cycles == b.cycles
    wl = dict(name="t", kind="transformer", d_model=512, n_layers=1, n_heads=8, d_ff=2048, vocab_size=1000,
              norm="layernorm", mlp="gelu", position="learned", phase="decode", batch=2, kv_len=64,
              precision={"weights": "fp16", "activations": "fp16"})
    fixed_us = 20.0
    run = simulate("a100", wl, overrides=["launch.sync=per_run", f"launch.fixed={fixed_us}us",
                                          "launch.layer_setup=0", "launch.layer_setup_prefill=0"])
    op = simulate("a100", wl, overrides=["launch.sync=per_op", f"launch.fixed={fixed_us}us"])
    from archsim.api import load
    n_ops = len(list(load("a100", wl)[1].ops()))
    fixed_cycles = fixed_us * 1e-6 * 1.41e9
    assert op.cycles >= run.cycles + (n_ops - 1) * fixed_cycles * 0.999
    assert op.cycles <= run.cycles + n_ops * fixed_cycles + n_ops * 20e-6 * 1.41e9   # + at most one launch each


def test_layer_setup_is_paid_per_layer_instance_with_the_gpu_idle():
    """launch.layer_setup: the runtime prepares every layer instance of a pass while the GPU waits,
    so a pass of L layer instances (embed + n blocks + head) is longer by at least L x setup (not
    hidden behind kernels) and at most L x (setup + one kernel launch + device gap), which the
    setup exposes; prefill passes pay layer_setup_prefill; op-by-op timing and single GEMMs none."""
    wl = dict(name="t", kind="transformer", d_model=512, n_layers=3, n_heads=8, d_ff=2048, vocab_size=1000,
              norm="layernorm", mlp="gelu", position="learned", phase="decode", batch=2, kv_len=64,
              precision={"weights": "fp16", "activations": "fp16"})
    clk = 1.41e9
    base = simulate("a100", wl, overrides=["launch.layer_setup=0"])
    s_us = 50.0
    r = simulate("a100", wl, overrides=[f"launch.layer_setup={s_us}us"])
    L = 1 + 3 + 1
    setup, host, gap = s_us * 1e-6 * clk, 5e-6 * clk, 1.5e-6 * clk
    assert L * setup * 0.999 <= r.cycles - base.cycles <= L * (setup + host + gap) + L
    pre = dict(wl, phase="prefill", seq_len=16)
    p0 = simulate("a100", pre, overrides=["launch.layer_setup=0", "launch.layer_setup_prefill=0"])
    p1 = simulate("a100", pre, overrides=["launch.layer_setup=0", f"launch.layer_setup_prefill={2 * s_us}us"])
    assert L * 2 * setup * 0.999 <= p1.cycles - p0.cycles <= L * (2 * setup + host + gap) + L
    per_op = [simulate("a100", wl, overrides=["launch.sync=per_op", f"launch.layer_setup={v}us"]).cycles
              for v in (0, s_us)]
    assert per_op[0] == per_op[1]
    gemm = {"kind": "gemm", "M": 256, "N": 1024, "K": 1024, "precision": {"weights": "fp16", "activations": "fp16"}}
    assert (simulate("a100", gemm, overrides=["launch.layer_setup=0"]).cycles
            == simulate("a100", gemm, overrides=[f"launch.layer_setup={s_us}us"]).cycles)


def test_generation_throughput_sums_prefill_and_decode_steps():
    """Static-batch generation: B x out tokens over the prefill plus out - 1 decode steps; with
    a decode step linear in KV length, Simpson's rule on three steps is the exact sum."""
    from archsim.uarch.gpu.validation import generation_throughput
    wl = dict(name="t", kind="transformer", d_model=512, n_layers=2, n_heads=8, d_ff=2048, vocab_size=1000,
              norm="layernorm", mlp="gelu", position="learned", precision={"weights": "fp16", "activations": "fp16"})
    one = generation_throughput({"arch": "a100", "workload": wl, "batch": 4, "input_len": 64, "output_len": 1})
    assert one["decode_s"] == 0.0 and math.isclose(one["tokens_per_s"], 4 / one["prefill_s"])
    r = generation_throughput({"arch": "a100", "workload": wl, "batch": 4, "input_len": 64, "output_len": 9})
    steps = [simulate("a100", wl, phase="decode", batch=4, kv_len=k).seconds for k in range(64, 72)]
    assert math.isclose(r["decode_s"], sum(steps), rel_tol=0.02)
    assert math.isclose(r["tokens_per_s"], 4 * 9 / (r["prefill_s"] + r["decode_s"]))


def test_list_schedule_by_hand():
    """In-order dispatch to the first free slot: 10 equal CTAs on 4 slots take 3 rounds; a long
    CTA first keeps one slot while the others share the rest; fewer CTAs than slots: the longest."""
    import numpy as np
    from archsim.uarch.gpu.tiling import list_schedule
    assert list_schedule(np.ones(10), 4) == 3.0
    assert list_schedule(np.array([3.0, 1, 1, 1, 1, 1]), 2) == 4.0        # 3 | 1+1+1, then 4 and 4
    assert list_schedule(np.array([5.0, 2.0]), 100) == 5.0
    assert list_schedule(np.zeros(0), 8) == 0.0
    # causal query blocks 1..16 key blocks of 16 heads on 132 slots: one wave, but uneven
    w = np.tile(np.arange(1, 17, dtype=float), 16)
    assert list_schedule(w, 132) == 27.0


def test_flash_tiles_shrink_the_query_block_when_shared_memory_is_short():
    from archsim.uarch.gpu.tiling import flash_tiles
    kib = 1024.0
    # A100 (164 KiB): head dim 128 -> Q 128 x 128 + 2 x 2 blocks of 64 keys = 96 KiB, one CTA
    assert flash_tiles(128, 2, 164 * kib, 256 * kib, 4, 4) == (128, 64, 1)
    # head dim 256: (128 + 256) x 256 x 2 B = 192 KiB does not fit -> 64-row query blocks
    assert flash_tiles(256, 2, 164 * kib, 256 * kib, 4, 4) == (64, 64, 1)
    # H100 (228 KiB): two 96 KiB CTAs of head dim 128
    assert flash_tiles(128, 2, 228 * kib, 256 * kib, 4, 2) == (128, 64, 2)


def _prefill_attention_program(cfg, w):
    """Lower only the attention ops of the workload's block through the fused prefill kernel."""
    from archsim.uarch.gpu.lower import GpuLowerer
    lw = GpuLowerer(cfg, cfg.memory.bandwidth / cfg.clock)
    blk = [g.name for g in w.groups if g.name not in ("embed", "head")][0]
    L = lw.pb.layer(blk, 1)
    ops = [op for op in w.ops() if op.layer == blk and op.role in ("attn_qk", "softmax", "attn_sv")]
    lw.prefill_attention(ops, L)
    return lw.pb.build()


def test_fused_prefill_attention_by_hand():
    """One causal prompt of 256 tokens, 8 heads of 64 on the A100 preset, activations kept out of
    L2: Q-blocks of 128 rows see 2 and 4 key blocks of 64 (masked blocks skipped), so the 16 CTAs
    (2 per head) run 8 and 16 main-loop iterations of 32 keys (QK^T and SV); 3 CTAs fit an SM,
    so all run at once and the kernel lasts as long as the longest. HBM: Q, K, V in, O out."""
    import numpy as np
    from archsim.api import load
    from archsim.isa import Op, VecKind
    from archsim.uarch import get
    wl = dict(name="t", kind="transformer", d_model=512, n_layers=1, n_heads=8, d_ff=2048, vocab_size=1000,
              norm="layernorm", mlp="gelu", position="learned", phase="prefill", batch=1, seq_len=256,
              precision={"weights": "fp16", "activations": "fp16"})
    cfg, w = load("a100", wl, overrides=["activation_l2_fraction=0"])
    p = _prefill_attention_program(cfg, w)
    from archsim.uarch.gpu.lower import U_HOST, U_SM
    assert int(((p.op == Op.SYNC) & (p.unit == U_HOST)).sum()) == 1     # one kernel launch
    # 256 x 64 x 2 B per head and tensor, 8 heads
    assert int(p.nbytes[p.op == Op.LOAD].sum()) == 3 * 256 * 64 * 2 * 8
    assert int(p.nbytes[p.op == Op.STORE].sum()) == 256 * 64 * 2 * 8
    g = p.op == Op.GEMM
    executed = 2 * 8 * (128 * 128 + 128 * 256) * 64       # QK^T and SV of the visited key blocks
    assert int(p.aux[g, 2].sum()) == executed
    assert int(p.aux[p.op == Op.SYNC, 0].sum()) == 2 * 8 * 256 * 256 * 64 - executed
    assert set(p.m[g]) == {128} and set(p.n[g]) == {64}
    assert int(p.k[g].sum()) == 16 * 32                    # the longest CTA's iterations
    sm_ = p.op == Op.VECTOR
    soft = sm_ & (p.aux[:, 0] == int(VecKind.SOFTMAX))
    assert int(p.m[soft].sum()) == 8 * (128 * 128 + 128 * 256)         # scores of the visited blocks
    resc = sm_ & (p.aux[:, 0] == int(VecKind.MUL))
    assert int(p.m[resc].sum()) == 8 * (128 * 2 + 128 * 4) * 64       # O rescaled once per key block
    # time of the tensor-core part: 3 co-resident CTAs share the SM, 2 iterations per chunk
    dur = get("gpu").cost(cfg, p)[0]
    mma = 128 * 64 * 32 / (1024 * 0.95)
    feed = (128 + 64) * 32 * 2 / 47.4
    per = max(3 * mma, 3 * feed, max(mma, feed) + 20)
    expect = 8 * math.ceil(2 * per) + 3 * 128 * 64 * 4 / 64
    assert abs(int(dur[g].sum()) - expect) <= 1
    assert np.all(dur[g] > 0)
    # the busiest slot runs 16 iterations against a mean of 12: the SMs wait 1/3 of the softmax work
    # (6912 lanes; per score 3 adds + 1 mul + 1 exp at 1/4 rate, a div per row, a rescale mul)
    soft = (8 * (128 * 128 + 128 * 256) * (3 + 1 + 4) + 8 * 256 * 4 + 8 * (128 * 2 + 128 * 4) * 64) / 6912
    wait = (p.op == Op.SYNC) & (p.unit == U_SM) & (p.m > 0)
    gap = int(round(cfg.launch.gap * cfg.clock))
    assert sorted(int(x) for x in p.m[wait]) == sorted([gap, round(soft / 3)])


def test_fused_prefill_attention_end_to_end():
    """The fused kernel conserves MACs (issued + skipped = the model's), is faster than separate
    kernels, moves no scores through HBM, and an encoder (no causal mask) skips nothing."""
    from archsim.api import load
    from archsim.sim.run import simulate_loaded
    wl = dict(name="t", kind="transformer", d_model=1024, n_layers=2, n_heads=8, n_kv_heads=2, d_ff=4096,
              vocab_size=1000, norm="rmsnorm", mlp="swiglu", position="rope", phase="prefill", batch=2,
              seq_len=1024, precision={"weights": "fp16", "activations": "fp16"})
    fused = simulate_loaded(*load("a100", wl))
    sep = simulate_loaded(*load("a100", wl, overrides=["prefill_attention=gemm"]))
    assert fused.bounds_ok() and sep.bounds_ok()
    assert fused.skipped_macs > 0 and sep.skipped_macs == 0
    assert fused.seconds < sep.seconds
    # separate kernels write and re-read the fp16 scores (8 heads x 1024 x 1024 x 2 requests) at least
    scores = 2 * 8 * 1024 * 1024 * 2
    assert sep.offchip_bytes - fused.offchip_bytes >= 2 * scores * 2
    enc = simulate_loaded(*load("a100", dict(wl, arch="encoder", mlp="gelu", norm="layernorm",
                                             position="learned")))
    assert enc.skipped_macs == 0 and enc.bounds_ok()


def test_attention_runs_at_16_bits_unless_asked_for_8():
    """FP8 activations quantise the inputs of the linear layers; attention stays at the hardware's
    16-bit precision (KV cache still fp8) unless precision.attention says fp8."""
    from archsim.api import load
    from archsim.uarch.gpu.lower import mma_precision
    fp8 = ["workload.precision.weights=fp8", "workload.precision.activations=fp8"]
    _, w = load("h100", "llama2-7b", overrides=fp8 + ["workload.phase=decode", "workload.kv_len=512"])
    att = [op for op in w.ops() if op.role in ("attn_qk", "attn_sv")]
    fc = [op for op in w.ops() if op.role == "fc"]
    assert {mma_precision(op) for op in att} == {"bf16"} and {mma_precision(op) for op in fc} == {"fp8"}
    assert {op.b.dtype for op in att} == {"fp8"}                  # the KV cache stays 8-bit
    _, w8 = load("h100", "llama2-7b", overrides=fp8 + ["workload.precision.attention=fp8"])
    assert {mma_precision(op) for op in w8.ops() if op.role in ("attn_qk", "attn_sv")} == {"fp8"}
    _, w16 = load("h100", "llama2-7b")                           # fp16 activations: unchanged
    assert {mma_precision(op) for op in w16.ops() if op.role in ("attn_qk", "attn_sv")} == {"fp16"}


def test_parallel_block_shares_one_norm_and_one_residual():
    """GPT-J-style layer: one norm feeds QKV and the MLP's up GEMM, one add takes attention,
    MLP and the layer input; the GEMMs (and MACs) are those of the sequential layer."""
    from archsim.api import load
    from archsim.sim.run import simulate_loaded
    wl = dict(name="t", kind="transformer", d_model=512, n_layers=2, n_heads=8, d_ff=2048, vocab_size=1000,
              norm="layernorm", mlp="gelu", position="rope", phase="prefill", batch=1, seq_len=256,
              precision={"weights": "fp16", "activations": "fp16"})
    _, par = load("a100", dict(wl, parallel_block=True))
    _, seq = load("a100", wl)
    roles = lambda w: [op.role for op in w.ops() if op.layer == "block"]  # noqa: E731
    assert roles(par).count("norm") == 1 and roles(seq).count("norm") == 2
    assert roles(par).count("residual") == 1 and roles(seq).count("residual") == 2
    ops = {op.name: op for op in par.ops()}
    assert ops["block.qkv"].a is ops["block.up"].a                     # the same norm output
    assert {t.name for t in ops["block.res_add"].inputs} == {"block.o.out", "block.down.out", "embed.out"}
    assert par.macs() == seq.macs()
    rp, rs = simulate_loaded(*load("a100", dict(wl, parallel_block=True))), simulate_loaded(*load("a100", wl))
    assert rp.bounds_ok() and rp.seconds < rs.seconds


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3), st.sampled_from([1, 2, 4]), st.sampled_from([64, 128, 256]), st.integers(1, 900),
       st.booleans(), st.sampled_from(["a100", "h100"]))
def test_fused_prefill_attention_properties(batch, grp, hd, seq, decoder, arch):
    """Any prompt: issued + skipped MACs = the model's; a causal prompt issues at least half of
    them; the tensor-core time of the kernel is never below the peak-rate bound."""
    import numpy as np
    from archsim.api import load
    from archsim.isa import Op
    from archsim.uarch import get
    kvh = 2
    wl = dict(name="t", kind="transformer", d_model=hd * kvh * grp, n_layers=1, n_heads=kvh * grp, n_kv_heads=kvh,
              head_dim=hd, d_ff=256, vocab_size=100, max_seq_len=1024, norm="rmsnorm", mlp="gelu",
              position="rope", arch="decoder" if decoder else "encoder", phase="prefill", batch=batch,
              seq_len=seq, precision={"weights": "fp16", "activations": "fp16"})
    cfg, w = load(arch, wl)
    p = _prefill_attention_program(cfg, w)
    model = sum(op.macs for op in w.ops() if op.role in ("attn_qk", "attn_sv"))
    issued = int(p.aux[p.op == Op.GEMM, 2].sum())
    skipped = int(p.aux[p.op == Op.SYNC, 0].sum())
    assert issued + skipped == model and issued <= model
    if not decoder:
        assert skipped == 0
    else:
        assert issued >= model // 2
    dur = get("gpu").cost(cfg, p)[0]
    g = p.op == Op.GEMM
    peak = cfg.sm.count * cfg.mma_rate("fp16")
    assert dur[g].sum() >= issued / peak * 0.999
    assert np.all(dur >= 0)


def test_unsupported_operand_formats_run_widened_on_the_tensor_cores():
    """FP8 on the A100 (no FP8 tensor cores) runs at the FP16 tensor-core rate with FP8 bytes
    moved, not on the CUDA cores; INT4 on the H100 at the INT8 rate; FP32 stays on the CUDA cores
    (never silently TF32)."""
    a100, h100 = load_arch("a100"), load_arch("h100")
    assert a100.mma_exec("fp8") == "fp16" and a100.mma_rate("fp8") == 1024
    assert a100.mma_exec("mxfp4") == "fp16" and a100.mma_exec("int4") == "int4"
    assert h100.mma_exec("int4") == "int8" and h100.mma_rate("int4") == 4096
    assert h100.mma_exec("fp32") == "fp32" and h100.mma_rate("fp32") == h100.sm.cuda_macs_per_cycle
    fp8 = ["workload.precision.weights=fp8", "workload.precision.activations=fp8"]
    r8 = simulate("a100", "llama2-7b", phase="prefill", batch=1, seq_len=1024, overrides=fp8)
    r16 = simulate("a100", "llama2-7b", phase="prefill", batch=1, seq_len=1024)
    from archsim.api import load
    from archsim.uarch import get
    assert get("gpu").run_config(*load("a100", "llama2-7b", overrides=fp8)).precision == "fp16"
    assert r8.bounds_ok()
    # same tensor-core rate, half the weight bytes: no slower than FP16, nowhere near 16x slower
    assert r8.seconds <= r16.seconds * 1.01 and r8.offchip_bytes < r16.offchip_bytes


def test_tensor_parallel_energy_is_the_whole_systems():
    """One simulated device stands for the tensor-parallel group: the same decode step on 1, 4
    and 8 GPUs reads the same bytes in all (the weights once over the group, not a quarter of
    them), the bandwidth peak grows with the devices, and the ring all-reduces cost
    2 (T-1)/T x payload x 8 x 1.3 pJ/bit; pipeline stages add their activation transfers."""
    runs = {T: simulate("a100", "llama2-7b", phase="decode", batch=8, kv_len=512,
                        overrides=[f"parallel.tensor={T}"]) for T in (1, 4, 8)}
    rd = {T: r.components["offchip"]["counts"]["read_bytes"] for T, r in runs.items()}
    assert abs(rd[4] - rd[1]) <= 0.01 * rd[1] and abs(rd[8] - rd[1]) <= 0.01 * rd[1]
    assert runs[4].peak_bytes_per_cycle == 4 * runs[1].peak_bytes_per_cycle
    for T, r in runs.items():
        link = r.components["link"]
        assert link["energy_pj"]["bytes"] == pytest.approx(link["counts"]["bytes"] * 8 * 1.3 * 2 * (T - 1) / T)
        assert r.bounds_ok()
    assert runs[1].components["link"]["energy_pj"]["bytes"] == 0 < runs[8].components["link"]["energy_pj"]["bytes"]
    pp = simulate("a100", "llama2-7b", phase="prefill", batch=4, seq_len=256, overrides=["parallel.pipeline=2"])
    xfer = pp.extra["pipeline"]["transfer_bytes"]
    assert xfer > 0 and pp.components["link"]["energy_pj"]["stage_transfer"] == pytest.approx(xfer * 8 * 1.3)


def test_falcon_180b_shapes():
    """Falcon-180B: 232 query heads of 64 over 8 KV heads (QKV N = 14848 + 2 x 8 x 64), a parallel
    block with a 59392-wide GELU MLP; its weights come to the published 180 B parameters."""
    from archsim.api import load
    _, w = load("a100", "falcon-180b")
    ops = {op.name: op for op in w.ops()}
    assert (ops["block.qkv"].N, ops["block.qkv"].K) == (14848 + 2 * 8 * 64, 14848)
    assert (ops["block.up"].N, ops["block.down"].K) == (59392, 59392)
    assert [op.role for op in w.ops() if op.layer == "block"].count("residual") == 1
    per_layer = sum(op.b.nbytes for op in w.ops() if op.layer == "block" and op.role == "fc") / 2
    params = 80 * per_layer + 65024 * 14848 * 2          # layers + embedding and LM head
    assert 178e9 < params < 181e9


def test_elementwise_kernel_overlaps_loads_with_arithmetic():
    """A flat GELU over 2^27 fp16 elements (one row): its loads stream while earlier chunks
    compute, as the warps of a GPU kernel do, so it takes about the longer of the two (plus a
    chunk), not their sum; chunks split the elements, not the rows."""
    from archsim.isa import VecKind
    from archsim.sim.run import simulate_loaded
    from archsim.workload.graph import GraphBuilder, LayerGroup, Tensor, VectorOp, Workload
    cfg = load_arch("a100")
    E = 2 ** 27
    gb = GraphBuilder()
    x, y = Tensor("x", (1, E), "fp16", "state"), Tensor("y", (1, E), "fp16", "state")
    gb.add(VectorOp("gelu", "op", VecKind.GELU, 1, E, (x,), (y,), role="activation"))
    wl = Workload("v", gb.g, [LayerGroup("op", 1)], "prefill", 1, 1, 0, 0, spec={"kind": "gemm"})
    r = simulate_loaded(cfg, wl)
    # GELU: 6 mul + 2 add at 1 per lane-cycle, exp and div at 1/4 -> 16 lane-cycles per element
    compute = 16 * E / cfg.vector.lanes
    memory = 2 * E * 2 / r.peak_bytes_per_cycle
    assert max(compute, memory) <= r.cycles < max(compute, memory) + 0.5 * min(compute, memory)


def test_timed_call_tail_overlaps_the_kernel():
    """A host-timed call: launch.fixed before the launch, launch.fixed_after after it, overlapping
    the GPU: the call takes fixed + host + max(fixed_after, the kernel). A100 preset: fixed 20 us,
    host 5 us; a GELU of 2^24 fp16 elements runs ~40 us on the GPU."""
    w = {"kind": "vector", "op": "gelu", "rows": 1, "cols": 1 << 24, "precision": {"activations": "fp16"}}
    base = simulate("a100", w)
    gpu = base.seconds - 25e-6
    assert 30e-6 < gpu < 50e-6
    # a short tail hides behind the kernel, a long one hides the kernel
    assert simulate("a100", w, overrides=["launch.fixed_after=10us"]).cycles == base.cycles
    long = simulate("a100", w, overrides=["launch.fixed_after=1ms"])
    assert long.seconds == pytest.approx(25e-6 + 1e-3, abs=2e-9)
    # op by op: every call pays its own tail
    two = {"kind": "vector", "op": "add", "rows": 1, "cols": 1024, "precision": {"activations": "fp16"}}
    one = simulate("a100", two, overrides=["launch.sync=per_op", "launch.fixed_after=100us"])
    assert one.seconds == pytest.approx(25e-6 + 100e-6, abs=2e-9)


def test_vector_workload_moves_its_bytes_once():
    """kind: vector -- one element-wise / row operator: inputs read and output written once."""
    for op, n_in in (("softmax", 1), ("layernorm", 1), ("add", 2), ("gelu", 1)):
        r = simulate("a100", {"kind": "vector", "op": op, "rows": 2048, "cols": 4096,
                              "precision": {"activations": "fp16"}})
        rd = sum(x.offchip_read_bytes for x in r.layers)
        wr = sum(x.offchip_write_bytes for x in r.layers)
        assert (rd, wr) == (n_in * 2048 * 4096 * 2, 2048 * 4096 * 2), op
        assert r.bounds_ok() and r.macs == 0


LOOPED = ["row_kernel.onchip_elements=1024", "row_kernel.loops.layernorm=3"]


@pytest.mark.parametrize("rows,cols,reads", [
    (4096, 1024, 1),      # held on chip (persistent): read once
    (4096, 8192, 1),      # looped: 864 rows in flight x 16 KiB = 13.5 MiB <= 20 MiB of L2: re-reads hit
    (4096, 16384, 3),     # 864 x 32 KiB = 27 MiB > 20 MiB: each of the three loops reads from HBM
    (4096, 32768, 3),
    (10, 1 << 20, 1),     # 10 rows in flight x 2 MiB = 20 MiB: still fits
    (11, 1 << 20, 3),     # 11 x 2 MiB = 22 MiB: does not
])
def test_looped_row_kernel_rereads_miss_l2_by_hand(rows, cols, reads):
    """A row kernel whose row is longer than it keeps on chip reads the row once per loop; the
    re-reads come from HBM once the rows in flight (108 SMs x 2048 / 256 threads = 864 CTAs,
    or fewer rows) overflow the 20 MiB activation share of the A100's 40 MiB L2."""
    w = {"kind": "vector", "op": "layernorm", "rows": rows, "cols": cols, "precision": {"activations": "fp16"}}
    r = simulate("a100", w, overrides=LOOPED)
    rd = sum(x.offchip_read_bytes for x in r.layers)
    wr = sum(x.offchip_write_bytes for x in r.layers)
    assert (rd, wr) == (reads * rows * cols * 2, rows * cols * 2)
    # the default row kernel (fused engine kernels) holds any row: one read
    base = simulate("a100", w)
    assert sum(x.offchip_read_bytes for x in base.layers) == rows * cols * 2
    # memory-bound: each extra read costs its bytes at the sustained 1870 GB/s
    extra = (reads - 1) * rows * cols * 2
    assert r.seconds - base.seconds == pytest.approx(extra / 1870e9, rel=0.03, abs=1e-9)


def test_looped_row_kernel_loops_by_op_and_occupancy():
    """Welford LayerNorm and RMSNorm loop twice, softmax three times (defaults); fewer threads
    per CTA means more rows in flight, so a smaller row already overflows L2."""
    w = {"kind": "vector", "op": "rmsnorm", "rows": 4096, "cols": 32768, "precision": {"activations": "fp16"}}
    rd = lambda r: sum(x.offchip_read_bytes for x in r.layers)   # noqa: E731
    n = 4096 * 32768 * 2
    assert rd(simulate("a100", w, overrides=["row_kernel.onchip_elements=1024"])) == 2 * n
    assert rd(simulate("a100", {**w, "op": "layernorm"}, overrides=["row_kernel.onchip_elements=1024"])) == 2 * n
    assert rd(simulate("a100", {**w, "op": "softmax"}, overrides=["row_kernel.onchip_elements=1024"])) == 3 * n
    w8k = {**w, "cols": 8192}
    m = 4096 * 8192 * 2
    assert rd(simulate("a100", w8k, overrides=["row_kernel.onchip_elements=1024"])) == m
    # 128 threads: 16 CTAs per SM, 1728 rows x 16 KiB = 27 MiB > 20 MiB
    assert rd(simulate("a100", w8k, overrides=["row_kernel.onchip_elements=1024",
                                              "row_kernel.cta_threads=128"])) == 2 * m


@settings(max_examples=40, deadline=None)
@given(rows=st.integers(1, 4096), cols=st.integers(1, 1 << 16), l2_mib=st.integers(1, 128),
       threads=st.sampled_from([64, 128, 256, 512, 1024]))
def test_row_kernel_reads_monotone(rows, cols, l2_mib, threads):
    """Row-kernel HBM reads (lowering only): 1 or the op's loops; never fewer with more rows,
    longer rows or fewer threads per CTA (more rows in flight), never more with a larger L2."""
    from archsim.uarch.gpu.lower import GpuLowerer
    from archsim.workload.graph import VectorOp
    from archsim.isa import VecKind

    def reads(r, c, mib, th):
        cfg = load_arch("a100", overrides=["row_kernel.onchip_elements=1024", f"l2.size={mib} MiB",
                                           f"row_kernel.cta_threads={th}"])
        low = GpuLowerer(cfg, 1.0)
        op = VectorOp("x.norm", 0, VecKind.LAYERNORM, r, c, (), ())
        return low.row_reads(op, r, c, 2.0 * c)

    n = reads(rows, cols, l2_mib, threads)
    assert n in (1, 2)
    assert n <= reads(min(4096, rows + 1), cols, l2_mib, threads)
    assert n <= reads(rows, min(1 << 16, 2 * cols), l2_mib, threads)
    assert n >= reads(rows, cols, 2 * l2_mib, threads)
    assert n <= reads(rows, cols, l2_mib, max(32, threads // 2))


@pytest.mark.parametrize("wl,T,heads", [("llama2-7b", 3, "32 query heads"), ("gpt2", 5, "12 query heads")])
def test_tensor_parallel_must_split_whole_heads(wl, T, heads):
    from archsim.errors import LoweringError
    with pytest.raises(LoweringError) as e:
        simulate("a100", wl, phase="decode", batch=1, kv_len=64,
                 overrides=[f"parallel.tensor={T}", "workload.n_layers=1"])
    assert e.value.path == "parallel.tensor" and heads in str(e.value)


def test_tensor_parallel_kv_heads_split_or_replicate():
    """The degree divides the KV heads (each device its own) or is a multiple of them (each KV
    head replicated on T / KV-heads devices, as for MQA); anything else is refused."""
    from archsim.errors import LoweringError
    from archsim.workload.spec import check_tensor_parallel_heads
    gqa = {"kind": "transformer", "name": "m", "n_heads": 64, "n_kv_heads": 8}   # llama2-70b
    for T in (2, 8, 16, 32):
        check_tensor_parallel_heads(gqa, T, "parallel.tensor")
    with pytest.raises(LoweringError, match="8 KV heads") as e:
        check_tensor_parallel_heads({"kind": "transformer", "name": "m", "n_heads": 48, "n_kv_heads": 8}, 12,
                                    "parallel.tensor")
    assert e.value.path == "parallel.tensor"
    spec = {"kind": "speculative", "draft_spec": {"kind": "transformer", "name": "d", "n_heads": 12},
            "target_spec": {"kind": "transformer", "name": "t", "n_heads": 32}}
    with pytest.raises(LoweringError, match="d has 12"):
        check_tensor_parallel_heads(spec, 8, "parallel.tensor")
    check_tensor_parallel_heads({"kind": "mamba", "name": "m"}, 3, "parallel.tensor")


def test_mqa_kv_head_is_replicated_on_every_device():
    """MQA (one KV head) on 4 devices with KV read once per group (dgx_a100, shared): every
    device reads all requests' K and V, so the system reads 4 x the KV cache; MACs conserved."""
    kw = dict(phase="decode", batch=8, kv_len=4096)
    ov = ["workload.n_kv_heads=1", "decode_attention_kv=shared"]
    one = simulate("a100", "llama2-7b", overrides=ov + ["parallel.tensor=1"], **kw)
    four = simulate("a100", "llama2-7b", overrides=ov + ["parallel.tensor=4"], **kw)
    kv = 32 * 8 * 4097 * 128 * 2 * 2                 # layers x requests x tokens x head dim x K,V x fp16
    assert four.macs == one.macs == one.expected_macs and four.bounds_ok()
    assert four.offchip_bytes - one.offchip_bytes == pytest.approx(3 * kv, rel=0.02)


def test_capacity_is_a_size_with_units():
    from archsim.errors import ConfigError
    with pytest.raises(ConfigError) as e:
        load_arch("a100", ["memory.capacity=-1"])
    assert e.value.path == "memory.capacity"
    assert load_arch("a100", ["memory.capacity=80 GiB"]).memory.capacity == 80 * 2**30


def test_moe_experts_split_over_tensor_parallel_devices():
    """Tensor parallelism splits every expert like a dense MLP: up / gate by columns, down by
    rows, one all-reduce of the combined tokens after the experts (not one per expert). Mixtral
    8x7B decode, batch 4, 8 devices: an expert's up projection (4096 x 2 x 14336 FP16, 235 MB)
    streams an eighth of its weights per device; the MACs equal the single-device run's."""
    from archsim.api import load
    from archsim.isa import Op
    from archsim.sim.run import simulate_loaded
    from archsim.uarch.gpu.lower import U_LINK
    cfg, w = load("h100", "mixtral-8x7b", phase="decode", batch=4, kv_len=512,
                  overrides=["parallel.tensor=8", "moe_gemm=per_expert"])
    r = simulate_loaded(cfg, w)
    ops = {o["name"]: o for o in r.extra["ops"]}
    up = [op for op in w.ops() if op.name == "block.e0.up"][0]
    assert up.b.nbytes == 4096 * 2 * 14336 * 2
    assert ops["block.e0.up"]["offchip_bytes"] == pytest.approx(up.b.nbytes / 8, rel=0.02)
    # one grouped kernel for the up projections of the 8 active experts (a token each at batch 4,
    # top-2): every expert's eighth of its weights
    cfg_g, _ = load("h100", "mixtral-8x7b", phase="decode", batch=4, kv_len=512, overrides=["parallel.tensor=8"])
    ops_g = {o["name"]: o for o in simulate_loaded(cfg_g, w).extra["ops"]}
    assert ops_g["block.experts.up"]["offchip_bytes"] == pytest.approx(8 * up.b.nbytes / 8, rel=0.02)
    p = r.program
    L = p.layer_names.index("block")
    # all-reduces per block: attention output, the experts' combine (d_model x 4 tokens x 2 B each)
    xfers = p.nbytes[(p.op == Op.XFER) & (p.unit == U_LINK) & (p.layer == L)]
    assert list(xfers) == [4 * 4096 * 2] * 2
    one = simulate_loaded(*load("h100", "mixtral-8x7b", phase="decode", batch=4, kv_len=512,
                                overrides=["memory.capacity=1e12"]))
    assert r.macs == one.macs and r.seconds < one.seconds



def test_grouped_wave_traffic_by_hand():
    """A grouped GEMM of two experts with 200 and 40 tokens, N = 256, K = 512, 128 x 128 tiles,
    FP16: expert 0 has 2 M tiles and expert 1 one, 2 N tiles each -> 6 CTAs. In one wave every
    A row and every weight panel is read once: (200 + 40) x 512 x 2 B of tokens, 2 x 512 x 256
    x 2 B of weights; MACs (200 + 40) x 256 x 512. In waves of 4 CTAs, expert 0's tiles fill the
    first wave (its tokens and weight once) and expert 1's the second."""
    big = wave_traffic([200, 40], 256, 512, 2, False, 128, 128, 1, 108, 8, 2.0, 2.0, 40e6, False, False)
    ctas, a, b, macs, out = big
    assert list(ctas) == [6]
    assert a[0] == (200 + 40) * 512 * 2 and b[0] == 2 * 512 * 256 * 2
    assert macs[0] == (200 + 40) * 256 * 512 and out[0] == (200 + 40) * 256
    ctas, a, b, macs, _ = wave_traffic([200, 40], 256, 512, 2, False, 128, 128, 1, 4, 8, 2.0, 2.0, 40e6,
                                       False, False)
    assert list(ctas) == [4, 2]
    assert list(a) == [200 * 512 * 2, 40 * 512 * 2] and list(b) == [512 * 256 * 2] * 2
    assert list(macs) == [200 * 256 * 512, 40 * 256 * 512]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3000), st.integers(1, 6), st.sampled_from([64, 128, 256]), st.sampled_from([64, 128]),
       st.integers(1, 4), st.sampled_from([40, 108, 216]), st.sampled_from([1e6, 40e6]))
def test_grouped_wave_traffic_of_equal_experts_is_the_batched_gemm(M, G, tm, tn, s, slots, l2):
    """Experts with equal token counts are a batched GEMM of G problems: the same waves and traffic."""
    N, K = 1024, 2048
    uni = wave_traffic(M, N, K, G, False, tm, tn, s, slots, 8, 2.0, 2.0, l2, False, False)
    grp = wave_traffic([M] * G, N, K, G, False, tm, tn, s, slots, 8, 2.0, 2.0, l2, False, False)
    for u, g in zip(uni, grp):
        assert np.array_equal(u, g)


def test_moe_layer_runs_as_grouped_kernels():
    """moe_gemm: grouped (the default) runs a mixture-of-experts layer's experts as one grouped GEMM
    per projection and one kernel per activation op: DeepSeek-MoE (64 routed experts, top-6, 2048
    tokens -> 192 per expert balanced) has 64 x (up, SiLU, gate multiply, down) = 256 expert kernels
    per layer with per_expert (and a split-K reduction for some), 4 grouped. The same MACs and
    weight bytes; a prompt of 512 tokens, launch-bound with per-expert kernels, runs faster."""
    from archsim.api import load
    from archsim.isa import Op
    from archsim.sim.run import simulate_loaded
    from archsim.uarch.gpu.lower import U_HOST
    kw = dict(phase="prefill", batch=1, seq_len=2048)
    res = {}
    for mode in ("grouped", "per_expert"):
        cfg, w = load("a100", "deepseek-moe-16b", overrides=[f"moe_gemm={mode}"], **kw)
        r = simulate_loaded(cfg, w)
        p = r.program
        L = p.layer_names.index("moe_block")
        res[mode] = (r, int(((p.op == Op.SYNC) & (p.unit == U_HOST) & (p.layer == L)).sum()),
                     {o["name"]: o for o in r.extra["ops"]}, w)
    g, pe = res["grouped"], res["per_expert"]
    assert g[0].macs == pe[0].macs
    assert pe[1] - g[1] >= 256 - 4
    w = g[3]
    ups = [op for op in w.ops() if op.layer == "moe_block" and op.role == "expert" and op.name.endswith(".up")]
    assert len(ups) == 64 and all(op.M == 192 for op in ups)
    up = g[2]["moe_block.experts.up"]
    assert up["macs"] == sum(op.macs for op in ups)
    # every expert's weight once and its outputs (2816 columns of up and gate, too large for L2),
    # the dispatched tokens (2048 x 6 rows of 2048 FP16) at least once, at most twice
    wbytes = sum(op.b.nbytes + op.c.nbytes for op in ups)
    tokens = 2048 * 6 * 2048 * 2
    assert wbytes + tokens <= up["offchip_bytes"] <= wbytes + 2 * tokens
    for mode in ("grouped", "per_expert"):
        assert res[mode][0].bounds_ok()
    short = [simulate_loaded(*load("a100", "deepseek-moe-16b", overrides=[f"moe_gemm={m}"], phase="prefill",
                                   batch=1, seq_len=512)).seconds for m in ("grouped", "per_expert")]
    assert short[0] < 0.6 * short[1]

# -- structured-sparse tensor cores (sm.sparse_mma) ---------------------------------------------

PRUNE_2TO4 = ["workload.sparsity.weights.pattern=nm", "workload.sparsity.weights.n=2",
              "workload.sparsity.weights.m=4"]


def test_sparse_chunk_by_hand():
    # the 128x256 FP16 CTA of test_chunk_and_ring_by_hand on 2:4 weights: MMA at 2048 MAC/cycle,
    # 128*256*32 / 2048 = 512 cycles per iteration; feed (128 + 256 * 0.5625) * 32 * 2 / 47.4 = 367
    # (the weight panel is half the values plus a 2-bit index each: 1.125 of 2 bytes); + 20 -> 532
    assert gemm_chunk_cycles(128, 256, 128, 32, 2048.0, 1.0, 16, 47.4, 20.0, 1, False, 64.0, 4, 144) == 4 * 532
    # with 4 co-resident CTAs the feed binds: 4 * 367.26 > 4 * 512? no: MMA 4 * 512 = 2048 per iteration
    assert gemm_chunk_cycles(128, 256, 128, 32, 2048.0, 1.0, 16, 47.4, 20.0, 4, False, 64.0, 4, 144) == 4 * 2048
    # the feed binds when the panel is slow to arrive: at 16 B/cycle, 17408 / 16 = 1088 > 512 + 20
    assert gemm_chunk_cycles(128, 256, 128, 32, 2048.0, 1.0, 16, 16.0, 20.0, 1, False, 64.0, 4, 144) == 4 * 1108


def test_sparse_gemv_bytes_and_macs_by_hand():
    # y = x W, 1 x 4096 x 4096 FP16, W 2:4: W is read as 4096 * 4096 * (2 B / 2 + 2 bit / 2 / 8)
    # = 0.5625 * 32 MiB; x and y are 8 KiB each; the cores issue half of the 16 Mi MACs
    wl = {"kind": "gemm", "M": 1, "N": 4096, "K": 4096, "precision": {"weights": "fp16", "activations": "fp16"}}
    d = simulate("a100", wl)
    s = simulate("a100", wl, overrides=PRUNE_2TO4)
    assert d.offchip_bytes == 4096 * 4096 * 2 + 2 * 8192
    assert s.offchip_bytes == 4096 * 4096 * 2 * 9 // 16 + 2 * 8192
    assert s.macs == s.skipped_macs == 4096 * 4096 // 2 and s.expected_macs == 4096 * 4096
    assert s.bounds_ok() and s.seconds < d.seconds
    # the tensor-core operand traffic counts the compressed panel
    assert s.components["smem"]["counts"]["read_bytes"] < d.components["smem"]["counts"]["read_bytes"]


def test_sparse_gemm_approaches_twice_the_math_rate():
    wl = {"kind": "gemm", "M": 8192, "N": 8192, "K": 8192, "precision": {"weights": "fp16", "activations": "fp16"}}
    d = simulate("a100", wl)
    s = simulate("a100", wl, overrides=PRUNE_2TO4)
    assert 1.9 < d.seconds / s.seconds <= 2.0
    assert s.bounds_ok() and s.macs == d.macs // 2


@pytest.mark.parametrize("prune,sparse", [
    (PRUNE_2TO4, True),
    (["workload.sparsity.weights.pattern=nm", "workload.sparsity.weights.n=1", "workload.sparsity.weights.m=2"], True),
    (["workload.sparsity.weights.pattern=nm", "workload.sparsity.weights.n=2", "workload.sparsity.weights.m=8"], True),
    (["workload.sparsity.weights.pattern=nm", "workload.sparsity.weights.n=1", "workload.sparsity.weights.m=4"], True),
    (["workload.sparsity.weights.pattern=nm", "workload.sparsity.weights.n=4", "workload.sparsity.weights.m=8"], False),
    (["workload.sparsity.weights.pattern=nm", "workload.sparsity.weights.n=3", "workload.sparsity.weights.m=4"], False),
    (["workload.sparsity.weights.density=0.5"], False),            # unstructured: no 2:4 guarantee
    (PRUNE_2TO4 + ["sm.sparse_mma=null"], False),                   # dense tensor cores only
])
def test_which_weights_run_sparse(prune, sparse):
    from archsim.api import load
    from archsim.uarch.gpu.lower import sparse_mma_of
    wl = {"kind": "gemm", "M": 256, "N": 1024, "K": 1024}
    cfg, w = load("a100", wl, overrides=prune)
    assert (sparse_mma_of(cfg, w.ops()[0]) is not None) == sparse
    d = simulate("a100", wl)
    s = simulate("a100", wl, overrides=prune)
    assert (s.cycles < d.cycles) == sparse and (s.skipped_macs > 0) == sparse
    if not sparse:
        assert s.cycles == d.cycles and s.energy_pj == d.energy_pj


def test_sparse_mask_file_is_checked_group_by_group(tmp_path):
    import numpy as np
    from archsim.api import load
    from archsim.uarch.gpu.lower import sparse_mma_of
    K, N = 64, 32
    ok = np.zeros((K, N), bool)
    ok[0::4] = ok[3::4] = True                       # two of every four along K
    bad = ok.copy()
    bad[1, 5] = True                                 # one group of three
    wl = {"kind": "gemm", "M": 16, "N": N, "K": K}
    for mask, sparse in ((ok, True), (bad, False)):
        f = tmp_path / f"m{int(sparse)}.npy"
        np.save(f, mask)
        cfg, w = load("a100", wl, overrides=[f"workload.sparsity.weights.mask_file={f}"])
        assert (sparse_mma_of(cfg, w.ops()[0]) is not None) == sparse


def test_pruned_weights_are_stored_compressed():
    # Llama-2-13B FP16: 40 blocks of 317,194,240 linear-layer weights (25,375,539,200 B), embedding
    # table and LM head 2 x 32000 x 5120 (655,360,000 B), norms 81 x 5120 (829,440 B), K and V of 17
    # positions (13,926,400 B): 26.05 GB dense. 2:4 stores the linear layers at 0.5625 of their
    # bytes: 14.94 GB. The model fits 20 GB pruned and does not dense.
    with pytest.raises(ArchsimError) as e:
        simulate("a100", "llama2-13b", phase="decode", batch=1, kv_len=16, overrides=["memory.capacity=20 GB"])
    assert e.value.path == "memory.capacity" and "26.0 GB" in str(e.value)
    r = simulate("a100", "llama2-13b", phase="decode", batch=1, kv_len=16,
                 overrides=["memory.capacity=20 GB"] + PRUNE_2TO4)
    assert r.bounds_ok()
    with pytest.raises(ArchsimError, match="14.9 GB"):
        simulate("a100", "llama2-13b", phase="decode", batch=1, kv_len=16,
                 overrides=["memory.capacity=14 GB"] + PRUNE_2TO4)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 3000), st.integers(64, 6000), st.integers(64, 6000), st.sampled_from(["fp16", "fp8", "int8"]))
def test_pruning_never_slows_a_gemm(M, N, K, prec):
    # the library picks each GEMM's tile from an estimate, as cuBLAS / cuSPARSELt heuristics do, so
    # a small pruned GEMM may land on a tile a few per cent slower than the dense one's (577 x 3329
    # x 129: 128x256 in one partial wave against 64x64 in three, +2%); never more than that
    wl = {"kind": "gemm", "M": M, "N": N, "K": K, "precision": {"weights": prec, "activations": prec}}
    d = simulate("h100", wl)
    s = simulate("h100", wl, overrides=PRUNE_2TO4)
    assert s.cycles <= 1.05 * d.cycles and s.offchip_bytes <= d.offchip_bytes and s.bounds_ok()


def test_fp8_runs_at_its_own_sustained_share_of_the_peak():
    """h100: BF16 at mma_efficiency 0.83, FP8 at sm.mma_efficiency_by_precision 0.726 (measured
    maximum achievable matmul: 80.3% of the BF16 peak, 70.9% of the FP8 one). A 16384^3 GEMM is
    compute-bound either way, so its MAC utilisation scales with the efficiency: FP8 at about
    0.726 / 0.83 of the BF16 share (a little more: its k tiles are twice as deep and pay the
    per-iteration overhead half as often per MAC), about 1.78x the BF16 speed, not 2x.
    Without the per-precision entry FP8 runs at the BF16 share of its own peak."""
    gemm = {"kind": "gemm", "M": 16384, "N": 16384, "K": 16384}
    res = {p: simulate("h100", {**gemm, "precision": {"weights": p, "activations": p}}).to_dict()
           for p in ("bf16", "fp8")}
    assert res["fp8"]["utilization"] == pytest.approx(0.709, abs=0.005)
    assert 0.726 / 0.83 <= res["fp8"]["utilization"] / res["bf16"]["utilization"] < 1.03 * 0.726 / 0.83
    assert 1.7 < res["bf16"]["seconds"] / res["fp8"]["seconds"] < 1.85
    flat = simulate("h100", {**gemm, "precision": {"weights": "fp8", "activations": "fp8"}},
                    overrides=["sm.mma_efficiency_by_precision={}"]).to_dict()
    assert flat["utilization"] == pytest.approx(res["bf16"]["utilization"], rel=0.02)
    # an efficiency outside (0, 1] is refused, naming the field
    with pytest.raises(ArchsimError, match="mma_efficiency_by_precision"):
        simulate("h100", gemm, overrides=["sm.mma_efficiency_by_precision={fp8: 1.5}"])


def test_ideal_interconnect_drops_the_all_reduces():
    """``interconnect.algorithm: ideal`` makes collectives free: no link kernel, bytes or energy,
    the same MACs. Llama-2-7B decode on 4 A100s: ideal < a ring of unbounded bandwidth and zero
    hop latency (which still launches its 64 all-reduce kernels) < the NVLink ring."""
    kw = dict(phase="decode", batch=4, kv_len=256)
    tp = ["parallel.tensor=4"]
    ring = simulate("a100", "llama2-7b", overrides=tp, **kw)
    fast = simulate("a100", "llama2-7b", overrides=tp + ["interconnect.bandwidth=1e9 GB/s",
                                                        "interconnect.latency=0 s"], **kw)
    ideal = simulate("a100", "llama2-7b", overrides=tp + ["interconnect.algorithm=ideal"], **kw)
    assert ideal.macs == ring.macs == ring.expected_macs and ideal.bounds_ok()
    assert ideal.units["link"] == 0 and ideal.components["link"]["counts"]["bytes"] == 0
    assert fast.components["link"]["counts"]["bytes"] == ring.components["link"]["counts"]["bytes"] > 0
    assert ideal.seconds < fast.seconds < ring.seconds
    # each of the 64 all-reduce kernels costs the fast ring at least its device-side launch gap
    assert fast.seconds - ideal.seconds >= 64 * ring.cfg.launch.gap * 0.999
    assert ideal.energy_pj < ring.energy_pj
    # the run says so, naming the field; priced collectives get no such note
    assert [n for n in ideal.to_dict()["notes"] if "interconnect.algorithm: ideal" in n]
    assert not [n for n in ring.to_dict().get("notes", []) if "interconnect.algorithm" in n]
