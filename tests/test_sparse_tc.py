"""Sparse tensor cores: hand-checked cycles per dataflow, kernel vs naive twin, bounds,
mask vs statistics agreement."""
from __future__ import annotations

import math

import numpy as np
import pytest

from archsim import uarch as registry
from archsim.api import load, simulate
from archsim.isa import Op
from archsim.uarch.base import LowerOptions

VARIANTS = ("tc_dense", "stc_2to4", "ds_stc", "rm_stc")


def tiny_arch(variant, **over):
    a = dict(name="tiny", uarch=variant, clock="1 GHz", precision="fp16",
             gpu={"sms": 1, "tensor_cores_per_sm": 1},
             mma={"m": 2, "n": 2, "k": 2},
             warp={"m": 4, "n": 4, "k": 4}, cta={"m": 4, "n": 4, "k": 8},
             stc={"n": 2, "m": 4, "metadata_bits": 2},
             outer={"a_group": 2, "b_group": 2, "acc_banks": 2, "decode_bits_per_cycle": 1024},
             rowmerge={"units": 2, "lanes": 1, "vector": 2, "merge_width": 2, "decode_bits_per_cycle": 1024},
             memory={"bandwidth": "1000 TB/s", "latency": "0 ns"})
    for k, v in over.items():
        if isinstance(v, dict):
            a[k] = {**a.get(k, {}), **v}
        else:
            a[k] = v
    return a


def gemm_durations(arch, W, X, tmp_path, extra=()):
    """Durations of the GEMM instructions for weight mask W (K, N) and activation mask
    X (M, K) of a GEMM C[M,N] = X[M,K] W[K,N]."""
    K, N = W.shape
    M = X.shape[0]
    p = tmp_path / "w.npy"
    np.save(p, W.astype(np.uint8))
    cfg, wl = load(arch, {"kind": "gemm", "M": M, "N": N, "K": K,
                          "sparsity": {"weights": {"mask_file": str(p)}}}, overrides=list(extra))
    op = wl.ops()[0]
    op.attrs["sparsity"]["activation_mask"] = X.astype(bool)
    u = registry.get(cfg.uarch)
    prog = u.lower(cfg, wl, LowerOptions())
    dur, cnt = u.cost(cfg, prog)
    g = prog.op == Op.GEMM
    return prog, dur[g], dict(zip(u.counter_names, cnt.sum(0)))


# W[k, i]: weight mask, K = 8 rows (reduction), N = 4 columns (output features = core rows)
W_HAND = np.array([[1, 1, 0, 0],     # k0: a = 2
                   [1, 1, 1, 0],     # k1: a = 3
                   [0, 0, 0, 0],     # k2: a = 0
                   [1, 0, 0, 1],     # k3: a = 2
                   [1, 1, 1, 1],     # k4: a = 4
                   [0, 1, 0, 0],     # k5: a = 1
                   [0, 0, 1, 1],     # k6: a = 2
                   [1, 0, 1, 0]])    # k7: a = 2
# B rows of the core (activation X[:, k] over 4 tokens)
B_ROWS = np.array([[1, 0, 1, 0],     # k0: b = 2, columns 0, 2 -> both in bank 0
                   [1, 1, 0, 0],     # k1: b = 2, banks 0, 1
                   [1, 1, 1, 1],     # k2: b = 4
                   [0, 0, 0, 0],     # k3: b = 0
                   [0, 1, 0, 1],     # k4: b = 2, columns 1, 3 -> both in bank 1
                   [1, 1, 1, 0],     # k5: b = 3, groups (0,1) (2)
                   [0, 0, 0, 1],     # k6: b = 1
                   [1, 0, 0, 0]])    # k7: b = 1
X_HAND = B_ROWS.T.copy()             # (M = 4 tokens, K = 8)


def test_hand_dense(tmp_path):
    # one 4x4 warp tile, 8 k-steps, MMA 2x2x2 per cycle: ceil(4/2)*ceil(4/2)*ceil(8/2) = 16
    _, d, c = gemm_durations(tiny_arch("tc_dense"), W_HAND, X_HAND, tmp_path)
    assert d.tolist() == [16]
    assert c["array.mac"] == 4 * 4 * 8 and c["array.mac_skipped"] == 0


