"""Dense transformer op graphs: decoder/encoder, MHA/GQA/MQA, LayerNorm/RMSNorm,
GELU/SwiGLU MLPs, prefill and decode (with explicit KV-cache reads and appends)."""
from __future__ import annotations

from archsim.config.types import PRECISION_BITS
from archsim.isa import VecKind
from archsim.workload.graph import GemmOp, GraphBuilder, LayerGroup, Tensor, VectorOp, Workload
from archsim.workload.spec import TransformerSpec


def dtypes(spec, default: str) -> tuple[str, str, str]:
    p = spec.precision
    w = p.weights or default
    a = p.activations or default
    kv = p.kv_cache or a
    return w, a, kv


def norm_kind_of(s) -> VecKind:
    """The model's norm: RMSNorm or LayerNorm (RMSNorm when the spec names none)."""
    return VecKind.RMSNORM if getattr(s, "norm", "rmsnorm") == "rmsnorm" else VecKind.LAYERNORM


def token_rows(s) -> int:
    """Token rows of a pass: the batch in decode, batch x prompt in prefill."""
    return s.batch * (1 if s.phase == "decode" else s.seq_len)


def stream_dtype(spec, default: str) -> str:
    """The precision of the activations that are not a linear layer's input (the residual stream,
    GEMM outputs, norm and activation-function inputs): the activations', but never narrower than
    the hardware's default. Quantised activations (W8A8, FP8) are the inputs of the linear layers,
    written in 8 bits by the kernel that produces them; the GEMMs dequantise their outputs
    (TensorRT-LLM, vLLM, FasterTransformer SmoothQuant). ``precision.stream`` sets it outright."""
    if spec.precision.stream:
        return spec.precision.stream
    a = spec.precision.activations or default
    return a if PRECISION_BITS[a] >= PRECISION_BITS[default] else default


def attention_dtype(spec, default: str) -> str:
    """The precision attention computes in: ``precision.attention``, else the stream precision.
    FP8 / INT8 inference quantises the inputs of the linear layers; the attention kernels
    dequantise an 8-bit KV cache on load and do QK^T and SV in 16 bits unless an FP8 attention
    kernel is enabled explicitly."""
    return spec.precision.attention or stream_dtype(spec, default)


