"""Decode attention lowered to PIM command streams (AttAcc-style, head-wise partitioning).

Each (request, head) is one *task*: QK^T as a GEMV over the head's K cache, softmax, SV as a
GEMV over its V cache. Tasks are dealt to the channels of a stack 16 at a time (one per
channel, an *iteration*); within a channel two consecutive iterations are software
pipelined (the second head's query broadcast and score overlap the first head's softmax,
the first head's context overlaps the second's softmax), with barriers between MAC chunks,
as in AttAcc's command generator (scale-snu/attacc_simulator, trace_gen/gen_trace_attacc_*).

Per placement the commands are:

- bank:      WRGB (query into the per-bank GEMV buffers), MAC_AB (all banks of the channel,
             one 32 B column each, adder-tree mode for QK^T, MAC mode for SV), MVSB (scores /
             outputs to the softmax buffer, per bank group / bank), SFM, MVGB (probabilities
             into the GEMV buffers);
- bankgroup: the same with MAC_SB (the same bank in every bank group);
- buffer_die: MAC_PB (one bank per pseudo-channel pair; units on the buffer die read over the
             TSVs), with one MVSB per output chunk.

Addresses follow the AttAcc HBM3-PIM mapping (MSB..LSB: channel, pseudo-channel, rank, bank
group, bank, row, column, 32 B offset); heads are ``max_seq_len * d_head / banks`` bytes
apart, V is 8 MiB above K.
"""
from __future__ import annotations

import math

import numpy as np

from archsim.uarch.dram_pim import engine as E


class _Geo:
    def __init__(self, dev):
        self.P, self.R, self.G, self.B = dev.pch, dev.ranks, dev.bankgroups, dev.banks
        self.cpr = dev.cols_per_row
        self.tx = dev.tx_bytes
        self.rows = dev.rows
        self.GS_row = self.cpr * self.tx
        self.GS_ba = self.rows * self.GS_row
        self.GS_bg = self.B * self.GS_ba
        self.GS_rank = self.G * self.GS_bg
        self.GS_pch = self.R * self.GS_rank

    def decode(self, addr):
        """addr (int64 array) -> (flat bank index in the channel, row)."""
        a = addr // self.tx
        a //= self.cpr
        row = a % self.rows
        a //= self.rows
        b = a % self.B
        a //= self.B
        g = a % self.G
        a //= self.G
        r = a % self.R
        a //= self.R
        p = a % self.P
        flat = ((p * self.R + r) * self.G + g) * self.B + b
        return flat.astype(np.int64), row.astype(np.int64)


class _Cmds:
    """Global trace under construction: parallel lists of numpy blocks."""

    def __init__(self):
        self.ch, self.kind, self.sub, self.addr = [], [], [], []

    def add(self, ch, kind, sub, addr):
        ch = np.asarray(ch, np.int64).ravel()
        if ch.size == 0:
            return
        self.ch.append(ch)
        self.kind.append(np.full(ch.size, kind, np.int64))
        self.sub.append(np.full(ch.size, sub, np.int64))
        self.addr.append(np.broadcast_to(np.asarray(addr, np.int64).ravel(), ch.shape).copy()
                         if np.ndim(addr) else np.full(ch.size, addr, np.int64))

    def extend(self, blk):
        if blk is None or blk[0].size == 0:
            return
        self.ch.append(blk[0]); self.kind.append(blk[1]); self.sub.append(blk[2]); self.addr.append(blk[3])

    def arrays(self):
        if not self.ch:
            z = np.zeros(0, np.int64)
            return z, z, z, z
        return (np.concatenate(self.ch), np.concatenate(self.kind), np.concatenate(self.sub),
                np.concatenate(self.addr))


def _blk(ch, kind, sub, addr):
    ch = np.asarray(ch, np.int64).ravel()
    addr = np.asarray(addr, np.int64).ravel()
    if addr.size == 1 and ch.size != 1:
        addr = np.full(ch.size, addr[0], np.int64)
    return (ch, np.full(ch.size, kind, np.int64), np.full(ch.size, sub, np.int64), addr)


