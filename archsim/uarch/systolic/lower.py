"""Lowering of a workload graph to a systolic-array Program (vectorised with numpy).

Units: ``dma_rd`` and ``dma_wr`` (in-order DMA queues to off-chip memory; every array has its own
read and write queue), ``vector``,
``ctrl`` (zero-cost joins) and one unit per array. GEMMs are cut into tiles
(:mod:`archsim.uarch.systolic.tiling`); per tile step the stream is
``[LOAD A] [LOAD B] GEMM [STORE C]`` with double-buffer slots expressed as dependencies:
the j-th load into an operand buffer waits for the compute that last read load j-2's slot.
Tile steps are spread over the arrays by outer tile (N or M blocks) and interleaved.

Where a tensor lives (:meth:`SystolicLowerer.tier`): in the arrays' tile buffers (an
activation within their ``activation_budget``: no transfer), in the shared memory (an
activation within its budget: its tiles move as SHARED instructions through the same DMA
queues, timed by the shared memory's own pipe), or off-chip (weights, KV cache, spilled
activations: LOAD / STORE through the memory model).
"""
from __future__ import annotations

import numpy as np

from archsim.config.types import PRECISION_BITS
from archsim.isa import Op, ProgramBuilder
from archsim.uarch.systolic.folds import dataflow_code
from archsim.uarch.systolic.tiling import choose_tiles
from archsim.workload.graph import GemmOp, VectorOp

BUF_IFMAP, BUF_FILTER, BUF_OFMAP = 0, 1, 2
LOCAL, SHARED, OFFCHIP = 0, 1, 2        # where a tensor lives (SystolicLowerer.tier)
FLAG_ACCUMULATE = 1
FLAG_DRAIN = 2          # the last tile of an op on its array: pays the pipeline drain
VEC_CHUNK_ELEMENTS = 1 << 16


class _Alloc:
    """Bump allocator of off-chip addresses per tensor (tile-major layouts)."""

    def __init__(self):
        self.next = 0
        self.base: dict[str, int] = {}

    def __call__(self, name: str, nbytes: int) -> int:
        if name not in self.base:
            self.base[name] = self.next
            self.next += (int(nbytes) + 4095) // 4096 * 4096
        return self.base[name]


def _bits(dtype: str) -> int:
    return PRECISION_BITS[dtype]


def unit_names(n_arrays: int) -> list[str]:
    """dma_rd, dma_wr, vector, ctrl, array0..array{P-1}, dma_rd1..dma_rd{P-1}, then
    dma_wr1..dma_wr{P-1}."""
    return (["dma_rd", "dma_wr", "vector", "ctrl"] + [f"array{i}" for i in range(n_arrays)]
            + [f"dma_rd{q}" for q in range(1, n_arrays)] + [f"dma_wr{q}" for q in range(1, n_arrays)])


