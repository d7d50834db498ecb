"""Op-graph conventions shared by every workload builder and lowerer.

A :class:`Workload` wraps a networkx DiGraph whose nodes are op names; each node's ``op``
attribute is a :class:`GemmOp` or a :class:`VectorOp`, edges carry the tensor that flows.

- GEMM semantics: C[M, N] = A[M, K] @ B[K, N], repeated ``count`` times (heads, requests,
  experts); A is normally the activation, B the weight or cached K/V.
- Every tensor has a ``kind``: ``weight`` and ``kv_cache``/``state`` live off-chip (they are
  loaded every time they are used); ``activation`` tensors are produced and consumed on
  chip, and the lowerer spills them off-chip when they do not fit its buffers; ``onchip``
  tensors are assumed resident whatever their size (micro-benchmarks).
- Ops belong to a *layer group*; identical transformer blocks form one group with a
  ``repeat`` count, unless every layer is built; the lowerers see it as a first, a weighted
  steady-state and a last instance (:mod:`archsim.workload.instances`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

import networkx as nx

from archsim.config.types import precision_bytes
from archsim.isa import VecKind

#: tensor kinds that stay in memory between passes (what a device must hold)
STORED_KINDS = ("weight", "kv_cache", "state")


@dataclass(frozen=True)
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str
    kind: str = "activation"          # activation | onchip | weight | kv_cache | state
    density: float = 1.0              # fraction of non-zeros (sparsity annotations)
    scale_group: int = 0              # elements sharing one scale (0: format default, see below)
    scale_bits: int = 0               # bits of each shared scale / exponent

    @property
    def elements(self) -> int:
        n = 1
        for s in self.shape:
            n *= int(s)
        return n

    @property
    def scale_overhead_bits(self) -> float:
        """Bits of shared scales per element: block formats (MX: one 8-bit E8M0 exponent per
        32 elements, OCP MX spec v1.0) or group-quantised integers (e.g. int4, group 128,
        one fp16 scale per group)."""
        g, b = self.scale_group, self.scale_bits
        if g <= 0 and self.dtype.startswith("mx"):
            g, b = 32, 8
        return b / g if g > 0 and b > 0 else 0.0

    @property
    def bytes_per_element(self) -> float:
        """Bytes per element moved or stored, shared-scale overhead included."""
        return precision_bytes(self.dtype) + self.scale_overhead_bits / 8.0

    @property
    def nbytes(self) -> int:
        return int(round(self.elements * self.bytes_per_element))

    @property
    def offchip(self) -> bool:
        return self.kind not in ("activation", "onchip")


@dataclass
class GemmOp:
    name: str
    layer: str
    M: int
    N: int
    K: int
    a: Tensor
    b: Tensor
    c: Tensor
    count: int = 1                    # independent GEMMs of this shape (heads, requests)
    b_shared: bool = False            # the same B for all ``count`` GEMMs (a shared weight)
    role: str = "fc"                  # fc | attn_qk | attn_sv | router | expert | ...
    attrs: dict = field(default_factory=dict)

    @property
    def macs(self) -> int:
        return int(self.M) * int(self.N) * int(self.K) * int(self.count)


@dataclass
class VectorOp:
    name: str
    layer: str
    kind: VecKind
    rows: int
    cols: int
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    role: str = "vector"
    attrs: dict = field(default_factory=dict)

    @property
    def elements(self) -> int:
        return int(self.rows) * int(self.cols)

    @property
    def macs(self) -> int:
        return 0


AnyOp = Union[GemmOp, VectorOp]


def attention_name(op_name: str) -> str:
    """Name of a layer's attention ops lowered together (a fused kernel, a pipelined or in-memory
    attention), from one of their names: ``block.qk`` -> ``block.attention``."""
    return op_name.rsplit(".", 1)[0] + ".attention"


@dataclass
class LayerGroup:
    name: str
    repeat: int = 1


@dataclass
class Workload:
    """A named op graph with layer groups and run parameters."""

    name: str
    graph: nx.DiGraph
    groups: list[LayerGroup]
    phase: str = "prefill"
    batch: int = 1
    seq_len: int = 1
    kv_len: int = 0
    tokens: int = 0                   # tokens produced per run (decode: batch; prefill: batch)
    spec: dict = field(default_factory=dict)

    def ops(self) -> list[AnyOp]:
        """Ops in a deterministic topological order (insertion order breaks ties)."""
        order = {n: i for i, n in enumerate(self.graph.nodes)}
        names = nx.lexicographical_topological_sort(self.graph, key=lambda n: order[n])
        return [self.graph.nodes[n]["op"] for n in names]

    def stored_tensors(self):
        """(op, tensor) for every tensor the model keeps in memory across passes: weights, KV cache
        and recurrent state, each once, plus the weights an op carries without reading them this
        pass (``attrs["idle_weights"]``: the experts no token was routed to); a gather's weight
        operand (the rows it reads) counts as the whole table it reads them from
        (``attrs["gathers_from"]``: the embedding table)."""
        seen = set()
        for op in self.ops():
            ts = (op.a, op.b, op.c) if isinstance(op, GemmOp) else tuple(op.inputs) + tuple(op.outputs)
            whole = op.attrs.get("gathers_from")
            if whole is not None:
                ts = tuple(whole if t.kind == "weight" else t for t in ts)
            for t in ts + tuple(op.attrs.get("idle_weights", ())):
                if t.kind in STORED_KINDS and t.name not in seen:
                    seen.add(t.name)
                    yield op, t

    def group_repeat(self) -> dict[str, int]:
        return {g.name: g.repeat for g in self.groups}

    def macs(self) -> int:
        """Analytic MAC count of the whole model (groups weighted by repeat)."""
        rep = self.group_repeat()
        return sum(op.macs * rep[op.layer] for op in self.ops())

    def predecessors(self, name: str) -> list[str]:
        return list(self.graph.predecessors(name))


class GraphBuilder:
    """Adds ops and wires edges from tensor producers to consumers."""

    def __init__(self):
        self.g = nx.DiGraph()
        self._producer: dict[str, str] = {}

    def add(self, op: AnyOp) -> AnyOp:
        if op.name in self.g:
            raise ValueError(f"duplicate op name {op.name}")
        self.g.add_node(op.name, op=op)
        ins = (op.a, op.b) if isinstance(op, GemmOp) else op.inputs
        outs = (op.c,) if isinstance(op, GemmOp) else op.outputs
        for t in ins:
            p = self._producer.get(t.name)
            if p is not None:
                self.g.add_edge(p, op.name, tensor=t)
        for t in outs:
            self._producer[t.name] = op.name
        return op

    def producer(self, tensor_name: str) -> Optional[str]:
        return self._producer.get(tensor_name)
