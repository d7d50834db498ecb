"""Workload loading: YAML files, names under workloads/, dicts, Hugging Face config.json."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

from pydantic import BaseModel

from archsim.config.loader import apply_overrides, find_preset, load_yaml_file, read_text_file, validate_model
from archsim.errors import ConfigError, InputFileError, WorkloadError
from archsim.workload.gemm import build_gemm, build_vector
from archsim.workload.sparsity import apply_sparsity
from archsim.workload.spec import GemmSpec, TransformerSpec, VectorSpec
from archsim.workload.transformer import build_transformer

def postprocess(wl, spec, attention: bool = True):
    """Graph rewrites every kind shares: attention variants (mixed KV lengths, sparse masks,
    pruning; :mod:`archsim.workload.attention`) and quantisation scales (:mod:`.quant`)."""
    from archsim.workload import attention as attn
    from archsim.workload import quant
    if attention:
        attn.apply(wl, spec, is_decoder=getattr(spec, "arch", "decoder") == "decoder")
    quant.apply_scales(wl, spec)
    return wl


def with_variants(builder: Callable) -> Callable:
    """Wrap a builder: apply the quantisation recipe, build every layer when per-layer
    attention settings need it, then :func:`postprocess`."""
    def build(spec, default_precision: str, all_layers: bool = False):
        from archsim.workload import attention as attn
        from archsim.workload import quant
        spec = quant.resolve(spec)
        wl = builder(spec, default_precision, all_layers or attn.needs_all_layers(spec))
        return postprocess(wl, spec)
    build.__wrapped__ = builder
    return build


def _kinds() -> dict:
    from archsim.workload.hybrid import HybridSpec, build_hybrid
    from archsim.workload.moe import MoESpec, build_moe
    from archsim.workload.speculative import SpeculativeSpec, build_speculative
    from archsim.workload.ssm import SSMSpec, build_ssm
    return {"moe": (MoESpec, with_variants(build_moe)), "mamba": (SSMSpec, with_variants(build_ssm)),
            "hybrid": (HybridSpec, with_variants(build_hybrid)),
            "speculative": (SpeculativeSpec, build_speculative)}


#: kind -> (spec model, builder(spec, default_precision, all_layers) -> Workload)
KINDS: dict[str, tuple[type, Callable]] = {
    "transformer": (TransformerSpec, with_variants(build_transformer)),
    "gemm": (GemmSpec, with_variants(build_gemm)),
    "vector": (VectorSpec, with_variants(build_vector)),
    **_kinds(),
}


def register_kind(kind: str, spec_cls: type, builder: Callable) -> None:
    KINDS[kind] = (spec_cls, builder)


def _read_source(source) -> tuple[dict, str]:
    if isinstance(source, dict):
        return dict(source), "<dict>"
    if isinstance(source, BaseModel):          # a spec from load_workload_spec, re-validated
        return source.model_dump(), f"<{type(source).__name__}>"
    if not isinstance(source, (str, os.PathLike)):
        raise WorkloadError([("workload", f"expected a workload name, a path, a dict or a workload "
                                          f"spec, not {type(source).__name__}")])
    p = Path(source)
    if p.suffix == ".json" or (p.is_file() and p.name.endswith("config.json")):
        if p.is_dir():
            raise InputFileError(f"{str(source)!r} is a directory, not a config.json file")
        if not p.is_file():
            raise InputFileError(f"no such file: {p}")
        from archsim.workload.hf import from_hf_config
        text = read_text_file(p)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputFileError(f"malformed JSON in {p} line {e.lineno}: {e.msg}") from None
        return from_hf_config(data, str(p)), str(p)
    path = find_preset(source, "workloads")
    return load_yaml_file(path), str(path)


def load_workload_spec(source, overrides: Sequence[str] = (), **run):
    """Validated workload spec. ``overrides`` are ``workload.<field>=value`` strings (others
    ignored); ``run`` holds phase/batch/seq_len/kv_len given explicitly (None = keep)."""
    data, where = _read_source(source)
    wl_ovs = [o[len("workload."):] for o in overrides if o.startswith("workload.")]
    from archsim.workload.quant import expand_overrides
    wl_ovs = expand_overrides(wl_ovs)
    data = apply_overrides(data, wl_ovs)
    set_here = {o.split("=", 1)[0].strip() for o in wl_ovs}
    clash = [(f"workload.{k}", f"the override workload.{k}={data.get(k)!r} and --{k.replace('_', '-')} "
                              f"{v!r} disagree; give one of them")
             for k, v in run.items() if v is not None and k in set_here and data.get(k) != v]
    if clash:
        raise WorkloadError(clash, source=where)
    for k, v in run.items():
        if v is not None:
            data[k] = v
    kind = data.get("kind", "transformer")
    if kind not in KINDS:
        from archsim.errors import did_you_mean
        raise WorkloadError([("workload.kind", f"unknown workload kind {kind!r}{did_you_mean(kind, KINDS)}; "
                              f"known: {', '.join(sorted(KINDS))}")], source=where)
    spec_cls, _ = KINDS[kind]
    try:
        return validate_model(spec_cls, data, where, prefix="workload")
    except ConfigError as e:
        raise WorkloadError(e.problems, source=where) from None


def load_workload(source, default_precision: str, overrides: Sequence[str] = (), all_layers: bool = False,
                  **run):
    spec = load_workload_spec(source, overrides, **run)
    _, builder = KINDS[spec.kind]
    wl = builder(spec, default_precision, all_layers)
    apply_sparsity(wl, spec)
    return wl


def list_workloads() -> list[str]:
    from archsim.config.loader import list_presets
    return list_presets("workloads")


__all__ = ["load_workload", "load_workload_spec", "list_workloads", "KINDS", "register_kind"]
