"""Workload sparsity spec: annotation of the graph, drawn masks, bad input (exit 2)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

from archsim.api import load
from archsim.config.loader import project_root
from archsim.errors import ArchsimError, WorkloadError
from archsim.workload.sparsity import (activation_mask, binom_counts, group_ok_prob, op_rng, prunable,
                                       weight_mask)


def test_density_reaches_every_prunable_op():
    cfg, wl = load("tc_dense", "llama2-7b", overrides=["workload.sparsity.weights.density=0.3",
                                                       "workload.sparsity.activations.density=0.5",
                                                       "workload.sparsity.activations.ops={down: 0.1}"])
    fcs = [op for op in wl.ops() if prunable(op)]
    assert {op.name.split(".")[-1] for op in fcs} == {"qkv", "o", "up", "down"}
    for op in fcs:
        assert op.b.density == 0.3
        assert op.a.density == (0.1 if op.name.endswith("down") else 0.5)
    head = [op for op in wl.ops() if getattr(op, "role", "") == "lm_head"][0]
    assert head.b.density == 1.0


def test_default_is_dense_and_gemm_kind_works():
    _, wl = load("tc_dense", "gemm")
    assert all(op.b.density == 1.0 for op in wl.ops())
    _, wl = load("tc_dense", "gemm", overrides=["workload.sparsity.weights.pattern=nm"])
    assert wl.ops()[0].b.density == 0.5


def test_masks_have_the_pattern():
    rng = op_rng(0, "x", "weights")
    m = weight_mask(64, 48, "nm", 0.5, 2, 4, 4, rng)
    assert (m.reshape(16, 4, 48).sum(1) == 2).all()
    b = weight_mask(64, 48, "block", 0.25, 2, 4, 8, rng)
    blocks = b.reshape(8, 8, 6, 8).transpose(0, 2, 1, 3).reshape(48, 64)
    assert set(blocks.sum(1)) <= {0, 64}
    u = weight_mask(512, 512, "unstructured", 0.3, 2, 4, 4, rng)
    assert u.mean() == pytest.approx(0.3, abs=0.01)
    assert activation_mask(100, 100, 0.0, rng).sum() == 0
    # deterministic per (seed, op, operand)
    a1 = weight_mask(32, 32, "unstructured", 0.5, 2, 4, 4, op_rng(3, "op", "weights"))
    a2 = weight_mask(32, 32, "unstructured", 0.5, 2, 4, 4, op_rng(3, "op", "weights"))
    assert (a1 == a2).all()


def test_statistics_follow_the_mask_distribution():
    rng = np.random.default_rng(0)
    c = binom_counts(np.full(20000, 32), 0.3, rng)
    assert c.mean() == pytest.approx(32 * 0.3, rel=0.02)
    # inverse-CDF draws against the Binomial pmf, mixed sizes (full tiles and an edge),
    # and against a naive twin: counts of i.i.d. Bernoulli elements
    sizes = np.where(np.arange(40000) % 4 == 0, 7, 32).reshape(200, 200)
    c = binom_counts(sizes, 0.2, rng)
    assert c.shape == sizes.shape and (c >= 0).all() and (c <= sizes).all()
    for n in (7, 32):
        got = np.bincount(c[sizes == n], minlength=n + 1) / (sizes == n).sum()
        naive = np.bincount((rng.random(((sizes == n).sum(), n)) < 0.2).sum(1), minlength=n + 1) / (sizes == n).sum()
        pmf = np.array([math.comb(n, j) * 0.2**j * 0.8**(n - j) for j in range(n + 1)])
        assert np.abs(got - pmf).max() < 0.01 and np.abs(naive - pmf).max() < 0.01
    assert (binom_counts(sizes, 1.0, rng) == sizes).all() and (binom_counts(sizes, 0.0, rng) == 0).all()
    # 2:4 compliance of one row's group of 4: unstructured d -> P(Bin(4, d) <= 2)
    d = 0.4
    assert group_ok_prob("unstructured", d, 2, 4) == pytest.approx(1 - 4 * d**3 * (1 - d) - d**4)
    assert group_ok_prob("nm", 0.5, 2, 4) == 1.0
    assert group_ok_prob("nm", 0.5, 1, 2) == 1.0
    assert group_ok_prob("nm", 0.75, 3, 4) == 0.0
    m = weight_mask(4000, 8, "nm", 0.5, 4, 8, 4, rng)            # 4:8: check the hypergeometric
    emp = (m.reshape(1000, 4, 8).sum(1) <= 2).mean()
    assert emp == pytest.approx(group_ok_prob("nm", 0.5, 4, 8), abs=0.02)


def test_user_mask_file(tmp_path):
    K, N = 64, 96
    m = np.random.default_rng(1).random((N, K)) < 0.25          # PyTorch (out, in) layout
    p = tmp_path / "mask.npy"
    np.save(p, m)
    _, wl = load("ds_stc", {"kind": "gemm", "M": 8, "N": N, "K": K},
                 overrides=[f"workload.sparsity.weights.mask_file={p}"])
    op = wl.ops()[0]
    assert op.attrs["sparsity"]["mask"].shape == (K, N)
    assert (op.attrs["sparsity"]["mask"] == m.T).all()
    assert op.b.density == pytest.approx(m.mean())


@pytest.mark.parametrize("ov,path", [
    (["workload.sparsity.weights.density=1.5"], "workload.sparsity.weights.density"),
    (["workload.sparsity.weights.density=-0.1"], "workload.sparsity.weights.density"),
    (["workload.sparsity.activations.density=2"], "workload.sparsity.activations.density"),
    (["workload.sparsity.weights.pattern=nm", "workload.sparsity.weights.n=5",
      "workload.sparsity.weights.m=4"], "workload.sparsity.weights"),
    (["workload.sparsity.weights.pattern=sparse"], "workload.sparsity.weights.pattern"),
    (["workload.sparsity.weights.dens=0.5"], "workload.sparsity.weights.dens"),
])
def test_bad_input_names_the_field(ov, path):
    with pytest.raises(WorkloadError) as e:
        load("rm_stc", "gemm", overrides=ov)
    assert e.value.path == path
    if "n=5" in " ".join(ov):
        assert "n <= m" in str(e.value)


def test_mask_shape_mismatch(tmp_path):
    p = tmp_path / "bad.npy"
    np.save(p, np.ones((10, 7)))
    with pytest.raises(WorkloadError) as e:
        load("rm_stc", "gemm", overrides=[f"workload.sparsity.weights.mask_file={p}"])
    assert e.value.path == "workload.sparsity.weights.mask_file" and "(10, 7)" in str(e.value)
    with pytest.raises(ArchsimError) as e:
        load("rm_stc", "llama2-7b", overrides=[f"workload.sparsity.weights.mask_file={p}",
                                               "workload.sparsity.weights.mask_op=down"])
    assert "does not match" in str(e.value)
    with pytest.raises(WorkloadError):
        load("rm_stc", "gemm", overrides=[f"workload.sparsity.weights.mask_file={tmp_path / 'none.npy'}"])


RM = str(project_root() / "arch_configs" / "rm_stc.yaml")
LLAMA = str(project_root() / "workloads" / "llama2-7b.yaml")


@pytest.mark.parametrize("ov", [
    "workload.sparsity.weights.density=1.2",
    "workload.sparsity.weights.pattern=nm",
])
def test_cli_exit_status_2(ov, tmp_path):
    from archsim.cli import main
    args = ["run", RM, LLAMA, "--set", ov]
    if ov.endswith("=nm"):
        args += ["--set", "workload.sparsity.weights.n=6"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2, r.output
    assert "workload.sparsity.weights" in r.output
    assert "Traceback" not in r.output
    bad = tmp_path / "bad.npy"
    np.save(bad, np.ones((3, 3)))
    r = CliRunner().invoke(main, ["run", RM, LLAMA, "--set",
                                  f"workload.sparsity.weights.mask_file={bad}"])
    assert r.exit_code == 2 and "mask_file" in r.output


def test_cli_run_rm_stc_llama():
    from archsim.cli import main
    r = CliRunner().invoke(main, ["run", RM, LLAMA,
                                  "--set", "workload.sparsity.weights.density=0.3",
                                  "--set", "workload.sparsity.activations.density=0.5"])
    assert r.exit_code == 0, r.output
    assert "mac_skipped" in r.output
