"""Sweep specs: axes, expressions, point identity, search order."""
import math

import pytest
from hypothesis import given, strategies as st

from archsim.errors import ConfigError
from archsim.sweep import expr
from archsim.sweep.search import GridSearch, RandomSearch
from archsim.sweep.spec import compile_spec, format_value, load_spec, parse_axes, parse_duration
from archsim.sweep.testing import toy_spec


def compiled(**changes):
    spec, base = load_spec(toy_spec(**changes))
    return compile_spec(spec, base)


def test_axis_forms_expand():
    axes = parse_axes({
        "a.list": [1, 2, 3],
        "a.range": {"range": [64, 256, 64]},
        "a.log": {"logrange": [32, 256], "factor": 2},
        "a.lognum": {"logrange": [1, 1000], "num": 4},
        "a.unit": {"values": [64, 256], "unit": "KiB"},
        "zip": {"x.rows": [64, 128], "x.cols": [32, 64]},
    })
    vals = {a.name: [s if len(s) > 1 else s[0] for s in a.values] for a in axes}
    assert vals["a.list"] == [1, 2, 3]
    assert vals["a.range"] == [64, 128, 192, 256]          # stop is inclusive
    assert vals["a.log"] == [32, 64, 128, 256]
    assert vals["a.lognum"] == [1, 10, 100, 1000]
    assert vals["a.unit"] == ["64 KiB", "256 KiB"]
    assert vals["x.rows+x.cols"] == [(64, 32), (128, 64)]


def test_list_form_and_zip_list():
    axes = parse_axes([{"field": "array.rows", "values": [1, 2]},
                       {"zip": [{"field": "a", "values": [1, 2]}, {"field": "b", "range": [5, 6]}]}])
    assert [a.name for a in axes] == ["array.rows", "a+b"]
    assert axes[1].values == ((1, 5), (2, 6))


def test_named_zip_stores_its_labels():
    sw = compiled(axes={"mem": {"zip": {"memory.bandwidth": ["25.6 GB/s", "819 GB/s"],
                                        "memory.standard": ["DDR4", "HBM3"]},
                                "labels": ["DDR4-3200", "HBM3-6400"]},
                        "array.rows": [64, 128]},
                  constraints=["mem != 'DDR4-3200' or array.rows == 64"])
    p = sw.point_at(2)
    assert sw.fields(p) == {"mem": "HBM3-6400", "memory.bandwidth": "819 GB/s", "memory.standard": "HBM3",
                            "array.rows": 64}
    assert sw.overrides(p) == ["memory.bandwidth=819 GB/s", "memory.standard=HBM3", "array.rows=64"]
    assert sum(1 for q in sw.grid() if sw.violated(q)) == 2
    with pytest.raises(ConfigError, match="one per step"):
        parse_axes({"mem": {"zip": {"a": [1, 2], "b": [3, 4]}, "labels": ["x"]}})


@pytest.mark.parametrize("axes, needle", [
    ({"array.rows": []}, "empty axis"),
    ({"array.rows": {"range": [10, 1, 1]}}, "empty axis"),
    ({"array.rows": {"values": []}}, "empty axis"),
    ({"zip": {"array.rows": [1, 2], "array.cols": [1]}}, "equal lengths"),
    ({"array.rows": [1, 1]}, "duplicate"),
    ({"array.rows": {"range": [1, 5], "stepp": 1}}, "did you mean 'step'"),
])
def test_bad_axes(axes, needle):
    with pytest.raises(ConfigError, match=needle):
        parse_axes(axes)


def test_unknown_field_suggests():
    with pytest.raises(ConfigError) as e:
        compiled(axes={"array.rowz": [64]})
    assert "axes.array.rowz" in str(e.value) and "did you mean 'array.rows'" in str(e.value)
    with pytest.raises(ConfigError, match="did you mean 'workload.batch'"):
        compiled(axes={"workload.bacth": [1, 2]})


def test_bad_axis_value_is_reported_up_front():
    with pytest.raises(ConfigError, match="array.rows.*positive integer"):
        compiled(axes={"array.rows": [64, -1]})


def test_constraint_that_does_not_parse():
    with pytest.raises(ConfigError, match=r"constraints\[0\].*cannot parse"):
        compiled(constraints=["array.rows * <= 4"])


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "array.rows.__class__", "(lambda: 1)()",
    "[x for x in (1, 2)]", "open('f')", "array.rows is 1", "{'a': 1}",
])
def test_unsafe_expressions_are_rejected(text):
    with pytest.raises(ConfigError):
        expr.parse(text)


