"""DRAM-PIM engine, PIMSimulator-style controller options: tagged barriers, one-per-cycle intake,
end of a stream at its last data, staggered refresh; the refresh-interval check."""

import numpy as np
import pytest
from click.testing import CliRunner

from archsim.errors import ConfigError
from archsim.uarch.dram_pim import engine as E
from archsim.uarch.dram_pim import gemv_cycles, resolve
from archsim.uarch.dram_pim.api import _run_streams, load
from test_dram_pim import _random_stream, _tiny_T

PIMSIM = E.CTRL_EAGER_PRE | E.CTRL_ONE_BUS | E.CTRL_TAGGED_BARRIER | E.CTRL_DATA_END


def _groups(groups):
    """Requests of (kind, half, row, n) groups, a barrier after each group."""
    k, b, r = [], [], []
    for kind, half, row, n in groups:
        k += [kind] * n + [E.K_BARRIER]
        b += [half] * n + [0]
        r += [row] * n + [-1]
    k, b, r = (np.array(x, np.int64) for x in (k, b, r))
    return k, np.zeros(k.size, np.int64), b, r


def _tiny_add():
    # PIMSimulator's element-wise ADD (PIMKernel::computeAddOrMul) with 2 columns per half:
    # per half (even, odd): 2 reads of input 0 (row 0, BANK_TO_GRF), 2 reads of input 1 (row 1,
    # ADD), 2 writes of the result (row 2, GRF_TO_BANK), a barrier after each; then one dummy write
    # into the odd half (GRF_TO_BANK_DUMMY).
    g = []
    for h in (0, 1):
        g += [(E.K_MAC_HB, h, 0, 2), (E.K_MAC_HB, h, 1, 2), (E.K_WR_HB, h, 2, 2)]
    g.append((E.K_WR_HB, 1, 2, 1))
    return _groups(g)


def _hbm_pim_T(ctrl):
    dev = resolve(load("hbm_pim", ["memory.dram.refresh='off'"]))
    T = dev.T.copy()
    T[E.T_CTRL] = ctrl
    geom, _ = dev.stream_geom("pseudo_channel")
    return T, geom


def test_tiny_add_timeline_with_tagged_barriers():
    # HBM-PIM timing (hbm_pim.yaml): tRCDRD 14, tRCDWR 10, tRAS 33, tRP 14, tRC 47, tRTP 5, MAC
    # gap tCCD_L 4, write->read CWL 8 + BL 2 + tWTR_L 8 = 18, read->write tRTW 16, write recovery
    # CWL + BL + tWR = 26; one command bus, eager precharge, the stream ends at its last data.
    T, geom = _hbm_pim_T(PIMSIM)
    c = E.run_stream(*_tiny_add(), geom, T)
    # even:  ACT row 0 at 0; reads 14, 18 (the second is tagged: it waits to be the head).
    #        Row 1: PRE at max(ACT 0 + tRAS 33, 18 + tRTP 5) = 33, ACT 33 + tRP 14 = 47 (= tRC),
    #        reads 47 + 14 = 61, 65. Row 2: PRE max(47 + 33, 65 + 5) = 80, ACT 94, writes at
    #        max(94 + 10, 65 + 16) = 104, 108.
    # odd:   no row opens behind the tagged write at 108 until it is the head (after the write at
    #        104): ACT odd row 0 at 105; reads at max(105 + 14, 108 + 18) = 126, 130. Row 1: PRE
    #        max(105 + 33, 130 + 5) = 138, ACT 152, reads 166, 170. Row 2: PRE max(152 + 33,
    #        170 + 5) = 185, ACT 199, writes 209, 213; the dummy write (its own group) at 217.
    # end:   the last write's data leaves the bus at 217 + CWL 8 + BL 2 = 227 -> 228 cycles.
    assert c[E.C_CYCLES] == 228
    assert c[E.C_ACT_HB] == 6 and c[E.C_PRE_HB] == 4
    assert c[E.C_MAC_HB] == 8 and c[E.C_WR_HB] == 5
    # the even half's row 2 (no request up to the next tag needs it) is precharged bank by bank
    # by the eager policy while the odd half runs (8 even banks)
    assert c[E.C_PRE] == 8
    # the same stream ending with its last command: 217 + 1
    T2 = T.copy()
    T2[E.T_CTRL] = PIMSIM & ~E.CTRL_DATA_END
    assert E.run_stream(*_tiny_add(), geom, T2)[E.C_CYCLES] == 218
    # one-per-cycle intake: request 0 enters at cycle 0 and issues from 1, the rest follow one
    # per cycle (always ahead of the timeline): everything moves by one cycle
    T3 = T.copy()
    T3[E.T_CTRL] = PIMSIM | E.CTRL_INTAKE_ONE
    assert E.run_stream(*_tiny_add(), geom, T3)[E.C_CYCLES] == 229


