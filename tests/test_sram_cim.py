"""SRAM CIM: hand-checked cycles, rewrites, residency, sparse waves, bounds, bad input."""

import copy

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from archsim.api import load, simulate
from archsim.errors import ArchsimError, ConfigError
from archsim.isa import Op
from archsim.sim.run import simulate_loaded
from archsim.uarch import get
from archsim.uarch.sram_cim.cost import N_COUNTERS, cim_cost
from archsim.uarch.sram_cim.tiles import buffer_flags, kept_waves, make_tiles
from archsim.uarch.systolic.cost import prim_table, vector_rates

ONE_MACRO = {
    "name": "cim1", "uarch": "sram_cim", "clock": "1 GHz", "tech_node_nm": 28, "precision": "int8",
    "mode": "parallel",
    "macro": {"rows": 256, "cols": 256, "weight_bits": 8, "input_bits_per_cycle": 1, "max_input_bits": 16,
              "pipeline_cycles": 4, "write_cycles_per_row": 1, "count": 1},
    "buffer": {"size": "256 KiB"},
    "vector": {"lanes": 16},
    # 256 B per cycle, no latency: a 8 KiB tile loads in 32 cycles
    "memory": {"model": "bandwidth", "bandwidth": "256 GB/s", "latency": "0 ns"},
}


def arch(**macro):
    a = copy.deepcopy(ONE_MACRO)
    a["macro"].update(macro)
    return a


def gemm(M, N, K, w="int8", a="int8"):
    return {"kind": "gemm", "M": M, "N": N, "K": K, "a_offchip": False, "c_offchip": False,
            "precision": {"weights": w, "activations": a}}


# -- one macro, one matrix-vector product -----------------------------------------------------------

