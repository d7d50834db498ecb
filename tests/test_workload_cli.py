"""The LLM-era workloads through the command line: per-layer breakdowns, bad input -> exit 2."""
import json

import pytest
from click.testing import CliRunner

from archsim.cli import main


@pytest.fixture
def runner():
    return CliRunner()


@pytest.mark.parametrize("wl,extra,layers", [
    ("workloads/mixtral-8x7b.yaml", ["--set", "workload.routing.zipf=1.2"], {"embed", "block", "head"}),
    ("workloads/mamba-2.8b.yaml", [], {"embed", "block", "head"}),
    ("workloads/jamba-mini.yaml", ["--set", "workload.routing.zipf=1.2"],
     {"embed", "mamba_dense", "mamba_moe", "attn_dense", "head"}),
])
def test_run_prints_per_layer_breakdown(runner, tmp_path, wl, extra, layers):
    out = tmp_path / "r.json"
    r = runner.invoke(main, ["run", "systolic_128x128", wl, "--phase", "decode", "--batch", "32", *extra,
                             "--format", "json", "--out", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    assert {x["group"] for x in d["layers"]} == layers and d["bounds"]["ok"]
    # a repeated group is run as its first, steady-state and last instances
    assert {x["name"] for x in d["layers"]} >= {"embed", "head"} | {f"{g}.{t}" for g in layers - {"embed", "head"}
                                                                   for t in ("first", "last")}
    r = runner.invoke(main, ["run", "systolic_128x128", wl, "--phase", "decode", "--batch", "32", *extra])
    assert r.exit_code == 0 and "per layer" in r.output


@pytest.mark.parametrize("wl,ov,field", [
    ("workloads/mixtral-8x7b.yaml", "workload.top_k=9", "workload.top_k"),
    ("workloads/mixtral-8x7b.yaml", "workload.attn_sparsity.sparsity=-0.5", "workload.attn_sparsity.sparsity"),
    ("workloads/mixtral-8x7b.yaml", "workload.attn_sparsity.token_keep=1.2", "workload.attn_sparsity.token_keep"),
    ("workloads/mamba-2.8b.yaml", "workload.precision.weights=fp5", "workload.precision.weights"),
    ("workloads/mamba-2.8b.yaml", "workload.quant=w2a2", "workload.quant"),
    ("workloads/mixtral-8x7b.yaml", "workload.routing.zipf=-1", "workload.routing.zipf"),
])
def test_bad_input_exit_2(runner, tmp_path, wl, ov, field):
    out = tmp_path / "r.json"
    r = runner.invoke(main, ["run", "systolic_128x128", wl, "--set", ov, "--out", str(out)])
    assert r.exit_code == 2
    assert field in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_unsupported_hf_model_type_exit_2(runner, tmp_path):
    p = tmp_path / "config.json"
    p.write_text(json.dumps({"model_type": "t5", "d_model": 512}))
    r = runner.invoke(main, ["run", "systolic_128x128", str(p)])
    assert r.exit_code == 2 and "unsupported model_type 't5'" in r.output and "mixtral" in r.output
