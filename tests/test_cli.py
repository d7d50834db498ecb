"""The command line: outputs, and bad input giving one clear message, exit 2, nothing written."""
import json

import pytest
from click.testing import CliRunner

from archsim.cli import main


@pytest.fixture
def runner():
    return CliRunner()


def test_run_json_has_stable_keys(runner, tmp_path):
    out = tmp_path / "r.json"
    r = runner.invoke(main, ["run", "systolic_128x128", "gpt2", "--phase", "decode", "--kv-len", "64",
                             "--format", "json", "--out", str(out)])
    assert r.exit_code == 0, r.output
    d = json.loads(out.read_text())
    for k in ("cycles", "seconds", "energy_pj", "tokens_per_s", "macs", "layers", "components", "config"):
        assert k in d
    assert d["tokens_per_s"] > 0 and d["bounds"]["ok"]


def test_run_default_and_table(runner):
    r = runner.invoke(main, ["run"])
    assert r.exit_code == 0, r.output
    assert "llama2-7b decode" in r.output and "per layer" in r.output


def test_run_csv_and_set(runner):
    r = runner.invoke(main, ["run", "systolic_128x128", "gpt2", "--format", "csv", "--set", "array.rows=64",
                             "--set", "workload.seq_len=64"])
    assert r.exit_code == 0, r.output
    lines = r.output.strip().splitlines()
    assert lines[0].startswith("layer,") and lines[-1].startswith("TOTAL")


def test_trace_is_chrome_json(runner, tmp_path):
    tr = tmp_path / "t.json"
    r = runner.invoke(main, ["run", "scalesim_32x32", "gemm", "--trace", str(tr), "--trace-max-events", "50",
                             "--format", "json"])
    assert r.exit_code == 0, r.output
    ev = json.loads(tr.read_text())["traceEvents"]
    xs = [e for e in ev if e["ph"] == "X"]
    assert 0 < len(xs) <= 50 and all(e["dur"] >= 0 for e in xs)


def test_list_info_schema_lower(runner, tmp_path):
    assert "systolic" in runner.invoke(main, ["list"]).output
    r = runner.invoke(main, ["info", "systolic"])
    assert r.exit_code == 0 and "array.rows" in r.output
    s = json.loads(runner.invoke(main, ["schema", "systolic"]).output)
    assert "array" in s["properties"]
    out = tmp_path / "p.npz"
    r = runner.invoke(main, ["lower", "systolic_128x128", "gpt2", "--out", str(out)])
    assert r.exit_code == 0 and out.exists()
    assert json.loads(r.output[: r.output.rindex("}") + 1])["instructions"] > 0



def test_schema_of_all_microarchitectures_keeps_same_named_models_apart(runner):
    """The sparse tensor core's and the CIM's BufferConfig, and the sparse tensor core's and the
    GPU's TileConfig, are different models of the same name: each section points at its own
    (one definition of each name was kept, and cim_llm.yaml failed the schema on buffer.size)."""
    s = json.loads(runner.invoke(main, ["schema"]).output)
    defs = s["$defs"]

    def section(uarch, field):
        tops = [defs[r["$ref"].rsplit("/", 1)[1]] for r in s["oneOf"]]
        top = next(t for t in tops if uarch in ([t["properties"]["uarch"].get("const")]
                                                + t["properties"]["uarch"].get("enum", [])))
        ref = top["properties"][field]
        ref = ref.get("$ref") or next(a["$ref"] for a in ref.get("anyOf", ref.get("allOf", [])) if "$ref" in a)
        return set(defs[ref.rsplit("/", 1)[1]]["properties"])
    assert {"size", "banks"} <= section("sram_cim", "buffer")
    assert "register_file" in section("stc_2to4", "buffers")
    assert "split_k" in section("gpu", "tiles")
    assert len([k for k in defs if k.endswith("TileConfig") and "Warp" not in k]) == 2


def test_dram_refresh_off_unquoted(runner):
    """`refresh: off` unquoted (YAML 1.1 reads it as false) is the 'off' scheme."""
    from archsim.config.loader import load_arch
    assert load_arch("attacc_pim", ["memory.dram.refresh=off"]).memory.dram.refresh == "off"
    r = runner.invoke(main, ["run", "attacc_pim", "gpt2", "--phase", "decode", "--kv-len", "64",
                             "--set", "memory.dram.refresh=true"])
    assert r.exit_code == 2 and "memory.dram.refresh" in r.output

