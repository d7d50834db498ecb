"""YAML loading, presets, command-line overrides and error collection."""
from __future__ import annotations

import os
import typing
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml
from pydantic import BaseModel, ValidationError

from archsim.errors import ConfigError, InputFileError, did_you_mean


def project_root() -> Path:
    """Folder holding arch_configs/, workloads/ and validation/ (ARCHSIM_HOME overrides)."""
    env = os.environ.get("ARCHSIM_HOME")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2]


def presets_dir(kind: str = "arch_configs") -> Path:
    return project_root() / kind


def list_presets(kind: str = "arch_configs") -> list[str]:
    d = presets_dir(kind)
    if not d.is_dir():
        return []
    return sorted(p.stem for p in d.glob("*.yaml"))


def find_preset(name_or_path: str | os.PathLike, kind: str = "arch_configs") -> Path:
    """A path as given if it exists, else ``<root>/<kind>/<name>.yaml``."""
    p = Path(name_or_path)
    if p.is_file():
        return p
    cand = presets_dir(kind) / f"{p.name if p.suffix in ('.yaml', '.yml') else str(p)}"
    if cand.suffix not in (".yaml", ".yml"):
        cand = cand.with_name(cand.name + ".yaml")
    if cand.is_file():
        return cand
    names = list_presets(kind)
    raise InputFileError(f"no such file or preset: {str(name_or_path)!r}"
                         f"{did_you_mean(p.stem, names)}; presets: {', '.join(names) or 'none'}")


def load_yaml_file(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise InputFileError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputFileError(f"malformed YAML in {path}{where}: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputFileError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"array.rows=256"`` -> (["array", "rows"], 256). The value is read as YAML."""
    if "=" not in text:
        raise ConfigError([(text, "an override must look like path.to.field=value")])
    key, _, raw = text.partition("=")
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError([(key or text, "empty field name in override")])
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict, overrides: Iterable[str], skip_prefix: str | None = None) -> dict:
    """Return a copy of ``data`` with each dotted override set (intermediate dicts created)."""
    import copy

    out = copy.deepcopy(data)
    for ov in overrides:
        path, value = parse_override(ov)
        if skip_prefix and path[0] == skip_prefix:
            continue
        cur = out
        for i, part in enumerate(path[:-1]):
            nxt = cur.get(part)
            if nxt is None:
                nxt = cur[part] = {}
            elif not isinstance(nxt, dict):
                raise ConfigError([(".".join(path[: i + 1]), f"is a value ({nxt!r}), not a section")])
            cur = nxt
        cur[path[-1]] = value
    return out


def _model_fields_at(model_cls: type[BaseModel], loc: Sequence) -> list[str]:
    """Names of the fields of the model reached by following ``loc`` from ``model_cls``."""
    cls: Any = model_cls
    for part in loc:
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)):
            return []
        f = cls.model_fields.get(part)
        if f is None:
            return []
        cls = _unwrap(f.annotation)
    if isinstance(cls, type) and issubclass(cls, BaseModel):
        return list(cls.model_fields)
    return []


def _unwrap(tp):
    origin = typing.get_origin(tp)
    if origin is None:
        return tp
    for a in typing.get_args(tp):
        if isinstance(a, type) and issubclass(a, BaseModel):
            return a
    return tp


def problems_from_validation(err: ValidationError, model_cls: type[BaseModel],
                             prefix: str = "") -> list[tuple[str, str]]:
    probs = []
    for e in err.errors():
        loc = [str(x) for x in e["loc"]]
        path = ".".join(([prefix] if prefix else []) + loc)
        if e["type"] == "extra_forbidden":
            hint = did_you_mean(loc[-1], _model_fields_at(model_cls, loc[:-1]))
            msg = f"unknown field{hint}"
        elif e["type"] == "missing":
            msg = "required field missing"
        else:
            msg = e["msg"]
            if msg.startswith("Value error, "):
                msg = msg[len("Value error, "):]
            if "input" in e and e["type"] not in ("model_type",) and not isinstance(e["input"], dict):
                msg += f" (got {e['input']!r})"
        probs.append((path, msg))
    return probs


def validate_model(model_cls: type[BaseModel], data: dict, source: str | None = None,
                   prefix: str = ""):
    try:
        return model_cls.model_validate(data)
    except ValidationError as e:
        raise ConfigError(problems_from_validation(e, model_cls, prefix), source=source) from None


def load_arch(source: str | os.PathLike | dict, overrides: Sequence[str] = (),
              model_for=None):
    """Load and validate a hardware description.

    ``source`` is a path, a preset name or a dict; overrides whose first component is
    ``workload`` are ignored here. ``model_for(uarch_name) -> model class`` resolves the
    microarchitecture's config model (``archsim.uarch.config_model`` by default).
    """
    if isinstance(source, dict):
        data, where = source, "<dict>"
    else:
        path = find_preset(source, "arch_configs")
        data, where = load_yaml_file(path), str(path)
    data = apply_overrides(data, overrides, skip_prefix="workload")
    if model_for is None:
        from archsim.uarch import config_model as model_for
    uarch = data.get("uarch")
    if uarch is None:
        raise ConfigError([("uarch", "required field missing")], source=where)
    model_cls = model_for(uarch)
    return validate_model(model_cls, data, where)
