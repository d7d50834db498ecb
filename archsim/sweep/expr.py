"""Safe expressions for sweep constraints, derived metrics and filters.

An expression is parsed once with :mod:`ast` and checked against a whitelist of node
types; it is then evaluated by walking the tree. Nothing is ever passed to ``eval``.

Names are config or workload fields written as dotted paths (``array.rows``,
``workload.batch``, ``sram.ifmap``) or metric names (``cycles``, ``area_mm2``, ...).
Strings that are quantities with a unit (``"256 KiB"``, ``"900 GB/s"``, ``"1 GHz"``)
compare as numbers in the base unit (bytes, bytes/s, Hz, s, pJ, W).
"""
from __future__ import annotations

import ast
import math
import operator
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from archsim import units
from archsim.errors import ArchsimError, ConfigError, did_you_mean

_BINOPS: dict[type, Callable] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_UNOPS: dict[type, Callable] = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_}
_CMPOPS: dict[type, Callable] = {
    ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
FUNCTIONS: dict[str, Callable] = {
    "min": min, "max": max, "abs": abs, "round": round,
    "log2": math.log2, "log10": math.log10, "log": math.log, "sqrt": math.sqrt,
    "ceil": math.ceil, "floor": math.floor,
}


def coerce(value: Any) -> Any:
    """A quantity string becomes a float in its base unit; everything else is unchanged."""
    if not isinstance(value, str):
        return value
    s = value.strip()
    for parser in (units.parse_bandwidth, units.parse_frequency, units.parse_bytes,
                   units.parse_time, units.parse_energy, units.parse_power):
        try:
            return parser(s)
        except units.UnitError:
            continue
    return value


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


@dataclass
class Expr:
    """A parsed, whitelisted expression."""

    text: str
    tree: ast.Expression
    names: set[str] = field(default_factory=set)
    where: str = "expression"       # the spec path it came from, e.g. "constraints[0]"

    def __call__(self, env: Mapping[str, Any]) -> Any:
        try:
            return _eval(self.tree.body, env)
        except ExprEvalError as e:
            raise ExprEvalError(f"cannot evaluate {self.text!r}: {e.message}", cause=e.cause) from None
        except ArchsimError:
            raise
        except (TypeError, ValueError, ZeroDivisionError, OverflowError, KeyError) as e:
            raise ExprEvalError(f"cannot evaluate {self.text!r}: {e}", cause=type(e)) from None


class ExprEvalError(ArchsimError):
    """An expression that parsed but failed on a point's values (e.g. 1/0).

    ``cause`` is the kind of failure: ``TypeError`` (operands of the wrong type, e.g. a
    number compared with a string: a mistake in the expression), ``ZeroDivisionError``,
    ``ValueError`` (a math domain error), ``OverflowError``, or ``KeyError`` (a name
    missing from the point)."""

    def __init__(self, message: str, cause: type = TypeError):
        super().__init__(message)
        self.cause = cause


def parse(text: str, where: str = "expression") -> Expr:
    """Parse ``text``; raise :class:`ConfigError` (path ``where``) if it is not allowed."""
    if not isinstance(text, str) or not text.strip():
        raise ConfigError([(where, "expected a non-empty expression string")])
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        col = f" at column {e.offset}" if e.offset else ""
        raise ConfigError([(where, f"cannot parse {text!r}{col}: {e.msg}")]) from None
    names: set[str] = set()
    _check(tree.body, text, where, names)
    return Expr(text.strip(), tree, names, where)


def _check(node: ast.AST, text: str, where: str, names: set[str]) -> None:
    bad = None
    if isinstance(node, ast.Constant):
        if not isinstance(node.value, (int, float, str, bool)) and node.value is not None:
            bad = "constant"
    elif isinstance(node, (ast.Name, ast.Attribute)):
        d = _dotted(node)
        if d is None:
            bad = "attribute access"
        else:
            if d in FUNCTIONS:
                bad = f"function {d!r} used as a value"
            elif any(part.startswith("__") for part in d.split(".")):
                bad = f"name {d!r}"
            names.add(d)
    elif isinstance(node, ast.BoolOp):
        for v in node.values:
            _check(v, text, where, names)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _BINOPS:
            bad = f"operator {type(node.op).__name__}"
        else:
            _check(node.left, text, where, names)
            _check(node.right, text, where, names)
    elif isinstance(node, ast.UnaryOp):
        if type(node.op) not in _UNOPS:
            bad = f"operator {type(node.op).__name__}"
        else:
            _check(node.operand, text, where, names)
    elif isinstance(node, ast.Compare):
        if any(type(op) not in _CMPOPS for op in node.ops):
            bad = "comparison 'is'"
        else:
            _check(node.left, text, where, names)
            for c in node.comparators:
                _check(c, text, where, names)
    elif isinstance(node, (ast.Tuple, ast.List)):
        for e in node.elts:
            _check(e, text, where, names)
    elif isinstance(node, ast.IfExp):
        for e in (node.test, node.body, node.orelse):
            _check(e, text, where, names)
    elif isinstance(node, ast.Call):
        fname = node.func.id if isinstance(node.func, ast.Name) else None
        if fname not in FUNCTIONS or node.keywords:
            bad = f"call of {ast.unparse(node.func)!r} (allowed: {', '.join(sorted(FUNCTIONS))})"
        else:
            for a in node.args:
                _check(a, text, where, names)
    else:
        bad = type(node).__name__
    if bad:
        raise ConfigError([(where, f"not allowed in {text!r}: {bad}")])


def _eval(node: ast.AST, env: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Name, ast.Attribute)):
        name = _dotted(node)
        if name not in env:
            raise ExprEvalError(f"unknown name {name!r}{did_you_mean(name, env)}", cause=KeyError)
        return coerce(env[name])
    if isinstance(node, ast.BoolOp):
        if isinstance(node.op, ast.And):
            res: Any = True
            for v in node.values:
                res = _eval(v, env)
                if not res:
                    return res
            return res
        res = False
        for v in node.values:
            res = _eval(v, env)
            if res:
                return res
        return res
    if isinstance(node, ast.BinOp):
        left, right = _eval(node.left, env), _eval(node.right, env)
        if isinstance(node.op, ast.Pow) and isinstance(right, (int, float)) and abs(right) > 64 \
                and isinstance(left, (int, float)) and abs(left) > 1:
            raise ValueError("exponent too large")
        return _BINOPS[type(node.op)](coerce(left), coerce(right))
    if isinstance(node, ast.UnaryOp):
        return _UNOPS[type(node.op)](_eval(node.operand, env))
    if isinstance(node, ast.Compare):
        left = coerce(_eval(node.left, env))
        for op, comp in zip(node.ops, node.comparators):
            right = _eval(comp, env)
            right = tuple(coerce(x) for x in right) if isinstance(right, (tuple, list)) else coerce(right)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, (ast.Tuple, ast.List)):
        return tuple(_eval(e, env) for e in node.elts)
    if isinstance(node, ast.IfExp):
        return _eval(node.body, env) if _eval(node.test, env) else _eval(node.orelse, env)
    if isinstance(node, ast.Call):
        return FUNCTIONS[node.func.id](*[coerce(_eval(a, env)) for a in node.args])
    raise ExprEvalError(f"unsupported expression node {type(node).__name__}")  # pragma: no cover
