"""Every registered microarchitecture has a preset, documentation and tests."""
from pathlib import Path

import pytest
import yaml

from archsim.uarch import names

ROOT = Path(__file__).resolve().parents[1]


def _presets() -> dict:
    """uarch -> the preset names (file stems) that use it."""
    out: dict = {}
    for p in (ROOT / "arch_configs").glob("*.yaml"):
        data = yaml.safe_load(p.read_text())
        if isinstance(data, dict) and "uarch" in data:
            out.setdefault(data["uarch"], []).append(p.stem)
    return out


@pytest.mark.parametrize("name", names())
def test_registered_uarch_has_preset_docs_and_tests(name):
    presets = _presets().get(name)
    assert presets, f"no arch_configs/*.yaml with uarch: {name}"
    docs = "\n".join(p.read_text() for p in (ROOT / "docs").glob("*.md")) + (ROOT / "README.md").read_text()
    assert f"`{name}`" in docs or f"uarch: {name}" in docs, f"{name} is not documented"
    tests = "\n".join(p.read_text() for p in (ROOT / "tests").glob("test_*.py") if p.name != "test_meta.py")
    # a test simulates one of its presets (or names the uarch)
    assert any(f'"{x}"' in tests for x in presets + [name]), f"no test runs a {name} preset"


@pytest.mark.parametrize("arch", ["systolic_128x128", "stc_2to4", "cim_llm", "a100", "attacc_dgx", "neupims_npu"])
@pytest.mark.parametrize("op", ["softmax", "layernorm", "add", "gelu"])
def test_vector_operator_on_every_family_with_a_vector_unit(arch, op):
    """One element-wise or row operator: no MACs, at least one pass over its operands' bytes
    off chip (the xPU devices of a hetero system each run it), every bound holds."""
    from archsim.api import simulate
    w = {"kind": "vector", "op": op, "rows": 512, "cols": 1024, "precision": {"activations": "fp16"}}
    r = simulate(arch, w)
    n_in = 2 if op == "add" else 1
    elems = 512 * 1024
    assert r.macs == 0 and r.cycles > 0 and r.bounds_ok()
    assert r.offchip_bytes >= (n_in + 1) * elems * 2 * 0.5     # int8 datapaths move 1-byte values
    assert r.energy_pj > 0
