"""ProgramBuilder: chunks land in place through buffer growth, claims, and the hand-over."""
import numpy as np
import pytest

from archsim.isa import MAX_DEPS, N_AUX, Op, ProgramBuilder


def _expected_rows(sizes):
    """What a program of LOAD chunks of the given sizes must hold, row by row."""
    rows, at = [], 0
    for c, size in enumerate(sizes):
        for r in range(size):
            dep = at - 1 if at else -1                  # each chunk depends on the row before it
            rows.append((c, at + r, dep))
        at += size
    return rows


@pytest.mark.parametrize("allocate", [0, 50, 10_000])
def test_chunks_survive_growth_and_the_hand_over(allocate):
    rng = np.random.default_rng(1)
    sizes = [int(x) for x in rng.integers(1, 700, 40)]  # crosses several growths of the buffers
    pb = ProgramBuilder(["rd", "pe"])
    L = pb.layer("l0")
    if allocate:
        pb.reserve(allocate, allocate=True)
    for c, size in enumerate(sizes):
        pb.tag(f"op{c % 3}")
        at = pb.count
        idx = pb.add(Op.LOAD, 0, L, nbytes=np.arange(at, at + size), addr=c, deps=[at - 1],
                     aux=[c, 7])
        assert idx[0] == at and idx[-1] == at + size - 1
    p = pb.build()
    assert len(p) == sum(sizes)
    for f in ("op", "unit", "layer", "m", "nbytes", "deps", "aux", "op_tag"):
        assert getattr(p, f).shape[0] == len(p) and getattr(p, f).flags.c_contiguous
    for c, i, dep in _expected_rows(sizes):
        assert (p.op[i], p.addr[i], p.nbytes[i], p.op_tag[i]) == (Op.LOAD, c, i, c % 3)
        assert list(p.deps[i]) == [dep] + [-1] * (MAX_DEPS - 1)
        assert list(p.aux[i]) == [c, 7] + [0] * (N_AUX - 2)
    assert p.op_names == ["op0", "op1", "op2"]


def test_claimed_rows_are_filled_in_place_and_defaults_are_clean():
    pb = ProgramBuilder(["rd", "pe"])
    L = pb.layer("l0")
    pb.add(Op.LOAD, 0, L, nbytes=[5, 6], deps=[-1], aux=[9])
    v = pb.claim(3, Op.GEMM, 1, L)
    assert pb.count == 5 and all(v[f].shape[0] == 3 for f in v)
    assert (v["deps"] == -1).all() and (v["aux"] == 0).all() and (v["m"] == 0).all()
    v["m"][:] = [1, 2, 3]
    v["deps"][:, 0] = 1
    p = pb.build()
    assert list(p.op) == [Op.LOAD, Op.LOAD, Op.GEMM, Op.GEMM, Op.GEMM]
    assert list(p.unit) == [0, 0, 1, 1, 1] and list(p.m) == [0, 0, 1, 2, 3]
    assert list(p.deps[:, 0]) == [-1, -1, 1, 1, 1] and list(p.aux[:2, 0]) == [9, 9]


def test_empty_program_and_no_reuse_after_build():
    pb = ProgramBuilder(["pe"])
    p = pb.build()
    assert len(p) == 0 and p.deps.shape == (0, MAX_DEPS) and p.op.dtype == np.uint8
    pb = ProgramBuilder(["pe"])
    pb.add(Op.SYNC, 0, pb.layer("l0"))
    pb.build()
    with pytest.raises(RuntimeError, match="has built its program"):
        pb.add(Op.SYNC, 0, 0)
