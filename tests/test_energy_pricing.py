"""Per-MAC energy overrides (energy.mac_pj) and the DRAM-PIM run's energy components."""

import pytest
from click.testing import CliRunner

from archsim.api import simulate
from archsim.config import load_arch
from archsim.energy import table_of
from archsim.errors import ConfigError

INT8 = ["workload.precision.weights=int8", "workload.precision.activations=int8"]


def _mac_pj(res, comp="array", name="mac"):
    return res.components[comp]["energy_pj"][name]


def test_mac_price_alias_and_value_on_gpu():
    cfg = load_arch("a100")
    t = table_of(cfg)
    base = simulate("a100", "gpt2", phase="decode", batch=8, kv_len=128, overrides=INT8)
    alias = simulate("a100", "gpt2", phase="decode", batch=8, kv_len=128,
                     overrides=INT8 + ["energy.mac_pj={int8: fp16}"])
    value = simulate("a100", "gpt2", phase="decode", batch=8, kv_len=128,
                     overrides=INT8 + ["energy.mac_pj={int8: 1.5 pJ}"])
    assert base.cycles == alias.cycles == value.cycles          # pricing only, timing untouched
    assert t.mac_pj("fp16") > 3 * t.mac_pj("int8")               # node-scaled Horowitz table
    assert _mac_pj(alias) / _mac_pj(base) == pytest.approx(t.mac_pj("fp16") / t.mac_pj("int8"))
    assert _mac_pj(value) / _mac_pj(base) == pytest.approx(1.5 / t.mac_pj("int8"))
    # other components unchanged
    assert alias.components["offchip"]["energy_pj"] == base.components["offchip"]["energy_pj"]


def test_mac_price_errors_name_the_field():
    with pytest.raises(ConfigError, match="mac_pj.int8: fp8 is itself priced like fp16"):
        load_arch("a100", ["energy.mac_pj={int8: fp8, fp8: fp16}"])
    with pytest.raises(ConfigError, match="energy.mac_pj"):
        load_arch("a100", ["energy.mac_pj={int8: -1}"])
    with pytest.raises(ConfigError, match="energy.mac_pj: an SRAM CIM macro"):
        load_arch("trancim", ["energy.mac_pj={int8: fp16}"])
    with pytest.raises(ConfigError, match="set it in xpu.set / pim.set"):
        load_arch("attacc_dgx", ["energy.mac_pj={int8: fp16}"])
    from archsim.cli import main
    res = CliRunner().invoke(main, ["run", "a100", "gpt2", "--set", "energy.mac_pj={int8: fp99}"])
    assert res.exit_code == 2 and "energy.mac_pj" in res.output


def test_pim_run_prices_dram_path_macs_and_background():
    """A DRAM-PIM decode run reports the command engine's in-DRAM and I/O energies, the MACs at
    the unit's precision and the channels' background power over the run, not the MACs alone."""
    from archsim.uarch.dram_pim.api import background_w, pim_mac_pj
    from archsim.uarch.dram_pim.dram_adapter import resolve
    res = simulate("hbm_pim", "gpt2", phase="decode", kv_len=128)
    cfg = load_arch("hbm_pim")
    dev = resolve(cfg)
    dram, dram_n = res.components["dram"]["energy_pj"], res.components["dram"]["counts"]
    pim, pim_n = res.components["pim"]["energy_pj"], res.components["pim"]["counts"]
    assert pim_mac_pj(cfg) == pytest.approx(0.32)                  # AttAcc's FP16 PIM ALU figure
    assert pim["macs"] == pytest.approx(pim_n["macs"] * 0.32)
    # bank placement: every opened row costs 0.11 pJ/bit (activate + precharge), every byte the
    # units read 0.44 pJ/bit (cell array); nothing else is in-DRAM energy
    assert dram_n["act"] > 0 and dram_n["internal_bytes"] > 0
    assert dram["in_bank_fj"] == pytest.approx(dram_n["act"] * dev.row_bytes * 8 * 0.11
                                               + dram_n["internal_bytes"] * 8 * 0.44, rel=1e-6)
    # reading the weights inside the banks costs more than multiplying them
    assert dram["in_bank_fj"] > pim["macs"]
    assert dram["io_fj"] > 0                                        # input broadcasts and read-outs
    assert dram["leakage"] == pytest.approx(background_w(dev) * res.seconds * 1e12, rel=1e-9)
    dearer = simulate("hbm_pim", "gpt2", phase="decode", kv_len=128, overrides=["energy.mac_pj={fp16: 0.64 pJ}"])
    assert dearer.components["pim"]["energy_pj"]["macs"] == pytest.approx(2 * pim["macs"])
    assert dearer.cycles == res.cycles
