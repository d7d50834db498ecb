"""Speculative decoding: draft k steps + one target verification pass; accepted tokens."""
import pytest
import yaml

from archsim.api import load, simulate
from archsim.errors import WorkloadError
from archsim.workload.speculative import expected_tokens, speculative_metrics

DRAFT = dict(name="draft", kind="transformer", family="llama", d_model=1024, n_layers=4, n_heads=16, d_ff=2816,
             norm="rmsnorm", mlp="swiglu", position="rope", vocab_size=32000,
             precision={"weights": "fp16", "activations": "fp16"})


@pytest.fixture
def spec(tmp_path):
    p = tmp_path / "draft.yaml"
    p.write_text(yaml.safe_dump(DRAFT))
    return dict(kind="speculative", name="spec", draft=str(p), target="llama2-7b", k=4, acceptance=0.8,
                batch=2, kv_len=1000)


def test_expected_tokens():
    # (1 - a^(k+1)) / (1 - a): k=4, a=0.8 -> (1 - 0.32768) / 0.2 = 3.3616
    assert expected_tokens(4, 0.8) == pytest.approx(3.3616)
    assert expected_tokens(4, 0.0) == 1.0 and expected_tokens(4, 1.0) == 5.0


def test_graph_shapes(spec):
    _, wl = load("systolic_128x128", spec)
    reps = {g.name: g.repeat for g in wl.groups}
    assert reps["draft.block"] == 4 * 4 and reps["target.block"] == 32
    ops = {op.name: op for op in wl.ops()}
    # verification: 2 requests x 5 positions through every linear layer
    assert ops["target.block.qkv"].M == 10 and ops["target.head.lm_head"].M == 10
    qk = ops["target.block.qk"]
    assert (qk.M, qk.N, qk.count) == (5, 1005, 2 * 32)     # 5 queries over kv_len + 5 keys per request
    # draft: one token per step at the middle KV length of the k steps
    dq = ops["draft.block.qk"]
    assert (dq.M, dq.N, dq.count) == (1, 1000 + 1 + 1, 2 * 16)


def test_cycles_and_metrics(spec):
    res = simulate("systolic_128x128", spec)
    d = simulate("systolic_128x128", spec["draft"], phase="decode", batch=2, kv_len=1001)
    t = simulate("systolic_128x128", "llama2-7b", phase="decode", batch=2, kv_len=1000)
    draft_cycles = sum(x.cycles * x.repeat for x in res.layers if x.name.startswith("draft."))
    assert draft_cycles == pytest.approx(4 * d.cycles, rel=0.01)
    target_cycles = res.cycles - draft_cycles
    assert target_cycles >= t.cycles            # verifying 5 positions costs at least one decode step
    m = speculative_metrics(res)
    assert m["accepted_tokens_per_iteration"] == pytest.approx(2 * 3.3616)
    assert m["accepted_tokens_per_s"] == pytest.approx(2 * 3.3616 / res.seconds)
    assert m["accepted_tokens_per_j"] == pytest.approx(2 * 3.3616 / (res.energy_pj * 1e-12))
    assert res.bounds_ok()


def test_bad_speculative_input(spec):
    with pytest.raises(WorkloadError) as e:
        load("systolic_128x128", dict(spec, acceptance=1.5))
    assert e.value.path == "workload.acceptance"
    with pytest.raises(WorkloadError) as e:
        load("systolic_128x128", dict(spec, target="mamba-130m"))
    assert e.value.path == "workload.target"


@pytest.mark.parametrize("arch", ["aim", "hbm_pim", "attacc_pim", "neupims"])
def test_verify_pass_on_pim_conserves_macs(arch):
    """The target verifies k + 1 = 5 positions per request: PIM units take one query row at a time,
    so every row's attention is run and counted (one row was, 5.8 M MACs short on AiM); in a hetero
    system the draft's block passes hand their last block's tail to the draft head once per
    block, not once per head instance."""
    b = 1 if arch in ("aim", "hbm_pim", "attacc_pim") else 4
    r = simulate(arch, "spec-llama2-7b", phase="decode", batch=b, kv_len=512)
    assert r.bounds_ok()
    assert r.macs - r.padded_macs + r.skipped_macs == r.expected_macs


def test_pim_attention_time_grows_with_the_verified_rows():
    one = simulate("attacc_pim", {"kind": "transformer", "family": "llama", "d_model": 4096, "n_layers": 1,
                                  "n_heads": 32, "d_ff": 11008, "vocab_size": 32000, "phase": "decode",
                                  "batch": 1, "kv_len": 2048})
    r = simulate("attacc_pim", "spec-llama2-7b", phase="decode", batch=1, kv_len=2048)
    att1 = next(o for o in one.extra["ops"] if o["name"] == "block.attention")["added_cycles"]
    att5 = next(o for o in r.extra["ops"] if o["name"] == "target.block.attention")["added_cycles"]
    assert att5 == pytest.approx(5 * att1, rel=0.02)


def test_shipped_speculative_workload_runs_tensor_parallel():
    """spec-llama2-7b drafts with TinyLlama-1.1B (the target's tokenizer; 32 query heads over 4 KV
    heads), so it splits over the 8 GPUs of a DGX as its target does: the draft's 22 blocks run
    k = 4 times, the target's 32 once, and no vocabulary note."""
    r = simulate("dgx_a100", "spec-llama2-7b")
    spec = r.workload.spec
    assert spec["draft_spec"]["vocab_size"] == spec["target_spec"]["vocab_size"] == 32000
    reps = {g.name: g.repeat for g in load("dgx_a100", "spec-llama2-7b")[1].groups}
    assert reps["draft.block"] == 4 * 22 and reps["target.block"] == 32
    assert not any("vocabulary" in n for n in r.extra.get("notes", []))
    assert r.extra["speculative"]["accepted_tokens_per_s"] > 0


def test_a_draft_with_another_vocabulary_is_noted(spec):
    """A GPT-2 draft for a Llama target proposes token ids the target cannot verify: the run is
    still costed, with a note naming workload.draft and both vocabulary sizes."""
    r = simulate("systolic_128x128", dict(spec, draft="gpt2"), overrides=[])
    notes = [n for n in r.extra.get("notes", []) if n.startswith("workload.draft")]
    assert len(notes) == 1 and "50257" in notes[0] and "32000" in notes[0]
    ok = simulate("systolic_128x128", spec)
    assert not any(n.startswith("workload.draft") for n in ok.extra.get("notes", []))


def test_context_beyond_the_draft_is_noted():
    """TinyLlama-1.1B has 2048 positions and Llama-2-7B 4096: with 2046 tokens cached the draft's
    four steps reach 2050 positions (a note naming the draft), the target's 4096 are not passed."""
    r = simulate("systolic_128x128", "spec-llama2-7b", kv_len=2046)
    notes = [n for n in r.extra.get("notes", []) if n.startswith("workload.max_seq_len")]
    assert len(notes) == 1 and "2050 positions, beyond the 2048 of tinyllama-1.1b" in notes[0]
    assert "llama2-7b" not in notes[0]
    r = simulate("systolic_128x128", "spec-llama2-7b", kv_len=4092)
    note = next(n for n in r.extra["notes"] if n.startswith("workload.max_seq_len"))
    assert "4097 positions, beyond the 4096 of llama2-7b" in note
    ok = simulate("systolic_128x128", "spec-llama2-7b", kv_len=2044)
    assert not any(n.startswith("workload.max_seq_len") for n in ok.extra.get("notes", []))
