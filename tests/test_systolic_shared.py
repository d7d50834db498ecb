"""The systolic arrays' shared on-chip memory (``sram.shared``: a global buffer, TPUv4i's CMEM):
an activation too large for the tile buffers' budget but within the shared memory's stays on
chip between ops, and its tiles move through the shared memory's pipe instead of off-chip."""
import copy

import numpy as np
import pytest

from archsim.api import simulate
from archsim.errors import ConfigError
from archsim.isa import Op
from archsim.workload.graph import GemmOp, GraphBuilder, LayerGroup, Tensor, Workload


def two_gemms() -> Workload:
    """X (256x64, on chip) @ W1 (64x256) -> H (256x256, an activation of 64 KiB in int8)
    @ W2 (256x32) -> Y (on chip)."""
    gb = GraphBuilder()
    X = Tensor("X", (256, 64), "int8", "onchip")
    H = Tensor("H", (256, 256), "int8", "activation")
    Y = Tensor("Y", (256, 32), "int8", "onchip")
    gb.add(GemmOp("g1", "l", 256, 256, 64, X, Tensor("W1", (64, 256), "int8", "weight"), H))
    gb.add(GemmOp("g2", "l", 256, 32, 256, H, Tensor("W2", (256, 32), "int8", "weight"), Y))
    return Workload("two_gemms", gb.g, [LayerGroup("l", 1)])


@pytest.fixture
def shared_arch(small_arch):
    # 32x32 os at 1 GHz, 64 KiB ifmap / filter / ofmap, 10 B/cycle off-chip; the tile buffers
    # keep activations up to 0.5 x 64 KiB = 32 KiB, the shared memory up to 0.5 x 1 MiB
    arch = copy.deepcopy(small_arch)
    arch["sram"]["shared"] = {"size": "1 MiB", "bandwidth": "100 GB/s"}
    return arch


def test_an_activation_in_the_shared_memory_moves_through_its_pipe(small_arch, shared_arch):
    # With H in the shared memory the tiler keeps 32 x 32 output tiles: g1's K = 64 in one tile
    # (W1's eight 64 x 32 column tiles loaded once each, X on chip), g2's K = 256 in one tile (a
    # 32 x 256 A tile is 8 KiB, double buffered in the 64 KiB ifmap buffer; W2, 8 KiB, loaded
    # once and kept). H = 65,536 B is therefore written as 64 tiles of 32 x 32 = 1,024 B and read
    # as 8 tiles of 8,192 B. (With H off-chip the timed tiler takes other tiles, whichever
    # time the memory's traffic best.)
    base = simulate(small_arch, two_gemms())
    sh = simulate(shared_arch, two_gemms())
    t1, t2 = (sh.program.meta["tilings"][g] for g in ("g1", "g2"))
    assert (t1["tm"], t1["tn"], t1["tk"]) == (32, 32, 64)
    assert (t2["tm"], t2["tn"], t2["tk"]) == (32, 32, 256)
    weights = 64 * 256 + 256 * 32
    assert base.offchip_bytes == weights + 2 * 65536          # H out to memory and back
    assert sh.offchip_bytes == weights                        # H stays on chip
    xfer = sh.program.op == Op.SHARED
    assert sorted(sh.program.nbytes[xfer].tolist()) == [1024] * 64 + [8192] * 8
    assert not ((base.program.op == Op.SHARED).any())
    comp = sh.components["shared_sram"]["counts"]
    assert comp == {"read_bytes": 65536, "write_bytes": 65536}
    # off-chip, 155,648 B at 10 B/cycle bound the run; on chip the arrays (10,608 busy cycles)
    # do, the shared memory's transfers (64 x ceil(1024 / 100) + 8 x ceil(8192 / 100) = 1,360
    # cycles of its pipe) hidden behind them
    assert base.cycles >= base.offchip_bytes / 10
    assert sh.units["array0"] == 10608
    assert sh.units["array0"] <= sh.cycles < 1.1 * sh.units["array0"] < base.cycles
    # and the shared memory's accesses are priced
    assert sh.components["shared_sram"]["energy_pj"]["read_bytes"] > 0


def test_a_slow_shared_memory_bounds_the_run(shared_arch):
    """At 1 B/cycle the shared memory's pipe is the bottleneck: its 131,072 B take 131,072
    cycles, the arrays' 10,608 overlap them; the pipe serialises the transfers of both ops."""
    shared_arch["sram"]["shared"]["bandwidth"] = "1 GB/s"
    slow = simulate(shared_arch, two_gemms())
    assert 2 * 65536 <= slow.cycles < 2 * 65536 + 10608


def test_a_too_small_shared_memory_spills_as_before(small_arch, shared_arch):
    shared_arch["sram"]["shared"]["size"] = "64 KiB"               # budget 32 KiB < H
    res = simulate(shared_arch, two_gemms())
    base = simulate(small_arch, two_gemms())
    assert res.offchip_bytes == base.offchip_bytes
    assert res.cycles == base.cycles
    assert not (res.program.op == Op.SHARED).any()


