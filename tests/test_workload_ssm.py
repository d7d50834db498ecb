"""Mamba / Mamba-2 blocks and Jamba-style hybrids: hand-computed MACs and bytes, the scan's
sequential dependency, the constant-size state, layer plans."""
import networkx as nx
import pytest

from archsim.api import load, simulate
from archsim.errors import WorkloadError
from archsim.workload.graph import GemmOp, VectorOp
from archsim.workload.ssm import MambaDims, layer_weight_elements


def _blk(res, name="block"):
    return [x for x in res.layers if x.name == name][0]


def test_mamba_2p8b_decode_layer_by_hand():
    # D 2560, d_inner 5120, N 16, R = ceil(2560/16) = 160, conv 4, bf16 weights and state
    B, D, di, N, R = 8, 2560, 5120, 16, 160
    res = simulate("systolic_128x128", "mamba-2.8b", phase="decode", batch=B)
    blk = _blk(res)
    per_token = D * 2 * di + di * (R + 2 * N) + R * di + di * D       # in, x, dt, out projections
    assert per_token == 41_123_840
    assert blk.macs == B * per_token and blk.repeat == 62
    assert sum(x.repeat for x in res.layers if x.group == "block") == 64
    w = layer_weight_elements(MambaDims(D, di, N, 4, R))
    # in_proj 26,214,400; conv 25,600; x_proj 983,040; dt_proj 824,320; A 81,920; D 5,120;
    # out_proj 13,107,200 (the norm weight is not modelled as a load: the transformer convention)
    weights = sum(v for k, v in w.items() if k != "norm")
    assert weights == 41_241_600
    state = B * di * N             # SSM state [B, d_inner, N]
    conv_state = B * di * 3        # conv1d state [B, d_inner, d_conv-1]
    assert blk.offchip_read_bytes == 2 * (weights + state + conv_state)
    assert blk.offchip_write_bytes == 2 * (state + conv_state)
    assert res.bounds_ok()


def test_state_is_constant_in_sequence_length():
    a = _blk(simulate("systolic_128x128", "mamba-130m", phase="decode", batch=2, kv_len=10))
    b = _blk(simulate("systolic_128x128", "mamba-130m", phase="decode", batch=2, kv_len=100000))
    assert a.offchip_read_bytes == b.offchip_read_bytes and a.cycles == b.cycles


def test_prefill_scan_is_chunked_and_sequential():
    _, wl = load("systolic_128x128", "mamba-130m", phase="prefill", seq_len=1000, batch=2)
    scans = [op for op in wl.ops() if isinstance(op, VectorOp) and op.role == "scan"]
    # ceil(1000 / 256) = 4 chunks of 256, 256, 256, 232 steps; one element per (t, channel, state)
    assert [op.attrs["steps"] for op in scans] == [256, 256, 256, 232]
    assert sum(op.elements for op in scans) == 2 * 1000 * 1536 * 16
    # each chunk depends on the previous chunk's final state
    for p, q in zip(scans, scans[1:]):
        assert nx.has_path(wl.graph, p.name, q.name) and p.name in wl.graph.predecessors(q.name)


def test_mamba2_ssd_prefill_shapes_by_hand():
    # Mamba-2-2.7B: D 2560, d_inner 5120, 80 heads of 64, N 128, G 1, chunk 256; L = 1024 -> 4 chunks
    _, wl = load("systolic_128x128", "mamba2-2.7b", phase="prefill", seq_len=1024, batch=1)
    g = {op.name.split(".")[-1]: op for op in wl.ops() if isinstance(op, GemmOp)}
    assert (g["in_proj"].N, g["in_proj"].K) == (2 * 5120 + 2 * 128 + 80, 2560)
    assert (g["ssd_cb"].M, g["ssd_cb"].N, g["ssd_cb"].K, g["ssd_cb"].count) == (256, 256, 128, 4)
    assert (g["ssd_diag"].M, g["ssd_diag"].N, g["ssd_diag"].K, g["ssd_diag"].count) == (256, 64, 256, 320)
    assert (g["ssd_states"].M, g["ssd_states"].N, g["ssd_states"].K) == (128, 64, 256)
    assert (g["ssd_off"].M, g["ssd_off"].N, g["ssd_off"].K, g["ssd_off"].count) == (256, 64, 128, 320)
    scans = [op for op in wl.ops() if op.role == "scan"]
    assert len(scans) == 4 and all(op.elements == 80 * 64 * 128 for op in scans)


def test_mamba2_decode_state_bytes():
    B = 4
    blk = _blk(simulate("systolic_128x128", "mamba2-2.7b", phase="decode", batch=B))
    w = layer_weight_elements(MambaDims(2560, 5120, 128, 4, 160, "mamba2", 64, 1, 256))
    weights = w["in_proj"] + w["conv"] + w["dt_bias"] + w["A"] + w["D"] + w["gate_norm"] + w["out_proj"]
    state = B * 80 * 64 * 128
    conv_state = B * (5120 + 256) * 3
    assert blk.offchip_read_bytes == 2 * (weights + state + conv_state)
    assert blk.offchip_write_bytes == 2 * (state + conv_state)


def test_jamba_layer_plan():
    res = simulate("systolic_128x128", "jamba-mini", phase="decode", batch=4, kv_len=512)
    kinds: dict = {}
    for x in res.layers:
        kinds[x.group] = kinds.get(x.group, 0) + x.repeat
    # 32 layers: attention at 4, 12, 20, 28 (all even -> dense FFN); MoE at odd layers
    assert kinds == {"embed": 1, "mamba_dense": 12, "mamba_moe": 16, "attn_dense": 4, "head": 1}
    assert res.bounds_ok()
    wl = res.workload
    assert any(op.role == "attn_qk" and op.layer == "attn_dense" for op in wl.ops())
    assert any(op.role == "scan" and op.layer == "mamba_moe" for op in wl.ops())
    assert sum(op.M for op in wl.ops() if op.role == "expert" and op.name.endswith("up")
               and op.layer == "mamba_moe") == 4 * 2


@pytest.mark.parametrize("ov,path", [
    ("workload.d_state=0", "workload.d_state"),
    ("workload.variant=mamba3", "workload.variant"),
    ("workload.precision.weights=int3", "workload.precision.weights"),
])
def test_bad_ssm_input(ov, path):
    with pytest.raises(WorkloadError) as e:
        load("systolic_128x128", "mamba-130m", overrides=[ov])
    assert e.value.path == path
