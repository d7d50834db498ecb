"""Splitting a batch of requests into smaller batches (sub-batches, micro-batches).

A built workload keeps its validated spec (``wl.spec``); a part of the batch is the same model
rebuilt with fewer requests and, in decode, the KV lengths of exactly those requests, so the
parts together hold the same requests (and MACs) as the whole.
"""
from __future__ import annotations

from typing import Optional


def input_spec(wl) -> dict:
    """The workload's spec as its builder took it (the dump also carries what the builder
    derived: routing counts, dropped tokens, layer kinds)."""
    from archsim.workload.loader import KINDS
    spec_cls = KINDS[wl.spec.get("kind", "transformer")][0]
    return {k: v for k, v in wl.spec.items() if k in spec_cls.model_fields}


def request_lens(wl) -> Optional[list[int]]:
    """KV length of every request of a decode batch (uniform, ``kv_lens`` or drawn from
    ``kv_len_dist``); None for prefill and for kinds without requests."""
    from archsim.workload.attention import request_kv_lens
    from archsim.workload.loader import load_workload_spec
    if wl.phase != "decode" or wl.spec.get("kind") not in ("transformer", "moe", "hybrid"):
        return None
    spec = load_workload_spec(input_spec(wl))
    lens = request_kv_lens(spec)
    return list(lens) if lens is not None else [int(wl.kv_len)] * int(wl.batch)


def context_note(wl) -> str:
    """A note when a run's context goes beyond the model's ``max_seq_len`` ('' otherwise): the
    prompt in prefill; in decode the longest request's KV cache plus this step's token. The cost
    is still modelled (the attention over every position, a learned position table taken as
    extended), but the model as published does not run it."""
    spec = wl.spec
    if spec.get("kind") == "speculative":
        # the draft's k steps reach kv_len + k positions; the target verifies k + 1 more tokens
        k, L = int(spec.get("k", 1)), int(wl.kv_len)
        notes = [_beyond(sub, ctx) for sub, ctx in ((spec.get("draft_spec"), L + k),
                                                     (spec.get("target_spec"), L + k + 1))]
        return "; ".join(n for n in notes if n)
    limit = spec.get("max_seq_len")
    if not limit or wl.phase not in ("prefill", "decode"):
        return ""
    if wl.phase == "prefill":
        ctx = int(wl.seq_len)
    else:
        lens = request_lens(wl)
        ctx = (max(lens) if lens else int(wl.kv_len)) + 1
    return _beyond(spec, ctx)


def _beyond(spec, ctx: int) -> str:
    """The note for a model spec whose run reaches ``ctx`` positions ('' within its max_seq_len)."""
    limit = (spec or {}).get("max_seq_len")
    if not limit or ctx <= int(limit):
        return ""
    how = {"learned": "its learned position table is taken as extended",
           "rope": "a rotary context extension it was not trained for"}.get(spec.get("position"), "")
    return (f"workload.max_seq_len: the run reaches {ctx} positions, beyond the {limit} of "
            f"{spec.get('name', 'the model')}{' (' + how + ')' if how else ''}; the cost is modelled as is")


def rebuild(wl, precision: str, batch: int, lens: Optional[list[int]], all_layers: bool = False):
    """The workload of ``wl`` with ``batch`` requests (and, in decode, these KV lengths)."""
    from archsim.workload.loader import load_workload
    spec = input_spec(wl)
    spec["batch"] = int(batch)
    if lens is not None:
        spec["kv_lens"] = [int(x) for x in lens]
        spec["kv_len_dist"] = None
    spec.pop("quant", None)           # precisions already resolved in the dump
    return load_workload(spec, precision, all_layers=all_layers)


def split_requests(wl, parts: int) -> list[tuple[int, Optional[list[int]]]]:
    """Split the batch into ``parts`` groups of nearly equal size (sizes differ by at most one);
    in decode, requests are dealt out in order of KV length so every group gets a similar mix,
    each group in arrival order. Returns (batch, KV lengths or None) per group; fewer groups
    when the batch is smaller."""
    B = int(wl.batch)
    parts = max(1, min(int(parts), B))
    lens = request_lens(wl)
    if lens is None:
        return [(B // parts + (1 if i < B % parts else 0), None) for i in range(parts)]
    order = sorted(range(B), key=lambda i: lens[i])
    # each group keeps its requests in arrival order (placements that follow it, e.g. PIM
    # channels taken in turn, see the order the requests came in)
    return [(len(order[s::parts]), [lens[i] for i in sorted(order[s::parts])]) for s in range(parts)]
