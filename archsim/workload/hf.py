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


def _llama(c: dict, where: str) -> dict:
    d = _need(c, where, "hidden_size")
    h = _need(c, where, "num_attention_heads")
    return dict(kind="transformer", family=c.get("model_type", "llama"), arch="decoder", d_model=d,
                n_layers=_need(c, where, "num_hidden_layers"), n_heads=h,
                n_kv_heads=c.get("num_key_value_heads") or h, head_dim=c.get("head_dim") or None,
                d_ff=_need(c, where, "intermediate_size"), vocab_size=c.get("vocab_size", 32000),
                max_seq_len=c.get("max_position_embeddings", 4096), norm="rmsnorm", mlp="swiglu",
                position="rope", lm_head=True)


def _gpt2(c: dict, where: str) -> dict:
    d = _need(c, where, "n_embd", "hidden_size")
    return dict(kind="transformer", family="gpt2", arch="decoder", d_model=d,
                n_layers=_need(c, where, "n_layer", "num_hidden_layers"),
                n_heads=_need(c, where, "n_head", "num_attention_heads"),
                d_ff=c.get("n_inner") or 4 * d, vocab_size=c.get("vocab_size", 50257),
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


CONVERTERS: dict[str, Callable[[dict, str], dict]] = {
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
