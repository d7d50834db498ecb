"""Config model of DRAM-bank processing-in-memory (HBM-PIM / AiM / Newton / AttAcc)."""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, PositiveInt, model_validator

from archsim.config.common import ArchBase
from archsim.config.types import Bytes, Precision, Strict


class PimUnitConfig(Strict):
    """The processing units next to the banks and how the host drives them."""

    placement: Literal["bank", "bankgroup", "buffer_die"] = Field(
        "bank", description="where the MAC units sit: next to the banks, one per bank group (reads "
        "through the bank-group mux) or on the buffer (logic) die (reads over the TSVs)")
    banks_per_unit: PositiveInt = Field(1, description="banks sharing one unit (placement bank; "
                                        "HBM-PIM: 2, AiM/Newton/AttAcc: 1)")
    simd_lanes: PositiveInt = Field(16, description="multipliers per unit; must divide the elements of "
                                    "one column burst")
    precision: Precision = Field("fp16", description="operand precision of the units")
    clock_ratio: float = Field(1.0, gt=0, description="unit clock / DRAM command clock (1/tCK)")
    global_buffer_bytes: Bytes = Field(256, description="input-vector buffer per unit group "
                                       "(HBM-PIM GRF_A: 8 x 32 B)")
    output_registers: PositiveInt = Field(8, description="output rows a unit accumulates at once "
                                          "(HBM-PIM GRF_B: 8)")
    output_group: Literal["exact", "padded"] = Field(
        "exact", description="a GEMV's last output group per unit: 'exact' accumulates only the rows "
        "left; 'padded' always a full group of output_registers rows, zero weights filling it (a "
        "microkernel whose loop counts are fixed to the register file, as HBM-PIM's CRF GEMV: a "
        "1024 x 1024 GEMV on 512 units costs the MACs of 4096 x 1024)")
    mac_interval_ck: Optional[PositiveInt] = Field(None, description="minimum gap between all-bank / "
                                                   "same-bank MAC commands without a power limit "
                                                   "(default tCCD_L)")
    mac_interval_power_ck: Optional[PositiveInt] = Field(None, description="the same gap under the "
                                                         "power limit (default: mac_interval_ck)")
    power_constrained: bool = Field(True, description="apply the power-limited MAC interval")
    pim_activation: Literal["free", "faw"] = Field(
        "free", description="how a PIM activation (all-bank, half-bank, same-bank) opens its banks: "
        "'free' at once, limited by the bank relations only (AttAcc's HBM3-PIM model, Samsung's "
        "PIMSimulator); 'faw' as ganged activations of four banks (Newton's G_ACT of a bank group), "
        "one per tFAW, each counting as four ACTs in the window, so an all-bank activation of a "
        "16-bank rank opens its last bank group 3 tFAW after its first (NewtonSim, as NeuPIMs "
        "ships it: G_ACT -> G_ACT >= tFAW in a rank); an activation of fewer than four banks per rank "
        "(per-bank MACs on the buffer die) is not ganged, all-bank writes are")
    buffer_write: Literal["dq", "row"] = Field(
        "dq", description="input-vector writes into the units: a separate data-path command (AttAcc "
        "WRGB, AiM GWRITE) or DRAM writes to a reserved row in all-bank mode (HBM-PIM GRF writes)")
    stream: Literal["channel", "pseudo_channel"] = Field(
        "channel", description="scope of one all-bank command (and of one command stream)")
    window: PositiveInt = Field(32, le=65536, description="PIM request-buffer entries per stream")
    layout: Literal["head", "row"] = Field(
        "head", description="attention: each (request, head) in one channel (head-wise, AttAcc) or "
        "split across all channels (row-wise)")
    request_placement: Literal["striped", "round_robin", "min_load"] = Field(
        "striped", description="attention (head-wise layout): which channel holds which KV heads. "
        "'striped' (AttAcc's generator): the (request, KV head) tasks dealt to the channels in "
        "request order, one per channel per iteration, each iteration's units in lockstep over its "
        "longest task; 'round_robin': all KV heads of a request in one channel, the requests to the "
        "channels of every stack in turn (Newton-style, NeuPIMs' rr traces); 'min_load': the same, "
        "longest request first, each to the channel with the fewest KV rows so far (NeuPIMs' greedy "
        "channel load balancing, clb traces). With one channel per request every channel works through its own "
        "queue and the attention lasts as long as the busiest channel")
    softmax: Literal["buffer_die", "host"] = Field("buffer_die", description="where softmax runs")
    max_seq_len: PositiveInt = Field(4096, description="KV rows reserved per head (address layout)")
    reference_trace: bool = Field(
        False, description="attention: reproduce the published AttAcc trace generator command for "
        "command, including its repeats (the first head of a pair has its context pass issued twice, "
        "the last odd head's softmax / MVGB block is repeated per MAC chunk)")
    refresh_policy: Literal["blocking", "postponed"] = Field(
        "blocking", description="all-bank refresh when tREFI elapses: 'blocking' (Ramulator-style: "
        "precharge all, REF, every other command waits) or 'postponed' (DRAMSim2 / PIMSimulator "
        "controller: each open bank is precharged as soon as it may close, other commands, ACTs "
        "included, keep issuing meanwhile, and REF goes out right behind the last PRE once no bank is "
        "open; the controller holds one pending refresh, so one still waiting when the next rank's "
        "refresh falls due is never issued, and with one rank the next due merges into it)")
    precharge_policy: Literal["on_demand", "eager"] = Field(
        "on_demand", description="when open rows close: 'on_demand' (open page: a row closes when "
        "a request needs another row of its bank) or 'eager' (DRAMSim2 / PIMSimulator controller: in "
        "a cycle with nothing else to issue, a bank whose row no queued request before the next "
        "barrier needs is precharged as soon as it may close)")
    command_bus: Literal["split", "single"] = Field(
        "split", description="'split': a row and a column command per cycle (HBM's separate row / "
        "column command buses); 'single': one command per cycle, as DRAMSim2-derived controllers "
        "(PIMSimulator) issue")
    scheduler: Literal["oldest_ready", "column_first"] = Field(
        "oldest_ready", description="which command issues when several may: 'oldest_ready' (the "
        "oldest request whose next command meets its timing, row or column) or 'column_first' "
        "(DRAMSim2 / PIMSimulator command queue: any column command that may issue goes first, an "
        "ACT only when none may)")
    host_mapping: Literal["bankgroup_column_bank", "bank_bankgroup_column"] = Field(
        "bankgroup_column_bank", description="how the host's plain streams (the no-PIM baselines, "
        "bandwidth runs) spread consecutive bursts over a pseudo-channel, lowest address bits first: "
        "'bankgroup_column_bank' (bank group, column, bank, row: four banks open, consecutive bursts "
        "alternate bank groups) or 'bank_bankgroup_column' (bank, bank group, column, row: every bank "
        "open on the same row, one burst each in turn; PIMSimulator's Scheme8 "
        "rank:row:col:bg:bank:chan)")
    barrier_policy: Literal["lookahead", "tagged"] = Field(
        "lookahead", description="'lookahead' (Ramulator-style request buffer: no column command "
        "passes a barrier, but rows behind it open early); 'tagged' (PIMSimulator / DRAMSim2 command "
        "queue: a barrier tags the last request of its group, which issues only at the head of the "
        "queue; nothing behind it issues and no row behind it opens until it is at the head)")
    intake: Literal["window", "one_per_cycle"] = Field(
        "window", description="how requests reach the controller: 'window' (the next requests are "
        "there as soon as the request buffer has room) or 'one_per_cycle' (DRAMSim2 / PIMSimulator: "
        "one transaction moves into the command queue per cycle)")
    stream_end: Literal["last_command", "last_data"] = Field(
        "last_command", description="when a command stream is done: with its last command, or when "
        "its last data has left the bus (PIMSimulator: a write's data WL + BL/2 after the command, a "
        "read's data the command transfer + RL + BL/2 after it)")
    refresh_ranks: PositiveInt = Field(
        1, description="ranks behind a stream's controller whose refreshes the controller staggers "
        "(DRAMSim2 / PIMSimulator: rank r refreshes first at (r + 1) tREFI / ranks); the stream "
        "runs on the first rank")
    stacks: PositiveInt = Field(1, description="memory devices (stacks / chips) working in parallel")


    @model_validator(mode="after")
    def _whole_requests_need_heads(self):
        if self.request_placement != "striped" and self.layout != "head":
            raise ValueError(f"request_placement: {self.request_placement} keeps a request's heads in one "
                             f"channel; it needs layout: head (layout: row splits every head over all "
                             f"channels)")
        return self


class DramPimConfig(ArchBase):
    """A DRAM device (bank-level model) with processing units near or in the banks."""

    uarch: Literal["dram_pim"] = "dram_pim"
    pim: PimUnitConfig = Field(default_factory=PimUnitConfig)

    @model_validator(mode="after")
    def _needs_dram(self):
        if self.memory.model != "dram" or self.memory.dram is None:
            raise ValueError("dram_pim needs memory.model: dram with a memory.dram section "
                             "(e.g. memory: {model: dram, dram: {preset: HBM3-6400}})")
        return self
