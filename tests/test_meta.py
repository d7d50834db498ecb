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
