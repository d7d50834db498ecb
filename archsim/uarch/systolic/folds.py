"""Fold geometry of a systolic array running one GEMM.

This module is the single source of truth for how a GEMM (output ``M x N``,
reduction ``K``; IFMAP ``M x K``, FILTER ``K x N``) is cut into folds on an
``R x C`` array (R = ArrayHeight rows, C = ArrayWidth columns) and how many
cycles each fold takes.  Both the SCALE-Sim compatible report
(:mod:`archsim.uarch.systolic.scalesim_compat`) and the native systolic cost
kernel use it.

Spatial mapping per dataflow (``Sr`` on array rows, ``Sc`` on array columns,
``T`` temporal)::

    os (output stationary): Sr = M, Sc = N, T = K
    ws (weight stationary): Sr = K, Sc = N, T = M
    is (input stationary):  Sr = K, Sc = M, T = N

Folds: ``F = ceil(Sr/R) * ceil(Sc/C)``, run strictly one after another.
Cycles per fold (fill + stream + drain, no overlap between folds)::

    os: T + R + C - 2
    ws, is: T + 2R + C - 2        (R extra cycles to preload the stationary operand)

:func:`gemm_compute_cycles` returns ``F * cycles_per_fold``, the true stall-free
cycle count.  SCALE-Sim's report prints one less ("Total Cycles" is the index
of the last cycle, counted from 0); that ``-1`` is a report quirk and is
applied only by the SCALE-Sim compatible report, never here.

Per-fold means (mapping efficiency, compute utilisation) are computed in
closed form: the folds fall into at most four classes (full/edge row fold x
full/edge column fold), each counted by its multiplicity, so the cost does not
depend on the GEMM size and is exact for huge GEMMs.

Every function here is ``@njit(cache=True)`` over scalars or 1-D arrays.
Integers are int64; the functions do not check their arguments (callers
validate: all dimensions >= 1, dataflow in {0, 1, 2}).
"""

from __future__ import annotations

import numpy as np
from numba import njit

DATAFLOW_OS = 0
DATAFLOW_WS = 1
DATAFLOW_IS = 2

#: Names in SCALE-Sim's spelling, indexed by dataflow code.
DATAFLOW_NAMES = ("os", "ws", "is")


def dataflow_code(name: str) -> int:
    """Dataflow code for a SCALE-Sim dataflow name (``os``, ``ws``, ``is``).

    Raises ``ValueError`` for an unknown name (plain Python, not jitted).
    """
    key = str(name).strip().lower()
    if key not in DATAFLOW_NAMES:
        raise ValueError(f"unknown dataflow {name!r}; expected one of os, ws, is")
    return DATAFLOW_NAMES.index(key)


@njit(cache=True)
def _ceil_div(a, b):
    return (a + b - 1) // b


@njit(cache=True)
def spatial_dims(dataflow, M, N, K):
    """(Sr, Sc, T): extent mapped on array rows, on array columns, and in time."""
    if dataflow == DATAFLOW_OS:
        return M, N, K
    elif dataflow == DATAFLOW_WS:
        return K, N, M
    else:
        return K, M, N


@njit(cache=True)
def fold_counts(dataflow, R, C, M, N, K):
    """(row_folds, col_folds, T) for a GEMM on an R x C array.

    ``row_folds = ceil(Sr/R)``, ``col_folds = ceil(Sc/C)``, ``T`` is the temporal
    extent streamed through each fold.
    """
    Sr, Sc, T = spatial_dims(dataflow, M, N, K)
    return _ceil_div(Sr, R), _ceil_div(Sc, C), T


@njit(cache=True)
def fold_cycles(dataflow, R, C, T):
    """Cycles of one fold: os ``T+R+C-2``; ws/is ``T+2R+C-2``."""
    if dataflow == DATAFLOW_OS:
        return T + R + C - 2
    return T + 2 * R + C - 2


