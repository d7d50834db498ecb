"""Precision recipes and shared-scale overheads in the bytes moved."""
import pytest

from archsim.api import load, simulate
from archsim.errors import WorkloadError
from archsim.workload.graph import Tensor
from archsim.workload.quant import mac_precision

W_LLAMA = 4096 * 3 * 4096 + 4096 * 4096 + 4096 * 2 * 11008 + 11008 * 4096     # weights of one block


def _blk(res):
    return [x for x in res.layers if x.name == "block"][0]


def test_tensor_scale_overheads():
    assert Tensor("w", (128, 256), "int4", "weight").nbytes == 128 * 256 // 2
    assert Tensor("w", (128, 256), "int4", "weight", scale_group=128, scale_bits=16).nbytes == 16384 + 256 * 2
    assert Tensor("w", (32, 32), "mxfp4", "weight").nbytes == 32 * 32 // 2 + 32      # 1 byte per 32
    assert Tensor("w", (32, 32), "mxfp8", "weight").bytes_per_element == pytest.approx(1 + 1 / 32)


@pytest.mark.parametrize("recipe,w_bits,kv_bits", [
    (None, 16, 16),
    ("w8a8", 8, 8),                           # activations int8 -> KV defaults to activations
    ("w4a16", 4 + 20 / 128, 16),              # int4, fp16 scale + 4-bit zero per 128 weights
    ("w4a16+kv_int8", 4 + 20 / 128, 8 + 16 / 128),   # fp16 scale per token and head (128)
    ("mxfp4", 4 + 8 / 32, 16),
])
def test_recipes_set_the_bytes_moved(recipe, w_bits, kv_bits):
    B, L = 1, 511
    ovs = [f"workload.quant={recipe}"] if recipe else []
    res = simulate("systolic_128x128", "llama2-7b", phase="decode", batch=B, kv_len=L, overrides=ovs)
    kv = 2 * B * 4096 * (L + 1)
    expect = W_LLAMA * w_bits / 8 + kv * kv_bits / 8
    assert _blk(res).offchip_read_bytes == pytest.approx(expect, rel=2e-4)


def test_explicit_precision_wins_over_recipe():
    _, wl = load("systolic_128x128", "llama2-7b", overrides=["workload.quant=w4a16",
                                                            "workload.precision.weights=int8"])
    w = [op.b for op in wl.ops() if getattr(op, "role", "") == "fc"]
    assert {t.dtype for t in w} == {"int8"} and {t.scale_group for t in w} == {128}


def test_mac_precision():
    assert mac_precision("fp16", "int4") == "fp16"      # W4A16: dequantise, fp16 MACs
    assert mac_precision("int8", "int8") == "int8"
    assert mac_precision("int8", "int4") == "int8"
    assert mac_precision("bf16", "fp8") == "bf16"


@pytest.mark.parametrize("ov,path", [
    ("workload.quant=w3a16", "workload.quant"),
    ("workload.precision.weights=fp7", "workload.precision.weights"),
    ("workload.precision.group_size=0", "workload.precision.group_size"),
])
def test_bad_precision_input(ov, path):
    with pytest.raises(WorkloadError) as e:
        load("systolic_128x128", "llama2-7b", overrides=[ov])
    assert e.value.path == path


def test_quantised_activations_are_the_linear_layers_inputs():
    """W8A8 / FP8 on a 16-bit machine: the inputs of the linear layers are 8-bit (written so by
    their producers); GEMM outputs, the residual stream and attention stay at 16 bits; an 8-bit
    machine keeps every activation at 8 bits."""
    _, w = load("h100", "llama2-7b", overrides=["workload.precision.weights=fp8",
                                                 "workload.precision.activations=fp8"])
    ops = {op.name.rsplit(".", 1)[-1]: op for op in w.ops() if op.layer == "block"}
    for fc in ("qkv", "o", "up", "down"):
        assert ops[fc].a.dtype == "fp8" and ops[fc].c.dtype == "bf16", fc
    assert ops["attn_add"].outputs[0].dtype == "bf16" and ops["mlp_add"].outputs[0].dtype == "bf16"
    assert ops["act"].outputs[0].dtype == "bf16" and ops["gate_mul"].outputs[0].dtype == "fp8"
    assert ops["qk"].a.dtype == "bf16" and ops["qk"].b.dtype == "fp8"      # fp8 KV cache, 16-bit math
    _, w16 = load("h100", "llama2-7b")
    assert {t.dtype for op in w16.ops() if op.layer == "block" for t in (op.outputs if hasattr(op, "outputs")
                                                                        else (op.a, op.c))} == {"fp16"}
    _, w8 = load("tpuv4i", "gpt2", overrides=["precision=int8", "workload.precision.weights=int8",
                                               "workload.precision.activations=int8"])
    blk = [op for op in w8.ops() if op.layer == "block"]
    assert {op.c.dtype for op in blk if hasattr(op, "c")} == {"int8"}


def test_attn_fp8_recipe_runs_attention_at_fp8():
    """fp8 alone keeps attention at 16 bits; fp8+attn_fp8 runs QK^T and SV at the FP8 tensor-core
    rate over an fp8 KV cache, which a prefill of 2048 tokens on the h100 finishes faster."""
    from archsim.uarch.gpu.lower import mma_precision
    _, w = load("h100", "llama2-7b", overrides=["workload.quant=fp8+attn_fp8"])
    att = [op for op in w.ops() if op.role in ("attn_qk", "attn_sv")]
    assert {mma_precision(op) for op in att} == {"fp8"}
    base = simulate("h100", "llama2-7b", phase="prefill", seq_len=2048, overrides=["workload.quant=fp8"])
    fast = simulate("h100", "llama2-7b", phase="prefill", seq_len=2048, overrides=["workload.quant=fp8+attn_fp8"])
    assert fast.seconds < base.seconds and fast.bounds_ok()


def test_stream_precision_sets_every_non_linear_input_activation():
    """precision.stream=int8 (one word size throughout, as analytical models with a single word
    size assume): GEMM outputs, the residual stream and the tensor-parallel all-reduce payload
    are 8-bit, so a TP decode step moves half the all-reduce bytes of the default W8A8 dataflow."""
    ov = ["workload.precision.weights=int8", "workload.precision.activations=int8"]
    _, w = load("a100", "llama2-7b", overrides=ov + ["workload.precision.stream=int8"])
    ops = {op.name.rsplit(".", 1)[-1]: op for op in w.ops() if op.layer == "block"}
    for fc in ("qkv", "o", "up", "down"):
        assert ops[fc].a.dtype == "int8" and ops[fc].c.dtype == "int8", fc
    assert ops["attn_add"].outputs[0].dtype == "int8"
    assert ops["qk"].a.dtype == "int8"                      # attention follows the stream unless set

    def link_bytes(extra):
        r = simulate("a100", "llama2-7b", phase="decode", batch=16, kv_len=256,
                     overrides=ov + ["parallel.tensor=4"] + extra)
        return r.components["link"]["counts"]["bytes"]
    assert link_bytes(["workload.precision.stream=int8"]) * 2 == pytest.approx(link_bytes([]), rel=1e-6)