def test_hand_stc_2to4(tmp_path):
    # W_HAND column 0 has 3 non-zeros in k0..k3 -> not 2:4 -> runs dense: 16 cycles
    _, d, _ = gemm_durations(tiny_arch("stc_2to4"), W_HAND, X_HAND, tmp_path)
    assert d.tolist() == [16]
    # a 2:4 mask: every column keeps 2 of each 4 along K -> logical k per cycle 2*4/2 = 4:
    # ceil(4/2)*ceil(4/2)*ceil(8/4) = 8 cycles; issued MACs = 4*4*(8/2) = 64
    W24 = np.array([[1, 0, 1, 1], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 0, 1],
                    [0, 1, 0, 0], [1, 0, 1, 0], [0, 0, 1, 1], [1, 1, 0, 1]])
    assert (W24.reshape(2, 4, 4).sum(1) <= 2).all()
    _, d, c = gemm_durations(tiny_arch("stc_2to4"), W24, X_HAND, tmp_path)
    assert d.tolist() == [8]
    assert c["array.mac"] == 64 and c["array.mac_skipped"] == 64
    # metadata: 8 cycles x (2 rows x 2 kept values per cycle) x 2 bits = 64 bits = 8 bytes
    assert c["metadata.read_bytes"] == 8


def test_hand_outer_product(tmp_path):
    # per k: ceil(a/2) * scatter cycles of B row k (groups of 2 non-zeros, bank = column mod 2)
    # k0: a2 b2 cols 0,2 same bank -> 2 cycles: 1*2 = 2
    # k1: a3 b2 cols 0,1            -> 1:       2*1 = 2
    # k2: a0                        ->          0
    # k3: b0                        ->          0
    # k4: a4 b2 cols 1,3 same bank  -> 2:       2*2 = 4
    # k5: a1 b3 groups (0,1),(2)    -> 1+1:     1*2 = 2
    # k6: a2 b1                     -> 1:       1*1 = 1
    # k7: a2 b1                     -> 1:       1*1 = 1      total 12
    # bitmap decode 8*(4+4)/1024 -> 1 cycle, hidden
    _, d, c = gemm_durations(tiny_arch("ds_stc"), W_HAND, X_HAND, tmp_path)
    assert d.tolist() == [12]
    # products: 2*2 + 3*2 + 4*2 + 1*3 + 2*1 + 2*1 = 25; conflicts k0: 1*(2-1), k4: 2*(2-1) = 3
    assert c["array.mac"] == 25 and c["array.mac_skipped"] == 4 * 4 * 8 - 25
    assert c["scatter.conflict_cycles"] == 3
    assert c["acc.write_bytes"] == 25 * 4 and c["decode.bits"] == 8 * 8
    # the 4x4 tile's partial sums leave the accumulation buffer once (one chunk): 4*4*4 bytes
    assert c["acc.spill_bytes"] == 4 * 4 * 4
    # without bank conflicts (4 banks) k0 and k4 take ceil(b/2)=1: 12 - 1 - 2 = 9
    _, d, _ = gemm_durations(tiny_arch("ds_stc", outer={"acc_banks": 4}), W_HAND, X_HAND, tmp_path)
    assert d.tolist() == [9]


