"""Instruction set and the Program: a struct of arrays, one numpy array per field.

Every microarchitecture lowers a workload to a Program. The shared timing kernel reads
``op``, ``unit``, ``deps``, ``nbytes``, ``addr`` and ``layer``; the per-microarchitecture
cost kernel reads the shape fields (``m``, ``n``, ``k``) and ``aux``.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from enum import IntEnum

import numpy as np

from archsim.errors import ArchsimError

MAX_DEPS = 4
N_AUX = 4


class Op(IntEnum):
    LOAD = 0        # off-chip -> on-chip buffer (timed by the memory model)
    STORE = 1       # on-chip buffer -> off-chip
    GEMM = 2        # a tile of matrix multiply on a compute unit (m x n x k)
    VECTOR = 3      # vector-unit instruction (aux[0] = vector kind, m = elements, n = rows)
    WRITE = 4       # in-place array write (e.g. CIM macro weight rewrite)
    PIM = 5         # in-memory command group (timed by the memory model)
    SYNC = 6        # zero-cost barrier (joins dependencies)
    XFER = 7        # on-chip / inter-device transfer (link)
    SHARED = 8      # tile to / from an on-chip memory shared by compute units (timed by its pipe)


class VecKind(IntEnum):
    """Vector instruction kinds; the cost kernel turns them into primitive-op counts."""

    ADD = 0          # element-wise add (residual)
    MUL = 1          # element-wise multiply (gating)
    SOFTMAX = 2
    LAYERNORM = 3
    RMSNORM = 4
    GELU = 5
    SILU = 6
    RELU = 7
    ROPE = 8
    COPY = 9
    SCAN = 10        # selective-scan step (SSM)
    CONV1D = 11
    TOPK = 12


@dataclass
class Program:
    """Instruction stream (struct of arrays) plus the tables that describe it."""

    op: np.ndarray            # uint8
    unit: np.ndarray          # int32: index into ``unit_names``
    layer: np.ndarray         # int32: index into ``layer_names``
    m: np.ndarray             # int64
    n: np.ndarray             # int64
    k: np.ndarray             # int64
    nbytes: np.ndarray        # int64 bytes moved (LOAD/STORE/WRITE/XFER)
    addr: np.ndarray          # int64 off-chip byte address (LOAD/STORE)
    deps: np.ndarray          # int64 [n, MAX_DEPS] indices of earlier instructions, -1 = none
    aux: np.ndarray           # int64 [n, N_AUX] microarchitecture-specific fields
    unit_names: list[str] = field(default_factory=list)
    layer_names: list[str] = field(default_factory=list)
    layer_weights: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    meta: dict = field(default_factory=dict)
    # the workload op (or fused group of ops) each instruction belongs to: an index into
    # ``op_names``, -1 for none; empty when the lowerer does not attribute instructions
    op_tag: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int32))
    op_names: list[str] = field(default_factory=list)

    FIELDS = ("op", "unit", "layer", "m", "n", "k", "nbytes", "addr", "deps", "aux")

    def __len__(self) -> int:
        return int(self.op.shape[0])

    def prefix(self, k: int) -> "Program":
        """The first ``k`` instructions (views of this program's arrays; the tables are shared).
        Dependencies point backwards, so a prefix is a program of its own."""
        return Program(**{f: getattr(self, f)[:k] for f in self.FIELDS}, unit_names=self.unit_names,
                       layer_names=self.layer_names, layer_weights=self.layer_weights, meta=self.meta,
                       op_tag=self.op_tag[:k] if len(self.op_tag) else self.op_tag, op_names=self.op_names)

    def validate(self) -> None:
        """Check shapes, dtypes and that dependencies point backwards."""
        n = len(self)
        for f in self.FIELDS:
            a = getattr(self, f)
            if a.shape[0] != n:
                raise ArchsimError(f"program field {f} has {a.shape[0]} rows, expected {n}")
        if self.deps.shape[1] != MAX_DEPS or self.aux.shape[1] != N_AUX:
            raise ArchsimError("program deps/aux have the wrong width")
        idx = np.arange(n)[:, None]
        bad = (self.deps >= idx) | (self.deps < -1)
        if bad.any():
            i = int(np.argwhere(bad)[0, 0])
            raise ArchsimError(f"instruction {i} depends on a later or invalid instruction")
        if n and (self.unit.min() < 0 or self.unit.max() >= len(self.unit_names)):
            raise ArchsimError("instruction unit out of range")
        if n and (self.layer.min() < 0 or self.layer.max() >= len(self.layer_names)):
            raise ArchsimError("instruction layer out of range")
        if len(self.op_tag) not in (0, n):
            raise ArchsimError(f"program op_tag has {len(self.op_tag)} rows, expected {n}")
        if len(self.op_tag) and (self.op_tag.min() < -1 or self.op_tag.max() >= len(self.op_names)):
            raise ArchsimError("instruction op tag out of range")
        if len(self.layer_weights) != len(self.layer_names):
            raise ArchsimError("layer_weights and layer_names differ in length")

    def save(self, path) -> None:
        np.savez_compressed(path, **{f: getattr(self, f) for f in self.FIELDS},
                            unit_names=np.array(self.unit_names), layer_names=np.array(self.layer_names),
                            layer_weights=self.layer_weights, op_tag=self.op_tag,
                            op_names=np.array(self.op_names, dtype=str))

    @classmethod
    def load(cls, path) -> "Program":
        z = np.load(path)
        tags = {"op_tag": z["op_tag"], "op_names": [str(x) for x in z["op_names"]]} if "op_tag" in z else {}
        return cls(**{f: z[f] for f in cls.FIELDS}, unit_names=list(z["unit_names"]),
                   layer_names=list(z["layer_names"]), layer_weights=z["layer_weights"], **tags)

    def summary(self) -> dict:
        counts = {Op(o).name: int(c) for o, c in zip(*np.unique(self.op, return_counts=True))}
        return {"instructions": len(self), "by_op": counts, "units": list(self.unit_names),
                "layers": len(self.layer_names),
                "load_bytes": int(self.nbytes[self.op == Op.LOAD].sum()),
                "store_bytes": int(self.nbytes[self.op == Op.STORE].sum())}


#: memory one instruction takes through lowering, timing and reporting (fields, the lowerers'
#: temporaries, the program, the schedule): measured peak resident memory over instructions of
#: a 14.1 M-instruction sparse tensor-core run (Mixtral-8x7B prefill, batch 16 x 2048 tokens on
#: rm_stc), 2.9 GB or 206 B each, rounded up
BYTES_PER_INSTRUCTION = 250


def available_memory_bytes() -> float:
    """Physical memory available to this process now (Linux /proc/meminfo MemAvailable; the
    free pages where that is missing; unbounded where neither is known)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return float("inf")


_DTYPES = {"op": np.uint8, "unit": np.int32, "layer": np.int32, "m": np.int64, "n": np.int64,
           "k": np.int64, "nbytes": np.int64, "addr": np.int64, "deps": np.int64, "aux": np.int64}
_WIDTH = {"deps": MAX_DEPS, "aux": N_AUX}


class ProgramBuilder:
    """Appends vectorised chunks of instructions (each chunk built with numpy) to growable
    struct-of-arrays buffers: every chunk is written once, into its place in the program, and
    :meth:`build` hands out the filled part without copying the program again."""

    def __init__(self, unit_names: list[str]):
        self.unit_names = list(unit_names)
        self.layer_names: list[str] = []
        self.layer_weights: list[int] = []
        self.count = 0
        self._cap = 0
        self._buf: dict[str, np.ndarray] = {}
        self._tags = np.zeros(0, np.int32)             # op tag of every instruction
        self.op_names: list[str] = []
        self.op_members: list[list[str]] = []
        self._tag_index: dict[str, int] = {}
        self._tag = -1
        # instructions this machine can hold (see BYTES_PER_INSTRUCTION); checked by reserve()
        self.max_instructions = int(min(available_memory_bytes() * 0.8 / BYTES_PER_INSTRUCTION, 2 ** 62))

    def reserve(self, n: int, path: str = "workload.batch",
                hint: str = "simulate the same hardware at a coarser grain", allocate: bool = False) -> None:
        """Refuse, before building them, ``n`` more instructions than this machine's memory can
        simulate (:class:`OutOfRangeError` naming ``path``): a clear error instead of the
        process being killed for want of memory. ``allocate``: ``n`` is the lowerer's estimate
        of what follows; size the buffers for it now rather than growing them on the way."""
        total = self.count + int(n)
        if total > self.max_instructions:
            from archsim.errors import OutOfRangeError
            need = total * BYTES_PER_INSTRUCTION / 1e9
            have = self.max_instructions * BYTES_PER_INSTRUCTION / 0.8 / 1e9
            raise OutOfRangeError(
                f"the lowered program would hold about {total / 1e6:.0f} M instructions (about {need:.0f} GB "
                f"to simulate) but {have:.1f} GB of memory is available: reduce {path} (or the other "
                f"sizes of the workload), or {hint}", path=path)
        if allocate and total > self._cap:
            # pages of the spare room are never touched, and build() gives them back
            self._resize(total + total // 4)

    def _grow(self, size: int) -> int:
        """Room for ``size`` more instructions (checked against the memory, then the buffers
        grown by half again when full); returns where they go."""
        self.reserve(size)
        need = self.count + size
        if need > self._cap or not self._buf:
            self._resize(max(need, self._cap + self._cap // 2, 1024))
        return self.count

    def _resize(self, cap: int) -> None:
        """Buffers of ``cap`` instructions holding the ones added so far."""
        if self.count and not self._buf:
            raise RuntimeError("this ProgramBuilder has built its program; start a new one")
        for f, dt in _DTYPES.items():
            buf = np.empty((cap, _WIDTH[f]) if f in _WIDTH else (cap,), dt)
            if self.count:
                buf[: self.count] = self._buf[f][: self.count]
            self._buf[f] = buf
        tags = np.empty(cap, np.int32)
        tags[: self.count] = self._tags[: self.count]
        self._tags = tags
        self._cap = cap

    def _rows(self, size: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """``size`` new instructions (attributed to the current tag) as views into the program,
        for the caller to write, and their absolute indices."""
        at = self._grow(size)
        end = at + size
        self._tags[at:end] = self._tag
        self.count = end
        return {f: self._buf[f][at:end] for f in Program.FIELDS}, np.arange(at, end, dtype=np.int64)

    def tag(self, name: str, members=None) -> int:
        """Attribute the instructions added from now on to the workload op ``name`` (or to a
        group of ops lowered together, e.g. a fused attention kernel: ``members`` lists the
        workload ops it covers; default: the op itself). Returns the tag's index."""
        i = self._tag_index.get(name)
        if i is None:
            i = self._tag_index[name] = len(self.op_names)
            self.op_names.append(name)
            self.op_members.append([])
        for m in (members if members is not None else [name]):
            if m not in self.op_members[i]:
                self.op_members[i].append(m)
        self._tag = i
        return i

    def layer(self, name: str, weight: int = 1) -> int:
        if name in self.layer_names:
            return self.layer_names.index(name)
        self.layer_names.append(name)
        self.layer_weights.append(int(weight))
        return len(self.layer_names) - 1

    def add(self, op, unit, layer, m=0, n=0, k=0, nbytes=0, addr=0, deps=None, aux=None) -> np.ndarray:
        """Append a chunk; scalars broadcast. ``deps`` holds *absolute* indices or -1.
        Returns the absolute indices of the new instructions."""
        op = np.atleast_1d(np.asarray(op, dtype=np.uint8))
        size = max(np.size(x) for x in (op, unit, layer, m, n, k, nbytes, addr))
        if deps is not None and np.ndim(deps) == 2:
            size = max(size, np.shape(deps)[0])
        if deps is not None:
            deps = np.asarray(deps, dtype=np.int64)
            if deps.ndim == 1:
                deps = deps[:, None] if deps.shape[0] == size else np.broadcast_to(deps, (size, deps.shape[0]))
        if aux is not None:
            aux = np.asarray(aux, dtype=np.int64)
            if aux.ndim == 1:
                aux = np.broadcast_to(aux, (size, aux.shape[0]))
        v, idx = self._rows(size)
        for f, x in (("op", op), ("unit", unit), ("layer", layer), ("m", m), ("n", n), ("k", k),
                     ("nbytes", nbytes), ("addr", addr)):
            v[f][...] = np.broadcast_to(np.asarray(x, dtype=_DTYPES[f]), (size,))
        v["deps"][...] = -1
        if deps is not None:
            v["deps"][:, : deps.shape[1]] = deps
        v["aux"][...] = 0
        if aux is not None:
            v["aux"][:, : aux.shape[1]] = aux
        return idx

    def claim(self, size: int, op=0, unit=0, layer=0) -> dict[str, np.ndarray]:
        """``size`` new instructions of ``op`` on ``unit`` in ``layer`` (no dependencies, zero
        sizes), returned as views into the program for the caller to fill in place; they must
        be filled before the next instruction is added (the buffers may move then)."""
        v, _ = self._rows(size)
        v["op"][...], v["unit"][...], v["layer"][...] = op, unit, layer
        for f in ("m", "n", "k", "nbytes", "addr", "aux"):
            v[f][...] = 0
        v["deps"][...] = -1
        return v

    def add_arrays(self, arrays: dict) -> np.ndarray:
        """Append a chunk given as complete arrays (deps already absolute)."""
        v, idx = self._rows(arrays["op"].shape[0])
        for f in Program.FIELDS:
            v[f][...] = arrays[f]
        return idx

    def build(self, meta: dict | None = None) -> Program:
        """The program of everything added; the builder hands its buffers over (adding to it
        afterwards starts new ones)."""
        if not self._buf:
            self._resize(0)
        # contiguous views of the filled rows: the spare rows behind them were never written, so
        # they take address space, not memory
        cat = {f: self._buf[f][: self.count] for f in Program.FIELDS}
        tags_all = self._tags[: self.count]
        self._buf, self._tags, self._cap = {}, np.zeros(0, np.int32), 0
        tags = {}
        if self.op_names:
            tags = {"op_tag": tags_all, "op_names": list(self.op_names)}
            meta = {**(meta or {}), "op_members": [list(m) for m in self.op_members]}
        p = Program(**cat, unit_names=self.unit_names, layer_names=self.layer_names,
                    layer_weights=np.asarray(self.layer_weights, np.int64), meta=meta or {}, **tags)
        p.validate()
        return p
