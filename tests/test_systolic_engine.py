"""Hand-derived cycles, bounds and MAC conservation of the systolic path."""
import numpy as np
from hypothesis import given, settings, strategies as st
import pytest

from archsim.api import simulate
from archsim.errors import LoweringError


def gemm(M, N, K, **kw):
    return {"kind": "gemm", "M": M, "N": N, "K": K, **kw}


def test_single_tile_gemm_hand_derived(small_arch):
    # 32x32 os array, GEMM 64x64x64 int8, A and C on chip, B (4096 B) at 10 B/cycle, latency 0.
    # The tiler cuts 32x32 output tiles (N outer, M inner) so the second weight load overlaps
    # compute: B tile = 64*32 = 2048 B -> ceil(2048/10) = 205 cycles, reused by both M tiles;
    # each tile is one fold of K + R + C - 2 = 126 cycles.
    # Timeline: loadB0 [0,205), loadB1 [205,410), tiles (m0,n0) [205,331), (m1,n0) [331,457),
    # (m0,n1) [457,583), (m1,n1) [583,709).
    res = simulate(small_arch, gemm(64, 64, 64, a_offchip=False, c_offchip=False, name="g"))
    assert res.program.meta["tilings"]["g"] == {"tm": 32, "tn": 32, "tk": 64, "order": "nm", "panel": False,
                                                "traffic": 4096}
    assert res.cycles == 205 + 2 * 252
    assert res.macs == 64 ** 3
    assert res.offchip_bytes == 4096


def test_ws_fold_cycles_and_store(small_arch):
    # ws: Sr = K = 32, Sc = N = 32, T = M = 16: one fold of T + 2R + C - 2 = 110 cycles.
    # B load 1024 B -> 103 cycles; C store 16*32 = 512 B -> 52 cycles after the compute.
    small_arch["array"]["dataflow"] = "ws"
    res = simulate(small_arch, gemm(16, 32, 32, a_offchip=False, c_offchip=True))
    assert res.cycles == 103 + 110 + 52


def test_double_buffering_overlaps_loads_with_compute(small_arch):
    # Many weight tiles: with double buffering the total approaches max(compute, memory),
    # not their sum.
    small_arch["sram"] = {"ifmap": "64 KiB", "filter": "4 KiB", "ofmap": "64 KiB"}
    res = simulate(small_arch, gemm(256, 256, 256, a_offchip=False, c_offchip=False))
    prog = res.program
    loads = prog.nbytes[prog.op == 0].sum()
    mem_cycles = int(np.ceil(loads / 10))
    compute_cycles = res.units["array0"]
    assert res.cycles < mem_cycles + compute_cycles
    assert res.cycles >= max(mem_cycles, compute_cycles)


def test_tiles_hide_the_memory_latency_by_hand(small_arch):
    """32x32 os array, B = 32 x 1024 int8 off chip at 10 B/cycle with 500 cycles of latency.
    Two slots per operand: a load is issued when the tile two back has computed, so two loads
    take at least 500 + transfer + compute. K tiles of 256: four 8192-B loads of 820 cycles,
    tiles of 256 + 62 cycles. L0 [0,820)+500 -> 1320; L1 [820,1640) -> 2140; G0 [1320,1638);
    L2 at 1638, bus from 1640 -> 2960; G1 [2140,2458); L3 [2460,3280) -> 3780; G2 [2960,3278);
    G3 [3780,4098). K tiles of 32 (what a tiler blind to latency takes: the same bytes, and the
    smallest fill) would wait (500 + 103 + 94) / 2 per tile: 11,255 cycles."""
    small_arch["memory"]["latency"] = "500 ns"
    res = simulate(small_arch, gemm(32, 32, 1024, a_offchip=False, c_offchip=False, name="g"))
    assert res.program.meta["tilings"]["g"]["tk"] == 256
    assert res.cycles == 4098


def _weight_bound_gemm_seconds(arch, memory):
    """A GEMM bound by its weights' bytes (6144 x 2048 FP16, 64x64 array) at 1, 2 and 4 GHz."""
    arch["array"].update(rows=64, cols=64)
    arch["sram"].update(filter="512 KiB", ifmap="8 MiB", ofmap="2 MiB")
    arch["memory"] = memory
    fp16 = {"weights": "fp16", "activations": "fp16"}
    times = []
    for clock in ("1 GHz", "2 GHz", "4 GHz"):
        arch["clock"] = clock
        times.append(simulate(arch, gemm(32, 6144, 2048, a_offchip=False, c_offchip=False,
                                         precision=fp16)).seconds)
    return times


