"""Weight and activation sparsity of a workload, and the non-zero structure drawn from it.

The workload's ``sparsity`` section (:class:`SparsitySpec`) says how the weights of the
prunable GEMMs (every GEMM whose B operand is a weight, except the LM head and MoE
routers) are pruned and how dense the activations feeding them are:

- ``weights.pattern``: ``unstructured`` (magnitude-like: pruning i.i.d. weights by
  magnitude keeps a uniformly random subset, so each weight survives with probability
  ``density``), ``nm`` (``n`` non-zeros in every ``m`` consecutive weights along the
  reduction dimension K, as NVIDIA's 2:4), ``block`` (``block`` x ``block`` tiles kept
  with probability ``density``) or ``dense``. ``mask_file`` (``.npy``) gives the mask of
  one layer (``mask_op``) from a pruned checkpoint instead.
- ``activations.density``: fraction of non-zero activations (e.g. after ReLU/GELU
  thresholding) at the inputs of those GEMMs; ``activations.ops`` sets it per op
  (matched on the op-name suffix, e.g. ``{down: 0.1}``).

:func:`apply_sparsity` (called by the workload loader after the builder) writes the
densities onto the tensors (``Tensor.density``) and the pattern onto ``GemmOp.attrs
["sparsity"]``. Microarchitectures that exploit sparsity draw the actual structure with
:func:`weight_mask` / :func:`activation_mask` (deterministic per op from ``seed``) or, for
large layers, per-tile statistics from the same distribution (:func:`binom_counts`,
:func:`nm_group_ok_prob`).
"""
from __future__ import annotations

import dataclasses
import math
import zlib
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import Field, NonNegativeInt, PositiveInt, model_validator

from archsim.config.types import Strict
from archsim.errors import WorkloadError

NOT_PRUNED_ROLES = ("lm_head", "router")


class WeightSparsity(Strict):
    """How the weights of prunable GEMMs are pruned."""

    pattern: Literal["dense", "unstructured", "nm", "block"] = Field(
        "unstructured", description="dense | unstructured (magnitude-like) | nm (N:M along K) | block")
    density: Optional[float] = Field(None, ge=0.0, le=1.0,
                                      description="fraction of non-zero weights (nm: n/m; default 1)")
    n: PositiveInt = Field(2, description="nm: non-zeros per group")
    m: PositiveInt = Field(4, description="nm: group length along K")
    block: PositiveInt = Field(4, description="block: edge of the square blocks kept or pruned")
    mask_file: Optional[str] = Field(None, description=".npy mask (non-zero = kept) of one layer's "
                                     "weight, shape (K, N) or PyTorch (out, in) = (N, K)")
    mask_op: Optional[str] = Field(None, description="op the mask belongs to (name or suffix, e.g. "
                                   "'block.down'); default: every prunable op of the mask's shape")

    @model_validator(mode="after")
    def _check(self):
        if self.pattern == "nm":
            if self.n > self.m:
                raise ValueError(f"N:M sparsity needs n <= m (got n={self.n}, m={self.m})")
            if self.density is not None and not math.isclose(self.density, self.n / self.m):
                raise ValueError(f"density {self.density} contradicts n:m = {self.n}:{self.m} "
                                 f"(density {self.n / self.m:g}); set one of them")
        if self.pattern == "dense" and self.density not in (None, 1.0):
            raise ValueError("pattern 'dense' has density 1; use pattern 'unstructured' for a density")
        return self

    @property
    def effective_density(self) -> float:
        if self.pattern == "dense":
            return 1.0
        if self.pattern == "nm":
            return self.n / self.m
        return 1.0 if self.density is None else float(self.density)


class ActivationSparsity(Strict):
    """Density of the activations at the inputs of the prunable GEMMs."""

    density: float = Field(1.0, ge=0.0, le=1.0, description="fraction of non-zero activations")
    ops: dict[str, float] = Field(default_factory=dict,
                                  description="per-op density by op-name suffix, e.g. {down: 0.1}")

    @model_validator(mode="after")
    def _check(self):
        for k, v in self.ops.items():
            if not 0.0 <= float(v) <= 1.0:
                raise ValueError(f"density of ops.{k} must be in [0, 1] (got {v})")
        return self


class SparsitySpec(Strict):
    """Weight and activation sparsity of the workload."""

    weights: WeightSparsity = Field(default_factory=WeightSparsity)
    activations: ActivationSparsity = Field(default_factory=ActivationSparsity)
    seed: NonNegativeInt = Field(0, description="seed of the drawn masks / statistics")
    structure: Literal["auto", "mask", "stats"] = Field(
        "auto", description="draw element masks, or per-tile non-zero statistics (fast, for "
                            "whole models); auto: masks up to mask_max_elements per weight")
    mask_max_elements: PositiveInt = Field(1 << 22, description="auto: largest weight drawn as a mask")

    @property
    def active(self) -> bool:
        w = self.weights
        return (w.effective_density < 1.0 or w.mask_file is not None or w.pattern == "nm"
                or self.activations.density < 1.0 or bool(self.activations.ops))


