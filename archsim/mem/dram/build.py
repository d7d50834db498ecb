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


def build_dram_model(mem_cfg, clock_hz: float):
    from archsim.mem.interface import MEM_DRAM, MemoryModel
    cfg = dram_config(getattr(mem_cfg, "dram", mem_cfg))
    try:
        preset = load_preset(cfg.preset, overrides=cfg.timing or None)
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
    return MemoryModel(MEM_DRAM, params, state, peak_bpc, "dram", info,
                       report_fn=lambda st: report(preset, st, clock_hz))
