"""Pydantic field types with units ("1 GHz", "512 KiB", "1.2 TB/s")."""
from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, WithJsonSchema

from archsim import units

_NUM_OR_STR = {"anyOf": [{"type": "number"}, {"type": "string"}]}


def _wrap(parser):
    def f(v):
        try:
            return parser(v)
        except units.UnitError as e:
            raise ValueError(str(e)) from None
    return f


def _positive(v: float) -> float:
    if not v > 0:
        raise ValueError("must be greater than zero")
    return v


def _nonneg(v: float) -> float:
    if v < 0:
        raise ValueError("must not be negative")
    return v


Frequency = Annotated[float, BeforeValidator(_wrap(units.parse_frequency)), AfterValidator(_positive),
                      WithJsonSchema({**_NUM_OR_STR, "description": "frequency, e.g. '1 GHz' (bare number: Hz)"})]
Bytes = Annotated[float, BeforeValidator(_wrap(units.parse_bytes)), AfterValidator(_positive),
                  WithJsonSchema({**_NUM_OR_STR, "description": "size, e.g. '512 KiB' (bare number: bytes)"})]
Bandwidth = Annotated[float, BeforeValidator(_wrap(units.parse_bandwidth)), AfterValidator(_positive),
                      WithJsonSchema({**_NUM_OR_STR, "description": "bandwidth, e.g. '1.2 TB/s' (bare number: B/s)"})]
Time = Annotated[float, BeforeValidator(_wrap(units.parse_time)), AfterValidator(_nonneg),
                 WithJsonSchema({**_NUM_OR_STR, "description": "time, e.g. '100 ns' (bare number: s)"})]
Energy = Annotated[float, BeforeValidator(_wrap(units.parse_energy)), AfterValidator(_nonneg),
                   WithJsonSchema({**_NUM_OR_STR, "description": "energy, e.g. '3.9 pJ' (bare number: pJ)"})]
Power = Annotated[float, BeforeValidator(_wrap(units.parse_power)), AfterValidator(_nonneg),
                  WithJsonSchema({**_NUM_OR_STR, "description": "power, e.g. '40 W' (bare number: W)"})]

Precision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "int16", "int32",
                    "mxfp8", "mxfp4", "mxint8"]

#: bits per element of each precision (block formats: element bits; scales counted separately)
PRECISION_BITS = {"fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4,
                  "int16": 16, "int32": 32, "mxfp8": 8, "mxfp4": 4, "mxint8": 8}


def precision_bytes(p: str) -> float:
    return PRECISION_BITS[p] / 8.0


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_default=True)