def test_memory_bound_gemm_takes_the_same_time_at_any_clock(small_arch):
    """Through a 50 GB/s, 100 ns memory the weights' bytes take 0.503 ms at any clock; a faster
    clock must not make the tiles so small that each load's latency shows (the K tile fell from
    128 to 32 at 2 GHz: 0.80 ms against 0.52 ms at 1 GHz)."""
    times = _weight_bound_gemm_seconds(small_arch, {"model": "bandwidth", "bandwidth": "50 GB/s",
                                                    "latency": "100 ns"})
    bytes_time = 6144 * 2048 * 2 / 50e9
    assert min(times) >= bytes_time
    assert max(times) < 1.02 * bytes_time


def test_memory_bound_gemm_on_dram_barely_depends_on_the_clock(small_arch):
    """The same GEMM on two HBM2 channels (64 GB/s peak). The default mapping (RoBaRaCoCh) keeps
    a stream in one bank's row, so column reads are tCCD_L = 2 bursts apart: about half the peak
    at any clock, and the tiles change with the clock only a little (it was 10% at 2 GHz)."""
    times = _weight_bound_gemm_seconds(small_arch, {"model": "dram", "dram": {"preset": "HBM2-2000",
                                                                              "channels": 2}})
    bytes_time = 6144 * 2048 * 2 / 64e9
    assert 1.9 * bytes_time < min(times) < 2.2 * bytes_time
    assert max(times) < 1.06 * min(times)


@settings(max_examples=40, deadline=None)
@given(df=st.sampled_from(["os", "ws", "is"]), preload=st.booleans(), lat=st.sampled_from([0, 50, 300]),
       M=st.sampled_from([16, 50, 64, 200]), N=st.sampled_from([32, 100, 256]),
       K=st.sampled_from([64, 130, 512]), a_off=st.booleans(), c_off=st.booleans(),
       arrays=st.sampled_from([1, 1, 2, 3, 8]), count=st.sampled_from([1, 1, 3]),
       sram=st.sampled_from([("8 KiB", "4 KiB", "64 KiB"), ("64 KiB", "64 KiB", "8 KiB"),
                             ("8 KiB", "64 KiB", "8 KiB")]))
def test_tile_pipeline_replay_is_the_simulated_gemm(df, preload, lat, M, N, K, a_off, c_off, arrays, count, sram):
    """The tiler's replay of a tiling's pipeline (loads in two slots per operand, output tiles
    in two slots of their own, one memory pipe fed by every array's read and write queues in
    time order, the latency after each transfer, each array in order) takes exactly the cycles
    the lowered program takes, whatever the dataflow, edge tiles, panels, number of arrays and
    of GEMMs, and whether the output goes to memory."""
    import copy

    from conftest import SMALL_ARCH          # the small_arch fixture's design (hypothesis draws here)
    from archsim.uarch.systolic.pipeline import pipeline_cycles
    arch = copy.deepcopy(SMALL_ARCH)
    arch["array"].update(dataflow=df, preload_overlap=preload and df != "os", count=arrays)
    arch["memory"]["latency"] = f"{lat} ns"
    arch["sram"] = {"ifmap": sram[0], "filter": sram[1], "ofmap": sram[2]}
    res = simulate(arch, gemm(M, N, K, a_offchip=a_off, c_offchip=c_off, name="g", count=count))
    t = res.program.meta["tilings"]["g"]
    replay = pipeline_cycles(M, N, K, count, t["tm"], t["tn"], t["tk"], t["order"] == "nm", t["panel"], a_off,
                             True, c_off, False, 1.0, 1.0, 1.0, arrays, {"os": 0, "ws": 1, "is": 2}[df], 32, 32,
                             preload and df != "os", 10.0, lat)
    assert replay == res.cycles


def test_one_column_edge_tile_is_avoided_without_latency(small_arch):
    """Sixteen 1 x 257 x 64 GEMMs (one request's scores over 257 keys, per head) on a 256 x 256
    OS array, the 64 x 257 K operand from memory at 10 B/cycle, zero latency. As one 257-wide
    tile each GEMM loads 16,448 B (1,645 cycles) and computes two column folds of
    64 + 256 + 256 - 2 = 574 cycles; the loads run back to back and the last GEMM's folds
    follow: 16 x 1,645 + 1,148 = 27,468 cycles. Cut 256 + 1, the one-column edge tile costs a
    whole fold for a 64-byte load and the slots stall the memory: 35,982 cycles, which the
    averaged estimate took before the tiler timed its candidates at zero latency too."""
    small_arch["array"].update(rows=256, cols=256)
    res = simulate(small_arch, gemm(1, 257, 64, count=16, a_offchip=False, c_offchip=False, name="g"))
    t = res.program.meta["tilings"]["g"]
    assert (t["tn"], t["tk"]) == (257, 64)
    assert res.cycles == 16 * 1645 + 2 * 574


