"""The ``memory.dram`` section of an arch config (``memory.model: dram``)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

from pydantic import AfterValidator, Field, field_validator, model_validator

from archsim.config.types import Strict


def _timing_name(name: str) -> str:
    """A timing override's name as the DRAM presets spell it (``CL``, ``CWL``, ``tRCD``, ``tRP``,
    ...; see ``archsim.mem.dram.presets.TIMING_KEYS``), or a ValueError with the spelling meant."""
    from archsim.mem.dram.presets import unknown_timing
    bad = unknown_timing(name)
    if bad:
        raise ValueError(bad)
    return name


def _timing_value(v: float) -> float:
    if not v > 0:
        raise ValueError("a timing must be greater than zero (CK cycles; tCK_ps in picoseconds)")
    return v


TimingName = Annotated[str, AfterValidator(_timing_name)]
TimingValue = Annotated[float, AfterValidator(_timing_value)]


class DramConfig(Strict):
    """Bank-level DRAM model parameters. Defaults reproduce the controller configuration of
    the peer runs in ``validation/dram`` (32-entry read/write queues per channel, writes
    drained between 80 % / 20 % occupancy, FR-FCFS, open page, all-bank refresh)."""

    preset: str = Field("HBM2-2000", description="DRAM preset name (arch_configs/dram/<name>.yaml) or path")
    channels: Optional[int] = Field(None, gt=0, description="number of channels (default: the preset's)")
    ranks: Optional[int] = Field(None, gt=0, description=(
        "ranks per channel (default: the preset's; standards with a rank level: DDR4, DDR5, LPDDR5)"))
    mapping: str = Field("RoBaRaCoCh", description="address mapping: RoBaRaCoCh, ChRaBaRoCo, MOP4CLXOR "
                         "or a bit order MSB->LSB of Ro/Ba/Bg/Ra/Sid/Co/Ch tokens")
    xor: Literal["none", "bank", "channel", "both"] = Field(
        "none", description="XOR the bank (and/or channel) index with low row bits")
    channel_interleave: Literal["cacheline", "mapping"] = Field(
        "cacheline", description="channel bits right above the transaction offset (cacheline) or where "
        "the mapping's Ch token puts them")
    # settings of the trace-replay controller (archsim dram replay); the models of a simulated
    # accelerator (transfer engine) and of a PIM device refuse a change (build.REPLAY_ONLY)
    queue_depth: int = Field(32, gt=0, description=(
        "read queue entries per channel (trace-replay controller; the transfer engine's window is "
        "lookahead)"))
    write_queue_depth: Optional[int] = Field(None, gt=0, description=(
        "write queue entries (default: queue_depth; trace-replay controller)"))
    write_high_watermark: float = Field(0.8, gt=0, le=1, description=(
        "switch to write drain above this occupancy (trace-replay controller)"))
    write_low_watermark: float = Field(0.2, ge=0, lt=1, description=(
        "back to reads below this occupancy (trace-replay controller)"))
    page_policy: Literal["open", "closed", "closed_cap"] = Field("open", description=(
        "row-buffer policy: open, closed (auto-precharge unless a queued request hits the row) or "
        "closed_cap (a row closes after cap column accesses); closed and closed_cap: trace-replay controller"))
    cap: int = Field(4, ge=1, description=(
        "closed_cap: column accesses after which a row closes (trace-replay controller)"))
    refresh: Literal["all_bank", "per_bank", "off"] = Field("all_bank", description=(
        "refresh scheme (per_bank: trace-replay controller)"))
    fidelity: Literal["row_visit", "burst"] = Field(
        "row_visit", description="transfer engine of the timing kernel: row-visit aggregation or per burst")
    frontend_per_cycle: int = Field(16, ge=1, description=(
        "requests the trace frontend offers per DRAM tick (peer: 16; trace-replay controller)"))
    lookahead: int = Field(32, ge=1, description="transfer engine: bursts a row command may run ahead of "
                           "the column stream (the queue the engine models)")
    timing: dict[TimingName, TimingValue] = Field(
        default_factory=dict, description="timing overrides in CK cycles under the presets' names (CL, CWL, "
        "tRCD, tRP, tRAS, tFAW, ...; tCK_ps in ps), e.g. {tRCD: 16}")

    @field_validator("refresh", mode="before")
    @classmethod
    def _refresh_off(cls, v):
        # YAML 1.1 reads an unquoted `off` as false
        return "off" if v is False else v

    @model_validator(mode="after")
    def _watermarks(self):
        if self.write_low_watermark >= self.write_high_watermark:
            raise ValueError("write_low_watermark must be below write_high_watermark")
        return self
