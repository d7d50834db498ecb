"""Single-operator workloads for micro-benchmarks: one GEMM (``kind: gemm``) or one element-wise /
row operator (``kind: vector``)."""
from __future__ import annotations

from archsim.isa import VecKind
from archsim.workload.graph import GemmOp, GraphBuilder, LayerGroup, Tensor, VectorOp, Workload
from archsim.workload.spec import VECTOR_OPS, GemmSpec, VectorSpec


def build_gemm(s: GemmSpec, default_precision: str, all_layers: bool = False) -> Workload:
    w = s.precision.weights or default_precision
    a = s.precision.activations or default_precision
    gb = GraphBuilder()
    A = Tensor("A", (s.M, s.K), a, "state" if s.a_offchip else "onchip")
    B = Tensor("B", (s.K, s.N), w, "weight")
    C = Tensor("C", (s.M, s.N), a, "state" if s.c_offchip else "onchip")
    gb.add(GemmOp(s.name, "gemm", s.M, s.N, s.K, A, B, C, count=s.count, role="fc"))
    return Workload(s.name, gb.g, [LayerGroup("gemm", 1)], s.phase, s.batch, s.seq_len, s.kv_len,
                    0, spec=s.model_dump())


def build_vector(s: VectorSpec, default_precision: str, all_layers: bool = False) -> Workload:
    a = s.precision.activations or default_precision
    kind, role, n_in = VECTOR_OPS[s.op]
    where = "state" if s.offchip else "onchip"
    gb = GraphBuilder()
    ins = tuple(Tensor(f"X{i}", (s.rows, s.cols), a, where) for i in range(n_in))
    out = Tensor("Y", (s.rows, s.cols), a, where)
    gb.add(VectorOp(s.name, "op", VecKind[kind], s.rows, s.cols, ins, (out,), role=role))
    return Workload(s.name, gb.g, [LayerGroup("op", 1)], s.phase, s.batch, s.seq_len, s.kv_len, 0,
                    spec=s.model_dump())