# ------------------------------------------------------------------------------------------
# annotation of a built workload
# ------------------------------------------------------------------------------------------

def prunable(op) -> bool:
    from archsim.workload.graph import GemmOp
    return isinstance(op, GemmOp) and op.b.kind == "weight" and op.role not in NOT_PRUNED_ROLES


def pruned_ops(wl) -> list:
    """The prunable GEMMs of a built workload whose weights are actually pruned (a density below
    1, an n:m pattern or a mask)."""
    def pruned(op):
        at = op.attrs.get("sparsity") if prunable(op) else None
        return at is not None and (at["pattern"] == "nm" or at.get("mask") is not None or op.b.density < 1.0)
    return [op for op in wl.ops() if pruned(op)]


def nm_compliant(attrs: dict, n: int, m: int) -> bool:
    """Whether a weight pruned as ``attrs`` (``GemmOp.attrs["sparsity"]``) keeps at most ``n``
    values in every group of ``m`` along K: its mask checked group by group, or its n':m' pattern
    bounding the non-zeros a group can hold (1:2, 2:8 and 1:4 all meet 2:4); unstructured and block
    pruning give no such guarantee."""
    mask = attrs.get("mask")
    if mask is not None:
        K = mask.shape[0]
        g = -(-K // m)
        padded = np.zeros((g * m, mask.shape[1]), bool)
        padded[:K] = mask != 0
        return bool((padded.reshape(g, m, -1).sum(axis=1) <= n).all())
    if attrs["pattern"] != "nm":
        return False
    pn, pm = int(attrs["n"]), int(attrs["m"])
    if m % pm == 0:
        return pn * (m // pm) <= n
    if pm % m == 0:
        return min(pn, m) <= n
    return False


def _suffix_match(name: str, key: str) -> bool:
    return name == key or name.endswith("." + key)


def load_mask(path: str) -> np.ndarray:
    p = Path(path)
    where = "workload.sparsity.weights.mask_file"
    if not p.is_file():
        raise WorkloadError([(where, f"no such file: {path}")])
    try:
        m = np.load(p, allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - any unreadable file is the user's input
        raise WorkloadError([(where, f"cannot read {path} as a .npy array: {e}")]) from None
    if m.ndim != 2:
        raise WorkloadError([(where, f"mask must be 2-D, got shape {tuple(m.shape)}")])
    return m != 0


def _oriented(mask: np.ndarray, K: int, N: int) -> Optional[np.ndarray]:
    """The mask as (K, N): as given, or transposed from the PyTorch (out, in) layout."""
    if mask.shape == (K, N):
        return mask
    if mask.shape == (N, K):
        return np.ascontiguousarray(mask.T)
    return None


def apply_sparsity(wl, spec) -> None:
    """Write the workload spec's sparsity onto the graph (tensor densities, op attrs)."""
    sp: SparsitySpec = getattr(spec, "sparsity", None)
    if sp is None or not sp.active:
        return
    w = sp.weights
    mask = load_mask(w.mask_file) if w.mask_file else None
    ops = [op for op in wl.ops() if prunable(op)]
    matched = 0
    for op in ops:
        attrs = {"pattern": w.pattern, "n": w.n, "m": w.m, "block": w.block, "seed": sp.seed,
                 "structure": sp.structure, "mask_max_elements": sp.mask_max_elements}
        wd = w.effective_density
        if mask is not None:
            use = _suffix_match(op.name, w.mask_op) if w.mask_op else True
            if use:
                mk = _oriented(mask, int(op.K), int(op.N))
                if mk is None:
                    if w.mask_op:
                        raise WorkloadError([("workload.sparsity.weights.mask_file",
                                              f"mask shape {tuple(mask.shape)} does not match the weight of "
                                              f"{op.name}: expected ({op.K}, {op.N}) or ({op.N}, {op.K})")])
                else:
                    attrs["mask"] = mk
                    wd = float(mk.mean())
                    matched += 1
        ad = sp.activations.density
        for key, v in sp.activations.ops.items():
            if _suffix_match(op.name, key):
                ad = float(v)
        op.b = dataclasses.replace(op.b, density=wd)
        op.a = dataclasses.replace(op.a, density=ad)
        op.attrs["sparsity"] = attrs
    if mask is not None and matched == 0:
        shapes = sorted({(int(o.K), int(o.N)) for o in ops})
        what = f"op {w.mask_op!r}" if w.mask_op else "any prunable layer"
        names = [o.name for o in ops]
        if w.mask_op and not any(_suffix_match(n, w.mask_op) for n in names):
            raise WorkloadError([("workload.sparsity.weights.mask_op",
                                  f"no prunable op named {w.mask_op!r}; ops: {', '.join(names)}")])
        raise WorkloadError([("workload.sparsity.weights.mask_file",
                              f"mask shape {tuple(mask.shape)} does not match {what}; weight shapes "
                              f"(K, N): {', '.join(map(str, shapes))}")])
    for key in sp.activations.ops:
        if not any(_suffix_match(o.name, key) for o in ops):
            raise WorkloadError([(f"workload.sparsity.activations.ops.{key}",
                                  f"no prunable op named {key!r}; ops: {', '.join(o.name for o in ops)}")])


# ------------------------------------------------------------------------------------------
# drawing structure
# ------------------------------------------------------------------------------------------

def op_rng(seed: int, name: str, what: str) -> np.random.Generator:
    """Deterministic generator per (seed, op, operand) independent of drawing order."""
    return np.random.default_rng([int(seed), zlib.crc32(name.encode()), zlib.crc32(what.encode())])


def weight_mask(K: int, N: int, pattern: str, density: float, n: int, m: int, block: int,
                rng: np.random.Generator) -> np.ndarray:
    """Boolean mask (K, N) of the kept weights. N:M groups run along K."""
    if pattern == "dense" or (pattern != "nm" and density >= 1.0):
        return np.ones((K, N), bool)
    if pattern == "unstructured":
        return rng.random((K, N), dtype=np.float32) < np.float32(density) if density > 0 else \
            np.zeros((K, N), bool)
    if pattern == "nm":
        g = -(-K // m)
        r = rng.random((g, m, N), dtype=np.float32)
        rank = np.argsort(np.argsort(r, axis=1), axis=1)
        return (rank < n).reshape(g * m, N)[:K]
    if pattern == "block":
        kb, nb = -(-K // block), -(-N // block)
        keep = rng.random((kb, nb)) < density
        return np.repeat(np.repeat(keep, block, axis=0), block, axis=1)[:K, :N]
    raise ValueError(pattern)


def activation_mask(rows: int, K: int, density: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask (rows, K) of non-zero activations (i.i.d., e.g. after thresholding)."""
    if density >= 1.0:
        return np.ones((rows, K), bool)
    if density <= 0.0:
        return np.zeros((rows, K), bool)
    return rng.random((rows, K), dtype=np.float32) < np.float32(density)


def binom_counts(sizes: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Non-zero counts of groups of ``sizes`` i.i.d. elements (statistics mode): Binomial
    (size, p) draws by inverting the exact CDF of each distinct size at one uniform per
    group (a table lookup; sizes take a few values: full tiles and the edge)."""
    sizes = np.asarray(sizes, np.int64)
    if p >= 1.0:
        return sizes.copy()
    if p <= 0.0:
        return np.zeros(sizes.shape, np.int64)
    u = rng.random(sizes.shape)

    def draw(n, x):
        j = np.arange(n + 1)
        logpmf = (np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in j])
                  + j * math.log(p) + (n - j) * math.log1p(-p))
        cdf = np.cumsum(np.exp(logpmf))
        cdf[-1] = 1.0
        return np.minimum(np.searchsorted(cdf, x, side="right"), n)

    vals, counts = np.unique(sizes, return_counts=True)
    common = int(vals[np.argmax(counts)])
    out = draw(common, u.ravel()).reshape(sizes.shape).astype(np.int64)
    for n in vals:
        if int(n) != common:
            sel = sizes == n
            out[sel] = draw(int(n), u[sel])
    return out


def group_ok_prob(pattern: str, density: float, n: int, m: int, limit: int = 2, width: int = 4) -> float:
    """Probability that one row's aligned group of ``width`` weights along K has at most
    ``limit`` non-zeros (a 2:4-compliant group), under the pattern."""
    if pattern == "dense" or (pattern != "nm" and density >= 1.0):
        return 1.0 if width <= limit else 0.0
    if pattern == "unstructured":
        return float(sum(math.comb(width, j) * density ** j * (1 - density) ** (width - j)
                         for j in range(0, min(limit, width) + 1)))
    if pattern == "nm":
        if width % m == 0:
            return 1.0 if n * (width // m) <= limit else 0.0
        if m % width == 0:
            # hypergeometric: a group of `width` among the m positions holding n non-zeros
            tot = math.comb(m, n)
            return float(sum(math.comb(width, j) * math.comb(m - width, n - j)
                             for j in range(0, min(limit, n, width) + 1) if n - j <= m - width) / tot)
        return float("nan")
    return float("nan")


__all__ = ["SparsitySpec", "WeightSparsity", "ActivationSparsity", "apply_sparsity", "prunable",
           "weight_mask", "activation_mask", "binom_counts", "group_ok_prob", "op_rng", "load_mask"]
