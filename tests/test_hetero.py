"""xPU + PIM system (uarch hetero): schedules by hand, bounds, mixed KV lengths, bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from archsim.api import load, simulate
from archsim.config.loader import load_arch
from archsim.errors import ArchsimError, ConfigError, LoweringError
from archsim.sim.run import simulate_loaded
from archsim.uarch import get, names
from archsim.uarch.hetero import K_LINK, UNITS
from archsim.uarch.hetero.bounds import bounds

SMALL = dict(name="small", kind="transformer", d_model=1024, n_layers=4, n_heads=8, d_ff=4096, vocab_size=1000,
             norm="layernorm", mlp="gelu", position="learned", phase="decode", batch=8, kv_len=256,
             precision={"weights": "fp16", "activations": "fp16"})
ATT_X = ["placement.attn_qk=xpu", "placement.softmax=xpu", "placement.attn_sv=xpu", "placement.kv_write=xpu"]


def _run(arch, wl, ov=(), **kw):
    cfg, w = load(arch, wl, overrides=list(ov), **kw)
    return cfg, w, simulate_loaded(cfg, w)


def test_registered_and_summary():
    assert "hetero" in names()
    _, _, r = _run("attacc_dgx", SMALL)
    s = r.to_dict()["uarch_summary"]
    for k in ("tokens_per_s", "per_token_latency_s", "energy_per_token_j", "busy_s"):
        assert k in s
    assert s["busy_s"]["pim"] > 0 and s["busy_s"]["xpu"] > 0 and s["busy_s"]["link"] > 0
    assert r.tokens_per_s == pytest.approx(8 / r.seconds)
    assert r.bounds_ok()                               # MACs conserved, cycles >= compute bound


def _device_cycles(cfg, r):
    """Per-layer sums of the durations of every piece but the host's launches, weighted."""
    p = r.program
    dur = get("hetero").cost(cfg, p)[0]
    dev = p.unit != UNITS.index("host")
    per_layer = np.zeros(len(p.layer_weights), np.int64)
    np.add.at(per_layer, p.layer[dev], dur[dev])
    return int((per_layer * p.layer_weights).sum()), int((dur[~dev] * p.layer_weights[p.layer[~dev]]).sum())


def test_serial_schedule_by_hand():
    """Serial: nothing overlaps, so the step is the sum of every piece; link pieces follow
    latency + bytes / (devices x bandwidth). The GPUs' host launches kernels ahead, in order:
    with free launches the step is exactly the sum; with the preset's 5 us launches a segment
    whose first kernel the host has not launched yet waits for it."""
    bw = ["memory.bandwidth=2849.2 GB/s", "memory.capacity=85.899e9", "memory.energy_per_bit=3.59 pJ"]
    cfg0, _, free = _run("attacc_dgx", SMALL, ["xpu.set=" + json.dumps(bw + ["launch.host=0 us"])])
    assert free.cycles == _device_cycles(cfg0, free)[0]
    cfg, w, r = _run("attacc_dgx", SMALL)
    dev, host = _device_cycles(cfg, r)
    assert dev < r.cycles <= dev + host
    p = r.program
    dur = get("hetero").cost(cfg, p)[0]
    clk = cfg.clock
    # q, k, v of 8 requests (3 x 1024 fp16) to the PIM, the attention output (1024 fp16) back
    to_pim = 8 * 3 * 1024 * 2
    to_xpu = 8 * 1024 * 2
    lk = p.op == 7
    got = sorted(set(p.nbytes[lk].tolist()))
    assert got == sorted({to_pim, to_xpu})
    for nb in (to_pim, to_xpu):
        i = int(np.nonzero(lk & (p.nbytes == nb))[0][0])
        assert dur[i] == math.ceil((1e-6 + nb / (8 * 300e9)) * clk - 1e-9)


def test_interleaved_overlaps_and_respects_resources():
    cfg, w, ser = _run("neupims", SMALL, ["schedule=serial"], batch=64, kv_len=2048)
    _, _, il = _run("neupims", SMALL, ["interleave_min_batch=2"], batch=64, kv_len=2048)
    s = il.to_dict()["uarch_summary"]
    assert s["sub_batches"] == 2 and s["batch_split"] == [32, 32]
    busy = s["busy_s"]
    # never faster than its busiest unit, never slower than doing the work one piece after another
    assert il.seconds >= max(busy["xpu"], busy["pim"]) - 1e-9
    assert il.seconds <= busy["xpu"] + busy["pim"] + busy["link"] + 1e-6
    assert ser.to_dict()["uarch_summary"]["sub_batches"] == 1