def test_unknown_names_in_expressions():
    with pytest.raises(ConfigError, match="did you mean 'cycles'"):
        compiled(constraints=["cycels < 10"])
    with pytest.raises(ConfigError, match="did you mean 'array.cols'"):
        compiled(constraints=["array.colz < 10"])
    with pytest.raises(ConfigError, match="unknown metric 'cylces'"):
        compiled(objectives=["min cylces"])


def test_expression_values_and_units():
    e = expr.parse("sram.ifmap <= '512 KiB' and array.rows * array.cols in (4096, 8192) and log2(x) == 3")
    assert e({"sram.ifmap": "256 KiB", "array.rows": 64, "array.cols": 64, "x": 8})
    assert not e({"sram.ifmap": "1 MiB", "array.rows": 64, "array.cols": 64, "x": 8})
    assert expr.parse("memory.standard == 'HBM3'")({"memory.standard": "HBM3"})
    assert expr.parse("a if b else c")({"a": 1, "b": False, "c": 2}) == 2
    with pytest.raises(expr.ExprEvalError):
        expr.parse("1 / a")({"a": 0})


def test_constraints_split_and_apply():
    sw = compiled(constraints=["array.rows * array.cols <= 8192", "area_mm2 < 20"],
                  metrics={"tps_per_mm2": "tokens_per_s / area_mm2"})
    assert [c.text for c in sw.pre_constraints] == ["array.rows * array.cols <= 8192"]
    assert [c.text for c in sw.post_constraints] == ["area_mm2 < 20"]
    skipped = [p for p in sw.grid() if sw.violated(p)]
    assert len(skipped) == 2 * 2 * 1      # rows=128, cols=128 for both workloads and ifmaps
    m, bad = sw.finish(next(iter(sw.grid())), {"tokens_per_s": 10.0, "area_mm2": 40.0})
    assert m["tps_per_mm2"] == 0.25 and bad == "area_mm2 < 20"


def test_point_ids_are_stable_and_distinct():
    a, b = compiled(), compiled()
    ids_a = [a.point_id(p) for p in a.grid()]
    assert ids_a == [b.point_id(p) for p in b.grid()]
    assert len(set(ids_a)) == a.size == 24
    # the same point reached through a reordered spec has the same id
    c = compiled(axes={"sram.ifmap": {"values": [64, 1024], "unit": "KiB"}, "array.cols": [64, 128],
                       "array.rows": [32, 64, 128]})
    assert set(ids_a) == {c.point_id(p) for p in c.grid()}
    # a different base gives different ids
    d = compiled(set={"clock": "2 GHz"})
    assert not set(ids_a) & {d.point_id(p) for p in d.grid()}


def test_grid_and_random_orders():
    sw = compiled()
    g = GridSearch(sw)
    pts = [g.ask() for _ in range(sw.size)]
    assert g.ask() is None and len(set(pts)) == sw.size
    assert [sw.point_at(i) for i in range(sw.size)] == pts
    r1, r2, r3 = RandomSearch(sw, 1), RandomSearch(sw, 1), RandomSearch(sw, 2)
    s1 = [r1.ask() for _ in range(10)]
    assert s1 == [r2.ask() for _ in range(10)]
    assert s1 != [r3.ask() for _ in range(10)]
    assert len(set(s1)) == 10


@given(st.one_of(st.integers(-10**6, 10**6), st.floats(allow_nan=False, allow_infinity=False),
                 st.booleans(), st.text(max_size=20).filter(lambda s: "\n" not in s and "\r" not in s)))
def test_format_value_round_trips_through_yaml(v):
    import yaml
    back = yaml.safe_load(format_value(v))
    if isinstance(v, float) and isinstance(back, float):
        assert back == v or (math.isnan(back) and math.isnan(v))
    else:
        assert back == v


def test_durations():
    assert parse_duration("90") == 90 and parse_duration("10 min") == 600 and parse_duration("2h") == 7200
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_real_simulator_spec_errors():
    pytest.importorskip("archsim.api")
    spec, base = load_spec({"arch": "systolic_128x128", "workloads": ["llama2-7b"],
                            "axes": {"array.rowz": [64, 128]}})
    with pytest.raises(ConfigError, match="did you mean 'array.rows'"):
        compile_spec(spec, base)
    spec, base = load_spec({"arch": "systolic_128x128", "workloads": ["llama2-7b"],
                            "axes": {"workload.batch": [1, 8], "array.rows": [64, 128]},
                            "constraints": ["workload.batch * array.rows <= 512"]})
    sw = compile_spec(spec, base)
    assert sw.size == 4 and sum(1 for p in sw.grid() if sw.violated(p)) == 1
    # a preset or workload that does not exist is named by its entry
    for spec_d, path, hint in (({"arch": ["a100", {"arch": "h1000", "label": "h"}], "workloads": ["llama2-7b"]},
                                "arch[1]", "did you mean 'h100'"),
                               ({"arch": "a100", "workloads": ["llama2-7b", "lama2-70b"]},
                                "workloads[1].workload", "did you mean 'llama2-70b'")):
        spec, base = load_spec(spec_d)
        with pytest.raises(ConfigError) as e:
            compile_spec(spec, base)
        assert e.value.path == path and hint in str(e.value)