def test_hand_row_merge(tmp_path):
    # core rows = weight columns: row0 k{0,1,3,4,7} row1 k{0,1,4,5} row2 k{1,4,6,7} row3 k{3,4,6}
    # b_k = 2 2 4 0 2 3 1 1; unit = row mod 2; lane cycles sum ceil(b_k/2), merge sum b_k / 2
    # unit0: row0 1+1+(k3 b0 skip)+1+1 = 4, products 2+2+2+1 = 7
    #        row2 1+1+1+1 = 4, products 2+2+1+1 = 6 -> max(8/1, ceil(13/2)=7) = 8
    # unit1: row1 1+1+1+2 = 5, products 2+2+2+3 = 9
    #        row3 (k3 skip)+1+1 = 2, products 2+1 = 3 -> max(7, ceil(12/2)=6) = 7
    # tile: max(8, 7) = 8
    _, d, c = gemm_durations(tiny_arch("rm_stc"), W_HAND, X_HAND, tmp_path)
    assert d.tolist() == [8]
    assert c["array.mac"] == 25 and c["merge.ops"] == 25
    # each of the 4 rows with work writes its 4-wide output row once: 4*4*4 bytes
    assert c["acc.write_bytes"] == 4 * 4 * 4
    # a merge network of 1 product per cycle binds: unit0 13, unit1 12 -> 13
    _, d, _ = gemm_durations(tiny_arch("rm_stc", rowmerge={"merge_width": 1}), W_HAND, X_HAND, tmp_path)
    assert d.tolist() == [13]


def test_hand_row_merge_b_fetch(tmp_path):
    # B rows fetched from shared memory once per chunk for the whole tile (broadcast to the
    # units): the union of the rows' k's {0,1,3,4,5,6,7}, minus k3 (B row empty):
    # k0 b2, k1 b2, k4 b2, k5 b3, k6 b1, k7 b1 -> 11 fp16 values + 6 row bitmaps of 4 bits
    # = 11*16 + 6*4 = 200 bits = 25 bytes
    # 16 B/cycle: 2 cycles, hidden under the 8 compute cycles
    _, d, c = gemm_durations(tiny_arch("rm_stc"), W_HAND, X_HAND, tmp_path)
    assert d.tolist() == [8] and c["bfetch.stall_cycles"] == 0
    # 2 B/cycle: ceil(25/2) = 13 cycles > 8: fetch bound, 5 stall cycles
    _, d, c = gemm_durations(tiny_arch("rm_stc", rowmerge={"b_fetch_bytes_per_cycle": 2}), W_HAND, X_HAND,
                             tmp_path)
    assert d.tolist() == [13] and c["bfetch.stall_cycles"] == 5
    # operands: 5+4+4+3 = 16 A non-zeros * 2 bytes + the 25 fetched B bytes (broadcast, read once)
    assert c["operand.read_bytes"] == 16 * 2 + 25
    # 1 B/cycle: 25 cycles
    _, d, _ = gemm_durations(tiny_arch("rm_stc", rowmerge={"b_fetch_bytes_per_cycle": 1}), W_HAND, X_HAND,
                             tmp_path)
    assert d.tolist() == [25]


def test_accumulation_bank_energy():
    """The outer-product accumulation buffer is priced per bank: a register file of
    warp.m*warp.n*4/acc_banks bytes, scaled from the 512 B reference RF with the SRAM
    size law (per-byte energy ~ size^0.5 below 32 KB)."""
    from archsim.energy import table_for
    from archsim.uarch.sparse_tc.energy import acc_bank_pj_per_byte, prices, supplement
    t = table_for(45)
    rf = supplement()["register_file_pj_per_byte"]
    # 32x32 fp32 tile in 8 banks: 512 B per bank = the reference RF -> rf per byte
    cfg, _ = load(tiny_arch("ds_stc", warp={"m": 32, "n": 32}, cta={"m": 32, "n": 32},
                            outer={"acc_banks": 8}), {"kind": "gemm", "M": 1, "N": 1, "K": 1})
    assert acc_bank_pj_per_byte(cfg, t) == pytest.approx(rf)
    # 32 banks of 128 B: sqrt(128/512) = 1/2 of it
    cfg, _ = load(tiny_arch("ds_stc", warp={"m": 32, "n": 32}, cta={"m": 32, "n": 32},
                            outer={"acc_banks": 32}), {"kind": "gemm", "M": 1, "N": 1, "K": 1})
    p = prices(cfg, t)
    assert p["acc.read_bytes"] == pytest.approx(rf / 2)
    assert p["acc.spill_bytes"] == pytest.approx(rf / 2 + 2 * rf)


