"""Pydantic models of workload descriptions (YAML under workloads/)."""
from __future__ import annotations

from typing import Literal, Optional, Union

from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from archsim.config.types import Precision, Strict
from archsim.workload.sparsity import SparsitySpec


class PrecisionSpec(Strict):
    """Per-tensor precision; unset fields take the hardware's default precision."""

    weights: Optional[Precision] = None
    activations: Optional[Precision] = None
    kv_cache: Optional[Precision] = None
    attention: Optional[Precision] = Field(
        None, description="precision of the attention math (Q, K, V as the kernel sees them, scores, "
        "probabilities: QK^T, softmax, SV); unset: the activations', but never narrower than the "
        "hardware's default precision (quantised activations feed the linear layers; attention runs "
        "in 16 bits unless an 8-bit attention kernel is asked for with this field)")
    stream: Optional[Precision] = Field(
        None, description="precision of the activations that are not a linear layer's input (GEMM "
        "outputs, the residual stream, norm and activation-function inputs, tensor-parallel "
        "all-reduce payloads); unset: the activations', but never narrower than the hardware's "
        "default precision (quantised activations are the linear layers' inputs, GEMMs dequantise "
        "their outputs). Set it to the activations' width for models with one word size throughout")
    group_size: Optional[PositiveInt] = Field(
        None, description="elements per quantisation scale of integer weights (e.g. 128); "
        "unset: per output channel (negligible overhead)")
    scale_bits: PositiveInt = Field(16, description="bits of each quantisation scale (fp16: 16)")


class KVLenDist(Strict):
    """A distribution of per-request KV lengths for a mixed decode batch (drawn with a seed)."""

    kind: Literal["uniform", "normal", "lognormal"] = "uniform"
    low: NonNegativeInt = Field(0, description="smallest length (uniform: lower bound; others: clip)")
    high: PositiveInt = Field(4096, description="largest length (uniform: upper bound; others: clip)")
    mean: Optional[float] = Field(None, gt=0, description="normal: mean; lognormal: mean of the lengths")
    std: Optional[float] = Field(None, ge=0, description="normal: std; lognormal: std of the lengths")
    bucket: PositiveInt = Field(1, description="round lengths up to a multiple (paged KV blocks)")
    seed: NonNegativeInt = Field(0, description="seed of the drawn lengths")

    @model_validator(mode="after")
    def _check_dist(self):
        if self.high < self.low:
            raise ValueError(f"high ({self.high}) is below low ({self.low})")
        if self.kind != "uniform" and self.mean is None:
            raise ValueError(f"a {self.kind} distribution needs a mean")
        return self


class AttnSparsitySpec(Strict):
    """Static block-sparse attention masks and dynamic token/head pruning (see workload.attention)."""

    pattern: Literal["dense", "local", "longformer", "bigbird", "random"] = "dense"
    block: PositiveInt = Field(64, description="block size (tokens) of the block-sparse mask")
    window: NonNegativeInt = Field(512, description="local window in tokens (total, both sides)")
    global_tokens: NonNegativeInt = Field(0, description="leading tokens attended by and attending to all")
    random_blocks: NonNegativeInt = Field(0, description="random key blocks per query block (BigBird)")
    sparsity: float = Field(0.0, ge=0.0, lt=1.0, description="pattern 'random': fraction of blocks dropped")
    causal: Optional[bool] = Field(None, description="causal mask; default: true for decoders")
    token_keep: Union[float, list[float]] = Field(
        1.0, description="fraction of key tokens kept per layer (SpAtten cascade token pruning)")
    head_keep: Union[float, list[float]] = Field(1.0, description="fraction of heads kept per layer")
    seed: NonNegativeInt = Field(0, description="seed of the random mask")

    @field_validator("token_keep", "head_keep")
    @classmethod
    def _keep(cls, v):
        for x in (v if isinstance(v, list) else [v]):
            if not 0.0 < x <= 1.0:
                raise ValueError(f"keep ratio must be in (0, 1] (got {x})")
        return v