@pytest.mark.parametrize("a_prec,bits", [("int4", 4), ("int8", 8), ("int16", 16)])
@pytest.mark.parametrize("bpc", [1, 2])
def test_single_macro_mvp_cycles(a_prec, bits, bpc):
    # weights 256 x 32 int8 fill the macro exactly (256 rows, 256 / 8 = 32 weights per row) and
    # stay resident; one input vector: ceil(bits / bpc) bit-serial cycles + 4 pipeline cycles
    r = simulate(arch(input_bits_per_cycle=bpc), gemm(1, 32, 256, a=a_prec))
    expected = -(-bits // bpc) + 4
    assert r.cycles == expected
    c = r.components["cim"]["counts"]
    assert c["wave"] == 1
    assert c["bitop"] == 256 * 32 * bits * 8          # MACs x input bits x weight bits
    assert c.get("row_write", 0) == 0                  # resident: nothing rewritten
    assert r.macs == 256 * 32


def test_single_macro_int16_weights_use_two_column_groups():
    # a 16-bit weight spans two 8-bit column groups: 256 / 16 = 16 weights per row
    r = simulate(arch(), gemm(1, 16, 256, w="int16", a="int8"))
    assert r.cycles == 8 + 4
    assert r.components["cim"]["counts"]["bitop"] == 256 * 16 * 8 * 16


def test_several_rows_stream_through_the_macro():
    # M input rows = M waves: M * 8 + 4
    r = simulate(arch(), gemm(10, 32, 256))
    assert r.cycles == 10 * 8 + 4
    assert r.components["cim"]["counts"]["wave"] == 10


# -- a layer larger than the chip ---------------------------------------------------------------------

def test_layer_larger_than_chip_rewrites_counted_exactly():
    # 2 macros, 2 stream groups of 1 macro; B 512 x 64 int8 -> 2 K tiles x 2 N tiles = 4 tiles,
    # none fits alongside the others: 4 rounds of LOAD (8192 B / 256 B/cycle = 32) ->
    # WRITE (256 rows x 1 cycle) -> wave set (8 + 4 = 12).
    a = arch(count=2)
    r = simulate(a, gemm(1, 64, 512), keep_timeline=True)
    c = r.components["cim"]["counts"]
    assert c["row_write"] == 4 * 256
    assert c["bit_write"] == 4 * 256 * 256
    assert r.components["offchip"]["counts"]["read_bytes"] == 4 * 8192
    # L0 0-32, L1 32-64 (bus), W0 32-288, W1 64-320, G0 288-300, G1 320-332,
    # L2 waits for W0 (slot): 288-320, W2 waits for G0 and L2: 320-576, G2 576-588,
    # L3 waits for W1: 320-352, W3 352-608, G3 608-620.
    assert r.cycles == 620
    s = get("sram_cim").summary(r)
    assert s["compute_cycles"] == 4 * 12
    # writes cover 32..608, wave sets cover the rest up to 620: union 588
    assert s["rewrite_cycles"] == 588 - 48
    assert s["stall_cycles"] == 620 - 588
    assert r.bounds_ok()


def test_rewrite_energy_priced_per_bit_written():
    a = arch(count=2)
    r = simulate(a, gemm(1, 64, 512))
    cim = r.components["cim"]
    per_bit = cim["energy_pj"]["bit_write"] / cim["counts"]["bit_write"]
    assert per_bit > 0
    s = get("sram_cim").summary(r)
    assert s["rewrite_pj"] == pytest.approx(cim["energy_pj"]["bit_write"])


# -- residency in decode --------------------------------------------------------------------------------

TINY = {"kind": "transformer", "name": "tiny", "d_model": 64, "n_layers": 2, "n_heads": 2, "d_ff": 128,
        "vocab_size": 128, "mlp": "gelu", "phase": "decode", "batch": 1, "kv_len": 15,
        "precision": {"weights": "int8", "activations": "int8"}}


def test_decode_resident_weights_and_kv_only_append_writes():
    # weights: per layer qkv 6 + o 2 + up 4 + down 2 = 14 tiles, x2 layers + lm_head 4 = 32 tiles;
    # KV: per layer 2 heads x (1 K^T tile + 1 V tile) = 4, x2 = 8. 64 macros hold everything.
    # Per decode step only the new token is written: per layer 2 K columns (bitline transpose:
    # one write each) + 2 V rows = 4 writes of 32 int8 values (256 bits) -> 8 writes, 2048 bits.
    a = arch(count=64)
    r = simulate(a, TINY)
    m = r.program.meta["cim"]
    assert m["weights_pinned_fraction"] == 1.0 and m["kv_resident"]
    c = r.components["cim"]["counts"]
    assert c["row_write"] == 8
    assert c["bit_write"] == 8 * 32 * 8
    assert r.bounds_ok()


def test_decode_without_room_rewrites_weights_every_token():
    a = arch(count=8)
    r = simulate(a, TINY)
    c = r.components["cim"]["counts"]
    assert r.program.meta["cim"]["weights_pinned_fraction"] < 1.0
    assert c["row_write"] > 8
    assert r.bounds_ok()


def test_kv_append_without_bitline_transpose_costs_read_modify_write():
    on = simulate(arch(count=64), TINY)
    off = simulate(arch(count=64, bitline_transpose=False), TINY)
    # K append: 32 rows each read-modify-written instead of one column write
    assert off.components["cim"]["counts"]["row_write"] == 2 * (2 * 32 + 2)
    assert off.cycles > on.cycles


# -- attention: transpose, modes, sparsity ----------------------------------------------------------------

def test_transpose_pass_without_bitline_transpose():
    w = dict(TINY, phase="prefill", seq_len=32, kv_len=0)
    on = simulate(arch(count=8), w)
    off = simulate(arch(count=8, bitline_transpose=False), w)
    assert on.components["cim"]["counts"]["transpose"] == 0
    # every K^T element goes through the transpose unit: 2 layers x 2 heads x 32 x 32
    assert off.components["cim"]["counts"]["transpose"] == 2 * 2 * 32 * 32
    assert off.cycles > on.cycles


def test_pipeline_mode_writes_kv_without_offchip_round_trip():
    # K and V of 2048 tokens x 128 (256 KiB each) exceed the 128 KiB activation budget: in
    # parallel mode they go off-chip and come back to be written into the macros; in pipeline
    # mode the producing macros write them straight into the attention macros.
    w = dict(TINY, phase="prefill", seq_len=2048, kv_len=0, n_heads=4, d_model=128, n_layers=1)
    par = simulate(arch(count=8), w)
    pipe = simulate(dict(arch(count=8), mode="pipeline"), w)
    assert pipe.macs == par.macs == par.expected_macs
    k_bytes = 2048 * 128
    assert par.offchip_bytes - pipe.offchip_bytes >= 2 * k_bytes
    assert pipe.cycles < par.cycles


def _with_density(a, w, d):
    cfg, wl = load(a, w)
    for op in wl.ops():
        if getattr(op, "role", "") in ("attn_qk", "attn_sv"):
            op.attrs["attn_density"] = d
    return simulate_loaded(cfg, wl), wl


def test_sparse_attention_skips_waves():
    w = dict(TINY, phase="prefill", seq_len=64, kv_len=0)
    dense, wl = _with_density(arch(count=8), w, 1.0)
    sparse, _ = _with_density(arch(count=8), w, 0.25)
    attn = sum(op.macs * 2 for op in wl.ops() if getattr(op, "role", "") in ("attn_qk", "attn_sv"))
    arr = sparse.components["array"]["counts"]
    assert arr["mac"] + arr["skipped_mac"] == dense.macs            # MACs conserved
    assert arr["skipped_mac"] == pytest.approx(0.75 * attn, rel=0.02)
    assert sparse.components["cim"]["counts"]["wave"] < dense.components["cim"]["counts"]["wave"]


def test_kept_waves_spread():
    k = kept_waves(4, 3, 0.5)          # ceil(0.5 * 12) = 6 waves over 3 tiles
    assert k.tolist() == [2, 2, 2]
    k = kept_waves(1, 5, 0.3)          # ceil(1.5) = 2: two tiles keep their only wave
    assert k.tolist() == [1, 1, 0, 0, 0]
    assert kept_waves(3, 2, 1.0).tolist() == [3, 3]


# -- whole models: bounds ----------------------------------------------------------------------------------

def test_bert_base_on_trancim_bounds():
    r = simulate("trancim", "bert-base")
    assert r.bounds_ok()
    assert r.macs == r.expected_macs
    s = get("sram_cim").summary(r)
    assert s["compute_cycles"] + s["rewrite_cycles"] + s["stall_cycles"] == r.cycles


def test_llama_decode_on_cim_llm_is_memory_bound():
    r = simulate("cim_llm", "llama2-7b", overrides=["workload.precision.weights=int8",
                                                     "workload.precision.activations=int8"])
    assert r.bounds_ok()
    # every weight byte crosses the bus once per token (nothing fits): within 1% of the bound
    assert r.cycles <= 1.10 * r.memory_bound_cycles
    s = get("sram_cim").summary(r)
    assert s["rewrite_pj"] > s["compute_pj"]


# -- bad input -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("field,value,path", [
    ("weight_bits", 3, "macro.weight_bits"),
    ("count", 0, "macro.count"),
    ("input_bits", 32, "macro.input_bits"),
])
def test_bad_config(field, value, path):
    with pytest.raises(ConfigError) as e:
        load(arch(**{field: value}), gemm(1, 32, 256))
    assert path in str(e.value)


