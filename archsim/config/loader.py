"""YAML loading, presets, command-line overrides and error collection."""
from __future__ import annotations

import os
import re
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
    if p.is_dir():
        raise InputFileError(f"{str(name_or_path)!r} is a directory, not a YAML file or preset name")
    names = list_presets(kind)
    raise InputFileError(f"no such file or preset: {str(name_or_path)!r}"
                         f"{did_you_mean(p.stem, names)}; presets: {', '.join(names) or 'none'}")


class DuplicateKeyError(yaml.constructor.ConstructorError):
    """A mapping gives the same key twice (YAML leaves the choice to the loader; PyYAML keeps
    the last one silently)."""

    def __init__(self, key, line: int, first_line: int, node_mark):
        self.key, self.line, self.first_line = key, line, first_line
        super().__init__(None, None, f"duplicate key {key!r} (first given on line {first_line})", node_mark)


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` refusing a key given twice in one mapping (merge keys ``<<`` may
    still be overridden, as YAML intends)."""

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen: dict = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue
                line = key_node.start_mark.line + 1
                if first is not None:
                    raise DuplicateKeyError(key, line, first, key_node.start_mark)
                seen[key] = line
        return super().construct_mapping(node, deep=deep)


def yaml_load(text: str):
    """``yaml.safe_load`` that refuses duplicate keys (:class:`DuplicateKeyError`)."""
    return yaml.load(text, Loader=UniqueKeyLoader)


def read_text_file(path: str | os.PathLike, what: str = "") -> str:
    """The UTF-8 text of a file; :class:`InputFileError` when it cannot be read, is a directory
    or is not text (binary, another encoding)."""
    path = Path(path)
    label = f"{what} {path}" if what else str(path)
    if path.is_dir():
        raise InputFileError(f"{label} is a directory, not a file")
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise InputFileError(f"cannot read {label}: {e.strerror or e}") from None
    if b"\0" in raw:
        raise InputFileError(f"{label} is not a text file (it holds NUL bytes: a binary file?)")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputFileError(f"{label} is not a text file (not UTF-8: byte 0x{raw[e.start]:02x} "
                             f"at offset {e.start})") from None


def load_yaml_file(path: str | os.PathLike) -> dict:
    path = Path(path)
    text = read_text_file(path)
    try:
        data = yaml_load(text)
    except DuplicateKeyError as e:
        raise InputFileError(f"duplicate key {e.key!r} in {path} line {e.line} (first given on line "
                             f"{e.first_line}; a key may appear once per section)") from None
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
        value = yaml_load(raw) if raw.strip() else ""
    except DuplicateKeyError as e:
        raise ConfigError([(key, f"duplicate key {e.key!r} in the override value {raw.strip()!r}")]) from None
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


_FIELD_MSG = re.compile(r"^([A-Za-z_]\w*(?:\.\w+)*): (.+)$", re.S)


def problems_from_validation(err: ValidationError, model_cls: type[BaseModel],
                             prefix: str = "") -> list[tuple[str, str]]:
    probs = []
    for e in err.errors():
        key_error = "[key]" in e["loc"]                       # a dict key's error names the key
        loc = [str(x) for x in e["loc"] if x != "[key]"]
        cause = (e.get("ctx") or {}).get("error")
        loc += [str(x) for x in getattr(cause, "subpath", ())]  # a number inside a list / dict field
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
                # a model-level check naming its field first ("buffer.size: too small") reports
                # it at that field's path
                m = _FIELD_MSG.match(msg)
                if m and m.group(1).split(".")[0] in _model_fields_at(model_cls, loc):
                    path = ".".join(([prefix] if prefix else []) + loc + [m.group(1)])
                    probs.append((path, m.group(2)))
                    continue
            if "input" in e and e["type"] not in ("model_type",) and not isinstance(e["input"], dict) \
                    and not key_error and not getattr(cause, "subpath", ()):
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

    ``source`` is a path, a preset name, a dict or an already validated config (which is
    re-validated with the overrides applied); overrides whose first component is
    ``workload`` are ignored here. ``model_for(uarch_name) -> model class`` resolves the
    microarchitecture's config model (``archsim.uarch.config_model`` by default).
    """
    if isinstance(source, dict):
        data, where = source, "<dict>"
    elif isinstance(source, BaseModel):
        data, where = source.model_dump(), f"<{type(source).__name__}>"
    elif not isinstance(source, (str, os.PathLike)):
        raise ConfigError([("arch", f"expected a preset name, a path, a dict or a loaded config, "
                                    f"not {type(source).__name__}")])
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