def test_timed_tiles_keep_a_slower_clock_no_faster():
    """tpuv1, OPT-1.3B decode (batch 8, KV 512): each attention GEMM's K head is 64 x 513. Split
    256 + 256 + 1, the one-column edge tile's load and fold chain through the two slots and cost
    about a fifth more than one 513-wide tile; the averaged bound cannot tell them apart, the
    timed pipeline can. 106.0 ms at 1 GHz against 101.3 ms at 500 MHz before."""
    times = [simulate("tpuv1", "opt-1.3b", phase="decode", batch=8, kv_len=512,
                      overrides=[f"clock={c} MHz"]).seconds for c in (500, 1000, 2000)]
    assert times[1] <= times[0] * 1.001 and times[2] <= times[1] * 1.001
    assert times[1] < 0.102


def test_tile_that_cannot_fit_is_an_error(small_arch):
    small_arch["sram"] = {"ifmap": "16 B", "filter": "16 B", "ofmap": "16 B"}
    with pytest.raises(LoweringError, match="fits"):
        simulate(small_arch, gemm(64, 64, 64))


@pytest.mark.parametrize("arch,wl,kw", [
    ("systolic_128x128", "gpt2", {"phase": "prefill", "seq_len": 256}),
    ("systolic_128x128", "llama2-7b", {"phase": "decode", "kv_len": 512, "batch": 4}),
    ("tpuv4i", "llama2-70b", {"phase": "decode", "kv_len": 1024, "batch": 8}),
    ("tpuv1", "bert-base", {"phase": "prefill", "seq_len": 128}),
    ("scalesim_32x32", "gpt2", {"phase": "decode", "kv_len": 64}),
])
def test_bounds_and_mac_conservation(arch, wl, kw):
    res = simulate(arch, wl, **kw)
    assert res.macs == res.expected_macs
    assert res.cycles >= res.compute_bound_cycles
    assert res.cycles >= res.memory_bound_cycles
    d = res.to_dict()
    parts = sum(sum(c["energy_pj"].values()) for c in d["components"].values())
    assert d["energy_pj"] == pytest.approx(parts, rel=1e-9)
    layer_e = sum(r["total_energy_pj"] for r in d["layers"])
    assert layer_e == pytest.approx(d["energy_pj"], rel=1e-6)


def test_llama_macs_analytic():
    # decode, batch 1, KV 100 (attend over 101 keys): per layer
    # QKV 4096*12288 + O 4096*4096 + MLP 3*4096*11008 + attention 2*32*128*101; LM head 4096*32000
    res = simulate("systolic_128x128", "llama2-7b", phase="decode", batch=1, kv_len=100)
    per_layer = 4096 * 12288 + 4096 * 4096 + 3 * 4096 * 11008 + 2 * 32 * 128 * 101
    assert res.macs == 32 * per_layer + 4096 * 32000


def test_gqa_shares_kv_heads():
    # Llama-2-70B: 64 query heads over 8 KV heads: the QK GEMMs have M = 8 query heads each
    res = simulate("tpuv4i", "llama2-70b", phase="decode", batch=2, kv_len=63)
    qk = [op for op in res.workload.ops() if op.role == "attn_qk"][0]
    assert (qk.M, qk.N, qk.K, qk.count) == (8, 64, 128, 2 * 8)


def test_dedup_matches_all_layers():
    a = simulate("systolic_128x128", "gpt2", phase="prefill", seq_len=128)
    b = simulate("systolic_128x128", "gpt2", phase="prefill", seq_len=128, all_layers=True)
    assert a.macs == b.macs
    assert a.cycles == pytest.approx(b.cycles, rel=0.02)
    assert len(b.layers) == 12 + 2


def test_deterministic_json():
    import json
    a = json.dumps(simulate("systolic_128x128", "gpt2", phase="decode", kv_len=32).to_dict())
    b = json.dumps(simulate("systolic_128x128", "gpt2", phase="decode", kv_len=32).to_dict())
    assert a == b


