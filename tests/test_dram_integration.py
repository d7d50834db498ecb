"""``memory.model: dram`` in an arch config: the builder, the MEM_DRAM branch of mem_transfer,
counters, and analytical bounds on a transfer."""
from types import SimpleNamespace

import numpy as np
import pytest

from archsim.config.dram import DramConfig
from archsim.errors import ConfigError
from archsim.mem.interface import (MC_ACT, MC_BUSY_CYCLES, MC_RD, MC_READ_BYTES, MC_ROW_HITS, MEM_DRAM,
                                   N_MEM_COUNTERS, BUILDERS, build_memory, mem_transfer)


def model(**kw):
    return build_memory(SimpleNamespace(model="dram", dram=kw), 1.0e9)


def test_builder_is_registered_and_selects_the_dram_branch():
    assert "dram" in BUILDERS
    m = model(preset="HBM2-2000")
    assert m.kind == MEM_DRAM and m.name == "dram"
    assert m.peak_bytes_per_cycle == pytest.approx(256.0)      # 256 GB/s at 1 GHz


def test_transfer_is_bounded_by_peak_and_latency():
    m = model(preset="HBM2-2000", mapping="RoCoBaRaCh")
    s = m.fresh_state()
    cnt = np.zeros(N_MEM_COUNTERS, np.int64)
    nb = 1 << 20
    done = mem_transfer(m.kind, m.params, s, cnt, 0, nb, False, 100)
    # cannot beat the data bus (nb / peak) plus one row miss (tRCD + CL + BL = 14 + 14 + 2 ns)
    assert done >= 100 + nb / 256.0 + 30
    assert cnt[MC_READ_BYTES] == nb and cnt[MC_RD] == nb // 32
    assert cnt[MC_ACT] >= nb // 1024 and cnt[MC_ROW_HITS] > 0 and cnt[MC_BUSY_CYCLES] > 0
    rep = m.report(s)
    assert len(rep["channel_utilization"]) == 8


def test_memory_config_takes_a_dram_section():
    from archsim.config.common import MemoryConfig
    mc = MemoryConfig(model="dram", dram={"preset": "DDR4-3200", "lookahead": 16})
    assert isinstance(mc.dram, DramConfig) and mc.dram.lookahead == 16
    m = build_memory(mc, 1.0e9)
    assert m.info["preset"] == "DDR4-3200"
    # a trace-replay controller setting the transfer engine does not model is refused, not ignored
    mc = MemoryConfig(model="dram", dram={"preset": "DDR4-3200", "queue_depth": 16})
    with pytest.raises(ConfigError, match="memory.dram.queue_depth"):
        build_memory(mc, 1.0e9)


def test_bad_dram_field_is_a_config_error():
    with pytest.raises(ConfigError, match="memory.dram"):
        model(preset="HBM2-2000", queue_depth=-1)
    with pytest.raises(ConfigError, match="unknown DRAM preset"):
        model(preset="HBM7")


def test_dram_section_under_the_bandwidth_model_is_refused():
    from archsim.config.common import MemoryConfig
    from archsim.errors import ArchsimError
    with pytest.raises(ValueError, match="model: dram"):
        MemoryConfig(model="bandwidth", dram={"preset": "HBM3-6400"})
    from archsim.config import load_arch
    with pytest.raises(ArchsimError) as e:
        load_arch("systolic_128x128", ["memory.dram.preset=NOPE"])
    assert "memory" in str(e.value) and "model: dram" in str(e.value)
    assert load_arch("systolic_128x128", ["memory.model=dram", "memory.dram.preset=HBM3-6400"]).memory.dram
