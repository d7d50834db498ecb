"""DRAM-bank PIM: hand-derived command timelines, engine vs a cycle-stepped twin, AttAcc counts,
bounds and bad input."""

import os

import numpy as np
import pytest
from click.testing import CliRunner

from archsim.errors import ArchsimError, ConfigError
from archsim.uarch.dram_pim import attention_cycles, gemv_cycles, resolve
from archsim.uarch.dram_pim import engine as E
from archsim.uarch.dram_pim.api import load

# AttAcc HBM3 timing (arch_configs/attacc_pim.yaml): tRCDRD 19, tRP 19, tRTP 8, MAC gap 6 (power limit)
BASE = ["memory.dram.refresh='off'", "pim.output_registers=1"]


def test_gemv_one_row_per_bank_timeline():
    # 1024 x 512 on 16 channels x 64 bank units: every unit holds 1 row x 32 bursts = one DRAM row.
    cfg = load("attacc_pim", BASE + ["pim.global_buffer_bytes=1024"])
    r = gemv_cycles(cfg, 1024, 512)
    # 32 query writes on the data path, bank groups round robin: every nBL = 2 -> t = 0..62.
    # ACT_AB (behind the barrier, a row command) at t = 0; first MAC after the barrier at 63
    # (>= ACT + tRCD = 19); 32 MACs every 6 cycles -> last at 63 + 31*6 = 249.
    # read-out: 4 data commands (pCH 0/1 alternating) at 250, 251, 252, 253 -> 254 cycles.
    assert r.cycles == 63 + 31 * 6 + 4 + 1
    c = r.counters
    assert c["act_ab"] == 16 and c["pre_ab"] == 0 and c["mac_ab"] == 16 * 32
    assert r.macs == 1024 * 512


def test_gemv_several_activations_per_bank_timeline():
    # 1024 x 2048: each unit holds 1 row x 128 bursts = 4 DRAM rows of one bank (4 ACTs per bank).
    cfg = load("attacc_pim", BASE + ["pim.global_buffer_bytes=4096"])
    r = gemv_cycles(cfg, 1024, 2048)
    first = 2 * 127 + 1                      # 128 query writes every nBL=2 -> last at 254
    per_row_extra = 8 + 19 + 19              # last MAC -> PREA (tRTP) -> ACT (tRP) -> MAC (tRCD)
    last_mac = first + 3 * (31 * 6 + per_row_extra) + 31 * 6
    assert r.cycles == last_mac + 4 + 1
    c = r.counters
    assert c["act_ab"] == 16 * 4 and c["pre_ab"] == 16 * 3 and c["mac_ab"] == 16 * 128


def test_power_limit_slows_mac_stream():
    cfg = load("attacc_pim", BASE + ["pim.global_buffer_bytes=1024"])
    pc = gemv_cycles(cfg, 1024, 512, power_constrained=True)
    npc = gemv_cycles(cfg, 1024, 512, power_constrained=False)
    assert pc.cycles - npc.cycles == 31 * (6 - 4)


def test_ganged_activation_opens_bank_groups_one_tfaw_apart():
    # As above with Newton-style ganged activation: an all-bank ACT of a 16-bank rank (4 bank
    # groups x 4 banks) goes out as 4 ganged ACTs one tFAW (39 CK) apart. The 32-entry request
    # window holds the 32 query writes, then the barrier: the MAC enters it once the second write
    # has issued, so the first gang goes at t = 2 and the last at 2 + 3 * 39 = 119; the first MAC
    # waits for 119 + tRCD 19 = 138 (the query writes end at 62).
    cfg = load("attacc_pim", BASE + ["pim.global_buffer_bytes=1024", "pim.pim_activation='faw'"])
    r = gemv_cycles(cfg, 1024, 512)
    assert r.cycles == 138 + 31 * 6 + 4 + 1
    assert r.counters["act_ab"] == 16
    # four rows per bank (128 query writes, one per nBL = 2): the first MAC enters the request
    # window once 97 writes have issued, so the first gang goes at 2 * 97 = 194 and the last at
    # 194 + 117 = 311; the first MAC at 311 + 19 = 330 (the writes end at 254, which bound it
    # without ganging). Each row switch then costs tRTP + tRP + 3 tFAW + tRCD after the last MAC.
    cfg = load("attacc_pim", BASE + ["pim.global_buffer_bytes=4096", "pim.pim_activation='faw'"])
    r = gemv_cycles(cfg, 1024, 2048)
    per_row_extra = 8 + 19 + 3 * 39 + 19
    assert r.cycles == 330 + 3 * (31 * 6 + per_row_extra) + 31 * 6 + 4 + 1
    # the default ('free') opens every bank at once, as AttAcc's model
    free = gemv_cycles(load("attacc_pim", BASE + ["pim.global_buffer_bytes=4096"]), 1024, 2048)
    assert r.cycles - free.cycles == (330 - 255) + 3 * 3 * 39
    # per-bank MACs on the buffer die open one bank per pseudo-channel: not ganged
    bd = BASE + ["pim.global_buffer_bytes=4096", "pim.placement='buffer_die'"]
    assert (gemv_cycles(load("attacc_pim", bd + ["pim.pim_activation='faw'"]), 1024, 2048).cycles
            == gemv_cycles(load("attacc_pim", bd), 1024, 2048).cycles)


BANK_KINDS = (E.K_MAC_AB, E.K_MAC_SB, E.K_MAC_PB, E.K_DATA, E.K_RD, E.K_WR, E.K_BARRIER)
HB_KINDS = (E.K_MAC_AB, E.K_MAC_HB, E.K_WR_HB, E.K_WR_AB, E.K_RD, E.K_WR, E.K_BARRIER)


def _random_stream(rng, n, B, kinds=BANK_KINDS):
    """Random stream of ``kinds`` over 2 x 2 x 2 x B banks, rows 0..2 (none for barriers and
    data-path requests)."""
    kinds = rng.choice(list(kinds), size=n)
    bank = rng.integers(0, 2 * 2 * 2 * B, size=n)
    row = rng.integers(0, 3, size=n)
    row[(kinds == E.K_DATA) | (kinds == E.K_BARRIER)] = -1
    return kinds.astype(np.int64), np.zeros(n, np.int64), bank.astype(np.int64), row.astype(np.int64)


@pytest.mark.parametrize("seed", range(6))
def test_engine_matches_cycle_stepped_twin(seed):
    rng = np.random.default_rng(seed)
    dev = resolve(load("attacc_pim"))
    T = dev.T.copy()
    T[E.T_REFI] = 400                       # a few refreshes in a short stream
    T[E.T_RFC] = 60
    T[E.T_WINDOW] = int(rng.integers(2, 12))
    geom = np.array([2, 2, 2, 4], np.int64)
    k, s, b, r = _random_stream(rng, 120, 4)
    fast = E.run_stream(k, s, b, r, geom, T)
    slow = E.run_stream.py_func(k, s, b, r, geom, T, True)
    assert np.array_equal(fast, slow)


