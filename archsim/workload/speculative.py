"""Speculative decoding (Leviathan et al., ICML 2023; Chen et al., 2023).

One iteration: the draft model runs ``k`` decode steps (one token each, per request), then the
target model verifies the ``k + 1`` positions in one pass (every linear layer sees
``batch * (k + 1)`` rows; attention reads each request's KV cache once with ``k + 1`` queries
over ``kv_len + k + 1`` keys; the LM head scores all ``k + 1`` positions). With a per-token
acceptance rate alpha (i.i.d.), the expected tokens accepted per iteration and request are
``(1 - alpha^(k+1)) / (1 - alpha)`` (k + 1 when alpha = 1).

The workload holds both models: the draft's layer groups (``draft.*``, repeated k times with
the draft's KV length at the middle of the k steps) and the target's (``target.*``).
:func:`speculative_metrics` turns a Result into accepted tokens per second and per joule.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Literal

import networkx as nx
from pydantic import Field, PositiveInt

from archsim.errors import WorkloadError
from archsim.workload.graph import GemmOp, LayerGroup, Workload
from archsim.workload.spec import RunFields


class SpeculativeSpec(RunFields):
    """Draft + target models with draft length k and a per-token acceptance rate."""

    kind: Literal["speculative"] = "speculative"
    phase: Literal["decode"] = "decode"       # type: ignore[assignment]
    draft: str = Field(..., description="draft model (workload name or file)")
    target: str = Field(..., description="target model (workload name or file)")
    k: PositiveInt = Field(4, description="tokens drafted per iteration")
    acceptance: float = Field(0.7, ge=0.0, le=1.0, description="per-token acceptance rate alpha")


def expected_tokens(k: int, alpha: float) -> float:
    """Expected tokens produced per iteration and request (accepted drafts + the target's one)."""
    if alpha >= 1.0:
        return float(k + 1)
    return (1.0 - alpha ** (k + 1)) / (1.0 - alpha)


def _prefixed(wl: Workload, prefix: str, repeat_scale: int) -> tuple[nx.DiGraph, list[LayerGroup]]:
    tmap: dict[str, object] = {}

    def t(x):
        if x.name not in tmap:
            tmap[x.name] = replace(x, name=f"{prefix}{x.name}")
        return tmap[x.name]
    g = nx.DiGraph()
    for n in wl.graph.nodes:
        op = wl.graph.nodes[n]["op"]
        op.name = f"{prefix}{op.name}"
        op.layer = f"{prefix}{op.layer}"
        if isinstance(op, GemmOp):
            op.a, op.b, op.c = t(op.a), t(op.b), t(op.c)
        else:
            op.inputs = tuple(t(x) for x in op.inputs)
            op.outputs = tuple(t(x) for x in op.outputs)
        g.add_node(op.name, op=op)
    for u, v, d in wl.graph.edges(data=True):
        d = dict(d)
        if "tensor" in d:
            d["tensor"] = t(d["tensor"])
        g.add_edge(f"{prefix}{u}", f"{prefix}{v}", **d)
    groups = [LayerGroup(f"{prefix}{gr.name}", gr.repeat * repeat_scale) for gr in wl.groups]
    return g, groups


def build_speculative(s: SpeculativeSpec, default_precision: str, all_layers: bool = False) -> Workload:
    from archsim.workload.attention import ReqGroup, rewrite_attention
    from archsim.workload.loader import KINDS, load_workload_spec, postprocess

    B, k = s.batch, s.k
    prec = {f: v for f, v in s.precision.model_dump().items() if v is not None and f != "scale_bits"}
    ovs = [f"workload.precision.{f}={v}" for f, v in prec.items()]
    if s.quant:
        ovs.append(f"workload.quant={s.quant}")
    try:
        dspec = load_workload_spec(s.draft, ovs, phase="decode", batch=B, kv_len=s.kv_len + (k - 1) // 2)
        tspec = load_workload_spec(s.target, ovs, phase="decode", batch=B * (k + 1), kv_len=s.kv_len)
    except WorkloadError as e:
        raise WorkloadError([(f"workload.(draft|target) {p}", m) for p, m in e.problems], source=e.source) from None
    if tspec.kind not in ("transformer", "moe"):
        raise WorkloadError([("workload.target", f"the target must be an attention model (transformer or moe), "
                              f"got kind {tspec.kind!r}")])
    if getattr(tspec, "kv_lens", None) is not None or getattr(tspec, "kv_len_dist", None) is not None:
        raise WorkloadError([("workload.target", "mixed KV lengths are not supported in verification")])
    dwl = postprocess(KINDS[dspec.kind][1](dspec, default_precision, all_layers), dspec)
    twl = KINDS[tspec.kind][1](tspec, default_precision, all_layers)
    rewrite_attention(twl, tspec, [ReqGroup(B, k + 1, s.kv_len + k + 1)],
                      is_decoder=True)
    twl.batch = B
    twl = postprocess(twl, tspec, attention=False)
    dg, dgroups = _prefixed(dwl, "draft.", k)
    tg, tgroups = _prefixed(twl, "target.", 1)
    g = nx.union(dg, tg)
    E = expected_tokens(k, s.acceptance)
    info = dict(s.model_dump(), expected_tokens_per_iteration=E, accepted_tokens_per_iteration=B * E,
                draft_spec=dspec.model_dump(), target_spec=tspec.model_dump())
    return Workload(s.name, g, dgroups + tgroups, "decode", B, s.seq_len, s.kv_len,
                    max(1, round(B * E)), spec=info)


def speculative_metrics(result) -> dict:
    """Accepted tokens per iteration, per second and per joule of a speculative Result."""
    spec = result.workload.spec
    if spec.get("kind") != "speculative":
        return {}
    acc = float(spec["accepted_tokens_per_iteration"])
    secs = result.seconds
    e_j = result.energy_pj * 1e-12
    return {"accepted_tokens_per_iteration": acc,
            "accepted_tokens_per_s": acc / secs if secs > 0 else None,
            "accepted_tokens_per_j": acc / e_j if e_j > 0 else None}


def vocabulary_note(wl) -> str:
    """A note when a speculative workload's draft and target have vocabularies of different sizes
    ('' otherwise): the target verifies the draft's token ids, so the two must share a tokenizer;
    the cost is still modelled."""
    spec = wl.spec
    if spec.get("kind") != "speculative":
        return ""
    dv = (spec.get("draft_spec") or {}).get("vocab_size")
    tv = (spec.get("target_spec") or {}).get("vocab_size")
    if not dv or not tv or dv == tv:
        return ""
    return (f"workload.draft: the draft's vocabulary ({dv} tokens) is not the target's ({tv}); the target "
            f"verifies the draft's token ids, so the two need one tokenizer; the cost is modelled as is")
