"""State-space models: Mamba (selective scan, Gu & Dao 2023) and Mamba-2 (SSD, Dao & Gu 2024).

Mamba block (per layer, T = batch x tokens, d_inner = expand x d_model, N = d_state,
R = dt_rank):

- RMSNorm; ``in_proj`` GEMM [T, 2 d_inner] (x and gate z);
- causal depthwise ``conv1d`` over x (d_conv taps; decode reads and rewrites the conv state
  [B, d_inner, d_conv-1]); SiLU;
- ``x_proj`` GEMM [T, R + 2N] (dt, B, C); ``dt_proj`` GEMM [T, d_inner]; softplus;
- selective scan: per channel d and state n, with discretisation dA = exp(dt A),
  dB = dt B: ``h_t = dA h_{t-1} + dB x_t``, ``y_t = C_t h_t`` (+ D x_t), on the vector unit
  (``VecKind.SCAN``, one element = one (t, d, n) update). Prefill runs a chunked scan:
  ``ceil(L / scan_chunk)`` scan ops, each depending on the previous chunk's final state (the
  sequential dependency is explicit in the graph; channels run in parallel across lanes).
  Decode runs one step that reads and writes the SSM state [B, d_inner, N] (``kind="state"``,
  off-chip like a KV cache but constant in sequence length);
- gating y * SiLU(z); ``out_proj`` GEMM [T, d_model]; residual.

Mamba-2 replaces the scan by the chunked SSD matrix form (chunk Q, H = d_inner / headdim
heads, G groups of B/C): per chunk ``C B^T`` [Q, Q] (GEMM), the decay mask
``L = exp(segsum(dt A))`` applied to it (vector), intra-chunk ``(C B^T o L) X`` (GEMM), chunk
states ``B^T (decay o X)`` (GEMM), the inter-chunk state recurrence (vector scan, sequential
over chunks) and the state contribution ``C h`` (GEMM). Decode is a one-step state update per
head ([B, H, headdim, N] state).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Optional

from pydantic import Field, PositiveInt, model_validator

from archsim.config.types import Precision
from archsim.isa import VecKind
from archsim.workload.graph import GemmOp, GraphBuilder, LayerGroup, Tensor, VectorOp, Workload
from archsim.workload.spec import RunFields
from archsim.workload.transformer import add_head, dtypes, embed, norm_kind_of, token_rows


class SSMSpec(RunFields):
    """A pure state-space language model (Mamba or Mamba-2 blocks)."""

    kind: Literal["mamba"] = "mamba"
    family: str = "mamba"
    variant: Literal["mamba", "mamba2"] = Field("mamba", description="mamba (selective scan) or mamba2 (SSD)")
    d_model: PositiveInt
    n_layers: PositiveInt
    d_state: PositiveInt = Field(16, description="SSM state size N per channel")
    d_conv: PositiveInt = Field(4, description="causal conv1d taps")
    expand: PositiveInt = Field(2, description="d_inner = expand * d_model")
    d_inner: Optional[PositiveInt] = Field(None, description="default expand * d_model")
    dt_rank: Optional[PositiveInt] = Field(None, description="Mamba: default ceil(d_model / 16)")
    headdim: PositiveInt = Field(64, description="Mamba-2: channels per head")
    n_groups: PositiveInt = Field(1, description="Mamba-2: groups sharing B and C")
    chunk_size: PositiveInt = Field(256, description="Mamba-2 SSD chunk; Mamba scan chunk (prefill)")
    vocab_size: PositiveInt = 50280
    max_seq_len: PositiveInt = 1048576
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    lm_head: bool = True
    state_precision: Optional[Precision] = Field(None, description="SSM/conv state; default kv_cache or "
                                                 "activation precision")
    arch: Literal["decoder"] = "decoder"

    @model_validator(mode="after")
    def _check_ssm(self):
        if self.variant == "mamba2" and self.di % self.headdim:
            raise ValueError(f"d_inner ({self.di}) is not a multiple of headdim ({self.headdim})")
        return self

    @property
    def di(self) -> int:
        return self.d_inner or self.expand * self.d_model

    @property
    def R(self) -> int:
        return self.dt_rank or math.ceil(self.d_model / 16)


@dataclass(frozen=True)
class MambaDims:
    d_model: int
    d_inner: int
    d_state: int
    d_conv: int
    dt_rank: int
    variant: str = "mamba"
    headdim: int = 64
    n_groups: int = 1
    chunk: int = 256

    @property
    def n_heads(self) -> int:
        return self.d_inner // self.headdim


def dims_of(s: SSMSpec) -> MambaDims:
    return MambaDims(s.d_model, s.di, s.d_state, s.d_conv, s.R, s.variant, s.headdim, s.n_groups,
                     s.chunk_size)


def layer_weight_elements(m: MambaDims) -> dict[str, int]:
    """Parameters of one block by tensor (biases included), for analytic checks."""
    D, di, N, R, K = m.d_model, m.d_inner, m.d_state, m.dt_rank, m.d_conv
    if m.variant == "mamba":
        return dict(norm=D, in_proj=D * 2 * di, conv=di * K + di, x_proj=di * (R + 2 * N),
                    dt_proj=R * di + di, A=di * N, D=di, out_proj=di * D)
    H, G = m.n_heads, m.n_groups
    conv_dim = di + 2 * G * N
    return dict(norm=D, in_proj=D * (2 * di + 2 * G * N + H), conv=conv_dim * K + conv_dim,
                dt_bias=H, A=H, D=H, gate_norm=di, out_proj=di * D)


def add_mamba_block(gb: GraphBuilder, s, m: MambaDims, layer: str, x: Tensor, default: str, prefix: str,
                    state_dtype: Optional[str] = None) -> Tensor:
    w, a, kv = dtypes(s, default)
    st = state_dtype or getattr(s, "state_precision", None) or kv
    decode = s.phase == "decode"
    B = s.batch
    L = 1 if decode else s.seq_len
    T = B * L
    D, di, N, K = m.d_model, m.d_inner, m.d_state, m.d_conv
    norm_kind = norm_kind_of(s)
    W = lambda nm, shape: Tensor(f"{prefix}.{nm}", shape, w, "weight")  # noqa: E731
    act = lambda nm, shape: Tensor(f"{prefix}.{nm}", shape, a)  # noqa: E731
    xn = act("norm.out", (T, D))
    gb.add(VectorOp(f"{prefix}.norm", layer, norm_kind, T, D, (x,), (xn,), role="norm"))
    if m.variant == "mamba":
        n_in = 2 * di
        conv_ch = di
    else:
        H, G = m.n_heads, m.n_groups
        n_in = 2 * di + 2 * G * N + H
        conv_ch = di + 2 * G * N
    xz = act("in_proj.out", (T, n_in))
    gb.add(GemmOp(f"{prefix}.in_proj", layer, T, n_in, D, xn, W("in_proj.w", (D, n_in)), xz, role="fc"))
    # causal depthwise conv1d (+ its rolling state in decode)
    conv_in = [xz, W("conv.w", (conv_ch, K + 1))]
    conv_out = [act("conv.out", (T, conv_ch))]
    cstate_out = Tensor(f"{prefix}.conv_state.new", (B, conv_ch, K - 1), st, "state")
    if decode:
        conv_in.append(Tensor(f"{prefix}.conv_state", (B, conv_ch, K - 1), st, "state"))
    conv_out.append(cstate_out)
    gb.add(VectorOp(f"{prefix}.conv1d", layer, VecKind.CONV1D, T, conv_ch, tuple(conv_in), tuple(conv_out),
                    role="conv1d", attrs={"taps": K}))
    xc = act("conv_act.out", (T, conv_ch))
    gb.add(VectorOp(f"{prefix}.conv_act", layer, VecKind.SILU, T, conv_ch, (conv_out[0],), (xc,), role="activation"))
    state_shape = (B, di, N) if m.variant == "mamba" else (B, m.n_heads, m.headdim, N)
    state_in = Tensor(f"{prefix}.ssm_state", state_shape, st, "state")
    state_out = Tensor(f"{prefix}.ssm_state.new", state_shape, st, "state")
    if m.variant == "mamba":
        R = m.dt_rank
        xdbl = act("x_proj.out", (T, R + 2 * N))
        gb.add(GemmOp(f"{prefix}.x_proj", layer, T, R + 2 * N, di, xc, W("x_proj.w", (di, R + 2 * N)), xdbl,
                      role="fc"))
        dtr = act("dt_proj.out", (T, di))
        gb.add(GemmOp(f"{prefix}.dt_proj", layer, T, di, R, xdbl, W("dt_proj.w", (R, di)), dtr, role="fc"))
        dt = act("dt.out", (T, di))
        # softplus(dt + bias): exp, add, log per element (priced like SiLU: exp, add, div, mul)
        gb.add(VectorOp(f"{prefix}.dt_softplus", layer, VecKind.SILU, T, di, (dtr, W("dt_proj.b", (di,))), (dt,),
                        role="activation"))
        A = W("A", (di, N))
        Dp = W("D", (di,))
        y = act("scan.out", (T, di))
        if decode:
            gb.add(VectorOp(f"{prefix}.scan", layer, VecKind.SCAN, B * di, N, (xc, dt, xdbl, A, Dp, state_in),
                            (y, state_out), role="scan", attrs={"steps": 1, "state_elements": B * di * N}))
        else:
            nch = -(-L // m.chunk)
            prev = None
            for c in range(nch):
                Lc = min(m.chunk, L - c * m.chunk)
                last = c == nch - 1
                sout = state_out if last else act(f"scan{c}.state", state_shape)
                ins = (xc, dt, xdbl, A, Dp) + ((prev,) if prev is not None else ())
                gb.add(VectorOp(f"{prefix}.scan{c}" if nch > 1 else f"{prefix}.scan", layer, VecKind.SCAN,
                                B * Lc * di, N, ins, (y, sout), role="scan",
                                attrs={"steps": Lc, "chunk": c, "state_elements": B * di * N}))
                prev = sout
        ycore = y
        n_gate = di
    else:
        ycore = _ssd(gb, s, m, layer, prefix, xc, xz, T, B, L, decode, state_in, state_out, w, a)
        n_gate = di
    # y + D x was folded into the scan (Mamba) / is one multiply-add here (Mamba-2); gate by SiLU(z)
    if m.variant == "mamba2":
        yd = act("skip.out", (T, di))
        gb.add(VectorOp(f"{prefix}.skip", layer, VecKind.ADD, T, di, (ycore, W("D", (m.n_heads,))), (yd,),
                        role="residual"))
        ycore = yd
    zs = act("z_act.out", (T, n_gate))
    gb.add(VectorOp(f"{prefix}.z_act", layer, VecKind.SILU, T, n_gate, (xz,), (zs,), role="activation"))
    g = act("gate.out", (T, di))
    gb.add(VectorOp(f"{prefix}.gate", layer, VecKind.MUL, T, di, (ycore, zs), (g,), role="gate"))
    if m.variant == "mamba2":
        gn = act("gate_norm.out", (T, di))
        gb.add(VectorOp(f"{prefix}.gate_norm", layer, VecKind.RMSNORM, T, di, (g, W("gate_norm.w", (di,))), (gn,),
                        role="norm"))
        g = gn
    o = act("out_proj.out", (T, D))
    gb.add(GemmOp(f"{prefix}.out_proj", layer, T, D, di, g, W("out_proj.w", (di, D)), o, role="fc"))
    r = act("res", (T, D))
    gb.add(VectorOp(f"{prefix}.add", layer, VecKind.ADD, T, D, (o, x), (r,), role="residual"))
    return r


def _ssd(gb, s, m: MambaDims, layer, prefix, xc, xz, T, B, L, decode, state_in, state_out, w, a) -> Tensor:
    """Mamba-2 SSD core; returns y [T, d_inner]."""
    H, P, N, G = m.n_heads, m.headdim, m.d_state, m.n_groups
    di = m.d_inner
    act = lambda nm, shape: Tensor(f"{prefix}.{nm}", shape, a)  # noqa: E731
    dt = act("dt.out", (T, H))
    gb.add(VectorOp(f"{prefix}.dt_softplus", layer, VecKind.SILU, T, H,
                    (xz, Tensor(f"{prefix}.dt_bias", (H,), w, "weight")), (dt,), role="activation"))
    Alog = Tensor(f"{prefix}.A", (H,), w, "weight")
    y = act("ssd.out", (T, di))
    if decode:
        gb.add(VectorOp(f"{prefix}.ssd_step", layer, VecKind.SCAN, B * H * P, N, (xc, dt, Alog, state_in),
                        (y, state_out), role="scan", attrs={"steps": 1, "state_elements": B * H * P * N}))
        return y
    Q = min(m.chunk, L)
    nc = -(-L // Q)
    # intra-chunk: C B^T per (request, chunk, group), masked by the decay L per head
    cb = act("ssd_cb.out", (B * nc * G, Q, Q))
    gb.add(GemmOp(f"{prefix}.ssd_cb", layer, Q, Q, N, xc, act("ssd_Bt", (B * nc * G, N, Q)), cb,
                  count=B * nc * G, role="ssd", attrs={"groups": G}))
    lm = act("ssd_decay.out", (B * nc * H, Q, Q))
    gb.add(VectorOp(f"{prefix}.ssd_decay", layer, VecKind.SOFTMAX, B * nc * H * Q, Q, (cb, dt, Alog), (lm,),
                    role="ssd", attrs={"note": "segsum, exp and mask: adds, one exp, one multiply per element"}))
    ydiag = act("ssd_diag.out", (T, di))
    gb.add(GemmOp(f"{prefix}.ssd_diag", layer, Q, P, Q, lm, act("ssd_X", (B * nc * H, Q, P)), ydiag,
                  count=B * nc * H, role="ssd"))
    # chunk states: B^T (decay o X) per (request, chunk, head) -> [N, P]
    cs = act("ssd_states.out", (B * nc * H, N, P))
    gb.add(GemmOp(f"{prefix}.ssd_states", layer, N, P, Q, xc, act("ssd_Xd", (B * nc * H, Q, P)), cs,
                  count=B * nc * H, role="ssd"))
    # inter-chunk recurrence: h_c = exp(sum dt A) h_{c-1} + states_c, sequential over chunks
    prev = cs
    hs_all = act("ssd_hs", (B * nc * H, N, P))       # the state entering each chunk
    for c in range(nc):
        last = c == nc - 1
        hs = act(f"ssd_h{c}", (B, H, P, N))
        outs = (hs, state_out) if last else (hs,)
        op = gb.add(VectorOp(f"{prefix}.ssd_scan{c}" if nc > 1 else f"{prefix}.ssd_scan", layer, VecKind.SCAN,
                             B * H * P, N, (prev, Alog), outs, role="scan",
                             attrs={"steps": 1, "chunk": c, "state_elements": B * H * P * N}))
        prev = hs
    # state contribution C h per (request, chunk, head)
    yoff = act("ssd_off.out", (T, di))
    off = gb.add(GemmOp(f"{prefix}.ssd_off", layer, Q, P, N, xc, hs_all, yoff, count=B * nc * H, role="ssd"))
    gb.g.add_edge(op.name, off.name, tensor=hs_all)
    gb.add(VectorOp(f"{prefix}.ssd_sum", layer, VecKind.ADD, T, di, (ydiag, yoff), (y,), role="ssd"))
    return y


def build_ssm(s: SSMSpec, default_precision: str, all_layers: bool = False) -> Workload:
    gb = GraphBuilder()
    T = token_rows(s)
    x = embed(gb, s, default_precision, T)
    groups = [LayerGroup("embed", 1)]
    m = dims_of(s)
    n_build = s.n_layers if all_layers else 1
    for i in range(n_build):
        layer = f"block{i}" if all_layers else "block"
        groups.append(LayerGroup(layer, 1 if all_layers else s.n_layers))
        x = add_mamba_block(gb, s, m, layer, x, default_precision, layer)
    add_head(gb, s, x, default_precision, T)
    groups.append(LayerGroup("head", 1))
    return Workload(s.name, gb.g, groups, s.phase, s.batch, s.seq_len, s.kv_len, s.batch, spec=s.model_dump())