def test_ganged_activation_fills_the_faw_window():
    # one rank of 4 bank groups x 4 banks: a same-bank MAC opens bank 0 of every group (one gang
    # of four ACTs at t = 0), then a host read of bank 1. Without ganging the read's ACT follows
    # at t = 2 (the 2-CK row command), its RD at 2 + tRCD 19 = 21: 22 cycles. Ganged, the gang
    # fills the rank's tFAW window: the read's ACT waits for 0 + tFAW 39, its RD at 58: 59 cycles.
    T = resolve(load("attacc_pim", ["memory.dram.refresh='off'", "pim.pim_activation='faw'"])).T.copy()
    geom = np.array([1, 1, 4, 4], np.int64)
    k = np.array([E.K_MAC_SB, E.K_RD], np.int64)
    z, b, r = np.zeros(2, np.int64), np.array([0, 1], np.int64), np.zeros(2, np.int64)
    assert E.run_stream(k, z, b, r, geom, T)[E.C_CYCLES] == 39 + 19 + 1
    T[E.T_GANG] = 0
    assert E.run_stream(k, z, b, r, geom, T)[E.C_CYCLES] == 2 + 19 + 1


def test_ganged_activation_is_not_starved_by_younger_plain_acts():
    # a random stream (2 pCH x 1 rank x 4 bank groups x 4 banks, tFAW 100, postponed refresh)
    # whose oldest request is a same-bank MAC: younger reads and writes keep opening their banks,
    # so a gang that waited for a tFAW window free of plain ACTs never issued (a livelock); the
    # gang waits only for the last gang, and the stream ends, the twin agreeing
    d = np.load(os.path.join(os.path.dirname(__file__), "data", "pim_gang_starvation_stream.npz"))
    args = (d["kind"], d["sub"], d["bank"], d["row"], d["geom"], d["T"])
    assert d["T"][E.T_GANG] == 1 and d["T"][E.T_FAW] == 100
    fast = E.run_stream(*args)
    assert fast[E.C_CYCLES] > 0
    assert np.array_equal(fast, E.run_stream.py_func(*args, True))


@pytest.mark.parametrize("seed", range(4))
def test_engine_ganged_activation_matches_cycle_stepped_twin(seed):
    rng = np.random.default_rng(100 + seed)
    dev = resolve(load("attacc_pim", ["pim.pim_activation='faw'"]))
    T = dev.T.copy()
    assert T[E.T_GANG] == 1
    T[E.T_REFI] = 400
    T[E.T_RFC] = 60
    T[E.T_WINDOW] = int(rng.integers(2, 12))
    geom = np.array([2, 2, 2, 4], np.int64)
    k, s, b, r = _random_stream(rng, 120, 4, HB_KINDS + (E.K_MAC_SB,))
    fast = E.run_stream(k, s, b, r, geom, T)
    slow = E.run_stream.py_func(k, s, b, r, geom, T, True)
    assert np.array_equal(fast, slow)
    T[E.T_GANG] = 0
    assert E.run_stream(k, s, b, r, geom, T)[E.C_CYCLES] <= fast[E.C_CYCLES]


def test_attacc_bank_counts_match_reference_generator():
    # the reference trace for 130 heads, L = 2048, FP16 (attacc_ramulator_reference_subset.csv)
    r = attention_cycles("attacc_pim", 1, [2048], 130, 128, reference_trace=True)
    c = r.counters
    assert (c["mac_ab"], c["sfm"], c["mvgb"], c["mvsb"], c["wrgb"]) == (66576, 146, 9344, 10400, 1040)
    assert abs(r.cycles / 37593 - 1) < 0.10


def test_attention_bounds_and_mac_conservation():
    # without the reference generator's repeats every head's QK^T and SV is issued once
    L, heads = 512, 16
    r = attention_cycles("attacc_pim", 1, [L], heads, 128, reference_trace=False)
    dev = resolve(load("attacc_pim"))
    assert r.counters["mac_ab"] * 64 * 16 == heads * 2 * L * 128
    kv_bytes = heads * 2 * L * 128 * 2
    internal_peak = dev.channels * 64 * 32 / dev.mac_gap         # bytes per CK, all units
    assert r.cycles >= kv_bytes / internal_peak
    assert r.internal_bytes == kv_bytes


def test_reference_repeats_grow_with_the_square_of_the_context():
    """Three KV heads (24 query heads, groups of 8) on one stack leave an odd last head, whose
    softmax / MVGB block the AttAcc generator issues once per MAC chunk. By hand: the block's
    MVGBs scale with L and so does the number of MAC chunks, so the repeated MVGBs scale with L^2
    and the repeated SFMs with L. With every command once: one SFM per query head whatever L,
    MVGBs in proportion to L; the MACs are the same either way, and the cycles double with L (within the row-boundary and refresh jitter), while with the
    repeats each doubling costs more than 3x."""
    ov = ["pim.max_seq_len=16384"]
    Ls = (2048, 4096, 8192, 16384)
    once = [attention_cycles("attacc_pim", 1, L, 24, 128, 8, reference_trace=False, overrides=ov) for L in Ls]
    rep = [attention_cycles("attacc_pim", 1, L, 24, 128, 8, reference_trace=True, overrides=ov) for L in Ls]
    for L, o, r in zip(Ls, once, rep):
        assert o.counters["sfm"] == 24
        assert o.counters["mvgb"] * Ls[0] == once[0].counters["mvgb"] * L
        assert r.counters["mac_ab"] == o.counters["mac_ab"]
    for a, b in zip(rep, rep[1:]):
        assert 1.8 < b.counters["sfm"] / a.counters["sfm"] < 2.0
        assert b.counters["mvgb"] / a.counters["mvgb"] > 3.6
    for a, b in zip(once, once[1:]):
        assert 1.8 < b.cycles / a.cycles < 2.2
    for a, b in zip(rep[1:], rep[2:]):
        assert b.cycles / a.cycles > 3.0


def test_bad_simd_width_names_field():
    with pytest.raises(ConfigError) as e:
        gemv_cycles("attacc_pim", 64, 64, overrides=["pim.simd_lanes=12"])
    assert e.value.path == "pim.simd_lanes"


def test_layout_too_large_is_an_error():
    with pytest.raises(ArchsimError, match="does not fit"):
        attention_cycles("attacc_pim", 4096, 4096, 96, 128)
    with pytest.raises(ArchsimError, match="does not fit"):
        gemv_cycles("hbm_pim", 1 << 20, 1 << 16)


