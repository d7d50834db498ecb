"""Mixture of experts: routing distributions, capacity, per-expert GEMMs, Mixtral analytics,
and skew as cycles (the hot expert is the critical path)."""
import copy
from dataclasses import replace

import numpy as np
import pytest

from archsim.api import load, simulate
from archsim.errors import ArchsimError, WorkloadError
from archsim.uarch.systolic.folds import gemm_compute_cycles
from archsim.workload.graph import GemmOp
from archsim.workload.moe import RoutingSpec, apply_capacity, route


def _experts(wl, layer=None):
    return [op for op in wl.ops() if isinstance(op, GemmOp) and op.role == "expert"
            and (layer is None or op.layer == layer)]


# -- routing ----------------------------------------------------------------------------------

@pytest.mark.parametrize("r", [dict(), dict(distribution="uniform"), dict(zipf=1.2), dict(alpha=0.3),
                               dict(counts=[5, 1, 1, 1, 0, 0, 0, 0]), dict(distribution="single")])
def test_routing_conserves_assignments(r):
    T, E, k = 1000, 8, 2
    c = route(RoutingSpec(**r), T, E, k)
    assert c.sum() == T * k and c.max() <= T and len(c) == E


def test_balanced_and_single_by_hand():
    assert route(RoutingSpec(), 10, 4, 2).tolist() == [5, 5, 5, 5]
    assert route(RoutingSpec(), 3, 4, 1).tolist() == [1, 1, 1, 0]
    assert route(RoutingSpec(distribution="single"), 10, 4, 2).tolist() == [10, 10, 0, 0]


def test_zipf_is_seeded_and_skewed():
    a = route(RoutingSpec(zipf=1.2, seed=3), 4096, 8, 2)
    b = route(RoutingSpec(zipf=1.2, seed=3), 4096, 8, 2)
    assert (a == b).all()
    assert a[0] == a.max() and a[0] > 2 * a[-1]
    # top-1 draws follow p_i ~ 1/(i+1)^s (law of large numbers)
    c = route(RoutingSpec(zipf=1.0, seed=1), 200_000, 4, 1)
    p = 1 / np.arange(1, 5)
    assert np.allclose(c / c.sum(), p / p.sum(), atol=0.01)


def test_counts_are_rescaled_and_read_from_file(tmp_path):
    assert route(RoutingSpec(counts=[3, 1, 0, 0]), 8, 4, 1).tolist() == [6, 2, 0, 0]
    f = tmp_path / "counts.txt"
    f.write_text("3, 1, 0, 0\n")
    assert route(RoutingSpec(file=str(f)), 8, 4, 1).tolist() == [6, 2, 0, 0]


def test_capacity_factor_drops_tokens():
    # cap = ceil(1.25 * 16 * 1 / 4) = 5; counts [10, 4, 2, 0] -> [5, 4, 2, 0], 5 dropped
    kept, dropped = apply_capacity(np.array([10, 4, 2, 0]), 1.25, 16, 1, 4)
    assert kept.tolist() == [5, 4, 2, 0] and dropped == 5


# -- Mixtral-8x7B analytics ----------------------------------------------------------------------

def test_mixtral_layer_macs_and_bytes_by_hand():
    B, L = 32, 1024
    res = simulate("systolic_128x128", "mixtral-8x7b", phase="decode", batch=B, kv_len=L)
    blk = [x for x in res.layers if x.name == "block"][0]
    d, h, kvh, hd, ff, E, k = 4096, 32, 8, 128, 14336, 8, 2
    macs = (B * d * (h + 2 * kvh) * hd          # QKV
            + 2 * B * h * (L + 1) * hd          # QK^T and PV over L+1 keys
            + B * d * d                         # O
            + B * d * E                         # router
            + B * k * 3 * d * ff)               # two SwiGLU experts per token
    assert blk.macs == macs == 12_886_212_608
    assert blk.repeat == 30 and sum(x.repeat for x in res.layers if x.group == "block") == 32
    # bf16 weights: QKV, O, router, 8 experts (balanced: 8 tokens each, all active), KV cache
    weights = 2 * (d * (h + 2 * kvh) * hd + d * d + d * E + E * 3 * d * ff)
    kv_read = 2 * 2 * B * kvh * hd * (L + 1)
    # the score and probability matrices (B*h rows x L+1, bf16 = 2.1 MB each) exceed the
    # activation budget (half the 2 MiB ifmap buffer): written by QK^T / softmax, read back
    # by softmax / PV
    scores = 2 * B * h * (L + 1)
    assert blk.offchip_read_bytes == weights + kv_read + 2 * scores
    assert blk.offchip_write_bytes == 2 * B * 2 * kvh * hd + 2 * scores   # new K/V, spills
    assert res.macs == res.expected_macs and res.bounds_ok()


