"""Builder of the DRAM memory model for the timing kernel (``memory.model: dram``)."""
from __future__ import annotations

import numpy as np
from pydantic import ValidationError

from archsim.config.dram import DramConfig
from archsim.errors import ConfigError
from archsim.mem.dram.engine import build_state, report
from archsim.mem.dram.mapping import build_mapping
from archsim.mem.dram.presets import load_preset


def dram_config(section, path: str = "memory.dram") -> DramConfig:
    if isinstance(section, DramConfig):
        return section
    try:
        return DramConfig(**(section or {}))
    except ValidationError as e:
        probs = [(".".join([path] + [str(x) for x in err["loc"]]), err["msg"]) for err in e.errors()]
        raise ConfigError(probs) from None


#: settings of ``memory.dram`` that only the trace-replay controller (``archsim dram replay``)
#: honours, with what to use instead in the models of a simulated accelerator
REPLAY_ONLY = {
    "queue_depth": "its look-ahead window is memory.dram.lookahead",
    "write_queue_depth": "its look-ahead window is memory.dram.lookahead",
    "write_high_watermark": "it has no separate write queue to drain",
    "write_low_watermark": "it has no separate write queue to drain",
    "frontend_per_cycle": "its requests are the simulated accelerator's transfers",
    "page_policy": "it keeps rows open (open page)",
    "cap": "it keeps rows open (open page)",
}


def replay_only_settings(cfg: DramConfig, model: str, path: str = "memory.dram", honours=()) -> list:
    """Problems (path, message) for settings ``cfg`` changes from their defaults that ``model``
    (the accelerator's DRAM transfer engine, or the PIM command engine) would ignore: the
    request queues, write drain, frontend and page policy of the trace-replay controller, and
    per-bank refresh (both refresh all banks every tREFI); a rank count unless ``model``
    ``honours`` ``ranks`` (the transfer engine does)."""
    base = DramConfig()
    probs = []
    if cfg.ranks is not None and "ranks" not in honours:
        probs.append((f"{path}.ranks", f"set to {cfg.ranks}, but {model} takes the preset's organisation; "
                                       "choose a preset with the ranks wanted"))
    for field, alt in REPLAY_ONLY.items():
        if getattr(cfg, field) != getattr(base, field):
            probs.append((f"{path}.{field}", f"set to {getattr(cfg, field)!r}, but only the trace-replay "
                                             f"controller (archsim dram replay) models it; {model}: {alt}"))
    if cfg.refresh == "per_bank":
        probs.append((f"{path}.refresh", f"per_bank is modelled by the trace-replay controller only (archsim "
                                         f"dram replay --refresh per_bank); {model} refreshes all banks every "
                                         f"tREFI: set all_bank or off"))
    return probs


def build_dram_model(mem_cfg, clock_hz: float):
    from archsim.mem.interface import MEM_DRAM, MemoryModel
    cfg = dram_config(getattr(mem_cfg, "dram", mem_cfg))
    probs = replay_only_settings(cfg, "the transfer engine of a simulated accelerator", honours=("ranks",))
    if probs:
        raise ConfigError(probs)
    try:
        preset = load_preset(cfg.preset, overrides=cfg.timing or None, ranks=cfg.ranks)
    except ConfigError as e:
        raise ConfigError([(f"memory.dram.{p}" if p else "memory.dram.preset", m) for p, m in e.problems]) from None
    C = cfg.channels or preset.channels
    if C & (C - 1):
        raise ConfigError([("memory.dram.channels", f"must be a power of two, got {C}")])
    mapping = build_mapping(preset, cfg.mapping, C, cfg.xor, cfg.channel_interleave)
    state = build_state(preset, mapping, C, cfg.fidelity, cfg.lookahead, cfg.refresh)
    tick_hz = 1e12 / preset.tick_ps
    params = np.array([tick_hz / clock_hz, clock_hz / tick_hz], dtype=np.float64)
    peak_bpc = preset.peak_bytes_per_tick / preset.channels * C * tick_hz / clock_hz
    info = {"preset": preset.name, "channels": C, "mapping": cfg.mapping, "fidelity": cfg.fidelity,
            "peak_GBps": peak_bpc * clock_hz / 1e9, "tick_ps": preset.tick_ps, "refresh": cfg.refresh}
    # a read to a closed row: activate, column read, burst (tRCD + CL + BL)
    t = preset.timing
    latency = (t["nRCDRD"] + t["nCL"] + t["nBL"]) * preset.tck_ps * 1e-12 * clock_hz
    return MemoryModel(MEM_DRAM, params, state, peak_bpc, "dram", info,
                       report_fn=lambda st: report(preset, st, clock_hz), latency_cycles=latency)