def test_vector_ops_read_and_write_through_the_shared_memory(small_arch):
    # a layernorm of 512 x 256 int8 rows (128 KiB in, 128 KiB out) whose tensors are activations
    from archsim.isa import VecKind
    from archsim.workload.graph import VectorOp
    gb = GraphBuilder()
    X = Tensor("X", (512, 256), "int8", "activation")
    Y = Tensor("Y", (512, 256), "int8", "activation")
    gb.add(VectorOp("ln", "l", VecKind.LAYERNORM, 512, 256, (X,), (Y,)))
    wl = Workload("ln", gb.g, [LayerGroup("l", 1)])
    base = simulate(small_arch, wl)
    assert base.offchip_bytes == 2 * 131072
    small_arch["sram"]["shared"] = {"size": "1 MiB", "bandwidth": "100 GB/s"}
    sh = simulate(small_arch, wl)
    assert sh.offchip_bytes == 0
    assert sh.components["shared_sram"]["counts"] == {"read_bytes": 131072, "write_bytes": 131072}


def test_presets_without_shared_memory_have_no_shared_transfers():
    res = simulate("systolic_128x128", "gpt2", phase="decode", kv_len=64)
    assert not (res.program.op == Op.SHARED).any()
    assert res.components["shared_sram"]["counts"] == {"read_bytes": 0, "write_bytes": 0}


def test_tpuv4i_keeps_prefill_activations_in_its_cmem():
    """TPUv4i's 128 MiB CMEM holds a Llama-2-7B layer's 2048-token activations (16-86 MiB):
    the prefill's off-chip traffic drops to the weights re-read per activation tile, the
    activations move through the CMEM instead, and the run gets faster."""
    no_cmem = simulate("tpuv4i", "llama2-7b", phase="prefill", seq_len=2048,
                       overrides=["sram.shared=null"])
    cmem = simulate("tpuv4i", "llama2-7b", phase="prefill", seq_len=2048)
    assert cmem.offchip_bytes < 0.6 * no_cmem.offchip_bytes
    assert cmem.cycles < no_cmem.cycles
    assert cmem.components["shared_sram"]["counts"]["read_bytes"] > 0
    assert no_cmem.components["shared_sram"]["counts"]["read_bytes"] == 0


def test_bad_shared_memory_is_named():
    with pytest.raises(ConfigError, match="sram.shared.bandwidth"):
        simulate("tpuv4i", "gpt2", overrides=["sram.shared={size: 1 MiB}"])
    with pytest.raises(ConfigError, match="sram.shared.activation_budget"):
        simulate("tpuv4i", "gpt2", overrides=["sram.shared.activation_budget=1.5"])


def test_the_shared_memory_adds_leakage_and_area(small_arch, shared_arch):
    base = simulate(small_arch, two_gemms())
    sh = simulate(shared_arch, two_gemms())
    assert sh.area["sram"] > base.area["sram"]
    lb = base.components["sram"]["energy_pj"]["leakage"] / base.seconds
    ls = sh.components["sram"]["energy_pj"]["leakage"] / sh.seconds
    assert ls == pytest.approx(lb * (3 * 64 + 1024) / (3 * 64), rel=1e-9)
    assert np.isfinite(sh.energy_pj)


def test_repeated_layers_take_at_least_the_shared_memory_time():
    """A repeated layer lasts at least as long as its busiest resource, the shared memory's
    pipe included: with a slow CMEM the deduplicated prefill takes at least every layer's
    transfers through it, weighted by the layer's repeat."""
    from archsim.sim.run import shared_pipe_cycles
    for bw in ("50 GB/s", "1075.2 GB/s"):
        res = simulate("tpuv4i", "llama2-7b", phase="prefill", seq_len=512,
                       overrides=[f"sram.shared.bandwidth={bw}"])
        prog = res.program
        pipe = shared_pipe_cycles(prog)
        assert pipe.sum() > 0
        per_layer = {r.name: r.cycles for r in res.layers}
        for name, busy in zip(prog.layer_names, pipe):
            assert per_layer[name] >= busy
        assert res.cycles >= int((pipe * prog.layer_weights).sum())


def test_near_fastest_tiling_with_fewer_offchip_bytes_wins():
    """A Llama-2-7B QKV projection on tpuv4i (2048 x 12288 x 4096 BF16, the input in the CMEM,
    the weights in HBM). 256-row tiles re-read the 96 MiB of weights 8 times (768 MiB), 512-row
    ones 4 times (384 MiB); the activations come from the CMEM once per 256-column weight tile
    either way (48 x 16 MiB). The timed replay has the 512-row tiling 0.03% slower: within the
    default 1% of ``tiling.time_slack``, it moves half the bytes off chip and is taken; with no
    slack the fastest is."""
    gb = GraphBuilder()
    gb.add(GemmOp("g", "l", 2048, 12288, 4096, Tensor("X", (2048, 4096), "bf16", "activation"),
                  Tensor("W", (4096, 12288), "bf16", "weight"), Tensor("Y", (2048, 12288), "bf16", "activation")))
    wl = Workload("qkv", gb.g, [LayerGroup("l", 1)])
    res = simulate("tpuv4i", wl)
    t = res.program.meta["tilings"]["g"]
    assert (t["tm"], t["tn"]) == (512, 256)
    assert res.offchip_bytes == 4 * 4096 * 12288 * 2
    assert res.components["shared_sram"]["counts"]["read_bytes"] == 48 * 2048 * 4096 * 2
    fastest = simulate("tpuv4i", wl, overrides=["tiling.time_slack=0"])
    assert fastest.program.meta["tilings"]["g"]["tm"] == 256
    assert fastest.offchip_bytes == 8 * 4096 * 12288 * 2
    assert fastest.cycles < res.cycles < 1.01 * fastest.cycles
    assert res.energy_pj < 0.9 * fastest.energy_pj