def _slice(blk, lo, hi):
    return tuple(x[lo:hi] for x in blk)


class _Task:
    """Command lists of one iteration (up to one head per channel) for one placement."""

    def __init__(self, g: _Geo, placement, L, dh, n_mac, key, val, valid, n_elem=None, group=1):
        # n_mac: elements one MAC command feeds a unit (one column burst: the unit consumes the
        # whole 32 B column it reads, e.g. 32 INT8 values on 16 FP16-wide lanes split in two);
        # n_elem: elements per column burst (data movement of the probabilities)
        n_elem = n_elem or n_mac
        P, R, G, B = g.P, g.R, g.G, g.B
        lch = np.arange(valid, dtype=np.int64)
        self.valid = valid
        PRG = P * R * G
        if placement == "bank":
            kk = math.ceil(dh / B / n_mac)
            n_par = PRG
            n_ctx = math.ceil(dh / (B * n_mac))
            mac_kind = E.K_MAC_AB
        elif placement == "bankgroup":
            kk = math.ceil(dh / n_mac)
            n_par = PRG
            n_ctx = math.ceil(dh / n_mac)
            mac_kind = E.K_MAC_SB
        else:
            kk = math.ceil(dh / n_mac)
            n_par = P
            n_ctx = math.ceil(dh / n_mac)
            mac_kind = E.K_MAC_PB
        self.n_score = math.ceil(L / n_par)          # output rows (n_idx) of QK^T per unit set
        self.kk = kk
        self.n_ctx = n_ctx
        self.chunk_len = math.ceil(L / n_par / 16)   # MAC chunks of 16 n_idx between barriers
        # --- WRGB (query broadcast) ---
        if placement == "bank":
            ba, col = np.meshgrid(np.arange(B), np.arange(kk), indexing="ij")
            a = key + ba.ravel()[:, None] * g.GS_ba + col.ravel()[:, None]
        else:
            a = key + np.arange(kk)[:, None]
        a = np.broadcast_to(a, (a.shape[0], valid))
        self.wrgb = _blk(np.broadcast_to(lch, a.shape), E.K_DATA, E.D_WRGB, a)
        # --- score MACs: [n_score][kk][valid] ---
        idx = np.arange(self.n_score)[:, None] * kk + np.arange(kk)[None, :]
        sa = key + self._mac_offsets(g, placement, idx)
        self.score_mac = np.broadcast_to(sa[:, :, None], (self.n_score, kk, valid))
        self.mac_kind = mac_kind
        # --- score MVSB groups (one group per 16 n_idx) ---
        if placement == "buffer_die":
            mv = np.full((1, valid), key, np.int64)
        else:
            bg_, rk = np.meshgrid(np.arange(G), np.arange(R), indexing="ij")
            mv = key + (rk.ravel() * g.GS_rank + bg_.ravel() * g.GS_bg)[:, None] + np.zeros((1, valid), np.int64)
        self.score_mvsb = _blk(np.broadcast_to(lch, mv.shape), E.K_DATA, E.D_MVSB, mv)
        self.n_score_mvsb = self.chunk_len
        # --- SFM ---
        self.sfm = _blk(lch, E.K_DATA, E.D_SFM, np.zeros(valid, np.int64))
        # --- MVGB (probabilities into the GEMV buffers) ---
        if placement == "buffer_die":
            ncol = math.ceil(L / (P * n_elem))
            a = np.broadcast_to((val + np.arange(ncol))[:, None], (ncol, valid))
        else:
            ncol = math.ceil(L / (PRG * n_elem))
            rk, bg_, col = np.meshgrid(np.arange(R), np.arange(G), np.arange(ncol), indexing="ij")
            a = (val + rk.ravel() * g.GS_rank + bg_.ravel() * g.GS_bg + col.ravel())[:, None]
            a = np.broadcast_to(a, (a.shape[0], valid))
        self.mvgb = _blk(np.broadcast_to(lch, a.shape), E.K_DATA, E.D_MVGB, a)
        # --- context MACs: [n_ctx][n_score][valid] ---
        idx = np.arange(n_ctx)[:, None] * self.n_score + np.arange(self.n_score)[None, :]
        ca = val + self._mac_offsets(g, placement, idx)
        self.ctx_mac = np.broadcast_to(ca[:, :, None], (n_ctx, self.n_score, valid))
        # --- context MVSB (after each n_ctx step) ---
        if placement == "bank":
            ba, rk = np.meshgrid(np.arange(B), np.arange(R), indexing="ij")
            mv = (val + rk.ravel() * g.GS_rank + ba.ravel() * g.GS_ba)[:, None] + np.zeros((1, valid), np.int64)
        elif placement == "bankgroup":
            mv = (val + np.arange(R) * g.GS_rank)[:, None] + np.zeros((1, valid), np.int64)
        else:
            mv = np.full((1, valid), val, np.int64)
        self.ctx_mvsb = _blk(np.broadcast_to(lch, mv.shape), E.K_DATA, E.D_MVSB, mv)
        self.lch = lch
        if group > 1:
            # grouped-query attention: the group's query heads share this K/V read; every
            # MAC command's column feeds all of them (the unit's time per command grows, see
            # attention_cycles), while each query head has its own query broadcast, score /
            # output moves, softmax and probability moves
            rep = lambda blk: tuple(np.tile(x, group) for x in blk)
            self.wrgb, self.score_mvsb, self.sfm = rep(self.wrgb), rep(self.score_mvsb), rep(self.sfm)
            self.mvgb, self.ctx_mvsb = rep(self.mvgb), rep(self.ctx_mvsb)

    @staticmethod
    def _mac_offsets(g, placement, idx):
        tx = g.tx
        if placement == "bank":
            return idx * tx
        if placement == "bankgroup":
            col = idx % g.cpr
            nc = idx // g.cpr
            return (nc % g.B) * g.GS_ba + (nc // g.B) * g.GS_row + col * tx
        RG = g.R * g.G
        bgi = idx % RG
        nbg = idx // RG
        bank = nbg % g.B
        nbk = nbg // g.B
        return bgi * g.GS_bg + bank * g.GS_ba + (nbk // g.cpr) * g.GS_row + (nbk % g.cpr) * tx

    def score_mac_blk(self, lo, hi):
        a = self.score_mac[lo:hi]
        ch = np.broadcast_to(self.lch, a.shape)
        return _blk(ch, self.mac_kind, 0, a)

    def ctx_mac_blk(self, n):
        a = self.ctx_mac[n]
        return _blk(np.broadcast_to(self.lch, a.shape), self.mac_kind, 0, a)

    def first_mac(self):
        return _blk(self.lch, self.mac_kind, 0, self.score_mac[0, 0])


def build_trace(dev, placement, L_list, dh, dbyte, n_channels, *, max_seq_len=4096, reference=False,
                group=1):
    """Global command trace (ch, kind, sub, addr) of the tasks in ``L_list`` (one sequence
    length per task, dealt to channels ``n_channels`` at a time). A task is one (request, KV
    head); ``group`` query heads share its K/V (grouped-query attention)."""
    g = _Geo(dev)
    n_elem = dev.tx_bytes // dbyte
    # a MAC command reads one column burst and the unit consumes all of it (the SIMD width
    # sets how long the unit takes per burst, see dram_adapter.resolve, not how many elements
    # a command feeds): INT8 feeds 32 values per 32 B command, FP16 16.
    n_mac = n_elem
    n_tasks = len(L_list)
    num_itr = math.ceil(n_tasks / n_channels)
    partition = math.ceil(max_seq_len * dh / (g.P * g.R * g.G * g.B))
    v_offset = 1 << 23
    tasks = []
    for it in range(num_itr):
        lo = it * n_channels
        hi = min(n_tasks, lo + n_channels)
        valid = hi - lo
        # one sequence length per iteration: the longest of its tasks (units run in lockstep)
        L = int(max(L_list[lo:hi]))
        key = it * partition
        tasks.append(_Task(g, placement, L, dh, n_mac, key, key + v_offset, valid, n_elem, group))
    barrier = _blk(np.arange(n_channels), E.K_BARRIER, 0, np.zeros(n_channels, np.int64))
    out = _Cmds()

    def emit_score_chunks(A, j):
        return A.score_mac_blk(j * 16, min((j + 1) * 16, A.n_score))

    def score_mvsb(A):
        return A.score_mvsb

    for i in range(0, num_itr - 1, 2):
        A, Bh = tasks[i], tasks[i + 1]
        # Head A: score (Head B's query broadcast interleaved)
        out.extend(A.wrgb)
        if i == 0 and reference:
            out.extend(A.first_mac())
        out.extend(barrier)
        length = A.chunk_len
        stride = int(Bh.wrgb[0].size / length)
        for j in range(length + 1):
            if j != length:
                out.extend(emit_score_chunks(A, j))
            if j != 0:
                out.extend(score_mvsb(A))
            if j != length:
                out.extend(_slice(Bh.wrgb, j * stride, (j + 1) * stride))
                out.extend(barrier)
        # Head A: softmax (+ its MVGB in the second half), Head B: score
        length = Bh.chunk_len
        half = math.ceil(length / 2)
        stride = int(A.mvgb[0].size / half)
        for j in range(length + 1):
            if j != length:
                out.extend(emit_score_chunks(Bh, j))
            if j != 0:
                out.extend(score_mvsb(Bh))
            if j == 0:
                out.extend(A.sfm)
            if j != length:
                if j >= length // 2:
                    s = (j - length // 2) * stride
                    out.extend(_slice(A.mvgb, s, s + stride))
                out.extend(barrier)
        # Head A: context, Head B: softmax (+ MVGB)
        length = A.n_ctx
        half = math.ceil(length / 2)
        stride = int(Bh.mvgb[0].size / half)
        for j in range(length + 1):
            if j != length:
                out.extend(A.ctx_mac_blk(j))
            if j != 0:
                out.extend(A.ctx_mvsb)
            if j == 0:
                out.extend(Bh.sfm)
            if j != length:
                if j >= length // 2:
                    s = (j - length // 2) * stride
                    out.extend(_slice(Bh.mvgb, s, s + stride))
                out.extend(barrier)
        # Head B: context (the reference generator issues head A's context here again)
        C = A if reference else Bh
        length = C.n_ctx
        for j in range(length + 1):
            if j != length:
                out.extend(C.ctx_mac_blk(j))
            if j != 0:
                out.extend(C.ctx_mvsb)
            if j != length:
                out.extend(barrier)
    if num_itr % 2:
        A = tasks[num_itr - 1]
        out.extend(A.wrgb)
        out.extend(barrier)
        length = A.chunk_len
        for j in range(length + 1):
            if j != length:
                out.extend(emit_score_chunks(A, j))
            if j != 0:
                out.extend(score_mvsb(A))
            if j != length:
                out.extend(barrier)
            if reference:
                # the reference repeats the softmax block once per chunk
                out.extend(A.sfm); out.extend(A.mvgb); out.extend(barrier)
        if not reference:
            out.extend(A.sfm); out.extend(A.mvgb); out.extend(barrier)
        length = A.n_ctx
        for j in range(length + 1):
            if j != length:
                out.extend(A.ctx_mac_blk(j))
            if j != 0:
                out.extend(A.ctx_mvsb)
            if j != length:
                out.extend(barrier)
    ch, kind, sub, addr = out.arrays()
    return ch, kind, sub, addr, g


def channel_streams(ch, kind, sub, addr, g, n_channels):
    """Split a global trace into per-channel (kind, sub, bank, row) streams."""
    bank, row = g.decode(addr)
    row = np.where((kind == E.K_DATA) | (kind == E.K_BARRIER), -1, row)
    order = np.argsort(ch, kind="stable")
    counts = np.bincount(ch, minlength=n_channels)
    starts = np.concatenate([[0], np.cumsum(counts)])
    out = []
    for c in range(n_channels):
        sel = order[starts[c]:starts[c + 1]]
        out.append((kind[sel].copy(), sub[sel].copy(), bank[sel].copy(), row[sel].copy()))
    return out
