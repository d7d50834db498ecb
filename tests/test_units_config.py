"""Units and hardware-description validation."""
import pytest

from archsim import units
from archsim.config.loader import load_arch
from archsim.errors import ConfigError, InputFileError


@pytest.mark.parametrize("text,expected", [
    ("1 GHz", 1e9), ("700 MHz", 7e8), ("512 KiB", 512 * 1024), ("24 MiB", 24 * 2**20),
    ("1.2 TB/s", 1.2e12), ("34 GB/s", 34e9), ("100 ns", 1e-7), ("3.9 pJ", 3.9), (64, 64.0),
])
def test_parse_units(text, expected):
    kind = {"Hz": units.parse_frequency, "iB": units.parse_bytes, "/s": units.parse_bandwidth,
            "ns": units.parse_time, "pJ": units.parse_energy}
    fn = next((f for suf, f in kind.items() if isinstance(text, str) and text.endswith(suf)),
              units.parse_bytes)
    assert fn(text) == pytest.approx(expected)


def test_wrong_unit_kind_is_an_error():
    with pytest.raises(units.UnitError):
        units.parse_frequency("512 KiB")


def test_presets_load():
    for name in ("systolic_128x128", "scalesim_32x32", "tpuv1", "tpuv4i"):
        cfg = load_arch(name)
        assert cfg.uarch == "systolic" and cfg.clock > 0


def test_tpuv1_numbers():
    cfg = load_arch("tpuv1")
    assert (cfg.array.rows, cfg.array.cols, cfg.clock) == (256, 256, 700e6)
    assert cfg.sram.ifmap == 24 * 2**20


def test_every_error_at_once_with_dotted_paths(small_arch):
    small_arch["array"]["rowz"] = 4
    small_arch["clock"] = "fast"
    small_arch["sram"]["ifmap"] = -5
    with pytest.raises(ConfigError) as ei:
        load_arch(small_arch)
    paths = {p for p, _ in ei.value.problems}
    assert {"array.rowz", "clock", "sram.ifmap"} <= paths
    assert "did you mean 'rows'" in str(ei.value)


def test_override_sets_field_and_unknown_override_suggests(small_arch):
    cfg = load_arch(small_arch, ["array.rows=64", "memory.bandwidth=1 TB/s"])
    assert cfg.array.rows == 64 and cfg.memory.bandwidth == 1e12
    with pytest.raises(ConfigError, match="did you mean 'dataflow'"):
        load_arch(small_arch, ["array.dataflw=ws"])


def test_zero_size_rejected(small_arch):
    small_arch["array"]["cols"] = 0
    with pytest.raises(ConfigError, match="array.cols"):
        load_arch(small_arch)


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(InputFileError, match="no such file"):
        load_arch(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("uarch: systolic\narray: [1, 2\n")
    with pytest.raises(InputFileError, match="malformed YAML.*line"):
        load_arch(bad)