def test_tagged_barrier_read_waits_for_the_head():
    # a single-request group behind a tagged request: RD b0 r0, RD b0 r0 (tagged) | RD b1 r0
    # (tagged). Tiny timing: tRCDRD 2, one command per cycle. ACT b0 0, RD 2, RD 3; bank 1 opens
    # only once its request is the head (after RD 3): ACT b1 4, RD 6 -> 7 cycles.
    geom = np.array([1, 1, 1, 2], np.int64)
    k = np.array([E.K_RD, E.K_RD, E.K_BARRIER, E.K_RD, E.K_BARRIER], np.int64)
    b = np.array([0, 0, 0, 1, 0], np.int64)
    r = np.array([0, 0, -1, 0, -1], np.int64)
    z = np.zeros(5, np.int64)
    T = _tiny_T(T_REFRESH=0, T_WINDOW=8, T_CTRL=E.CTRL_ONE_BUS | E.CTRL_TAGGED_BARRIER)
    assert E.run_stream(k, z, b, r, geom, T)[E.C_CYCLES] == 7
    # lookahead: ACT b1 goes out at 1 (behind the barrier), RD b1 at 4 -> 5 cycles
    T[E.T_CTRL] = E.CTRL_ONE_BUS
    assert E.run_stream(k, z, b, r, geom, T)[E.C_CYCLES] == 5


def test_staggered_refresh_comes_at_refi_over_ranks():
    # 40 reads of bank 0 row 0 (ACT 0, RD 2..41 one per cycle), tREFI 30, tRFC 10, tRP 2.
    # First refresh at tREFI: at 30 PRE (RD 29 + tRTP 1), REF 32, ACT 42, the 12 reads left 44..55
    # -> 56. Two ranks staggered: the first refresh at 30 / 2 = 15: PRE 15, REF 17, ACT 27, the
    # 27 reads left from 29 on; the next refresh (45) comes after 16 of them (29..44): PRE 45,
    # REF 47, ACT 57, the 11 reads left 59..69 -> 70.
    geom = np.array([1, 1, 1, 2], np.int64)
    k = np.full(40, E.K_RD, np.int64)
    z = np.zeros(40, np.int64)
    T = _tiny_T(T_REFI=30)
    c = E.run_stream(k, z, z, z, geom, T)
    assert c[E.C_CYCLES] == 56 and c[E.C_REF] == 1
    T[E.T_REF0] = 15
    c = E.run_stream(k, z, z, z, geom, T)
    assert c[E.C_CYCLES] == 70 and c[E.C_REF] == 2
    # the adapter: pim.refresh_ranks=2 puts the first refresh at tREFI / 2
    dev = resolve(load("hbm_pim", ["pim.refresh_ranks=2"]))
    assert dev.T[E.T_REF0] == 3900 // 2
    assert resolve(load("hbm_pim")).T[E.T_REF0] == 0


BARRIER_KINDS = (E.K_MAC_AB, E.K_MAC_HB, E.K_WR_HB, E.K_RD, E.K_WR, E.K_DATA, E.K_BARRIER, E.K_BARRIER)


@pytest.mark.parametrize("seed", range(4))
def test_tagged_controller_matches_cycle_stepped_twin(seed):
    rng = np.random.default_rng(300 + seed)
    dev = resolve(load("hbm_pim"))
    T = dev.T.copy()
    T[E.T_REFI] = 300
    T[E.T_RFC] = 60
    T[E.T_REF0] = 150
    T[E.T_REFRESH] = 1 + seed % 2
    T[E.T_CTRL] = PIMSIM | (E.CTRL_INTAKE_ONE if seed >= 2 else 0)
    T[E.T_WINDOW] = int(rng.integers(2, 12))
    geom = np.array([2, 2, 2, 4], np.int64)
    k, s, b, r = _random_stream(rng, 120, 4, BARRIER_KINDS)
    fast = E.run_stream(k, s, b, r, geom, T)
    slow = E.run_stream.py_func(k, s, b, r, geom, T, True)
    assert np.array_equal(fast, slow)
    assert fast[E.C_MAC_AB] + fast[E.C_MAC_HB] + fast[E.C_RD] + fast[E.C_WR] + fast[E.C_WR_HB] == int(
        np.isin(k, [E.K_MAC_AB, E.K_MAC_HB, E.K_RD, E.K_WR, E.K_WR_HB]).sum())


def test_refresh_interval_shorter_than_rfc_plus_rcd_is_a_config_error():
    # tRFC 350 + tRCD 14: a refresh every 364 CK or less never lets a column command through
    with pytest.raises(ConfigError) as e:
        gemv_cycles("hbm_pim", 1024, 1024, overrides=["memory.dram.timing.tREFI=364"])
    assert e.value.path == "memory.dram.timing.tREFI"
    # ganged activation: a 16-bank rank's last gang opens 3 tFAW (3 x 16 on hbm_pim) later, so a
    # refresh every 364 + 48 = 412 CK or less never lets a column command through either
    faw = ["pim.pim_activation='faw'"]
    with pytest.raises(ConfigError, match="3 tFAW") as e:
        gemv_cycles("hbm_pim", 1024, 1024, overrides=["memory.dram.timing.tREFI=412"] + faw)
    assert e.value.path == "memory.dram.timing.tREFI"
    assert gemv_cycles("hbm_pim", 1024, 1024, overrides=["memory.dram.timing.tREFI=412"]).cycles > 0
    assert gemv_cycles("hbm_pim", 1024, 1024, overrides=["memory.dram.timing.tREFI=420"] + faw).cycles > 0


