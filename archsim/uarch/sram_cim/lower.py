"""Lowering of a workload graph to an SRAM-CIM Program: tile placement, residency, rewrites.

Units: ``dma_rd``, ``dma_wr`` (off-chip queues), ``vector``, ``ctrl`` (zero-cost joins),
``transpose`` (K -> K^T pass when the macros have no bitline transpose), ``res`` / ``res.wr``
(the macros holding resident tiles: compute and write ports) and, for each of the
``stream_groups`` groups of rewrite macros, ``s<j>`` / ``s<j>.wr``.

Residency (decided once per workload, :meth:`CimLowerer.plan`): weight tiles (and, in
decode, the KV cache) are pinned in macros across tokens when they fit; otherwise the chip
keeps a stream region (``mapping.stream_macros``, default half the chip, or all of it when
pinning would keep nothing) through which every other tile is rewritten each time it is
used. Pinned tiles are assumed in place at the start (steady state across tokens); the
KV cache, when resident, receives only the new token's K column / V row per decode step.

Streamed tiles go in *rounds* of ``stream_macros / stream_groups`` tiles, rotating through
the groups: ``[LOAD] [TRANSPOSE] WRITE GEMM`` per round. The write of a round waits for
the last wave set on its group (its macros are being overwritten) and for its data; the
wave set waits for its write and its input activations. Loads run one round ahead per
group. In pipeline mode attention runs head set after head set: K^T on one group, V on its
partner, QK^T -> softmax -> SV chained per head set, and K/V go straight from the
producing macros into the attention macros (no buffer or off-chip round trip).
"""
from __future__ import annotations

import numpy as np

from archsim.config.types import PRECISION_BITS
from archsim.errors import LoweringError
from archsim.isa import Op, ProgramBuilder
from archsim.uarch.sram_cim.cost import BUF_STAGED, VEC_TRANSPOSE, wave_cycles
from archsim.uarch.sram_cim.tiles import buffer_flags, ceil_div, make_tiles, reduce_rounds
from archsim.workload.graph import GemmOp, VectorOp, attention_name

U_RD, U_WR, U_VEC, U_CTRL, U_TR, U_RES, U_RESW = range(7)
U_S0 = 7
OFFCHIP_KINDS = ("weight", "kv_cache", "state")


def unit_names(cfg) -> list[str]:
    names = ["dma_rd", "dma_wr", "vector", "ctrl", "transpose", "res", "res.wr"]
    for j in range(cfg.mapping.stream_groups):
        names += [f"s{j}", f"s{j}.wr"]
    return names


def _bits(dtype: str) -> int:
    return PRECISION_BITS[dtype]


def density_of(op) -> float:
    """Fraction of waves to run. Ops rewritten by the workload's attention masks
    (``attn_nnz`` present) already hold only the kept work: nothing more is skipped."""
    if op.role in ("attn_qk", "attn_sv") and "attn_nnz" not in op.attrs:
        d = op.attrs.get("attn_density")
        if d is not None:
            return float(min(max(d, 0.0), 1.0))
    return 1.0


