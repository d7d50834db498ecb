"""Config model of a digital SRAM compute-in-memory chip (TranCIM-like)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, PositiveInt, field_validator, model_validator

from archsim.config.common import ArchBase
from archsim.config.types import PRECISION_BITS, Bytes, Strict


class MacroConfig(Strict):
    """One CIM macro: ``rows`` x ``cols`` bit-cells. A weight occupies ``weight_bits``
    adjacent columns of one row, so a macro holds ``rows`` x ``cols / weight_bits`` weights
    and one MAC wave (an input vector of ``rows`` values fed bit-serially) produces
    ``cols / weight_bits`` dot products of length ``rows``."""

    rows: PositiveInt = Field(..., description="bit-cell rows = inputs summed by one adder tree")
    cols: PositiveInt = Field(..., description="bit-cell columns")
    weight_bits: PositiveInt = Field(8, description="bits per weight (adjacent columns); must divide cols")
    input_bits_per_cycle: PositiveInt = Field(1, description="input bits fed per cycle (bit-serial: 1)")
    max_input_bits: PositiveInt = Field(16, description="widest input precision the shift-accumulator supports")
    input_bits: Optional[PositiveInt] = Field(None, description="input precision fed to the macros "
                                              "(default: the workload's activation precision)")
    pipeline_cycles: int = Field(4, ge=0, description="adder-tree + shift-accumulate latency per wave set")
    write_cycles_per_row: PositiveInt = Field(1, description="cycles to write one row (one wordline) "
                                              "through the macro's write port")
    bitline_transpose: bool = Field(True, description="write K^T along the bitlines without a transpose "
                                    "pass (TranCIM's bitline-transpose macro)")
    count: PositiveInt = Field(..., description="number of macros on the chip")

    @field_validator("weight_bits")
    @classmethod
    def _divides(cls, v, info):
        cols = info.data.get("cols")
        if cols and cols % v:
            raise ValueError(f"weight precision {v} bits does not divide the macro's {cols} columns")
        return v

    @field_validator("input_bits")
    @classmethod
    def _supported(cls, v, info):
        mx = info.data.get("max_input_bits")
        if v is not None and mx and v > mx:
            raise ValueError(f"input precision {v} bits exceeds the supported {mx} bits (max_input_bits)")
        return v

    @model_validator(mode="after")
    def _check(self):
        if self.input_bits_per_cycle > self.max_input_bits:
            raise ValueError(f"input_bits_per_cycle ({self.input_bits_per_cycle}) exceeds "
                             f"max_input_bits ({self.max_input_bits})")
        return self

    @property
    def weights_per_row(self) -> int:
        return self.cols // self.weight_bits

    @property
    def bytes(self) -> float:
        return self.rows * self.cols / 8.0


class BufferConfig(Strict):
    """Global buffer: activations between layers, partial sums, K/V staging."""

    size: Bytes = Field(..., description="global buffer size")
    banks: PositiveInt = Field(8, description="banks (an access costs the energy of one bank)")
    activation_budget: float = Field(0.5, gt=0, le=1, description="fraction of the buffer that may hold "
                                     "one activation tensor before it spills off-chip")
    accumulator_bytes: PositiveInt = Field(4, description="bytes per partial sum")


class MappingConfig(Strict):
    """How weight tiles are placed in macros."""

    stream_macros: Optional[int] = Field(None, ge=1, description="macros reserved for rewrites "
                                         "(default: all macros when the weights do not fit, else "
                                         "what is left after pinning)")
    stream_groups: PositiveInt = Field(2, le=65536, description="groups the rewrite macros rotate through (2 = "
                                       "one group computes while the other is rewritten)")
    pin_weights: bool = Field(True, description="keep as many weight tiles resident across tokens as fit")
    min_pinned_fraction: float = Field(0.1, ge=0, le=1, description="when the weights do not all fit, "
                                       "pin a part of them only if that keeps at least this fraction "
                                       "of them resident (otherwise every macro streams)")
    kv_resident: bool = Field(True, description="keep the KV cache resident across decode steps when it "
                              "fits (then only the new token's K/V is written per step)")
    transpose_elements_per_cycle: PositiveInt = Field(16, description="transpose unit throughput "
                                                      "(used for K^T without bitline transpose)")


class SramCimConfig(ArchBase):
    """A chip of digital SRAM CIM macros, a global buffer, a vector unit and off-chip memory."""

    uarch: Literal["sram_cim"] = "sram_cim"
    no_mac_prices = ("an SRAM CIM macro is priced per bit-level partial product "
                     "(energy/tables/sram_cim.yaml), not per MAC; this field does not apply")
    mode: Literal["pipeline", "parallel"] = Field(
        "pipeline", description="pipeline: attention chains QK^T -> softmax -> SV over two macro "
        "partitions head after head, K/V written straight into macros; parallel: every layer "
        "split across all macros, one op after the other. FC layers always run in parallel mode.")
    macro: MacroConfig
    buffer: BufferConfig
    mapping: MappingConfig = Field(default_factory=MappingConfig)

    @model_validator(mode="after")
    def _buffer_holds_a_wave(self):
        # one MAC wave of one macro goes through the global buffer: its input slice (macro.rows
        # values) is read from it and its dot products' partial sums are written back
        mc, b = self.macro, self.buffer
        bits = mc.input_bits or PRECISION_BITS[self.precision]
        inputs = -(-mc.rows * bits // 8)
        sums = mc.weights_per_row * b.accumulator_bytes
        if b.size < inputs + sums:
            raise ValueError(
                f"buffer.size: {b.size:.0f} B cannot hold one MAC wave of a macro: its input slice "
                f"({mc.rows} values of {bits} bits = {inputs} B) and its partial sums ({mc.weights_per_row} x "
                f"{b.accumulator_bytes} B = {sums} B) need {inputs + sums} B")
        return self
