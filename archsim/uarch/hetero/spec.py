"""Config model of a heterogeneous xPU + PIM system (AttAcc- and NeuPIMs-style).

The xPU and the PIM side are complete hardware descriptions of their own microarchitectures
(``gpu`` or ``systolic``; ``dram_pim``), named by preset / path / inline dict plus overrides;
this model adds what the composition needs: how many devices, which op roles run where, the
link between the two sides and the schedule.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import Field, PositiveInt, field_validator

from archsim.config.common import ArchBase, PipelineConfig
from archsim.config.types import Bandwidth, Bytes, Energy, Strict, Time
from archsim.uarch.gpu.spec import InterconnectConfig

#: op roles that always travel together (one PIM attention kernel: QK^T, softmax, SV and the
#: KV append)
ATTENTION_ROLES = ("attn_qk", "softmax", "attn_sv", "kv_write")
#: op roles the DRAM-bank PIM can execute: attention and GEMV-shaped FC layers
PIM_ROLES = ATTENTION_ROLES + ("fc", "lm_head")
#: every op role the workload builders emit
KNOWN_ROLES = ("fc", "lm_head", "attn_qk", "softmax", "attn_sv", "kv_write", "norm", "residual",
               "activation", "gate", "rope", "embedding", "router", "expert", "dispatch", "combine",
               "scan", "ssd")
DEFAULT_PLACEMENT = {r: "pim" for r in ATTENTION_ROLES}


class XpuSide(Strict):
    """The compute side: a GPU (``uarch: gpu``) or an NPU (``uarch: systolic``)."""

    arch: Union[str, dict[str, Any]] = Field(..., description="preset name, path or inline config of the xPU")
    set: list[str] = Field(default_factory=list, description="overrides applied to the xPU config")
    devices: PositiveInt = Field(1, description="xPU devices in tensor parallel (FC column/row splits, "
                                 "heads split); a gpu xPU gets it as parallel.tensor")
    capacity: Optional[Bytes] = Field(None, description="memory per xPU device (default: the xPU "
                                      "config's memory.capacity)")


class PimSide(Strict):
    """The PIM side: DRAM-bank PIM stacks (``uarch: dram_pim``)."""

    arch: Union[str, dict[str, Any]] = Field(..., description="preset name, path or inline config of one "
                                             "PIM stack")
    set: list[str] = Field(default_factory=list, description="overrides applied to the PIM config")
    stacks: PositiveInt = Field(..., description="PIM stacks per xPU device (the system has stacks x "
                                "xpu.devices; attention heads of all requests are dealt over all of them)")
    capacity_per_stack: Bytes = Field(..., description="bytes one stack holds")
    shared_with_xpu: bool = Field(False, description="the xPU's own memory is these PIM stacks "
                                  "(NeuPIMs) instead of separate memory (AttAcc)")
    dual_row_buffer: bool = Field(True, description="shared memory only: a second row buffer per bank "
                                  "lets the xPU's regular reads and the PIM commands proceed together; "
                                  "false serialises them on the banks")


class LinkConfig(Strict):
    """xPU <-> PIM link (one per xPU device, all used in parallel)."""

    bandwidth: Bandwidth = Field(300e9, description="per link, per direction")
    latency: Time = Field(1e-6, description="per transfer")
    energy_per_bit: Energy = Field(10.4, description="pJ per bit moved")


class HeteroConfig(ArchBase):
    """An xPU (gpu or systolic) with PIM stacks, a link between them and a schedule."""

    uarch: Literal["hetero"] = "hetero"
    no_mac_prices = ("a hetero system's MACs are priced by its parts; set it in xpu.set / pim.set "
                     "(e.g. xpu.set=[\"energy.mac_pj={int8: fp16}\"])")
    xpu: XpuSide
    pim: PimSide
    link: LinkConfig = Field(default_factory=LinkConfig)
    interconnect: InterconnectConfig = Field(
        default_factory=InterconnectConfig,
        description="device-to-device links of the tensor-parallel all-reduce for an xPU without its own "
                    "(systolic; a gpu xPU uses its own interconnect section) and between pipeline stages")
    parallel: PipelineConfig = Field(default_factory=PipelineConfig, description="pipeline stages, each "
                                     "with xpu.devices devices and their PIM stacks")
    placement: dict[str, Literal["xpu", "pim"]] = Field(
        default_factory=dict, description="op role -> device; default: attention (attn_qk, softmax, "
        "attn_sv, kv_write) on pim, everything else on xpu")
    schedule: Literal["serial", "interleaved"] = Field(
        "serial", description="serial per layer (AttAcc) or sub-batch interleaving (NeuPIMs): the xPU "
        "runs one sub-batch's FC layers while the PIM runs another sub-batch's attention")
    sub_batches: PositiveInt = Field(2, description="sub-batches of the interleaved schedule")
    interleave_min_batch: PositiveInt = Field(2, description="below this batch the interleaved schedule "
                                              "runs serially (NeuPIMs interleaves large batches only)")
    head_chunks: PositiveInt = Field(1, description="serial schedule: the QKV generation, the transfer "
                                     "and the PIM attention are pipelined over this many head groups (at most the query "
                                     "heads of one xPU device: heads / xpu.devices); with grouped-query attention, groups "
                                     "finer than a device's KV heads each read their KV head again")
    ff_parallel: bool = Field(False, description=(
        "decode: feed-forward parallelism (AttAcc's ff option): the PIM, idle while the xPU runs the "
        "MLP, computes a share of each FFN weight matrix as GEMVs (one per request) concurrently with "
        "the xPU's share - up/gate split by output columns, down by input rows (partial sums added "
        "on the xPU); the share balances the two sides' modelled times"))
    ff_split_steps: PositiveInt = Field(64, description="ff_parallel: the PIM share is a multiple of "
                                        "1/ff_split_steps of each FFN matrix")

    @field_validator("placement")
    @classmethod
    def _placement(cls, v):
        from archsim.errors import did_you_mean
        problems = []
        for role, dev in v.items():
            if role not in KNOWN_ROLES:
                problems.append(f"placement.{role}: unknown op role{did_you_mean(role, KNOWN_ROLES)}; "
                                f"known: {', '.join(KNOWN_ROLES)}")
            elif dev == "pim" and role not in PIM_ROLES:
                problems.append(f"placement.{role}: the PIM cannot run '{role}' ops (it runs "
                                f"{', '.join(PIM_ROLES)}); assign it to xpu")
        merged = {**DEFAULT_PLACEMENT, **v}
        devs = {merged[r] for r in ATTENTION_ROLES}
        if len(devs) > 1:
            problems.append("placement: attn_qk, softmax, attn_sv and kv_write form one attention kernel "
                            "and must run on the same device")
        if problems:
            raise ValueError("; ".join(problems))
        return v

    def device_of(self, role: str) -> str:
        return self.placement.get(role, DEFAULT_PLACEMENT.get(role, "xpu"))
