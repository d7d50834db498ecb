"""Config model of the TPU-like systolic array."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, PositiveInt, model_validator

from archsim.config.common import ArchBase
from archsim.config.types import Bandwidth, Bytes, Strict


class ArrayConfig(Strict):
    """The PE array(s)."""

    rows: PositiveInt = Field(..., description="PE rows (R)")
    cols: PositiveInt = Field(..., description="PE columns (C)")
    dataflow: Literal["os", "ws", "is"] = Field("ws", description="output/weight/input stationary")
    count: PositiveInt = Field(1, le=65536, description="number of arrays (cores); each has its own buffers")
    preload_overlap: bool = Field(False, description=(
        "stationary operand double-buffered in the PEs (TPU-style): the next fold's weights shift in "
        "while the current fold streams, so a ws/is fold costs max(T, R) and one pipeline drain "
        "(R + C - 2) per tile instead of T + 2R + C - 2 per fold. False reproduces SCALE-Sim's folds."))


class SharedSramConfig(Strict):
    """On-chip memory shared by all arrays (a global buffer; TPUv4i's 128 MiB CMEM).

    It sits behind the arrays' tile buffers and in front of off-chip memory. Activations too
    large for the tile buffers but within its ``activation_budget`` stay in it between ops
    instead of spilling off-chip; their tiles move between it and the arrays' buffers (and the
    vector unit) through the same DMA queues as off-chip tiles, at its ``bandwidth``."""

    size: Bytes = Field(..., description="capacity")
    bandwidth: Bandwidth = Field(..., description="transfer rate between it and the arrays' buffers, reads and "
                                                  "writes together (its latency is hidden by the tile buffers' "
                                                  "double buffering)")
    activation_budget: float = Field(0.5, ge=0, le=1,
                                     description="fraction of it that may hold activations between ops")
    banks: PositiveInt = Field(1, description="banks (a bank's size sets the access energy)")


class SramConfig(Strict):
    """On-chip SRAM per array: separate ifmap/filter/ofmap buffers (as in SCALE-Sim) or one
    unified buffer. Tiles are double buffered. Optionally a memory shared by all arrays
    (``shared``)."""

    ifmap: Optional[Bytes] = Field(None, description="IFMAP (A operand) buffer size")
    filter: Optional[Bytes] = Field(None, description="FILTER (B operand) buffer size")
    ofmap: Optional[Bytes] = Field(None, description="OFMAP (outputs / partial sums) buffer size")
    unified: Optional[Bytes] = Field(None, description="one unified buffer for all operands")
    banks: PositiveInt = Field(1, description="banks per buffer")
    ports: PositiveInt = Field(2, description="ports per bank")
    word_bytes: PositiveInt = Field(1, description="bytes per SRAM word")
    accumulator_bytes: PositiveInt = Field(4, description="bytes per partial sum")
    activation_budget: float = Field(0.5, ge=0, le=1,
                                     description="fraction of the ifmap (or unified) buffers, of all arrays "
                                                 "together, that may hold activations between ops before "
                                                 "they spill off-chip (arrays fed from one memory; 0 for "
                                                 "cores with private scratchpads)")
    shared: Optional[SharedSramConfig] = Field(None, description="on-chip memory shared by all arrays "
                                                                 "(a global buffer / CMEM), if any")

    @model_validator(mode="after")
    def _one_layout(self):
        split = [self.ifmap, self.filter, self.ofmap]
        if self.unified is not None and any(x is not None for x in split):
            raise ValueError("give either 'unified' or 'ifmap'/'filter'/'ofmap', not both")
        if self.unified is None and any(x is None for x in split):
            missing = [n for n, x in zip(("ifmap", "filter", "ofmap"), split) if x is None]
            raise ValueError(f"split buffers need ifmap, filter and ofmap sizes (missing: {', '.join(missing)})")
        return self

    @property
    def is_unified(self) -> bool:
        return self.unified is not None

    def total_bytes(self) -> float:
        return self.unified if self.is_unified else (self.ifmap + self.filter + self.ofmap)


class TilingConfig(Strict):
    """How the compiler picks a GEMM's tiles (the tiler times its near-best candidates by
    replaying their tile pipelines)."""

    time_slack: float = Field(0.01, ge=0, le=0.5, description=(
        "of the timed tilings, those within this fraction of the fastest compete on off-chip bytes "
        "and the one that moves the fewest is taken (near-best speed at the least DRAM traffic); "
        "0: the fastest"))


class SystolicConfig(ArchBase):
    """A TPU-like accelerator: systolic arrays, on-chip SRAM, a vector unit, off-chip memory."""

    uarch: Literal["systolic"] = "systolic"
    array: ArrayConfig
    sram: SramConfig
    tiling: TilingConfig = Field(default_factory=TilingConfig)