def add_attention_block(gb: GraphBuilder, s: TransformerSpec, layer: str, x: Tensor, default: str,
                        prefix: str, normed: Tensor | None = None, residual: bool = True) -> Tensor:
    """Norm, QKV, attention (with KV cache), output projection, residual. Returns the output
    (``normed``: the layer's norm output, already computed; ``residual=False``: the projection)."""
    w, a, kvt = dtypes(s, default)
    at = attention_dtype(s, default)
    st = stream_dtype(s, default)
    B, d, h, kvh, hd = s.batch, s.d_model, s.n_heads, s.kv_heads, s.hd
    grp = h // kvh
    decode = s.phase == "decode"
    q = 1 if decode else s.seq_len                      # query tokens per request
    ctx = (s.kv_len + 1) if decode else s.seq_len       # keys attended per query
    T = B * q
    norm_kind = norm_kind_of(s)
    xn = normed
    if xn is None:
        xn = Tensor(f"{prefix}.attn_norm.out", (T, d), a)
        gb.add(VectorOp(f"{prefix}.attn_norm", layer, norm_kind, T, d, (x,), (xn,), role="norm"))
    nqkv = (h + 2 * kvh) * hd
    qkv = Tensor(f"{prefix}.qkv.out", (T, nqkv), at)
    gb.add(GemmOp(f"{prefix}.qkv", layer, T, nqkv, d, xn, Tensor(f"{prefix}.qkv.w", (d, nqkv), w, "weight"),
                  qkv, role="fc"))
    cur = qkv
    if s.position == "rope":
        qr = Tensor(f"{prefix}.rope.out", (T, (h + kvh) * hd), at)
        gb.add(VectorOp(f"{prefix}.rope", layer, VecKind.ROPE, T, (h + kvh) * hd, (qkv,), (qr,), role="rope"))
        cur = qr
    # K/V of the new tokens go to the cache (explicit append); decode then reads the cache
    kv_new = Tensor(f"{prefix}.kv_append", (B, q, 2 * kvh * hd), kvt, "kv_cache")
    gb.add(VectorOp(f"{prefix}.kv_write", layer, VecKind.COPY, T, 2 * kvh * hd, (cur,), (kv_new,),
                    role="kv_write"))
    # attn_rows: query rows per request; causal: a decoder's prompt attends to earlier positions
    # only (kernels that skip masked tiles use it; the op's MACs stay the full rectangle)
    attrs = {"attn_rows": q, "causal": getattr(s, "arch", "decoder") == "decoder" and not decode}
    if s.attention == "flash" and not decode:
        attrs["fused"] = True
    if decode:
        kc = Tensor(f"{prefix}.k_cache", (B, kvh, hd, ctx), kvt, "kv_cache")
        vc = Tensor(f"{prefix}.v_cache", (B, kvh, ctx, hd), kvt, "kv_cache")
    else:
        kc = Tensor(f"{prefix}.k", (B, kvh, hd, ctx), at)
        vc = Tensor(f"{prefix}.v", (B, kvh, ctx, hd), at)
    # one GEMM per (request, KV head); the query heads of a group share K/V (GQA/MQA)
    scores = Tensor(f"{prefix}.scores", (B * kvh, grp * q, ctx), at)
    gb.add(GemmOp(f"{prefix}.qk", layer, grp * q, ctx, hd, cur, kc, scores,
                  count=B * kvh, role="attn_qk", attrs=dict(attrs)))
    probs = Tensor(f"{prefix}.probs", (B * kvh, grp * q, ctx), at)
    gb.add(VectorOp(f"{prefix}.softmax", layer, VecKind.SOFTMAX, B * h * q, ctx, (scores,), (probs,),
                    role="softmax", attrs=dict(attrs)))
    attn = Tensor(f"{prefix}.attn.out", (T, h * hd), a)
    gb.add(GemmOp(f"{prefix}.sv", layer, grp * q, hd, ctx, probs, vc, attn, count=B * kvh,
                  role="attn_sv", attrs=dict(attrs)))
    o = Tensor(f"{prefix}.o.out", (T, d), st)
    gb.add(GemmOp(f"{prefix}.o", layer, T, d, h * hd, attn, Tensor(f"{prefix}.o.w", (h * hd, d), w, "weight"),
                  o, role="fc"))
    if not residual:
        return o
    r = Tensor(f"{prefix}.attn_res", (T, d), st)
    gb.add(VectorOp(f"{prefix}.attn_add", layer, VecKind.ADD, T, d, (o, x), (r,), role="residual"))
    return r


def add_mlp_block(gb: GraphBuilder, s, layer: str, x: Tensor, default: str, prefix: str,
                  d_ff: int | None = None, tokens: int | None = None, mlp: str | None = None,
                  norm: bool = True, residual: bool = True) -> Tensor:
    """Norm, up (and gate), activation, down, residual."""
    w, a, _ = dtypes(s, default)
    st = stream_dtype(s, default)
    d = s.d_model
    ff = d_ff or s.d_ff
    T = tokens if tokens is not None else token_rows(s)
    mlp = mlp or s.mlp
    inp = x
    if norm:
        norm_kind = norm_kind_of(s)
        inp = Tensor(f"{prefix}.mlp_norm.out", (T, d), a)
        gb.add(VectorOp(f"{prefix}.mlp_norm", layer, norm_kind, T, d, (x,), (inp,), role="norm"))
    gated = mlp in ("swiglu", "geglu")
    nup = 2 * ff if gated else ff
    up = Tensor(f"{prefix}.up.out", (T, nup), st)
    gb.add(GemmOp(f"{prefix}.up", layer, T, nup, d, inp, Tensor(f"{prefix}.up.w", (d, nup), w, "weight"),
                  up, role="fc"))
    act = Tensor(f"{prefix}.act.out", (T, ff), st if gated else a)   # a down-GEMM input unless gated
    kind = {"gelu": VecKind.GELU, "relu": VecKind.RELU, "swiglu": VecKind.SILU, "geglu": VecKind.GELU}[mlp]
    gb.add(VectorOp(f"{prefix}.act", layer, kind, T, ff, (up,), (act,), role="activation"))
    if gated:
        g = Tensor(f"{prefix}.gate_mul.out", (T, ff), a)
        gb.add(VectorOp(f"{prefix}.gate_mul", layer, VecKind.MUL, T, ff, (act,), (g,), role="gate"))
        act = g
    dn = Tensor(f"{prefix}.down.out", (T, d), st)
    gb.add(GemmOp(f"{prefix}.down", layer, T, d, ff, act, Tensor(f"{prefix}.down.w", (ff, d), w, "weight"),
                  dn, role="fc"))
    if not residual:
        return dn
    r = Tensor(f"{prefix}.mlp_res", (T, d), st)
    gb.add(VectorOp(f"{prefix}.mlp_add", layer, VecKind.ADD, T, d, (dn, x), (r,), role="residual"))
    return r


