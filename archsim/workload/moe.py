"""Mixture-of-experts transformers: router, top-k routing with a token distribution, capacity
factor and dropped tokens, E experts (SwiGLU/GELU/ReLU FFNs) and optional shared experts.

Each MoE layer is: norm -> router GEMM [T, E] -> softmax -> top-k -> dispatch (gather of the
T*k routed token rows) -> one FFN per expert with its *own* token count as GEMM M -> combine
(gate-weighted sum) -> (+ shared experts, DeepSeekMoE) -> residual. Experts with no tokens do
no work and load no weights. Expert ops carry ``attrs["expert"]`` and, when
``expert_parallel`` is on, ``attrs["array"] = expert`` (a placement hint: expert e on compute
array e mod P), so on multi-array designs the hottest expert is the critical path.

Routing (``routing``): ``balanced`` (exactly T*k/E per expert), ``uniform`` (each token draws
k distinct experts uniformly), ``zipf`` (expert i drawn with probability ~ 1/(i+1)^s),
``dirichlet`` (expert probabilities ~ Dir(alpha)), ``counts`` / ``file`` (explicit per-expert
token counts, rescaled to T*k assignments if they sum to something else) and ``single`` (every
token on experts 0..k-1: the worst skew). Draws are sampled per token without replacement
(Gumbel top-k) with the routing seed; identical layers share one draw unless every layer is
built (then layer i uses seed + i).
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt, field_validator, model_validator

from archsim.config.types import Strict
from archsim.errors import InputFileError, WorkloadError
from archsim.isa import VecKind
from archsim.workload.graph import GemmOp, GraphBuilder, LayerGroup, Tensor, VectorOp, Workload
from archsim.workload.spec import TransformerSpec
from archsim.workload.transformer import (add_attention_block, add_head, add_mlp_block, dtypes, embed, norm_kind_of,
                                          stream_dtype, token_rows)


class RoutingSpec(Strict):
    """How tokens are distributed over experts."""

    distribution: Optional[Literal["balanced", "uniform", "zipf", "dirichlet", "counts", "file", "single"]] = \
        Field(None, description="default: inferred from the parameter given, else balanced")
    zipf: Optional[float] = Field(None, ge=0, description="Zipf exponent s (expert i ~ 1/(i+1)^s)")
    alpha: Optional[float] = Field(None, gt=0, description="Dirichlet concentration")
    counts: Optional[list[NonNegativeInt]] = Field(None, description="tokens per expert")
    file: Optional[str] = Field(None, description="file of per-expert token counts (JSON/YAML list or text)")
    seed: NonNegativeInt = Field(0, description="seed of the drawn routing")

    @model_validator(mode="after")
    def _infer(self):
        given = [k for k, v in (("zipf", self.zipf), ("dirichlet", self.alpha), ("counts", self.counts),
                                ("file", self.file)) if v is not None]
        if self.distribution is None:
            if len(given) > 1:
                raise ValueError(f"conflicting routing parameters: {', '.join(given)}")
            self.distribution = given[0] if given else "balanced"
        elif any(g != self.distribution for g in given):
            raise ValueError(f"routing.distribution is {self.distribution!r} but "
                             f"{', '.join(g for g in given if g != self.distribution)} parameters are set")
        need = {"zipf": self.zipf, "dirichlet": self.alpha, "counts": self.counts, "file": self.file}
        if self.distribution in need and need[self.distribution] is None:
            par = {"dirichlet": "alpha"}.get(self.distribution, self.distribution)
            raise ValueError(f"routing distribution {self.distribution!r} needs routing.{par}")
        return self


class MoESpec(TransformerSpec):
    """A transformer whose FFNs are (partly) mixtures of experts."""

    kind: Literal["moe"] = "moe"
    n_experts: PositiveInt = Field(..., description="routed experts E")
    top_k: PositiveInt = Field(2, description="experts per token")
    d_ff_expert: Optional[PositiveInt] = Field(None, description="FFN width of one expert (default d_ff)")
    expert_mlp: Optional[Literal["gelu", "swiglu", "relu", "geglu"]] = Field(None, description="default mlp")
    n_shared_experts: NonNegativeInt = Field(0, description="always-active shared experts (DeepSeekMoE)")
    moe_every: PositiveInt = Field(1, description="an MoE FFN every k-th layer (others dense, d_ff)")
    moe_offset: NonNegativeInt = Field(0, description="first MoE layer index modulo moe_every")
    first_dense: NonNegativeInt = Field(0, description="leading layers with a dense FFN")
    capacity_factor: Optional[float] = Field(None, gt=0, description="expert capacity = ceil(cf*T*k/E); "
                                             "tokens beyond it are dropped (unset: no dropping)")
    expert_parallel: bool = Field(True, description="place expert e on compute array e mod P")
    routing: RoutingSpec = Field(default_factory=RoutingSpec)

    @field_validator("top_k")
    @classmethod
    def _top_k(cls, v, info):
        E = info.data.get("n_experts")
        if E is not None and v > E:
            raise ValueError(f"top_k ({v}) exceeds n_experts ({E})")
        return v

    @field_validator("routing")
    @classmethod
    def _routing(cls, v, info):
        E = info.data.get("n_experts")
        if E is not None and v.counts is not None and len(v.counts) != E:
            raise ValueError(f"routing.counts has {len(v.counts)} entries for {E} experts")
        return v

    @property
    def ff_expert(self) -> int:
        return self.d_ff_expert or self.d_ff

    def is_moe_layer(self, i: int) -> bool:
        return i >= self.first_dense and i % self.moe_every == self.moe_offset % self.moe_every


# -- routing -------------------------------------------------------------------------------------

def _read_counts(path: str, E: int) -> list[int]:
    p = Path(path)
    if not p.is_file():
        raise InputFileError(f"no such file: {p} (workload.routing.file)")
    from archsim.config.loader import read_text_file, yaml_load
    text = read_text_file(p, "workload.routing.file")
    try:
        if p.suffix in (".json",):
            data = json.loads(text)
        elif p.suffix in (".yaml", ".yml"):
            data = yaml_load(text)
        else:
            data = [float(x) for x in text.replace(",", " ").split()]
    except Exception as e:     # noqa: BLE001 - any parse failure is the file's fault
        raise InputFileError(f"cannot read expert token counts from {p}: {e}") from None
    if isinstance(data, dict):
        data = data.get("counts", data.get("tokens_per_expert"))
    if not isinstance(data, list) or len(data) != E or any((not isinstance(x, (int, float))) or x < 0 for x in data):
        raise WorkloadError([("workload.routing.file",
                              f"{p} must hold a list of {E} non-negative token counts")])
    return [float(x) for x in data]


def _scale_counts(c: np.ndarray, total: int, T: int) -> np.ndarray:
    """Rescale relative counts to ``total`` assignments (largest remainder). No expert can get
    more than T (a token picks an expert at most once): the excess of capped experts is spread
    over the others in proportion to their counts (water filling)."""
    c = np.asarray(c, np.float64)
    if c.sum() <= 0:
        raise WorkloadError([("workload.routing.counts", "the counts sum to zero")])
    if (c > 0).sum() * T < total:
        raise WorkloadError([("workload.routing.counts",
                              f"{int((c > 0).sum())} experts with tokens cannot take {total} assignments "
                              f"of {T} tokens (each token picks an expert at most once)")])
    if int(c.sum()) == total and np.all(c == np.floor(c)) and c.max() <= T:
        return c.astype(np.int64)
    x = c / c.sum() * total
    capped = np.zeros(len(c), bool)
    while (x > T + 1e-9).any():
        capped |= x > T
        free = total - T * capped.sum()
        w = np.where(capped, 0.0, c)
        x = np.where(capped, float(T), w / w.sum() * free)
    out = np.floor(x + 1e-9).astype(np.int64)
    rem = total - int(out.sum())
    order = np.argsort(-(x - out) + 2.0 * (out >= T), kind="stable")
    out[order[:rem]] += 1
    return out


def _gumbel_topk_counts(logp: np.ndarray, T: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """Per-expert counts when each of T tokens draws k distinct experts from softmax(logp)."""
    E = logp.shape[0]
    counts = np.zeros(E, np.int64)
    chunk = max(1, (1 << 20) // E)
    for s in range(0, T, chunk):
        n = min(chunk, T - s)
        g = logp[None, :] + rng.gumbel(size=(n, E))
        top = np.argpartition(-g, k - 1, axis=1)[:, :k] if k < E else np.tile(np.arange(E), (n, 1))
        counts += np.bincount(top.ravel(), minlength=E)
    return counts


def route(r: RoutingSpec, T: int, E: int, k: int, seed_offset: int = 0) -> np.ndarray:
    """Tokens routed to each expert (sums to T*k; each <= T)."""
    rng = np.random.default_rng(r.seed + seed_offset)
    d = r.distribution
    if d == "balanced":
        base = np.full(E, (T * k) // E, np.int64)
        base[: (T * k) % E] += 1
        return base
    if d == "single":
        out = np.zeros(E, np.int64)
        out[:k] = T
        return out
    if d == "counts":
        return _scale_counts(np.array(r.counts, np.float64), T * k, T)
    if d == "file":
        return _scale_counts(np.array(_read_counts(r.file, E)), T * k, T)
    if d == "uniform":
        logp = np.zeros(E)
    elif d == "zipf":
        logp = -r.zipf * np.log(np.arange(1, E + 1, dtype=np.float64))
    else:   # dirichlet
        p = rng.dirichlet(np.full(E, r.alpha))
        logp = np.log(np.maximum(p, 1e-300))
    return _gumbel_topk_counts(logp, T, k, rng)


def apply_capacity(counts: np.ndarray, cf: Optional[float], T: int, k: int, E: int) -> tuple[np.ndarray, int]:
    """Counts after the capacity limit ceil(cf*T*k/E) and the number of dropped assignments."""
    if cf is None:
        return counts, 0
    cap = int(math.ceil(cf * T * k / E))
    kept = np.minimum(counts, cap)
    return kept, int((counts - kept).sum())


# -- graph ---------------------------------------------------------------------------------------

def add_moe_block(gb: GraphBuilder, s, layer: str, x: Tensor, default: str, prefix: str,
                  counts: np.ndarray, T: int) -> Tensor:
    """Norm, router, top-k, dispatch, per-expert FFNs, combine, shared experts, residual."""
    w, a, _ = dtypes(s, default)
    st = stream_dtype(s, default)            # all but the inputs of the expert / router GEMMs
    d, E, k = s.d_model, s.n_experts, s.top_k
    ff = s.ff_expert
    mlp = s.expert_mlp or s.mlp
    gated = mlp in ("swiglu", "geglu")
    nup = 2 * ff if gated else ff
    norm_kind = norm_kind_of(s)
    xn = Tensor(f"{prefix}.moe_norm.out", (T, d), a)
    gb.add(VectorOp(f"{prefix}.moe_norm", layer, norm_kind, T, d, (x,), (xn,), role="norm"))
    logits = Tensor(f"{prefix}.router.out", (T, E), st)
    # the experts no token is routed to this pass run no op, yet their weights stay resident:
    # the router carries them for the capacity checks (Workload.stored_tensors)
    idle = tuple(Tensor(f"{prefix}.e{e}.{part}.w", shape, w, "weight")
                 for e in range(E) if counts[e] == 0
                 for part, shape in (("up", (d, nup)), ("down", (ff, d))))
    gb.add(GemmOp(f"{prefix}.router", layer, T, E, d, xn, Tensor(f"{prefix}.router.w", (d, E), w, "weight"),
                  logits, role="router", attrs={"routing_counts": [int(c) for c in counts],
                                                "idle_weights": idle}))
    gates = Tensor(f"{prefix}.router.probs", (T, E), st)
    gb.add(VectorOp(f"{prefix}.router_softmax", layer, VecKind.SOFTMAX, T, E, (logits,), (gates,), role="router"))
    sel = Tensor(f"{prefix}.router.topk", (T, k), st)
    gb.add(VectorOp(f"{prefix}.router_topk", layer, VecKind.TOPK, T, E, (gates,), (sel,), role="router"))
    routed = int(counts.sum())
    disp = Tensor(f"{prefix}.dispatch.out", (max(1, routed), d), a)
    gb.add(VectorOp(f"{prefix}.dispatch", layer, VecKind.COPY, max(1, routed), d, (xn, sel), (disp,),
                    role="dispatch"))
    eout = Tensor(f"{prefix}.experts.out", (max(1, routed), d), st)
    active = [e for e in range(E) if counts[e] > 0]
    kind = {"gelu": VecKind.GELU, "relu": VecKind.RELU, "swiglu": VecKind.SILU, "geglu": VecKind.GELU}[mlp]

    def attrs(e):
        at = {"expert": e, "tokens": int(counts[e])}
        if s.expert_parallel:
            at["array"] = e
        return at
    # stage-major insertion: every expert's up GEMM, then activations, then down GEMMs, so
    # experts on different arrays can overlap in program order
    ups, acts = {}, {}
    for e in active:
        c = int(counts[e])
        up = Tensor(f"{prefix}.e{e}.up.out", (c, nup), st)
        gb.add(GemmOp(f"{prefix}.e{e}.up", layer, c, nup, d, disp,
                      Tensor(f"{prefix}.e{e}.up.w", (d, nup), w, "weight"), up, role="expert", attrs=attrs(e)))
        ups[e] = up
    for e in active:
        c = int(counts[e])
        act = Tensor(f"{prefix}.e{e}.act.out", (c, ff), st if gated else a)
        gb.add(VectorOp(f"{prefix}.e{e}.act", layer, kind, c, ff, (ups[e],), (act,), role="activation",
                        attrs=attrs(e)))
        if gated:
            gm = Tensor(f"{prefix}.e{e}.gate_mul.out", (c, ff), a)
            gb.add(VectorOp(f"{prefix}.e{e}.gate_mul", layer, VecKind.MUL, c, ff, (act,), (gm,), role="gate",
                            attrs=attrs(e)))
            act = gm
        acts[e] = act
    downs = []
    for e in active:
        c = int(counts[e])
        op = gb.add(GemmOp(f"{prefix}.e{e}.down", layer, c, d, ff, acts[e],
                           Tensor(f"{prefix}.e{e}.down.w", (ff, d), w, "weight"), eout, role="expert",
                           attrs=attrs(e)))
        downs.append(op.name)
    comb = Tensor(f"{prefix}.combine.out", (T, d), st)
    cop = gb.add(VectorOp(f"{prefix}.combine", layer, VecKind.MUL, max(1, routed), d, (eout,), (comb,),
                          role="combine"))
    for nme in downs:                      # every expert feeds the combine
        gb.g.add_edge(nme, cop.name, tensor=eout)
    if not active:
        gb.g.add_edge(f"{prefix}.dispatch", cop.name, tensor=disp)
    res_in = (comb, x)
    if s.n_shared_experts:
        sh = add_mlp_block(gb, s, layer, xn, default, f"{prefix}.shared", d_ff=s.n_shared_experts * ff,
                           tokens=T, mlp=mlp, norm=False, residual=False)
        for nme in (f"{prefix}.shared.up", f"{prefix}.shared.down"):
            gb.g.nodes[nme]["op"].role = "shared_expert"
        res_in = (comb, sh, x)
    r = Tensor(f"{prefix}.moe_res", (T, d), st)
    gb.add(VectorOp(f"{prefix}.moe_add", layer, VecKind.ADD, T, d, res_in, (r,), role="residual"))
    return r


def layer_plan(s, n_layers: int, ffn_of, mixer_of=lambda i: "attn") -> list[tuple[str, list[int]]]:
    """Distinct (mixer, ffn) layer kinds in first-appearance order with their layer indices."""
    kinds: dict[str, list[int]] = {}
    for i in range(n_layers):
        kinds.setdefault(f"{mixer_of(i)}+{ffn_of(i)}", []).append(i)
    return list(kinds.items())


def routing_for(s, T: int, layer_idx: int, all_layers: bool) -> tuple[np.ndarray, int]:
    counts = route(s.routing, T, s.n_experts, s.top_k, seed_offset=layer_idx if all_layers else 0)
    return apply_capacity(counts, s.capacity_factor, T, s.top_k, s.n_experts)


def add_ffn(gb: GraphBuilder, s, name: str, x: Tensor, default: str, ffn: str, T: int, layer_idx: int,
            all_layers: bool, info: dict) -> Tensor:
    """The feed-forward part of a layer: routed experts (recording the routing in ``info``) or
    a dense MLP."""
    if ffn == "moe":
        counts, dropped = routing_for(s, T, layer_idx, all_layers)
        info["routing_counts"][name] = [int(c) for c in counts]
        info["dropped_tokens"][name] = dropped
        return add_moe_block(gb, s, name, x, default, name, counts, T)
    return add_mlp_block(gb, s, name, x, default, name)


def build_moe(s: MoESpec, default_precision: str, all_layers: bool = False) -> Workload:
    gb = GraphBuilder()
    T = token_rows(s)
    x = embed(gb, s, default_precision, T)
    groups = [LayerGroup("embed", 1)]
    plan = layer_plan(s, s.n_layers, lambda i: "moe" if s.is_moe_layer(i) else "dense")
    info = {"routing_counts": {}, "dropped_tokens": {}}
    to_build = ([(f"block{i}", [i], "moe" if s.is_moe_layer(i) else "dense") for i in range(s.n_layers)]
                if all_layers else
                [(("moe_block" if kind.endswith("moe") else "block") if len(plan) > 1 else "block", idx,
                  kind.split("+")[1]) for kind, idx in plan])
    for name, idx, ffn in to_build:
        groups.append(LayerGroup(name, len(idx)))
        x = add_attention_block(gb, s, name, x, default_precision, name)
        x = add_ffn(gb, s, name, x, default_precision, ffn, T, idx[0], all_layers, info)
    add_head(gb, s, x, default_precision, T)
    groups.append(LayerGroup("head", 1))
    tokens = s.batch if s.arch == "decoder" else 0
    return Workload(s.name, gb.g, groups, s.phase, s.batch, s.seq_len, s.kv_len, tokens,
                    spec=dict(s.model_dump(), **info))
