"""Cost kernel of the systolic array: per-instruction durations and per-layer action counts.

GEMM tiles take exactly SCALE-Sim's stall-free compute cycles for the tile's shape on the
array (folds x (fill + stream + drain), :mod:`archsim.uarch.systolic.folds`); SRAM accesses
follow the same per-fold access arithmetic, converted to bytes by operand precision, plus
partial-sum reads when a tile accumulates onto earlier k tiles. Vector instructions cost
``pipeline + ceil(sum_p ops_p / (lanes * rate_p))`` over primitive ops p. Transfers through
the shared on-chip memory (SHARED) are timed by the timing kernel; here they are counted.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from archsim.isa import Op, VecKind
from archsim.jitcache import drop_stale
from archsim.uarch.systolic.folds import fold_counts, gemm_compute_cycles, sram_access_counts

drop_stale(__file__, [Path(__file__).with_name("folds.py")])

COUNTERS = (
    "array.mac",
    "ifmap_sram.read_bytes", "ifmap_sram.write_bytes",
    "filter_sram.read_bytes", "filter_sram.write_bytes",
    "ofmap_sram.read_bytes", "ofmap_sram.write_bytes",
    "vector.add", "vector.mul", "vector.exp", "vector.div", "vector.rsqrt", "vector.move",
    # MACs by operand width (max of the A and B precisions), priced per precision
    "array.mac_4b", "array.mac_8b", "array.mac_16b", "array.mac_32b",
    # the arrays' shared on-chip memory (sram.shared), when there is one
    "shared_sram.read_bytes", "shared_sram.write_bytes",
)
N_COUNTERS = len(COUNTERS)
C_MAC_BITS0 = 13
C_MAC, C_IF_R, C_IF_W, C_FI_R, C_FI_W, C_OF_R, C_OF_W = range(7)
C_VEC0 = 7
C_SH_R, C_SH_W = 17, 18
PRIMS = ("add", "mul", "exp", "div", "rsqrt", "move")
N_PRIM = len(PRIMS)

# primitive ops per element [0] and per row [1] for each vector kind
_PRIM = {
    VecKind.ADD: ({"add": 1}, {}),
    VecKind.MUL: ({"mul": 1}, {}),
    VecKind.SOFTMAX: ({"add": 3, "exp": 1, "mul": 1}, {"div": 1}),      # max, sub, sum; exp; scale
    VecKind.LAYERNORM: ({"add": 4, "mul": 3}, {"rsqrt": 1, "div": 2}),  # mean, var, normalise, affine
    VecKind.RMSNORM: ({"add": 1, "mul": 3}, {"rsqrt": 1, "div": 1}),
    VecKind.GELU: ({"mul": 6, "add": 2, "exp": 1, "div": 1}, {}),      # tanh approximation
    VecKind.SILU: ({"add": 1, "exp": 1, "div": 1, "mul": 1}, {}),
    VecKind.RELU: ({"add": 1}, {}),
    VecKind.ROPE: ({"mul": 2, "add": 1}, {}),
    VecKind.COPY: ({"move": 1}, {}),
    VecKind.SCAN: ({"exp": 1, "mul": 3, "add": 2}, {}),
    VecKind.CONV1D: ({"mul": 4, "add": 4}, {}),
    VecKind.TOPK: ({"add": 2}, {"div": 1}),
}


def prim_table() -> np.ndarray:
    t = np.zeros((len(VecKind), 2, N_PRIM), np.float64)
    for kind, (pe, pr) in _PRIM.items():
        for p, v in pe.items():
            t[int(kind), 0, PRIMS.index(p)] = v
        for p, v in pr.items():
            t[int(kind), 1, PRIMS.index(p)] = v
    return t


def vector_rates(vcfg) -> np.ndarray:
    return np.array([vcfg.add, vcfg.mul, vcfg.exp, vcfg.div, vcfg.rsqrt, 1.0], np.float64) * vcfg.lanes


OP_GEMM = int(Op.GEMM)
OP_VECTOR = int(Op.VECTOR)
OP_LOAD = int(Op.LOAD)
OP_STORE = int(Op.STORE)
OP_SHARED = int(Op.SHARED)


@njit(cache=True)
def vector_cycles(kind, elements, rows, prim, rates, pipeline):
    tot = 0.0
    for p in range(rates.shape[0]):
        cnt = prim[kind, 0, p] * elements + prim[kind, 1, p] * rows
        tot += cnt / rates[p]
    return pipeline + np.int64(np.ceil(tot))


@njit(cache=True)
def tile_cycles(dataflow, R, C, m, n, k, preload_overlap, drain=True):
    """Compute cycles of one GEMM tile. Without preload overlap: SCALE-Sim's folds
    (F x (T + 2R + C - 2) for ws/is, F x (T + R + C - 2) for os). With it (ws/is only): the
    stationary operand of fold i+1 shifts in during fold i, so each fold costs max(T, R)
    (TPUv1: a B x 256 MatrixMultiply takes "B pipelined cycles"); the pipeline drain
    R + C - 2 overlaps the next tile's stream and is paid only by the tile that ends an op's
    sequence on its array (``drain``)."""
    if preload_overlap and dataflow != 0:
        rf, cf, T = fold_counts(dataflow, R, C, m, n, k)
        per = T if T > R else R
        tail = R + C - 2 if drain else 0
        return np.int64(rf) * np.int64(cf) * np.int64(per) + tail
    return gemm_compute_cycles(dataflow, R, C, m, n, k)


@njit(cache=True)
def systolic_cost(op, layer, m, n, k, nbytes, aux, n_layers, dataflow, R, C, prim, rates, pipeline,
                  preload_overlap=False):
    N = op.shape[0]
    dur = np.zeros(N, np.int64)
    cnt = np.zeros((n_layers, N_COUNTERS), np.int64)
    for i in range(N):
        o = op[i]
        L = layer[i]
        if o == OP_GEMM:
            dur[i] = tile_cycles(dataflow, R, C, m[i], n[i], k[i], preload_overlap, (aux[i, 2] & 2) != 0)
            macs = m[i] * n[i] * k[i]
            cnt[L, 0] += macs
            bits = aux[i, 0] if aux[i, 0] > aux[i, 1] else aux[i, 1]
            wb = 0 if bits <= 4 else (1 if bits <= 8 else (2 if bits <= 16 else 3))
            cnt[L, 13 + wb] += macs
            ifr, fir, ofw = sram_access_counts(dataflow, R, C, m[i], n[i], k[i])
            cnt[L, 1] += np.int64(np.ceil(ifr * aux[i, 0] / 8.0))
            cnt[L, 3] += np.int64(np.ceil(fir * aux[i, 1] / 8.0))
            cnt[L, 6] += ofw * aux[i, 3]
            if aux[i, 2] & 1:
                cnt[L, 5] += m[i] * n[i] * aux[i, 3]
        elif o == OP_VECTOR:
            kind = aux[i, 0]
            dur[i] = vector_cycles(kind, m[i], n[i], prim, rates, pipeline)
            for p in range(rates.shape[0]):
                cnt[L, 7 + p] += np.int64(np.ceil(prim[kind, 0, p] * m[i] + prim[kind, 1, p] * n[i]))
        elif o == OP_LOAD:
            cnt[L, 2 + 2 * aux[i, 0]] += nbytes[i]
        elif o == OP_STORE:
            cnt[L, 1 + 2 * aux[i, 0]] += nbytes[i]
        elif o == OP_SHARED:
            # a tile between the shared memory and a tile buffer: read there, written here
            # (aux[1] = 0), or the reverse (aux[1] = 1)
            if aux[i, 1] == 0:
                cnt[L, C_SH_R] += nbytes[i]
                cnt[L, 2 + 2 * aux[i, 0]] += nbytes[i]
            else:
                cnt[L, C_SH_W] += nbytes[i]
                cnt[L, 1 + 2 * aux[i, 0]] += nbytes[i]
    return dur, cnt