def test_neupims_interleaves_large_batches_only():
    """The preset follows NeuPIMs' policy: sub-batches from batch 256 up, serial below."""
    _, _, small = _run("neupims", SMALL, [], batch=128, kv_len=256)
    _, _, large = _run("neupims", SMALL, [], batch=256, kv_len=256)
    assert small.to_dict()["uarch_summary"]["sub_batches"] == 1
    assert large.to_dict()["uarch_summary"]["sub_batches"] == 2


def _npu_fc(batch, ov=()):
    """Cycles and off-chip bytes of one Llama-2-7B layer's FC GEMMs on the NeuPIMs NPU."""
    r = simulate("neupims_npu", "llama2-7b", batch=batch, kv_len=16, phase="decode",
                 overrides=["workload.n_layers=1", *ov])
    fc = [o for o in r.extra["ops"] if o["name"] in ("block.qkv", "block.o", "block.up", "block.down")]
    assert len(fc) == 4
    return sum(o["added_cycles"] for o in fc), {o["name"]: o["offchip_bytes"] for o in fc}


def test_neupims_npu_streams_activations_from_memory():
    """The NeuPIMs NPU's cores have private scratchpads and its reference GEMM loads every tile's
    operands from memory: no activation stays on chip between ops, so the QKV projection reads
    its input (256 x 4096 x 2 B) at least once more than with the 8 cores' buffers pooled for
    activations (the budget 0.5, which keeps that input on chip), and a 512-row FC costs about
    twice a 256-row one instead of three times."""
    c256, b256 = _npu_fc(256)
    c512, _ = _npu_fc(512)
    assert 1.7 < c512 / c256 < 2.3
    pooled, pb = _npu_fc(256, ["sram.activation_budget=0.5"])
    assert b256["block.qkv"] - pb["block.qkv"] >= 256 * 4096 * 2
    assert pooled < 0.8 * c256 and c512 / pooled > 2.5


def test_single_row_buffer_serialises_shared_memory():
    _, _, dual = _run("neupims", SMALL, [], batch=64, kv_len=2048)
    _, _, single = _run("neupims", SMALL, ["pim.dual_row_buffer=false"], batch=64, kv_len=2048)
    assert single.seconds >= dual.seconds
    # with one row buffer the xPU's memory time also occupies the banks
    assert single.units["pim"] > dual.units["pim"]
    # the report counts those memory phases as the xPU's busy time (it streams its operands
    # meanwhile), the PIM's own commands apart, and the banks' whole occupancy as `banks`
    sd, ss = (r.to_dict()["uarch_summary"] for r in (dual, single))
    clk = single.clock_hz
    on_banks = ss["work_s"]["xpu_on_banks_s"]
    assert on_banks > 0 and "banks" not in sd["busy_s"] and "xpu_on_banks_s" not in sd["work_s"]
    assert ss["busy_s"]["banks"] == pytest.approx(single.units["pim"] / clk)
    assert ss["busy_s"]["xpu"] == pytest.approx(single.units["xpu"] / clk + on_banks)
    assert ss["busy_s"]["xpu"] == pytest.approx(ss["work_s"]["xpu_s"], rel=1e-6)
    assert ss["busy_s"]["pim"] == pytest.approx(ss["work_s"]["pim_s"], rel=1e-6)
    assert ss["utilisation"]["xpu"] == pytest.approx(ss["busy_s"]["xpu"] / single.seconds)


def test_head_pipelining_not_slower():
    _, _, a = _run("attacc_dgx", SMALL, [], batch=32, kv_len=1024)
    _, _, b = _run("attacc_dgx", SMALL, ["head_chunks=4"], batch=32, kv_len=1024)
    assert b.seconds <= a.seconds * 1.001


def test_head_chunks_at_most_the_heads_of_a_device():
    """Head pipelining cuts each device's query heads into groups: SMALL's 8 heads on 2 xPU
    devices are 4 per device, so 8 head groups are the same schedule as 4 (no finer overlap and
    no extra transfers), while 4 groups still overlap QKV, link and attention (at batch 32 and
    KV 4096 attention is long enough to hide; at batch 8 the GPUs' kernel launches pace the
    step and the groups gain nothing)."""
    ov = ["xpu.devices=2"]
    _, _, one = _run("attacc_dgx", SMALL, ov, batch=32, kv_len=4096)
    _, _, four = _run("attacc_dgx", SMALL, ov + ["head_chunks=4"], batch=32, kv_len=4096)
    _, _, eight = _run("attacc_dgx", SMALL, ov + ["head_chunks=8"], batch=32, kv_len=4096)
    assert four.seconds < one.seconds
    assert eight.cycles == four.cycles
    links = [int(((x.program.op == 7) & (x.program.unit == UNITS.index("link_to_pim"))).sum()) for x in (four, eight)]
    assert links[0] == links[1]


