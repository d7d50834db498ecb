"""Single-GEMM workloads for micro-benchmarks."""
from __future__ import annotations

from archsim.workload.graph import GemmOp, GraphBuilder, LayerGroup, Tensor, Workload
from archsim.workload.spec import GemmSpec


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