class SystolicLowerer:
    shared_budget = 0.0        # bytes of activations the shared memory holds between ops
    shared_bpc = 0.0           # its bandwidth in bytes per cycle (0: no shared memory)

    def __init__(self, cfg, memory_bytes_per_cycle: float, memory_latency: float = 0.0):
        self.cfg = cfg
        self.R, self.C = cfg.array.rows, cfg.array.cols
        self.df = dataflow_code(cfg.array.dataflow)
        self.n_arrays = cfg.array.count
        sh = cfg.sram.shared
        self.units = unit_names(self.n_arrays)
        if sh is not None:
            self.shared_budget = sh.activation_budget * sh.size
            self.shared_bpc = sh.bandwidth / cfg.clock
        self.U_RD, self.U_WR, self.U_VEC, self.U_CTRL = 0, 1, 2, 3
        # each array has its own in-order DMA read queue (array 0 shares dma_rd with the vector unit)
        self.rd_unit = np.array([self.U_RD] + [4 + self.n_arrays + q - 1 for q in range(1, self.n_arrays)],
                                np.int32)
        # ... and its own write queue (array 0 shares dma_wr with the vector unit): a store of one
        # array never waits in line behind another array's stores that are not ready yet
        self.wr_unit = np.array([self.U_WR] + [2 + 2 * self.n_arrays + q for q in range(1, self.n_arrays)],
                                np.int32)
        self.pb = ProgramBuilder(self.units)
        self.alloc = _Alloc()
        s = cfg.sram
        if s.is_unified:
            self.buf = dict(ifmap=0.0, filt=0.0, ofmap=0.0, unified=float(s.unified))
            self.act_budget = s.activation_budget * s.unified * self.n_arrays
        else:
            self.buf = dict(ifmap=float(s.ifmap), filt=float(s.filter), ofmap=float(s.ofmap), unified=0.0)
            self.act_budget = s.activation_budget * s.ifmap * self.n_arrays
        self.acc_bytes = float(s.accumulator_bytes)
        self.bpc = memory_bytes_per_cycle
        self.mem_latency = memory_latency      # cycles
        self.done: dict[str, int] = {}           # op name -> instruction that completes it
        self.last_gemm = [[-1, -1] for _ in range(self.n_arrays)]
        self.last_vec = [-1, -1]
        self.resident: set[str] = set()
        self.tilings: dict[str, dict] = {}

    # -- helpers --------------------------------------------------------------------------
    def tier(self, t) -> int:
        """Where tensor ``t`` lives: LOCAL (the arrays' tile buffers), SHARED (the shared
        on-chip memory) or OFFCHIP. Each activation is checked against a budget on its own."""
        if t.offchip:
            return OFFCHIP
        if t.kind == "onchip" or t.name in self.resident or t.nbytes <= self.act_budget:
            return LOCAL
        return SHARED if t.nbytes <= self.shared_budget else OFFCHIP

    def spilled(self, t) -> bool:
        return self.tier(t) == OFFCHIP

    def join(self, idx: list[int], layer: int) -> int:
        """One instruction that completes after all of ``idx`` (a tree of SYNCs)."""
        idx = [i for i in idx if i >= 0]
        if not idx:
            return -1
        while len(idx) > 1 or not idx:
            groups = [idx[i:i + 4] for i in range(0, len(idx), 4)]
            deps = np.full((len(groups), 4), -1, np.int64)
            for r, g in enumerate(groups):
                deps[r, : len(g)] = g
            idx = list(self.pb.add(Op.SYNC, self.U_CTRL, layer, deps=deps))
        return int(idx[0])

    def entry(self, wl, op, layer: int) -> int:
        preds = [self.done[p] for p in wl.predecessors(op.name) if p in self.done]
        return self.join(preds, layer) if len(preds) != 1 else preds[0]

    # -- GEMM -------------------------------------------------------------------------------
    def gemm(self, wl, op: GemmOp, layer: int) -> None:
        R, C, df, P = self.R, self.C, self.df, self.n_arrays
        a_at, b_at, c_at = self.tier(op.a), self.tier(op.b), self.tier(op.c)
        a_off, b_off, c_off = a_at == OFFCHIP, b_at == OFFCHIP, c_at == OFFCHIP
        # operands whose tiles move into / out of the tile buffers (from off-chip or shared)
        a_ld, b_ld, c_ld = a_at != LOCAL, b_at != LOCAL, c_at != LOCAL
        # bytes per element include shared-scale overheads (group quantisation, MX formats)
        ab, bb = op.a.bytes_per_element, op.b.bytes_per_element
        cb = op.c.bytes_per_element
        M, N, K, G = int(op.M), int(op.N), int(op.K), int(op.count)
        t = choose_tiles(M, N, K, G, df, R, C, P, ab, bb, self.acc_bytes, self.buf["ifmap"],
                         self.buf["filt"], self.buf["ofmap"], self.buf["unified"], a_off, b_off,
                         op.b_shared, self.bpc, bool(self.cfg.array.preload_overlap),
                         a_at == SHARED, b_at == SHARED, self.shared_bpc, self.mem_latency, c_off, cb,
                         c_at == SHARED, float(self.cfg.tiling.time_slack))
        self.tilings[op.name] = dict(tm=t.tm, tn=t.tn, tk=t.tk, order=t.order, panel=t.panel,
                                     traffic=int(round(t.est_traffic)))
        nm, nn, nk = -(-M // t.tm), -(-N // t.tn), -(-K // t.tk)
        n_out, n_mid = (nn, nm) if t.order == "nm" else (nm, nn)
        g, o, mi, kk = (x.ravel() for x in np.meshgrid(np.arange(G), np.arange(n_out), np.arange(n_mid),
                                                       np.arange(nk), indexing="ij"))
        im, in_ = (mi, o) if t.order == "nm" else (o, mi)
        S = g.shape[0]
        arr = ((g * n_out + o) % P).astype(np.int64)
        if op.attrs.get("array") is not None:       # placement hint (expert parallelism)
            arr = np.full_like(arr, int(op.attrs["array"]) % P)
        # per-array sequences (stable), local position within the array
        by_arr = np.argsort(arr, kind="stable")
        counts = np.bincount(arr, minlength=P)
        seg_start = np.concatenate(([0], np.cumsum(counts)[:-1]))
        local = np.empty(S, np.int64)
        local[by_arr] = np.arange(S) - np.repeat(seg_start, counts)
        # final program order: interleave arrays step by step
        order = np.lexsort((arr, local))
        g, o, im, in_, kk, arr, local = (x[order] for x in (g, o, im, in_, kk, arr, local))
        tm_s = np.minimum(t.tm, M - im * t.tm)
        tn_s = np.minimum(t.tn, N - in_ * t.tn)
        tk_s = np.minimum(t.tk, K - kk * t.tk)
        a_key = (g * nm + im) * nk + kk
        gb = np.zeros_like(g) if op.b_shared else g
        b_key = (gb * nk + kk) * nn + in_
        # per-array "changed since previous step of the same array"
        pa = np.argsort(arr, kind="stable")           # final-order positions grouped by array
        first_in_arr = np.zeros(S, bool)
        first_in_arr[pa[np.concatenate(([0], np.cumsum(counts)[:-1]))[counts > 0]]] = True
        prev_a = np.full(S, -1, np.int64)
        prev_b = np.full(S, -1, np.int64)
        prev_a[pa[1:]] = a_key[pa[:-1]]
        prev_b[pa[1:]] = b_key[pa[:-1]]
        la = a_ld & (first_in_arr | (a_key != prev_a))
        lb = b_ld & (first_in_arr | (b_key != prev_b))
        # a resident panel of the outer operand is loaded on the first middle-loop pass only
        # (in_ / im are in program order; mi is still in generation order)
        pan_a = t.panel and t.order == "mn"
        pan_b = t.panel and t.order == "nm"
        if pan_a:
            la &= in_ == 0
        if pan_b:
            lb &= im == 0
        sc = c_ld & (kk == nk - 1)
        per = la.astype(np.int64) + lb + 1 + sc
        base = self.pb.count
        off = base + np.concatenate(([0], np.cumsum(per)[:-1]))
        i_la = off
        i_lb = off + la
        i_g = off + la + lb
        i_sc = i_g + 1
        entry = self.entry(wl, op, layer)
        b_entry = -1
        if not op.b.offchip:
            bp = [self.done[p] for p in wl.predecessors(op.name) if p in self.done]
            b_entry = entry if bp else -1
        # in per-array order: current load serving each step, slot-free dependencies
        BIG = np.int64(1) << 40
        def running_latest(flag, idx):
            v = np.where(flag[pa], idx[pa], -1) + arr[pa] * BIG
            v = np.maximum.accumulate(v) - arr[pa] * BIG
            out = np.empty(S, np.int64)
            out[pa] = v
            return out
        cur_a = running_latest(la, i_la) if a_ld else np.full(S, -1, np.int64)
        cur_b = running_latest(lb, i_lb) if b_ld else np.full(S, -1, np.int64)
        gpos_prev = np.full(S, -1, np.int64)          # GEMM index of the previous step in the array
        gpos_prev[pa[1:]] = i_g[pa[:-1]]
        gpos_prev[first_in_arr] = -1

        def slot_deps(flag):
            """For each load (in final order): the GEMM that frees the slot load j-2 used."""
            dep = np.full(S, -1, np.int64)
            # positions (per-array order) of loads
            pos = pa[flag[pa]]
            if pos.size == 0:
                return dep
            a_of = arr[pos]
            # the previous load in the same array
            prev = np.full(pos.size, -1, np.int64)
            same = np.concatenate(([False], a_of[1:] == a_of[:-1]))
            prev[1:][same[1:]] = pos[:-1][same[1:]]
            has = prev >= 0
            dep[pos[has]] = gpos_prev[prev[has]]
            # first two loads of an array: the previous op's last GEMMs on that array
            firsts = ~has
            second = np.zeros(pos.size, bool)
            second[1:] = same[1:] & firsts[:-1]
            for q in np.nonzero(firsts)[0]:
                dep[pos[q]] = self.last_gemm[int(a_of[q])][0]
            for q in np.nonzero(second)[0]:
                dep[pos[q]] = self.last_gemm[int(a_of[q])][1]
            return dep

        def panel_slots(flag, dep):
            """Slot dependencies of panel loads: panels are double-buffered, so the panel of an
            array's q-th outer iteration overwrites that of iteration q-2 and waits for its
            last GEMM; the second panel (q = 1) waits for what its first load waits for (the
            previous op's use of the half it takes), the first keeps the tile rule."""
            u = g * n_out + o                          # outer iteration of each step
            last_of_u = np.full(G * n_out, -1, np.int64)
            np.maximum.at(last_of_u, u, i_g)           # its last GEMM (one array runs it)
            dep = dep.copy()
            for q_arr in range(P):
                on = arr == q_arr
                us = np.unique(u[on])                  # this array's outer iterations, in order
                if us.size < 2:
                    continue
                pos = np.nonzero(on & flag)[0]
                q = np.searchsorted(us, u[pos])
                late = q >= 2
                dep[pos[late]] = last_of_u[us[q[late] - 2]]
                second = pos[q == 1]
                if second.size:
                    dep[second] = dep[second.min()]
            return dep

        slot_a = slot_deps(la) if a_ld else None
        slot_b = slot_deps(lb) if b_ld else None
        if pan_a and a_ld:
            slot_a = panel_slots(la, slot_a)
        if pan_b and b_ld:
            slot_b = panel_slots(lb, slot_b)
        # output double buffer: first k step of C tile j waits for the store of C tile j-2
        cslot = np.full(S, -1, np.int64)
        if c_ld:
            spos = pa[sc[pa]]
            s_arr = arr[spos]
            first_k = pa[(kk[pa] == 0)]
            # the j-th C tile of an array begins at its j-th first_k step; store j-2 frees its slot
            for r in range(P):
                st = spos[s_arr == r]
                fk = first_k[arr[first_k] == r]
                if len(fk) > 2:
                    cslot[fk[2:]] = i_sc[st[: len(fk) - 2]]
        unit_arr = 4 + arr
        n_inst = int(per.sum())
        A = dict(
            op=np.full(n_inst, Op.GEMM, np.uint8), unit=np.zeros(n_inst, np.int32),
            layer=np.full(n_inst, layer, np.int32), m=np.zeros(n_inst, np.int64),
            n=np.zeros(n_inst, np.int64), k=np.zeros(n_inst, np.int64),
            nbytes=np.zeros(n_inst, np.int64), addr=np.zeros(n_inst, np.int64),
            deps=np.full((n_inst, 4), -1, np.int64), aux=np.zeros((n_inst, 4), np.int64))
        r = lambda idx: idx - base  # noqa: E731
        a_base = self.alloc(op.a.name, op.a.nbytes * G) if a_off else 0
        b_base = self.alloc(op.b.name, op.b.nbytes * (1 if op.b_shared else G))
        c_base = self.alloc(op.c.name, op.c.nbytes * G) if c_off else 0
        def loads(idx, flag, rows, cols, bpe, base, key, tile_elems, slot, dep, buf, at):
            """Fill the load rows of one operand: tile bytes, tile-major address, slot deps; a
            LOAD from off-chip memory, or a SHARED read (aux[1] = 0) from the shared memory."""
            j = r(idx[flag])
            A["unit"][j] = self.rd_unit[arr[flag]]
            if at == SHARED:
                A["op"][j] = Op.SHARED
            else:
                A["op"][j] = Op.LOAD
                A["addr"][j] = base + (key[flag] * tile_elems * bpe).astype(np.int64)
            A["nbytes"][j] = np.ceil(rows[flag] * cols[flag] * bpe).astype(np.int64)
            A["deps"][j, 0] = slot[flag]
            A["deps"][j, 1] = dep
            A["aux"][j, 0] = buf

        if a_ld:
            loads(i_la, la, tm_s, tk_s, ab, a_base, a_key, t.tm * t.tk, slot_a, entry, BUF_IFMAP, a_at)
        if b_ld:
            # B is stored as it streams: an N tile's K tiles one after another (the order of the
            # k loop), so consecutive loads are consecutive addresses, as for A
            b_addr = (gb * nn + in_) * nk + kk
            loads(i_lb, lb, tk_s, tn_s, bb, b_base, b_addr, t.tk * t.tn, slot_b, b_entry, BUF_FILTER, b_at)
        j = r(i_g)
        A["unit"][j] = unit_arr
        A["m"][j], A["n"][j], A["k"][j] = tm_s, tn_s, tk_s
        A["deps"][j, 0] = cur_a
        A["deps"][j, 1] = cur_b
        A["deps"][j, 2] = cslot
        A["deps"][j, 3] = entry
        A["aux"][j, 0] = int(_bits(op.a.dtype))
        A["aux"][j, 1] = int(_bits(op.b.dtype))
        A["aux"][j, 2] = np.where(kk > 0, FLAG_ACCUMULATE, 0)
        gemms_of = [i_g[arr == q] for q in range(P)]          # each array's GEMM tiles, in order
        for gi in gemms_of:
            if gi.size:
                A["aux"][r(gi[-1]), 2] |= FLAG_DRAIN
        A["aux"][j, 3] = int(self.acc_bytes)
        if c_ld:
            j = r(i_sc[sc])
            A["unit"][j] = self.wr_unit[arr[sc]]
            if c_off:
                A["op"][j] = Op.STORE
                A["addr"][j] = c_base + (((g[sc] * nm + im[sc]) * nn + in_[sc]) * t.tm * t.tn * cb).astype(np.int64)
            else:                                      # into the shared memory (aux[1] = 1: write)
                A["op"][j] = Op.SHARED
                A["aux"][j, 1] = 1
            A["nbytes"][j] = np.ceil(tm_s[sc] * tn_s[sc] * cb).astype(np.int64)
            A["deps"][j, 0] = i_g[sc]
            A["aux"][j, 0] = BUF_OFMAP
        self.pb.add_arrays(A)
        # remember the last two GEMMs per array (slot chaining into the next op)
        for q, gi in enumerate(gemms_of):
            if gi.size:
                self.last_gemm[q] = [int(gi[-2]) if gi.size > 1 else int(gi[-1]), int(gi[-1])]
        finals = [int(i_sc[sc][-1])] if c_ld and sc.any() else []
        for q, gi in enumerate(gemms_of):
            if gi.size:
                finals.append(int(gi[-1]))
            if c_ld:
                st = i_sc[sc & (arr == q)]
                if st.size:
                    finals.append(int(st[-1]))
        self.done[op.name] = self.join(sorted(set(finals)), layer)

    # -- vector ops -------------------------------------------------------------------------
    def vector(self, wl, op: VectorOp, layer: int) -> None:
        rows, cols = int(op.rows), int(op.cols)
        rpc = max(1, min(rows, VEC_CHUNK_ELEMENTS // max(1, cols)))
        nch = -(-rows // rpc)
        ch_rows = np.full(nch, rpc, np.int64)
        ch_rows[-1] = rows - rpc * (nch - 1)
        ins = [t for t in op.inputs if self.tier(t) != LOCAL]
        outs = [t for t in op.outputs if self.tier(t) != LOCAL]
        per = len(ins) + 1 + len(outs)
        n_inst = per * nch
        base = self.pb.count
        entry = self.entry(wl, op, layer)
        A = dict(
            op=np.full(n_inst, Op.VECTOR, np.uint8), unit=np.full(n_inst, self.U_VEC, np.int32),
            layer=np.full(n_inst, layer, np.int32), m=np.zeros(n_inst, np.int64),
            n=np.zeros(n_inst, np.int64), k=np.zeros(n_inst, np.int64),
            nbytes=np.zeros(n_inst, np.int64), addr=np.zeros(n_inst, np.int64),
            deps=np.full((n_inst, 4), -1, np.int64), aux=np.zeros((n_inst, 4), np.int64))
        c = np.arange(nch)
        vec_idx = base + c * per + len(ins)
        vec_prev2 = np.full(nch, -1, np.int64)
        vec_prev2[2:] = vec_idx[:-2]
        vec_prev2[:2] = self.last_vec[: min(2, nch)] if nch >= 2 else self.last_vec[:1]
        def place(j, tns, write):
            """A LOAD / STORE of ``tns`` off-chip, or a SHARED transfer (aux[1] = 1: write)."""
            A["unit"][j] = self.U_WR if write else self.U_RD
            if self.tier(tns) == SHARED:
                A["op"][j] = Op.SHARED
                A["aux"][j, 1] = int(write)
                return 0
            A["op"][j] = Op.STORE if write else Op.LOAD
            return self.alloc(tns.name, tns.nbytes)

        for q, tns in enumerate(ins):
            j = c * per + q
            b0 = place(j, tns, False)
            # each operand moves its own bytes, spread over the chunks (shapes may differ)
            A["nbytes"][j] = np.ceil(tns.nbytes * ch_rows / rows).astype(np.int64)
            A["addr"][j] = b0 + (tns.nbytes * c * rpc // rows).astype(np.int64)
            A["deps"][j, 0] = vec_prev2
            A["deps"][j, 1] = entry if not tns.offchip else -1
            A["aux"][j, 0] = BUF_OFMAP
        j = c * per + len(ins)
        A["m"][j] = ch_rows * cols
        A["n"][j] = ch_rows
        A["k"][j] = cols
        A["aux"][j, 0] = int(op.kind)
        A["deps"][j, 0] = entry
        for q in range(len(ins)):
            A["deps"][j, 1 + min(q, 2)] = base + c * per + q
        for q, tns in enumerate(outs):
            jj = c * per + len(ins) + 1 + q
            b0 = place(jj, tns, True)
            A["nbytes"][jj] = np.ceil(tns.nbytes * ch_rows / rows).astype(np.int64)
            A["addr"][jj] = b0 + (tns.nbytes * c * rpc // rows).astype(np.int64)
            A["deps"][jj, 0] = vec_idx
            A["aux"][jj, 0] = BUF_OFMAP
        self.pb.add_arrays(A)
        self.last_vec = [int(vec_idx[-2]) if nch > 1 else int(vec_idx[-1]), int(vec_idx[-1])]
        finals = [int(vec_idx[-1])] + [int(base + (nch - 1) * per + len(ins) + 1 + q) for q in range(len(outs))]
        self.done[op.name] = self.join(finals, layer) if len(finals) > 1 else finals[0]

    def run(self, wl):
        rep = wl.group_repeat()
        for g in wl.groups:
            self.pb.layer(g.name, g.repeat)
        for op in wl.ops():
            if op.attrs.get("fused"):
                # fused (FlashAttention-style) attention keeps scores/probabilities on chip
                if isinstance(op, GemmOp):
                    self.resident.add(op.c.name)
                else:
                    self.resident.update(t.name for t in op.outputs)
            layer = self.pb.layer(op.layer, rep[op.layer])
            self.pb.tag(op.name)
            if isinstance(op, GemmOp):
                self.gemm(wl, op, layer)
            else:
                self.vector(wl, op, layer)
        meta = {"tilings": self.tilings}
        if self.shared_bpc > 0:
            meta["shared_bytes_per_cycle"] = self.shared_bpc
        return self.pb.build(meta=meta)