def test_head_groups_finer_than_a_devices_kv_heads_read_the_kv_again():
    """Head pipelining with grouped-query attention: SMALL with 2 KV heads on 2 xPU devices
    holds one KV head and its 4 query heads per device. One head group reads each KV head once
    for its 4 query heads; 2 groups of 2 query heads and 4 groups of 1 each read it again, so the
    KV bytes read inside the banks are exactly 2x and 4x (the query broadcast, per query head,
    and the MACs are unchanged). With one KV head per query head (8 KV heads, 4 per device) every
    group holds whole KV heads: the same bytes and PIM time whatever the grouping."""
    def pim(kvh, hc):
        _, _, r = _run("attacc_dgx", dict(SMALL, n_kv_heads=kvh), ["xpu.devices=2", f"head_chunks={hc}"],
                       batch=8, kv_len=1024)
        c = r.components["pim"]["counts"]
        return c["in_bank_bytes"], c["io_bytes"], r.macs, r.extra["uarch_summary"]["by_kind_s"]["pim_attention"]

    gqa = [pim(2, hc) for hc in (1, 2, 4)]
    assert [g[0] for g in gqa] == [gqa[0][0], 2 * gqa[0][0], 4 * gqa[0][0]]
    assert len({g[1] for g in gqa}) == 1 and len({g[2] for g in gqa}) == 1
    assert gqa[0][3] < gqa[1][3] < gqa[2][3]
    mha = [pim(8, hc) for hc in (1, 2, 4)]
    assert len({m[0] for m in mha}) == 1 and len({m[3] for m in mha}) == 1


def test_reference_trace_repeats_are_noted():
    """Decode attention on PIM units that replay the AttAcc generator's repeats (the attacc_pim
    preset's default) says so in the result's notes, naming the field that turns them off; with
    each command once, with attention on the xPU, or in prefill there is nothing to say. The PIM
    preset alone notes it too."""
    def notes(arch, ov=(), **kw):
        return simulate(arch, SMALL, overrides=list(ov), **kw).extra.get("notes", [])

    said = [n for n in notes("attacc_dgx", phase="decode", batch=2, kv_len=64) if "reference_trace" in n]
    assert len(said) == 1 and said[0].startswith("pim.set:") and "pim.reference_trace=false" in said[0]
    assert not any("reference_trace" in n for n in notes("attacc_dgx", ['pim.set=["pim.reference_trace=false"]'],
                                                         phase="decode", batch=2, kv_len=64))
    assert not any("reference_trace" in n for n in notes("attacc_dgx", phase="prefill", batch=1, seq_len=64))
    xpu_attn = 'placement={"attn_qk":"xpu","softmax":"xpu","attn_sv":"xpu","kv_write":"xpu"}'
    assert not any("reference_trace" in n for n in notes("attacc_dgx", [xpu_attn], phase="decode", batch=2,
                                                         kv_len=64))
    alone = [n for n in notes("attacc_pim", phase="decode", batch=2, kv_len=64) if "reference_trace" in n]
    assert len(alone) == 1 and alone[0].startswith("pim.reference_trace:")


def test_mixed_kv_lengths_between_extremes():
    lens = [128] * 4 + [1024] * 4
    _, _, lo = _run("attacc_dgx", SMALL, [], batch=8, kv_len=128)
    _, _, mix = _run("attacc_dgx", dict(SMALL, kv_lens=lens), [], batch=8)
    _, _, hi = _run("attacc_dgx", SMALL, [], batch=8, kv_len=1024)
    pim = [x.to_dict()["uarch_summary"]["by_kind_s"]["pim_attention"] for x in (lo, mix, hi)]
    assert pim[0] < pim[1] <= pim[2]
    assert lo.seconds <= mix.seconds <= hi.seconds


@pytest.mark.parametrize("arch,wl,batch,kv,ov", [
    ("attacc_dgx", SMALL, 1, 512, []),
    ("attacc_dgx", SMALL, 64, 2048, ["head_chunks=8"]),
    ("neupims", SMALL, 64, 1024, ["interleave_min_batch=2"]),
    # a batch of at least one request per channel (the preset keeps a request's heads in one
    # of its 32 channels): no PIM excess
    ("neupims", SMALL, 32, 512, ["pim.dual_row_buffer=false"]),
])
def test_bounds(arch, wl, batch, kv, ov):
    cfg, w, r = _run(arch, wl, ov, batch=batch, kv_len=kv)
    b = bounds(cfg, w, r)
    assert b["lower_s"] <= r.seconds <= b["upper_s"] * (1 + 1e-9)
    assert b["pim_excess_s"] == 0 and b["handoff_s"] < 0.02 * r.seconds