def test_cli_bad_simd_exit_2():
    from archsim.cli import main
    res = CliRunner().invoke(main, ["run", "hbm_pim", "gpt2", "--phase", "decode", "--set", "pim.simd_lanes=12"])
    assert res.exit_code == 2
    assert "pim.simd_lanes" in res.output


def test_run_decode_on_pim_conserves_macs():
    from archsim.api import simulate
    res = simulate("hbm_pim", "gpt2", phase="decode", kv_len=128)
    assert res.macs - res.padded_macs == res.expected_macs
    assert res.bounds_ok() and res.cycles > 0


def test_int8_mac_command_consumes_a_full_column():
    # INT8 bank-group placement, one channel-iteration of 16 heads, L = 256, d_head = 160:
    # a MAC command reads one 32 B column = 32 INT8 values (not 16: the unit consumes the whole
    # burst it reads). Score: ceil(256 / 16 units) = 16 output rows x ceil(160 / 32) = 5 columns;
    # context: ceil(160 / 32) = 5 output groups x 16 columns -> 160 MAC_SB per head.
    r = attention_cycles("attacc_pim", 1, [256], 16, 160, overrides=["pim.precision=int8"],
                         placement="bankgroup")
    c = r.counters
    assert c["mac_sb"] == 16 * (16 * 5 + 5 * 16)
    assert c["wrgb"] == 16 * 5                     # query: ceil(160 / 32) columns per head
    assert r.macs == 16 * 2 * 256 * 160            # every MAC command carries 32 useful values


def _hb_stream(groups):
    k, b, r = [], [], []
    for i, (kind, half, row, n) in enumerate(groups):
        if i:
            k.append(E.K_BARRIER); b.append(0); r.append(-1)
        k += [kind] * n; b += [half] * n; r += [row] * n
    k, b, r = (np.array(x, np.int64) for x in (k, b, r))
    return k, np.zeros(k.size, np.int64), b, r


def test_half_bank_mode_overlaps_row_switch_with_other_half():
    # HBM-PIM timing (hbm_pim.yaml): tRCD 14, tRP 14, tRAS 33, tRTP 3, MAC gap tCCD_L 4, ACT 2 CK.
    dev = resolve(load("hbm_pim", ["memory.dram.refresh='off'"]))
    geom, _ = dev.stream_geom("pseudo_channel")
    # even row 0 x8 | odd row 0 x8 | even row 1 x8 | odd row 1 x8 (barriers between)
    hb = _hb_stream([(E.K_MAC_HB, 0, 0, 8), (E.K_MAC_HB, 1, 0, 8), (E.K_MAC_HB, 0, 1, 8), (E.K_MAC_HB, 1, 1, 8)])
    c = E.run_stream(*hb, geom, dev.T)
    # ACT even 0, ACT odd 2 (a row command passes the barrier); even MACs 14..42, odd 46..74;
    # PRE even at max(0 + tRAS, 42 + tRTP) = 45 while the odd half reads, ACT even 59,
    # even row 1 at max(59 + 14, 74 + 4) = 78..106; PRE odd max(2 + 33, 74 + 3) = 77, ACT 91,
    # odd row 1 at max(91 + 14, 106 + 4) = 110..138 -> 139 cycles.
    assert c[E.C_CYCLES] == 139
    assert c[E.C_ACT_HB] == 4 and c[E.C_PRE_HB] == 2 and c[E.C_MAC_HB] == 32
    # the same reads in all-bank mode: MACs 14..74, PRE at 74 + 3 = 77, ACT 91, MACs 105..165
    ab = _hb_stream([(E.K_MAC_AB, 0, 0, 16), (E.K_MAC_AB, 0, 1, 16)])
    assert E.run_stream(*ab, geom, dev.T)[E.C_CYCLES] == 166


def test_half_bank_write_waits_write_recovery_before_precharge():
    # even: write row 2 x2, then read row 3: WR at ACT + tRCDWR 10 -> 10, 14; PRE at
    # max(0 + tRAS 33, 14 + CWL 8 + BL 2 + tWR 16 = 40) = 40; ACT 54; read at 54 + 14 = 68 -> 69.
    dev = resolve(load("hbm_pim", ["memory.dram.refresh='off'"]))
    geom, _ = dev.stream_geom("pseudo_channel")
    s = _hb_stream([(E.K_WR_HB, 0, 2, 2), (E.K_MAC_HB, 0, 3, 1)])
    assert E.run_stream(*s, geom, dev.T)[E.C_CYCLES] == 69


@pytest.mark.parametrize("seed", range(4))
def test_engine_half_bank_matches_cycle_stepped_twin(seed):
    rng = np.random.default_rng(100 + seed)
    dev = resolve(load("hbm_pim"))
    T = dev.T.copy()
    T[E.T_REFI] = 400
    T[E.T_RFC] = 60
    T[E.T_WINDOW] = int(rng.integers(2, 12))
    geom = np.array([2, 2, 2, 4], np.int64)
    k, s, b, r = _random_stream(rng, 120, 4, HB_KINDS)
    assert np.array_equal(E.run_stream(k, s, b, r, geom, T), E.run_stream.py_func(k, s, b, r, geom, T, True))


def test_eltwise_tile_cycles_follow_half_bank_sequence():
    # ReLU per tile (8 bursts per bank half): each half reads 8 (FILL+ReLU) and writes 8, then
    # one dummy write; one more tile adds the same work: the increment is a tile's time.
    from archsim.uarch.dram_pim.gemv import eltwise_stream
    cfg = load("hbm_pim", ["memory.dram.refresh='off'"])
    dev = resolve(cfg)
    geom, _ = dev.stream_geom("pseudo_channel")
    cyc = [E.run_stream(*eltwise_stream(dev, cfg.pim, geom, "relu", 16 * n, mode_switch=False), geom, dev.T)[0]
           for n in (1, 2)]
    # 8 reads + 8 writes per half at tCCD_L: >= 2 * 2 * 8 * 4 = 128 cycles of column commands per tile
    assert cyc[1] - cyc[0] >= 128
    assert cyc[1] - cyc[0] < 2 * 128


