"""Pipeline parallelism (archsim/sim/pipeline.py): stage split, schedules by hand, end to end."""
import math

import pytest
from click.testing import CliRunner

from archsim.api import simulate
from archsim.cli import main
from archsim.errors import ArchsimError
from archsim.report.result import LayerRecord
from archsim.sim.pipeline import decode_period, fill_drain, stage_cycles

SMALL = dict(name="t", kind="transformer", d_model=512, n_layers=4, n_heads=8, d_ff=2048, vocab_size=1000,
             norm="layernorm", mlp="gelu", position="learned", precision={"weights": "fp16", "activations": "fp16"})


def _rec(name, cycles, repeat=1):
    return LayerRecord(name=name, repeat=repeat, cycles=cycles, macs=0, dynamic_pj=0.0, leakage_pj=0.0,
                       offchip_read_bytes=0, offchip_write_bytes=0)


def test_stage_split_by_hand():
    # 5 block layers of 10 cycles over 2 stages: 3 + 2 layers; embed (5) first, head (7) last
    layers = [_rec("embed", 5), _rec("block", 10, repeat=5), _rec("head", 7)]
    assert stage_cycles(layers, 2) == [5 + 30, 20 + 7]
    assert stage_cycles(layers, 5) == [15, 10, 10, 10, 17]


def test_fill_drain_by_hand():
    # two micro-batches, stages of 3 and 5 cycles, 1-cycle transfer:
    # mb0: stage0 0-3, stage1 4-9; mb1: stage0 3-6, stage1 max(7, 9)-14
    assert fill_drain([[3, 5], [3, 5]], [1, 1]) == 14
    # one micro-batch: the sum of the stages plus one transfer
    assert fill_drain([[3, 5]], [2]) == 10


def test_decode_period_by_hand():
    # stage bound: 2 micro-batches x 4 = 8; round trip: 4 + 4 + 1 (forward) + 1 (back) = 10
    assert decode_period([[4, 4], [4, 4]], [1, 1], 1) == (10, 8, 10)
    # four micro-batches keep both stages busy: stage bound 16 > round trip 10
    assert decode_period([[4, 4]] * 4, [1] * 4, 1)[0] == 16


def test_one_microbatch_is_the_unpipelined_run_plus_transfers():
    wl = dict(SMALL, phase="decode", batch=4, kv_len=128)
    base = simulate("a100", wl)
    pp = simulate("a100", wl, overrides=["parallel.pipeline=2", "parallel.microbatches=1"])
    info = pp.extra["pipeline"]
    assert info["stages"] == 2 and info["microbatches"] == 1
    # decode round trip = all layers on one group + one stage-to-stage transfer + the return
    ic_lat = 3e-6 * 1.41e9                                  # a100 interconnect latency in cycles
    x = math.ceil((3e-6 + 4 * 512 * 2 / (300e9 * 0.8)) * 1.41e9)
    # (launch.fixed, once per run, is in both)
    assert pp.cycles == base.cycles + x + math.ceil(ic_lat)
    assert pp.macs == base.macs == pp.expected_macs
    assert pp.energy_pj > base.energy_pj                    # a second stage leaks during the run


def test_microbatches_conserve_requests_and_bound():
    wl = dict(SMALL, phase="decode", batch=6, kv_lens=[10, 300, 40, 800, 50, 60])
    r = simulate("a100", wl, overrides=["parallel.pipeline=2"])
    info = r.extra["pipeline"]
    assert info["microbatch_sizes"] == [3, 3]
    assert r.macs == r.expected_macs
    assert r.bounds_ok()
    # more stages in prefill: fill and drain shortens the batch's time against one stage group
    mid = dict(SMALL, d_model=2048, d_ff=8192, n_heads=16, n_layers=8, phase="prefill", batch=4, seq_len=512)
    p1 = simulate("a100", mid)
    p4 = simulate("a100", mid, overrides=["parallel.pipeline=4"])
    assert p4.cycles < p1.cycles and p4.macs == p1.macs and p4.bounds_ok()
    assert 0.0 < p4.extra["pipeline"]["bubble_fraction"] < 1.0


def test_pipeline_splits_capacity():
    with pytest.raises(ArchsimError) as e:
        simulate("a100", "llama2-70b", phase="decode", batch=1, kv_len=128)
    assert "memory.capacity" in str(e.value) or getattr(e.value, "path", "") == "memory.capacity"
    r = simulate("a100", "llama2-70b", phase="decode", batch=2, kv_len=128, overrides=["parallel.pipeline=2"])
    assert r.tokens_per_s > 0 and r.extra["pipeline"]["stages"] == 2


def test_more_stages_than_layers_is_clear_error():
    with pytest.raises(ArchsimError) as e:
        simulate("a100", dict(SMALL, phase="decode", batch=2, kv_len=16), overrides=["parallel.pipeline=8"])
    assert "parallel.pipeline" in str(e.value)
    out = CliRunner().invoke(main, ["run", "a100", "gpt2", "--set", "parallel.pipeline=99"])
    assert out.exit_code == 2 and "parallel.pipeline" in out.output and "Traceback" not in out.output


def test_hetero_pipeline_stages_hold_more_and_conserve_macs():
    """An xPU + PIM system split into pipeline stages: each stage brings its own devices and PIM
    stacks, so a model too large for one stage fits on two; MACs are conserved."""
    with pytest.raises(ArchsimError) as e:
        simulate("neupims", "llama2-70b", phase="decode", batch=8, kv_len=256, overrides=["xpu.devices=4"])
    assert "pim.stacks" in str(e.value) or getattr(e.value, "path", "") == "pim.stacks"
    r = simulate("neupims", "llama2-70b", phase="decode", batch=8, kv_len=256,
                 overrides=["xpu.devices=4", "parallel.pipeline=2"])
    assert r.extra["pipeline"]["stages"] == 2
    assert r.macs == r.expected_macs and r.bounds_ok()
    assert 0.0 < r.extra["uarch_summary"]["utilisation"]["xpu"] <= 1.0


def test_moe_and_hybrid_split_into_microbatches():
    """Micro-batches of a mixture-of-experts and a hybrid model are rebuilt from the input spec
    (not from what the builder derived): every token is still routed, MACs are conserved."""
    r = simulate("a100", "deepseek-moe-16b", phase="decode", batch=4, kv_len=64, overrides=["parallel.pipeline=2"])
    assert r.extra["pipeline"]["microbatches"] == 2 and r.macs == r.expected_macs and r.bounds_ok()
    h = simulate("a100", "jamba-mini", phase="decode", batch=4, kv_len=64,
                 overrides=["parallel.pipeline=2", "memory.capacity=1e13"])
    assert h.macs == h.expected_macs and h.bounds_ok()
