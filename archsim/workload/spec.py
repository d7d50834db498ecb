"""Pydantic models of workload descriptions (YAML under workloads/)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, PositiveInt, model_validator

from archsim.config.types import Precision, Strict


class PrecisionSpec(Strict):
    """Per-tensor precision; unset fields take the hardware's default precision."""

    weights: Optional[Precision] = None
    activations: Optional[Precision] = None
    kv_cache: Optional[Precision] = None


class RunFields(Strict):
    """Fields every workload has: what to run."""

    name: str = "workload"
    phase: Literal["prefill", "decode"] = Field("prefill", description="prefill or decode")
    batch: PositiveInt = Field(1, description="requests in the batch")
    seq_len: PositiveInt = Field(128, description="prompt tokens per request (prefill)")
    kv_len: int = Field(0, ge=0, description="tokens already in the KV cache (decode)")
    precision: PrecisionSpec = Field(default_factory=PrecisionSpec)
    source: Optional[str] = Field(None, description="where the model dimensions come from")


class TransformerSpec(RunFields):
    """A dense transformer (decoder-only or encoder-only)."""

    kind: Literal["transformer"] = "transformer"
    family: str = Field("gpt", description="model family (gpt2, llama, opt, bert, gpt3, ...)")
    arch: Literal["decoder", "encoder"] = "decoder"
    d_model: PositiveInt
    n_layers: PositiveInt
    n_heads: PositiveInt
    n_kv_heads: Optional[PositiveInt] = Field(None, description="KV heads (GQA/MQA); default n_heads")
    head_dim: Optional[PositiveInt] = Field(None, description="default d_model / n_heads")
    d_ff: PositiveInt
    vocab_size: PositiveInt = 32000
    max_seq_len: PositiveInt = 2048
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"
    mlp: Literal["gelu", "swiglu", "relu", "geglu"] = "gelu"
    position: Literal["learned", "rope", "alibi", "none"] = "learned"
    lm_head: bool = True
    attention: Literal["standard", "flash"] = Field("standard", description="attention lowering")

    @model_validator(mode="after")
    def _check(self):
        kv = self.n_kv_heads or self.n_heads
        if self.n_heads % kv:
            raise ValueError(f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({kv})")
        if self.head_dim is None and self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) is not divisible by n_heads ({self.n_heads}); "
                             "set head_dim")
        if self.arch == "encoder" and self.phase == "decode":
            raise ValueError("an encoder-only model has no decode phase")
        return self

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def hd(self) -> int:
        return self.head_dim or self.d_model // self.n_heads


class GemmSpec(RunFields):
    """One GEMM C[M,N] = A[M,K] @ B[K,N] (B a weight), for micro-benchmarks."""

    kind: Literal["gemm"] = "gemm"
    M: PositiveInt
    N: PositiveInt
    K: PositiveInt
    count: PositiveInt = Field(1, description="independent GEMMs of this shape")
    a_offchip: bool = Field(True, description="A is read from off-chip memory")
    c_offchip: bool = Field(True, description="C is written to off-chip memory")