def test_host_stream_alternates_bank_groups():
    # host mapping: bank group lowest, so 8 bursts hit BG 0,1,2,3,0,1,2,3 (bank 0, columns 0, 1).
    # HBM2 (hbm_pim.yaml): ACTs at 0, 4, 8, 12 (tRRD_S 4), column 0 reads at ACT + tRCD 14 =
    # 14, 18, 22, 26; a bank group's column 1 follows its column 0 by tCCD_L 4 and fills the gaps
    # (first ready request wins): BG0 c1 20, BG1 c1 24, BG2 c1 28, BG3 c1 30 -> 31 cycles, vs
    # 14 + 7 * 4 + 1 = 43 if all 8 bursts stayed in one bank of one bank group (tCCD_L).
    from archsim.uarch.dram_pim.gemv import stream_rw
    dev = resolve(load("hbm_pim", ["memory.dram.refresh='off'"]))
    geom, _ = dev.stream_geom("pseudo_channel")
    k, s, b, r = stream_rw(8 * dev.tx_bytes, 0, geom, dev)
    assert list(b[:8]) == [0, 4, 8, 12, 0, 4, 8, 12]
    assert E.run_stream(k, s, b, r, geom, dev.T)[E.C_CYCLES] == 31


def test_gqa_one_kv_read_serves_the_group():
    # Llama-2-70B-like grouping: 64 query heads over 8 KV heads (8 per group), L = 512, d_head 128.
    L = 512
    kw = dict(reference_trace=False, overrides=["memory.dram.refresh='off'"])
    g8 = attention_cycles("attacc_pim", 1, [L], 64, 128, 8, **kw)
    kv8 = attention_cycles("attacc_pim", 1, [L], 8, 128, **kw)
    mha = attention_cycles("attacc_pim", 1, [L], 64, 128, **kw)
    # K/V read once per KV head: the MAC commands (and bytes read in the banks) of 8 heads
    assert g8.counters["mac_ab"] == kv8.counters["mac_ab"]
    assert g8.internal_bytes == kv8.internal_bytes == 8 * 2 * L * 128 * 2
    # per query head: query broadcast, softmax, probability and output moves
    for n in ("wrgb", "sfm", "mvgb", "mvsb"):
        assert g8.counters[n] == 8 * kv8.counters[n]
    assert g8.macs == 64 * 2 * L * 128                 # every query head's MACs are done
    # the unit spends 8 x 1 CK per column (16 FP16 values on 16 lanes) > the 6 CK MAC gap
    assert kv8.cycles < g8.cycles < mha.cycles
    with pytest.raises(ConfigError) as e:
        attention_cycles("attacc_pim", 1, [L], 64, 128, 6)
    assert e.value.path == "q_per_kv"


def test_gqa_unit_time_rounds_per_group():
    # A unit clocked 4x the DRAM CK does a 16-lane burst in 1/4 CK: a group of 8 query heads
    # needs 8 / 4 = 2 CK per column, under attacc_pim's MAC gap, so GQA costs no MAC time over
    # its 8 KV heads (rounding each head's quarter CK up to 1 CK would have cost 8 CK).
    L = 512
    ovs = ["memory.dram.refresh='off'", "pim.clock_ratio=4"]
    kw = dict(reference_trace=False, overrides=ovs)
    dev = resolve(load("attacc_pim", ovs))
    assert dev.burst_elems == 16 and int(dev.T[E.T_MACGAP]) >= 2
    g8 = attention_cycles("attacc_pim", 1, [L], 64, 128, 8, **kw)
    kv8 = attention_cycles("attacc_pim", 1, [L], 8, 128, **kw)
    slow = attention_cycles("attacc_pim", 1, [L], 64, 128, 8, reference_trace=False,
                            overrides=["memory.dram.refresh='off'"])
    # only the per-query-head moves (query broadcast, softmax, score moves) are added
    assert g8.counters["mac_ab"] == kv8.counters["mac_ab"]
    assert kv8.cycles < g8.cycles < slow.cycles


def test_every_stack_is_timed_busiest_sets_the_time():
    # 2 stacks, two requests of 16 heads: the contiguous deal puts the short request on stack 0
    # and the long one on stack 1; the long one sets the time, counters add up over both.
    kw = dict(reference_trace=False)
    two = attention_cycles("attacc_pim", 2, [256, 2048], 16, 128, overrides=["pim.stacks=2"], **kw)
    short = attention_cycles("attacc_pim", 1, [256], 16, 128, **kw)
    long_ = attention_cycles("attacc_pim", 1, [2048], 16, 128, **kw)
    assert two.cycles == long_.cycles
    assert two.counters["mac_ab"] == short.counters["mac_ab"] + long_.counters["mac_ab"]
    # the order of the requests does not matter
    rev = attention_cycles("attacc_pim", 2, [2048, 256], 16, 128, overrides=["pim.stacks=2"], **kw)
    assert rev.cycles == two.cycles and rev.counters == two.counters


def _tiny_T(**kw):
    """One pseudo-channel, small round timings for hand-derived controller timelines."""
    T = np.zeros(E.N_T, np.int64)
    T[E.T_BL] = T[E.T_CCDS] = T[E.T_CCDL] = T[E.T_CWL] = T[E.T_ACTCK] = 1
    T[E.T_RCDRD] = T[E.T_RCDWR] = 2
    T[E.T_RAS], T[E.T_RP], T[E.T_RC], T[E.T_RTP], T[E.T_WR] = 4, 2, 6, 1, 2
    T[E.T_RFC], T[E.T_REFI], T[E.T_REFRESH], T[E.T_WINDOW] = 10, 8, 1, 4
    for k, v in kw.items():
        T[getattr(E, k)] = v
    return T


def test_postponed_refresh_waits_for_write_recovery():
    # 32 writes to bank 0 row 0, tRCDWR 2, write recovery CWL + BL + tWR = 1 + 1 + 2 = 4, refresh
    # due at t = 30. ACT 0, WR at 2, 3, ... (one per cycle).
    geom = np.array([1, 1, 1, 2], np.int64)
    k = np.full(32, E.K_WR, np.int64)
    z = np.zeros(32, np.int64)
    # blocking: writes 2..29 (28), at 30 precharge as soon as legal (WR 29 + 4 = 33), REF at
    # 33 + tRP = 35, no ACT before 35 + tRFC = 45: ACT 45, the 4 remaining writes 47..50 -> 51
    c = E.run_stream(k, z, z, z, geom, _tiny_T(T_REFI=30))
    assert c[E.C_CYCLES] == 51 and c[E.C_REF] == 1 and c[E.C_PRE_AB] == 1
    # postponed: a write every cycle keeps pushing the bank's precharge out (WR + 4 > next WR), so
    # the writes go on to 33 and the stream ends before REF -> 34 cycles
    c = E.run_stream(k, z, z, z, geom, _tiny_T(T_REFI=30, T_REFRESH=2))
    assert c[E.C_CYCLES] == 34 and c[E.C_REF] == 0 and c[E.C_PRE] == 0


