"""More work never takes less time: a decode step's cycles do not fall as the KV cache or the
batch grows, on every family (the sparse tensor core once ran a latency-bound GEMM as two waves
at batch 1 and was slower than at batch 2)."""
import pytest

from archsim.api import simulate

CASES = [("systolic_128x128", "gpt2"), ("tpuv4i", "opt-1.3b"), ("tc_dense", "opt-1.3b"), ("stc_2to4", "gpt2"),
         ("ds_stc", "gpt2"), ("rm_stc", "gpt2"), ("trancim", "gpt2"), ("cim_llm", "gpt2"), ("hbm_pim", "gpt2"),
         ("aim", "gpt2"), ("a100", "llama2-7b"), ("h100", "mamba-2.8b"), ("attacc_dgx", "llama2-7b"),
         ("neupims", "llama2-7b")]


def _cycles(arch, wl, batch, kv):
    return simulate(arch, wl, phase="decode", batch=batch, kv_len=kv).cycles


@pytest.mark.parametrize("arch,wl", CASES, ids=[a for a, _ in CASES])
def test_decode_cycles_grow_with_kv_and_batch(arch, wl):
    batches = (1, 2, 4) if arch in ("hbm_pim", "aim") else (1, 2, 4, 16)     # PIM GEMVs: up to 8 rows
    by_kv = [_cycles(arch, wl, 2, kv) for kv in (128, 512, 2048)]
    assert by_kv == sorted(by_kv), by_kv
    by_batch = [_cycles(arch, wl, b, 512) for b in batches]
    assert by_batch == sorted(by_batch), by_batch