def test_several_archs_are_an_outer_axis():
    sw = compiled(arch=["toy", {"name": "wide", "array": {"cols": 512}}], axes={"array.rows": [32, 64]},
                  constraints=["arch == 'wide' or array.rows == 32"])
    assert sw.size == 2 * 2 * 2
    labels = [w.label for w in sw.workloads]
    assert labels == ["toy/prefill", "toy/decode", "wide/prefill", "wide/decode"]
    p = sw.point_at(7)
    assert sw.fields(p) == {"arch": "wide", "array.rows": 64}
    assert sw.task(p)["arch"] == {"name": "wide", "array": {"cols": 512}}
    assert sum(1 for q in sw.grid() if sw.violated(q)) == 2
    assert len({sw.point_id(q) for q in sw.grid()}) == 8


def test_arch_entries_carry_their_own_overrides_and_labels():
    """``{arch, label, set}``: the same preset twice with different settings is two hardware
    descriptions, each point runs with its entry's overrides (after the spec's own ``set``,
    before the workload's), and the label is what results and expressions call it."""
    sw = compiled(arch=[{"arch": "toy", "label": "narrow", "set": {"array.cols": 32}},
                        {"arch": "toy", "label": "wide", "set": {"array.cols": 512}}],
                  set={"array.cols": 64}, axes={"array.rows": [32, 64]},
                  constraints=["arch == 'wide' or array.rows == 32"])
    assert sw.size == 2 * 2 * 2
    assert [w.label for w in sw.workloads] == ["narrow/prefill", "narrow/decode", "wide/prefill", "wide/decode"]
    assert [w.config["array"]["cols"] for w in sw.workloads] == [32, 32, 512, 512]
    p = sw.point_at(7)
    assert sw.fields(p) == {"arch": "wide", "array.rows": 64}
    t = sw.task(p)
    assert t["arch"] == "toy" and t["overrides"].index("array.cols=512") > t["overrides"].index("array.cols=64")
    assert sum(1 for q in sw.grid() if sw.violated(q)) == 2
    assert len({sw.point_id(q) for q in sw.grid()}) == 8


def test_arch_entry_errors_name_the_entry():
    with pytest.raises(ConfigError) as e:             # two entries, one name: results would mix
        compiled(arch=[{"arch": "toy", "set": {"array.cols": 32}}, {"arch": "toy", "set": {"array.cols": 64}}])
    assert e.value.path == "arch[1]" and "label" in str(e.value)
    with pytest.raises(ConfigError) as e:
        compiled(arch=[{"arch": "toy", "label": "a"}, {"arch": "toy", "label": "a", "set": {"array.rows": 8}}])
    assert e.value.path == "arch[1].label"
    with pytest.raises(ConfigError) as e:             # a key the entry does not have
        compiled(arch=[{"arch": "toy", "label": "a"}, {"arch": "toy", "label": "b", "sett": {}}])
    assert e.value.path == "arch[1].sett"
    with pytest.raises(ConfigError) as e:             # a value the hardware rejects
        compiled(arch=[{"arch": "toy", "label": "a"}, {"arch": "toy", "label": "b", "set": {"array.dataflow": "xs"}}])
    assert e.value.path == "arch[1].set.array.dataflow"
    with pytest.raises(ConfigError) as e:             # a single entry is "arch", not "arch[0]"
        compiled(arch={"arch": "toy", "set": {"array.dataflow": "xs"}})
    assert e.value.path == "arch.set.array.dataflow"


def test_derived_metric_may_not_replace_a_builtin_one():
    for name in ("cycles", "energy", "area", "power", "energy_pj"):
        with pytest.raises(ConfigError) as e:
            compiled(metrics={name: "cycles * 2"})
        assert e.value.path == f"metrics.{name}"
    with pytest.raises(ConfigError, match="metrics.workload"):
        compiled(metrics={"workload": "cycles * 2"})
    assert compiled(metrics={"cycles2": "cycles * 2"}).derived


def test_evaluator_without_entry_points():
    with pytest.raises(ConfigError) as e:
        compiled(evaluator={"module": "os"})
    assert e.value.path == "evaluator.module" and "resolve()" in str(e.value)
    with pytest.raises(ConfigError, match="evaluator.module.*cannot import"):
        compiled(evaluator={"module": "no_such_module_xyz"})