class CimLowerer:
    def __init__(self, cfg, memory_bytes_per_cycle: float):
        self.cfg = cfg
        self.mc = cfg.macro
        self.units = unit_names(cfg)
        self.pb = ProgramBuilder(self.units)
        self.done: dict[str, int] = {}
        self.budget = cfg.buffer.activation_budget * cfg.buffer.size
        self.acc = int(cfg.buffer.accumulator_bytes)
        self.S_cfg = cfg.mapping.stream_groups
        self.last_gemm = [-1] * self.S_cfg       # last wave set per stream group
        self.last_write = [-1] * self.S_cfg      # last write per stream group
        self.last_res = -1
        self.next_group = 0
        self.kv_entry = -1                       # when the attention K/V of the block are available
        self.tilesets: dict[str, object] = {}
        self.info: dict = {}
        self.bpc = memory_bytes_per_cycle
        self._addr: dict[str, int] = {}
        self._next_addr = 0

    # -- helpers --------------------------------------------------------------------------
    def offchip(self, t) -> bool:
        return t.kind in OFFCHIP_KINDS or t.nbytes > self.budget

    def join(self, idx, layer: int) -> int:
        idx = [int(i) for i in idx if i >= 0]
        if not idx:
            return -1
        while len(idx) > 1:
            groups = [idx[i:i + 4] for i in range(0, len(idx), 4)]
            deps = np.full((len(groups), 4), -1, np.int64)
            for r, g in enumerate(groups):
                deps[r, : len(g)] = g
            idx = [int(x) for x in self.pb.add(Op.SYNC, U_CTRL, layer, deps=deps)]
        return idx[0]

    def entry(self, wl, op, layer: int) -> int:
        preds = [self.done[p] for p in wl.predecessors(op.name) if p in self.done]
        return self.join(preds, layer) if len(preds) != 1 else preds[0]

    def input_bits(self, op: GemmOp) -> int:
        bits = self.mc.input_bits or _bits(op.a.dtype)
        if bits > self.mc.max_input_bits:
            raise LoweringError(
                f"{op.name}: input precision {op.a.dtype} ({bits} bits) exceeds the macros' supported "
                f"{self.mc.max_input_bits} bits; quantise the activations or raise macro.max_input_bits",
                path="macro.max_input_bits")
        return int(bits)

    def tiles(self, op: GemmOp):
        ts = self.tilesets.get(op.name)
        if ts is None:
            ts = make_tiles(op.M, op.N, op.K, op.count, op.b_shared, self.mc.rows, self.mc.cols,
                            self.mc.weight_bits, _bits(op.b.dtype), density_of(op))
            if ts.per_row < 1:
                raise LoweringError(f"{op.name}: a {op.b.dtype} weight needs more than the macro's "
                                    f"{self.mc.cols} columns", path="macro.cols")
            self.tilesets[op.name] = ts
        return ts

    # -- residency plan -------------------------------------------------------------------
    def plan(self, wl) -> None:
        rep = wl.group_repeat()
        N, S = self.mc.count, self.S_cfg
        mp = self.cfg.mapping
        gemms = [op for op in wl.ops() if isinstance(op, GemmOp)]
        w_ops = [op for op in gemms if op.b.kind == "weight"]
        kv_ops = [op for op in gemms if op.b.kind in ("kv_cache", "state")]
        dyn = any(op.b.kind not in ("weight", "kv_cache", "state") for op in gemms)
        W = sum(self.tiles(op).n * rep[op.layer] for op in w_ops)
        KV = sum(self.tiles(op).n * rep[op.layer] for op in kv_ops)
        kv_try = mp.kv_resident and wl.phase == "decode" and KV > 0
        reserve = S if dyn else 0
        if not mp.pin_weights:
            Ns = N
        elif mp.stream_macros is not None:
            Ns = min(N, mp.stream_macros)
        elif W + (KV if kv_try else 0) <= N - reserve:
            Ns = N - W - (KV if kv_try else 0)
        elif W <= N - reserve:
            Ns = N - W
        else:
            Ns = max(S, N // 2)
        Ns = min(Ns, N)
        budget = N - Ns if mp.pin_weights else 0
        pinned = {}
        if W and budget >= W:
            pinned = {op.name: self.tiles(op).n for op in w_ops}
        elif W and budget > 0 and (mp.stream_macros is not None or budget / W >= mp.min_pinned_fraction):
            f = budget / W
            pinned = {op.name: int(self.tiles(op).n * f) for op in w_ops}
        used = sum(pinned.get(op.name, 0) * rep[op.layer] for op in w_ops)
        kv_res = bool(kv_try and KV <= budget - used)
        if kv_res:
            used += KV
        if used == 0 and mp.stream_macros is None:
            Ns = N                                # pinning keeps nothing: every macro streams
        if Ns == 0 and (dyn or any(pinned.get(op.name, 0) < self.tiles(op).n for op in w_ops)
                        or (kv_ops and not kv_res)):
            raise LoweringError("no macros left for rewrites: lower mapping.stream_macros or add macros",
                                path="mapping.stream_macros")
        self.Ns = Ns
        self.S = max(1, min(S, Ns)) if Ns else 1
        self.P = Ns // self.S if Ns else 0
        self.pinned = pinned
        self.kv_res = kv_res
        self.info = {"macros": N, "stream_macros": Ns, "stream_groups": self.S, "macros_per_round": self.P,
                     "resident_macros": int(used), "weight_tiles": int(W), "kv_tiles": int(KV),
                     "weights_pinned_fraction": (sum(pinned.get(op.name, 0) * rep[op.layer] for op in w_ops) / W)
                     if W else 1.0,
                     "kv_resident": kv_res, "mode": self.cfg.mode}

    # -- rounds of streamed tiles ---------------------------------------------------------------
    def emit_rounds(self, op: GemmOp, ts, idx: np.ndarray, groups: np.ndarray, layer: int, src: str,
                    b_entry: int, a_dep: int, c_dep, in_bits: int, kT: bool) -> list[int]:
        """Emit the rounds of streamed tiles ``idx`` (consecutive chunks of P tiles), round r on
        stream group ``groups[r]``. ``src``: 'dram' (LOAD first), 'buffer' (written from the
        global buffer) or 'direct' (from the producing macros). Returns the GEMM indices."""
        P = self.P
        n = idx.shape[0]
        if n == 0:
            return []
        starts = np.arange(0, n, P, dtype=np.int64)
        nr = starts.shape[0]
        tk, tn, kept = ts.tk[idx], ts.tn[idx], ts.kept[idx]
        wb = self.mc.weight_bits * ts.groups
        bbits = _bits(op.b.dtype)
        bt = self.mc.bitline_transpose
        # writes: row writes per tile (K^T with bitline transpose: one column group per token)
        w_rows = tn if (kT and bt) else tk
        w_m = reduce_rounds(w_rows, starts, "max")
        w_n = reduce_rounds(w_rows, starts)
        w_bits = reduce_rounds(tk * tn * wb, starts)
        t_bytes = reduce_rounds(-(-(tk * tn * bbits) // 8), starts)
        # wave sets
        inp, out, full = buffer_flags(ts.set_id[idx], ts.kt[idx], ts.nt[idx], ts.nk, ts.nn, starts)
        in_bytes = _bits(op.a.dtype) / 8.0
        wc = wave_cycles(in_bits, self.mc.input_bits_per_cycle)
        g_m = reduce_rounds(kept, starts, "max")
        g_n = reduce_rounds(kept, starts)
        g_k = reduce_rounds(kept * tk * tn, starts)
        g_skip = reduce_rounds((ts.rows - kept) * tk * tn, starts)
        g_sh = reduce_rounds(kept * tn * wc, starts)
        rd, wr = self.buffer_bytes(op, kept, tk, tn, ts.kt[idx], inp, out, full, in_bytes)
        g_rd = reduce_rounds(rd, starts)
        g_wr = reduce_rounds(wr, starts)
        has_load = src == "dram"
        has_tr = kT and not bt
        per = 2 + has_load + has_tr
        base = self.pb.count
        r = np.arange(nr)
        i_load = base + r * per
        i_tr = i_load + has_load
        i_w = i_tr + has_tr
        i_g = i_w + 1
        # previous write / wave set on the same group (slot dependencies)
        prev_g = np.full(nr, -1, np.int64)
        prev_w = np.full(nr, -1, np.int64)
        for g in np.unique(groups):
            sel = np.nonzero(groups == g)[0]
            pg = np.concatenate(([self.last_gemm[g]], i_g[sel][:-1]))
            pw = np.concatenate(([self.last_write[g]], i_w[sel][:-1]))
            prev_g[sel] = pg
            prev_w[sel] = pw
            self.last_gemm[g] = int(i_g[sel][-1])
            self.last_write[g] = int(i_w[sel][-1])
        n_inst = nr * per
        A = dict(op=np.zeros(n_inst, np.uint8), unit=np.zeros(n_inst, np.int32),
                 layer=np.full(n_inst, layer, np.int32), m=np.zeros(n_inst, np.int64),
                 n=np.zeros(n_inst, np.int64), k=np.zeros(n_inst, np.int64),
                 nbytes=np.zeros(n_inst, np.int64), addr=np.zeros(n_inst, np.int64),
                 deps=np.full((n_inst, 4), -1, np.int64), aux=np.zeros((n_inst, 4), np.int64))
        loc = lambda i: i - base  # noqa: E731
        feed = np.full(nr, b_entry, np.int64)
        if has_load:
            j = loc(i_load)
            A["op"][j] = Op.LOAD
            A["unit"][j] = U_RD
            A["nbytes"][j] = t_bytes
            A["addr"][j] = self.b_addr(op) + np.concatenate(([0], np.cumsum(t_bytes)[:-1]))
            A["deps"][j, 0] = prev_w
            A["deps"][j, 1] = b_entry
            feed = i_load
        if has_tr:
            j = loc(i_tr)
            A["op"][j] = Op.VECTOR
            A["unit"][j] = U_TR
            A["m"][j] = reduce_rounds(tk * tn, starts)
            A["nbytes"][j] = t_bytes
            A["aux"][j, 1] = VEC_TRANSPOSE
            A["deps"][j, 0] = feed
            feed = i_tr
        j = loc(i_w)
        A["op"][j] = Op.WRITE
        A["unit"][j] = U_S0 + 2 * groups + 1
        A["m"][j] = w_m
        A["n"][j] = w_n
        A["k"][j] = w_bits
        A["nbytes"][j] = t_bytes if src == "buffer" else 0
        A["aux"][j, 0] = 1
        A["deps"][j, 0] = feed
        A["deps"][j, 1] = prev_g
        A["deps"][j, 2] = b_entry
        j = loc(i_g)
        A["op"][j] = Op.GEMM
        A["unit"][j] = U_S0 + 2 * groups
        A["m"][j] = g_m
        A["n"][j] = g_n
        A["k"][j] = g_k
        A["nbytes"][j] = g_rd
        A["addr"][j] = g_wr
        A["aux"][j, 0] = in_bits
        A["aux"][j, 1] = bbits
        A["aux"][j, 2] = g_skip
        A["aux"][j, 3] = g_sh
        A["deps"][j, 0] = i_w
        A["deps"][j, 1] = a_dep
        A["deps"][j, 2] = c_dep if c_dep is not None else -1
        self.pb.add_arrays(A)
        return [int(x) for x in i_g]

    def addr_of(self, name: str, nbytes: int) -> int:
        """Bump allocation of off-chip addresses per tensor (deterministic)."""
        if name not in self._addr:
            self._addr[name] = self._next_addr
            self._next_addr += (int(nbytes) + 4095) // 4096 * 4096
        return self._addr[name]

    def buffer_bytes(self, op, kept, tk, tn, kt, inp, out, full, in_bytes):
        """Buffer bytes read (input slices, earlier partial sums) and written (block sums:
        finished outputs at the output precision, partial sums at the accumulator width)."""
        rd = np.ceil(kept * tk * in_bytes * inp).astype(np.int64) + np.where(out & (kt > 0), kept * tn * self.acc, 0)
        c_bytes = _bits(op.c.dtype) / 8.0
        wr = np.where(out, np.ceil(kept * tn * np.where(full, c_bytes, self.acc)), 0).astype(np.int64)
        return rd, wr

    def b_addr(self, op) -> int:
        return self.addr_of(op.b.name, op.b.nbytes * (1 if op.b_shared else op.count))

    def emit_resident(self, op: GemmOp, ts, idx: np.ndarray, layer: int, a_dep: int, in_bits: int,
                      append: bool, b_entry: int, c_dep=None) -> list[int]:
        """Wave set of the pinned tiles ``idx`` on the resident macros (one lockstep set), after
        the new token's K column / V row is appended when ``append``."""
        if idx.shape[0] == 0:
            return []
        tk, tn, kept = ts.tk[idx], ts.tn[idx], ts.kept[idx]
        wc = wave_cycles(in_bits, self.mc.input_bits_per_cycle)
        out = []
        w_dep = -1
        if append:
            wb = self.mc.weight_bits * ts.groups
            if op.role == "attn_qk":
                # the token is a column of K^T: one column-group write per K tile (bitline
                # transpose) or a read-modify-write of each of the tk rows
                last = ts.nt == ts.nn - 1
                sel = last
                if self.mc.bitline_transpose:
                    m, nrow, slots = 1, int(sel.sum()), 1
                else:
                    m, nrow, slots = int(ts.tk[sel].max()), int(ts.tk[sel].sum()), 2
                bits = int(ts.tk[sel].sum()) * wb
            else:
                # the token is a row of V: one row write per N tile of the last K tile
                sel = ts.kt == ts.nk - 1
                m, nrow, slots = 1, int(sel.sum()), 1
                bits = int(ts.tn[sel].sum()) * wb
            w_dep = int(self.pb.add(Op.WRITE, U_RESW, layer, m=m, n=nrow, k=bits, deps=[b_entry],
                                    aux=[slots])[0])
        in_bytes = _bits(op.a.dtype) / 8.0
        inp, outf, full = buffer_flags(ts.set_id[idx], ts.kt[idx], ts.nt[idx], ts.nk, ts.nn,
                                       np.zeros(1, np.int64))
        rd, wr = self.buffer_bytes(op, kept, tk, tn, ts.kt[idx], inp, outf, full, in_bytes)
        g = self.pb.add(Op.GEMM, U_RES, layer, m=int(kept.max()), n=int(kept.sum()), k=int((kept * tk * tn).sum()),
                        nbytes=int(rd.sum()), addr=int(wr.sum()),
                        deps=[a_dep, w_dep, c_dep if c_dep is not None else -1],
                        aux=[in_bits, _bits(op.b.dtype), int(((ts.rows - kept) * tk * tn).sum()),
                             int((kept * tn).sum()) * wc])
        self.last_res = int(g[0])
        out.append(int(g[0]))
        return out

    # -- ops --------------------------------------------------------------------------------
    def split(self, op: GemmOp, ts):
        """(pinned tile indices, streamed tile indices, append?) of an op."""
        n = ts.n
        alive = ts.kept > 0
        if op.b.kind == "weight":
            p = self.pinned.get(op.name, 0)
            pin = np.zeros(n, bool)
            pin[:p] = True
            return np.nonzero(pin)[0], np.nonzero(~pin & alive)[0], False
        if op.b.kind in ("kv_cache", "state") and self.kv_res:
            return np.nonzero(alive)[0], np.zeros(0, np.int64), True
        return np.zeros(0, np.int64), np.nonzero(alive)[0], False

    def b_source(self, op: GemmOp) -> str:
        if op.b.kind in OFFCHIP_KINDS:
            return "dram"
        if self.cfg.mode == "pipeline" and op.role in ("attn_qk", "attn_sv"):
            return "direct"
        return "dram" if op.b.nbytes * (1 if op.b_shared else op.count) > self.budget else "buffer"

    def a_load(self, op, entry: int, layer: int) -> int:
        a = op.a
        if not self.offchip(a):
            return entry
        nb = a.nbytes
        return int(self.pb.add(Op.LOAD, U_RD, layer, nbytes=nb, addr=self.addr_of(a.name, nb),
                               deps=[entry], aux=[BUF_STAGED])[0])

    def c_store(self, op, finals: list[int], layer: int) -> list[int]:
        outs = [op.c] if isinstance(op, GemmOp) else list(op.outputs)
        res = []
        done = self.join(finals, layer) if len(finals) != 1 else finals[0]
        for t in outs:
            if self.offchip(t):
                res.append(int(self.pb.add(Op.STORE, U_WR, layer, nbytes=t.nbytes,
                                           addr=self.addr_of(t.name, t.nbytes), deps=[done],
                                           aux=[BUF_STAGED])[0]))
        return [done] + res

    def skipped_only(self, op, ts, layer: int) -> None:
        """Account the MACs of tiles whose every wave is masked (nothing to load, write or run).
        Blocks the workload's masks already removed from the GEMM shapes are not the datapath's
        skips and are not counted here (the workload's MAC count excludes them)."""
        dead = ts.kept == 0
        if dead.any():
            self.pb.add(Op.GEMM, U_CTRL, layer, m=0, n=0, k=0,
                        aux=[1, 1, int((ts.rows * ts.tk[dead] * ts.tn[dead]).sum()), 0])

    def gemm(self, wl, op: GemmOp, layer: int) -> None:
        ts = self.tiles(op)
        in_bits = self.input_bits(op)
        entry = self.entry(wl, op, layer)
        a_dep = self.a_load(op, entry, layer)
        pin, stream, append = self.split(op, ts)
        kT = op.role == "attn_qk"
        if op.role == "attn_qk":
            self.kv_entry = entry
        b_entry = self.kv_entry if op.role == "attn_sv" and op.b.kind not in OFFCHIP_KINDS else \
            (entry if op.b.kind not in OFFCHIP_KINDS else -1)
        if op.role in ("attn_qk", "attn_sv") and op.b.kind in OFFCHIP_KINDS:
            b_entry = -1
        finals = self.emit_resident(op, ts, pin, layer, a_dep, in_bits, append, entry)
        if stream.size:
            nr = ceil_div(stream.size, self.P)
            groups = (self.next_group + np.arange(nr)) % self.S
            self.next_group = int((self.next_group + nr) % self.S)
            finals += self.emit_rounds(op, ts, stream, groups, layer, self.b_source(op), b_entry, a_dep,
                                       None, in_bits, kT)
        self.skipped_only(op, ts, layer)
        if not finals:
            finals = [a_dep] if a_dep >= 0 else []
        self.done[op.name] = self.join(self.c_store(op, finals, layer), layer)

    def attention_pipeline(self, wl, qk: GemmOp, sm: VectorOp, sv: GemmOp, layer: int) -> None:
        """QK^T -> softmax -> SV head set after head set, K^T and V on partner stream groups."""
        ts_q, ts_v = self.tiles(qk), self.tiles(sv)
        ib_q, ib_v = self.input_bits(qk), self.input_bits(sv)
        entry = self.entry(wl, qk, layer)
        self.kv_entry = entry
        a_dep = self.a_load(qk, entry, layer)
        pin_q, str_q, app_q = self.split(qk, ts_q)
        pin_v, str_v, app_v = self.split(sv, ts_v)
        src_q, src_v = self.b_source(qk), self.b_source(sv)
        be_q = -1 if qk.b.kind in OFFCHIP_KINDS else entry
        be_v = -1 if sv.b.kind in OFFCHIP_KINDS else entry
        sets = ts_q.n_sets
        tq = max(1, ts_q.n // max(1, sets))
        hs = max(1, self.P // tq) if self.P else sets
        if pin_q.size and not str_q.size:
            hs = sets                               # resident K/V: one wave set covers every head
        n_pairs = max(1, self.S // 2)
        finals = []
        rows_per_set = sm.rows // max(1, sets)
        for c, h0 in enumerate(range(0, sets, hs)):
            h1 = min(sets, h0 + hs)
            pq = 2 * (c % n_pairs)
            pv = pq + 1
            sel = lambda ix, ts: ix[(ts.set_id[ix] >= h0) & (ts.set_id[ix] < h1)]  # noqa: E731
            gq = []
            gq += self.emit_resident(qk, ts_q, sel(pin_q, ts_q), layer, a_dep, ib_q, app_q, entry)
            s_q = sel(str_q, ts_q)
            if s_q.size:
                gq += self.emit_rounds(qk, ts_q, s_q, np.full(ceil_div(s_q.size, self.P), pq), layer, src_q,
                                       be_q, a_dep, None, ib_q, True)
            dq = self.join(gq, layer) if len(gq) != 1 else gq[0]
            rows = rows_per_set * (h1 - h0)
            smi = int(self.pb.add(Op.VECTOR, U_VEC, layer, m=rows * sm.cols, n=rows,
                                  deps=[dq, entry], aux=[int(sm.kind), 0])[0])
            gv = []
            gv += self.emit_resident(sv, ts_v, sel(pin_v, ts_v), layer, smi, ib_v, app_v, entry)
            s_v = sel(str_v, ts_v)
            if s_v.size:
                gv += self.emit_rounds(sv, ts_v, s_v, np.full(ceil_div(s_v.size, self.P), pv), layer, src_v,
                                       be_v, smi, None, ib_v, False)
            finals += gv if gv else [smi]
        self.skipped_only(qk, ts_q, layer)
        self.skipped_only(sv, ts_v, layer)
        done = self.join(self.c_store(sv, finals, layer), layer)
        self.done[qk.name] = done
        self.done[sm.name] = done
        self.done[sv.name] = done

    def vector(self, wl, op: VectorOp, layer: int) -> None:
        entry = self.entry(wl, op, layer)
        loads = []
        rd = 0
        for t in op.inputs:
            if self.offchip(t):
                loads.append(int(self.pb.add(Op.LOAD, U_RD, layer, nbytes=t.nbytes,
                                             addr=self.addr_of(t.name, t.nbytes), deps=[entry],
                                             aux=[BUF_STAGED])[0]))
            rd += t.nbytes
        wr = sum(t.nbytes for t in op.outputs)
        deps = [entry] + loads[:3]
        v = int(self.pb.add(Op.VECTOR, U_VEC, layer, m=int(op.rows) * int(op.cols), n=int(op.rows),
                            k=int(op.cols), nbytes=rd, addr=wr, deps=deps, aux=[int(op.kind), 0])[0])
        self.done[op.name] = self.join(self.c_store(op, [v], layer), layer)

    def run(self, wl):
        self.plan(wl)
        rep = wl.group_repeat()
        for g in wl.groups:
            self.pb.layer(g.name, g.repeat)
        ops = wl.ops()
        handled = set()
        for i, op in enumerate(ops):
            if op.name in handled:
                continue
            layer = self.pb.layer(op.layer, rep[op.layer])
            trio = (self._trio(wl, op) if isinstance(op, GemmOp) and self.cfg.mode == "pipeline"
                    and self.S >= 2 else None)
            if trio is not None:
                sm, sv = trio
                self.pb.tag(attention_name(op.name), [op.name, sm.name, sv.name])
                self.attention_pipeline(wl, op, sm, sv, layer)
                handled.update((sm.name, sv.name))
                continue
            self.pb.tag(op.name)
            if isinstance(op, GemmOp):
                self.gemm(wl, op, layer)
            else:
                self.vector(wl, op, layer)
        return self.pb.build(meta={"cim": self.info})

    def _trio(self, wl, op):
        if op.role != "attn_qk":
            return None
        g = wl.graph
        succ = [g.nodes[s]["op"] for s in g.successors(op.name)]
        sms = [s for s in succ if isinstance(s, VectorOp) and s.role == "softmax"]
        if len(sms) != 1:
            return None
        sm = sms[0]
        svs = [g.nodes[s]["op"] for s in g.successors(sm.name)]
        svs = [s for s in svs if isinstance(s, GemmOp) and s.role == "attn_sv"]
        if len(svs) != 1 or svs[0].count != op.count:
            return None
        preds = set(wl.predecessors(svs[0].name))
        if preds - {sm.name}:
            return None
        return sm, svs[0]
