"""Workloads: op graphs of transformers, MoE, SSMs and single GEMMs."""
from archsim.workload.graph import GemmOp, LayerGroup, Tensor, VectorOp, Workload  # noqa: F401
from archsim.workload.loader import KINDS, load_workload, register_kind  # noqa: F401