def test_each_expert_gets_its_token_count():
    _, wl = load("systolic_128x128", "mixtral-8x7b", phase="decode", batch=32,
                 overrides=["workload.routing.zipf=1.2"])
    ups = [op for op in _experts(wl) if op.name.endswith(".up")]
    counts = wl.spec["routing_counts"]["block"]
    assert sorted(op.M for op in ups) == sorted(c for c in counts if c)
    assert sum(op.M for op in ups) == 64
    assert all(op.attrs["expert"] == int(op.name.split(".e")[1].split(".")[0]) for op in ups)


def test_shared_experts_and_first_dense_layer():
    _, wl = load("systolic_128x128", "deepseek-moe-16b", phase="decode", batch=4)
    names = {g.name: g.repeat for g in wl.groups}
    assert names["block"] == 1 and names["moe_block"] == 27
    sh = [op for op in wl.ops() if op.role == "shared_expert"]
    assert {op.N for op in sh if op.name.endswith("up")} == {2 * 2 * 1408}   # 2 shared, SwiGLU
    assert sum(op.M for op in _experts(wl) if op.name.endswith("up")) == 4 * 6


def test_switch_capacity_drops_are_recorded():
    _, wl = load("systolic_128x128", "switch-base-8", seq_len=256,
                 overrides=["workload.routing.distribution=single"])
    # top-1, all 256 tokens to expert 0, capacity ceil(1.25 * 256 / 8) = 40
    assert wl.spec["dropped_tokens"]["moe_block"] == 256 - 40
    assert [op.M for op in _experts(wl) if op.name.endswith("up")] == [40]


# -- skew as cycles --------------------------------------------------------------------------------

MOE = dict(kind="moe", name="m", arch="encoder", d_model=128, n_layers=1, n_heads=2, d_ff=256, n_experts=4,
           top_k=1, mlp="gelu", position="none", lm_head=False, phase="prefill", batch=1, seq_len=512)
ARCH = {"name": "ep4", "uarch": "systolic", "clock": "1 GHz", "tech_node_nm": 45, "precision": "int8",
        "array": {"rows": 32, "cols": 32, "dataflow": "os", "count": 4},
        "sram": {"ifmap": "2 MiB", "filter": "2 MiB", "ofmap": "2 MiB"},
        "vector": {"lanes": 65536},
        "memory": {"model": "bandwidth", "bandwidth": "10 TB/s", "latency": "0 ns"}}


def _run_resident(dist):
    """Expert weights resident in each array's SRAM (``onchip``), as in an expert-parallel
    deployment with weights pinned: the experts run concurrently, one per array."""
    from archsim.sim.run import simulate_loaded
    cfg, wl = load(copy.deepcopy(ARCH), dict(MOE, routing={"distribution": dist}))
    for op in _experts(wl):
        op.b = replace(op.b, kind="onchip")
    return simulate_loaded(cfg, wl)


def test_hot_expert_is_the_critical_path():
    """4 arrays, expert e on array e. Balanced: 128 tokens per expert, all arrays at once; all
    tokens on expert 0: 512 tokens on array 0 while the others idle. The layer grows by exactly
    the growth of the critical path (the busiest array's expert GEMM cycles)."""
    def expert_cycles(M):   # up [M,256,128] and down [M,128,256] on a 32x32 os array
        return int(gemm_compute_cycles(0, 32, 32, M, 256, 128) + gemm_compute_cycles(0, 32, 32, M, 128, 256))
    # os: folds = ceil(M/32) * ceil(N/32), each K + 2*32 - 2 cycles:
    # M=128: 4*8*(128+62) + 4*4*(256+62) = 6080 + 5088 = 11168; M=512: 4x that
    cp_bal, cp_hot = expert_cycles(128), expert_cycles(512)
    assert cp_bal == 11168 and cp_hot == 4 * cp_bal

    bal, hot = _run_resident("balanced"), _run_resident("single")
    blk = lambda r: [x for x in r.layers if x.name == "block"][0]  # noqa: E731
    hb, bb = blk(hot).unit_busy, blk(bal).unit_busy
    # array busy = the dense GEMMs spread over all arrays (identical in both runs) + experts
    shared = bb["array1"] - cp_bal
    assert bb["array0"] == bb["array1"] == bb["array2"] == bb["array3"]
    assert hb["array1"] == shared and hb["array0"] == shared + cp_hot
    growth = blk(hot).cycles - blk(bal).cycles
    assert growth == pytest.approx(cp_hot - cp_bal, rel=0.05)
    # the expert phase itself: 4x longer (the critical path factor)
    non_expert = blk(bal).cycles - cp_bal
    assert (blk(hot).cycles - non_expert) / cp_bal == pytest.approx(4.0, rel=0.05)