# ------------------------------------------------------------------------------------------
# naive twin of the cost kernel (pure Python, from the masks)
# ------------------------------------------------------------------------------------------

def naive_durations(cfg, prog, W, X):
    A = W.T.astype(int)            # core A: (Mh, K)
    B = X.T.astype(int)            # core B: (K, Nh)
    Mh, K = A.shape
    Nh = B.shape[1]
    wm, wn, T = cfg.warp.m, cfg.warp.n, cfg.gpu.tensor_cores_per_sm
    row = prog.meta["sparse"]["optab"][0]
    bm, bn, bk = int(row[3]), int(row[4]), int(row[5])
    out = []
    for i in np.nonzero(prog.op == Op.GEMM)[0]:
        _, im, in_, j = prog.aux[i]
        r0, c0, k0 = im * bm, in_ * bn, j * bk
        r1, c1, k1 = min(Mh, r0 + bm), min(Nh, c0 + bn), min(K, k0 + bk)
        tcs = [0] * T
        w = 0
        for rs in range(r0, r1, wm):
            for cs in range(c0, c1, wn):
                a = A[rs:min(rs + wm, r1), k0:k1]
                b = B[k0:k1, cs:min(cs + wn, c1)]
                tcs[w % T] += naive_warp(cfg, a, b)
                w += 1
        out.append(max(tcs))
    return out