def test_decode_is_memory_heavy_prefill_compute_heavy():
    dec = simulate("tpuv4i", "llama2-7b", phase="decode", batch=1, kv_len=512)
    pre = simulate("tpuv4i", "llama2-7b", phase="prefill", seq_len=512)
    assert dec.metrics()["utilization"] < 0.05
    assert pre.metrics()["utilization"] > 0.3


def test_mac_energy_follows_operand_precision():
    # same arch (fp16 datapath family via bf16 preset), int4 vs fp16 operands: the per-width MAC
    # counters carry the MACs and int4-width MACs are priced lower than 16-bit ones
    lo = simulate("tpuv4i", "gpt2", phase="decode", kv_len=16,
                  overrides=["workload.precision.weights=int4", "workload.precision.activations=int4",
                             "workload.precision.kv_cache=int4", "workload.precision.attention=int4"])
    hi = simulate("tpuv4i", "gpt2", phase="decode", kv_len=16,
                  overrides=["workload.precision.weights=fp16", "workload.precision.activations=fp16",
                             "workload.precision.kv_cache=fp16"])
    cl, ch = lo.components["array"], hi.components["array"]
    assert cl["counts"]["mac_4b"] == lo.macs and ch["counts"]["mac_16b"] == hi.macs
    mac_e = lambda c: sum(v for k, v in c["energy_pj"].items() if k.startswith("mac_"))  # noqa: E731
    assert 0 < mac_e(cl) < 0.5 * mac_e(ch)


def test_sparse_core_bounds_conserve_issued_plus_skipped_macs():
    res = simulate("rm_stc", "llama2-7b", phase="decode", kv_len=128,
                   overrides=["workload.sparsity.weights.density=0.3",
                              "workload.sparsity.activations.density=0.5"])
    assert res.skipped_macs > 0
    assert res.macs + res.skipped_macs == res.expected_macs
    assert res.bounds_ok()


