"""The memory-model seam of the timing kernel.

The shared timing kernel (``archsim.sim.timing``) never knows which memory model it
talks to. For every off-chip transfer (a tile load or store) it calls
:func:`mem_transfer` with

- ``kind``      model id (``MEM_BANDWIDTH``, ``MEM_DRAM``, ...),
- ``params``    float64[:] model parameters (built by :func:`build_memory`),
- ``state``     int64[:, :] mutable model state (bank state, channel free times, ...),
- ``counters``  int64[:] the per-layer memory counters row (slots ``MC_*`` below),
- ``addr``      first byte address of the transfer,
- ``nbytes``    length in bytes (a contiguous range; strided tiles are split by the lowerer),
- ``is_write``  True for stores,
- ``t_issue``   accelerator cycle at which the request is issued,

and gets back the accelerator cycle at which the transfer completes. Requests reach the
model in non-decreasing ``t_issue`` order (the timing kernel is event ordered).

A model converts between accelerator cycles and its own clock itself (``params``).
Adding a model means: a ``MEM_*`` id, a branch in :func:`mem_transfer`, and a builder
registered in :data:`BUILDERS`; the timing kernel and the CLI stay untouched.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
from numba import njit

from archsim.mem.dram.engine import dram_transfer

MEM_BANDWIDTH = 0
MEM_DRAM = 1

# Memory counter slots (per layer). Models fill the ones they know.
MC_READ_BYTES = 0
MC_WRITE_BYTES = 1
MC_READ_REQS = 2
MC_WRITE_REQS = 3
MC_ACT = 4
MC_PRE = 5
MC_RD = 6
MC_WR = 7
MC_REF = 8
MC_ROW_HITS = 9
MC_ROW_MISSES = 10
MC_ROW_CONFLICTS = 11
MC_BUSY_CYCLES = 12        # cycles the data bus (any channel) was transferring, accelerator clock
MC_PIM_MAC = 13
MC_PIM_OTHER = 14
MC_SPARE = 15
N_MEM_COUNTERS = 16
MEM_COUNTER_NAMES = (
    "read_bytes", "write_bytes", "read_reqs", "write_reqs", "act", "pre", "rd", "wr",
    "ref", "row_hits", "row_misses", "row_conflicts", "busy_cycles", "pim_mac",
    "pim_other", "spare",
)

# --- bandwidth model -------------------------------------------------------------
# params: [bytes_per_cycle, latency_cycles]
# state:  [[bus_free_cycle]]


@njit(cache=True)
def bw_transfer(params, state, counters, addr, nbytes, is_write, t_issue):
    bpc = params[0]
    lat = np.int64(params[1])
    dur = np.int64(np.ceil(nbytes / bpc))
    if dur < 1:
        dur = 1
    begin = t_issue if t_issue > state[0, 0] else state[0, 0]
    state[0, 0] = begin + dur
    counters[MC_BUSY_CYCLES] += dur
    if is_write:
        counters[MC_WRITE_BYTES] += nbytes
        counters[MC_WRITE_REQS] += 1
    else:
        counters[MC_READ_BYTES] += nbytes
        counters[MC_READ_REQS] += 1
    return begin + dur + lat


@njit(cache=True)
def mem_transfer(kind, params, state, counters, addr, nbytes, is_write, t_issue):
    """Time one off-chip transfer; returns its completion cycle."""
    if kind == MEM_DRAM:
        return dram_transfer(params, state, counters, addr, nbytes, is_write, t_issue)
    return bw_transfer(params, state, counters, addr, nbytes, is_write, t_issue)


@dataclass
class MemoryModel:
    """A built memory model: what the timing kernel needs plus what the report needs."""

    kind: int
    params: np.ndarray
    state: np.ndarray
    peak_bytes_per_cycle: float
    name: str = "bandwidth"
    info: dict = field(default_factory=dict)
    report_fn: Optional[Callable] = None    # state -> dict (per-channel utilisation, ...)
    #: an unloaded read's latency in accelerator cycles (issue to the last byte back, less the
    #: transfer itself): what a double-buffered load waits beyond its bytes
    latency_cycles: float = 0.0

    def fresh_state(self) -> np.ndarray:
        return self.state.copy()

    def report(self, state: np.ndarray) -> dict:
        """Model-specific summary of a finished run's state (empty for simple models)."""
        return self.report_fn(state) if self.report_fn is not None else {}


def build_bandwidth(mem_cfg, clock_hz: float) -> MemoryModel:
    bpc = mem_cfg.bandwidth / clock_hz
    lat = round(mem_cfg.latency * clock_hz)
    params = np.array([bpc, float(lat)], dtype=np.float64)
    state = np.zeros((1, 1), dtype=np.int64)
    return MemoryModel(MEM_BANDWIDTH, params, state, bpc, "bandwidth",
                       {"bytes_per_cycle": bpc, "latency_cycles": lat}, latency_cycles=float(lat))


def build_dram(mem_cfg, clock_hz: float) -> MemoryModel:
    """Bank-level DRAM model (``memory.model: dram``); parameters in ``memory.dram``."""
    from archsim.mem.dram.build import build_dram_model
    return build_dram_model(mem_cfg, clock_hz)


BUILDERS = {"bandwidth": build_bandwidth, "dram": build_dram}


def build_memory(mem_cfg, clock_hz: float) -> MemoryModel:
    """Build the model named by ``mem_cfg.model`` for an accelerator clocked at ``clock_hz``."""
    return BUILDERS[mem_cfg.model](mem_cfg, clock_hz)