class RunFields(Strict):
    """Fields every workload has: what to run."""

    name: str = "workload"
    phase: Literal["prefill", "decode"] = Field("prefill", description="prefill or decode")
    batch: PositiveInt = Field(1, le=1 << 20, description="requests in the batch")
    seq_len: PositiveInt = Field(128, description="prompt tokens per request (prefill)")
    kv_len: int = Field(0, ge=0, description="tokens already in the KV cache (decode)")
    precision: PrecisionSpec = Field(default_factory=PrecisionSpec)
    source: Optional[str] = Field(None, description="where the model dimensions come from")
    sparsity: SparsitySpec = Field(default_factory=SparsitySpec)
    quant: Optional[str] = Field(None, description="quantisation recipe(s), '+'-joined: "
                                 "w8a8, w4a16, w4a8, kv_int8, kv_fp8, fp8, mxfp8, mxfp4, attn_fp8")
    kv_lens: Optional[list[NonNegativeInt]] = Field(
        None, description="decode: KV length of each request (mixed batch); length = batch")
    kv_len_dist: Optional[KVLenDist] = Field(None, description="decode: KV lengths drawn per request")

    @field_validator("quant")
    @classmethod
    def _quant(cls, v):
        if v is not None:
            from archsim.workload.quant import check_recipe
            check_recipe(v)
        return v

    @field_validator("kv_lens")
    @classmethod
    def _kv_lens(cls, v, info):
        b = info.data.get("batch")
        if v is not None and b is not None and len(v) != b:
            raise ValueError(f"{len(v)} lengths given but batch is {b}")
        return v

    @field_validator("kv_len_dist")
    @classmethod
    def _kv_dist(cls, v, info):
        if v is not None and info.data.get("kv_lens") is not None:
            raise ValueError("give kv_lens or kv_len_dist, not both")
        return v


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
    parallel_block: bool = Field(False, description=(
        "attention and MLP read one norm of the layer input and add into one residual "
        "(GPT-J, GPT-NeoX, Falcon, PaLM); false: attention, then MLP, each with its norm"))
    attn_sparsity: Optional[AttnSparsitySpec] = Field(None, description="sparse attention / pruning")

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


#: element-wise and row operators of a ``kind: vector`` workload -> (VecKind name, op role, inputs)
VECTOR_OPS = {"add": ("ADD", "residual", 2), "mul": ("MUL", "gate", 2), "softmax": ("SOFTMAX", "vector", 1),
              "layernorm": ("LAYERNORM", "norm", 1), "rmsnorm": ("RMSNORM", "norm", 1),
              "gelu": ("GELU", "activation", 1), "silu": ("SILU", "activation", 1),
              "relu": ("RELU", "activation", 1), "copy": ("COPY", "vector", 1)}


class VectorSpec(RunFields):
    """One element-wise or row operator over a rows x cols tensor (a norm or softmax works along
    each row), for micro-benchmarks of the vector datapath."""

    kind: Literal["vector"] = "vector"
    op: Literal["add", "mul", "softmax", "layernorm", "rmsnorm", "gelu", "silu", "relu", "copy"]
    rows: PositiveInt
    cols: PositiveInt
    offchip: bool = Field(True, description="inputs read from and the output written to off-chip memory")


class GemmSpec(RunFields):
    """One GEMM C[M,N] = A[M,K] @ B[K,N] (B a weight), for micro-benchmarks."""

    kind: Literal["gemm"] = "gemm"
    M: PositiveInt
    N: PositiveInt
    K: PositiveInt
    count: PositiveInt = Field(1, description="independent GEMMs of this shape")
    a_offchip: bool = Field(True, description="A is read from off-chip memory")
    c_offchip: bool = Field(True, description="C is written to off-chip memory")


def attention_heads(spec: dict) -> list[tuple[str, int, int]]:
    """(model name, query heads, KV heads) of every attention model in a built workload's spec
    (``Workload.spec``: a transformer, moe or hybrid spec; a speculative spec's draft and target)."""
    out = []
    for sub in ("draft_spec", "target_spec"):
        if isinstance(spec.get(sub), dict):
            out += attention_heads(spec[sub])
    h = spec.get("n_heads")
    if isinstance(h, int) and spec.get("kind", "transformer") in ("transformer", "moe", "hybrid"):
        out.append((str(spec.get("name", "the workload")), h, int(spec.get("n_kv_heads") or h)))
    return out


def check_tensor_parallel_heads(spec: dict, devices: int, field: str) -> None:
    """Tensor parallelism over ``devices`` gives every device whole attention heads: the degree
    must divide the query heads, and either divide the KV heads or be a multiple of them (then
    each KV head is replicated on ``devices / KV heads`` devices, as Megatron-style engines do
    for MQA and narrow GQA). :class:`LoweringError` naming ``field`` otherwise."""
    from archsim.errors import LoweringError
    T = int(devices)
    if T <= 1:
        return
    for name, h, kv in attention_heads(spec):
        if h % T or (kv % T and T % kv):
            what = f"{h} query heads" + (f" and {kv} KV heads" if kv != h else " (and as many KV heads)")
            ok = [d for d in range(1, h + 1) if h % d == 0 and (kv % d == 0 or d % kv == 0)]
            raise LoweringError(
                f"tensor parallelism over {T} devices splits the attention heads, but {name} has {what}: "
                f"{T} must divide the query heads and divide or be a multiple of the KV heads (degrees "
                f"that work: {', '.join(map(str, ok))})", path=field)