def naive_warp(cfg, a, b):
    wma, kt = a.shape
    wna = b.shape[1]
    v = cfg.uarch
    mm, mn, mk = cfg.mma.m, cfg.mma.n, cfg.mma.k
    dense = math.ceil(wma / mm) * math.ceil(wna / mn) * math.ceil(kt / mk)
    if v == "tc_dense":
        return dense
    if v == "stc_2to4":
        n, m = cfg.stc.n, cfg.stc.m
        ok = all(a[r, g:g + m].sum() <= n for r in range(wma) for g in range(0, kt, m))
        return math.ceil(wma / mm) * math.ceil(wna / mn) * math.ceil(kt / (mk * m // n)) if ok else dense
    if v == "ds_stc":
        o = cfg.outer
        tot = 0
        for k in range(kt):
            na = int(a[:, k].sum())
            cols = [c for c in range(wna) if b[k, c]]
            if na == 0 or not cols:
                continue
            sc = 0
            for g in range(0, len(cols), o.b_group):
                grp = cols[g:g + o.b_group]
                sc += max(sum(1 for c in grp if c % o.acc_banks == bank) for bank in range(o.acc_banks))
            tot += math.ceil(na / o.a_group) * sc
        return max(tot, math.ceil(kt * (wma + wna) / o.decode_bits_per_cycle))
    r = cfg.rowmerge
    lanes = [0] * r.units
    mrg = [0] * r.units
    for i in range(wma):
        for k in range(kt):
            if a[i, k] and b[k].sum():
                lanes[i % r.units] += math.ceil(b[k].sum() / r.vector)
                mrg[i % r.units] += int(b[k].sum())
    cyc = max(max(math.ceil(lanes[u] / r.lanes), math.ceil(mrg[u] / r.merge_width)) for u in range(r.units))
    # B rows needed by any row of the tile, fetched once: values + row bitmap
    bits = sum(int(b[k].sum()) * 16 + wna for k in range(kt) if a[:, k].any() and b[k].any())
    fetch = math.ceil(math.ceil(bits / 8) / r.b_fetch_bytes_per_cycle)
    return max(cyc, math.ceil(kt * (wma + wna) / r.decode_bits_per_cycle), fetch)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kernel_matches_naive(variant, seed, tmp_path):
    rng = np.random.default_rng(seed)
    M, N, K = rng.integers(3, 20), rng.integers(5, 40), rng.integers(8, 60)
    dw, dx = rng.uniform(0.1, 0.9, 2)
    W = rng.random((K, N)) < dw
    if variant == "stc_2to4" and seed == 1:            # a 2:4-compliant weight
        W = np.zeros((K, N), bool)
        for k0 in range(0, K, 4):
            for c in range(N):
                W[k0 + rng.choice(min(4, K - k0), size=min(2, K - k0), replace=False), c] = True
    X = rng.random((M, K)) < dx
    arch = tiny_arch(variant, gpu={"sms": 2, "tensor_cores_per_sm": 2}, cta={"m": 8, "n": 8, "k": 16},
                     outer={"acc_banks": 2, "decode_bits_per_cycle": 16},
                     rowmerge={"units": 3, "lanes": 2, "vector": 2, "merge_width": 3,
                               "decode_bits_per_cycle": 16, "b_fetch_bytes_per_cycle": 2 + seed})
    prog, d, _ = gemm_durations(arch, W, X, tmp_path)
    cfg, _ = load(arch, {"kind": "gemm", "M": 1, "N": 1, "K": 1})
    assert d.tolist() == naive_durations(cfg, prog, W, X)


# ------------------------------------------------------------------------------------------
# bounds
# ------------------------------------------------------------------------------------------

COMPUTE_GEMM = {"kind": "gemm", "M": 512, "N": 1024, "K": 1024}
FAST_MEM = ["memory.bandwidth=100 TB/s", "memory.latency=0 ns"]


def _sim(arch, wd, ad, extra=()):
    ov = FAST_MEM + [f"workload.sparsity.weights.density={wd}",
                     f"workload.sparsity.activations.density={ad}"] + list(extra)
    return simulate(arch, COMPUTE_GEMM, overrides=ov)


def test_density_one_no_faster_than_dense():
    dense = _sim("tc_dense", 1.0, 1.0)
    for v in ("stc_2to4", "ds_stc", "rm_stc"):
        r = _sim(v, 1.0, 1.0)
        assert r.peak_macs_per_cycle == dense.peak_macs_per_cycle
        assert r.cycles >= dense.cycles, v


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("wd,ad", [(1.0, 1.0), (0.5, 0.7), (0.1, 0.2)])
def test_cycles_at_least_issued_over_peak(variant, wd, ad):
    r = _sim(variant, wd, ad)
    issued = r.components["array"]["counts"]["mac"]
    skipped = r.components["array"]["counts"].get("mac_skipped", 0)
    assert r.cycles >= math.ceil(issued / r.peak_macs_per_cycle)
    assert r.cycles >= r.memory_bound_cycles
    assert issued + skipped == r.expected_macs                 # MACs conserved


@pytest.mark.parametrize("variant", ("ds_stc", "rm_stc"))
def test_density_zero_only_overheads(variant):
    r = _sim(variant, 0.0, 1.0)
    assert r.components["array"]["counts"]["mac"] == 0
    dense = _sim("tc_dense", 0.0, 1.0)
    # what is left: bitmap decode (32x32 tile: 64 bits per k-step, 256 bits per cycle)
    # and the pipeline; far below dense
    assert 0 < r.cycles < dense.cycles / 4


def test_stc_caps_at_two():
    dense = _sim("tc_dense", 1.0, 1.0)
    for wd in (0.5, 0.1):
        r = _sim("stc_2to4", wd, 1.0, ["workload.sparsity.weights.pattern=nm"] if wd == 0.5 else [])
        assert dense.cycles / r.cycles <= 2.0 + 1e-9
    r24 = _sim("stc_2to4", 0.5, 1.0, ["workload.sparsity.weights.pattern=nm",
                                      "workload.sparsity.weights.density=null"])
    assert dense.cycles / r24.cycles == pytest.approx(2.0, rel=0.05)


# ------------------------------------------------------------------------------------------
# masks vs statistics
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("variant,pattern,wd,ad", [
    ("ds_stc", "unstructured", 0.3, 0.5), ("ds_stc", "unstructured", 0.1, 1.0),
    ("rm_stc", "unstructured", 0.3, 1.0), ("rm_stc", "unstructured", 0.2, 0.5),
    ("stc_2to4", "unstructured", 0.05, 1.0), ("rm_stc", "nm", None, 0.6),
])
def test_mask_and_stats_agree(variant, pattern, wd, ad):
    def compute_cycles(structure, seed):
        ov = [f"workload.sparsity.weights.pattern={pattern}",
              f"workload.sparsity.activations.density={ad}",
              f"workload.sparsity.structure={structure}", f"workload.sparsity.seed={seed}"]
        if wd is not None:
            ov.append(f"workload.sparsity.weights.density={wd}")
        cfg, wl = load(variant, {"kind": "gemm", "M": 64, "N": 1024, "K": 1024}, overrides=ov)
        u = registry.get(cfg.uarch)
        prog = u.lower(cfg, wl, LowerOptions())
        assert list(prog.meta["tilings"].values())[0]["structure"] == structure
        dur, cnt = u.cost(cfg, prog)
        return dur[prog.op == Op.GEMM].sum(), cnt[:, 0].sum()
    m = [compute_cycles("mask", s) for s in range(2)]
    s = [compute_cycles("stats", s) for s in range(2)]
    mc, sc = np.mean([x[0] for x in m]), np.mean([x[0] for x in s])
    assert sc == pytest.approx(mc, rel=0.04)
    mm_, sm_ = np.mean([x[1] for x in m]), np.mean([x[1] for x in s])
    assert sm_ == pytest.approx(mm_, rel=0.02)


@pytest.mark.parametrize("variant", ("ds_stc", "rm_stc"))
def test_dense_weight_path_equals_mask_of_ones(variant, tmp_path):
    """Dense weights without a mask take the closed-form path; it must equal a mask of ones."""
    rng = np.random.default_rng(5)
    M, N, K = 9, 24, 40
    X = rng.random((M, K)) < 0.4
    arch = tiny_arch(variant, cta={"m": 8, "n": 8, "k": 16})
    _, d_mask, _ = gemm_durations(arch, np.ones((K, N), bool), X, tmp_path)
    cfg, wl = load(arch, {"kind": "gemm", "M": M, "N": N, "K": K},
                   overrides=["workload.sparsity.activations.density=0.4"])
    wl.ops()[0].attrs["sparsity"]["activation_mask"] = X
    u = registry.get(cfg.uarch)
    prog = u.lower(cfg, wl, LowerOptions())
    assert prog.meta["sparse"]["optab"][0][9] == 1          # dense-weight path taken
    dur, _ = u.cost(cfg, prog)
    assert dur[prog.op == Op.GEMM].tolist() == d_mask.tolist()


@pytest.mark.parametrize("field", ["buffers.shared_memory", "buffers.register_file"])
def test_buffers_too_small_for_a_tile_are_refused(field):
    from archsim.errors import ConfigError
    with pytest.raises(ConfigError) as e:
        load("stc_2to4", "gemm", overrides=[f"{field}=1 B"])
    assert e.value.path == field
    # the limits follow the config: 3 stages x (128 + 128) x 64 fp16 values; 128 x 128 x 4 B
    load("stc_2to4", "gemm", overrides=["buffers.shared_memory=96 KiB", "buffers.register_file=64 KiB"])
    with pytest.raises(ConfigError):
        load("stc_2to4", "gemm", overrides=["buffers.shared_memory=95 KiB"])


def test_ctas_dealt_past_the_last_sm_run_in_the_same_wave():
    """CTAs are dealt to SMs from where the previous op stopped. The first S CTAs of an op form
    one wave wherever they land: the CTAs that wrap past the last SM must not queue their tile
    loads behind every step of the others (they did, and a latency-bound GEMM ran two waves)."""
    from archsim.mem.interface import build_memory
    from archsim.sim.timing import schedule
    from archsim.uarch.sparse_tc.lower import SparseTCLowerer

    # 4 SMs, 4 CTAs of 4 rows each over 8 k chunks of 8; loads latency-bound (100 ns, 1 stage)
    arch = tiny_arch("tc_dense", gpu={"sms": 4}, buffers={"stages": 1},
                     memory={"bandwidth": "100 GB/s", "latency": "100 ns"})
    cfg, wl = load(arch, {"kind": "gemm", "M": 4, "N": 16, "K": 64})
    mem = build_memory(cfg.memory, cfg.clock)
    spans = []
    for first_sm in (0, 2, 3):
        low = SparseTCLowerer(cfg, mem.peak_bytes_per_cycle)
        low.next_sm = first_sm
        prog = low.run(wl)
        dur, _ = registry.get(cfg.uarch).cost(cfg, prog)
        start, finish, _, _ = schedule(prog, dur, mem)
        g = prog.op == Op.GEMM
        assert sorted(set(prog.unit[g] - 4)) == [0, 1, 2, 3]
        # every CTA's first k step waits for its own tile after the 100-cycle latency; the tile
        # loads (64 B at 100 B/cycle: one cycle each) are issued back to back, none a wave later
        first = [start[g & (prog.unit == 4 + s)].min() for s in range(4)]
        assert min(first) >= 100 and max(first) - min(first) <= 4
        spans.append(int(finish.max()))
    assert spans[1] == spans[0] and spans[2] == spans[0]


def test_decode_cycles_grow_with_the_batch():
    c = [simulate("tc_dense", "opt-1.3b", phase="decode", batch=b, kv_len=512).cycles for b in (1, 2, 4)]
    assert c[0] <= c[1] <= c[2]


def test_a_program_too_large_for_memory_is_refused_up_front(monkeypatch):
    """Every CTA step is an instruction: a Llama-2-7B prefill of 4 x 2048 tokens needs about
    1.7 M of them (one block lowered, the others weighted). With room for 0.64 M (0.2 GB at 250 B
    each, 80% of it usable), the run stops before lowering with an error naming the field (a
    prefill of 131,072 tokens on a 24 GB machine used to be killed for want of memory)."""
    import archsim.isa as isa
    from archsim.errors import OutOfRangeError
    monkeypatch.setattr(isa, "available_memory_bytes", lambda: 2e8)
    with pytest.raises(OutOfRangeError) as e:
        simulate("tc_dense", "llama2-7b", phase="prefill", batch=4, seq_len=2048)
    assert e.value.path == "workload.seq_len" and "gpu microarchitecture" in str(e.value)
    simulate("tc_dense", "gpt2", phase="prefill", batch=1, seq_len=64)          # a small one still runs


def test_chunk_compliance_is_every_overlapping_group():
    """A 2:4 CTA chunk is compliant when every 4-wide group it overlaps is: groups [T, F, T]
    over K = 12 with 6-deep chunks -> chunk 0 covers groups 0-1 (not compliant), chunk 1
    groups 1-2 (not compliant); with 4-deep chunks each chunk is its own group."""
    from archsim.uarch.sparse_tc.lower import _chunk_all
    comp = np.array([[1, 0, 1], [1, 1, 1]], np.int8)
    assert _chunk_all(comp, 12, 6, 4).tolist() == [[False, False], [True, True]]
    assert _chunk_all(comp, 12, 4, 4).tolist() == [[True, False, True], [True, True, True]]
    assert _chunk_all(comp, 10, 8, 4).tolist() == [[False, True], [True, True]]
    rng = np.random.default_rng(3)
    for _ in range(200):
        m, K, bk = int(rng.choice([4, 8])), int(rng.integers(1, 200)), int(rng.choice([4, 6, 7, 16, 32]))
        c = rng.random((3, -(-K // m))) < 0.8
        want = [[c[r, (j * bk) // m: -(-min(K, (j + 1) * bk) // m)].all() for j in range(-(-K // bk))]
                for r in range(3)]
        assert _chunk_all(c, K, bk, m).tolist() == want


def test_warp_tile_that_does_not_divide_the_cta_tile_names_warp():
    from archsim.errors import ConfigError
    with pytest.raises(ConfigError) as e:
        load("ds_stc", "gemm", overrides=["warp.n=48"])
    assert e.value.path == "warp" and "128x128" in str(e.value) and "32x48" in str(e.value)
