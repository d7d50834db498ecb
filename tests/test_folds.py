"""Fold geometry kernels against hand-derived values and a naive fold-by-fold twin."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archsim.uarch.systolic import folds
from archsim.uarch.systolic.folds import DATAFLOW_IS, DATAFLOW_OS, DATAFLOW_WS


def naive_fold_walk(dataflow, R, C, M, N, K):
    """Walk every fold explicitly (column folds outer, row folds inner).

    Returns (cycles, mapping_eff, compute_util, ifmap_reads, filter_reads,
    ofmap_writes), derived per fold from what each fold streams:
      os: fold holds a used_r x used_c output tile; streams used_r rows of IFMAP
          and used_c columns of FILTER over K cycles; writes its outputs, and
          SCALE-Sim's report adds R + C per fold.
      ws: fold holds a used_r x used_c FILTER tile (read once); streams all M
          IFMAP rows over used_r K-columns; writes M x used_c partial sums.
      is: fold holds a used_r x used_c IFMAP tile (K x M, read once); streams
          used_r FILTER rows over all N; writes used_c x N partial sums.
    """
    if dataflow == DATAFLOW_OS:
        Sr, Sc, T = M, N, K
    elif dataflow == DATAFLOW_WS:
        Sr, Sc, T = K, N, M
    else:
        Sr, Sc, T = K, M, N
    cycles = 0
    me_sum = 0.0
    cu_sum = 0.0
    ifr = flr = ofw = 0
    n_folds = 0
    for fc in range(-(-Sc // C)):
        used_c = min(C, Sc - fc * C)
        for fr in range(-(-Sr // R)):
            used_r = min(R, Sr - fr * R)
            n_folds += 1
            if dataflow == DATAFLOW_OS:
                fold_len = T + R + C - 2
                util_len = fold_len
                ifr += used_r * K
                flr += used_c * K
                ofw += used_r * used_c + R + C
            else:
                fold_len = T + 2 * R + C - 2
                util_len = 2 * R + 2 * C + T - 3
                if dataflow == DATAFLOW_WS:
                    ifr += M * used_r
                    flr += used_r * used_c
                    ofw += M * used_c
                else:
                    ifr += used_r * used_c
                    flr += used_r * N
                    ofw += used_c * N
            cycles += fold_len
            me_sum += used_r * used_c / (R * C)
            cu_sum += used_r * used_c * T / (R * C * util_len)
    return cycles, me_sum / n_folds, cu_sum / n_folds, ifr, flr, ofw


# --- hand-derived ---------------------------------------------------------------


def test_dataflow_codes():
    assert (DATAFLOW_OS, DATAFLOW_WS, DATAFLOW_IS) == (0, 1, 2)
    assert folds.dataflow_code("OS") == 0 and folds.dataflow_code(" ws ") == 1
    assert folds.dataflow_code("is") == 2
    with pytest.raises(ValueError):
        folds.dataflow_code("rs")


def test_fold_counts_mapping():
    # os: Sr=M, Sc=N, T=K
    assert folds.fold_counts(DATAFLOW_OS, 32, 32, 128, 128, 64) == (4, 4, 64)
    # ws: Sr=K, Sc=N, T=M
    assert folds.fold_counts(DATAFLOW_WS, 8, 16, 20, 30, 40) == (5, 2, 20)
    # is: Sr=K, Sc=M, T=N
    assert folds.fold_counts(DATAFLOW_IS, 8, 16, 20, 30, 40) == (5, 2, 30)


def test_fold_cycles():
    assert folds.fold_cycles(DATAFLOW_OS, 32, 32, 64) == 64 + 62
    assert folds.fold_cycles(DATAFLOW_WS, 16, 8, 20) == 20 + 32 + 8 - 2
    assert folds.fold_cycles(DATAFLOW_IS, 8, 16, 30) == 30 + 16 + 16 - 2


def test_compute_cycles_hand():
    # GPT-2 QK^T at 128 tokens on 32x32, os: 16 folds of 64+62 cycles.
    assert folds.gemm_compute_cycles(DATAFLOW_OS, 32, 32, 128, 128, 64) == 16 * 126
    # decode QK^T (M=1) is: Sr=K=64 -> 2 row folds, Sc=M=1 -> 1; 128+64+32-2 each.
    assert folds.gemm_compute_cycles(DATAFLOW_IS, 32, 32, 1, 128, 64) == 2 * 222
    # 1x1 array, 1x1x1 GEMM: os fold = 1 cycle; ws/is = 2 (preload + compute).
    assert folds.gemm_compute_cycles(DATAFLOW_OS, 1, 1, 1, 1, 1) == 1
    assert folds.gemm_compute_cycles(DATAFLOW_WS, 1, 1, 1, 1, 1) == 2


def test_report_arithmetic_hand():
    # ws, 8x16 array, M=20 N=30 K=40 (SCALE-Sim 3.0.0: 93.75 %, 28.846... %)
    assert folds.mapping_efficiency(DATAFLOW_WS, 8, 16, 20, 30, 40) == pytest.approx(0.9375)
    assert folds.compute_utilisation(DATAFLOW_WS, 8, 16, 20, 30, 40) == pytest.approx(
        0.9375 * 20 / 65, rel=1e-12)
    # os overcount: M*N + F*(R+C)
    assert folds.sram_access_counts(DATAFLOW_OS, 8, 16, 20, 30, 40) == (1600, 3600, 744)
    assert folds.sram_access_counts(DATAFLOW_WS, 8, 16, 20, 30, 40) == (1600, 1200, 3000)
    assert folds.sram_access_counts(DATAFLOW_IS, 8, 16, 20, 30, 40) == (800, 2400, 3000)


def test_huge_gemm_closed_form():
    # 10^6-cube GEMM on a 128x96 array: closed form, no fold iteration.
    M = N = K = 1_000_000
    rf, cf, T = folds.fold_counts(DATAFLOW_OS, 128, 96, M, N, K)
    assert folds.gemm_compute_cycles(DATAFLOW_OS, 128, 96, M, N, K) == rf * cf * (K + 128 + 96 - 2)
    me = folds.mapping_efficiency(DATAFLOW_OS, 128, 96, M, N, K)
    assert me == pytest.approx((M / (rf * 128)) * (N / (cf * 96)), rel=1e-12)


# --- kernel vs naive twin -----------------------------------------------------

dims = st.integers(min_value=1, max_value=90)
arr = st.integers(min_value=1, max_value=40)


@settings(max_examples=300, deadline=None)
@given(df=st.sampled_from([DATAFLOW_OS, DATAFLOW_WS, DATAFLOW_IS]), R=arr, C=arr,
       M=dims, N=dims, K=dims)
def test_closed_form_matches_naive(df, R, C, M, N, K):
    cyc, me, cu, ifr, flr, ofw = naive_fold_walk(df, R, C, M, N, K)
    assert folds.gemm_compute_cycles(df, R, C, M, N, K) == cyc
    assert folds.mapping_efficiency(df, R, C, M, N, K) == pytest.approx(me, rel=1e-12)
    assert folds.compute_utilisation(df, R, C, M, N, K) == pytest.approx(cu, rel=1e-12)
    assert folds.sram_access_counts(df, R, C, M, N, K) == (ifr, flr, ofw)


@settings(max_examples=40, deadline=None)
@given(df=st.sampled_from([DATAFLOW_OS, DATAFLOW_WS, DATAFLOW_IS]), R=arr, C=arr,
       shapes=st.lists(st.tuples(dims, dims, dims), min_size=1, max_size=8))
def test_many_matches_scalar(df, R, C, shapes):
    M = np.array([s[0] for s in shapes], np.int64)
    N = np.array([s[1] for s in shapes], np.int64)
    K = np.array([s[2] for s in shapes], np.int64)
    cyc, me, cu, sram = folds.scalesim_report_many(df, R, C, M, N, K)
    rf, cf, tt = folds.fold_counts_many(df, R, C, M, N, K)
    np.testing.assert_array_equal(cyc, folds.gemm_compute_cycles_many(df, R, C, M, N, K))
    np.testing.assert_array_equal(me, folds.mapping_efficiency_many(df, R, C, M, N, K))
    np.testing.assert_array_equal(cu, folds.compute_utilisation_many(df, R, C, M, N, K))
    np.testing.assert_array_equal(sram, folds.sram_access_counts_many(df, R, C, M, N, K))
    for i, (m, n, k) in enumerate(shapes):
        assert cyc[i] == folds.gemm_compute_cycles(df, R, C, m, n, k)
        assert (rf[i], cf[i], tt[i]) == folds.fold_counts(df, R, C, m, n, k)
        assert tuple(sram[i]) == folds.sram_access_counts(df, R, C, m, n, k)


@settings(max_examples=100, deadline=None)
@given(df=st.sampled_from([DATAFLOW_OS, DATAFLOW_WS, DATAFLOW_IS]), R=arr, C=arr,
       M=dims, N=dims, K=dims)
def test_bounds(df, R, C, M, N, K):
    """Cycles >= MACs / PEs; utilisations in (0, 1]; compute util <= mapping eff."""
    cyc = folds.gemm_compute_cycles(df, R, C, M, N, K)
    assert cyc * R * C >= M * N * K
    me = folds.mapping_efficiency(df, R, C, M, N, K)
    cu = folds.compute_utilisation(df, R, C, M, N, K)
    assert 0 < cu <= me <= 1.0 + 1e-15