def _bad(runner, tmp_path, args, needle):
    out = tmp_path / "never.json"
    r = runner.invoke(main, ["run", *args, "--format", "json", "--out", str(out)])
    assert r.exit_code == 2, r.output
    assert needle in r.output
    assert "Traceback" not in r.output
    assert not out.exists()


def test_bad_inputs(runner, tmp_path):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("uarch: systolic\nclock: [1\n")
    _bad(runner, tmp_path, [str(bad_yaml), "gpt2"], "malformed YAML")
    _bad(runner, tmp_path, ["systolic_128x128", "gpt2", "--set", "array.colums=3"], "did you mean 'cols'")
    _bad(runner, tmp_path, ["systolic_128x128", "gpt2", "--set", "clock=3 KiB"], "clock")
    _bad(runner, tmp_path, ["systolic_128x128", "gpt2", "--set", "sram.ifmap=-1"], "sram.ifmap")
    _bad(runner, tmp_path, ["systolic_128x128", "gpt2", "--set", "sram.ifmap=8", "--set", "sram.filter=8"],
         "fits")
    _bad(runner, tmp_path, [str(tmp_path / "missing.yaml"), "gpt2"], "no such file")
    _bad(runner, tmp_path, ["systolic_128x128", "gpt2", "--set", "workload.n_layer=3"], "workload.n_layer")
    hf = tmp_path / "config.json"
    hf.write_text(json.dumps({"model_type": "t5", "d_model": 512}))
    _bad(runner, tmp_path, ["systolic_128x128", str(hf)], "supported")
    _bad(runner, tmp_path, ["a100", "vector", "--set", "workload.op=tanh"], "workload.op")
    _bad(runner, tmp_path, ["hbm_pim", "vector"], "no matrix-vector layer")


def test_hf_import_llama(runner, tmp_path):
    hf = tmp_path / "config.json"
    hf.write_text(json.dumps({"model_type": "llama", "hidden_size": 2048, "num_hidden_layers": 4,
                              "num_attention_heads": 16, "num_key_value_heads": 4, "intermediate_size": 5632,
                              "vocab_size": 32000}))
    r = runner.invoke(main, ["run", "systolic_128x128", str(hf), "--phase", "decode", "--kv-len", "16",
                             "--format", "json"])
    assert r.exit_code == 0, r.output
    d = json.loads(r.output)
    per_layer = 2048 * (16 + 8) * 128 + 2048 * 2048 + 3 * 2048 * 5632 + 2 * 16 * 128 * 17
    assert d["macs"] == 4 * per_layer + 2048 * 32000


def test_validate_command(runner):
    r = runner.invoke(main, ["validate", "--filter", "TPUv1", "--format", "json"])
    assert r.exit_code == 0, r.output
    rows = json.loads(r.output)
    assert rows and all(x["pass"] for x in rows)


@pytest.mark.parametrize("pattern", ["scalesim-", "bounds-", "SA-TPUv1", "SA-NeuPIMs", "XPU-A100-gelu-",
                                     "XPU-A100-gemm-", "STC-", "CIM-", "PIM-", "ramulator21_", "hbmpim-pimsim-sweep",
                                     "hbmpim-gemv-4096", "hbmpim-add", "HX-AttAcc-refsim-grid-attacc"])
def test_validation_cases_pass(pattern):
    from archsim.validate import run_all
    rows = run_all(pattern=pattern)
    assert rows
    failed = [(r["id"], r["metric"], r["reference"], r["simulated"]) for r in rows if not r["pass"]]
    assert not failed


def test_speculative_reports_accepted_tokens(runner):
    r = runner.invoke(main, ["run", "tpuv4i", "spec-llama2-7b", "--format", "json"])
    assert r.exit_code == 0, r.output
    sp = json.loads(r.output)["speculative"]
    # E[tokens per iteration] = (1 - a^(k+1)) / (1 - a) with a = 0.7, k = 4
    assert sp["accepted_tokens_per_iteration"] == pytest.approx((1 - 0.7 ** 5) / 0.3, rel=1e-9)
    assert sp["accepted_tokens_per_s"] > 0 and sp["accepted_tokens_per_j"] > 0
    assert json.loads(r.output)["tokens_per_s"] == pytest.approx(sp["accepted_tokens_per_s"])


