"""Import of Hugging Face ``config.json`` files (read as JSON; no network, no transformers).

Each supported ``model_type`` maps to a converter returning a workload description dict.
"""
from __future__ import annotations

from typing import Callable

from archsim.errors import WorkloadError


def _need(cfg: dict, where: str, *keys):
    for k in keys:
        if k in cfg:
            return cfg[k]
    raise WorkloadError([(f"config.json.{keys[0]}", "required field missing")], source=where)


def _optional_count(cfg: dict, where: str, key: str, default):
    """``cfg[key]`` when given (a positive integer, else a WorkloadError naming it), ``default``
    when absent or null (Hugging Face's "not set")."""
    v = cfg.get(key)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise WorkloadError([(f"config.json.{key}", f"must be a positive integer or null, got {v!r}")],
                            source=where)
    return v


def _llama(c: dict, where: str) -> dict:
    d = _need(c, where, "hidden_size")
    h = _need(c, where, "num_attention_heads")
    kv = _optional_count(c, where, "num_key_value_heads", h)
    if isinstance(h, int) and h > 0 and h % kv:
        raise WorkloadError([("config.json.num_key_value_heads", f"{kv} KV heads do not divide the {h} "
                              "query heads (num_attention_heads)")], source=where)
    return dict(kind="transformer", family=c.get("model_type", "llama"), arch="decoder", d_model=d,
                n_layers=_need(c, where, "num_hidden_layers"), n_heads=h,
                n_kv_heads=kv, head_dim=_optional_count(c, where, "head_dim", None),
                d_ff=_need(c, where, "intermediate_size"), vocab_size=c.get("vocab_size", 32000),
                max_seq_len=c.get("max_position_embeddings", 4096), norm="rmsnorm", mlp="swiglu",
                position="rope", lm_head=True)


def _gpt2(c: dict, where: str) -> dict:
    d = _need(c, where, "n_embd", "hidden_size")
    return dict(kind="transformer", family="gpt2", arch="decoder", d_model=d,
                n_layers=_need(c, where, "n_layer", "num_hidden_layers"),
                n_heads=_need(c, where, "n_head", "num_attention_heads"),
                d_ff=_optional_count(c, where, "n_inner", None) or 4 * d, vocab_size=c.get("vocab_size", 50257),
                max_seq_len=c.get("n_positions", 1024), norm="layernorm", mlp="gelu", position="learned",
                lm_head=True)


def _opt(c: dict, where: str) -> dict:
    return dict(kind="transformer", family="opt", arch="decoder", d_model=_need(c, where, "hidden_size"),
                n_layers=_need(c, where, "num_hidden_layers"), n_heads=_need(c, where, "num_attention_heads"),
                d_ff=_need(c, where, "ffn_dim"), vocab_size=c.get("vocab_size", 50272),
                max_seq_len=c.get("max_position_embeddings", 2048), norm="layernorm",
                mlp="relu" if c.get("activation_function", "relu") == "relu" else "gelu",
                position="learned", lm_head=True)


def _bert(c: dict, where: str) -> dict:
    return dict(kind="transformer", family="bert", arch="encoder", d_model=_need(c, where, "hidden_size"),
                n_layers=_need(c, where, "num_hidden_layers"), n_heads=_need(c, where, "num_attention_heads"),
                d_ff=_need(c, where, "intermediate_size"), vocab_size=c.get("vocab_size", 30522),
                max_seq_len=c.get("max_position_embeddings", 512), norm="layernorm", mlp="gelu",
                position="learned", lm_head=False)


def _mixtral(c: dict, where: str) -> dict:
    out = _llama(c, where)
    out.update(kind="moe", family="mixtral", n_experts=_need(c, where, "num_local_experts", "num_experts"),
               top_k=c.get("num_experts_per_tok", 2))
    return out


def _dt_rank(c: dict, d: int):
    r = c.get("time_step_rank", c.get("mamba_dt_rank", "auto"))
    return -(-d // 16) if r in (None, "auto") else int(r)


def _mamba(c: dict, where: str) -> dict:
    d = _need(c, where, "hidden_size", "d_model")
    return dict(kind="mamba", family="mamba", variant="mamba", d_model=d,
                n_layers=_need(c, where, "num_hidden_layers", "n_layer"), d_state=c.get("state_size", 16),
                d_conv=c.get("conv_kernel", 4), expand=c.get("expand", 2),
                d_inner=c.get("intermediate_size"), dt_rank=_dt_rank(c, d), vocab_size=c.get("vocab_size", 50280),
                lm_head=True)


def _mamba2(c: dict, where: str) -> dict:
    d = _need(c, where, "hidden_size", "d_model")
    expand = c.get("expand", 2)
    hd = c.get("head_dim", 64)
    return dict(kind="mamba", family="mamba2", variant="mamba2", d_model=d,
                n_layers=_need(c, where, "num_hidden_layers", "n_layer"), d_state=c.get("state_size", 128),
                d_conv=c.get("conv_kernel", 4), expand=expand, headdim=hd, n_groups=c.get("n_groups", 1),
                d_inner=(c["num_heads"] * hd) if c.get("num_heads") else None,
                chunk_size=c.get("chunk_size", 256), vocab_size=c.get("vocab_size", 50280), lm_head=True)


def _jamba(c: dict, where: str) -> dict:
    out = _llama(c, where)
    d = out["d_model"]
    out.update(kind="hybrid", family="jamba", position="none", n_experts=c.get("num_experts", 16),
               top_k=c.get("num_experts_per_tok", 2), attn_every=c.get("attn_layer_period", 8),
               attn_offset=c.get("attn_layer_offset", 4), moe_every=c.get("expert_layer_period", 2),
               moe_offset=c.get("expert_layer_offset", 1), mamba_d_state=c.get("mamba_d_state", 16),
               mamba_d_conv=c.get("mamba_d_conv", 4), mamba_expand=c.get("mamba_expand", 2),
               mamba_dt_rank=_dt_rank(c, d))
    return out


CONVERTERS: dict[str, Callable[[dict, str], dict]] = {
    "mixtral": _mixtral, "mamba": _mamba, "mamba2": _mamba2, "jamba": _jamba,
    "llama": _llama, "mistral": _llama, "qwen2": _llama,
    "gpt2": _gpt2,
    "opt": _opt,
    "bert": _bert, "roberta": _bert,
}


def register_hf(model_type: str, fn: Callable[[dict, str], dict]) -> None:
    CONVERTERS[model_type] = fn


def from_hf_config(cfg: dict, where: str = "config.json") -> dict:
    if not isinstance(cfg, dict):
        raise WorkloadError([("config.json", "expected a JSON object")], source=where)
    mt = cfg.get("model_type")
    if mt is None:
        raise WorkloadError([("config.json.model_type", "required field missing")], source=where)
    if mt not in CONVERTERS:
        raise WorkloadError([("config.json.model_type",
                              f"unsupported model_type {mt!r}; supported: {', '.join(sorted(CONVERTERS))}")],
                            source=where)
    out = CONVERTERS[mt](cfg, where)
    out["name"] = cfg.get("_name_or_path") or cfg.get("name") or mt
    out["source"] = where
    return {k: v for k, v in out.items() if v is not None}
