"""Attention variants: Longformer/BigBird block-sparse masks, SpAtten pruning, mixed decode
batches, FlashAttention-style fused attention traffic."""
from collections import Counter

import numpy as np
import pytest

from archsim.api import load, simulate
from archsim.errors import WorkloadError
from archsim.workload.attention import block_mask, kept_keys
from archsim.workload.graph import GemmOp
from archsim.workload.spec import AttnSparsitySpec

LF = dict(kind="transformer", name="lf", arch="encoder", d_model=768, n_layers=12, n_heads=12, d_ff=3072,
          position="learned", lm_head=False, phase="prefill", batch=1, seq_len=4096,
          attn_sparsity=dict(pattern="longformer", window=512, global_tokens=64, block=64))


def _attn(wl, role):
    return [op for op in wl.ops() if isinstance(op, GemmOp) and op.role == role]


def test_longformer_blocks_by_hand():
    # 4096 tokens = 64 blocks of 64. Window 512 = 4 blocks each side: row i keeps
    # min(i,4) + min(63-i,4) + 1 blocks -> 64*9 - 2*(4+3+2+1) = 556. Global block 0: rows 5..63
    # add key block 0 (+59), row 0 attends to all (+59). Total 674 of 4096 blocks.
    _, wl = load("systolic_128x128", LF)
    qk = _attn(wl, "attn_qk")
    blocks = sum(op.count // 12 * op.N // 64 for op in qk)
    assert blocks == 674
    macs_qk = sum(op.macs for op in qk)
    assert macs_qk == 674 * 64 * 64 * 64 * 12            # blocks x b x b x head_dim x heads
    assert sum(op.macs for op in _attn(wl, "attn_sv")) == macs_qk
    assert all(op.attrs["attn_density"] == pytest.approx(674 / 4096) for op in qk)
    assert all(op.attrs["attn_nnz"] == op.M * op.N * op.count for op in qk)


def test_longformer_layer_macs_and_simulated_macs():
    res = simulate("systolic_128x128", LF)
    d, T, ff = 768, 4096, 3072
    dense = T * d * 3 * d + T * d * d + 2 * T * d * ff          # QKV, O, MLP
    attn = 2 * 674 * 64 * 64 * 64 * 12
    blk = [x for x in res.layers if x.name == "block"][0]
    assert blk.macs == dense + attn
    assert res.bounds_ok()
    # dense attention for comparison: 2 * 4096^2 * 64 * 12 MACs; the sparse one is 674/4096 of it
    dense_res = simulate("systolic_128x128", {k: v for k, v in LF.items() if k != "attn_sparsity"})
    dblk = [x for x in dense_res.layers if x.name == "block"][0]
    assert dblk.macs - dense == 2 * 4096 ** 2 * 64 * 12
    assert blk.cycles < dblk.cycles


def _naive_mask(q, ctx, b, window, glob, causal):
    nkb = -(-ctx // b)
    rows = range((ctx - q) // b, (ctx - 1) // b + 1)
    out = []
    for i in rows:
        r = []
        for j in range(nkb):
            if causal:
                keep = i - (-(-window // b)) <= j <= i
            else:
                keep = abs(i - j) <= -(-window // (2 * b))
            keep = keep or j * b < glob or i * b < glob
            if causal and j > i:
                keep = False
            r.append(keep)
        out.append(r)
    return np.array(out)


@pytest.mark.parametrize("q,ctx,b,window,glob,causal", [
    (256, 256, 32, 64, 0, False), (300, 300, 64, 128, 64, True), (1, 1000, 64, 256, 64, True),
    (7, 513, 16, 48, 16, False)])
def test_block_mask_matches_naive(q, ctx, b, window, glob, causal):
    sp = AttnSparsitySpec(pattern="longformer", block=b, window=window, global_tokens=glob)
    m, rows = block_mask(q, ctx, sp, causal, np.random.default_rng(0))
    assert (m == _naive_mask(q, ctx, b, window, glob, causal)).all()
    assert rows.sum() == q
    sizes = [min(b, ctx - j * b) for j in range(m.shape[1])]
    assert kept_keys(m, ctx, b).tolist() == [sum(s for s, k in zip(sizes, r) if k) for r in m]


def test_bigbird_random_blocks_are_seeded_and_counted():
    sp = AttnSparsitySpec(pattern="bigbird", block=64, window=192, global_tokens=64, random_blocks=3, seed=5)
    m1, _ = block_mask(2048, 2048, sp, False, np.random.default_rng(5))
    m2, _ = block_mask(2048, 2048, sp, False, np.random.default_rng(5))
    base = AttnSparsitySpec(pattern="longformer", block=64, window=192, global_tokens=64)
    m0, _ = block_mask(2048, 2048, base, False, np.random.default_rng(5))
    assert (m1 == m2).all()
    # interior rows gain exactly 3 random blocks over window + global
    assert ((m1.sum(1) - m0.sum(1))[5:-5] == 3).all()


def test_token_and_head_pruning():
    _, wl = load("systolic_128x128", "llama2-7b", phase="decode", batch=2, kv_len=999,
                 overrides=["workload.attn_sparsity={token_keep: 0.25, head_keep: 0.5}"])
    qk = _attn(wl, "attn_qk")[0]
    # 1000 keys x 0.25 = 250; MHA: 32 heads -> 16 kept, per request
    assert (qk.M, qk.N, qk.count) == (1, 250, 2 * 16)


def test_per_layer_keep_ratios_build_every_layer():
    keep = [1.0] * 6 + [0.5] * 6
    _, wl = load("systolic_128x128", "gpt2", phase="decode", batch=1, kv_len=99,
                 overrides=[f"workload.attn_sparsity={{token_keep: {keep}}}"])
    n = {op.layer: op.N for op in _attn(wl, "attn_qk")}
    assert n["block0"] == 100 and n["block11"] == 50 and len(n) == 12


def test_mixed_kv_lengths_group_requests():
    lens = [100, 100, 2000, 511]
    res = simulate("systolic_128x128", "llama2-7b", phase="decode", batch=4,
                   overrides=[f"workload.kv_lens={lens}"])
    qk = [op for op in res.workload.ops() if op.role == "attn_qk" and op.layer == "block"]
    assert Counter((op.N, op.count) for op in qk) == Counter({(101, 64): 1, (512, 32): 1, (2001, 32): 1})
    # attention MACs per layer = sum over requests of 2 * heads * (L+1) * head_dim
    blk = [x for x in res.layers if x.name == "block"][0]
    attn = sum(2 * 32 * (L + 1) * 128 for L in lens)
    assert blk.macs == 4 * 4096 * 3 * 4096 + 4 * 4096 * 4096 + 4 * 3 * 4096 * 11008 + attn
    # KV bytes read follow each request's own length (fp16 K and V)
    assert blk.offchip_read_bytes >= 2 * 2 * 4096 * sum(L + 1 for L in lens)
    assert res.bounds_ok()


def test_kv_len_distribution_is_seeded():
    ov = ["workload.kv_len_dist={kind: lognormal, mean: 1000, std: 500, high: 4096, bucket: 16, seed: 2}"]
    _, a = load("systolic_128x128", "llama2-7b", phase="decode", batch=8, overrides=ov)
    _, b = load("systolic_128x128", "llama2-7b", phase="decode", batch=8, overrides=ov)
    na = sorted((op.N, op.count) for op in _attn(a, "attn_qk"))
    assert na == sorted((op.N, op.count) for op in _attn(b, "attn_qk"))
    assert sum(c for _, c in na) == 8 * 32 and all((n - 1) % 16 == 0 for n, _ in na)


def test_flash_attention_keeps_scores_on_chip():
    kw = dict(phase="prefill", seq_len=1024, batch=1)
    std = simulate("systolic_128x128", "gpt2", **kw)
    fl = simulate("systolic_128x128", "gpt2", overrides=["workload.attention=flash"], **kw)
    # standard attention spills the score and probability matrices (12 heads x 1024^2, int8
    # default precision of the preset = 12 MiB each, beyond the 1 MiB activation budget): QK^T
    # writes scores, softmax reads them and writes probabilities, PV reads them
    per_layer = 12 * 1024 * 1024
    blk = lambda r: [x for x in r.layers if x.name == "block"][0]  # noqa: E731
    assert blk(std).offchip_write_bytes - blk(fl).offchip_write_bytes == 2 * per_layer
    assert blk(std).offchip_read_bytes - blk(fl).offchip_read_bytes == 2 * per_layer
    assert fl.macs == std.macs and fl.cycles < std.cycles


@pytest.mark.parametrize("ov,path", [
    ("workload.attn_sparsity={token_keep: 1.5}", "workload.attn_sparsity.token_keep"),
    ("workload.attn_sparsity={sparsity: -0.1, pattern: random}", "workload.attn_sparsity.sparsity"),
    ("workload.attn_sparsity={token_keep: [0.5, 0.5]}", "workload.attn_sparsity.token_keep"),
    ("workload.kv_lens=[1, 2]", "workload.kv_lens"),
    # seeds: non-negative integers
    ("workload.kv_len_dist={kind: uniform, low: 10, high: 100, seed: -1}", "workload.kv_len_dist.seed"),
    ("workload.attn_sparsity={pattern: random, sparsity: 0.5, seed: -1}", "workload.attn_sparsity.seed"),
    ("workload.kv_len_dist={kind: uniform, low: 10, high: 100, seed: true}", "workload.kv_len_dist.seed"),
])
def test_bad_attention_input(ov, path):
    with pytest.raises(WorkloadError) as e:
        load("systolic_128x128", "llama2-7b", phase="decode", batch=4, overrides=[ov])
    assert e.value.path == path


def test_duplicate_key_in_a_workload_file(tmp_path):
    from archsim.errors import InputFileError
    p = tmp_path / "wl.yaml"
    p.write_text("kind: gemm\nM: 64\nN: 64\nK: 64\nN: 128\n")
    with pytest.raises(InputFileError, match=r"duplicate key 'N' in .*wl.yaml line 5"):
        load("systolic_128x128", p)