def test_table_shows_the_uarch_summary_and_whole_numbers():
    """The table prints the microarchitecture's own breakdown (hetero: per-token latency, busy
    time of xPU / PIM / link) and never cuts digits off a number in a narrow terminal."""
    import io
    import re

    from rich.console import Console

    from archsim.api import simulate
    from archsim.report.render import to_table
    r = simulate("attacc_dgx", "gpt3-175b", phase="decode", batch=32, kv_len=2048)
    d = r.to_dict()
    buf = io.StringIO()
    to_table(d, Console(file=buf, width=80))
    text = buf.getvalue()
    assert "hetero summary" in text and "per_token_latency_s" in text
    assert re.search(r"busy_s\s*│\s*xpu [0-9.]+ s, pim [0-9.]+ s", text)
    assert "…" not in text
    # the block's MACs appear whole, perhaps folded over two lines of its cell
    block = [x for x in d["layers"] if x["name"] == "block"][0]
    lines = text.splitlines()
    i = next(k for k, ln in enumerate(lines) if ln.startswith("│ block "))
    cell = ""
    for ln in lines[i:]:
        cells = ln.split("│")
        if len(cells) < 8 or (ln is not lines[i] and cells[1].strip()):
            break
        cell += cells[5].strip()          # the MACs column
    assert cell == f"{block['macs']:,}"


def test_out_of_range_results_are_errors(runner, tmp_path):
    """A rate so small that the cycle count leaves 64 bits, or a price that makes the energy
    infinite, is refused (exit 2, nothing written), never reported as a number."""
    import re
    for args, field in ((["systolic_128x128", "llama2-7b", "--set", "memory.bandwidth=1 B/s"], "bandwidth"),
                        (["systolic_128x128", "gemm", "--set", "memory.energy_per_bit=1e308 pJ"], "energy")):
        out = tmp_path / "never.json"
        r = runner.invoke(main, ["run", *args, "--format", "json", "--out", str(out)])
        assert r.exit_code == 2, r.output
        assert re.search(field, r.output) and "Traceback" not in r.output
        assert not out.exists()


def test_check_range_refuses_overflowed_cycles():
    import numpy as np

    from archsim.api import simulate
    from archsim.errors import OutOfRangeError
    from archsim.sim.run import MAX_CYCLES, check_range
    r = simulate("systolic_128x128", "gemm")
    check_range(r, np.array([0, r.cycles]))
    with pytest.raises(OutOfRangeError, match="64-bit"):
        check_range(r, np.array([0, -5]))
    r.cycles = MAX_CYCLES
    with pytest.raises(OutOfRangeError, match="64-bit"):
        check_range(r)


def test_outputs_written_together_or_not_at_all(runner, tmp_path):
    ok, bad = tmp_path / "r.json", "/proc/archsim-no/t.json"
    r = runner.invoke(main, ["run", "tpuv1", "gemm", "--format", "json", "--out", str(ok), "--trace", bad])
    assert r.exit_code == 2 and "cannot write" in r.output and "Traceback" not in r.output
    assert not ok.exists() and not list(tmp_path.glob(".*tmp"))
    r = runner.invoke(main, ["run", "tpuv1", "gemm", "--out", str(tmp_path)])
    assert r.exit_code == 2 and "directory" in r.output
    r = runner.invoke(main, ["run", "tpuv1", "gemm", "--out", ""])
    assert r.exit_code == 2
    r = runner.invoke(main, ["run", "tpuv1", "gemm", "--out", str(ok), "--trace", str(tmp_path / "t.json")])
    assert r.exit_code == 0 and ok.exists() and (tmp_path / "t.json").exists()
    r = runner.invoke(main, ["lower", "tpuv1", "gemm", "--out", "/proc/archsim-no/p.npz"])
    assert r.exit_code == 2 and "cannot write" in r.output and "Traceback" not in r.output


