"""A repeated layer group lowered as three instances: the first, a steady-state one, the last.

Identical blocks form one layer group with a ``repeat`` count (:mod:`archsim.workload.graph`).
Timing one instance and weighting it by ``repeat`` takes the first block's time for all of
them, and the first block is the odd one: nothing before it is of its kind, so nothing
prefetched its weights, and the buffers it inherits from the embedding differ from what a
block inherits from the block before it. On a weight-streaming design at small batch the
difference is large (a block whose weight loads overlap the previous block's compute).

:func:`first_and_steady` rewrites such a group ``g`` (repeat ``R``) into ``g.first`` (repeat
1), ``g`` (repeat ``R - 2``) and ``g.last`` (repeat 1), each taking the previous one's output as
its input; the copies' ops and per-layer tensors are renamed (``g.first.qkv``), the middle
instance keeps the names of the group (``R = 2``: ``g.first`` and ``g``). The lowerers lower
them as any consecutive layers, so the middle instance overlaps the first as a block overlaps
the one before it (its weights prefetched, say), and the last one overlaps the middle as the
next block would: the middle one's span is the steady-state block's. What follows the blocks
(the LM head) overlaps the last instance only, as it does in the model.

A group is rewritten only when the tensors it takes from earlier groups and the tensors it
hands to later groups pair up one to one (same shapes and types, in order): the carry of a
block (its residual stream). Other groups keep one instance.
"""
from __future__ import annotations

from dataclasses import replace

import networkx as nx

from archsim.workload.graph import GemmOp, LayerGroup, Tensor, Workload

FIRST, LAST, STEADY = "first", "last", "steady"


def group_of(layer: str) -> str:
    """The layer group a lowered layer instance belongs to: ``block.first`` -> ``block``."""
    for tag in (FIRST, LAST):
        if layer.endswith("." + tag):
            return layer[:-len(tag) - 1]
    return layer


def _ins(op):
    return (op.a, op.b) if isinstance(op, GemmOp) else tuple(op.inputs)


def _outs(op):
    return (op.c,) if isinstance(op, GemmOp) else tuple(op.outputs)


def _tagged(group: str, tag: str, name: str) -> str:
    """``name`` of an op or tensor of ``group`` in its instance ``tag``: ``block.qkv`` ->
    ``block.first.qkv``."""
    if name.startswith(group + "."):
        return f"{group}.{tag}{name[len(group):]}"
    return f"{group}.{tag}.{name}"


def _carry(group_ops, producer, consumers) -> list[tuple[Tensor, Tensor]] | None:
    """(input from an earlier group, output to a later group) pairs of a group, or None."""
    names = {op.name for op in group_ops}
    ins, outs, seen_in, seen_out = [], [], set(), set()
    for op in group_ops:
        for t in _ins(op):
            p = producer.get(t.name)
            if p is not None and p not in names and t.name not in seen_in:
                seen_in.add(t.name)
                ins.append(t)
        for t in _outs(op):
            if t.name not in seen_out and any(c not in names for c in consumers.get(t.name, ())):
                seen_out.add(t.name)
                outs.append(t)
    if not ins or len(ins) != len(outs):
        return None
    if any(a.shape != b.shape or a.dtype != b.dtype for a, b in zip(ins, outs)):
        return None
    return list(zip(ins, outs))