def test_postponed_refresh_precharges_reads_at_once():
    # reads: RD -> PRE is only tRTP = 1, so the refresh closes the bank at 30 (ACT 0, RD 2..29).
    # blocking: REF at 30 + tRP = 32; ACT at 32 + tRFC = 42, the 4 remaining reads 44..47 -> 48.
    # postponed (DRAMSim2): REF right behind the PRE on the row bus, at 31; ACT 41, reads 43..46
    geom = np.array([1, 1, 1, 2], np.int64)
    k = np.full(32, E.K_RD, np.int64)
    z = np.zeros(32, np.int64)
    for mode, cycles in ((1, 48), (2, 47)):
        c = E.run_stream(k, z, z, z, geom, _tiny_T(T_REFI=30, T_REFRESH=mode))
        assert c[E.C_CYCLES] == cycles and c[E.C_REF] == 1 and c[E.C_REF_SKIP] == 0


def test_eager_precharge_closes_unneeded_rows():
    # window of 1 request: RD b0 r0, RD b1 r0, RD b0 r0; tRCDRD 3, no refresh.
    geom = np.array([1, 1, 1, 2], np.int64)
    k = np.full(3, E.K_RD, np.int64)
    s = np.zeros(3, np.int64)
    b = np.array([0, 1, 0], np.int64)
    T = _tiny_T(T_REFRESH=0, T_WINDOW=1, T_RCDRD=3)
    # open page: ACT b0 0, RD b0 3; then the window holds RD b1: ACT b1 3 (row bus), RD 6; bank 0
    # is still open -> RD b0 7 -> 8 cycles, no PRE
    c = E.run_stream(k, s, b, s, geom, T)
    assert c[E.C_CYCLES] == 8 and c[E.C_PRE] == 0
    # eager: at 4 nothing can issue and no queued request needs bank 0 -> PRE b0 at 4
    # (>= ACT + tRAS 4, RD + tRTP 4); RD b1 6; ACT b0 6 (PRE + tRP, ACT + tRC); at 7 bank 1 is
    # not needed -> PRE b1 7 (ACT 3 + tRAS, RD 6 + tRTP); RD b0 9 -> 10 cycles, 2 PREs
    T[E.T_CTRL] = E.CTRL_EAGER_PRE
    c = E.run_stream(k, s, b, s, geom, T)
    assert c[E.C_CYCLES] == 10 and c[E.C_PRE] == 2


def test_single_command_bus_serialises_row_and_column_commands():
    # RD b0, RD b1 (window 2), tRCDRD 2: split buses: ACT b0 0, ACT b1 1, RD b0 2, RD b1 3 -> 4.
    # one bus: the same (no row and column command fall in one cycle here); with tRCDRD 1 the split
    # buses give ACT 0, ACT b1 1 + RD b0 1, RD b1 2 -> 3, one bus ACT 0, RD b0 1, ACT b1 2, RD b1 3 -> 4
    geom = np.array([1, 1, 1, 2], np.int64)
    k = np.full(2, E.K_RD, np.int64)
    z = np.zeros(2, np.int64)
    b = np.array([0, 1], np.int64)
    T = _tiny_T(T_REFRESH=0, T_WINDOW=2, T_RCDRD=1)
    assert E.run_stream(k, z, b, z, geom, T)[E.C_CYCLES] == 3
    T[E.T_CTRL] = E.CTRL_ONE_BUS
    assert E.run_stream(k, z, b, z, geom, T)[E.C_CYCLES] == 4


