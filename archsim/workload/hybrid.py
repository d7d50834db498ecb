"""Hybrid attention / state-space models (Jamba: Lieber et al., 2024).

Layer i mixes tokens with attention when ``i % attn_every == attn_offset`` and with a Mamba
block otherwise; its FFN is a mixture of experts when ``i % moe_every == moe_offset`` and
dense otherwise. Identical (mixer, FFN) layer kinds are built once and repeated. Decode
reads the KV cache in the attention layers and the constant-size SSM state in the Mamba
layers.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from archsim.config.types import Precision
from archsim.workload.graph import GraphBuilder, LayerGroup, Workload
from archsim.workload.moe import MoESpec, add_ffn, layer_plan
from archsim.workload.ssm import MambaDims, add_mamba_block
from archsim.workload.transformer import add_attention_block, add_head, embed, token_rows


class HybridSpec(MoESpec):
    """Attention every ``attn_every`` layers, Mamba elsewhere; MoE every ``moe_every`` layers."""

    kind: Literal["hybrid"] = "hybrid"  # type: ignore[assignment]
    family: str = "jamba"
    position: Literal["learned", "rope", "alibi", "none"] = "none"
    attn_every: PositiveInt = Field(8, description="an attention layer every k layers")
    attn_offset: NonNegativeInt = Field(4, description="index of the first attention layer mod attn_every")
    moe_every: PositiveInt = Field(2, description="an MoE FFN every k layers")
    moe_offset: NonNegativeInt = Field(1, description="index of the first MoE layer mod moe_every")
    mamba_variant: Literal["mamba", "mamba2"] = "mamba"
    mamba_d_state: PositiveInt = 16
    mamba_d_conv: PositiveInt = 4
    mamba_expand: PositiveInt = 2
    mamba_dt_rank: Optional[PositiveInt] = Field(None, description="default ceil(d_model / 16)")
    mamba_headdim: PositiveInt = 64
    mamba_n_groups: PositiveInt = 1
    mamba_chunk: PositiveInt = 256
    state_precision: Optional[Precision] = None

    @model_validator(mode="after")
    def _check_hybrid(self):
        if self.mamba_variant == "mamba2" and (self.mamba_expand * self.d_model) % self.mamba_headdim:
            raise ValueError("mamba_expand * d_model must be a multiple of mamba_headdim")
        return self

    def is_attn_layer(self, i: int) -> bool:
        return i % self.attn_every == self.attn_offset % self.attn_every

    def mamba_dims(self) -> MambaDims:
        d = self.d_model
        return MambaDims(d, self.mamba_expand * d, self.mamba_d_state, self.mamba_d_conv,
                         self.mamba_dt_rank or -(-d // 16), self.mamba_variant, self.mamba_headdim,
                         self.mamba_n_groups, self.mamba_chunk)


def build_hybrid(s: HybridSpec, default_precision: str, all_layers: bool = False) -> Workload:
    gb = GraphBuilder()
    T = token_rows(s)
    x = embed(gb, s, default_precision, T)
    groups = [LayerGroup("embed", 1)]
    mixer = lambda i: "attn" if s.is_attn_layer(i) else "mamba"  # noqa: E731
    ffn = lambda i: "moe" if s.is_moe_layer(i) else "dense"  # noqa: E731
    if all_layers:
        build = [(f"block{i}", [i], mixer(i), ffn(i)) for i in range(s.n_layers)]
    else:
        build = [(kind.replace("+", "_"), idx, *kind.split("+")) for kind, idx in
                 layer_plan(s, s.n_layers, ffn, mixer)]
    m = s.mamba_dims()
    info = {"routing_counts": {}, "dropped_tokens": {}, "layer_kinds": {}}
    for name, idx, mx, ff in build:
        groups.append(LayerGroup(name, len(idx)))
        info["layer_kinds"][name] = {"mixer": mx, "ffn": ff, "layers": idx}
        if mx == "attn":
            x = add_attention_block(gb, s, name, x, default_precision, f"{name}")
        else:
            x = add_mamba_block(gb, s, m, name, x, default_precision, f"{name}.mamba")
        x = add_ffn(gb, s, name, x, default_precision, ff, T, idx[0], all_layers, info)
    add_head(gb, s, x, default_precision, T)
    groups.append(LayerGroup("head", 1))
    return Workload(s.name, gb.g, groups, s.phase, s.batch, s.seq_len, s.kv_len, s.batch,
                    spec=dict(s.model_dump(), **info))