def test_engine_stall_is_reported_not_hung():
    # below the check (timing vector built by hand): the engine gives up after a few refreshes
    # without a column command, and the caller names the field
    # 20 reads; tREFI 8 < tRFC 10: reads 2..7, PRE 8, REF 10, no ACT before 20 but the next
    # refresh is due at 16, then 24, ...: no read ever issues again
    geom = np.array([1, 1, 1, 2], np.int64)
    k = np.full(20, E.K_RD, np.int64)
    z = np.zeros(20, np.int64)
    T = _tiny_T(T_REFI=8, T_RFC=10)
    assert E.run_stream(k, z, z, z, geom, T)[E.C_CYCLES] == -1
    with pytest.raises(ConfigError) as e:
        _run_streams([(k, z, z, z)], geom, T)
    assert e.value.path == "memory.dram.timing.tREFI"


def test_cli_short_refresh_interval_exit_2():
    from archsim.cli import main
    res = CliRunner().invoke(main, ["run", "hbm_pim", "gpt2", "--phase", "decode", "--set",
                                    "memory.dram.timing.tREFI=300"])
    assert res.exit_code == 2
    assert "memory.dram.timing.tREFI" in res.output
    assert "Traceback" not in res.output


def _sb_tiles(n_tiles, banks=4, bursts=8):
    """Tiles of a same-bank (bank-group placement) GEMV: the input vector written into a reserved
    row of every bank (WR_AB, row 100), a barrier, MACs over row ``tile`` of banks 0..3 in turn
    (MAC_SB: that bank in every bank group), a barrier."""
    k, b, r = [], [], []
    for t in range(n_tiles):
        k += [E.K_WR_AB] * 2 + [E.K_BARRIER]
        b += [0, 0, 0]
        r += [100, 100, -1]
        for bank in range(banks):
            k += [E.K_MAC_SB] * bursts
            b += [bank] * bursts
            r += [t] * bursts
        k.append(E.K_BARRIER)
        b.append(0)
        r.append(-1)
    k, b, r = (np.array(x, np.int64) for x in (k, b, r))
    return k, np.zeros(k.size, np.int64), b, r


def test_row_commands_wait_for_every_bank_their_scope_covers():
    """Three tiles of a same-bank GEMV (:func:`_sb_tiles`): each opens the reserved row of all
    banks once (ACT_AB; a PRE_AB before the 2nd and 3rd) and each bank's MAC row once (4 PRE_SB
    + ACT_SB a tile), whatever the request window. A wider window only looks further ahead: the
    all-bank PRE of the next tile's writes waits for the MACs of every bank still to hit their
    rows (not only bank 0's, the bank its address names), and a later tile's same-bank ACT does
    not overtake the older all-bank write's row. Before, a window of 32 thrashed the rows (18
    ACT_SB) and ran 641 cycles against 581 with a window of 8."""
    dev = resolve(load("hbm_pim", ["memory.dram.refresh='off'"]))
    geom, _ = dev.stream_geom("pseudo_channel")
    cyc = []
    for W in (1, 2, 4, 8, 16, 32, 64):
        T = dev.T.copy()
        T[E.T_WINDOW] = W
        c = E.counters_dict(E.run_stream(*_sb_tiles(3), geom, T))
        assert (c["act_ab"], c["pre_ab"], c["act_sb"], c["pre_sb"], c["mac_sb"]) == (3, 2, 12, 12, 96), W
        cyc.append(c["cycles"])
    assert all(b <= a for a, b in zip(cyc, cyc[1:]))          # a wider window is never slower here
    assert cyc[-1] < cyc[0]


def test_gemv_row_activations_do_not_grow_with_the_window():
    """A 50280 x 768 GEMV (an LM head) on hbm_pim with bank-group units: the same row activations
    and cycles within 1% for request windows of 8 to 128 (they were 2.1x to 3.3x the ACTs, 24-55%
    more cycles, at 32 and 128)."""
    res = {}
    for W in (8, 32, 128):
        r = gemv_cycles("hbm_pim", 50280, 768, overrides=["pim.stacks=2", "pim.placement=bankgroup",
                                                          "pim.banks_per_unit=1", f"pim.window={W}"])
        res[W] = (r.cycles, r.counters["act_sb"])
    assert res[32][1] == res[8][1] == res[128][1]
    assert max(c for c, _ in res.values()) <= 1.01 * min(c for c, _ in res.values())
