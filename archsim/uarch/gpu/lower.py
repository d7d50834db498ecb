"""Lowering of a workload graph to a GPU Program.

Every op is a kernel. A kernel costs a host launch (``host`` unit, in order, running ahead
of the GPU) and a device-side gap after the previous kernel (``sm`` unit), then its body:

- GEMM: the CTA plan of :mod:`archsim.uarch.gpu.tiling`; per wave, the k loop is cut into
  up to ``CHUNKS`` pipelined chunks ``LOAD (HBM bytes of the chunk) -> GEMM (the wave's
  CTAs over the chunk)``, the kernel's first and last chunk cut again into eighths 1, 3, 4
  (a CTA's pipeline fills in a few k steps); loads run ahead while the chunks loaded and not
  yet multiplied fit two full chunks (L2 / shared-memory staging); the wave's outputs are
  stored after its last chunk. Split-K adds a reduction kernel over the fp32 partial sums.
  A mixture-of-experts layer's experts (``moe_gemm: grouped``) run the same op of every active
  expert as one kernel: a grouped GEMM over all their tiles (:meth:`GpuLowerer.grouped_gemm`).
- Vector ops: chunks of ``LOAD inputs -> VECTOR -> STORE outputs``; activations small enough
  to stay in L2 between kernels cost no HBM traffic.
- Prefill attention (``prefill_attention: fused``, the default): one FlashAttention-style kernel
  per layer (see :meth:`GpuLowerer.prefill_attention`); ``gemm`` times separate kernels.
- Decode attention (``decode_attention: fused``, the default): the QK^T, softmax and SV of
  every request and head of a layer are one FlashDecoding / paged-attention kernel (see
  :meth:`GpuLowerer.decode_attention`); ``gemm`` times them as separate batched GEMMs.
- Tensor parallelism over ``parallel.tensor`` devices: QKV/up/LM-head split by columns,
  output/down projections by rows followed by a ring all-reduce (``link`` unit; MoE experts
  the same, one all-reduce after the combine), attention
  split by heads. One device is simulated (all are symmetric); MACs are counted for all here,
  the other counts and the memory traffic are multiplied by the devices (``Gpu.devices``).
"""
from __future__ import annotations

import re

import numpy as np

from archsim.config.types import PRECISION_BITS
from archsim.errors import LoweringError
from archsim.isa import Op, ProgramBuilder, VecKind
from archsim.uarch.gpu.cost import B_DENSE
from archsim.uarch.gpu.tiling import (CHUNKS, chunk_plan, flash_tiles, fragment_bytes, k_depth, list_schedule,
                                      n_chunks, plan_gemm, split_chunks, wave_plan)
from archsim.uarch.systolic.cost import prim_table, vector_cycles, vector_rates
from archsim.workload.graph import GemmOp, VectorOp, attention_name
from archsim.workload.sparsity import nm_compliant

VEC_CHUNKS = 4
_EXPERT = re.compile(r"\.e\d+\.")          # the expert index in an expert op's name
UNITS = ["host", "sm", "dma_rd", "dma_wr", "link", "ctrl", "sm_stream"]
U_HOST, U_SM, U_RD, U_WR, U_LINK, U_CTRL, U_STREAM = range(7)
FLAG_LAST = 1
RATE_SCALE = 1000

# Megatron-style tensor parallelism: column-split layers (outputs over the devices, no reduction)
# and row-split ones (inputs over the devices, partial sums all-reduced). Mamba blocks split their
# channels (Mamba-1) or heads (Mamba-2) the same way: in_proj and dt_proj by columns, the conv,
# the scan and the gate stay on each device's channels, x_proj and out_proj by rows.
COL_SPLIT = ("qkv", "up", "gate", "q", "k", "v", "in_proj", "dt_proj")
ROW_SPLIT = ("o", "down", "out", "out_proj", "x_proj")
# row-reduction kernels (one CTA per row; RowKernelConfig)
ROW_KERNELS = {int(VecKind.LAYERNORM): "layernorm", int(VecKind.RMSNORM): "rmsnorm",
               int(VecKind.SOFTMAX): "softmax"}

# vector ops over a Mamba block's channels (split with them): by suffix, (rows or columns)
SSM_CHANNEL_OPS = {"conv1d": "cols", "skip": "cols", "gate_norm": "cols", "ssd_sum": "cols",
                   "ssd_decay": "rows"}


def mma_precision(op: GemmOp) -> str:
    """The precision the tensor cores run a GEMM at: the wider of its two operands'."""
    a, b = op.a.dtype, op.b.dtype
    return b if PRECISION_BITS[b] >= PRECISION_BITS[a] else a


def operand_bits(op: GemmOp) -> int:
    """Bits per element of the wider operand of a GEMM (its :func:`mma_precision`)."""
    return int(PRECISION_BITS[mma_precision(op)])


def sparse_mma_of(cfg, op):
    """The GPU's structured-sparse MMA config if ``op``'s weight runs on it (``sm.sparse_mma`` set,
    the weight pruned so that every group of ``m`` along K keeps at most ``n`` values, at a
    precision the tensor cores run), else None: the weight runs dense."""
    sp = cfg.sm.sparse_mma
    at = op.attrs.get("sparsity")
    if sp is None or at is None or op.b.kind != "weight":
        return None
    if cfg.sm.mma_macs_per_cycle.get(cfg.mma_exec(mma_precision(op)), 0.0) <= 0:
        return None                                  # CUDA-core precision: no tensor cores at all
    return sp if nm_compliant(at, sp.n, sp.m) else None