def test_bounds_name_what_offloading_costs():
    """Where offloading does not pay, the upper bound says why. One KV head per device at batch 1:
    its cache sits in few PIM channels while the xPU alone streams it over all of them, so the
    PIM's attention takes longer than the xPU's (pim_excess_s) and the system is slower than the
    xPU alone. Interleaving two requests: each half-batch re-streams the weights, so the xPU-alone
    reference runs the same two halves (their heads striped over the channels, so that the PIM
    does not also exceed the xPU, as it does with each request's heads in one channel)."""
    gqa = dict(SMALL, n_kv_heads=1)
    cfg, w, r = _run("neupims", gqa, batch=1, kv_len=4096)
    b = bounds(cfg, w, r)
    assert r.seconds > 1.3 * b["xpu_only_s"] and b["pim_excess_s"] > 0.25 * r.seconds
    assert b["lower_s"] <= r.seconds <= b["upper_s"] * (1 + 1e-9)
    striped = ["interleave_min_batch=2", "pim.arch.pim.request_placement=striped"]
    cfg, w, r = _run("neupims", SMALL, striped, batch=2, kv_len=512)
    b = bounds(cfg, w, r)
    _, _, whole = _run("neupims", SMALL, [*striped, *ATT_X], batch=2, kv_len=512)
    assert b["sub_batches"] == 2 and b["pim_excess_s"] == 0
    assert r.seconds > whole.seconds and b["xpu_only_s"] > 1.8 * whole.seconds
    assert b["lower_s"] <= r.seconds <= b["upper_s"] * (1 + 1e-9)


def test_all_on_xpu_equals_plain_xpu_plus_nothing():
    """With every op on the xPU there is no link traffic and no PIM time."""
    _, _, r = _run("attacc_dgx", SMALL, ATT_X)
    s = r.to_dict()["uarch_summary"]
    assert s["busy_s"]["pim"] == 0 and s["busy_s"]["link"] == 0


def test_cost_matches_naive_twin():
    cfg, w, r = _run("neupims", SMALL, [], batch=16, kv_len=512)
    p = r.program
    dur, cnt = get("hetero").cost(cfg, p)
    n_dur = np.zeros(len(p), np.int64)
    n_cnt = np.zeros_like(cnt)
    for i in range(len(p)):
        n_dur[i] = p.aux[i, 0]
        L = p.layer[i]
        n_cnt[L, 0] += p.aux[i, 1]
        if p.aux[i, 3] in (0, 1):
            n_cnt[L, 1 + p.aux[i, 3]] += p.aux[i, 2]
        elif p.aux[i, 3] == K_LINK:
            n_cnt[L, 3] += p.nbytes[i]
        if p.aux[i, 3] == 0:
            n_cnt[L, 8] += p.k[i]                     # MACs the xPU skipped
    n_cnt[:, 4:8] = p.meta["layer_bytes"]
    assert (dur == n_dur).all() and (cnt == n_cnt).all()
    assert p.unit_names == UNITS


def test_memory_traffic_of_a_decode_step():
    """The xPU reads the FC weights once per step (batch 8 fits one tile row), the PIM units
    read every request's K and V inside the banks, the KV append crosses the PIM's data path;
    the xPU's DRAM traffic is the run's off-chip traffic, its peak rate the xPU devices'."""
    cfg, w, r = _run("attacc_dgx", SMALL, [], batch=8, kv_len=256)
    c = r.to_dict()["components"]
    d, L, ff, B = 1024, 4, 4096, 8
    fc_weights = L * (4 * d * d + 2 * d * ff) * 2 + 1000 * d * 2          # blocks + LM head
    assert fc_weights <= c["xpu"]["counts"]["dram_read_bytes"] <= 1.05 * fc_weights
    # K and V (fp16) of the 256 cached tokens and the new one, read in 16-token bursts
    kv = lambda toks: L * B * 2 * toks * d * 2                             # noqa: E731
    assert kv(257) <= c["pim"]["counts"]["in_bank_bytes"] <= kv(272)
    assert c["pim"]["counts"]["io_bytes"] >= L * B * 2 * d * 2            # the new K and V rows
    rd = sum(x.offchip_read_bytes * x.repeat for x in r.layers)
    wr = sum(x.offchip_write_bytes * x.repeat for x in r.layers)
    assert rd == c["xpu"]["counts"]["dram_read_bytes"] and r.offchip_bytes == rd + wr
    assert r.peak_bytes_per_cycle * cfg.clock == pytest.approx(8 * 2849.2e9, rel=1e-6)   # 8 x A100a HBM3
    assert r.memory_bound_cycles <= r.cycles and r.bounds_ok()


