"""Config model shared by the four GPU tensor-core variants (dense, 2:4, outer product,
row merge). One model, so a single description can be swept over ``uarch``."""
from __future__ import annotations

from typing import Literal

from pydantic import Field, PositiveInt, model_validator

from archsim.config.common import ArchBase, NmSparsityConfig
from archsim.config.types import PRECISION_BITS, Bytes, Strict

VARIANTS = ("tc_dense", "stc_2to4", "ds_stc", "rm_stc")


class GpuConfig(Strict):
    """Streaming multiprocessors and tensor cores."""

    sms: PositiveInt = Field(..., le=65536, description="streaming multiprocessors")
    tensor_cores_per_sm: PositiveInt = Field(4, description="tensor cores per SM (one per sub-partition)")


class MmaConfig(Strict):
    """Dense MMA tile one tensor core completes per cycle (tc_dense, stc_2to4)."""

    m: PositiveInt = Field(8, description="rows of A per cycle")
    n: PositiveInt = Field(4, description="columns of B per cycle")
    k: PositiveInt = Field(8, description="reduction steps per cycle")


class TileConfig(Strict):
    m: PositiveInt
    n: PositiveInt
    k: PositiveInt = Field(64, description="k chunk staged in shared memory per step (CTA tiles)")


class BufferConfig(Strict):
    """Per-SM register file and shared memory, chip-wide L2."""

    register_file: Bytes = Field(256 * 1024, description="register file per SM")
    shared_memory: Bytes = Field(164 * 1024, description="shared memory per SM (tile staging)")
    l2: Bytes = Field(40 * 2**20, description="L2 cache (tiles reused across CTAs hit here)")
    l2_slices: PositiveInt = Field(80, description="L2 slices (energy per access is per slice)")
    stages: PositiveInt = Field(2, description="shared-memory pipeline stages per SM")
    accumulator_bytes: PositiveInt = Field(4, description="bytes per partial sum (fp32)")
    activation_budget: float = Field(0.5, ge=0, le=1, description="fraction of L2 that keeps "
                                     "activations on chip between ops")


class StructuredConfig(NmSparsityConfig):
    """NVIDIA-style N:M structured sparse tensor core (stc_2to4)."""


class OuterConfig(Strict):
    """Outer-product dual-side sparse tensor core (ds_stc): per cycle a_group non-zeros of an
    A column times b_group non-zeros of a B row; products scattered to a banked
    accumulation buffer."""

    a_group: PositiveInt = Field(16, description="A column non-zeros per cycle")
    b_group: PositiveInt = Field(16, description="B row non-zeros per cycle")
    acc_banks: PositiveInt = Field(16, description="accumulation buffer banks (by output column)")
    decode_bits_per_cycle: PositiveInt = Field(256, description="bitmap bits decoded per cycle per core")


class RowMergeConfig(Strict):
    """Row-merge (Gustavson) sparse tensor core (rm_stc): ``units`` row units, each with
    ``lanes`` scalar x vector lanes of ``vector`` MACs, merging partial rows into the output
    row at ``merge_width`` products per cycle. The B rows the units need are fetched from
    shared memory at ``b_fetch_bytes_per_cycle`` (compressed values plus the row's bitmap);
    a row needed by several rows of the warp tile in the same k chunk is fetched once and
    broadcast to the row units."""

    units: PositiveInt = Field(32, description="row units (rows of A in flight)")
    lanes: PositiveInt = Field(2, description="A non-zeros per unit per cycle")
    vector: PositiveInt = Field(4, description="B-row non-zeros per lane per cycle")
    merge_width: PositiveInt = Field(8, description="products merged per unit per cycle")
    decode_bits_per_cycle: PositiveInt = Field(256, description="bitmap bits decoded per cycle per core")
    b_fetch_bytes_per_cycle: PositiveInt = Field(16, description="B-row bytes per cycle per core from "
                                                 "shared memory (A100: 128 B/clk per SM over 8 cores)")


class SparseTCConfig(ArchBase):
    """A GPU: SMs x tensor cores (dense, 2:4, outer-product or row-merge), register file,
    shared memory, L2 and HBM."""

    uarch: Literal["tc_dense", "stc_2to4", "ds_stc", "rm_stc"]
    gpu: GpuConfig
    mma: MmaConfig = Field(default_factory=MmaConfig)
    warp: TileConfig = Field(default_factory=lambda: TileConfig(m=32, n=32, k=32),
                             description="warp tile (one tensor core); k unused")
    cta: TileConfig = Field(default_factory=lambda: TileConfig(m=128, n=128, k=64),
                            description="CTA tile (one SM) and its k chunk")
    buffers: BufferConfig = Field(default_factory=BufferConfig)
    stc: StructuredConfig = Field(default_factory=StructuredConfig)
    outer: OuterConfig = Field(default_factory=OuterConfig)
    rowmerge: RowMergeConfig = Field(default_factory=RowMergeConfig)

    @model_validator(mode="after")
    def _tiles(self):
        if self.cta.m % self.warp.m or self.cta.n % self.warp.n:
            raise ValueError(f"warp: the CTA tile {self.cta.m}x{self.cta.n} must be a multiple of the warp tile "
                             f"{self.warp.m}x{self.warp.n}")
        if self.stc.n > self.stc.m:
            raise ValueError(f"stc: n ({self.stc.n}) must not exceed m ({self.stc.m})")
        return self

    @model_validator(mode="after")
    def _buffers_hold_a_tile(self):
        # the lowering stages a CTA's A and B k-chunks in shared memory, one slot per pipeline
        # stage, and keeps the CTA's accumulators in the SM's registers
        b, c = self.buffers, self.cta
        bpe = PRECISION_BITS[self.precision] / 8.0
        smem = b.stages * (c.m + c.n) * c.k * bpe
        if b.shared_memory < smem:
            raise ValueError(
                f"buffers.shared_memory: {b.shared_memory:.0f} B cannot stage the CTA tiles: {b.stages} stage(s) "
                f"x (A {c.m}x{c.k} + B {c.k}x{c.n}) {self.precision} values need {smem:.0f} B (at least "
                f"buffers.stages x (cta.m + cta.n) x cta.k x the precision's bytes)")
        rf = c.m * c.n * b.accumulator_bytes
        if b.register_file < rf:
            raise ValueError(
                f"buffers.register_file: {b.register_file:.0f} B cannot hold the CTA's {c.m}x{c.n} accumulators "
                f"of {b.accumulator_bytes} B: {rf} B needed (cta.m x cta.n x buffers.accumulator_bytes)")
        return self

    def macs_per_tc(self) -> int:
        if self.uarch == "ds_stc":
            return self.outer.a_group * self.outer.b_group
        if self.uarch == "rm_stc":
            r = self.rowmerge
            return r.units * r.lanes * r.vector
        return self.mma.m * self.mma.n * self.mma.k