def stored_nbytes(cfg, op, t) -> float:
    """Bytes tensor ``t`` of ``op`` occupies in the GPU's memory: compressed if it is the weight of
    a GEMM the structured-sparse tensor cores take (:func:`sparse_mma_of`)."""
    sp = sparse_mma_of(cfg, op) if isinstance(op, GemmOp) and t is op.b else None
    return t.nbytes * (sp.compressed_fraction(8 * t.bytes_per_element) if sp is not None else 1.0)


def _part(total, n, j):
    """Share ``j`` of ``total`` split into ``n`` near-equal integer parts (the first
    ``total % n`` parts one larger); ``total`` and ``j`` may be numpy arrays."""
    return total // n + (j < total % n)


def _bpe(dtype: str) -> float:
    return PRECISION_BITS[dtype] / 8.0


def _kv_heads(t) -> int:
    """KV heads of a K or V tensor ([batch, KV heads, ...]); 0 if it is not one."""
    shape = getattr(t, "shape", ())
    return int(shape[1]) if len(shape) == 4 else 0


class GpuLowerer:
    def __init__(self, cfg, memory_bytes_per_cycle: float):
        self.cfg = cfg
        self.pb = ProgramBuilder(UNITS)
        self.hbm_bpc = memory_bytes_per_cycle
        wt = cfg.sm.warp_tile
        self.warp = (wt.m, wt.n, wt.min_per_cta) if wt is not None else ()
        self.clock = cfg.clock
        self.tp = cfg.parallel.tensor
        self.l2 = float(cfg.l2.size)
        self.act_l2 = cfg.activation_l2_fraction * self.l2
        self.prev_done = -1
        self.addr = 0
        self.plans: dict[str, dict] = {}
        self.mlp_bpc = cfg.inflight_bytes_per_cycle()
        self.lat_cycles = float(cfg.memory.latency * cfg.clock)
        self.host_cycles = int(round(cfg.launch.host * cfg.clock))
        self.gap_cycles = int(round(cfg.launch.gap * cfg.clock))

    # -- helpers --------------------------------------------------------------------------
    def _alloc(self, nbytes: float) -> int:
        a = self.addr
        self.addr += (int(nbytes) + 4095) // 4096 * 4096
        return a

    def resident(self, t, nbytes: float) -> bool:
        if t.kind == "onchip":
            return True
        if t.offchip:
            return False
        return nbytes <= self.act_l2

    def sync(self, unit: int, layer: int, cycles: int, deps, skipped_macs: int = 0) -> int:
        """A barrier of ``cycles``; ``skipped_macs`` (aux[0]) counts MACs a kernel skipped."""
        deps = [d for d in deps if d >= 0][:4]
        return int(self.pb.add(Op.SYNC, unit, layer, m=int(cycles), deps=np.array(deps or [-1], np.int64),
                               aux=np.array([int(skipped_macs)], np.int64))[0])

    def join(self, idx, layer: int) -> int:
        idx = [i for i in idx if i >= 0]
        if not idx:
            return -1
        while len(idx) > 1:
            nxt = []
            for i in range(0, len(idx), 4):
                nxt.append(self.sync(U_CTRL, layer, 0, idx[i:i + 4]))
            idx = nxt
        return idx[0]

    def kernel_start(self, layer: int) -> int:
        launch = self.sync(U_HOST, layer, self.host_cycles, [])
        return self.sync(U_SM, layer, self.gap_cycles, [launch, self.prev_done])

    # -- sharding ---------------------------------------------------------------------------
    def shard_gemm(self, op: GemmOp):
        """(M, N, K, count, all_reduce) on one device under tensor parallelism."""
        M, N, K, G = int(op.M), int(op.N), int(op.K), int(op.count)
        T = self.tp
        if T == 1:
            return M, N, K, G, False
        suffix = op.name.rsplit(".", 1)[-1]
        if op.role in ("attn_qk", "attn_sv"):
            kvh = _kv_heads(op.b)
            if kvh and T > kvh:
                # fewer KV heads than devices: each KV head is replicated on T / kvh devices, each
                # taking its share of the group's query heads against all the requests' K/V
                return -(-M * kvh // T), N, K, G // kvh, False
            return M, N, K, -(-G // T), False
        if op.role == "lm_head" or (op.role in ("fc", "expert") and suffix in COL_SPLIT):
            return M, -(-N // T), K, G, False
        if op.role == "fc" and suffix in ROW_SPLIT:
            return M, N, -(-K // T), G, True
        if op.role == "expert" and suffix in ROW_SPLIT:
            # an expert's down projection leaves partial sums: reduced once, after the combine
            return M, N, -(-K // T), G, False
        if op.role == "ssd":
            # Mamba-2 chunked scan: one GEMM per (request, chunk, head), or per (request, chunk,
            # group) for C B^T; the heads split, a group shared by heads on several devices is
            # computed on each of them
            groups = int(op.attrs.get("groups", 0))
            if groups:
                return M, N, K, G // groups * -(-groups // T), False
            return M, N, K, -(-G // T), False
        return M, N, K, G, False

    def shard_vector(self, op: VectorOp):
        rows, cols = int(op.rows), int(op.cols)
        T = self.tp
        if T == 1:
            return rows, cols
        if op.role == "softmax":
            return -(-rows // T), cols
        if op.role in ("activation", "gate", "rope", "kv_write", "conv1d"):
            return rows, -(-cols // T)
        if op.role == "scan":
            # rows: (request x [chunk step x] channel) or (request x head x head dim)
            return -(-rows // T), cols
        how = SSM_CHANNEL_OPS.get(op.name.rsplit(".", 1)[-1]) if op.role in ("ssd", "norm", "residual") else None
        if how == "cols":
            return rows, -(-cols // T)
        if how == "rows":
            return -(-rows // T), cols
        return rows, cols

    # -- GEMM -------------------------------------------------------------------------------
    def gemm_kind(self, op: GemmOp):
        """(A, B, C bytes per element, MMA rate, operand bits, k depth, structured-sparse MMA or
        None, B panel bytes relative to a dense one) of a GEMM on this GPU."""
        cfg = self.cfg
        ab, bb, cb = _bpe(op.a.dtype), _bpe(op.b.dtype), _bpe(op.c.dtype)
        rate = cfg.mma_issue_rate(mma_precision(op))
        bits = operand_bits(op)
        tk = int(k_depth(cfg.tiles.k, bits))
        sp = sparse_mma_of(cfg, op)
        b_feed = 1.0
        if sp is not None:
            # compressed weight: the kept values and their indices, at m / n times the MMA rate
            rate *= sp.m / sp.n
            b_feed = sp.compressed_fraction(bits)
            bb *= sp.compressed_fraction(8 * bb)
        return ab, bb, cb, rate, bits, tk, sp, b_feed

    def plan(self, M, N, K, G, b_shared, kind, a_res, b_res, c_res, splits):
        """The library's CTA plan (:func:`plan_gemm`) of G problems of M x N x K."""
        cfg, t = self.cfg, self.cfg.tiles
        ab, bb, cb, rate, _, tk, _, b_feed = kind
        return plan_gemm(M, N, K, G, bool(b_shared), ab, bb, cb, bool(a_res), bool(b_res), bool(c_res),
                         tuple(t.m), tuple(t.n), tk, t.min_m, tuple(splits), t.swizzle,
                         cfg.sm.count, t.max_ctas_per_sm, rate, cfg.sm.l2_bytes_per_cycle, self.mlp_bpc,
                         cfg.sm.mainloop_overhead_cycles, cfg.sm.epilogue_bytes_per_cycle,
                         cfg.accumulator_bytes, self.l2, self.hbm_bpc, float(cfg.sm.smem),
                         float(cfg.sm.registers), t.stages, cfg.sm.mma_efficiency,
                         float(self.host_cycles), float(self.gap_cycles), self.act_l2, b_feed,
                         float(cfg.sm.smem_bytes_per_cycle), self.warp, self.lat_cycles)

    def record_plan(self, name, plan, sp, **extra) -> None:
        self.plans[name] = dict(tm=plan.tm, tn=plan.tn, split_k=plan.split, per_sm=plan.per_sm,
                                ctas=plan.ctas, waves=plan.waves, **extra)
        if sp is not None:
            self.plans[name]["sparse_mma"] = f"{sp.n}:{sp.m}"

    def gemm(self, op: GemmOp, layer: int) -> None:
        M, N, K, G, allreduce = self.shard_gemm(op)
        kind = self.gemm_kind(op)
        ab, bb, cb, _, _, _, sp, _ = kind
        a_res = self.resident(op.a, M * K * ab * G)
        b_res = self.resident(op.b, K * N * bb * (1 if op.b_shared else G))
        c_res = self.resident(op.c, M * N * cb * G)
        plan = self.plan(M, N, K, G, op.b_shared, kind, a_res, b_res, c_res, self.cfg.tiles.split_k)
        self.record_plan(op.name, plan, sp)
        self.gemm_kernel(layer, plan, kind, c_res, int(op.macs), M * N * G, M)
        if allreduce and not op.attrs.get("defer_allreduce"):
            # (deferred: the caller reduces the partial sums later, e.g. together with a PIM's share)
            self.all_reduce(layer, M * N * G * cb)

    def grouped_gemm(self, ops, layer: int, name: str) -> None:
        """One grouped-GEMM kernel for the same projection of several experts (``moe_gemm:
        grouped``): every active expert's tiles in one grid, each expert with its own rows (its
        tokens) and its own weight. One CTA tile for all (the library's choice for the mean rows
        per expert), no split-K; the waves and their L2 reuse as for one GEMM over the experts'
        tiles in order (:func:`wave_traffic`)."""
        cfg = self.cfg
        sh = [self.shard_gemm(op) for op in ops]
        Ms = np.array([m * g for m, _, _, g, _ in sh], np.int64)
        N, K = sh[0][1], sh[0][2]
        kind = self.gemm_kind(ops[0])
        ab, bb, cb, _, _, _, sp, _ = kind
        E = len(ops)
        rows = int(Ms.sum())
        # each input / output tensor of the group together (the experts' slices of one buffer)
        a_res = self.resident(ops[0].a, rows * K * ab)
        b_res = self.resident(ops[0].b, K * N * bb * E)
        c_res = self.resident(ops[0].c, rows * N * cb)
        base = self.plan(-(-rows // E), N, K, E, False, kind, a_res, b_res, c_res, (1,))
        plan = wave_plan(Ms, N, K, E, False, base.tm, base.tn, 1, base.per_sm, cfg.sm.count, cfg.tiles.swizzle,
                         ab, bb, cb, self.l2, a_res, b_res, base.est_cycles)
        self.record_plan(name, plan, sp, experts=E)
        self.gemm_kernel(layer, plan, kind, c_res, sum(int(op.macs) for op in ops), rows * N, rows)

    def gemm_kernel(self, layer, plan, kind, c_res, model_macs, out_elems, red_rows) -> None:
        """The instructions of one GEMM kernel run by ``plan`` (and its split-K reduction kernel):
        ``model_macs`` the model's MACs of the whole tensor-parallel group, ``out_elems`` the
        output elements on this device (in ``red_rows`` rows for the reduction kernel)."""
        cfg = self.cfg
        _, _, cb, rate, bits, tk, sp, b_feed = kind
        start = self.kernel_start(layer)
        iters = -(-plan.kk // tk)
        nc = n_chunks(iters)
        W = plan.waves
        w_hbm = np.asarray(plan.wave_hbm_a) + np.asarray(plan.wave_hbm_b)
        split = plan.split > 1
        ws_bytes = plan.split * out_elems * cfg.accumulator_bytes
        ws_res = ws_bytes <= self.act_l2
        if split:
            w_store = np.zeros(W) if ws_res else np.asarray(plan.wave_c) / cb * cfg.accumulator_bytes
        else:
            w_store = np.zeros(W) if c_res else np.asarray(plan.wave_c)
        w_macs = np.rint(np.asarray(plan.wave_macs)).astype(np.int64)
        # chunk grid (wave-major)
        wv, wts, last_c = chunk_plan(W, nc)
        S = len(wv)
        ld_bytes = split_chunks(np.rint(w_hbm), wv, wts)
        has_ld = ld_bytes > 0
        st_bytes = np.where(last_c, np.rint(w_store[wv]).astype(np.int64), 0)
        has_st = st_bytes > 0
        it_c = split_chunks(np.full(W, iters), wv, wts)
        mac_c = split_chunks(w_macs, wv, wts)
        per = has_ld.astype(np.int64) + 1 + has_st
        base = self.pb.count
        off = base + np.concatenate(([0], np.cumsum(per)[:-1]))
        i_ld = off
        i_g = off + has_ld
        i_st = i_g + 1
        n = int(per.sum())
        A = dict(op=np.full(n, Op.GEMM, np.uint8), unit=np.full(n, U_SM, np.int32),
                 layer=np.full(n, layer, np.int32), m=np.zeros(n, np.int64), n=np.zeros(n, np.int64),
                 k=np.zeros(n, np.int64), nbytes=np.zeros(n, np.int64), addr=np.zeros(n, np.int64),
                 deps=np.full((n, 4), -1, np.int64), aux=np.zeros((n, 4), np.int64))
        r = lambda x: x - base  # noqa: E731
        # a chunk's load waits until the chunks loaded ahead of it fit the staging buffer of two
        # full chunks: the MMAs of chunk j must be done, j the first chunk after which they fit
        # (two chunks back between full chunks; the short chunks of the ramps run further ahead)
        cum = np.cumsum(wts)
        over = cum - 2 * wts.max()
        j_dep = np.searchsorted(cum, over, side="left")
        ld_dep = np.where(over > 0, i_g[np.minimum(j_dep, S - 1)], -1)
        a_addr = self._alloc(float(w_hbm.sum()) + 1)
        j = r(i_ld[has_ld])
        A["op"][j] = Op.LOAD
        A["unit"][j] = U_RD
        A["nbytes"][j] = ld_bytes[has_ld]
        A["addr"][j] = a_addr + np.concatenate(([0], np.cumsum(ld_bytes[has_ld])[:-1]))
        A["deps"][j, 0] = start
        A["deps"][j, 1] = ld_dep[has_ld]
        j = r(i_g)
        A["m"][j] = plan.tm
        A["n"][j] = plan.tn
        # the fragments one CTA reads from shared memory per iteration (0: not modelled)
        A["nbytes"][j] = int(round(fragment_bytes(plan.tm, plan.tn, tk, bits / 8.0, b_feed, self.warp)))
        A["k"][j] = it_c * tk
        A["deps"][j, 0] = np.where(has_ld, i_ld, -1)
        A["deps"][j, 1] = start
        A["aux"][j, 0] = int(round(rate * RATE_SCALE))
        A["aux"][j, 1] = bits | ((B_DENSE - int(round(b_feed * B_DENSE))) << 8)
        # MACs the tensor cores issue: the kept weights' share of the model's (a structured-sparse
        # core skips the rest, counted below)
        if sp is None:
            issued, macs_all = model_macs, mac_c * self.tp
        else:
            issued = model_macs * sp.n // sp.m
            macs_all = mac_c * self.tp * sp.n // sp.m
        macs_all[-1] += issued - int(macs_all.sum())     # uneven TP splits: count the model's MACs
        A["aux"][j, 2] = macs_all
        w_ctas = np.asarray(plan.wave_ctas, np.int64)
        c_w = np.minimum(min(plan.per_sm, 127), -(-w_ctas // cfg.sm.count))
        A["aux"][j, 3] = ((w_ctas[wv] << 8) | (c_w[wv] << 1)
                          | np.where(last_c, FLAG_LAST, 0))
        if has_st.any():
            c_addr = self._alloc(float(st_bytes.sum()) + 1)
            j = r(i_st[has_st])
            A["op"][j] = Op.STORE
            A["unit"][j] = U_WR
            A["nbytes"][j] = st_bytes[has_st]
            A["addr"][j] = c_addr + np.concatenate(([0], np.cumsum(st_bytes[has_st])[:-1]))
            A["deps"][j, 0] = i_g[has_st]
        self.pb.add_arrays(A)
        finals = [int(i_g[-1])] + ([int(i_st[has_st][-1])] if has_st.any() else [])
        if issued < model_macs:
            finals.append(self.sync(U_CTRL, layer, 0, finals[:1], skipped_macs=model_macs - issued))
        self.prev_done = self.join(finals, layer)
        if split:
            self.elementwise(layer, VecKind.ADD, out_elems * (plan.split - 1), red_rows,
                             0 if ws_res else ws_bytes, 0 if c_res else out_elems * cb)

    # -- decode attention ---------------------------------------------------------------------
    @staticmethod
    def is_decode_attention(op) -> bool:
        """QK^T / softmax / SV of decode (one query row per request and head against its KV cache)."""
        if op.role in ("attn_qk", "attn_sv"):
            return isinstance(op, GemmOp) and op.b.kind == "kv_cache"
        return False

    def decode_attention(self, ops, layer: int) -> None:
        """One fused decode-attention kernel (FlashDecoding / paged attention) for every request and
        head of the layer: each CTA streams a (request, KV head, KV split) block of K and V from HBM
        once, QK^T, the softmax and SV stay on chip, so the kernel costs one launch, the KV bytes
        through the memory model and tensor-core work with the query rows (the heads of a GQA group)
        padded to the MMA granule; KV splits keep every SM busy whatever the batch and lengths.
        With ``decode_attention_kv: per_query_head`` a GQA group's K and V are streamed once per
        query head instead.

        With ``decode_attention_split: none`` nothing is split: one CTA per request and KV head
        (per query head with ``per_query_head``) streams its whole K and V at the SM's share of
        the memory bandwidth (its in-flight limit if lower); CTAs go in launch order to the first
        free SM (:func:`list_schedule`); the kernel ends when both its busiest SM has streamed its
        CTAs (unit ``sm_stream``, from the kernel's start) and the loads through the memory model
        and the tensor-core work are done."""
        cfg = self.cfg
        T = self.tp
        min_m = cfg.tiles.min_m
        tk = cfg.tiles.k
        kv_bytes = 0.0
        k_iters = 0                      # k-iterations (tk keys) of a min_m x hd tile, summed over tasks
        macs_model = 0
        hd = 0
        bits = 16
        rate = 0.0
        exps = 0
        rows = 0
        ctas = {"attn_qk": [], "attn_sv": []}     # per op: (CTAs, bytes each)
        for op in ops:
            if not isinstance(op, GemmOp):
                rows_, cols_ = self.shard_vector(op)
                exps += rows_ * cols_
                rows += rows_
                continue
            M, N, K, G, _ = self.shard_gemm(op)
            macs_model += int(op.macs)
            reads = 1
            if cfg.decode_attention_kv == "per_query_head":
                # M = query heads of the group x query rows per request
                reads = max(1, M // max(1, int(op.attrs.get("attn_rows", 1))))
            one = op.b.nbytes / max(1, int(op.count))            # one request's K (or V) head
            kv_bytes += one * G * reads
            ctx = N if op.role == "attn_qk" else K
            hd = max(hd, K if op.role == "attn_qk" else N)
            prec = mma_precision(op)
            bits = operand_bits(op)
            tk = int(k_depth(cfg.tiles.k, bits))
            k_iters += G * -(-M // min_m) * -(-ctx // tk)
            rate = cfg.mma_issue_rate(prec)
            ctas[op.role].append((G * reads, one))
        start = self.kernel_start(layer)
        nc = CHUNKS
        S = cfg.sm.count
        ld = [_part(int(kv_bytes), nc, c) for c in range(nc)]
        it = [_part(k_iters, nc, c) for c in range(nc)]
        macs_all = [_part(macs_model, nc, c) for c in range(nc)]
        stream = -1
        if cfg.decode_attention_split == "none":
            # the busiest SM streams its CTAs from the kernel's start, beside the loads below
            # (which time the kernel's bytes through the memory model)
            stream = self.sync(U_STREAM, layer, int(round(self._unsplit_stream_cycles(ctas))), [start])
        g_prev = []
        last = -1
        for c in range(nc):
            dl = [start] + ([g_prev[-2]] if len(g_prev) >= 2 else [])
            li = int(self.pb.add(Op.LOAD, U_RD, layer, nbytes=ld[c], addr=self._alloc(ld[c]),
                                 deps=np.array(dl, np.int64))[0]) if ld[c] > 0 else -1
            per_sm_k = -(-it[c] // S) * tk
            gi = int(self.pb.add(Op.GEMM, U_SM, layer, m=min_m, n=max(1, hd), k=per_sm_k,
                                 deps=np.array([li, start], np.int64),
                                 aux=np.array([int(round(rate * RATE_SCALE)), bits, macs_all[c],
                                               (S << 8) | (1 << 1)], np.int64))[0])
            g_prev.append(gi)
            last = gi
        if stream >= 0:
            last = self.join([last, stream], layer)
        if exps:
            last = int(self.pb.add(Op.VECTOR, U_SM, layer, m=int(exps), n=int(rows), k=0,
                                   aux=np.array([int(VecKind.SOFTMAX)], np.int64),
                                   deps=np.array([last], np.int64))[0])
        out_b = sum(op.c.nbytes for op in ops if isinstance(op, GemmOp) and op.role == "attn_sv") / T
        if out_b > 0 and not all(self.resident(op.c, op.c.nbytes / T) for op in ops
                                 if isinstance(op, GemmOp) and op.role == "attn_sv"):
            last = int(self.pb.add(Op.STORE, U_WR, layer, nbytes=int(out_b), addr=self._alloc(out_b),
                                   deps=np.array([last], np.int64))[0])
        self.prev_done = last

    def _unsplit_stream_cycles(self, ctas) -> float:
        """Cycles of the busiest SM when every CTA of a decode-attention kernel streams its
        request's whole K and V head (``decode_attention_split: none``) at the SM's rate (the
        memory bandwidth over the SMs, or its operand pull rate if lower), CTAs dispatched in
        launch order to the first free SM. ``ctas[role]``: (CTAs, bytes each) per op."""
        S = self.cfg.sm.count
        bpc = min(self.hbm_bpc / S, self.cfg.feed_bytes_per_cycle())
        qk, sv = ctas["attn_qk"], ctas["attn_sv"]
        if len(qk) == len(sv) and all(a[0] == b[0] for a, b in zip(qk, sv)):
            parts = [(a[0], a[1] + b[1]) for a, b in zip(qk, sv)]    # K and V of a request: one CTA
        else:
            parts = qk + sv
        work = np.concatenate([np.full(int(n), nbytes / bpc) for n, nbytes in parts] or [np.zeros(0)])
        return float(list_schedule(work, S))

    # -- prefill (context) attention -----------------------------------------------------------
    def prefill_attention(self, ops, layer: int) -> None:
        """One fused FlashAttention-2-style kernel for the QK^T, softmax and SV of every request and
        head of a layer (``prefill_attention: fused`` or ``attention: flash``).

        One CTA per (request, query head, block of query rows) loops over blocks of keys with Q in
        shared memory and the scores in registers: Q, K and V are read from HBM once (a GQA group's
        query heads re-read their K/V head from L2) and O is written once. With a causal mask a
        query block visits only the key blocks up to its last row; the masked tiles are skipped and
        counted as skipped MACs. CTAs of unequal length go to the SMs in launch order
        (:func:`list_schedule`), so the kernel lasts as long as its busiest SM slot. Within a CTA
        the tensor-core work and the softmax (max, exp, sum, and the rescale of the O accumulator
        per key block) are serialised, as in FlashAttention-2; the softmax instructions count the
        work spread over all lanes, and the SMs then wait for the busiest slot's excess of it (the
        same imbalance as its tensor-core work)."""
        cfg = self.cfg
        tk = cfg.tiles.k
        works = []
        macs_exec = macs_full = 0
        scores = rescale = rows_tot = 0
        q_bytes = kv_bytes = o_bytes = 0.0
        hd, bits, rate, bq, bk, c = 0, 16, 0.0, 128, 64, 1
        qks = [op for op in ops if isinstance(op, GemmOp) and op.role == "attn_qk"]
        svs = [op for op in ops if isinstance(op, GemmOp) and op.role == "attn_sv"]
        for qk, sv in zip(qks, svs):
            M, N, K, G, _ = self.shard_gemm(qk)
            rows = int(qk.attrs.get("attn_rows", M))
            grp = max(1, M // max(1, rows))
            keys, hd = N, K
            prec = mma_precision(qk)
            bits = operand_bits(qk)
            rate = cfg.mma_issue_rate(prec)
            tk = int(k_depth(cfg.tiles.k, bits))
            bq, bk, c = flash_tiles(hd, bits / 8.0, float(cfg.sm.smem), float(cfg.sm.registers),
                                    cfg.accumulator_bytes, cfg.tiles.max_ctas_per_sm)
            nb = -(-rows // bq)
            r_i = np.minimum(bq, rows - bq * np.arange(nb))
            if qk.attrs.get("causal"):
                last = (keys - rows) + bq * np.arange(nb) + r_i     # keys the block's last row sees
                blocks = -(-np.minimum(keys, last) // bk)
            else:
                blocks = np.full(nb, -(-keys // bk))
            seen = np.minimum(keys, blocks * bk)
            heads = G * grp
            works.append(np.tile(blocks * 2 * -(-bk // tk), heads).astype(np.float64))
            macs_exec += int(2 * heads * (r_i * seen).sum() * hd)
            macs_full += int(2 * heads * rows * keys * hd)
            scores += int(heads * (r_i * seen).sum())
            rescale += int(heads * (r_i * blocks).sum() * hd)
            rows_tot += heads * rows
            qb = M * K * _bpe(qk.a.dtype) * G
            kb = K * N * _bpe(qk.b.dtype) * G
            vb = sv.K * sv.N * _bpe(sv.b.dtype) * G
            ob = sv.M * sv.N * _bpe(sv.c.dtype) * G
            q_bytes += 0 if self.resident(qk.a, qb) else qb
            kv_bytes += (0 if self.resident(qk.b, kb) else kb) + (0 if self.resident(sv.b, vb) else vb)
            o_bytes += 0 if self.resident(sv.c, ob) else ob
        # MACs over all devices: the executed share of the model's (uneven head splits included)
        model_macs = sum(int(op.macs) for op in qks + svs)
        issued = int(round(model_macs * macs_exec / max(1, macs_full)))
        work = np.concatenate(works) if works else np.zeros(0)
        S = cfg.sm.count
        span = int(np.ceil(list_schedule(work, S * c)))      # main-loop iterations of the busiest slot
        start = self.kernel_start(layer)
        nc = max(1, min(CHUNKS, span))
        ld_tot = int(q_bytes + kv_bytes)
        g_prev, stores = [], []
        last = start
        for j in range(nc):
            share = lambda x: int(_part(x, nc, j))  # noqa: E731
            ld = share(ld_tot)
            dl = [start] + ([g_prev[-2]] if len(g_prev) >= 2 else [])
            li = int(self.pb.add(Op.LOAD, U_RD, layer, nbytes=ld, addr=self._alloc(ld),
                                 deps=np.array(dl, np.int64))[0]) if ld > 0 else -1
            flags = (min(len(work), S * c) << 8) | (c << 1) | (FLAG_LAST if j == nc - 1 else 0)
            gi = int(self.pb.add(Op.GEMM, U_SM, layer, m=bq, n=max(1, hd), k=share(span) * tk,
                                 deps=np.array([li, last], np.int64),
                                 aux=np.array([int(round(rate * RATE_SCALE)), bits, share(issued), flags],
                                              np.int64))[0])
            g_prev.append(gi)
            vi = int(self.pb.add(Op.VECTOR, U_SM, layer, m=max(1, share(scores)), n=max(1, share(rows_tot)), k=0,
                                 aux=np.array([int(VecKind.SOFTMAX)], np.int64), deps=np.array([gi], np.int64))[0])
            last = int(self.pb.add(Op.VECTOR, U_SM, layer, m=max(1, share(rescale)), n=1, k=0,
                                   aux=np.array([int(VecKind.MUL)], np.int64), deps=np.array([vi], np.int64))[0])
            st = share(int(o_bytes))
            if st > 0:           # the finished O rows of the chunk leave while the next one runs
                stores.append(int(self.pb.add(Op.STORE, U_WR, layer, nbytes=st, addr=self._alloc(st),
                                              deps=np.array([last], np.int64))[0]))
        # the softmax instructions above spread their work evenly over the SMs; the busiest slot has
        # `imbalance` times the mean of it, the SMs wait for it
        used = max(1, min(len(work), S * c))
        imbalance = span * used / max(1.0, float(work.sum())) - 1.0
        if imbalance > 0:
            prim, rates = prim_table(), vector_rates(cfg.vector)
            soft = sum(float(vector_cycles(int(kind), int(m), int(n), prim, rates, 0))
                       for kind, m, n in ((VecKind.SOFTMAX, scores, rows_tot), (VecKind.MUL, rescale, 1)))
            last = self.sync(U_SM, layer, int(round(imbalance * soft)), [last])
        # masked tiles the kernel skipped cost no time; counted so issued + skipped = the model's MACs
        self.prev_done = self.sync(U_CTRL, layer, 0, [last] + stores[-1:], skipped_macs=model_macs - issued)

    # -- vector ops -------------------------------------------------------------------------
    def elementwise(self, layer, kind, elements, rows, in_bytes, out_bytes) -> None:
        """One element-wise / row kernel on the CUDA cores, in VEC_CHUNKS chunks of its elements:
        a chunk's load may run while the previous chunk computes (two chunks in flight, as warps
        hide memory latency behind other warps' arithmetic), its store follows its arithmetic."""
        start = self.kernel_start(layer)
        nch = max(1, min(VEC_CHUNKS, elements))
        stores = []
        vs = [-1]
        for c in range(nch):
            el = _part(elements, nch, c)
            rw = _part(rows, nch, c)
            ib = _part(int(in_bytes), nch, c)
            ob = _part(int(out_bytes), nch, c)
            ld = -1
            if ib > 0:
                ld = int(self.pb.add(Op.LOAD, U_RD, layer, nbytes=ib, addr=self._alloc(ib),
                                     deps=np.array([start, vs[-2] if len(vs) >= 2 else -1], np.int64))[0])
            vs.append(int(self.pb.add(Op.VECTOR, U_SM, layer, m=el, n=rw, k=0, aux=np.array([int(kind)], np.int64),
                                      deps=np.array([start, ld, vs[-1]], np.int64))[0]))
            if ob > 0:
                stores.append(int(self.pb.add(Op.STORE, U_WR, layer, nbytes=ob, addr=self._alloc(ob),
                                              deps=np.array([vs[-1]], np.int64))[0]))
        self.prev_done = self.join([vs[-1]] + stores[-1:], layer)

    def row_reads(self, op: VectorOp, rows: int, cols: int, row_bytes: float) -> int:
        """HBM reads of a row kernel's input rows (1 unless a looped row kernel's re-reads
        miss L2; ``RowKernelConfig``)."""
        rk = self.cfg.row_kernel
        name = ROW_KERNELS.get(int(op.kind))
        if name is None or rk.onchip_elements is None or cols <= rk.onchip_elements:
            return 1
        in_flight = min(rows, self.cfg.sm.count * max(1, self.cfg.sm.max_threads // rk.cta_threads))
        if in_flight * row_bytes <= self.act_l2:
            return 1
        return int(rk.loops[name])

    def vector(self, op: VectorOp, layer: int) -> None:
        self.vector_kernel([op], layer)
        if op.role == "combine" and self.tp > 1:
            # the experts' row-split down projections left partial sums: one all-reduce of the
            # combined tokens x d_model
            self.all_reduce(layer, sum(t.nbytes for t in op.outputs))

    def vector_kernel(self, ops, layer: int) -> None:
        """One kernel for vector ops of one kind over their rows together (one op, or the same op
        of several experts: ``moe_gemm: grouped``); each input and output of the ops is one
        buffer, in L2 if the whole of it fits."""
        shards = [self.shard_vector(op) for op in ops]
        fracs = [r * c / max(1, int(op.rows) * int(op.cols)) for op, (r, c) in zip(ops, shards)]
        rows = sum(r for r, _ in shards)
        elems = sum(r * c for r, c in shards)

        def traffic(slot):
            tot = [sum(getattr(op, slot)[i].nbytes * f for op, f in zip(ops, fracs))
                   for i in range(len(getattr(ops[0], slot)))]
            return [b if not self.resident(getattr(ops[0], slot)[i], b) else 0.0 for i, b in enumerate(tot)]
        ins = traffic("inputs")
        in_b = sum(ins)
        if ins and ins[0] > 0:
            op = ops[0]
            reads = self.row_reads(op, rows, shards[0][1], ins[0] / max(1, rows))
            in_b += (reads - 1) * ins[0]
        self.elementwise(layer, ops[0].kind, elems, rows, in_b, sum(traffic("outputs")))

    def all_reduce(self, layer: int, nbytes: float) -> None:
        if self.cfg.interconnect.algorithm == "ideal":
            return
        start = self.kernel_start(layer)
        x = int(self.pb.add(Op.XFER, U_LINK, layer, nbytes=int(nbytes), aux=np.array([self.tp], np.int64),
                            deps=np.array([start], np.int64))[0])
        self.prev_done = x

    # -- capacity -------------------------------------------------------------------------
    def check_capacity(self, wl) -> None:
        from archsim.workload.spec import check_tensor_parallel_heads
        check_tensor_parallel_heads(wl.spec, self.tp, "parallel.tensor")
        cap = self.cfg.memory.capacity
        if cap is None:
            return
        rep = wl.group_repeat()
        need = 0.0
        for op, t in wl.stored_tensors():
            # a KV head replicated on several devices is stored on each of them
            kvh = _kv_heads(t) if t.kind == "kv_cache" else 0
            share = min(self.tp, kvh) if kvh else self.tp
            need += stored_nbytes(self.cfg, op, t) * rep[op.layer] / share
        devices = self.tp * self.cfg.parallel.pipeline
        need /= self.cfg.parallel.pipeline
        if need > cap:
            raise LoweringError(
                f"the model's weights and KV cache need {need / 1e9:.1f} GB per device "
                f"({devices} device(s)) but memory.capacity is {cap / 1e9:.1f} GB; add devices "
                f"(parallel.tensor / parallel.pipeline) or reduce batch / KV length", path="memory.capacity")

    def layer_setup_cycles(self, wl) -> int:
        """Host setup cycles per layer instance of a forward pass (``launch.layer_setup``): none for
        op-by-op timing or a single-GEMM workload (one kernel call, no runtime pass)."""
        ln = self.cfg.launch
        if ln.sync != "per_run" or wl.spec.get("kind") in ("gemm", "vector"):
            return 0
        t = ln.layer_setup_prefill if wl.phase == "prefill" and ln.layer_setup_prefill is not None else ln.layer_setup
        return int(round(t * self.clock))

    def expert_groups(self, ops) -> dict:
        """group name -> ops, for the experts' ops of a mixture-of-experts layer that run as one
        kernel (``moe_gemm: grouped``): the same op (up, activation, gate, down) of every active
        expert of a layer, named with ``experts`` for the expert index."""
        groups: dict = {}
        if self.cfg.moe_gemm != "grouped":
            return groups
        for op in ops:
            if "expert" in op.attrs and op.role in ("expert", "activation", "gate"):
                name, n = _EXPERT.subn(".experts.", op.name, count=1)
                if n:
                    groups.setdefault(name, []).append(op)
        return groups

    def run(self, wl):
        self.check_capacity(wl)
        rep = wl.group_repeat()
        for g in wl.groups:
            self.pb.layer(g.name, g.repeat)
        fixed = int(round(self.cfg.launch.fixed * self.clock))
        after = int(round(self.cfg.launch.fixed_after * self.clock))
        first = True
        per_op = self.cfg.launch.sync == "per_op"
        setup = self.layer_setup_cycles(wl)
        set_up: set = set()
        ops = list(wl.ops())
        fuse = self.cfg.decode_attention == "fused" and wl.phase == "decode"
        att_layers = {}
        if fuse:
            for op in ops:
                if self.is_decode_attention(op):
                    att_layers.setdefault(op.layer, []).append(op)
            for op in ops:
                if op.layer in att_layers and op.role == "softmax":
                    att_layers[op.layer].append(op)
        flash: dict = {}                 # layer -> its fused prefill attention ops
        if wl.phase == "prefill":
            for op in ops:
                if op.role in ("attn_qk", "softmax", "attn_sv") and \
                        (self.cfg.prefill_attention == "fused" or op.attrs.get("fused")):
                    flash.setdefault(op.layer, []).append(op)
        done_att = set()
        experts = self.expert_groups(ops)
        group_of = {o.name: g for g, members in experts.items() for o in members}
        done_grp: set = set()
        for op in ops:
            grp = group_of.get(op.name)
            if grp is not None and grp in done_grp:
                continue                 # lowered with the first expert of its group
            layer = self.pb.layer(op.layer, rep[op.layer])
            runtime = f"{op.layer}.(runtime)"
            if fixed > 0 and (first or per_op):
                # per_op: the host waits for the previous op, then pays one timed call
                self.pb.tag(runtime, members=[])
                self.sync(U_HOST, layer, fixed, [self.prev_done])
            first = False
            if setup > 0 and op.layer not in set_up:
                # the runtime prepares the layer while the GPU waits (additive, not hidden)
                set_up.add(op.layer)
                self.pb.tag(runtime, members=[])
                self.sync(U_HOST, layer, setup, [self.prev_done])
            if op.layer in att_layers and (self.is_decode_attention(op) or op.role == "softmax"):
                if op.layer not in done_att:
                    done_att.add(op.layer)
                    self.pb.tag(attention_name(op.name), [o.name for o in att_layers[op.layer]])
                    self.decode_attention(att_layers[op.layer], layer)
                continue
            if op.layer in flash and op.role in ("attn_qk", "softmax", "attn_sv"):
                if op.layer not in done_att:
                    done_att.add(op.layer)
                    self.pb.tag(attention_name(op.name), [o.name for o in flash[op.layer]])
                    self.prefill_attention(flash[op.layer], layer)
                continue
            if grp is not None:
                done_grp.add(grp)
                members = experts[grp]
                self.pb.tag(grp, [o.name for o in members])
                if isinstance(op, GemmOp):
                    self.grouped_gemm(members, layer, grp)
                else:
                    self.vector_kernel(members, layer)
            else:
                self.pb.tag(op.name)
                if isinstance(op, GemmOp):
                    self.gemm(op, layer)
                else:
                    self.vector(op, layer)
            if after > 0 and per_op:
                # the rest of the timed call, after its last launch, overlaps the GPU's work
                self.sync(U_HOST, layer, after, [])
        if after > 0 and not per_op and ops:
            self.pb.tag(f"{ops[-1].layer}.(runtime)", members=[])
            self.sync(U_HOST, self.pb.layer(ops[-1].layer, rep[ops[-1].layer]), after, [])
        return self.pb.build(meta={"tilings": self.plans})
