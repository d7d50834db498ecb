"""Pareto fronts against a brute-force definition."""
import numpy as np
from hypothesis import given, settings, strategies as st

from archsim.sweep.pareto import pareto_mask


def naive(v, goals):
    s = np.array([1 if g == "min" else -1 for g in goals])
    w = v * s
    out = []
    for i in range(len(w)):
        dom = any((w[j] <= w[i]).all() and (w[j] < w[i]).any() for j in range(len(w)))
        out.append(not dom)
    return np.array(out, dtype=bool)


@settings(max_examples=150, deadline=None)
@given(st.integers(0, 40), st.integers(2, 4), st.integers(0, 2**31 - 1),
       st.lists(st.sampled_from(["min", "max"]), min_size=4, max_size=4))
def test_front_matches_brute_force(n, k, seed, goals):
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 6, size=(n, k)).astype(float)     # small ints: many ties
    assert (pareto_mask(v, goals[:k]) == naive(v, goals[:k])).all()


def test_known_front():
    v = np.array([[1, 5], [2, 3], [3, 4], [4, 1], [2, 3]], dtype=float)
    assert pareto_mask(v, ["min", "min"]).tolist() == [True, True, False, True, True]
    assert pareto_mask(v, ["max", "max"]).tolist() == [True, False, True, True, False]