def first_and_steady(wl: Workload) -> Workload:
    """The workload with each repeated block group lowered as a first, a steady-state and a
    last instance (module doc); the workload itself when no group is repeated."""
    if all(g.repeat <= 1 for g in wl.groups):
        return wl
    ops = wl.ops()
    producer, consumers = {}, {}
    for op in ops:
        for t in _outs(op):
            producer[t.name] = op.name
    for op in ops:
        for t in _ins(op):
            consumers.setdefault(t.name, []).append(op.name)
    by_group: dict[str, list] = {}
    for op in ops:
        by_group.setdefault(op.layer, []).append(op)
    taken = set(wl.graph.nodes) | set(producer) | set(wl.group_repeat())
    plans = {}
    for g in wl.groups:
        if g.repeat <= 1 or g.name not in by_group:
            continue
        pairs = _carry(by_group[g.name], producer, consumers)
        if pairs is None:
            continue
        tags = [FIRST, None, LAST] if g.repeat > 2 else [FIRST, None]
        new = {_tagged(g.name, tg, op.name) for tg in tags if tg for op in by_group[g.name]}
        new |= {f"{g.name}.{tg}" for tg in (FIRST, LAST, STEADY)}
        if new & taken:
            continue
        plans[g.name] = (pairs, tags)
    if not plans:
        return wl

    op_group = {op.name: op.layer for op in ops}
    inst_ops: dict[str, list[dict]] = {}    # group -> per instance: original op name -> copy
    inst_t: dict[str, list[dict]] = {}      # group -> per instance: tensor name -> its tensor
    for gname, (pairs, tags) in plans.items():
        gops = by_group[gname]
        made = {t.name for op in gops for t in _outs(op)}
        outs = {b.name for _, b in pairs}
        inst_ops[gname], inst_t[gname] = [], []
        prev = None
        for i, tg in enumerate(tags):
            final = i == len(tags) - 1
            tmap: dict[str, Tensor] = {}
            if prev is not None:
                for a, b in pairs:
                    tmap[a.name] = prev[b.name]

            def tt(t, tg=tg, final=final, tmap=tmap, gname=gname, made=made, outs=outs):
                if not isinstance(t, Tensor):
                    return t
                if t.name not in tmap:
                    if t.name in outs:
                        nm = t.name if final else _tagged(gname, tg or STEADY, t.name)
                    elif (t.name in made or t.offchip) and tg:
                        nm = _tagged(gname, tg, t.name)
                    else:
                        nm = t.name
                    tmap[t.name] = t if nm == t.name else replace(t, name=nm)
                return tmap[t.name]

            layer = f"{gname}.{tg}" if tg else gname
            inst_ops[gname].append({op.name: _copy(op, _tagged(gname, tg, op.name) if tg else op.name, layer, tt)
                                    for op in gops})
            inst_t[gname].append(tmap)
            prev = tmap

    g2 = nx.DiGraph()
    for n in wl.graph.nodes:
        gname = op_group[n]
        if gname not in plans:
            g2.add_node(n, op=wl.graph.nodes[n]["op"])
        elif n == by_group[gname][0].name:
            for copies in inst_ops[gname]:
                for op in copies.values():
                    g2.add_node(op.name, op=op)
    for u, v, d in wl.graph.edges(data=True):
        gu, gv = op_group[u], op_group[v]
        t = d.get("tensor")
        if gu == gv and gu in plans:                # inside a block: in every instance
            for copies, tmap in zip(inst_ops[gu], inst_t[gu]):
                g2.add_edge(copies[u].name, copies[v].name,
                            **(dict(d, tensor=tmap.get(t.name, t)) if t is not None else d))
            continue
        if gu in plans:                              # out of a block: from its last instance
            u = inst_ops[gu][-1][u].name
        if gv in plans:                              # into a block
            pairs = plans[gv][0]
            carry = {a.name: b for a, b in pairs}
            for i, copies in enumerate(inst_ops[gv]):
                if i and t is not None and t.name in carry:
                    src = carry[t.name]
                    prev_t = inst_t[gv][i - 1][src.name]
                    g2.add_edge(inst_ops[gv][i - 1][producer[src.name]].name, copies[v].name,
                                **dict(d, tensor=prev_t))
                else:
                    g2.add_edge(u, copies[v].name, **d)
            continue
        g2.add_edge(u, v, **d)
    groups = []
    for g in wl.groups:
        if g.name in plans:
            tags = plans[g.name][1]
            groups += [LayerGroup(f"{g.name}.{FIRST}", 1), LayerGroup(g.name, g.repeat - len(tags) + 1)]
            if len(tags) > 2:
                groups.append(LayerGroup(f"{g.name}.{LAST}", 1))
        else:
            groups.append(g)
    return replace(wl, graph=g2, groups=groups)


def _copy(op, name: str, layer: str, tmap):
    """A copy of ``op`` named ``name`` in ``layer`` with its tensors (operands and tensors its
    attributes carry) passed through ``tmap``."""
    attrs = {}
    for k, v in op.attrs.items():
        if isinstance(v, Tensor):
            v = tmap(v)
        elif isinstance(v, (tuple, list)) and v and all(isinstance(x, Tensor) for x in v):
            v = type(v)(tmap(x) for x in v)
        attrs[k] = v
    if isinstance(op, GemmOp):
        return replace(op, name=name, layer=layer, a=tmap(op.a), b=tmap(op.b), c=tmap(op.c), attrs=attrs)
    return replace(op, name=name, layer=layer, inputs=tuple(tmap(t) for t in op.inputs),
                   outputs=tuple(tmap(t) for t in op.outputs), attrs=attrs)
