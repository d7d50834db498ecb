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
    renames: dict[str, list] = {}           # group -> per instance: tensor -> its tensor there
    for gname, (pairs, tags) in plans.items():
        gops = by_group[gname]
        made = {t.name for op in gops for t in _outs(op)}
        outs = {b.name for _, b in pairs}
        carry_in = {a.name: b.name for a, b in pairs}

        def new_name(i, t, tags=tags, gname=gname, made=made, outs=outs, carry_in=carry_in):
            """Name of tensor ``t`` of the group in instance ``i`` (each occurrence keeps its own
            attributes: a consumer's view of a tensor may carry a density its producer's lacks)."""
            name, tg = t.name, tags[i]
            if name in carry_in and i > 0:
                name, i, tg = carry_in[name], i - 1, tags[i - 1]
            if name in outs:
                return name if i == len(tags) - 1 else _tagged(gname, tg or STEADY, name)
            if (name in made or t.offchip) and tg:
                return _tagged(gname, tg, name)
            return name

        inst_ops[gname], renames[gname] = [], []
        for i, tg in enumerate(tags):
            def tt(t, i=i, new_name=new_name):
                if not isinstance(t, Tensor):
                    return t
                nm = new_name(i, t)
                return t if nm == t.name else replace(t, name=nm)

            layer = f"{gname}.{tg}" if tg else gname
            inst_ops[gname].append({op.name: _copy(op, _tagged(gname, tg, op.name) if tg else op.name, layer, tt)
                                    for op in gops})
            renames[gname].append(tt)

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
            for copies, tt in zip(inst_ops[gu], renames[gu]):
                g2.add_edge(copies[u].name, copies[v].name, **(dict(d, tensor=tt(t)) if t is not None else d))
            continue
        if gu in plans:                              # out of a block: from its last instance
            u = inst_ops[gu][-1][u].name
        if gv in plans:                              # into a block
            carry = {a.name: b for a, b in plans[gv][0]}
            for i, copies in enumerate(inst_ops[gv]):
                if i and t is not None and t.name in carry:
                    src = producer[carry[t.name].name]
                    g2.add_edge(inst_ops[gv][i - 1][src].name, copies[v].name,
                                **dict(d, tensor=renames[gv][i](t)))
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
