"""Cost kernel of the GPU: per-instruction durations and per-layer action counts.

- GEMM chunk (one wave of CTAs over part of the k loop): each CTA runs ``iters = k / tk``
  main-loop iterations of ``max(MMA, operand feed) + overhead`` cycles, where MMA is
  ``tm x tn x tk / rate`` (tensor-core MACs per cycle per SM at the operand precision) and
  the feed is the CTA's A and B k-slices over the smaller of the L2->SM bandwidth and the
  in-flight-limited pull rate; the last chunk adds the accumulator write-out. With
  ``sm.warp_tile`` the instruction's ``nbytes`` are the fragment bytes one CTA reads from
  shared memory per iteration: with the stage it writes, that traffic over the shared-memory
  bandwidth bounds the iteration too (small CTA tiles re-read their operands more often).
- VECTOR: the systolic package's vector-unit arithmetic (pipeline + ops / lane rates).
  A structured-sparse weight (``sm.sparse_mma``) arrives at twice the MMA rate (``aux[0]``) with
  its B panel compressed (``aux[1] >> 8``: the bytes saved, in 1/256 of a dense panel).
- SYNC: ``m`` cycles (kernel launch / device gap computed by the lowerer; 0 for joins);
  ``aux[0]`` MACs a kernel skipped (masked tiles of causal attention), counted, not timed.
- XFER: ring all-reduce over ``aux[0]`` devices: ``2 (N-1)/N x bytes / link rate +
  2 (N-1) x hop latency``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from archsim.isa import Op
from archsim.jitcache import drop_stale
from archsim.uarch.gpu.tiling import iter_cycles, k_depth, smem_cycles
from archsim.uarch.systolic.cost import PRIMS, vector_cycles

# kernels here inline the systolic vector-unit arithmetic and the tile depth: drop their cache
# when those change
drop_stale(__file__, [Path(__file__).parents[1] / "systolic" / "cost.py",
                      Path(__file__).parents[1] / "systolic" / "folds.py",
                      Path(__file__).parent / "tiling.py"])

COUNTERS = (
    "array.mac",
    "smem.read_bytes",
    "l2.read_bytes",
    "rf.write_bytes",
    "link.bytes",
    "array.skipped_mac",
    "smem.write_bytes",
) + tuple(f"vector.{p}" for p in PRIMS)
C_MAC, C_SMEM, C_L2, C_RF, C_LINK, C_SKIP, C_SMEM_WR = range(7)
C_VEC0 = 7
# counters of one simulated device (the MAC columns already count the whole tensor-parallel group)
PER_DEVICE = [i for i in range(len(COUNTERS)) if i not in (C_MAC, C_SKIP)]

# aux[1] of a GEMM chunk: operand bits | (B panel bytes saved against a dense panel, in 1/256) << 8,
# so a plain bit width is a dense GEMM
B_DENSE = 256
OP_GEMM = int(Op.GEMM)
OP_VECTOR = int(Op.VECTOR)
OP_SYNC = int(Op.SYNC)
OP_XFER = int(Op.XFER)


@njit(cache=True)
def gemm_chunk_cycles(tm, tn, k, tk, rate, eff, bits, feed_bpc, overhead, c, last, epi_bpc, acc_bytes,
                      b_q=B_DENSE, frag=0, smem_bpc=128.0):
    """One SM running ``c`` co-resident CTAs of tm x tn over ``k`` (main-loop iterations of
    ``tk`` at 16 bits, deeper for narrower operands: :func:`k_depth`); the B panel is ``b_q`` /
    256 of a dense one (a compressed structured-sparse weight); ``frag``: fragment bytes a CTA
    reads from shared memory per iteration (0: shared-memory bandwidth not modelled)."""
    tk = k_depth(tk, bits)
    iters = (k + tk - 1) // tk
    b = b_q / B_DENSE
    smem = smem_cycles(frag, tm, tn, tk, bits / 8.0, b, smem_bpc)
    cyc = iters * iter_cycles(tm, tn, tk, rate, eff, bits / 8.0, feed_bpc, overhead, c, b, smem)
    if last:
        cyc += c * tm * tn * acc_bytes / epi_bpc
    return np.int64(np.ceil(cyc))


@njit(cache=True)
def ring_bytes(nbytes, n_dev):
    """Bytes every device sends in a ring all-reduce of ``nbytes``: 2 (N-1)/N of the payload
    (reduce-scatter then all-gather); none on one device."""
    if n_dev <= 1:
        return 0.0
    return 2.0 * (n_dev - 1) / n_dev * nbytes


@njit(cache=True)
def link_cycles(nbytes, n_dev, link_bpc, hop_cycles):
    if n_dev <= 1:
        return np.int64(0)
    return np.int64(np.ceil(ring_bytes(nbytes, n_dev) / link_bpc + 2 * (n_dev - 1) * hop_cycles))


@njit(cache=True)
def gpu_cost(op, layer, m, n, k, nbytes, aux, n_layers, tk, eff, feed_bpc, overhead, epi_bpc, acc_bytes,
             prim, rates, pipeline, link_bpc, hop_cycles, smem_bpc):
    N = op.shape[0]
    dur = np.zeros(N, np.int64)
    cnt = np.zeros((n_layers, C_VEC0 + rates.shape[0]), np.int64)
    for i in range(N):
        o = op[i]
        L = layer[i]
        if o == OP_GEMM:
            rate = aux[i, 0] / 1000.0
            last = (aux[i, 3] & 1) == 1
            ctas = aux[i, 3] >> 8
            c = (aux[i, 3] >> 1) & 127
            bits = aux[i, 1] & 255
            b_q = B_DENSE - (aux[i, 1] >> 8)
            dur[i] = gemm_chunk_cycles(m[i], n[i], k[i], tk, rate, eff, bits, feed_bpc, overhead, c,
                                       last, epi_bpc, acc_bytes, b_q, nbytes[i], smem_bpc)
            cnt[L, C_MAC] += aux[i, 2]
            # the operand panels pass from L2 into shared memory once; the warps read them out
            # once per warp row / column (once each where fragments are not modelled)
            opnd = ctas * (m[i] * B_DENSE + n[i] * b_q) * k[i] * bits // (8 * B_DENSE)
            cnt[L, C_SMEM_WR] += opnd
            cnt[L, C_L2] += opnd
            if nbytes[i] > 0:
                kd = k_depth(tk, bits)
                cnt[L, C_SMEM] += ctas * ((k[i] + kd - 1) // kd) * nbytes[i]
            else:
                cnt[L, C_SMEM] += opnd
            if last:
                cnt[L, C_RF] += ctas * m[i] * n[i] * acc_bytes
        elif o == OP_VECTOR:
            kind = aux[i, 0]
            dur[i] = vector_cycles(kind, m[i], n[i], prim, rates, pipeline)
            for p in range(rates.shape[0]):
                cnt[L, C_VEC0 + p] += np.int64(np.ceil(prim[kind, 0, p] * m[i] + prim[kind, 1, p] * n[i]))
        elif o == OP_SYNC:
            dur[i] = m[i]
            cnt[L, C_SKIP] += aux[i, 0]
        elif o == OP_XFER:
            dur[i] = link_cycles(nbytes[i], aux[i, 0], link_bpc, hop_cycles)
            cnt[L, C_LINK] += nbytes[i]
    return dur, cnt
