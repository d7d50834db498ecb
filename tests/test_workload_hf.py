"""Hugging Face config.json import for every supported family; unsupported model types."""
from pathlib import Path

import pytest

from archsim.api import load
from archsim.errors import WorkloadError
from archsim.workload.loader import load_workload_spec

HF = Path(__file__).parent / "data" / "hf"


@pytest.mark.parametrize("name,kind,check", [
    ("llama-2-7b.json", "transformer", dict(d_model=4096, n_layers=32, d_ff=11008, mlp="swiglu")),
    ("mixtral-8x7b.json", "moe", dict(n_experts=8, top_k=2, n_kv_heads=8, d_ff=14336)),
    ("mamba-2.8b.json", "mamba", dict(d_model=2560, n_layers=64, d_state=16, dt_rank=160, variant="mamba")),
    ("mamba2-2.7b.json", "mamba", dict(variant="mamba2", d_state=128, headdim=64, d_inner=5120)),
    ("jamba.json", "hybrid", dict(attn_every=8, attn_offset=4, moe_every=2, n_experts=16, mamba_dt_rank=256)),
    ("gpt2.json", "transformer", dict(d_model=768, n_layers=12, d_ff=3072)),
    ("opt-1.3b.json", "transformer", dict(d_model=2048, d_ff=8192, mlp="relu")),
    ("bert-base-uncased.json", "transformer", dict(arch="encoder", d_ff=3072)),
])
def test_hf_import(name, kind, check):
    spec = load_workload_spec(HF / name)
    assert spec.kind == kind
    for k, v in check.items():
        assert getattr(spec, k) == v, k
    phase = "prefill" if getattr(spec, "arch", "decoder") == "encoder" else "decode"
    _, wl = load("systolic_128x128", HF / name, phase=phase, batch=2, seq_len=64)
    assert wl.macs() > 0


def test_imported_mixtral_matches_the_preset():
    _, a = load("systolic_128x128", HF / "mixtral-8x7b.json", phase="decode", batch=4, kv_len=128)
    _, b = load("systolic_128x128", "mixtral-8x7b", phase="decode", batch=4, kv_len=128,
                overrides=["workload.precision.weights=int8", "workload.precision.activations=int8"])
    assert a.macs() == b.macs()


def test_unsupported_model_type_lists_supported():
    with pytest.raises(WorkloadError) as e:
        load_workload_spec(HF / "t5-small.json")
    msg = str(e.value)
    assert "unsupported model_type 't5'" in msg
    for t in ("llama", "mixtral", "mamba", "mamba2", "jamba", "gpt2", "opt", "bert"):
        assert t in msg


@pytest.mark.parametrize("key,value", [("num_key_value_heads", 0), ("num_key_value_heads", -8),
                                       ("num_key_value_heads", 3), ("head_dim", 0)])
def test_bad_head_counts_name_the_key(tmp_path, key, value):
    import json
    cfg = json.loads((HF / "llama-2-7b.json").read_text())
    cfg[key] = value
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    with pytest.raises(WorkloadError) as e:
        load_workload_spec(p)
    assert e.value.path == f"config.json.{key}"


def test_null_kv_heads_means_multi_head(tmp_path):
    import json
    cfg = json.loads((HF / "llama-2-7b.json").read_text())
    cfg["num_key_value_heads"] = None
    p = tmp_path / "config.json"
    p.write_text(json.dumps(cfg))
    spec = load_workload_spec(p)
    assert spec.n_kv_heads == spec.n_heads