def test_bad_placement_names_the_field():
    with pytest.raises(ConfigError) as e:
        load_arch("attacc_dgx", ["placement.norm=pim"])
    assert "placement.norm" in str(e.value) and e.value.exit_code == 2
    with pytest.raises(ConfigError) as e:
        load_arch("attacc_dgx", ["placement.attn_qk=xpu"])
    assert "placement" in str(e.value)
    with pytest.raises(ConfigError) as e:
        load_arch("attacc_dgx", ["placement.atention=pim"])
    assert "placement.atention" in str(e.value)


def test_model_too_big_names_the_field():
    with pytest.raises(LoweringError) as e:
        simulate("neupims", "gpt3-175b", batch=8, kv_len=2048)
    assert e.value.path == "pim.stacks" and isinstance(e.value, ArchsimError)


def test_cli_exit_2_on_bad_placement():
    from click.testing import CliRunner

    from archsim.cli import main
    res = CliRunner().invoke(main, ["run", "attacc_dgx", "gpt2", "--phase", "decode",
                                    "--set", "placement.fc=lol"])
    assert res.exit_code == 2


def _ff_segs(cfg, w):
    from archsim.uarch.hetero.plan import build_plan
    plan = build_plan(cfg, w)
    return [s for g in plan.groups for s in g.subs[0] if s.dev == "ffp"]


