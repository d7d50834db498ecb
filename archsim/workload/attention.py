"""Attention variants as graph rewrites of the builders' attention ops.

Every builder emits attention as a trio per layer: ``attn_qk`` (scores = Q K^T, one GEMM per
request and KV head, the query heads of a group stacked in M), ``softmax`` and ``attn_sv``
(out = P V). :func:`rewrite_attention` replaces a trio by several trios, one per group of
equal shapes, so the GEMMs carry their real non-zero work:

- **mixed decode batches**: requests with different KV lengths (``kv_lens`` or
  ``kv_len_dist``); requests of equal length share one GEMM with ``count``;
- **speculative verification**: ``q`` query tokens per request over ``kv_len + q`` keys;
- **static block-sparse masks** (Longformer local window + global tokens, BigBird window +
  global + random blocks, random blocks with a sparsity): the score matrix is cut into
  ``block x block`` tiles; only kept tiles are computed (SDDMM for Q K^T, SpMM for P V), so
  each query block becomes a GEMM of ``block`` query rows against its kept key tokens and
  query blocks with the same number of kept keys share one GEMM (``count``);
- **dynamic pruning** (SpAtten, Wang et al., HPCA 2021): ``token_keep`` keeps that fraction
  of the key tokens, ``head_keep`` that fraction of the heads, per layer.

Shapes already hold only the kept work. ``attrs["attn_density"]`` is informational: the
fraction of the layer's dense score matrix (``q x ctx`` per request and head, the dense
builders' shape) that is computed; do not scale MACs by it again. ``attrs["attn_nnz"]`` is
the number of score elements computed by the op (``M * N * count``).
"""
from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass, replace
from typing import Optional

import networkx as nx
import numpy as np

from archsim.errors import WorkloadError
from archsim.workload.graph import GemmOp, VectorOp


@dataclass(frozen=True)
class ReqGroup:
    """``n`` requests with ``q`` query tokens each attending over ``ctx`` keys (queries are
    the last ``q`` positions of the context)."""

    n: int
    q: int
    ctx: int


# -- masks ---------------------------------------------------------------------------------------