def test_skew_costs_cycles_with_streamed_weights():
    bal = simulate(copy.deepcopy(ARCH), dict(MOE, routing={"distribution": "balanced"}))
    hot = simulate(copy.deepcopy(ARCH), dict(MOE, routing={"distribution": "single"}))
    assert hot.cycles > bal.cycles and hot.macs == bal.macs


# -- bad input ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("ov,field", [
    ("workload.top_k=9", "workload.top_k"),
    ("workload.routing.zipf=-1", "workload.routing.zipf"),
    ("workload.routing.distribution=zipf", "workload.routing"),
    ("workload.routing.counts=[1,2]", "workload.routing"),
    ("workload.capacity_factor=0", "workload.capacity_factor"),
    ("workload.routing.seed=-1", "workload.routing.seed"),
])
def test_bad_moe_input(ov, field):
    with pytest.raises(WorkloadError) as e:
        load("systolic_128x128", "mixtral-8x7b", overrides=[ov])
    assert e.value.path.startswith(field)
    assert isinstance(e.value, ArchsimError)


def test_routing_file_that_is_not_text(tmp_path):
    from archsim.errors import InputFileError
    p = tmp_path / "counts.json"
    p.write_bytes(b"\x00\xff\xfe binary")
    with pytest.raises(InputFileError, match="not a text file"):
        load("systolic_128x128", "mixtral-8x7b", overrides=[f"workload.routing.file={p}"])


def test_idle_experts_stay_resident():
    """Decode at batch 1 routes to 2 of Mixtral's 8 experts; the other 6 run nothing this pass
    but their weights are still stored, so the model needs the same memory as with all active."""
    _, wl = load("a100", "mixtral-8x7b", phase="decode", batch=1, kv_len=100)
    d, h, kvh, hd, ff, E, V, n = 4096, 32, 8, 128, 14336, 8, 32000, 32
    counts = wl.spec["routing_counts"]["block"]
    assert sum(1 for c in counts if c) <= 2
    rep = wl.group_repeat()
    stored = {}
    for op, t in wl.stored_tensors():
        stored[t.name] = t.nbytes * rep[op.layer]
    layer_w = 2 * (d * (h + 2 * kvh) * hd + d * d + d * E + E * 3 * d * ff)
    kv = 2 * 2 * kvh * hd * 101                       # K and V of 101 positions, bf16
    weights = sum(v for k, v in stored.items() if ".w" in k and "block" in k and "cache" not in k)
    assert weights == n * layer_w
    assert len(stored) == len(set(stored))            # each tensor once
    tot = sum(stored.values())
    assert tot >= n * (layer_w + kv)
    assert tot < n * (layer_w + kv) + 2 * 2 * V * d + 10 * 2 * d * n   # + embeddings / norms


@pytest.mark.parametrize("arch,ov,field", [
    ("a100", [], "memory.capacity"),
    ("attacc_dgx", ["xpu.devices=1", "pim.stacks=1", "xpu.capacity=40e9"], "pim.stacks"),
])
def test_moe_decode_that_does_not_fit_is_refused(arch, ov, field):
    # 93 GB of bf16 weights: refused at batch 1 although only two experts run
    with pytest.raises(ArchsimError) as e:
        simulate(arch, "mixtral-8x7b", phase="decode", batch=1, kv_len=64, overrides=ov)
    assert e.value.path == field


def test_experts_on_different_arrays_store_their_outputs_in_parallel():
    """Expert parallelism on the 8-array NPU: each expert's FFN runs on its own array, and an
    expert whose output spills stores it through its array's own DMA write queue, so it never
    waits behind another array's stores. More tokens or more memory bandwidth then never make
    the step slower (one shared in-order write queue serialised the experts as soon as their
    outputs spilled: batch 256 took 3.3x batch 128, 8 TB/s was 16% slower than 1 TB/s)."""
    ov = ["workload.n_layers=1"]
    s = {b: simulate("neupims_npu", "mixtral-8x7b", overrides=ov, phase="decode", batch=b, kv_len=2).seconds
         for b in (128, 256)}
    assert s[256] < 1.5 * s[128]
    bw = [simulate("neupims_npu", "mixtral-8x7b", overrides=ov + [f"memory.bandwidth={x}"], phase="decode",
                   batch=512, kv_len=2).seconds for x in ("1 TB/s", "2 TB/s", "8 TB/s")]
    assert bw == sorted(bw, reverse=True)