def test_default_run_honours_a_phase_override(runner):
    r = runner.invoke(main, ["run", "--set", "workload.phase=prefill", "--set", "workload.seq_len=16",
                             "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["workload"]["phase"] == "prefill"
    r = runner.invoke(main, ["run", "--set", "workload.phase=train"])
    assert r.exit_code == 2 and "workload.phase" in r.output


def test_an_option_and_an_override_of_the_same_workload_field_must_agree(runner, tmp_path):
    """--kv-len 128 with --set workload.kv_len=256 is refused (naming the field), not silently
    resolved one way; equal values are fine."""
    _bad(runner, tmp_path, ["systolic_128x128", "gpt2", "--phase", "decode", "--kv-len", "128",
                            "--set", "workload.kv_len=256"], "workload.kv_len")
    _bad(runner, tmp_path, ["systolic_128x128", "gpt2", "--phase", "decode", "--set", "workload.phase=prefill"],
         "workload.phase")
    r = runner.invoke(main, ["run", "systolic_128x128", "gpt2", "--phase", "decode", "--kv-len", "256",
                             "--set", "workload.kv_len=256", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["workload"]["kv_len"] == 256


def test_validate_needs_an_existing_root(runner, tmp_path):
    r = runner.invoke(main, ["validate", "--root", str(tmp_path / "none")])
    assert r.exit_code == 2


def test_validate_reports_malformed_cases_as_errors(runner, tmp_path):
    (tmp_path / "c.yaml").write_text("""cases:
  - {id: s1, kind: scalesim, topology: x.csv, metrics: {Total Cycles: {ref: 2, tol_abs: 0}}}
  - {id: r1, workload: gpt2, metric: cycles, reference: 3, tolerance: {rel: 0.1}}
  - {id: d1, kind: dram_trace, pattern: seq_read, metrics: {bandwidth_GBps: {ref: 1}}}
  - {id: m1, kind: scalesim, config: a.cfg, topology: b.csv}
""")
    r = runner.invoke(main, ["validate", "--root", str(tmp_path)])
    assert r.exit_code == 1 and "Traceback" not in r.output, r.output  # 1: a case could not run
    for text in ("s1.config: a scalesim case needs config", "r1.arch: a run case needs arch",
                 "d1.preset: a dram_trace case needs preset", "m1: no metrics"):
        assert text in " ".join(r.output.split()), text
    assert "0 of 4 checks pass" in r.output


def test_validate_jobs_give_the_same_rows(runner):
    one = runner.invoke(main, ["validate", "--filter", "SA-TPU", "--format", "json"])
    two = runner.invoke(main, ["validate", "--filter", "SA-TPU", "--format", "json", "-j", "2"])
    assert one.exit_code == two.exit_code == 0, two.output
    assert json.loads(one.output) == json.loads(two.output) and len(json.loads(one.output)) > 1


def test_pruned_weights_run_dense_is_noted(tmp_path):
    """A dense datapath multiplies the zeros of pruned weights: the run says so (stderr and JSON)
    and its result is the dense one; hardware that exploits the pruning adds no note."""
    def run(arch, *extra):
        out = tmp_path / "r.json"
        r = CliRunner().invoke(main, ["run", arch, "llama2-7b", "--phase", "decode", "--batch", "2", "--kv-len",
                                      "64", "--set", "workload.n_layers=1", "--out", str(out), *extra])
        assert r.exit_code == 0, r.output
        return json.loads(out.read_text()), r.output
    prune = ["--set", "workload.sparsity.weights.density=0.5"]
    d, text = run("systolic_128x128", *prune)
    assert len(d["notes"]) == 1 and "runs all 4 pruned GEMMs dense" in d["notes"][0]
    assert "archsim: note: workload.sparsity" in text
    dense, text = run("systolic_128x128")
    assert "notes" not in dense and dense["cycles"] == d["cycles"] and "note" not in text
    # the a100's sparse tensor cores take 2:4 weights but not unstructured ones
    nm, _ = run("a100", "--set", "workload.sparsity.weights.pattern=nm")
    assert "notes" not in nm
    un, _ = run("a100", *prune)
    assert "gpu runs all 4 pruned GEMMs dense" in un["notes"][0]


def test_context_beyond_the_models_positions_is_noted(tmp_path):
    """A run whose longest request goes past the model's max_seq_len still runs, and says so:
    decode reaches kv_len + 1 positions (GPT-2: 1024 learned positions), a mixed batch its
    longest request, prefill its prompt."""
    def notes(wl, *args):
        out = tmp_path / "r.json"
        r = CliRunner().invoke(main, ["run", "systolic_128x128", wl, "--set", "workload.n_layers=1",
                                      "--out", str(out), *args])
        assert r.exit_code == 0, r.output
        return json.loads(out.read_text()).get("notes", [])
    assert notes("gpt2", "--phase", "decode", "--kv-len", "1023") == []
    n = notes("gpt2", "--phase", "decode", "--kv-len", "1024")
    assert len(n) == 1 and "reaches 1025 positions, beyond the 1024 of gpt2" in n[0] and "learned" in n[0]
    assert notes("gpt2", "--phase", "prefill", "--seq-len", "1024") == []
    assert "reaches 2048 positions" in notes("gpt2", "--phase", "prefill", "--seq-len", "2048")[0]
    n = notes("llama2-7b", "--phase", "decode", "--batch", "3", "--set", "workload.kv_lens=[10,5000,30]")
    assert "reaches 5001 positions, beyond the 4096 of llama2-7b" in n[0] and "rotary" in n[0]
    assert notes("llama2-7b", "--phase", "decode", "--batch", "3", "--set", "workload.kv_lens=[10,4095,30]") == []