def test_duplicate_workload_labels():
    with pytest.raises(ConfigError) as e:
        compiled(workloads=[{"workload": "toy-llm", "label": "w", "set": {"batch": 1}},
                            {"workload": "toy-llm", "label": "x"},
                            {"workload": "toy-llm", "label": "w", "set": {"batch": 2}}])
    assert e.value.path == "workloads[2].label" and "workloads[0]" in str(e.value)


def test_spec_set_problems_name_the_spec_field():
    with pytest.raises(ConfigError) as e:
        compiled(set={"clock": 0})
    assert e.value.path == "set.clock" and e.value.source is None
    with pytest.raises(ConfigError) as e:
        compiled(workloads=[{"workload": "toy-llm", "label": "w", "set": {"batch": 0}}])
    assert e.value.path == "workloads[0].set.batch"


def test_expressions_are_checked_before_anything_runs():
    # constraints over fields: on every combination of the values they read
    with pytest.raises(ConfigError) as e:
        compiled(constraints=["array.rows > 0", "1 / (array.cols - 128) < 1"])
    assert e.value.path == "constraints[1]" and "array.cols=128" in str(e.value)
    # over metrics: one that fails whatever the metrics are
    with pytest.raises(ConfigError, match=r"constraints\[0\].*division by zero"):
        compiled(constraints=["cycles / 0 < 1"])
    with pytest.raises(ConfigError, match=r"metrics\.bad.*not supported"):
        compiled(metrics={"bad": "cycles < 'abc'"})
    # undefined derived metrics are not errors (stored as null), nor what depends on them
    sw = compiled(metrics={"a": "cycles / 0", "b": "log(0)", "c": "sqrt(-1)", "d": "10.0 ** 400", "e": "a * 2",
                           "f": "cycles * 1e308", "g": "(-1) ** 0.5"},
                  constraints=["e < 5 or cycles > 0"])
    o = sw.evaluate_metrics(sw.point_at(0), {"cycles": 10.0, "area_mm2": 2.0})
    assert set(o.undefined) == set("abcdefg") and all(o.metrics[k] is None for k in "abcdefg")
    assert o.error == "constraints[0]: cannot evaluate 'e < 5 or cycles > 0': e is undefined (null) for this point"
    sw = compiled(constraints=["log(cycles - 1e3) > 0"])   # fine for some values of cycles
    assert sw.evaluate_metrics(sw.point_at(0), {"cycles": 10.0**5}).error is None
    assert "math domain error" in sw.evaluate_metrics(sw.point_at(0), {"cycles": 10.0}).error


def test_constraint_that_cannot_be_evaluated_at_one_point_names_itself(monkeypatch):
    from archsim.sweep.spec import Sweep
    monkeypatch.setattr(Sweep, "PROBE_LIMIT", 1)       # only the first point is checked up front
    sw = compiled(constraints=["1 / (array.rows - 64) < 1"])
    with pytest.raises(expr.ExprEvalError, match=r"^constraints\[0\]: .*division by zero"):
        for p in sw.grid():
            sw.violated(p)


@pytest.mark.parametrize("path", sorted((__import__("pathlib").Path(__file__).parents[1] / "sweeps").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_example_sweeps_compile_to_their_stated_size(path):
    """Every example under sweeps/ is a valid spec whose grid has the point count its description
    states ("... N points")."""
    import re
    spec, base = load_spec(path)
    sw = compile_spec(spec, base)
    m = re.search(r"(\d+) points", spec.description or "")
    assert m, "the description states the point count"
    assert sw.size == int(m.group(1))


def test_arch_entry_overrides_reach_the_simulator():
    """A point of the hetero study spec runs its entry's preset with the entry's overrides."""
    pytest.importorskip("archsim.api")
    from archsim.api import simulate
    from archsim.sweep import backend
    spec, base = load_spec(__import__("pathlib").Path(__file__).parents[1] / "sweeps" / "hetero_xpu_pim.yaml")
    sw = compile_spec(spec, base)
    def run(label):
        p = next(q for q in sw.grid() if sw.workloads[q.workload].label == label
                 and sw.values(q) == {"workload.batch": 16, "workload.kv_len": 512})
        t = sw.task(p)
        return backend.evaluate(t["arch"], t["workload"], t["overrides"])["metrics"]["tokens_per_s"]

    serial = run("npu+pim serial/llama2-70b")
    want = simulate("neupims", "llama2-70b", phase="decode", batch=16, kv_len=512,
                    overrides=["xpu.devices=8", "pim.stacks=10", "schedule=serial"]).tokens_per_s
    assert serial == pytest.approx(want, rel=1e-12)
    # the same preset, interleaved from batch 2: two half batches, each streaming the weights
    assert run("npu+pim interleaved/llama2-70b") < 0.7 * serial