def test_input_precision_above_supported_bits():
    with pytest.raises(ArchsimError) as e:
        simulate(arch(max_input_bits=8), gemm(1, 32, 256, a="int16"))
    assert "macro.max_input_bits" in str(e.value)


@pytest.mark.parametrize("ov", ["macro.weight_bits=3", "macro.count=0", "macro.input_bits=32"])
def test_cli_exit_status_2(ov):
    from archsim.cli import main
    res = CliRunner().invoke(main, ["run", "trancim", "bert-base", "--set", ov])
    assert res.exit_code == 2
    assert ov.split("=")[0] in res.output + (res.stderr if res.stderr_bytes is not None else "")


# -- kernels vs naive twins ------------------------------------------------------------------------------

def naive_cost(op, m, n, k, nbytes, addr, aux, bpc, pipe, wcpr, trate):
    dur, cnt = [], np.zeros(N_COUNTERS, np.int64)
    for i in range(len(op)):
        d = 0
        if op[i] == Op.GEMM:
            d = m[i] * -(-aux[i][0] // bpc) + pipe if m[i] else 0
            cnt[0] += k[i]
            cnt[1] += aux[i][2]
            cnt[2] += n[i]
            cnt[3] += k[i] * aux[i][0] * aux[i][1]
            cnt[4] += aux[i][3]
            cnt[8] += nbytes[i]
            cnt[9] += addr[i]
        elif op[i] == Op.WRITE:
            d = m[i] * aux[i][0] * wcpr
            cnt[5] += n[i]
            cnt[6] += k[i]
            cnt[8] += nbytes[i]
        elif op[i] == Op.VECTOR and aux[i][1] == 1:
            d = -(-m[i] // trate)
            cnt[7] += m[i]
            cnt[8] += nbytes[i]
            cnt[9] += nbytes[i]
        dur.append(d)
    return np.array(dur), cnt


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([int(Op.GEMM), int(Op.WRITE), int(Op.VECTOR)]),
                          st.integers(0, 50), st.integers(0, 500), st.integers(0, 10**6),
                          st.integers(0, 5000), st.integers(1, 16), st.integers(1, 16),
                          st.integers(1, 2)), min_size=1, max_size=30),
       st.integers(1, 4), st.integers(0, 6), st.integers(1, 3), st.integers(1, 64))
