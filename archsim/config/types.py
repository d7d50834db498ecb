"""Pydantic field types with units ("1 GHz", "512 KiB", "1.2 TB/s").

Every quantity has physical bounds (a clock of 1e30 GHz or a bandwidth of 1 B/s is a typo, and
would overflow the cycle arithmetic later); every config model (:class:`Strict`) also refuses
booleans for number fields (``rows: true`` is not 1), non-finite floats, and integers beyond
:data:`MAX_INT` (counts and sizes in cycles and elements are int64 downstream).
"""
from __future__ import annotations

import math
import types
import typing
from typing import Annotated, Any, Literal

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, ValidationError, WithJsonSchema,
                      field_validator)

from archsim import units

_NUM_OR_STR = {"anyOf": [{"type": "number"}, {"type": "string"}]}

#: largest integer any config field takes (array rows / columns, counts, lanes, lengths, ...)
MAX_INT = 2**31
#: bounds of the quantities with units (base units: Hz, bytes, bytes/s, s, pJ, W)
MAX_FREQUENCY = 100e9
MIN_BANDWIDTH = 1e6
MAX_BANDWIDTH = 1e18
MAX_BYTES = 2.0**60
MAX_TIME = 1.0
MAX_ENERGY = 1e6
MAX_POWER = 1e6


def _wrap(parser):
    def f(v):
        try:
            return parser(v)
        except units.UnitError as e:
            raise ValueError(str(e)) from None
    return f


def _finite(v: float) -> float:
    if not math.isfinite(v):
        raise ValueError("must be a finite number")
    return v


def _positive(v: float) -> float:
    if not v > 0:
        raise ValueError("must be greater than zero")
    return v


def _nonneg(v: float) -> float:
    if v < 0:
        raise ValueError("must not be negative")
    return v


def _at_most(limit: float, shown: str):
    def f(v: float) -> float:
        if v > limit:
            raise ValueError(f"must be at most {shown}")
        return v
    return f


def _at_least(limit: float, shown: str):
    def f(v: float) -> float:
        if v < limit:
            raise ValueError(f"must be at least {shown}")
        return v
    return f


Frequency = Annotated[float, BeforeValidator(_wrap(units.parse_frequency)), AfterValidator(_finite),
                      AfterValidator(_positive), AfterValidator(_at_most(MAX_FREQUENCY, "100 GHz")),
                      WithJsonSchema({**_NUM_OR_STR, "description": "frequency, e.g. '1 GHz' (bare number: Hz)"})]
Bytes = Annotated[float, BeforeValidator(_wrap(units.parse_bytes)), AfterValidator(_finite),
                  AfterValidator(_positive), AfterValidator(_at_most(MAX_BYTES, "1 EiB (2**60 bytes)")),
                  WithJsonSchema({**_NUM_OR_STR, "description": "size, e.g. '512 KiB' (bare number: bytes)"})]
Bandwidth = Annotated[float, BeforeValidator(_wrap(units.parse_bandwidth)), AfterValidator(_finite),
                      AfterValidator(_at_least(MIN_BANDWIDTH, "1 MB/s")),
                      AfterValidator(_at_most(MAX_BANDWIDTH, "1e18 B/s (1 EB/s)")),
                      WithJsonSchema({**_NUM_OR_STR, "description": "bandwidth, e.g. '1.2 TB/s' (bare number: B/s)"})]
Time = Annotated[float, BeforeValidator(_wrap(units.parse_time)), AfterValidator(_finite), AfterValidator(_nonneg),
                 AfterValidator(_at_most(MAX_TIME, "1 s")),
                 WithJsonSchema({**_NUM_OR_STR, "description": "time, e.g. '100 ns' (bare number: s)"})]
Energy = Annotated[float, BeforeValidator(_wrap(units.parse_energy)), AfterValidator(_finite), AfterValidator(_nonneg),
                   AfterValidator(_at_most(MAX_ENERGY, "1e6 pJ (1 uJ)")),
                   WithJsonSchema({**_NUM_OR_STR, "description": "energy, e.g. '3.9 pJ' (bare number: pJ)"})]
Power = Annotated[float, BeforeValidator(_wrap(units.parse_power)), AfterValidator(_finite), AfterValidator(_nonneg),
                  AfterValidator(_at_most(MAX_POWER, "1 MW")),
                  WithJsonSchema({**_NUM_OR_STR, "description": "power, e.g. '40 W' (bare number: W)"})]

Precision = Literal["fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4", "int16", "int32",
                    "mxfp8", "mxfp4", "mxint8"]

#: bits per element of each precision (block formats: element bits; scales counted separately)
PRECISION_BITS = {"fp32": 32, "tf32": 32, "bf16": 16, "fp16": 16, "fp8": 8, "int8": 8, "int4": 4,
                  "int16": 16, "int32": 32, "mxfp8": 8, "mxfp4": 4, "mxint8": 8}


def precision_bytes(p: str) -> float:
    return PRECISION_BITS[p] / 8.0


def _is_number(tp) -> bool:
    """An int or float annotation (possibly constrained, possibly Optional)."""
    while typing.get_origin(tp) is Annotated:
        tp = typing.get_args(tp)[0]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return bool(args) and all(_is_number(a) for a in args)
    return tp in (int, float)


class NumberError(ValueError):
    """A refused number inside a field; ``subpath`` leads from the field to it (list indices,
    dict keys), so the loader can name e.g. ``memory.dram.timing.CL``."""

    def __init__(self, message: str, subpath: tuple = ()):
        super().__init__(message)
        self.subpath = tuple(subpath)


def _check_numbers(given: Any, value: Any, sub: tuple = ()) -> None:
    """Walk a validated value next to what was given and raise :class:`NumberError` for the
    first refused number: a boolean that became a number, a non-finite float, an integer beyond
    :data:`MAX_INT`. Nested models check their own fields."""
    if isinstance(value, BaseModel) or isinstance(value, (bool, str)) or value is None:
        return
    if isinstance(value, dict):
        if isinstance(given, dict):
            for k, v in value.items():
                if k in given:
                    _check_numbers(given[k], v, sub + (k,))
        return
    if isinstance(value, (list, tuple)):
        if isinstance(given, (list, tuple)) and len(given) == len(value):
            for i, (g, v) in enumerate(zip(given, value)):
                _check_numbers(g, v, sub + (i,))
        return
    if not isinstance(value, (int, float)):
        return
    if isinstance(given, bool):
        raise NumberError("expected a number, got a boolean", sub)
    if isinstance(value, float) and not math.isfinite(value):
        raise NumberError("must be a finite number", sub)
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise NumberError(f"must be at most {MAX_INT} (2**31) in size", sub)


class Strict(BaseModel):
    """Base of every config model: unknown keys are errors; booleans are not numbers; numbers
    are finite and integers at most :data:`MAX_INT`."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    @field_validator("*", mode="wrap")
    @classmethod
    def _sane_numbers(cls, v, handler, info):
        field = cls.model_fields.get(info.field_name) if info.field_name else None
        try:
            out = handler(v)
        except ValidationError:
            if isinstance(v, bool) and field is not None and _is_number(field.annotation):
                raise NumberError("expected a number, got a boolean") from None
            raise
        _check_numbers(v, out)
        return out