@njit(cache=True)
def gemm_compute_cycles(dataflow, R, C, M, N, K):
    """Stall-free cycles of a GEMM: ``F * fold_cycles`` (no SCALE-Sim ``-1``)."""
    rf, cf, T = fold_counts(dataflow, R, C, M, N, K)
    return np.int64(rf) * np.int64(cf) * np.int64(fold_cycles(dataflow, R, C, T))


@njit(cache=True)
def _fold_classes(S, A):
    """Fold classes along one axis of extent S cut into tiles of A.

    Returns (n_full, edge_used): ``n_full`` folds use all A lanes, and, if
    ``edge_used > 0``, one more fold uses ``edge_used`` lanes.
    """
    n_full = S // A
    return n_full, S - n_full * A


@njit(cache=True)
def _mean_used_fraction(Sr, Sc, R, C):
    """Mean over folds of used_rows*used_cols/(R*C), summed class by class."""
    fr, er = _fold_classes(Sr, R)
    fc, ec = _fold_classes(Sc, C)
    nr = fr + (1 if er > 0 else 0)
    nc = fc + (1 if ec > 0 else 0)
    n_folds = float(nr) * float(nc)
    area = float(R) * float(C)
    total = 0.0
    # full x full
    total += float(fr) * float(fc) * 1.0
    # full rows x edge cols
    if ec > 0:
        total += float(fr) * (float(R) * float(ec) / area)
    # edge rows x full cols
    if er > 0:
        total += float(fc) * (float(er) * float(C) / area)
    # edge x edge
    if er > 0 and ec > 0:
        total += float(er) * float(ec) / area
    return total / n_folds


@njit(cache=True)
def mapping_efficiency(dataflow, R, C, M, N, K):
    """Unweighted mean over folds of used PEs / (R*C), as a fraction in (0, 1]."""
    Sr, Sc, T = spatial_dims(dataflow, M, N, K)
    return _mean_used_fraction(Sr, Sc, R, C)


@njit(cache=True)
def compute_util_denominator(dataflow, R, C, T):
    """Cycle count SCALE-Sim divides each fold's work by for "Compute Util %".

    os: ``T+R+C-2`` (the real fold length).  ws/is: ``2R+2C+T-3``, which is not
    the real fold length ``T+2R+C-2`` (a report quirk, reproduced as observed).
    """
    if dataflow == DATAFLOW_OS:
        return T + R + C - 2
    return 2 * R + 2 * C + T - 3


@njit(cache=True)
def compute_utilisation(dataflow, R, C, M, N, K):
    """Mean over folds of used_PEs*T / (R*C*L), L from compute_util_denominator.

    A fraction; the report multiplies by 100.
    """
    Sr, Sc, T = spatial_dims(dataflow, M, N, K)
    L = compute_util_denominator(dataflow, R, C, T)
    return _mean_used_fraction(Sr, Sc, R, C) * (float(T) / float(L))


@njit(cache=True)
def sram_access_counts(dataflow, R, C, M, N, K):
    """(ifmap_reads, filter_reads, ofmap_writes) SRAM word accesses as SCALE-Sim counts them.

    os: ifmap ``ceil(N/C)*M*K``, filter ``ceil(M/R)*K*N``,
        ofmap ``M*N + F*(R+C)`` (the ``F*(R+C)`` is an overcount of the
        report, reproduced as observed);
    ws: ifmap ``ceil(N/C)*M*K``, filter ``K*N``, ofmap ``M*N*ceil(K/R)``
        (one partial-sum write per K fold, partial-sum reads not counted);
    is: ifmap ``M*K``, filter ``ceil(M/C)*K*N``, ofmap ``M*N*ceil(K/R)``.
    """
    M = np.int64(M)
    N = np.int64(N)
    K = np.int64(K)
    R = np.int64(R)
    C = np.int64(C)
    if dataflow == DATAFLOW_OS:
        rf = _ceil_div(M, R)
        cf = _ceil_div(N, C)
        return cf * M * K, rf * K * N, M * N + rf * cf * (R + C)
    elif dataflow == DATAFLOW_WS:
        return _ceil_div(N, C) * M * K, K * N, M * N * _ceil_div(K, R)
    else:
        return M * K, _ceil_div(M, C) * K * N, M * N * _ceil_div(K, R)