def block_mask(q: int, ctx: int, sp, causal: bool, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Kept key blocks of each query block.

    Returns ``(mask[nqb, nkb] bool, qrows[nqb])`` where query block i holds ``qrows[i]`` query
    tokens. Blocks are aligned to absolute positions (key block j covers tokens
    ``[j*b, (j+1)*b)``); queries occupy positions ``ctx-q .. ctx-1``.
    """
    b = sp.block if sp is not None else max(q, ctx)
    nkb = -(-ctx // b)
    q0 = ctx - q
    qb_first, qb_last = q0 // b, (ctx - 1) // b
    qbs = np.arange(qb_first, qb_last + 1)
    lo = np.maximum(qbs * b, q0)
    hi = np.minimum((qbs + 1) * b, ctx)
    qrows = (hi - lo).astype(np.int64)
    kb = np.arange(nkb)
    pattern = sp.pattern if sp is not None else "dense"
    QB, KB = np.meshgrid(qbs, kb, indexing="ij")
    if pattern == "dense":
        mask = np.ones(QB.shape, bool)
    elif pattern == "random":
        mask = rng.random(QB.shape) >= sp.sparsity
        mask |= QB == KB                                   # the diagonal block is always kept
    else:
        if causal:
            wb = -(-sp.window // b)
            mask = (KB <= QB) & (KB >= QB - wb)
        else:
            hb = -(-sp.window // (2 * b))
            mask = np.abs(KB - QB) <= hb
        if sp.global_tokens > 0:
            gb = -(-sp.global_tokens // b)
            mask |= KB < gb                                # every query sees the global tokens
            mask |= QB < gb                                # global tokens see every key
        if pattern == "bigbird" and sp.random_blocks > 0:
            for i in range(mask.shape[0]):
                allowed = np.nonzero(~mask[i] & ((kb <= qbs[i]) if causal else True))[0]
                if allowed.size:
                    pick = rng.choice(allowed, size=min(sp.random_blocks, allowed.size), replace=False)
                    mask[i, pick] = True
    if causal:
        mask &= KB <= QB
    return mask, qrows


def kept_keys(mask: np.ndarray, ctx: int, block: int) -> np.ndarray:
    """Kept key tokens per query block (the last key block may be partial)."""
    nkb = mask.shape[1]
    sizes = np.full(nkb, block, np.int64)
    sizes[-1] = ctx - block * (nkb - 1)
    return (mask * sizes).sum(axis=1)


# -- helpers -------------------------------------------------------------------------------------

def _layer_index(layer: str) -> Optional[int]:
    m = re.search(r"(\d+)$", layer)
    return int(m.group(1)) if m else None


def _per_layer(v, layer: str, n_layers: int, field: str) -> float:
    if not isinstance(v, list):
        return float(v)
    if len(v) != n_layers:
        raise WorkloadError([(f"workload.attn_sparsity.{field}",
                              f"{len(v)} values given but the model has {n_layers} layers")])
    i = _layer_index(layer)
    if i is None or i >= n_layers:
        raise WorkloadError([(f"workload.attn_sparsity.{field}",
                              "per-layer values need every layer built (layer names blockN)")])
    return float(v[i])


def needs_all_layers(spec) -> bool:
    sp = getattr(spec, "attn_sparsity", None)
    return sp is not None and (isinstance(sp.token_keep, list) or isinstance(sp.head_keep, list))


def attention_trios(wl) -> list[tuple[GemmOp, VectorOp, GemmOp]]:
    out = []
    g = wl.graph
    for n in list(g.nodes):
        op = g.nodes[n]["op"]
        if isinstance(op, GemmOp) and op.role == "attn_qk":
            sm = [s for s in g.successors(n) if g.nodes[s]["op"].role == "softmax"]
            if len(sm) != 1:
                continue
            sv = [s for s in g.successors(sm[0]) if g.nodes[s]["op"].role == "attn_sv"]
            if len(sv) != 1:
                continue
            out.append((op, g.nodes[sm[0]]["op"], g.nodes[sv[0]]["op"]))
    return out


def request_kv_lens(spec) -> Optional[list[int]]:
    """Per-request KV lengths of a mixed decode batch (``kv_lens`` or drawn from
    ``kv_len_dist`` with its seed), or None."""
    if getattr(spec, "kv_lens", None) is not None:
        return [int(x) for x in spec.kv_lens]
    d = getattr(spec, "kv_len_dist", None)
    if d is None:
        return None
    rng = np.random.default_rng(d.seed)
    B = spec.batch
    if d.kind == "uniform":
        x = rng.integers(d.low, d.high + 1, size=B)
    elif d.kind == "normal":
        x = rng.normal(d.mean, d.std or 0.0, size=B)
    else:   # lognormal with the given mean and std of the lengths themselves
        sd = d.std or 0.0
        s2 = math.log(1.0 + (sd / d.mean) ** 2)
        x = rng.lognormal(math.log(d.mean) - s2 / 2, math.sqrt(s2), size=B)
    x = np.clip(np.rint(x), d.low, d.high).astype(np.int64)
    x = -(-x // d.bucket) * d.bucket
    return [int(v) for v in x]


# -- the rewrite ----------------------------------------------------------------------------------

def rewrite_attention(wl, spec, groups: Optional[list[ReqGroup]] = None, n_layers: Optional[int] = None,
                      is_decoder: bool = True) -> None:
    """Replace each attention trio of ``wl`` by per-shape trios (in place). ``groups`` gives
    the requests (default: the workload's batch with its phase's q and ctx)."""
    sp = getattr(spec, "attn_sparsity", None)
    n_layers = n_layers or getattr(spec, "n_layers", 1)
    decode = wl.phase == "decode"
    if groups is None:
        q = 1 if decode else wl.seq_len
        ctx = wl.kv_len + 1 if decode else wl.seq_len
        groups = [ReqGroup(wl.batch, q, ctx)]
    trios = attention_trios(wl)
    if not trios:
        return
    rng_seed = sp.seed if sp is not None else 0
    causal = (sp.causal if sp is not None and sp.causal is not None
              else (is_decoder and sp is not None and sp.pattern != "dense"))
    replacement: dict[str, tuple] = {}
    for li, (qk, sm, sv) in enumerate(trios):
        kvh = max(1, qk.count // max(1, wl.batch)) if qk.count % max(1, wl.batch) == 0 else qk.count
        q_orig = 1 if decode else wl.seq_len
        grp = max(1, qk.M // q_orig)
        h = grp * kvh
        hd = int(qk.K)
        tk = _per_layer(sp.token_keep, qk.layer, n_layers, "token_keep") if sp is not None else 1.0
        hk = _per_layer(sp.head_keep, qk.layer, n_layers, "head_keep") if sp is not None else 1.0
        if grp == 1:
            kvh2, grp2 = max(1, math.ceil(kvh * hk - 1e-9)), 1
        else:
            kvh2, grp2 = kvh, max(1, math.ceil(grp * hk - 1e-9))
        h2 = kvh2 * grp2
        rng = np.random.default_rng(rng_seed + li)
        # shapes: (q rows per block, kept keys) -> number of (request, block) GEMMs
        shapes: Counter = Counter()
        dense_elems = 0
        masked = sp is not None and (sp.pattern != "dense" or bool(sp.causal))
        for gr in groups:
            if masked:
                mask, qrows = block_mask(gr.q, gr.ctx, sp, causal, rng)
                keys = kept_keys(mask, gr.ctx, sp.block)
            else:
                qrows, keys = np.array([gr.q]), np.array([gr.ctx])
            if tk < 1.0:
                keys = np.maximum(1, np.ceil(keys * tk - 1e-9)).astype(np.int64)
            for r, k_ in zip(qrows.tolist(), keys.tolist()):
                if k_ > 0:
                    shapes[(int(r), int(k_))] += gr.n
            dense_elems += gr.n * gr.q * gr.ctx
        kept_elems = sum(r * k_ * c for (r, k_), c in shapes.items())
        density = kept_elems * h2 / max(1, dense_elems * h)
        new_qk, new_sm, new_sv = [], [], []
        for j, ((r, k_), c) in enumerate(sorted(shapes.items())):
            sfx = f"#{j}" if len(shapes) > 1 else ""
            cnt = c * kvh2
            M = grp2 * r
            # a block mask already keeps only the visible keys: nothing left for a kernel to skip
            attrs = dict(qk.attrs, causal=bool(qk.attrs.get("causal")) and not masked,
                         attn_density=density, attn_nnz=M * k_ * cnt,
                         attn_pattern=sp.pattern if sp is not None else "dense", attn_rows=r, attn_keys=k_)
            if qk.b.kind == "activation":
                kb_t, vb_t = qk.b, sv.b
            else:
                kb_t = replace(qk.b, name=f"{qk.b.name}{sfx}", shape=(c, kvh2, hd, k_))
                vb_t = replace(sv.b, name=f"{sv.b.name}{sfx}", shape=(c, kvh2, k_, hd))
            sc = replace(qk.c, name=f"{qk.c.name}{sfx}", shape=(cnt, M, k_))
            pr = replace(sm.outputs[0], name=f"{sm.outputs[0].name}{sfx}", shape=(cnt, M, k_))
            new_qk.append(GemmOp(f"{qk.name}{sfx}", qk.layer, M, k_, hd, qk.a, kb_t, sc, count=cnt,
                                 b_shared=False, role="attn_qk", attrs=attrs))
            new_sm.append(VectorOp(f"{sm.name}{sfx}", sm.layer, sm.kind, c * h2 * r, k_, (sc,), (pr,),
                                   role="softmax", attrs=dict(sm.attrs, attn_density=density)))
            new_sv.append(GemmOp(f"{sv.name}{sfx}", sv.layer, M, hd, k_, pr, vb_t, sv.c, count=cnt,
                                 role="attn_sv", attrs=dict(sv.attrs, causal=attrs["causal"], attn_density=density,
                                                            attn_nnz=M * k_ * cnt, attn_rows=r, attn_keys=k_)))
        replacement[qk.name] = (qk, sm, sv, new_qk, new_sm, new_sv)
    _splice(wl, replacement)


def _splice(wl, replacement) -> None:
    """Rebuild the graph with each old trio replaced (stage-major: all QK^T, softmaxes, PVs)."""
    g = wl.graph
    old_names = set()
    for qk, sm, sv, *_ in replacement.values():
        old_names.update((qk.name, sm.name, sv.name))
    ng = nx.DiGraph()
    for n in g.nodes:
        if n in replacement:
            qk, sm, sv, nq, ns, nv = replacement[n]
            for op in nq + ns + nv:
                ng.add_node(op.name, op=op)
        elif n not in old_names:
            ng.add_node(n, **g.nodes[n])
    for u, v, d in g.edges(data=True):
        if u in old_names or v in old_names:
            continue
        ng.add_edge(u, v, **d)
    for qk, sm, sv, nq, ns, nv in replacement.values():
        for p, _, d in g.in_edges(qk.name, data=True):
            for op in nq:
                ng.add_edge(p, op.name, **d)
        for p, _, d in g.in_edges(sv.name, data=True):
            if p != sm.name:
                for op in nv:
                    ng.add_edge(p, op.name, **d)
        for a, b, c in zip(nq, ns, nv):
            ng.add_edge(a.name, b.name, tensor=a.c)
            ng.add_edge(b.name, c.name, tensor=b.outputs[0])
        for _, s, d in g.out_edges(sv.name, data=True):
            for op in nv:
                ng.add_edge(op.name, s, **d)
        for _, s, d in g.out_edges(qk.name, data=True):
            if s != sm.name:
                for op in nq:
                    ng.add_edge(op.name, s, **d)
    wl.graph = ng


def apply(wl, spec, is_decoder: bool = True) -> None:
    """Apply the attention variants a spec asks for (mixed KV lengths, sparsity, pruning)."""
    sp = getattr(spec, "attn_sparsity", None)
    groups = None
    if wl.phase == "decode":
        lens = request_kv_lens(spec)
        if lens is not None:
            groups = [ReqGroup(n, 1, L + 1) for L, n in sorted(Counter(lens).items())]
    active = sp is not None and (sp.pattern != "dense" or sp.causal or sp.token_keep != 1.0
                                 or sp.head_keep != 1.0)
    if groups is None and not active:
        return
    rewrite_attention(wl, spec, groups, is_decoder=is_decoder)
