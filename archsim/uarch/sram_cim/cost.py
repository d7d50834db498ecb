"""Cost kernel of the SRAM CIM chip: per-instruction durations and per-layer action counts.

Instruction fields (set by :mod:`archsim.uarch.sram_cim.lower`):

- GEMM (a wave set on a group of macros working in lockstep):
  ``m`` waves per macro (the busiest macro of the group), ``n`` macro waves in total,
  ``k`` MACs executed, ``nbytes`` buffer bytes read (input slices, partial sums),
  ``addr`` buffer bytes written (partial sums / outputs),
  ``aux = [input_bits, weight_bits, skipped MACs, shift-accumulate ops]``.
  Duration: ``m * ceil(input_bits / input_bits_per_cycle) + pipeline_cycles`` (0 if m = 0).
- WRITE (macro rewrite through the write ports of a group of macros in parallel):
  ``m`` row writes of the busiest macro, ``n`` row writes in total, ``k`` bits written,
  ``nbytes`` buffer bytes read to feed them, ``aux[0]`` write slots per row write
  (1; 2 for a read-modify-write). Duration: ``m * aux[0] * write_cycles_per_row``.
- VECTOR: ``aux[1] == 0``: a vector-unit op (``aux[0]`` kind, ``m`` elements, ``n`` rows),
  timed like the systolic vector unit. ``aux[1] == 1``: a transpose pass of ``m`` elements
  (``ceil(m / transpose_elements_per_cycle)``), reading and writing ``nbytes`` of buffer.
- LOAD/STORE: ``aux[0] == 1`` marks a transfer staged through the global buffer
  (activations); weight and K/V loads go straight to the macros' write drivers.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from archsim.isa import Op
from archsim.jitcache import drop_stale
from archsim.uarch.systolic.cost import vector_cycles

# kernels here inline the systolic vector-unit arithmetic: drop their cache when it changes
drop_stale(__file__, [Path(__file__).parents[1] / "systolic" / "cost.py",
                      Path(__file__).parents[1] / "systolic" / "folds.py"])

COUNTERS = (
    "array.mac",            # MACs executed in macros
    "array.skipped_mac",    # MACs of masked attention blocks (waves skipped)
    "cim.wave",             # macro MAC waves (one input vector through one macro)
    "cim.bitop",            # 1b x 1b partial products (MAC x input bits x weight bits)
    "cim.shift_acc",        # shift-accumulate steps (output x input-bit cycle)
    "cim.row_write",        # macro row writes (weight / K / V rewrites)
    "cim.bit_write",        # bits written into macros
    "cim.transpose",        # elements through the transpose unit
    "buffer.read_bytes", "buffer.write_bytes",
    "vector.add", "vector.mul", "vector.exp", "vector.div", "vector.rsqrt", "vector.move",
)
C_MAC, C_SKIP, C_WAVE, C_BITOP, C_SHACC, C_ROWW, C_BITW, C_TRANS, C_BUF_R, C_BUF_W = range(10)
C_VEC0 = 10
N_COUNTERS = len(COUNTERS)

OP_GEMM = int(Op.GEMM)
OP_VECTOR = int(Op.VECTOR)
OP_LOAD = int(Op.LOAD)
OP_STORE = int(Op.STORE)
OP_WRITE = int(Op.WRITE)
VEC_TRANSPOSE = 1
BUF_STAGED = 1


@njit(cache=True)
def wave_cycles(input_bits, bits_per_cycle):
    return (input_bits + bits_per_cycle - 1) // bits_per_cycle


@njit(cache=True)
def cim_cost(op, layer, m, n, k, nbytes, addr, aux, n_layers, bits_per_cycle, pipeline, wcpr,
             transpose_rate, prim, rates, vpipe):
    N = op.shape[0]
    dur = np.zeros(N, np.int64)
    cnt = np.zeros((n_layers, 16), np.int64)
    for i in range(N):
        o = op[i]
        L = layer[i]
        if o == OP_GEMM:
            if m[i] > 0:
                dur[i] = m[i] * wave_cycles(aux[i, 0], bits_per_cycle) + pipeline
            cnt[L, 0] += k[i]
            cnt[L, 1] += aux[i, 2]
            cnt[L, 2] += n[i]
            cnt[L, 3] += k[i] * aux[i, 0] * aux[i, 1]
            cnt[L, 4] += aux[i, 3]
            cnt[L, 8] += nbytes[i]
            cnt[L, 9] += addr[i]
        elif o == OP_WRITE:
            dur[i] = m[i] * aux[i, 0] * wcpr
            cnt[L, 5] += n[i]
            cnt[L, 6] += k[i]
            cnt[L, 8] += nbytes[i]
        elif o == OP_VECTOR:
            if aux[i, 1] == 1:
                dur[i] = (m[i] + transpose_rate - 1) // transpose_rate
                cnt[L, 7] += m[i]
                cnt[L, 8] += nbytes[i]
                cnt[L, 9] += nbytes[i]
            else:
                kind = aux[i, 0]
                dur[i] = vector_cycles(kind, m[i], n[i], prim, rates, vpipe)
                for p in range(rates.shape[0]):
                    cnt[L, 10 + p] += np.int64(np.ceil(prim[kind, 0, p] * m[i] + prim[kind, 1, p] * n[i]))
                cnt[L, 8] += nbytes[i]
                cnt[L, 9] += addr[i]
        elif o == OP_LOAD:
            if aux[i, 0] == 1:
                cnt[L, 9] += nbytes[i]
        elif o == OP_STORE:
            if aux[i, 0] == 1:
                cnt[L, 8] += nbytes[i]
    return dur, cnt