def test_cost_kernel_matches_naive(rows, bpc, pipe, wcpr, trate):
    op = np.array([r[0] for r in rows], np.uint8)
    m = np.array([r[1] for r in rows], np.int64)
    n = np.array([r[2] for r in rows], np.int64)
    k = np.array([r[3] for r in rows], np.int64)
    nb = np.array([r[4] for r in rows], np.int64)
    addr = nb // 2
    aux = np.array([[r[5], r[6], r[4] * 3, r[2] * 2] if r[0] == Op.GEMM else
                    [r[7], 1 if r[0] == Op.VECTOR else 0, 0, 0] for r in rows], np.int64)
    layer = np.zeros(len(rows), np.int32)
    dur, cnt = cim_cost(op, layer, m, n, k, nb, addr, aux, 1, bpc, pipe, wcpr, trate, prim_table(),
                        vector_rates(load(arch(), gemm(1, 1, 1))[0].vector), 8)
    d2, c2 = naive_cost(op, m, n, k, nb, addr, aux, bpc, pipe, wcpr, trate)
    assert dur.tolist() == d2.tolist()
    assert cnt[0].tolist() == c2.tolist()


def naive_flags(set_id, kt, nt, starts, nk):
    n = len(set_id)
    rnd = [0] * n
    for s in starts[1:]:
        for i in range(s, n):
            rnd[i] += 1
    seen, inp, out, full = set(), [], [], [False] * n
    for i in range(n):
        key = (rnd[i], set_id[i], kt[i])
        inp.append(key not in seen)
        seen.add(key)
        first = i == 0 or (rnd[i], set_id[i], nt[i]) != (rnd[i - 1], set_id[i - 1], nt[i - 1])
        out.append(first)
        if first:
            j = i
            while j + 1 < n and (rnd[j + 1], set_id[j + 1], nt[j + 1]) == (rnd[i], set_id[i], nt[i]):
                j += 1
            full[i] = kt[i] == 0 and kt[j] == nk - 1
    return inp, out, full


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4), st.integers(1, 7))
def test_buffer_flags_match_naive(sets, nk, nn, per_round):
    ts = make_tiles(1, nn * 32, nk * 256, sets, False, 256, 256, 8, 8)
    starts = np.arange(0, ts.n, per_round)
    inp, out, full = buffer_flags(ts.set_id, ts.kt, ts.nt, ts.nk, ts.nn, starts)
    i2, o2, f2 = naive_flags(ts.set_id.tolist(), ts.kt.tolist(), ts.nt.tolist(), starts.tolist(), nk)
    assert inp.tolist() == i2 and out.tolist() == o2 and full.tolist() == f2


def test_workload_block_sparse_masks_are_not_skipped_twice():
    # the workload's masks already cut the attention GEMMs to the kept blocks: the CIM runs them
    # all and skips nothing more (the masked blocks are not in the workload's MAC count)
    w = dict(TINY, phase="prefill", seq_len=256, kv_len=0,
             attn_sparsity={"pattern": "local", "block": 32, "window": 64})
    dense = simulate(arch(count=8), dict(TINY, phase="prefill", seq_len=256, kv_len=0))
    r = simulate(arch(count=8), w)
    arr = r.components["array"]["counts"]
    assert r.macs == r.expected_macs                       # kept work all executed
    assert arr.get("skipped_mac", 0) == 0
    assert arr["mac"] < dense.macs
    assert r.bounds_ok()


def test_buffer_too_small_for_one_macro_wave_is_refused():
    # one wave: 256 int8 inputs + 32 partial sums x 4 B = 384 B
    with pytest.raises(ConfigError) as e:
        load("cim_llm", "gpt2", overrides=["buffer.size=1 B"])
    assert e.value.path == "buffer.size" and "384 B" in str(e.value)
    load("cim_llm", "gpt2", overrides=["buffer.size=384 B"])
    with pytest.raises(ConfigError):
        load("cim_llm", "gpt2", overrides=["buffer.size=383 B"])