def test_ff_parallel_split_by_hand():
    """Feed-forward parallelism: the up GEMM is split by output columns, the down GEMM by input
    rows; the PIM share is one GEMV per request; MACs are conserved; the link carries the
    normalised input / the share's outputs (up) and the share's activations / partial sums (down)."""
    from archsim.uarch.dram_pim.api import gemv_cycles
    from archsim.uarch.hetero.plan import parts
    B = 4
    # a GPT-3-1.3B-sized MLP on one GPU with 5 stacks: both GEMMs split inside (0, 1)
    wl = dict(SMALL, d_model=2048, d_ff=8192, n_heads=16)
    cfg, w = load("attacc_dgx", wl, overrides=["ff_parallel=true", "xpu.devices=1"], batch=B, kv_len=512)
    segs = _ff_segs(cfg, w)
    assert segs and len(segs[0].phases) == 3           # up | activation | down (one device: no all-reduce)
    up, act, down = segs[0].phases
    assert act.p is None and up.p is not None and down.p is not None
    P = parts(cfg)
    d, ff = 2048, 8192
    assert up.pim_cols == d and 0 < up.pim_rows < ff and up.pim_rows % (ff // 64) == 0
    assert down.pim_rows == d and 0 < down.pim_cols < ff and up.x is not None and down.x is not None
    for ph in (up, down):
        assert ph.p.seconds == pytest.approx(B * gemv_cycles(P.pim, ph.pim_rows, ph.pim_cols).seconds)
    assert up.link_in == B * d * 2 and up.link_out == B * up.pim_rows * 2
    assert down.link_in == B * down.pim_cols * 2 and down.link_out == B * d * 2
    assert up.x.macs + up.p.macs == B * d * ff and down.x.macs + down.p.macs == B * ff * d
    # the chosen share is no worse than either neighbour on the 1/64 grid
    lk = lambda nb: 1e-6 + nb / (1 * 300e9)       # noqa: E731
    t_up = max(up.x.seconds, lk(up.link_in) + up.p.seconds + lk(up.link_out))
    assert t_up <= up.x.seconds + lk(up.link_in) + up.p.seconds + lk(up.link_out)
    assert segs[0].seconds == pytest.approx(
        sum(max(ph.x.seconds if ph.x else 0.0,
                (lk(ph.link_in) + ph.p.seconds + lk(ph.link_out)) if ph.p else 0.0) for ph in (up, act, down)))


def test_ff_parallel_faster_at_small_batch_and_conserves_macs():
    _, _, a = _run("attacc_dgx", SMALL, [], batch=1, kv_len=512)
    _, _, b = _run("attacc_dgx", SMALL, ["ff_parallel=true"], batch=1, kv_len=512)
    assert b.seconds < a.seconds
    assert b.macs == a.macs and b.bounds_ok()
    sb = b.to_dict()["uarch_summary"]
    assert sb["by_kind_s"]["pim_ff_gemv"] > 0
    assert sb["busy_s"]["xpu"] < a.to_dict()["uarch_summary"]["busy_s"]["xpu"]
    # prefill never splits (the PIM runs decode work only)
    _, _, pre = _run("attacc_dgx", dict(SMALL, phase="prefill", seq_len=128), ["ff_parallel=true"], batch=1)
    assert "pim_ff_gemv" not in pre.to_dict()["uarch_summary"]["by_kind_s"]


@pytest.mark.parametrize("batch", [1, 64])
def test_ff_parallel_bounds(batch):
    cfg, w, r = _run("attacc_dgx", SMALL, ["ff_parallel=true", "head_chunks=8"], batch=batch, kv_len=1024)
    b = bounds(cfg, w, r)
    assert b["lower_s"] <= r.seconds <= b["upper_s"] * (1 + 1e-9)


def test_attacc_energy_case_compares_dynamic_energy():
    """The AttAcc energy cases: energy per decode step of the whole batch on both systems, the
    dynamic scope leaves leakage out; at batch 1 both systems spend their energy on the same
    weight reads (ratio near 1), at batch 54 the KV cache read inside the PIM makes AttAcc
    clearly more efficient."""
    from archsim.uarch.hetero.validation import _energy_j, attacc_energy
    base = dict(workload="gpt3-175b", kv_len=2112, scope="dynamic", attacc_overrides=["xpu.capacity=1e13"])
    one = attacc_energy(dict(base, batch=1))
    many = attacc_energy(dict(base, batch=54))
    assert 0.9 < one["energy_eff_ratio"] < 1.15 < 1.4 < many["energy_eff_ratio"]
    r = simulate("attacc_dgx", "gpt3-175b", batch=1, kv_len=2112, overrides=["xpu.capacity=1e13"])
    leak = sum(c["energy_pj"].get("leakage", 0.0) for c in r.components.values()) * 1e-12
    assert leak > 0 and _energy_j(r, "all") - _energy_j(r, "dynamic") == pytest.approx(leak)
    assert one["attacc_step_j"] == pytest.approx(_energy_j(r, "dynamic"))


def test_systolic_xpu_allreduce_follows_the_interconnect():
    """A systolic xPU's tensor-parallel all-reduces run over the system's interconnect: its
    bandwidth sets their time and its energy per bit (not the xPU-PIM link's) their energy, also
    for runs that differ only there in one process."""
    from archsim.api import simulate
    base = ["xpu.devices=2"]

    def run(ov):
        r = simulate("neupims", "gpt2", phase="decode", batch=8, kv_len=256, overrides=base + ov)
        return r, r.to_dict()["uarch_summary"]["by_kind_s"]["xpu_allreduce"]
    r0, t0 = run([])
    r1, t1 = run(["interconnect.bandwidth=30 GB/s"])
    assert t1 > t0 and r1.seconds > r0.seconds
    r2, _ = run(["interconnect.energy_per_bit=0 pJ"])
    r3, _ = run(["link.energy_per_bit=0 pJ"])
    assert r2.energy_pj < r0.energy_pj
    # the link's price moves only the link component
    assert r3.components["xpu"]["energy_pj"] == r0.components["xpu"]["energy_pj"]


def test_ideal_interconnect_removes_exactly_the_all_reduces():
    """With ``interconnect.algorithm: ideal`` a systolic xPU's all-reduces cost nothing: in the
    serial schedule the step shortens by exactly their time, the rest of the work is unchanged,
    and the energy falls (link bytes and the leakage of the shorter step)."""
    from archsim.api import simulate
    base = ["xpu.devices=2", "schedule=serial"]

    def run(ov):
        r = simulate("neupims", "gpt2", phase="decode", batch=8, kv_len=256, overrides=base + ov)
        return r, r.to_dict()["uarch_summary"]["by_kind_s"]
    r0, k0 = run([])
    r1, k1 = run(["interconnect.algorithm=ideal"])
    assert k0["xpu_allreduce"] > 0 and k1["xpu_allreduce"] == 0
    assert {k: v for k, v in k1.items() if k != "xpu_allreduce"} == \
        {k: v for k, v in k0.items() if k != "xpu_allreduce"}
    assert r0.seconds - r1.seconds == pytest.approx(k0["xpu_allreduce"], rel=1e-9)
    assert r1.energy_pj < r0.energy_pj
    notes = [n for n in r1.to_dict()["notes"] if n.startswith("interconnect.algorithm: ideal")]
    assert len(notes) == 1 and "2-way" in notes[0]
    assert not [n for n in r0.to_dict().get("notes", []) if "interconnect.algorithm" in n]


def test_area_counts_every_xpu_device_once():
    _, _, r = _run("attacc_dgx", SMALL)
    one = simulate("a100", SMALL).to_dict()["area_mm2"]
    assert r.to_dict()["area_mm2"] == pytest.approx(8 * one)


def test_pim_background_power_over_the_whole_step():
    """The 40 attacc_pim stacks hold the KV cache all step long: their background power is leakage
    over the step, not part of the PIM calls' (dynamic) energy."""
    _, _, r = _run("attacc_dgx", SMALL)
    c = r.to_dict()["components"]
    assert c["pim"]["energy_pj"]["leakage"] == pytest.approx(40 * 0.48 * r.seconds * 1e12, rel=1e-6)
    busy_pim = r.to_dict()["uarch_summary"]["busy_s"]["pim"]
    assert 0 < busy_pim < r.seconds


def test_xpu_devices_must_split_whole_heads():
    with pytest.raises(LoweringError) as e:
        simulate("attacc_dgx", "gpt2", phase="decode", batch=1, kv_len=64, overrides=["xpu.devices=5"])
    assert e.value.path == "xpu.devices" and "12 query heads" in str(e.value)


def test_pim_arch_of_another_family_is_named():
    with pytest.raises(ConfigError) as e:
        simulate("attacc_dgx", "gpt2", phase="decode", batch=1, kv_len=64, overrides=["pim.arch=a100"])
    assert e.value.path == "pim.arch" and "must name a dram_pim configuration" in str(e.value)
    assert "'gpu'" in str(e.value)


def test_xpu_segment_cache_tells_precisions_apart():
    """Two runs in one process that differ only in the workload's precision (same op names and
    shapes) must not share a cached xPU segment: INT8 weights halve the FC bytes."""
    from archsim.uarch.hetero.plan import clear_caches
    kw = dict(phase="decode", batch=8, kv_len=256)
    clear_caches()
    alone = simulate("attacc_dgx", SMALL, overrides=["workload.precision.weights=int8"], **kw)
    clear_caches()
    simulate("attacc_dgx", SMALL, **kw)
    after = simulate("attacc_dgx", SMALL, overrides=["workload.precision.weights=int8"], **kw)
    assert after.cycles == alone.cycles
    assert after.to_dict()["components"]["xpu"]["counts"]["dram_read_bytes"] == \
        alone.to_dict()["components"]["xpu"]["counts"]["dram_read_bytes"]


def test_pim_operands_at_the_units_precision():
    """The KV cache the PIM reads in its banks must be stored at the units' precision: an INT8 KV
    cache on FP16 units is refused naming the field; with INT8 units it halves the in-bank bytes.
    A 16-bit float is a 16-bit float (bf16 KV on fp16 units runs)."""
    kw = dict(phase="decode", batch=4, kv_len=512)
    with pytest.raises(ConfigError) as e:
        simulate("attacc_dgx", SMALL, overrides=["workload.quant=kv_int8"], **kw)
    assert e.value.path == "pim.set" and "int8" in str(e.value)
    fp16 = simulate("attacc_dgx", SMALL, **kw)
    int8 = simulate("attacc_dgx", SMALL, overrides=["workload.quant=kv_int8", 'pim.set=["pim.precision=int8"]'], **kw)
    b = lambda r: r.to_dict()["components"]["pim"]["counts"]["in_bank_bytes"]  # noqa: E731
    assert b(int8) * 2 == b(fp16)
    simulate("attacc_dgx", SMALL, overrides=["workload.precision.kv_cache=bf16"], **kw)
    with pytest.raises(ConfigError) as e:
        simulate("hbm_pim", "gpt2", overrides=["workload.precision.weights=int8"], **kw)
    assert e.value.path == "pim.precision"


def test_pruned_fc_layers_on_a_sparse_xpu():
    """2:4-pruned FC weights on the attacc_dgx's A100s (sparse tensor cores): the xPU issues half
    of the FC MACs and skips the rest; attention (on PIM) and the LM head stay dense; the FC
    weights the xPU streams shrink to 0.5625, so the step is faster."""
    prune = ["workload.sparsity.weights.pattern=nm", "workload.sparsity.weights.n=2", "workload.sparsity.weights.m=4"]
    _, _, d = _run("attacc_dgx", SMALL, [], batch=8, kv_len=256)
    _, _, s = _run("attacc_dgx", SMALL, prune, batch=8, kv_len=256)
    d_, L, ff, B = 1024, 4, 4096, 8
    fc_macs = L * B * (4 * d_ * d_ + 2 * d_ * ff)                 # QKV, O, up, down of 4 blocks
    assert s.skipped_macs == fc_macs // 2 and d.skipped_macs == 0
    assert s.macs + s.skipped_macs == s.expected_macs == d.macs and s.bounds_ok()
    fc_weights = L * (4 * d_ * d_ + 2 * d_ * ff) * 2
    cd, cs = d.to_dict()["components"], s.to_dict()["components"]
    saved = cd["xpu"]["counts"]["dram_read_bytes"] - cs["xpu"]["counts"]["dram_read_bytes"]
    assert saved == pytest.approx(fc_weights * 7 / 16, rel=0.02)
    assert cs["pim"]["counts"]["in_bank_bytes"] == cd["pim"]["counts"]["in_bank_bytes"]
    assert s.seconds < d.seconds
    # the capacity check holds the pruned weights compressed
    held = [r.to_dict()["uarch_summary"]["capacity"]["weights_bytes"]["xpu"] for r in (d, s)]
    assert held[0] - held[1] == fc_weights * 7 // 16


@pytest.mark.slow
def test_every_study_point_lies_within_its_bounds():
    """Every GPU+PIM and NPU+PIM point of the study sweep that fits its memory (188 of them)
    lies within its bounds; the PIM's own excess appears only where offloading cannot pay: on
    the NPU+PIM, whose preset keeps each request's heads (Llama-2-70B: one KV head per device;
    GPT-3 175B: 12 heads per device) in one PIM channel, few requests, or half-batches of few
    requests, occupy few channels."""
    from pathlib import Path

    from archsim.api import simulate
    from archsim.errors import ArchsimError
    from archsim.sweep.spec import compile_spec, load_spec
    spec, base = load_spec(Path(__file__).parents[1] / "sweeps" / "hetero_xpu_pim.yaml")
    sw = compile_spec(spec, base)
    checked = 0
    for p in sw.grid():
        w = sw.workloads[p.workload]
        if w.arch_label == "gpu":
            continue
        t = sw.task(p)
        try:
            r = simulate(t["arch"], t["workload"], overrides=t["overrides"])
        except ArchsimError:
            continue                                      # does not fit the memory
        b = bounds(r.cfg, r.workload, r)
        checked += 1
        where = (w.label, sw.values(p))
        assert b["lower_s"] <= r.seconds <= b["upper_s"] * (1 + 1e-9), where
        assert b["handoff_s"] < 0.01 * r.seconds, where
        if b["pim_excess_s"] > 0:
            assert w.label.startswith("npu+pim"), where
            assert sw.values(p)["workload.batch"] <= (4 if "serial" in w.label else 16), where
    assert checked == 188


def test_gpu_host_launches_hidden_only_behind_device_work():
    """A gpu xPU's host issues every kernel launch in order; splitting its work around PIM calls
    hides a segment's first launch only behind what the PIM and the link did meanwhile. Mamba-130M
    with its projections on the PIM at batch 1 is launch-bound (8 kernels of 5 us per block
    against short PIM GEMVs): the step must not beat the xPU's own share at infinite bandwidth,
    which the host paces."""
    cfg, w, r = _run("attacc_dgx", "mamba-130m", ['placement={"fc":"pim"}', "pim.stacks=2"], phase="decode",
                     batch=1, kv_len=17)
    b = bounds(cfg, w, r)
    assert b["lower_s"] <= r.seconds <= b["upper_s"] * (1 + 1e-9)


def test_pim_request_placement_in_the_system():
    """The neupims preset keeps each request's KV heads in one channel, each request to the
    least-loaded channel (min_load); round_robin deals them in arrival order. 64 requests arrive
    as [2000, 31 x 50] twice over the 32 channels: in turn both long ones land in channel 0, by
    load in two channels. In the serial schedule the PIM attention is the only part that moves;
    the MACs do not."""
    wl = dict(SMALL, batch=64, kv_lens=([2000] + [50] * 31) * 2, max_seq_len=2048)
    base = ["schedule=serial", "pim.dual_row_buffer=false"]
    runs = {p: _run("neupims", wl, base + [f"pim.arch.pim.request_placement={p}"], batch=64)[2]
            for p in ("min_load", "round_robin")}
    k = {p: r.to_dict()["uarch_summary"]["by_kind_s"] for p, r in runs.items()}
    assert runs["min_load"].macs == runs["round_robin"].macs
    assert k["round_robin"]["pim_attention"] > 1.5 * k["min_load"]["pim_attention"]
    assert k["round_robin"]["xpu_compute"] == k["min_load"]["xpu_compute"]
    d = runs["round_robin"].seconds - runs["min_load"].seconds
    assert d == pytest.approx(k["round_robin"]["pim_attention"] - k["min_load"]["pim_attention"], rel=1e-6)