def add_parallel_block(gb: GraphBuilder, s, layer: str, x: Tensor, default: str, prefix: str) -> Tensor:
    """GPT-J / GPT-NeoX / Falcon layer: one norm feeds attention and the MLP side by side; their
    outputs and the input add into one residual."""
    _, a, _ = dtypes(s, default)
    T = token_rows(s)
    d = s.d_model
    norm_kind = norm_kind_of(s)
    xn = Tensor(f"{prefix}.norm.out", (T, d), a)
    gb.add(VectorOp(f"{prefix}.norm", layer, norm_kind, T, d, (x,), (xn,), role="norm"))
    o = add_attention_block(gb, s, layer, x, default, prefix, normed=xn, residual=False)
    dn = add_mlp_block(gb, s, layer, xn, default, prefix, norm=False, residual=False)
    r = Tensor(f"{prefix}.res", (T, d), stream_dtype(s, default))
    gb.add(VectorOp(f"{prefix}.res_add", layer, VecKind.ADD, T, d, (o, dn, x), (r,), role="residual"))
    return r


def add_head(gb: GraphBuilder, s, x: Tensor, default: str, T: int) -> None:
    """Final norm and (for decoders) the LM head on the last token of each request."""
    w, a, _ = dtypes(s, default)
    d = s.d_model
    norm_kind = norm_kind_of(s)
    xn = Tensor("head.norm.out", (T, d), a)
    gb.add(VectorOp("head.norm", "head", norm_kind, T, d, (x,), (xn,), role="norm"))
    if s.lm_head and getattr(s, "arch", "decoder") == "decoder":
        B = s.batch
        logits = Tensor("head.logits", (B, s.vocab_size), stream_dtype(s, default), "state")
        gb.add(GemmOp("head.lm_head", "head", B, s.vocab_size, d, xn,
                      Tensor("head.lm_head.w", (d, s.vocab_size), w, "weight"), logits, role="lm_head"))


def embed(gb: GraphBuilder, s, default: str, T: int) -> Tensor:
    """Token embedding lookup: T rows of d_model gathered from the embedding table."""
    w, _, _ = dtypes(s, default)
    table = Tensor("embed.table_rows", (T, s.d_model), w, "weight")
    x = Tensor("embed.out", (T, s.d_model), stream_dtype(s, default))
    # the op reads T rows; the memory holds the whole table (Workload.stored_tensors)
    whole = Tensor("embed.table", (s.vocab_size, s.d_model), w, "weight")
    gb.add(VectorOp("embed.lookup", "embed", VecKind.COPY, T, s.d_model, (table,), (x,), role="embedding",
                    attrs={"gathers_from": whole}))
    return x


def build_transformer(s: TransformerSpec, default_precision: str, all_layers: bool = False) -> Workload:
    gb = GraphBuilder()
    T = token_rows(s)
    x = embed(gb, s, default_precision, T)
    groups = [LayerGroup("embed", 1)]
    n_build = s.n_layers if all_layers else 1
    for i in range(n_build):
        layer = f"block{i}" if all_layers else "block"
        groups.append(LayerGroup(layer, 1 if all_layers else s.n_layers))
        if s.parallel_block:
            x = add_parallel_block(gb, s, layer, x, default_precision, f"{layer}")
        else:
            x = add_attention_block(gb, s, layer, x, default_precision, f"{layer}")
            x = add_mlp_block(gb, s, layer, x, default_precision, f"{layer}")
    add_head(gb, s, x, default_precision, T)
    groups.append(LayerGroup("head", 1))
    tokens = s.batch if s.arch == "decoder" else 0
    return Workload(s.name, gb.g, groups, s.phase, s.batch, s.seq_len, s.kv_len, tokens,
                    spec=s.model_dump())
