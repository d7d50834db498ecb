"""Config sections shared by every microarchitecture."""
from __future__ import annotations

from typing import ClassVar, Literal, Optional, Union

from pydantic import Field, PositiveInt, model_validator

from archsim.config.dram import DramConfig
from archsim.config.types import Bandwidth, Bytes, Energy, Frequency, Precision, Strict, Time


class MemoryConfig(Strict):
    """Off-chip memory. ``model: bandwidth`` is a bandwidth + latency pipe; ``model: dram``
    selects the bank-level DRAM model (its parameters under ``dram``)."""

    model: Literal["bandwidth", "dram"] = Field("bandwidth", description="memory model")
    bandwidth: Bandwidth = Field(100e9, description="peak off-chip bandwidth (bandwidth model)")
    latency: Time = Field(100e-9, description="access latency added to every transfer")
    capacity: Optional[Bytes] = Field(None, description="capacity, e.g. '80 GiB' (bare number: bytes; "
                                      "None: unlimited)")
    energy_per_bit: Optional[Energy] = Field(None, description="off-chip access energy per bit "
                                             "(bandwidth model; default from the energy table)")
    dram: Optional[DramConfig] = Field(None, description="bank-level DRAM parameters (model: dram)")

    @model_validator(mode="after")
    def _dram_needs_section(self):
        if self.model == "dram" and self.dram is None:
            raise ValueError("model 'dram' needs a 'dram' section (e.g. dram: {preset: HBM2-2000})")
        if self.model == "bandwidth" and self.dram is not None:
            # the bandwidth pipe reads none of it: refuse rather than ignore a DRAM description
            raise ValueError("a 'dram' section is read only with model: dram (model is 'bandwidth'); set "
                             "memory.model=dram or drop memory.dram")
        return self


class NmSparsityConfig(Strict):
    """N:M structured-sparse tensor cores: weights with at most ``n`` non-zeros in every ``m``
    consecutive values along K, stored as their kept values plus a ``metadata_bits`` index each."""

    n: PositiveInt = Field(2, description="non-zeros per group the hardware accepts")
    m: PositiveInt = Field(4, description="group length along K")
    metadata_bits: PositiveInt = Field(2, description="index bits per kept value")

    def compressed_fraction(self, bits: float) -> float:
        """Bytes of a compressed weight of ``bits``-bit values against the dense weight: the kept
        share of the values, each with its index (2:4: 0.5625 at 16 bits, 0.625 at 8)."""
        return self.n / self.m * (1.0 + self.metadata_bits / bits)


class VectorConfig(Strict):
    """SIMD vector unit for softmax, norms, activations and element-wise ops.
    Throughputs are element-operations per lane per cycle."""

    lanes: PositiveInt = Field(128, description="SIMD lanes")
    add: float = Field(1.0, gt=0, description="adds/compares per lane per cycle")
    mul: float = Field(1.0, gt=0, description="multiplies per lane per cycle")
    exp: float = Field(0.25, gt=0, description="exponentials per lane per cycle")
    div: float = Field(0.25, gt=0, description="divisions per lane per cycle")
    rsqrt: float = Field(0.25, gt=0, description="reciprocal square roots per lane per cycle")
    pipeline_cycles: int = Field(8, ge=0, description="fixed latency of one vector instruction")


class EnergyConfig(Strict):
    """Which energy reference table prices the counters."""

    table: Optional[str] = Field(None, description="energy table name (default: by tech node)")
    leakage_scale: float = Field(1.0, ge=0, description="multiplier on leakage power")
    mac_pj: dict[Precision, Union[Precision, Energy]] = Field(default_factory=dict, description=(
        "per-MAC energy by datapath precision, replacing the table's: an energy at this design's "
        "node (e.g. {int8: 0.25 pJ}) or another precision to price it like (e.g. {int8: fp16}, "
        "as models that charge one ALU energy whatever the word size)"))

    @model_validator(mode="after")
    def _mac_aliases_resolve(self):
        for p, v in self.mac_pj.items():
            if isinstance(v, str) and isinstance(self.mac_pj.get(v), str):
                raise ValueError(f"mac_pj.{p}: {v} is itself priced like {self.mac_pj[v]}; give an energy "
                                 "or a precision the table prices")
        return self


class PipelineConfig(Strict):
    """Pipeline parallelism of a multi-device system (archsim/sim/pipeline.py): the layers split
    over stages, each stage one copy of the devices, the batch over micro-batches."""

    pipeline: PositiveInt = Field(1, description="pipeline stages: the layers split over this many copies "
                                  "of the devices, activations passed between them over the interconnect")
    microbatches: Optional[PositiveInt] = Field(None, description="micro-batches the batch is split into "
                                                "(default: one per stage, at most one per request)")


class ArchBase(Strict):
    """Fields every hardware description has."""

    name: str = Field("unnamed", description="design name")
    uarch: str = Field(..., description="microarchitecture family (see `archsim list`)")
    clock: Frequency = Field(..., description="core clock")
    tech_node_nm: int = Field(28, gt=0, description="technology node in nm (selects energy table)")
    precision: Precision = Field("int8", description="default datapath precision")
    memory: MemoryConfig = Field(default_factory=MemoryConfig)
    vector: VectorConfig = Field(default_factory=VectorConfig)
    energy: EnergyConfig = Field(default_factory=EnergyConfig)
    source: Optional[str] = Field(None, description="where the numbers come from")

    #: why ``energy.mac_pj`` does not apply to this family (None: it does)
    no_mac_prices: ClassVar[Optional[str]] = None

    @model_validator(mode="after")
    def _mac_prices_apply(self):
        if self.no_mac_prices and self.energy.mac_pj:
            raise ValueError(f"energy.mac_pj: {self.no_mac_prices}")
        return self
