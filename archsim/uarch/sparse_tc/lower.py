"""Lowering of a workload graph to a GPU tensor-core Program.

Units: ``dma_rd``/``dma_wr`` (DRAM queues), ``vector`` (the SMs' CUDA cores for softmax,
norms, activations), ``ctrl`` and one unit per SM. A GEMM C[M,N] = A[M,K] B[K,N] runs on
the core as C^T = B^T A^T: the core's A operand is the weight (Mh = N rows), its B operand
the activation (Nh = M columns); see :mod:`archsim.uarch.sparse_tc.structure`.

The output is cut into CTA tiles (cta.m x cta.n, clipped to the problem), dealt to SMs
round-robin; each CTA steps through K in chunks of cta.k. Per step: ``[LOAD A] [LOAD B]
GEMM``, and ``STORE C`` after the last chunk when C leaves the chip. A weight tile is
read from DRAM once (by the first CTA column that needs it) and from L2 by the others;
an activation tile likewise by the first CTA row. Loads of a compressed operand move its
compressed bytes: values of the non-zeros plus the format's metadata (2:4: metadata_bits
per kept value; bitmaps: one bit per element), and a stage of compressed weights spans
more of K (:meth:`SparseTCLowerer._k_chunk`). A step's load waits for the GEMM
``stages`` steps earlier on the same SM (shared-memory slots). GEMM instructions carry
in ``nbytes`` the tile bytes staged into shared memory (counted as L2 reads).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from archsim.config.types import PRECISION_BITS
from archsim.isa import Op, ProgramBuilder
from archsim.uarch.sparse_tc.cost import N_OPT, T_ABITS, T_ACNT, T_BBITS, T_BCNT, T_BK, T_BM, T_BN, \
    T_BSCAT, T_CB, T_COMP, T_DENSE_A, T_DENSE_B, T_J, T_K, T_K4, T_MH, T_NH, T_RB, T_RMF, T_RMIDX, T_RMP, \
    T_RMPTR, T_STATS, T_DSPRE
from archsim.uarch.sparse_tc.structure import build_structure
from archsim.uarch.systolic.lower import SystolicLowerer, _Alloc
from archsim.workload.graph import GemmOp


def _issue_order(C: int, J: int, S: int):
    """(CTA, k step) of every step of ``C`` CTAs with ``J`` k steps on ``S`` SMs, in issue order:
    wave (S CTAs) by wave, within a wave k step by k step, within a step CTA by CTA."""
    full, rem = divmod(C, S)
    parts_c, parts_j = [], []
    if full:
        parts_c.append(np.broadcast_to((np.arange(full, dtype=np.int64)[:, None, None] * S
                                        + np.arange(S, dtype=np.int64)[None, None, :]), (full, J, S)).ravel())
        parts_j.append(np.broadcast_to(np.arange(J, dtype=np.int64)[None, :, None], (full, J, S)).ravel())
    if rem:
        parts_c.append(np.broadcast_to(full * S + np.arange(rem, dtype=np.int64)[None, :], (J, rem)).ravel())
        parts_j.append(np.broadcast_to(np.arange(J, dtype=np.int64)[:, None], (J, rem)).ravel())
    if len(parts_c) == 1:
        return parts_c[0], parts_j[0]
    return np.concatenate(parts_c), np.concatenate(parts_j)


class _Flat:
    """Concatenates per-op arrays; returns the offset of each."""

    def __init__(self, dtype):
        self.parts: list[np.ndarray] = []
        self.size = 0
        self.dtype = dtype

    def add(self, a: np.ndarray) -> int:
        off = self.size
        a = np.ascontiguousarray(a, dtype=self.dtype).ravel()
        if a.size:
            self.parts.append(a)
            self.size += a.size
        return off

    def array(self) -> np.ndarray:
        return np.concatenate(self.parts) if self.parts else np.zeros(1, self.dtype)


class SparseTCLowerer(SystolicLowerer):
    """Reuses the systolic lowerer's vector-op lowering, joins and spill rule."""

    def __init__(self, cfg, memory_bytes_per_cycle: float):
        self.cfg = cfg
        self.variant = cfg.uarch
        self.S = cfg.gpu.sms
        self.units = ["dma_rd", "dma_wr", "vector", "ctrl"] + [f"sm{i}" for i in range(self.S)]
        self.U_RD, self.U_WR, self.U_VEC, self.U_CTRL = 0, 1, 2, 3
        self.pb = ProgramBuilder(self.units)
        self.alloc = _Alloc()
        self.act_budget = cfg.buffers.activation_budget * cfg.buffers.l2
        self.bpc = memory_bytes_per_cycle
        self.done: dict[str, int] = {}
        self.last_vec = [-1, -1]
        self.resident: set[str] = set()
        self.tilings: dict[str, dict] = {}
        self.stages = cfg.buffers.stages
        self.sm_hist = [[-1] * self.stages for _ in range(self.S)]   # last GEMMs per SM
        self.optab: list[np.ndarray] = []
        self.f_acnt = _Flat(np.int32)
        self.f_comp = _Flat(np.int8)
        self.f_bcnt = _Flat(np.int32)
        self.f_bscat = _Flat(np.int32)
        self.f_rmptr = _Flat(np.int64)
        self.f_rmidx = _Flat(np.int32)
        self.f_rmp = _Flat(np.int32)
        self.f_mf = _Flat(np.float64)
        self.f_mb = _Flat(np.float64)
        self.f_mz = _Flat(np.float64)
        self.f_dspre = _Flat(np.int32)
        self.next_sm = 0
        self.density_info: dict[str, dict] = {}

    def _k_chunk(self, op) -> int:
        """k chunk per shared-memory stage: cta.k for dense operands; a stage holds
        compressed bytes, so a bitmap-compressed weight of density d stages a power-of-two
        multiple of cta.k (up to bits / (d * bits + 1)) in the same space."""
        k = self.cfg.cta.k
        if self.variant in ("ds_stc", "rm_stc") and op.attrs.get("sparsity") is not None:
            bits = PRECISION_BITS[op.b.dtype]
            ratio = bits / (float(op.b.density) * bits + 1.0)
            while ratio >= 2.0 and k < 8 * self.cfg.cta.k:
                k *= 2
                ratio /= 2.0
        return k

    def _tiles(self, op: GemmOp):
        """(bm, bn, bk, J, nmb, nnb): CTA tile, k chunk, chunks and CTA rows / columns of a GEMM
        (the core's rows are the weight's output features, its columns the activation rows)."""
        cfg = self.cfg
        Mh, Nh, K = int(op.N), int(op.M), int(op.K)
        bm = min(cfg.cta.m, -(-Mh // cfg.warp.m) * cfg.warp.m)
        bn = min(cfg.cta.n, -(-Nh // cfg.warp.n) * cfg.warp.n)
        bk = min(self._k_chunk(op), K)
        return bm, bn, bk, -(-K // bk), -(-Mh // bm), -(-Nh // bn)

    def gemm(self, wl, op: GemmOp, layer: int) -> None:
        cfg, v = self.cfg, self.variant
        wm, wn = cfg.warp.m, cfg.warp.n
        Mh, Nh, K, G = int(op.N), int(op.M), int(op.K), int(op.count)
        bm, bn, bk, J, nmb, nnb = self._tiles(op)
        RB, CB = -(-Mh // wm), -(-Nh // wn)
        ab = PRECISION_BITS[op.b.dtype]          # core A operand = the weight
        bb = PRECISION_BITS[op.a.dtype]
        cb_bits = PRECISION_BITS[op.c.dtype]
        st = build_structure(op, v, wm, wn, bk, cfg.outer, cfg.stc)
        a_off, b_off, c_off = self.spilled(op.b), self.spilled(op.a), self.spilled(op.c)
        self.tilings[op.name] = dict(cta_m=bm, cta_n=bn, k_chunk=bk, warp_m=wm, warp_n=wn,
                                     structure=("dense" if st.dense_a and st.dense_b else
                                                "stats" if st.stats else "mask"))
        # ---- op table row -------------------------------------------------------------------
        row = np.zeros(N_OPT, np.int64)
        K4 = -(-K // cfg.stc.m)
        row[[T_MH, T_NH, T_K, T_BM, T_BN, T_BK, T_RB, T_CB, T_J, T_K4]] = Mh, Nh, K, bm, bn, bk, RB, CB, J, K4
        row[T_DENSE_A], row[T_DENSE_B], row[T_STATS] = int(st.dense_a), int(st.dense_b), int(st.stats)
        row[T_ABITS], row[T_BBITS] = ab, bb
        row[T_ACNT] = self.f_acnt.add(st.acnt)
        row[T_COMP] = self.f_comp.add(st.comp)
        row[T_BCNT] = self.f_bcnt.add(st.bcnt)
        bs = st.bscat if st.bscat.size else np.zeros_like(st.bcnt)
        row[T_BSCAT] = self.f_bscat.add(bs)
        assert row[T_BSCAT] == row[T_BCNT]
        row[T_RMPTR] = self.f_rmptr.add(st.rm_ptr)
        row[T_RMIDX] = self.f_rmidx.add(st.rm_idx)
        row[T_RMP] = self.f_rmp.add(st.rm_p)
        if v == "rm_stc" and not st.dense_b:
            V = cfg.rowmerge.vector
            mf = _chunk_mean(np.ceil(st.bcnt / V), bk)            # (J, CB)
            mb = _chunk_mean(st.bcnt.astype(np.float64), bk)
            mz = _chunk_mean((st.bcnt > 0).astype(np.float64), bk)
        else:
            mf = mb = mz = np.zeros(0)
        row[T_RMF] = self.f_mf.add(mf)
        self.f_mb.add(mb)
        self.f_mz.add(mz)
        row[T_DSPRE] = -1
        if v == "ds_stc" and not (st.dense_a and st.dense_b):
            row[T_DSPRE] = self.f_dspre.add(_outer_sums(st, Mh, Nh, K, wm, wn, bk, ab, bb, cfg.outer))
        opid = len(self.optab)
        self.optab.append(row)
        # ---- CTA steps ------------------------------------------------------------------------
        # CTAs are dealt to SMs from where the previous op stopped; a CTA's wave is its own index
        # over the SM count (the first S CTAs run together whichever SMs they land on). Steps are
        # issued wave by wave, k step by k step, in CTA order within a step: the CTA that loads a
        # shared tile (first CTA column for A, first row for B) precedes the CTAs that read it
        cta, j = _issue_order(G * nmb * nnb, J, self.S)
        g, r = np.divmod(cta, nmb * nnb)
        im, in_ = np.divmod(r, nnb)
        sm = (cta + self.next_sm) % self.S
        S_ = g.shape[0]
        rows = np.minimum(bm, Mh - im * bm)
        cols = np.minimum(bn, Nh - in_ * bn)
        kts = np.minimum(bk, K - j * bk)
        # A tile bytes (compressed formats)
        dense_a_bytes = np.ceil(rows * kts * ab / 8).astype(np.int64)
        rb_lo = im * bm // wm
        rb_hi = (im * bm + rows + wm - 1) // wm
        if v == "tc_dense" or st.dense_a:
            a_bytes = dense_a_bytes
        elif v == "stc_2to4":
            c = cfg.stc
            # compliance of the CTA chunk: every warp row-block and group in range compliant
            ok_rb = _chunk_all(st.comp, K, bk, c.m)                                  # (RB, J)
            cs = _prefix(~ok_rb, 0)
            comp_ok = (cs[rb_hi, j] - cs[rb_lo, j]) == 0
            kept = rows * np.ceil(kts * c.n / c.m)
            a_bytes = np.where(comp_ok, np.ceil(kept * (ab + c.metadata_bits) / 8), dense_a_bytes).astype(np.int64)
        else:
            cs = _prefix(st.rb_nnz, 0)
            nnz = cs[rb_hi, j] - cs[rb_lo, j]
            a_bytes = np.ceil((nnz * ab + rows * kts) / 8).astype(np.int64)
        dense_b_bytes = np.ceil(cols * kts * bb / 8).astype(np.int64)
        if v in ("ds_stc", "rm_stc"):
            if st.dense_b:
                bnnz = cols * kts
            else:
                cb_lo, cb_hi = in_ * bn // wn, (in_ * bn + cols + wn - 1) // wn
                cs = _prefix(st.b_nnz, 1)
                bnnz = cs[j, cb_hi] - cs[j, cb_lo]
            b_bytes = np.ceil((bnnz * bb + cols * kts) / 8).astype(np.int64)
        else:
            b_bytes = dense_b_bytes
        la = a_off & (in_ == 0) & ((g == 0) if op.b_shared else True)
        lb = b_off & (im == 0)
        sc = c_off & (j == J - 1)
        per = la.astype(np.int64) + lb + 1 + sc
        entry = self.entry(wl, op, layer)       # (may add a join) before the steps' indices
        base = self.pb.count
        off = base + _prefix(per, 0)[:-1]
        i_la, i_lb = off, off + la
        i_g = off + la + lb
        i_sc = i_g + 1
        # which load serves each step: the loader step of the same A / B tile
        ga_ = np.zeros_like(g) if op.b_shared else g
        a_key = (ga_ * nmb + im) * J + j
        b_key = (g * nnb + in_) * J + j
        a_src = np.full(S_, -1, np.int64)
        b_src = np.full(S_, -1, np.int64)
        if a_off:
            tab = np.full(int(a_key.max()) + 1, -1, np.int64)
            tab[a_key[la]] = i_la[la]
            a_src = tab[a_key]
        if b_off:
            tab = np.full(int(b_key.max()) + 1, -1, np.int64)
            tab[b_key[lb]] = i_lb[lb]
            b_src = tab[b_key]
        # slot dependency: the GEMM `stages` steps earlier on the same SM
        by_sm = np.argsort(sm, kind="stable")
        counts = np.bincount(sm, minlength=self.S)
        starts = _prefix(counts, 0)[:-1]
        pos = np.empty(S_, np.int64)
        pos[by_sm] = np.arange(S_) - np.repeat(starts, counts)
        slot = np.full(S_, -1, np.int64)
        prev_idx = by_sm                                    # steps grouped by SM, in order
        sm_sorted = sm[prev_idx]
        st_ = self.stages
        if S_ > st_:
            same = sm_sorted[st_:] == sm_sorted[:-st_]
            slot[prev_idx[st_:][same]] = i_g[prev_idx[:-st_][same]]
        early = pos < st_
        for q in np.nonzero(early)[0]:
            slot[q] = self.sm_hist[int(sm[q])][int(pos[q])]
        n_inst = int(per.sum())
        A = self.pb.claim(n_inst, Op.GEMM, 0, layer)        # at base; filled in place below
        r = lambda idx: idx - base  # noqa: E731
        a_base = self.alloc(op.b.name, op.b.nbytes * (1 if op.b_shared else G) + 4096)
        b_base = self.alloc(op.a.name, op.a.nbytes * G + 4096) if b_off else 0
        c_base = self.alloc(op.c.name, op.c.nbytes * G) if c_off else 0
        if a_off:
            jj = r(i_la[la])
            A["op"][jj] = Op.LOAD
            A["unit"][jj] = self.U_RD
            A["nbytes"][jj] = np.maximum(a_bytes[la], 1)
            A["addr"][jj] = a_base + (a_key[la] * bm * bk * ab // 8)
            A["deps"][jj, 0] = slot[la]
        if b_off:
            jj = r(i_lb[lb])
            A["op"][jj] = Op.LOAD
            A["unit"][jj] = self.U_RD
            A["nbytes"][jj] = np.maximum(b_bytes[lb], 1)
            A["addr"][jj] = b_base + (b_key[lb] * bn * bk * bb // 8)
            A["deps"][jj, 0] = slot[lb]
            A["deps"][jj, 1] = entry
        jj = r(i_g)
        A["unit"][jj] = 4 + sm
        A["m"][jj], A["n"][jj], A["k"][jj] = rows, cols, kts
        A["nbytes"][jj] = a_bytes + b_bytes
        A["deps"][jj, 0] = a_src
        A["deps"][jj, 1] = b_src
        A["deps"][jj, 2] = entry
        A["deps"][jj, 3] = slot if not (a_off or b_off) else -1
        A["aux"][jj, 0] = opid
        A["aux"][jj, 1] = im
        A["aux"][jj, 2] = in_
        A["aux"][jj, 3] = j
        if c_off:
            jj = r(i_sc[sc])
            A["op"][jj] = Op.STORE
            A["unit"][jj] = self.U_WR
            A["nbytes"][jj] = np.ceil(rows[sc] * cols[sc] * cb_bits / 8).astype(np.int64)
            A["addr"][jj] = c_base + (((g[sc] * nmb + im[sc]) * nnb + in_[sc]) * bm * bn * cb_bits // 8)
            A["deps"][jj, 0] = i_g[sc]
        # remember the last GEMMs per SM (slot chaining into the next op)
        finals = []
        for q in np.unique(sm):
            gi = i_g[sm == q]
            hist = self.sm_hist[int(q)] + [int(x) for x in gi[-self.stages:]]
            self.sm_hist[int(q)] = hist[-self.stages:]
            finals.append(int(gi[-1]))
        if c_off and sc.any():
            finals.append(int(i_sc[sc][-1]))
        self.next_sm = int((self.next_sm + G * nmb * nnb) % self.S)
        self.done[op.name] = self.join(sorted(set(finals)), layer)
        self.density_info[op.name] = {"weights": st.a_density, "activations": st.b_density}

    def run(self, wl):
        # every CTA step is an instruction (plus the tile loads of the first CTA row and column):
        # refuse a program this machine cannot hold before building any of it
        steps = 0
        for op in wl.ops():
            if isinstance(op, GemmOp):
                _, _, _, J, nmb, nnb = self._tiles(op)
                steps += int(op.count) * nmb * nnb * J * (1.0 + 1.0 / nnb + 1.0 / nmb)
        self.pb.reserve(int(steps), "workload.seq_len" if wl.phase == "prefill" else "workload.batch",
                        "model the tensor cores wave by wave with the gpu microarchitecture "
                        "(a100 / h100 presets: dense, or 2:4 weights on their sm.sparse_mma)", allocate=True)
        prog = super().run(wl)
        prog.meta["sparse"] = dict(
            optab=np.stack(self.optab) if self.optab else np.zeros((1, N_OPT), np.int64),
            acnt=self.f_acnt.array(), comp=self.f_comp.array(), bcnt=self.f_bcnt.array(),
            bscat=self.f_bscat.array(), rm_ptr=self.f_rmptr.array(), rm_idx=self.f_rmidx.array(),
            rm_p=self.f_rmp.array(), rm_mf=self.f_mf.array(), rm_mb=self.f_mb.array(), rm_mz=self.f_mz.array(),
            dspre=self.f_dspre.array())
        prog.meta["density"] = self.density_info
        return prog


@njit(cache=True)
def _outer_pack(p1, p2, CB, ab, bb, out):
    """p1 = ca @ [sc | cbq | b] (J, RB, 3 CB), p2 = a @ [b | cbq] (J, RB, 2 CB), float32 with
    exact integer values -> out (J, RB, CB, 4) int32: [sum ca*s, sum a*b,
    sum ca*(s - cbq), ab * sum a*cbq + bb * sum ca*b]."""
    J, RB = p1.shape[0], p1.shape[1]
    for j in range(J):
        for r in range(RB):
            for c in range(CB):
                cs = np.int64(np.rint(p1[j, r, c]))
                ccq = np.int64(np.rint(p1[j, r, CB + c]))
                cb_ = np.int64(np.rint(p1[j, r, 2 * CB + c]))
                ab_ = np.int64(np.rint(p2[j, r, c]))
                acq = np.int64(np.rint(p2[j, r, CB + c]))
                out[j, r, c, 0] = cs
                out[j, r, c, 1] = ab_
                out[j, r, c, 2] = cs - ccq
                out[j, r, c, 3] = ab * acq + bb * cb_


def _outer_sums(st, Mh, Nh, K, wm, wn, bk, ab, bb, o) -> np.ndarray:
    """Outer-product sums per (k chunk, row block, column block), as matrix products of the
    per-k counts: [sum ceil(a/ga)*s, sum a*b, sum ceil(a/ga)*(s - ceil(b/gb)),
    operand bits sum a*ceil(b/gb)*ab + b*ceil(a/ga)*bb] (zero where a or b is zero: a zero
    count zeroes its product). Two batched float32 products per op (left operands [ca],
    [a]; right operands side by side), packed by a small kernel."""
    from archsim.uarch.sparse_tc.structure import dense_scatter
    RB, CB, J = -(-Mh // wm), -(-Nh // wn), -(-K // bk)
    if st.dense_a:
        a = np.broadcast_to(np.minimum(wm, Mh - np.arange(RB) * wm)[:, None], (RB, K)).astype(np.float32)
    else:
        a = st.acnt.astype(np.float32)
    if st.dense_b:
        cols = np.minimum(wn, Nh - np.arange(CB) * wn)
        b = np.broadcast_to(cols[None, :], (K, CB)).astype(np.float32)
        sc = np.broadcast_to(np.array([dense_scatter(int(c), o.b_group, o.acc_banks) for c in cols],
                                      np.float32)[None, :], (K, CB))
    else:
        b = st.bcnt.astype(np.float32)
        sc = st.bscat.astype(np.float32)
    ca = np.ceil(a / np.float32(o.a_group))
    cbq = np.ceil(b / np.float32(o.b_group))
    pad = J * bk - K

    def left(x):            # (RB, K) -> (J, RB, bk), contiguous
        x = np.pad(x, ((0, 0), (0, pad))) if pad else x
        return np.ascontiguousarray(x.reshape(RB, J, bk).transpose(1, 0, 2))

    def right(*xs):         # (K, n CB) -> (J, bk, n CB)
        x = np.concatenate(xs, axis=1)
        x = np.pad(x, ((0, pad), (0, 0))) if pad else x
        return x.reshape(J, bk, x.shape[1])

    # float32 products are exact here: every sum is below 2^24 (bk * wm * wn * 16 bits)
    lca = left(ca)
    p2 = left(a) @ right(b, cbq)
    if np.array_equal(sc, cbq):          # no bank conflicts (banks >= columns of a group)
        p1 = lca @ right(cbq, b)
        p1 = np.concatenate((p1[..., :CB], p1), axis=2)
    else:
        p1 = lca @ right(sc, cbq, b)
    out = np.empty((J, RB, CB, 4), np.int32)
    _outer_pack(p1, p2, CB, ab, bb, out)
    return out


def _chunk_mean(x: np.ndarray, bk: int) -> np.ndarray:
    """(K, CB) -> (J, CB): mean over each k chunk."""
    K = x.shape[0]
    J = -(-K // bk)
    pad = np.zeros((J * bk - K, x.shape[1]), x.dtype)
    xs = np.concatenate((x, pad)).reshape(J, bk, -1).sum(1)
    kts = np.minimum(bk, K - np.arange(J) * bk)
    return xs / kts[:, None]


def _prefix(x: np.ndarray, axis: int) -> np.ndarray:
    """Running sums of ``x`` along ``axis`` with a leading zero: the sum over [a, b) is
    ``p[b] - p[a]``."""
    pad = [(0, 0)] * x.ndim
    pad[axis] = (1, 0)
    return np.pad(np.cumsum(x, axis=axis, dtype=np.int64), pad)


def _chunk_all(comp: np.ndarray, K: int, bk: int, m: int) -> np.ndarray:
    """(RB, K4) compliance flags -> (RB, J): every group overlapping the chunk compliant."""
    J = -(-K // bk)
    jj = np.arange(J)
    g0 = (jj * bk) // m
    g1 = -(-np.minimum(K, (jj + 1) * bk) // m)
    bad = _prefix(~comp.astype(bool), 1)
    return (bad[:, g1] - bad[:, g0]) == 0
