"""Validation-case functions (``kind: python``) for the GPU model."""
from __future__ import annotations

from archsim.api import simulate


def generation_throughput(case: dict) -> dict:
    """Output tokens/s of static-batch generation: ``batch`` prompts of ``input_len`` tokens,
    ``output_len`` tokens each (the first from the prefill, the rest from decode steps whose KV
    length grows from ``input_len`` to ``input_len + output_len - 1``). The decode time is the
    sum over steps, integrated with Simpson's rule on three simulated steps (exact while a
    step's time is linear in the KV length). Metrics: ``tokens_per_s`` (output tokens of the
    whole system), ``tokens_per_s_per_gpu`` (over its tensor x pipeline devices), ``prefill_s``,
    ``decode_s``."""
    arch, wl = case["arch"], case["workload"]
    ov = list(case.get("overrides", []))
    B, n_in, n_out = int(case["batch"]), int(case["input_len"]), int(case["output_len"])
    first = simulate(arch, wl, overrides=ov, phase="prefill", batch=B, seq_len=n_in)
    pre = first.seconds
    gpus = first.cfg.parallel.tensor * first.cfg.parallel.pipeline
    steps = n_out - 1
    dec = 0.0
    if steps > 0:
        lo, hi = n_in, n_in + steps - 1
        mid = (lo + hi) // 2
        t = [simulate(arch, wl, overrides=ov, phase="decode", batch=B, kv_len=k).seconds for k in (lo, mid, hi)]
        dec = steps * (t[0] + 4 * t[1] + t[2]) / 6
    tps = B * n_out / (pre + dec)
    return {"tokens_per_s": tps, "tokens_per_s_per_gpu": tps / gpus, "prefill_s": pre, "decode_s": dec}


#: workload overrides that prune every prunable weight 2:4 along K
PRUNE_2TO4 = ("workload.sparsity.weights.pattern=nm", "workload.sparsity.weights.n=2",
              "workload.sparsity.weights.m=4")


def sparse_speedup(case: dict) -> dict:
    """Speed-up of 2:4-pruned weights on the GPU's structured-sparse tensor cores over the same
    model dense: of one call (``workload`` a single GEMM or a phase of a model; ratio of seconds),
    or of static-batch generation when the case gives ``input_len`` / ``output_len`` (ratio of
    output tokens/s, :func:`generation_throughput`). ``prune`` replaces the 2:4 overrides.
    Metrics: ``speedup``, ``dense_s`` and ``sparse_s`` (seconds of the call or of the generation)."""
    prune = list(case.get("prune", PRUNE_2TO4))
    ov = list(case.get("overrides", []))
    if "output_len" in case:
        d = generation_throughput(case)
        s = generation_throughput(dict(case, overrides=ov + prune))
        dense_s, sparse_s = d["prefill_s"] + d["decode_s"], s["prefill_s"] + s["decode_s"]
    else:
        kw = {k: case[k] for k in ("phase", "batch", "seq_len", "kv_len") if k in case}
        dense_s = simulate(case["arch"], case["workload"], overrides=ov, **kw).seconds
        sparse_s = simulate(case["arch"], case["workload"], overrides=ov + prune, **kw).seconds
    return {"speedup": dense_s / sparse_s, "dense_s": dense_s, "sparse_s": sparse_s}
