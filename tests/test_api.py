"""The Python API takes names, paths, dicts, or what ``archsim.api.load`` returned."""
import pytest

from archsim import api
from archsim.errors import ConfigError, WorkloadError
from archsim.workload.loader import load_workload_spec

RUN = dict(phase="decode", batch=4, kv_len=512)


def _cycles(res) -> int:
    return res.to_dict()["cycles"]


def test_loaded_objects_give_the_same_result_as_names():
    ref = _cycles(api.simulate("systolic_128x128", "gpt2", **RUN))
    cfg, wl = api.load("systolic_128x128", "gpt2", **RUN)
    assert _cycles(api.simulate(cfg, wl)) == ref
    assert _cycles(api.simulate(cfg, "gpt2", **RUN)) == ref
    assert _cycles(api.simulate(cfg.model_dump(), "gpt2", **RUN)) == ref
    spec = load_workload_spec("gpt2", **RUN)
    assert _cycles(api.simulate(cfg, spec)) == ref


def test_overrides_apply_to_loaded_objects():
    cfg, _ = api.load("systolic_128x128", "gpt2", **RUN)
    spec = load_workload_spec("gpt2", **RUN)
    # a quarter of the array and twice the batch: both must reach the run
    small = _cycles(api.simulate(cfg, spec, overrides=["array.rows=64", "array.cols=64"]))
    assert small > _cycles(api.simulate(cfg, spec))
    assert _cycles(api.simulate(cfg, spec, overrides=["workload.batch=8"])) == \
        _cycles(api.simulate("systolic_128x128", "gpt2", phase="decode", batch=8, kv_len=512))
    assert cfg.array.rows == 128          # the loaded config itself is not changed


def test_a_built_workload_is_fixed():
    cfg, wl = api.load("systolic_128x128", "gpt2", **RUN)
    with pytest.raises(ConfigError, match="batch: a built workload is fixed"):
        api.simulate(cfg, wl, batch=8)
    with pytest.raises(ConfigError, match="workload.kv_len: a built workload is fixed"):
        api.simulate(cfg, wl, overrides=["workload.kv_len=64"])


@pytest.mark.parametrize("arch, workload, err, field", [
    (3, "gpt2", ConfigError, "arch"),
    ("systolic_128x128", 2.5, WorkloadError, "workload"),
])
def test_wrong_types_are_named(arch, workload, err, field):
    with pytest.raises(err, match=f"{field}: expected"):
        api.simulate(arch, workload)