@pytest.mark.parametrize("seed", range(8))
def test_engine_pimsim_controller_matches_cycle_stepped_twin(seed):
    rng = np.random.default_rng(200 + seed)
    dev = resolve(load("hbm_pim"))
    T = dev.T.copy()
    T[E.T_REFI] = 300
    T[E.T_RFC] = 60
    T[E.T_REFRESH] = 2
    T[E.T_CTRL] = E.CTRL_EAGER_PRE | E.CTRL_ONE_BUS | (E.CTRL_COL_FIRST if seed // 2 % 2 else 0)
    T[E.T_REF0] = 150 if seed >= 4 else 0          # two ranks: a waiting refresh can be dropped
    T[E.T_WINDOW] = int(rng.integers(2, 12))
    geom = np.array([2, 2, 2, 4], np.int64)
    k, s, b, r = _random_stream(rng, 120, 4, HB_KINDS if seed % 2 else BANK_KINDS)
    assert np.array_equal(E.run_stream(k, s, b, r, geom, T), E.run_stream.py_func(k, s, b, r, geom, T, True))


def test_run_gqa_decode_on_pim_counts_every_query_head():
    """A grouped-query model (16 query heads over 4 KV heads) on a PIM device: the attention runs
    all 16 query heads (MACs conserved, bounds hold) while each KV head is read once for its
    group, so the units read a quarter of the in-bank bytes of the same model with 16 KV heads."""
    from archsim.api import simulate
    wl = dict(name="t", kind="transformer", d_model=1024, n_layers=2, n_heads=16, n_kv_heads=4, d_ff=4096,
              vocab_size=1000, norm="rmsnorm", mlp="swiglu", position="rope", phase="decode", batch=4,
              kv_len=256, precision={"weights": "fp16", "activations": "fp16"})
    gqa = simulate("hbm_pim", wl, phase="decode", batch=4, kv_len=256)
    mha = simulate("hbm_pim", dict(wl, n_kv_heads=16), phase="decode", batch=4, kv_len=256)
    for r in (gqa, mha):
        assert r.macs - r.padded_macs == r.expected_macs and r.bounds_ok()

    def op_cycles(r, name):
        return sum(o["added_cycles"] for o in r.extra["ops"] if o["name"] == name)
    # HBM-PIM's GEMV runs whole output tiles of 512 units x 8 rows: the QKV projection of 1536
    # outputs (GQA) costs what the 3072 of MHA do, both one 4096-row tile
    assert op_cycles(gqa, "block.qkv") == op_cycles(mha, "block.qkv")
    ex = ["pim.output_group=exact"]
    gqa = simulate("hbm_pim", wl, phase="decode", batch=4, kv_len=256, overrides=ex)
    mha = simulate("hbm_pim", dict(wl, n_kv_heads=16), phase="decode", batch=4, kv_len=256, overrides=ex)
    assert op_cycles(gqa, "block.qkv") < op_cycles(mha, "block.qkv")
    assert gqa.cycles < mha.cycles               # a smaller QKV projection and KV read once per group
    from archsim.uarch.dram_pim import attention_cycles
    g = attention_cycles("hbm_pim", 4, 256, 16, 64, 4)
    m = attention_cycles("hbm_pim", 4, 256, 16, 64, 1)
    assert g.macs == m.macs and g.internal_bytes * 4 == pytest.approx(m.internal_bytes, rel=0.05)


@pytest.mark.parametrize("ov,path,text", [
    ("memory.dram.timing.tFOO=3", "memory.dram.timing.tFOO", "unknown timing"),
    ("memory.dram.timing.tRCDD=3", "memory.dram.timing.tRCDD", "did you mean 'tRCDRD'"),
    ("memory.dram.timing.nCL=20", "memory.dram.timing.nCL", "write 'CL'"),
    ("memory.dram.timing.tCL=20", "memory.dram.timing.tCL", "write 'CL'"),
    ("memory.dram.timing.CL=0", "memory.dram.timing.CL", "greater than zero"),
    ("memory.dram.timing.tRP=-2", "memory.dram.timing.tRP", "greater than zero"),
    ("memory.dram.timing.CL=true", "memory.dram.timing.CL", "boolean"),
])
def test_bad_timing_override_names_it(ov, path, text):
    from archsim.api import load as load_run
    with pytest.raises(ConfigError) as e:
        load_run("hbm_pim", "gpt2", phase="decode", overrides=[ov])
    assert e.value.path == path and text in str(e.value)


def test_unknown_timing_override_reaching_the_preset_is_refused():
    from archsim.mem.dram.presets import load_preset
    with pytest.raises(ConfigError) as e:
        load_preset("HBM2-2000", overrides={"tFOO": 3})
    assert e.value.path == "timing.tFOO"


def test_attacc_table_counts_rows(tmp_path):
    from archsim.errors import InputFileError
    from archsim.uarch.dram_pim.validation import attacc_table
    ref = (tmp_path / "t.csv")
    head = ("seq_len_L,heads_per_hbm,d_head,bytes_per_elem,pim_level,power_constrained,mem_cycles,"
            "n_MAC_cmds,n_SFM_cmds,n_MVGB_cmds,n_MVSB_cmds,n_WRGB_cmds\n")
    # the reference's row, and the same row with a MAC count one off and cycles 20 % off
    ref.write_text(head + "2048,130,128,2,bank,True,37593,66576,146,9344,10400,1040\n"
                   "2048,130,128,2,bank,True,31000,66577,146,9344,10400,1040\n"
                   "4096,130,128,2,bank,True,1,1,1,1,1,1\n")
    got = attacc_table({"_file": str(tmp_path / "c.yaml"), "table": "t.csv", "seq_lens": [2048]})
    assert (got["rows"], got["mem_cycles within 10%"], got["commands exact"]) == (2, 1, 1)
    assert 0.15 < got["max mem_cycles error"] < 0.25
    (tmp_path / "bad.csv").write_text("seq_len_L,heads_per_hbm\n2048,x\n")
    with pytest.raises(InputFileError, match="bad.csv:2"):
        attacc_table({"_file": str(tmp_path / "c.yaml"), "table": "bad.csv"})


def test_decode_with_mixed_kv_lengths_conserves_macs():
    """One attention op per KV length, each covering its own requests (the op's count over the KV
    heads), not the whole batch: MACs conserved (12.5 M short before on AiM, batch 3), and the
    attention lies between the batch at the shortest and at the longest length."""
    from archsim.api import simulate
    mix = simulate("aim", "opt-1.3b", phase="decode", batch=3, overrides=["workload.kv_lens=[255, 255, 1023]"])
    assert mix.bounds_ok()
    att = lambda r: sum(o["added_cycles"] for o in r.extra["ops"] if o["name"].endswith(".attention"))  # noqa: E731
    lo = simulate("aim", "opt-1.3b", phase="decode", batch=3, kv_len=255)
    hi = simulate("aim", "opt-1.3b", phase="decode", batch=3, kv_len=1023)
    assert att(lo) < att(mix) < att(hi)


def test_internal_bandwidth_is_four_times_the_bus_on_hbm_pim():
    """8 units per pseudo-channel x 32 B per tCCD_L (4 tCK) = 64 B/tCK against a 64-bit bus at
    2 transfers per tCK = 16 B/tCK: 4x (FIMDRAM). A GEMV sustains less (activations, register
    writes between the MACs), and a longer MAC interval lowers both."""
    from archsim.uarch.dram_pim.validation import internal_bandwidth_case
    r = internal_bandwidth_case({"arch": "hbm_pim", "rows": 1024, "cols": 1024})
    assert r["internal_to_external"] == pytest.approx(4.0)
    assert 1.0 < r["sustained_to_external"] < 4.0
    slow = internal_bandwidth_case({"arch": "hbm_pim", "rows": 1024, "cols": 1024,
                                    "overrides": ["memory.dram.timing.tCCD_L=8"]})
    assert slow["internal_to_external"] == pytest.approx(2.0)
    assert slow["sustained_to_external"] < r["sustained_to_external"]


def test_hbm_pim_gemv_runs_whole_output_tiles_in_half_bank_mode():
    """HBM-PIM GEMV as PIMSimulator's kernel issues it, counted per pseudo-channel (64 streams):
    4096 x 4096 FP16 on 512 units is one output tile of 8 rows per unit; 256 bursts per row, so
    8 x 256 = 2048 half-bank MACs; the input goes in 32 tiles of 8 bursts written into the odd
    half's register row (256 writes carrying host data) plus 5 host-data mode writes (CRF program,
    HAB -> HAB_PIM and back, HAB -> SB x 2), 8 result writes without host data, 4 SB -> HAB
    writes and 16 + 16 park reads. A 1024-row GEMV runs the same whole tile (padded), unless
    pim.output_group is exact."""
    r = gemv_cycles("hbm_pim", 4096, 4096)
    c = r.counters
    assert r.streams == 64
    assert c["mac_hb"] == 64 * 2048 and c["mac_ab"] == 0
    assert c["wr_hb_dq"] == 64 * (256 + 5) and c["wr_hb"] == c["wr_hb_dq"] + 64 * 8
    assert c["wr"] == 64 * 4 and c["rd"] == 64 * 32
    assert r.external_bytes == 32 * (c["wr_hb_dq"] + c["wr"] + c["rd"])
    a, b = gemv_cycles("hbm_pim", 1024, 1024), gemv_cycles("hbm_pim", 4096, 1024)
    assert a.cycles == b.cycles and a.macs == b.macs
    exact = gemv_cycles("hbm_pim", 1024, 1024, overrides=["pim.output_group=exact"])
    assert exact.cycles < a.cycles and exact.macs * 4 == a.macs


def test_postponed_refresh_keeps_one_pending_slot():
    """refresh_policy postponed (DRAMSim2 bookkeeping): all-bank writes to one row every tCCD_L
    keep the banks in write recovery, so a waiting refresh never finds them all closed. The
    controller holds one pending refresh: with one rank each refresh falling due merges into the
    waiting one; with two ranks staggered (the stream's rank due at 150 + 300k), the other rank's
    refresh falls due 150 later and takes the slot, so each waiting one is dropped. Either way
    no REF goes out and the writes run back to back."""
    dev = resolve(load("hbm_pim"))
    geom, _ = dev.stream_geom("pseudo_channel")
    P = int(geom[0])
    n = 4096
    k = np.full(n, E.K_WR_AB, np.int64)
    z = np.zeros(n, np.int64)
    T = dev.T.copy()
    T[E.T_REFI], T[E.T_RFC], T[E.T_REFRESH], T[E.T_REF0] = 300, 60, 2, 0
    one = E.run_stream(k, z, z, z, geom, T)
    T[E.T_REF0] = 150
    two = E.run_stream(k, z, z, z, geom, T)
    T[E.T_REFRESH] = 0
    off = E.run_stream(k, z, z, z, geom, T)
    for c in (one, two):
        assert c[E.C_REF] == 0 and c[E.C_CYCLES] == off[E.C_CYCLES]
    cycles = int(off[E.C_CYCLES])
    assert cycles > n * 4                                            # tCCD_L between the writes
    # one rank: dues at 300k; all but the last (still waiting at the end) merged
    assert one[E.C_REF_SKIP] == P * (cycles // 300 - 1)
    # two ranks: dues at 150 + 300k, each dropped 150 later (if that comes before the end)
    dues = range(150, cycles, 300)
    assert two[E.C_REF_SKIP] == P * sum(1 for d in dues if d + 150 <= cycles)
    # blocking refresh for comparison: every interval costs a REF
    T[E.T_REFRESH] = 1
    blk = E.run_stream(k, z, z, z, geom, T)
    assert blk[E.C_REF] >= P * (cycles // 300) and blk[E.C_CYCLES] > cycles


def test_postponed_refresh_dropped_for_the_next_rank_then_issued():
    """48 writes then 40 reads of bank 0 row 0 (tiny timings: write recovery CWL + BL + tWR = 4,
    RD -> PRE tRTP 1, tRFC 10). No refresh: ACT 0, WR 2..49, RD 51..90 (WR -> RD CWL + BL) -> 91.
    Two ranks, tREFI 40: the stream's rank is due at 20 + 40k, the other rank 20 later. Due at
    20 the writes keep the bank in write recovery; at 40 the other rank takes the slot and the
    refresh is dropped. Due at 60: RD 51..59, the bank may close at 60 (last RD + tRTP): PRE 60,
    REF 61 (right behind it), ACT 71, RD 73..99; due at 100: PRE 100, REF 101, ACT 111, the last
    4 reads 113..116 -> 117 cycles, 2 REFs, 1 skipped.
    One rank (due at 40k): due at 40 it waits; RD 51, 52; at 53 the write recovery has ended
    and the last read was at 52: PRE 53, REF 54, ACT 64, RD 66..79; due at 80: PRE 80, REF 81,
    ACT 91, the last 24 reads 93..116 -> 117 cycles, 2 REFs, none skipped."""
    geom = np.array([1, 1, 1, 2], np.int64)
    k = np.array([E.K_WR] * 48 + [E.K_RD] * 40, np.int64)
    z = np.zeros(k.shape[0], np.int64)
    assert E.run_stream(k, z, z, z, geom, _tiny_T(T_REFRESH=0))[E.C_CYCLES] == 91
    for ref0, skipped in ((20, 1), (0, 0)):
        c = E.run_stream(k, z, z, z, geom, _tiny_T(T_REFI=40, T_REF0=ref0, T_REFRESH=2, T_RFC=10))
        assert c[E.C_CYCLES] == 117 and c[E.C_REF] == 2 and c[E.C_PRE] == 2
        assert c[E.C_REF_SKIP] == skipped


def test_column_first_scheduler_issues_hits_before_activates():
    """RD b0, RD b1, RD b0 x3 (all row 0), window 4, one command bus, tRCDRD 2, ACT -> ACT 3.
    Oldest ready first: ACT b0 0; at 1 nothing may issue (ACT b1 waits for 3, RD b0 for 2);
    RD b0 2; at 3 the ACT of b1 is older than the ready hit: ACT b1 3, RD b0 4, RD b1 5,
    RD b0 6, 7 -> 8 cycles. Column first (DRAMSim2 command queue): RD b0 2, 3, 4, 5 take the
    bus while a hit may issue; ACT b1 6, RD b1 8 -> 9 cycles."""
    geom = np.array([1, 1, 1, 2], np.int64)
    k = np.full(5, E.K_RD, np.int64)
    z = np.zeros(5, np.int64)
    b = np.array([0, 1, 0, 0, 0], np.int64)
    T = _tiny_T(T_REFRESH=0, T_WINDOW=4, T_RRDS=3, T_RRDL=3)
    T[E.T_CTRL] = E.CTRL_ONE_BUS
    assert E.run_stream(k, z, b, z, geom, T)[E.C_CYCLES] == 8
    T[E.T_CTRL] = E.CTRL_ONE_BUS | E.CTRL_COL_FIRST
    assert E.run_stream(k, z, b, z, geom, T)[E.C_CYCLES] == 9
    # the cycle-stepped run agrees
    assert E.run_stream(k, z, b, z, geom, T, True)[E.C_CYCLES] == 9


def test_host_mapping_orders_the_address_fields():
    """pim.host_mapping on one pseudo-channel of hbm_pim (4 bank groups x 4 banks, 32 bursts a
    row): bankgroup_column_bank sends bursts 0..3 to bank 0 of groups 0..3 and stays on those
    four banks for a whole row (128 bursts); bank_bankgroup_column sends bursts 0..15 to the 16
    banks (bank fastest) and reaches the next row after 16 x 32 = 512 bursts."""
    from archsim.uarch.dram_pim.gemv import stream_rw
    dev = resolve(load("hbm_pim"))
    geom, _ = dev.stream_geom("pseudo_channel")
    P, R, G, B = (int(x) for x in geom)
    n = 1024
    _, _, bank, row = stream_rw(n * dev.tx_bytes, 0, geom, dev)
    assert list(bank[:4]) == [g * B for g in range(G)]
    assert len(set(bank[:128].tolist())) == G and row[127] == 0
    assert len(set(bank[:G * B * dev.cols_per_row].tolist())) == G * B
    _, _, bank, row = stream_rw(n * dev.tx_bytes, 0, geom, dev, mapping="bank_bankgroup_column")
    assert list(bank[:G * B]) == [g * B + b for g in range(G) for b in range(B)]
    per_row = G * B * dev.cols_per_row
    assert row[per_row - 1] == 0 and row[per_row] == 1
    # PIMSimulator's host baselines take that mapping; a 1024 x 1024 GEMV host stream is within
    # 1% of the simulator's 2494 cycles (a refresh falls due at 1950 with all 16 banks open)
    import yaml
    from pathlib import Path
    from archsim.uarch.dram_pim import gemv_baseline_cycles
    doc = yaml.safe_load((Path(__file__).resolve().parents[1] / "validation" / "dram_pim"
                          / "pimsimulator.yaml").read_text())
    r = gemv_baseline_cycles("hbm_pim", 1024, 1024, overrides=doc["cases"][0]["pim_overrides"])
    assert r.cycles == pytest.approx(2494, rel=0.01)


def test_model_larger_than_the_devices_is_noted():
    from archsim.api import simulate
    # Llama-2-7B FP16: 6.74 G parameters (13.48 GB) + K/V of 65 positions (34 MB) = 12.6 GiB
    # against one 8 Gb GDDR6-AiM chip (2 channels x 16 banks x 16384 rows x 2 KiB = 1 GiB)
    r = simulate("aim", "llama2-7b", phase="decode", batch=1, kv_len=64)
    (note,) = r.extra["notes"]
    assert note.startswith("pim.stacks:") and "12.6 GiB" in note and "1.00 GiB" in note
    assert "pim.stacks=13 would" in note
    assert "notes" not in simulate("aim", "gpt2", phase="decode", batch=1, kv_len=64).extra


def test_buffer_die_unit_speed_bounds_its_macs():
    """A buffer-die unit takes one burst per MAC command at its own pace: 16 FP16 elements over 16
    lanes at clock_ratio 0.05 is 20 CK a burst, so a 4096 x 4096 GEMV (16,384 MACs per
    pseudo-channel stream) needs at least 327,680 CK; at clock_ratio 1 the bus (nBL) paces it.
    The spacing of per-bank MACs used to ignore the unit (the same 67,332 CK at every clock
    ratio, faster than the run's own compute bound)."""
    from archsim.uarch.dram_pim import gemv_cycles
    ov = ["pim.placement=buffer_die", "pim.banks_per_unit=1"]
    cyc = {cr: gemv_cycles("hbm_pim", 4096, 4096, overrides=ov + [f"pim.clock_ratio={cr}"])
           for cr in (1.0, 0.25, 0.05)}
    per_stream = cyc[0.05].counters["mac_pb"] // cyc[0.05].streams
    assert per_stream == 16384
    assert cyc[0.05].cycles >= per_stream * 20
    assert cyc[0.25].cycles >= per_stream * 4
    assert cyc[1.0].cycles < cyc[0.25].cycles < cyc[0.05].cycles


def test_request_placement_by_hand():
    from archsim.uarch.dram_pim.api import place_requests
    # round_robin: request i to channel i mod 2
    assert place_requests([5, 1, 1, 4, 2], 2, "round_robin") == [[5, 1, 2], [1, 4]]
    # min_load, longest first: 5 -> 0 (tie, lowest); 4 -> 1; 2 -> 1 (4 < 5); 1 -> 0 (5 < 6);
    # the last 1 -> 0 (6 = 6, lowest)
    assert place_requests([5, 1, 1, 4, 2], 2, "min_load") == [[5, 1, 1], [4, 2]]


def test_whole_requests_in_channels():
    """Every request's KV heads in one channel of attacc_pim's 16: 32 requests of 4 heads arrive
    as [1024, 15 x 64] twice. round_robin puts both long ones in channel 0, whose queue (8 heads
    of 1024) is what every channel holds when 2 requests of 1024 with 64 heads are striped over
    the 16 channels (8 heads each, the same commands): the two take the same cycles. min_load
    places the long ones first, in channels 0 and 1, and the short ones on the other 14; its
    busiest channel holds one long request (4 heads of 1024), what one request of 1024 with 64
    heads takes striped (4 heads per channel).
    With whole requests in channels every K / V row is read once (the same MAC commands and
    compute energy either way); the striped deal runs each iteration's 16 heads in lockstep over
    the longest, so an iteration holding a 1024 pays 1024 rows for its 64-row heads too (the
    hetero system sorts the requests for it)."""
    ov = ["pim.reference_trace=false"]
    kv = ([1024] + [64] * 15) * 2
    runs = {p: attention_cycles("attacc_pim", 32, kv, 4, 128, overrides=ov + [f"pim.request_placement={p}"])
            for p in ("striped", "round_robin", "min_load")}
    two = attention_cycles("attacc_pim", 2, [1024, 1024], 64, 128, overrides=ov)
    one = attention_cycles("attacc_pim", 1, [1024], 64, 128, overrides=ov)
    assert runs["round_robin"].cycles == two.cycles
    assert runs["min_load"].cycles == one.cycles < runs["round_robin"].cycles
    macs = {p: (r.counters["mac_ab"], r.energy_pj["pim_compute"]) for p, r in runs.items()}
    assert macs["round_robin"] == macs["min_load"]
    # a MAC_AB reads 32 B (16 values) in each of the channel's 64 banks: K and V rows of 128
    assert runs["min_load"].counters["mac_ab"] * 64 * 16 == sum(kv) * 4 * 2 * 128
    # striped: 128 heads in request order, 8 iterations of 16; the two holding a long request's
    # heads run all 16 at 1024, the other six at 64
    assert runs["striped"].counters["mac_ab"] * 64 * 16 == (2 * 1024 + 6 * 64) * 16 * 2 * 128
    # the time is the busiest channel's
    assert runs["round_robin"].cycles == max(runs["round_robin"].per_stream_cycles)


def test_request_placement_over_tensor_parallel_devices():
    """Two devices of one stack each share a request's 8 KV heads: each holds 4 in the same
    channel of its stack, so the attention takes what one stack with 4 heads takes, and the
    commands double."""
    ov = ["pim.reference_trace=false", "pim.request_placement=min_load"]
    kv = [300, 40, 700, 90, 1500, 20] * 6
    one = attention_cycles("attacc_pim", len(kv), kv, 4, 128, overrides=ov)
    two = attention_cycles("attacc_pim", len(kv), kv, 8, 128, overrides=ov + ["pim.stacks=2"], devices=2)
    assert two.cycles == one.cycles
    assert two.counters["mac_ab"] == 2 * one.counters["mac_ab"]
    with pytest.raises(ConfigError) as e:
        attention_cycles("attacc_pim", len(kv), kv, 8, 128, overrides=ov + ["pim.stacks=3"], devices=2)
    assert e.value.path == "pim.stacks"
    with pytest.raises(ConfigError) as e:
        attention_cycles("attacc_pim", 4, 256, 8, 128, overrides=ov + ["pim.layout=row"])
    assert e.value.path == "pim.request_placement"
