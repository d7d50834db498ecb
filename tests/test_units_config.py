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


# -- files that are not what they claim, duplicate keys -------------------------------------------

def test_duplicate_key_names_file_key_and_line(tmp_path, small_arch):
    import yaml
    p = tmp_path / "dup.yaml"
    p.write_text(yaml.safe_dump(small_arch, sort_keys=False) + "clock: 2 GHz\n")
    with pytest.raises(InputFileError) as e:
        load_arch(p)
    line = len(p.read_text().splitlines())
    assert "duplicate key 'clock'" in str(e.value) and str(p) in str(e.value)
    assert f"line {line}" in str(e.value) and e.value.exit_code == 2
    nested = tmp_path / "nested.yaml"
    nested.write_text("uarch: systolic\nclock: 1 GHz\narray:\n  rows: 8\n  cols: 8\n  rows: 16\n")
    with pytest.raises(InputFileError, match="duplicate key 'rows'.* line 6 .*line 4"):
        load_arch(nested)


def test_duplicate_key_in_an_override_value():
    with pytest.raises(ConfigError) as e:
        load_arch("tpuv4i", ["array={rows: 8, rows: 16}"])
    assert e.value.path == "array" and "duplicate key 'rows'" in str(e.value)


def test_binary_file_is_not_a_text_file(tmp_path):
    from archsim.api import load
    nul = tmp_path / "bin.yaml"
    nul.write_bytes(b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)))
    latin = tmp_path / "latin1.yaml"
    latin.write_bytes("name: caf\u00e9\n".encode("latin-1"))
    for p in (nul, latin):
        with pytest.raises(InputFileError, match="not a text file") as e:
            load_arch(p)
        assert str(p) in str(e.value)
        with pytest.raises(InputFileError, match="not a text file"):
            load("tpuv1", p)
    js = tmp_path / "config.json"
    js.write_bytes(nul.read_bytes())
    with pytest.raises(InputFileError, match="not a text file"):
        load("tpuv1", js)


def test_directory_is_named_as_a_directory(tmp_path):
    from archsim.api import load
    with pytest.raises(InputFileError, match="is a directory"):
        load_arch(tmp_path)
    with pytest.raises(InputFileError, match="is a directory"):
        load("tpuv1", tmp_path)


# -- physical bounds, booleans --------------------------------------------------------------------

@pytest.mark.parametrize("ov,path,text", [
    ("array.rows=99999999999999999999999", "array.rows", "2**31"),
    ("array.count=4294967296", "array.count", "65536"),
    ("clock=1e30 GHz", "clock", "100 GHz"),
    ("clock=.inf", "clock", ""),
    ("memory.energy_per_bit=1e308 pJ", "memory.energy_per_bit", "1e6 pJ"),
    ("memory.bandwidth=1 B/s", "memory.bandwidth", "1 MB/s"),
    ("memory.bandwidth=1e30 TB/s", "memory.bandwidth", "1e18 B/s"),
    ("memory.latency=1e300 s", "memory.latency", "1 s"),
    ("sram.ifmap=1e300 B", "sram.ifmap", "2**60"),
    ("vector.lanes=1e12", "vector.lanes", ""),
    ("vector.add=.inf", "vector.add", "finite"),
])
def test_absurd_magnitudes_are_refused_with_the_limit(small_arch, ov, path, text):
    with pytest.raises(ConfigError) as e:
        load_arch(small_arch, [ov])
    assert e.value.path == path and text in str(e.value)


def test_bounds_admit_the_limits(small_arch):
    cfg = load_arch(small_arch, ["clock=100 GHz", "memory.bandwidth=1 MB/s", "array.rows=2147483648",
                                 "memory.energy_per_bit=1e6 pJ"])
    assert cfg.clock == 100e9 and cfg.array.rows == 2**31


@pytest.mark.parametrize("ov,path", [
    ("array.rows=true", "array.rows"),
    ("array.count=false", "array.count"),
    ("vector.add=true", "vector.add"),
    ("vector.pipeline_cycles=true", "vector.pipeline_cycles"),
    ("memory.bandwidth=true", "memory.bandwidth"),
])
def test_booleans_are_not_numbers(small_arch, ov, path):
    with pytest.raises(ConfigError) as e:
        load_arch(small_arch, [ov])
    assert e.value.path == path and "boolean" in str(e.value)


def test_booleans_inside_lists_and_dicts_name_the_item():
    with pytest.raises(ConfigError) as e:
        load_arch("a100", ["tiles.m=[64, true]"])
    assert e.value.path == "tiles.m.1"
    with pytest.raises(ConfigError) as e:
        load_arch("a100", ["sm.mma_macs_per_cycle={fp16: true}"])
    assert e.value.path == "sm.mma_macs_per_cycle.fp16"


def test_numbers_as_strings_still_work(small_arch):
    cfg = load_arch(small_arch, ["array.rows=128", "array.cols='64'", "vector.add='2'"])
    assert (cfg.array.rows, cfg.array.cols, cfg.vector.add) == (128, 64, 2.0)


def test_memory_capacity_is_a_positive_size():
    cfg = load_arch("a100", ["memory.capacity=80 GiB"])
    assert cfg.memory.capacity == 80 * 2**30
    assert load_arch("a100", ["memory.capacity=null"]).memory.capacity is None
    for bad in ("-1", "0", "'80 GHz'"):
        with pytest.raises(ConfigError) as e:
            load_arch("a100", [f"memory.capacity={bad}"])
        assert e.value.path == "memory.capacity"


def test_every_preset_loads():
    from archsim.config.loader import list_presets
    for name in list_presets():
        load_arch(name)