# ---------------------------------------------------------------------------
# Vectorised versions: one call for many GEMMs (arrays of M, N, K).
# ---------------------------------------------------------------------------


@njit(cache=True)
def fold_counts_many(dataflow, R, C, M, N, K):
    """Arrays (row_folds, col_folds, T), int64, one entry per GEMM."""
    n = M.shape[0]
    rf = np.empty(n, np.int64)
    cf = np.empty(n, np.int64)
    tt = np.empty(n, np.int64)
    for i in range(n):
        a, b, c = fold_counts(dataflow, R, C, np.int64(M[i]), np.int64(N[i]), np.int64(K[i]))
        rf[i] = a
        cf[i] = b
        tt[i] = c
    return rf, cf, tt


@njit(cache=True)
def gemm_compute_cycles_many(dataflow, R, C, M, N, K):
    """Stall-free cycles (int64 array) of many GEMMs on one array and dataflow."""
    n = M.shape[0]
    out = np.empty(n, np.int64)
    for i in range(n):
        out[i] = gemm_compute_cycles(dataflow, R, C, np.int64(M[i]), np.int64(N[i]), np.int64(K[i]))
    return out


@njit(cache=True)
def mapping_efficiency_many(dataflow, R, C, M, N, K):
    n = M.shape[0]
    out = np.empty(n, np.float64)
    for i in range(n):
        out[i] = mapping_efficiency(dataflow, R, C, np.int64(M[i]), np.int64(N[i]), np.int64(K[i]))
    return out


@njit(cache=True)
def compute_utilisation_many(dataflow, R, C, M, N, K):
    n = M.shape[0]
    out = np.empty(n, np.float64)
    for i in range(n):
        out[i] = compute_utilisation(dataflow, R, C, np.int64(M[i]), np.int64(N[i]), np.int64(K[i]))
    return out


@njit(cache=True)
def sram_access_counts_many(dataflow, R, C, M, N, K):
    """int64 array of shape (n, 3): ifmap reads, filter reads, ofmap writes."""
    n = M.shape[0]
    out = np.empty((n, 3), np.int64)
    for i in range(n):
        a, b, c = sram_access_counts(dataflow, R, C, np.int64(M[i]), np.int64(N[i]), np.int64(K[i]))
        out[i, 0] = a
        out[i, 1] = b
        out[i, 2] = c
    return out


@njit(cache=True)
def scalesim_report_many(dataflow, R, C, M, N, K):
    """All per-GEMM report quantities at once.

    Returns (compute_cycles int64[n], mapping_eff float64[n] (fraction),
    compute_util float64[n] (fraction), sram int64[n, 3]).  ``compute_cycles``
    is the true stall-free count (add SCALE-Sim's ``-1`` in the report).
    """
    n = M.shape[0]
    cyc = np.empty(n, np.int64)
    me = np.empty(n, np.float64)
    cu = np.empty(n, np.float64)
    sram = np.empty((n, 3), np.int64)
    for i in range(n):
        m = np.int64(M[i])
        nn = np.int64(N[i])
        k = np.int64(K[i])
        cyc[i] = gemm_compute_cycles(dataflow, R, C, m, nn, k)
        me[i] = mapping_efficiency(dataflow, R, C, m, nn, k)
        cu[i] = compute_utilisation(dataflow, R, C, m, nn, k)
        a, b, c = sram_access_counts(dataflow, R, C, m, nn, k)
        sram[i, 0] = a
        sram[i, 1] = b
        sram[i, 2] = c
    return cyc, me, cu, sram
