"""Precision and quantisation: recipes (W8A8, W4A16, KV-int8, ...) and shared-scale overheads.

A recipe fills the unset fields of a workload's ``precision`` (explicit fields win) and sets
the scale groups of the quantised tensors, so every tensor's ``nbytes`` / ``bytes_per_element``
(:class:`archsim.workload.graph.Tensor`) includes its scales:

===========  =====================================================================================
recipe       meaning (source)
===========  =====================================================================================
``w8a8``     int8 weights (one scale per output channel), int8 activations (one per token);
             SmoothQuant, Xiao et al., ICML 2023. Per-channel scales: negligible bytes.
``w4a16``    int4 weights, groups of 128 with an fp16 scale and a 4-bit zero point (20 bits per
             group), fp16 activations; GPTQ (Frantar et al., ICLR 2023), AWQ (Lin et al., MLSys 2024).
``w4a8``     int4 weights (group 128, as w4a16), int8 activations; QServe (Lin et al., 2024).
``kv_int8``  int8 KV cache with an fp16 scale per token and head (group = head_dim);
             KIVI / KVQuant-style per-token quantisation.
``kv_fp8``   fp8 KV cache, one scale per tensor (vLLM fp8 KV cache).
``fp8``      fp8 weights and activations, per-tensor scales (Micikevicius et al., 2022).
``mxfp8``    MXFP8 weights and activations (OCP MX v1.0: 32 elements share an 8-bit exponent).
``mxfp4``    MXFP4 weights (same block format), activations unchanged.
``attn_fp8`` FP8 attention (QK^T, softmax, SV) over an fp8 KV cache: FP8 FMHA kernels
             (TensorRT-LLM use_fp8_context_fmha, FlashAttention-3 FP8); without it attention
             runs at 16 bits whatever the activations.
===========  =====================================================================================

Recipes combine with ``+`` (``w4a16+kv_int8``). MX block formats always carry one 8-bit shared
exponent per 32 elements (set in the Tensor itself).
"""
from __future__ import annotations

from dataclasses import replace

from archsim.config.types import PRECISION_BITS

#: recipe -> precision fields it sets (weights, activations, kv_cache, group_size, scale_bits)
RECIPES: dict[str, dict] = {
    "w8a8": dict(weights="int8", activations="int8"),
    "w4a16": dict(weights="int4", activations="fp16", group_size=128, scale_bits=20),
    "w4a8": dict(weights="int4", activations="int8", group_size=128, scale_bits=20),
    "kv_int8": dict(kv_cache="int8", kv_group="head_dim", kv_scale_bits=16),
    "kv_fp8": dict(kv_cache="fp8"),
    "fp8": dict(weights="fp8", activations="fp8"),
    "mxfp8": dict(weights="mxfp8", activations="mxfp8"),
    "mxfp4": dict(weights="mxfp4"),
    "attn_fp8": dict(attention="fp8", kv_cache="fp8"),
}

INT_FORMATS = ("int4", "int8", "int16", "int32")


def check_recipe(text: str) -> list[str]:
    """The recipe names of ``text`` (``a+b``); ValueError naming the unknown ones."""
    parts = [p.strip() for p in str(text).split("+") if p.strip()]
    bad = [p for p in parts if p not in RECIPES]
    if bad or not parts:
        from archsim.errors import did_you_mean
        hint = did_you_mean(bad[0], RECIPES) if bad else ""
        raise ValueError(f"unknown quantisation recipe {bad[0] if bad else text!r}{hint}; "
                         f"known: {', '.join(RECIPES)} (combine with '+')")
    return parts


def resolve(spec):
    """The spec with its recipe applied to the unset precision fields (a copy)."""
    q = getattr(spec, "quant", None)
    if not q:
        return spec
    p = spec.precision
    upd: dict = {}
    for name in check_recipe(q):
        for k, v in RECIPES[name].items():
            if k in ("weights", "activations", "kv_cache", "attention"):
                if getattr(p, k) is None and k not in upd:
                    upd[k] = v
            elif k == "group_size":
                if p.group_size is None and "group_size" not in upd:
                    upd["group_size"] = v
                    upd["scale_bits"] = RECIPES[name].get("scale_bits", p.scale_bits)
    new_p = p.model_copy(update=upd)
    return spec.model_copy(update={"precision": new_p})


def kv_scaled(spec) -> tuple[int, int]:
    """(group, bits) of KV-cache scales: group 0 = head_dim of the model (resolved by caller)."""
    q = getattr(spec, "quant", None)
    if q and "kv_int8" in check_recipe(q):
        return -1, RECIPES["kv_int8"]["kv_scale_bits"]
    return 0, 0


def _rescale(t, w_group, w_bits, kv_group, kv_bits):
    if t.scale_group:
        return t
    if t.kind == "weight" and t.dtype in INT_FORMATS and w_group:
        return replace(t, scale_group=int(w_group), scale_bits=int(w_bits))
    if t.kind == "kv_cache" and t.dtype in INT_FORMATS and kv_group:
        return replace(t, scale_group=int(kv_group), scale_bits=int(kv_bits))
    return t


def apply_scales(wl, spec) -> None:
    """Set the scale groups of quantised weights and KV tensors in the graph (in place)."""
    from archsim.workload.graph import GemmOp
    p = spec.precision
    w_group, w_bits = (p.group_size, p.scale_bits) if p.group_size else (0, 0)
    kv_group, kv_bits = kv_scaled(spec)
    if kv_group < 0:
        hd = getattr(spec, "hd", None)
        kv_group = int(hd) if hd else 128
    if not (w_group or kv_group):
        return
    for n in wl.graph.nodes:
        op = wl.graph.nodes[n]["op"]
        if isinstance(op, GemmOp):
            op.a = _rescale(op.a, w_group, w_bits, kv_group, kv_bits)
            op.b = _rescale(op.b, w_group, w_bits, kv_group, kv_bits)
            op.c = _rescale(op.c, w_group, w_bits, kv_group, kv_bits)
        else:
            op.inputs = tuple(_rescale(t, w_group, w_bits, kv_group, kv_bits) for t in op.inputs)
            op.outputs = tuple(_rescale(t, w_group, w_bits, kv_group, kv_bits) for t in op.outputs)


def mac_precision(a_dtype: str, b_dtype: str) -> str:
    """Precision a MAC runs at for operands of these precisions: integer x integer runs at the
    wider integer; with a floating-point operand the integer one is dequantised first (W4A16
    runs fp16 MACs); otherwise the wider format."""
    a_int, b_int = a_dtype in INT_FORMATS, b_dtype in INT_FORMATS
    if a_int and b_int:
        return a_dtype if PRECISION_BITS[a_dtype] >= PRECISION_BITS[b_dtype] else b_dtype
    if a_int != b_int:
        return b_dtype if a_int else a_dtype
    return a_dtype if PRECISION_BITS[a_dtype] >= PRECISION_BITS[b_dtype] else b_dtype


def expand_overrides(overrides: list[str]) -> list[str]:
    """``quant=<recipe>`` given as an override replaces the file's precision: it is followed by
    the recipe's precision fields (later explicit ``precision.*`` overrides still win)."""
    out = []
    for ov in overrides:
        out.append(ov)
        key, _, val = ov.partition("=")
        if key.strip() != "quant" or not val.strip():
            continue
        try:
            names = check_recipe(val.strip())
        except ValueError:
            continue                      # reported by the spec validation, naming the field
        for name in names:
            for k, v in RECIPES[name].items():
                if k in ("weights", "activations", "kv_cache", "group_size", "scale_bits"):
                    out.append(f"precision.{k}={v}")
    return out