def test_preload_overlap_pays_the_drain_once_per_array(small_arch):
    # ws 32x32 with weights double-buffered in the PEs: every tile costs folds x max(T, R)
    # ("B pipelined cycles"); the drain R + C - 2 = 62 overlaps the next tile and is paid only by
    # the op's last tile on the array. GEMM 16x128x64 int8, 2 KiB filter buffer -> 32x32 weight
    # tiles (1 KiB, double buffered): 4 x 2 tiles of one fold, T = 16 < R = 32 -> 32 cycles each.
    from archsim.api import load
    from archsim.isa import Op
    from archsim.uarch import get
    small_arch["array"].update(dataflow="ws", preload_overlap=True)
    small_arch["sram"]["filter"] = "2 KiB"
    cfg, wl = load(small_arch, gemm(16, 128, 64, a_offchip=False, c_offchip=False, name="g"))
    u = get("systolic")
    prog = u.lower(cfg, wl, __import__("archsim.uarch.base", fromlist=["LowerOptions"]).LowerOptions())
    dur, _ = u.cost(cfg, prog)
    t = prog.meta["tilings"]["g"]
    folds = -(-t["tk"] // 32) * -(-t["tn"] // 32)
    per_tile = folds * max(t["tm"], 32)
    d = dur[prog.op == Op.GEMM]
    assert len(d) == 8 and per_tile == 32
    assert (d[:-1] == per_tile).all() and d[-1] == per_tile + 32 + 32 - 2
    # the whole op: tiles back to back plus one drain (weights stream behind them)
    res = simulate(small_arch, gemm(16, 128, 64, a_offchip=False, c_offchip=False))
    assert res.cycles >= len(d) * per_tile + 62


def test_activation_panel_stays_in_the_unified_buffer():
    """A TPU keeps a layer's activations in its unified buffer while the weights stream. On
    tpuv1 (24 MiB unified buffer, 4 MiB accumulators, 256 KiB weight FIFO) a 4096^3 int8 GEMM
    with A and C in memory runs M panels of 2048 rows (2048 x 256 int32 partial sums, double
    buffered, fill the accumulators): each 8 MiB panel of A is loaded once (twice over it fits
    the buffer) and stays while all 16 weight-column tiles stream past it, so A is read once
    (16 MiB), B once per panel (2 x 16 MiB) and C written once (16 MiB); re-reading A per weight
    tile would move 16 x 16 MiB. The run is bound by those 64 MiB over the 34 GB/s DDR3."""
    int8 = {"weights": "int8", "activations": "int8"}
    res = simulate("tpuv1", gemm(4096, 4096, 4096, precision=int8, name="g"))
    t = res.program.meta["tilings"]["g"]
    assert t["order"] == "mn" and t["panel"] and t["tm"] == 2048 and t["tn"] == 256
    assert res.offchip_bytes == 64 * 2**20
    mem_cycles = 64 * 2**20 / (34e9 / 700e6)
    assert mem_cycles < res.cycles < 1.3 * mem_cycles
    # an 8 MiB buffer holds two 4 MiB panels of 1024 rows: A still once, B once per panel (4 x)
    small = simulate("tpuv1", gemm(4096, 4096, 4096, precision=int8, name="g"), overrides=["sram.ifmap=8 MiB"])
    t = small.program.meta["tilings"]["g"]
    assert t["panel"] and t["tm"] == 1024 and small.offchip_bytes == (16 + 4 * 16 + 16) * 2**20
    assert small.cycles > res.cycles
    # a GEMM whose panels save nothing keeps its tiling: one weight tile reused by every row
    one = simulate("tpuv1", gemm(4096, 256, 256, precision=int8, name="g"))
    assert not one.program.meta["tilings"]["g"]["panel"]
    assert one.offchip_bytes == (4096 * 256 + 256 * 256 + 4096 * 256)


@settings(max_examples=40, deadline=None)
@given(arch=st.sampled_from(["tpuv1", "systolic_128x128"]),
       M=st.sampled_from([64, 200, 512, 1024, 3000, 4096, 8192]),
       N=st.sampled_from([128, 384, 1000, 2048, 4096]),
       K=st.sampled_from([128, 256, 1024, 2048, 4096]), a_off=st.booleans())
def test_lowered_loads_are_the_tilers_traffic(arch, M, N, K, a_off):
    """On one array the bytes the lowered program loads are the tiler's traffic estimate,
    whatever the tiling (tile reuse, resident panels of A or B, edge tiles)."""
    res = simulate(arch, gemm(M, N, K, a_offchip=a_off, c_offchip=False, name="g",
                              precision={"weights": "int8", "activations": "int8"}))
    assert res.offchip_bytes == res.program.meta["tilings"]["g"]["traffic"]


def test_panel_on_several_arrays_loads_each_panel_once():
    """neupims_npu (8 arrays): 1024x384x256 FP16 with A and B in memory runs six activation
    panels of 176 x 256 (1024 / 6 rows, one per array on six of the eight), each loaded once and
    kept while the three 128-column weight tiles stream past it: A moves once (524,288 B), B
    once per panel (6 x 196,608 B). Without the panel A would move once per weight tile."""
    res = simulate("neupims_npu", gemm(1024, 384, 256, a_offchip=True, c_offchip=False, name="g"))
    t = res.program.meta["tilings"]["g"]
    assert (t["order"], t["panel"], t["tm"], t["tn"]) == ("mn", True, 176, 128)
    assert res.offchip_bytes == 1024 * 256 * 2 + 6 * 384 * 256 * 2 == t["traffic"]


def test_equally_fast_tilings_take_the_fewest_bytes():
    """A compute-bound GEMM on a 512 x 1024 OS array (int8, 2 MiB ifmap / 4 MiB filter / 2 MiB
    ofmap SRAM, 819 GB/s, 100 ns): 512 x 4096 x 4096 in 256 x 1024 x 512 tiles is 64 tiles of
    512 + 512 + 1024 - 2 = 2046 cycles (131 k) against 44 k cycles of loads, so every tiling the
    tiler times finishes at the same time. Among them it keeps a 256 x 4096 panel of A (1 MiB)
    and streams the weights past it: A once (2 MiB) and B once per panel (2 x 16 MiB), not B per
    row tile and A per weight tile (40 MiB)."""
    over = ["array.rows=512", "array.cols=1024", "memory.bandwidth=819 GB/s", "sram.ifmap=2 MiB",
            "sram.filter=4 MiB", "sram.ofmap=2 MiB"]
    int8 = {"weights": "int8", "activations": "int8"}
    res = simulate("systolic_128x128", gemm(512, 4096, 4096, precision=int8, name="g"), overrides=over)
    t = res.program.meta["tilings"]["g"]
    assert t["panel"] and t["order"] == "mn" and (t["tm"], t["tn"]) == (256, 1024)
    assert t["traffic"] == (2 + 2 * 16) * 2**20
    assert res.offchip_bytes == t["traffic"] + 512 * 4096            # + C written once
    assert 64 * 2046 < res.cycles < 64 * 2046 * 1.15
