"""SCALE-Sim compatible per-layer report for GEMM topologies.

Reads a SCALE-Sim ``.cfg`` and a GEMM topology CSV (``name, M, N, K,`` rows, as
SCALE-Sim's ``-i gemm`` takes it) and produces, per layer, what SCALE-Sim 3.0.0
reports, under its own column names, so the two can be diffed.

Exact (reproduced from SCALE-Sim's report arithmetic, quirks included):
stall-free cycles, mapping efficiency, compute utilisation, SRAM read/write
counts, and overall utilisation given the total cycles.  The fold geometry lives
in :mod:`archsim.uarch.systolic.folds`.

Report quirks reproduced here (see ``docs/scalesim.md``):

* "Total Cycles" is ``F * cycles_per_fold - 1`` (+ stalls): SCALE-Sim reports
  the index of the last cycle.  :func:`folds.gemm_compute_cycles` has no ``-1``.
* ws/is "Compute Util %" divides by ``2R+2C+T-3`` per fold, not the fold
  length (in :func:`folds.compute_utilisation`).
* os "SRAM OFMAP Writes" adds ``R+C`` per fold (in
  :func:`folds.sram_access_counts`).

Stall cycles, total cycles, DRAM counts, the first / last cycle of every SRAM
and DRAM stream and the average bandwidths come from a replay of SCALE-Sim's
double-buffered SRAMs (:mod:`archsim.uarch.systolic.scalesim_buffers`): its
prefetch windows in ``USER`` mode, its bandwidth-estimating read buffer in
``CALC`` mode, and its OFMAP write buffer in both.  The replay walks every
stall-free cycle, so a layer beyond :data:`REPLAY_LIMIT` array-port visits (far
beyond what SCALE-Sim itself can run) falls back to closed forms, marked in the
row's ``Buffers`` field (and without the windows and bandwidths):

* DRAM reads: an operand smaller than half its SRAM is read once; otherwise it
  is re-read for every fold whose slice differs from the previous fold's (fold
  order: column folds outer, row folds inner).  SCALE-Sim's windows let some
  re-reads hit, which this does not see.  DRAM OFMAP writes: the words written.
* Stalls: 0 in ``CALC`` mode; in ``USER`` mode a bandwidth bound.
"""

from __future__ import annotations

import configparser
import csv
import math
import os
from dataclasses import dataclass, field

import numpy as np

from archsim.errors import ConfigError, InputFileError
from archsim.uarch.systolic import folds, scalesim_buffers

#: A layer whose buffer replay would visit more array ports (stall-free cycles x the ports
#: read or written per cycle) than this, or whose operands hold more elements than
#: :data:`REPLAY_MAX_ELEMENTS`, is reported with closed forms instead (about 10 s of replay).
REPLAY_LIMIT = 4_000_000_000
REPLAY_MAX_ELEMENTS = 100_000_000

#: SCALE-Sim's report column names, in the order archsim prints them.
REPORT_COLUMNS = (
    "Layer",
    "Total Cycles",
    "Stall Cycles",
    "Compute Cycles",
    "Overall Util %",
    "Mapping Efficiency %",
    "Compute Util %",
    "SRAM IFMAP Reads",
    "SRAM Filter Reads",
    "SRAM OFMAP Writes",
    "DRAM IFMAP Reads",
    "DRAM Filter Reads",
    "DRAM OFMAP Writes",
)

#: SCALE-Sim's further columns: the run including the first fill (its COMPUTE_REPORT), the first
#: and last cycle of each SRAM's and DRAM stream's accesses (DETAILED_ACCESS_REPORT) and the
#: average bandwidths in words per cycle (BANDWIDTH_REPORT; in CALC mode the DRAM ones are its
#: bandwidth estimate).  None for a layer reported with closed forms.
_STREAMS = (("SRAM", "IFMAP"), ("SRAM", "Filter"), ("SRAM", "OFMAP"),
            ("DRAM", "IFMAP"), ("DRAM", "Filter"), ("DRAM", "OFMAP"))
WINDOW_COLUMNS = tuple(f"{mem} {op} {edge} Cycle" for mem, op in _STREAMS
                       for edge in ("Start", "Stop"))
BANDWIDTH_COLUMNS = tuple(f"Avg {op.upper()} {mem} BW" for mem, op in _STREAMS)
TIMING_COLUMNS = ("Total Cycles (incl. prefetch)",) + WINDOW_COLUMNS + BANDWIDTH_COLUMNS
ALL_COLUMNS = REPORT_COLUMNS + TIMING_COLUMNS

_ARCH = "architecture_presets"
_RUN = "run_presets"
_LAYOUT = "layout"


@dataclass(frozen=True)
class ScaleSimConfig:
    """The parts of a SCALE-Sim ``.cfg`` that the report depends on."""

    path: str
    run_name: str
    array_rows: int  # ArrayHeight (R)
    array_cols: int  # ArrayWidth (C)
    ifmap_sram_kb: int
    filter_sram_kb: int
    ofmap_sram_kb: int
    dataflow: str  # "os" | "ws" | "is"
    bandwidth_mode: str  # "CALC" | "USER"
    bandwidths: tuple[int, ...] = ()
    ifmap_sram_bank_bandwidth: int | None = None
    filter_sram_bank_bandwidth: int | None = None
    word_bytes: int = 1
    sparsity_support: bool = False  # [sparsity] SparsitySupport

    @property
    def dataflow_code(self) -> int:
        return folds.dataflow_code(self.dataflow)

    def sram_words(self, kb: int) -> int:
        return (kb * 1024) // self.word_bytes

    @property
    def ifmap_sram_words(self) -> int:
        return self.sram_words(self.ifmap_sram_kb)

    @property
    def filter_sram_words(self) -> int:
        return self.sram_words(self.filter_sram_kb)

    @property
    def ofmap_sram_words(self) -> int:
        return self.sram_words(self.ofmap_sram_kb)


@dataclass(frozen=True)
class GemmLayer:
    name: str
    M: int
    N: int
    K: int
    line: int = 0
    sparsity: tuple[int, int] = (1, 1)  # the optional fifth column, N:M (N of every M kept)


@dataclass
class _Problems:
    source: str
    items: list = field(default_factory=list)

    def add(self, path: str, msg: str) -> None:
        self.items.append((path, msg))

    def raise_if_any(self) -> None:
        if self.items:
            raise ConfigError(self.items, source=self.source)


def _read_text(path: str, what: str) -> str:
    if not os.path.exists(path):
        raise InputFileError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise InputFileError(f"{what} is a directory, not a file: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputFileError(f"cannot read {what} {path}: {exc}") from None


def _strip_value(raw: str) -> str:
    # SCALE-Sim's own files have no inline comments, but tolerate "value  # note".
    value = raw.split("#", 1)[0].split(";", 1)[0] if raw else raw
    return value.strip().strip('"').strip()


def _get_int(cp, section, key, problems, *, required=True, default=None, minimum=1):
    dotted = f"{section}.{key}"
    if not cp.has_section(section) or not cp.has_option(section, key):
        if required:
            problems.add(dotted, "missing key")
        return default
    raw = _strip_value(cp.get(section, key))
    try:
        value = int(raw)
    except ValueError:
        problems.add(dotted, f"expected an integer, got {raw!r}")
        return default
    if value < minimum or value > 2**31:
        bound = f"must be >= {minimum}" if value < minimum else "must be at most 2**31"
        problems.add(dotted, f"{bound}, got {value}")
        return default
    return value


def read_config(path: str) -> ScaleSimConfig:
    """Parse a SCALE-Sim ``.cfg``.  Raises InputFileError / ConfigError."""
    text = _read_text(path, "SCALE-Sim config")
    cp = configparser.ConfigParser(inline_comment_prefixes=None, strict=False)
    try:
        cp.read_string(text, source=path)
    except configparser.Error as exc:
        raise InputFileError(f"{path}: not a valid SCALE-Sim .cfg: {exc}") from None

    problems = _Problems(source=path)
    if not cp.has_section(_ARCH):
        problems.add(_ARCH, "missing section [architecture_presets]")
        problems.raise_if_any()

    rows = _get_int(cp, _ARCH, "ArrayHeight", problems)
    cols = _get_int(cp, _ARCH, "ArrayWidth", problems)
    ik = _get_int(cp, _ARCH, "IfmapSramSzkB", problems)
    fk = _get_int(cp, _ARCH, "FilterSramSzkB", problems)
    ok = _get_int(cp, _ARCH, "OfmapSramSzkB", problems)

    dataflow = None
    if not cp.has_option(_ARCH, "Dataflow"):
        problems.add(f"{_ARCH}.Dataflow", "missing key")
    else:
        raw = _strip_value(cp.get(_ARCH, "Dataflow"))
        try:
            dataflow = folds.DATAFLOW_NAMES[folds.dataflow_code(raw)]
        except ValueError:
            problems.add(f"{_ARCH}.Dataflow", f"unknown dataflow {raw!r}; expected os, ws or is")

    mode = "CALC"
    if cp.has_section(_RUN) and cp.has_option(_RUN, "InterfaceBandwidth"):
        raw = _strip_value(cp.get(_RUN, "InterfaceBandwidth")).upper()
        if raw not in ("CALC", "USER"):
            problems.add(f"{_RUN}.InterfaceBandwidth", f"expected CALC or USER, got {raw!r}")
        else:
            mode = raw
    else:
        problems.add(f"{_RUN}.InterfaceBandwidth", "missing key (CALC or USER)")

    bandwidths: tuple[int, ...] = ()
    if cp.has_option(_ARCH, "Bandwidth"):
        raw = _strip_value(cp.get(_ARCH, "Bandwidth"))
        try:
            bandwidths = tuple(int(x.strip()) for x in raw.split(",") if x.strip())
            if not bandwidths or min(bandwidths) < 1:
                raise ValueError
        except ValueError:
            if mode == "USER":
                problems.add(f"{_ARCH}.Bandwidth", f"expected positive integers, got {raw!r}")
            bandwidths = ()
    elif mode == "USER":
        problems.add(f"{_ARCH}.Bandwidth", "missing key (required when InterfaceBandwidth is USER)")

    ifmap_bank_bw = _get_int(cp, _LAYOUT, "IfmapSRAMBankBandwidth", problems, required=False)
    filter_bank_bw = _get_int(cp, _LAYOUT, "FilterSRAMBankBandwidth", problems, required=False)

    word_bytes = 1
    for key in ("WordSize", "WordSizeBytes", "WordBytes"):
        if cp.has_option(_ARCH, key):
            word_bytes = _get_int(cp, _ARCH, key, problems, default=1)
            break

    if word_bytes:
        for key, kb in (("IfmapSramSzkB", ik), ("FilterSramSzkB", fk), ("OfmapSramSzkB", ok)):
            if kb and kb * 1024 // word_bytes < 2:
                # each buffer is an active and a prefetch (drain) half of at least one word
                problems.add(f"{_ARCH}.{key}", f"{kb} kB holds {kb * 1024 // word_bytes} word(s) "
                             f"of WordSize {word_bytes} B; the double buffer needs at least 2")

    sparse = False
    if cp.has_section("sparsity") and cp.has_option("sparsity", "SparsitySupport"):
        raw = _strip_value(cp.get("sparsity", "SparsitySupport")).lower()
        if raw not in ("true", "false"):
            problems.add("sparsity.SparsitySupport", f"expected true or false, got {raw!r}")
        sparse = raw == "true"

    run_name = ""
    if cp.has_section("general") and cp.has_option("general", "run_name"):
        run_name = _strip_value(cp.get("general", "run_name"))

    problems.raise_if_any()
    return ScaleSimConfig(
        path=path,
        run_name=run_name or os.path.splitext(os.path.basename(path))[0],
        array_rows=rows,
        array_cols=cols,
        ifmap_sram_kb=ik,
        filter_sram_kb=fk,
        ofmap_sram_kb=ok,
        dataflow=dataflow,
        bandwidth_mode=mode,
        bandwidths=bandwidths,
        ifmap_sram_bank_bandwidth=ifmap_bank_bw,
        filter_sram_bank_bandwidth=filter_bank_bw,
        word_bytes=word_bytes,
        sparsity_support=sparse,
    )


def _sparsity_ratio(raw: str, where: str) -> tuple[int, int]:
    """SCALE-Sim's N:M sparsity ratio (N of every M filter values kept), 1 <= N <= M."""
    try:
        n, m = (int(x) for x in raw.split(":"))
    except ValueError:
        raise InputFileError(f"{where}: sparsity ratio must be N:M with integers, got {raw!r}") from None
    if not 1 <= n <= m:
        raise InputFileError(f"{where}: sparsity ratio {raw!r} needs 1 <= N <= M")
    return n, m


def read_topology(path: str) -> list[GemmLayer]:
    """Parse a GEMM topology CSV (header row, then ``name, M, N, K,`` rows, each with an optional
    fifth column: SCALE-Sim 3's ``N:M`` sparsity ratio, which runs dense unless the config sets
    ``SparsitySupport: true``; see :func:`report_rows`).

    Convolution topologies (SCALE-Sim's default input: IFMAP height/width,
    filter height/width, channels, num filter, strides) are rejected with a
    clear message: only ``-i gemm`` topologies are supported.
    """
    text = _read_text(path, "topology file")
    rows = list(csv.reader(text.splitlines()))
    layers: list[GemmLayer] = []
    header_seen = False
    for lineno, row in enumerate(rows, start=1):
        cells = [c.strip() for c in row]
        while cells and cells[-1] == "":
            cells.pop()
        if not cells or cells[0].startswith("#"):
            continue
        if not header_seen:
            header_seen = True
            # The header names the columns; a GEMM header has 4 (name, M, N, K), and a fifth
            # for the optional N:M sparsity ratio of SCALE-Sim 3.
            if len(cells) > 5:
                raise InputFileError(
                    f"{path}:{lineno}: the header has {len(cells)} columns "
                    f"({', '.join(cells)}): this looks like a convolution topology; "
                    "only GEMM topologies (SCALE-Sim's -i gemm: name, M, N, K) are supported"
                )
            if len(cells) < 4:
                raise InputFileError(
                    f"{path}:{lineno}: expected a header 'Layer, M, N, K,' with 4 columns, "
                    f"got {len(cells)}"
                )
            continue
        ratio = (1, 1)
        if len(cells) == 5 and ":" in cells[4]:
            ratio = _sparsity_ratio(cells[4], f"{path}:{lineno}: layer {cells[0]!r}")
            cells = cells[:4]
        if len(cells) > 4:
            raise InputFileError(
                f"{path}:{lineno}: {len(cells)} values in a row; only GEMM topologies "
                "(SCALE-Sim's -i gemm: name, M, N, K and an optional N:M sparsity ratio) are "
                "supported, not convolution layers"
            )
        if len(cells) < 4:
            raise InputFileError(
                f"{path}:{lineno}: expected 'name, M, N, K', got {len(cells)} value(s): {row!r}"
            )
        name = cells[0]
        dims = []
        for label, raw in zip("MNK", cells[1:4]):
            try:
                value = int(raw)
            except ValueError:
                raise InputFileError(
                    f"{path}:{lineno}: layer {name!r}: {label} must be an integer, got {raw!r}"
                ) from None
            if value < 1 or value > 2**31:
                bound = "must be >= 1" if value < 1 else "must be at most 2**31"
                raise InputFileError(f"{path}:{lineno}: layer {name!r}: {label} {bound}, got {value}")
            dims.append(value)
        layers.append(GemmLayer(name=name, M=dims[0], N=dims[1], K=dims[2], line=lineno,
                                sparsity=ratio))
    if not header_seen:
        raise InputFileError(f"{path}: empty topology file (expected a header and GEMM rows)")
    if not layers:
        raise InputFileError(f"{path}: no layers after the header")
    return layers


# ---------------------------------------------------------------------------
# DRAM traffic and stalls (modelled; see module docstring)
# ---------------------------------------------------------------------------


def dram_counts(cfg: ScaleSimConfig, M: int, N: int, K: int) -> tuple[int, int, int]:
    """(ifmap reads, filter reads, ofmap writes) to DRAM, in words: the closed form used
    beyond the replay limit.

    SCALE-Sim double-buffers each SRAM, so the working set it can hold is half
    the buffer.  An operand smaller than half its SRAM is read from DRAM once (one
    that fills the half exactly is re-read, as SCALE-Sim does).
    One that does not is re-read for every fold, except that consecutive folds
    needing the same slice share one read when that slice is smaller than half the
    buffer.  Fold order: column folds outer, row folds inner; so os reuses a
    FILTER slice (K x C) across its row folds, and ws/is reuse nothing across
    consecutive folds beyond what a whole-operand fit gives.
    """
    df = cfg.dataflow_code
    R, C = cfg.array_rows, cfg.array_cols
    rf, cf, _T = folds.fold_counts(df, R, C, M, N, K)
    ifmap_size, filter_size = M * K, K * N
    i_half = cfg.ifmap_sram_words // 2
    f_half = cfg.filter_sram_words // 2
    sram_i, sram_f, _sram_o = folds.sram_access_counts(df, R, C, M, N, K)

    ifmap = ifmap_size if ifmap_size < i_half else sram_i
    if df == folds.DATAFLOW_OS:
        if filter_size < f_half or K * min(C, N) < f_half:
            filt = filter_size
        else:
            filt = sram_f
    else:
        filt = filter_size if filter_size < f_half else sram_f

    if df == folds.DATAFLOW_OS:
        ofmap = M * N
    else:
        ofmap = M * N * folds._ceil_div(K, R)
    # The replay adds the empty slots of partial lines drained mid-batch (up to C - 1 words).
    return int(ifmap), int(filt), int(ofmap)


def user_mode_stall_cycles(cfg: ScaleSimConfig, M: int, N: int, K: int, compute_cycles: int,
                           dram: tuple[int, int, int]) -> int:
    """A bandwidth bound on stalls in USER mode, used beyond the replay limit.

    An operand that fits its SRAM is prefetched before cycle 0 (SCALE-Sim
    leaves that prefetch out of "Total Cycles"), so it costs no stall.  The
    others stream from DRAM during the run: IFMAP and FILTER at their SRAM bank
    bandwidths (words per cycle, ``IfmapSRAMBankBandwidth`` /
    ``FilterSRAMBankBandwidth``, falling back to ``Bandwidth``), OFMAP at
    ``Bandwidth`` beyond what the OFMAP buffer holds.  The stall is how far the
    slowest stream exceeds the compute time.
    """
    bw = cfg.bandwidths[0] if cfg.bandwidths else cfg.array_cols
    ibw = cfg.ifmap_sram_bank_bandwidth or bw
    fbw = cfg.filter_sram_bank_bandwidth or bw
    i_stream = 0 if M * K <= cfg.ifmap_sram_words else dram[0]
    f_stream = 0 if K * N <= cfg.filter_sram_words else dram[1]
    o_stream = max(0, dram[2] - cfg.ofmap_sram_words)
    need = max(math.ceil(i_stream / ibw), math.ceil(f_stream / fbw), math.ceil(o_stream / bw))
    return max(0, int(need) - int(compute_cycles))


# ---------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------


_COUNT_LIMIT = 2**62


def _layer_where(lay: GemmLayer, source: str) -> str:
    """'file:line: ' (or 'file: ', or '') before a message about one layer."""
    return f"{source}:{lay.line}: " if lay.line else (f"{source}: " if source else "")


def _check_countable(cfg: ScaleSimConfig, lay: GemmLayer, source: str) -> None:
    """Refuse a layer whose cycles or access counts would not fit the 64-bit counters (in exact
    integers: every SRAM count is at most twice M*N*K, plus the per-fold extras)."""
    R, C = cfg.array_rows, cfg.array_cols
    sr, sc, t = (int(x) for x in folds.spatial_dims(cfg.dataflow_code, lay.M, lay.N, lay.K))
    folds_ = -(-sr // R) * -(-sc // C)
    cycles = folds_ * (t + 2 * R + C)
    if max(cycles, 2 * lay.M * lay.N * lay.K + folds_ * (R + C)) >= _COUNT_LIMIT:
        raise InputFileError(
            f"{_layer_where(lay, source)}layer {lay.name!r} ({lay.M} x {lay.N} x {lay.K}) is too large: on a "
            f"{R} x {C} array its cycle or access counts exceed 2**62")


def replayable(cfg: ScaleSimConfig, M: int, N: int, K: int, stall_free_cycles: int) -> bool:
    """Whether replaying the layer stays within :data:`REPLAY_LIMIT` (stall-free cycles x the
    ports read or written per cycle) and :data:`REPLAY_MAX_ELEMENTS` (operand elements)."""
    visits = stall_free_cycles * (cfg.array_rows + 2 * cfg.array_cols)
    return visits <= REPLAY_LIMIT and M * K + K * N <= REPLAY_MAX_ELEMENTS


def replay_layer(cfg: ScaleSimConfig, M: int, N: int, K: int) -> tuple[int, int, tuple, dict]:
    """(total cycles, stall cycles, DRAM words, access windows) of SCALE-Sim's buffers for one
    layer; the windows are keyed by :data:`WINDOW_COLUMNS`."""
    user = cfg.bandwidth_mode == "USER"
    bw = cfg.bandwidths[0] if cfg.bandwidths else cfg.array_cols
    out = scalesim_buffers.replay(
        cfg.dataflow_code, cfg.array_rows, cfg.array_cols, M, N, K,
        cfg.ifmap_sram_words, cfg.filter_sram_words, cfg.ofmap_sram_words,
        (cfg.ifmap_sram_bank_bandwidth or bw) if user else 0,
        (cfg.filter_sram_bank_bandwidth or bw) if user else 0,
        bw if user else cfg.array_cols, user)
    if out[scalesim_buffers.TOTAL] < 0:  # a read buffer with no prefetch half (read_config
        raise ConfigError([(f"{_ARCH}.IfmapSramSzkB / FilterSramSzkB",  # refuses those)
                            "the SRAM is too small for SCALE-Sim's prefetch buffer")],
                          source=cfg.path)
    dram = (int(out[scalesim_buffers.DRAM_IFMAP]), int(out[scalesim_buffers.DRAM_FILTER]),
            int(out[scalesim_buffers.DRAM_OFMAP]))
    windows = {col: int(out[scalesim_buffers.SRAM_IFMAP_START + j])
               for j, col in enumerate(WINDOW_COLUMNS)}
    return int(out[scalesim_buffers.TOTAL]), int(out[scalesim_buffers.STALL]), dram, windows


def _timing_columns(total: int, sram: tuple, dram: tuple, windows: dict | None) -> dict:
    """SCALE-Sim's further columns from the replay's windows: SRAM bandwidth = accesses over
    Total Cycles; DRAM bandwidth = words over the stream's window (stop - start + 1)."""
    if windows is None:
        return dict.fromkeys(TIMING_COLUMNS)
    first_read = min(windows["DRAM IFMAP Start Cycle"], windows["DRAM Filter Start Cycle"])
    cols = {"Total Cycles (incl. prefetch)": windows["DRAM OFMAP Stop Cycle"] - first_read}
    cols.update(windows)
    for (mem, op), words, col in zip(_STREAMS, tuple(sram) + tuple(dram), BANDWIDTH_COLUMNS):
        if mem == "SRAM":
            cols[col] = words / total
        else:
            span = windows[f"DRAM {op} Stop Cycle"] - windows[f"DRAM {op} Start Cycle"] + 1
            cols[col] = words / span
    return cols


def report_rows(cfg: ScaleSimConfig, layers: list[GemmLayer], source: str = "") -> list[dict]:
    """One dict per layer with the SCALE-Sim column names of :data:`ALL_COLUMNS`, and
    ``Buffers``: ``replayed`` or ``closed form`` (beyond the replay limit).

    "Compute Cycles" is the stall-free count as SCALE-Sim prints it (with its
    ``-1``); "Total Cycles" is SCALE-Sim's (the last OFMAP write accepted).
    """
    df = cfg.dataflow_code
    R, C = cfg.array_rows, cfg.array_cols
    for lay in layers:
        _check_countable(cfg, lay, source)
        if cfg.sparsity_support and lay.sparsity[0] != lay.sparsity[1]:
            raise InputFileError(
                f"{_layer_where(lay, source)}layer {lay.name!r} has sparsity ratio {lay.sparsity[0]}:{lay.sparsity[1]} and "
                f"{cfg.path} sets [sparsity] SparsitySupport true: SCALE-Sim's sparse mode (the "
                "compressed filter and its metadata SRAM) is not reproduced; with SparsitySupport "
                "false SCALE-Sim runs the layer dense, as archsim does")
    M = np.array([lay.M for lay in layers], dtype=np.int64)
    N = np.array([lay.N for lay in layers], dtype=np.int64)
    K = np.array([lay.K for lay in layers], dtype=np.int64)
    cyc, me, cu, sram = folds.scalesim_report_many(df, R, C, M, N, K)

    out = []
    for i, lay in enumerate(layers):
        compute = int(cyc[i]) - 1  # report quirk: index of the last cycle
        windows = None
        if replayable(cfg, lay.M, lay.N, lay.K, int(cyc[i])):
            total, stall, dram, windows = replay_layer(cfg, lay.M, lay.N, lay.K)
            buffers = "replayed"
        else:
            dram = dram_counts(cfg, lay.M, lay.N, lay.K)
            # CALC reads never stall and the OFMAP drain (ArrayWidth words per cycle) keeps up
            # with the array (tests/test_scalesim_compat.py checks it on the replay)
            stall = (0 if cfg.bandwidth_mode == "CALC"
                     else user_mode_stall_cycles(cfg, lay.M, lay.N, lay.K, compute, dram))
            total = compute + stall
            buffers = "closed form"
        macs = lay.M * lay.N * lay.K
        sram_i = (int(sram[i, 0]), int(sram[i, 1]), int(sram[i, 2]))
        out.append({
            "Layer": lay.name,
            "Total Cycles": total,
            "Stall Cycles": stall,
            "Compute Cycles": compute,
            "Overall Util %": 100.0 * macs / (total * R * C),
            "Mapping Efficiency %": 100.0 * float(me[i]),
            "Compute Util %": 100.0 * float(cu[i]),
            "SRAM IFMAP Reads": sram_i[0],
            "SRAM Filter Reads": sram_i[1],
            "SRAM OFMAP Writes": sram_i[2],
            "DRAM IFMAP Reads": dram[0],
            "DRAM Filter Reads": dram[1],
            "DRAM OFMAP Writes": dram[2],
            **_timing_columns(total, sram_i, dram, windows),
            "Buffers": buffers,
        })
    return out


#: Reference-table columns (``validation/scalesim/cases_*.csv``) and the report columns
#: they hold; the timing ones are optional in a table.
TABLE_COLUMNS = {
    "total_cycles": "Total Cycles", "stall_cycles": "Stall Cycles",
    "overall_util_pct": "Overall Util %", "mapping_eff_pct": "Mapping Efficiency %",
    "compute_util_pct": "Compute Util %", "sram_ifmap_reads": "SRAM IFMAP Reads",
    "sram_filter_reads": "SRAM Filter Reads", "sram_ofmap_writes": "SRAM OFMAP Writes",
    "dram_ifmap_reads": "DRAM IFMAP Reads", "dram_filter_reads": "DRAM Filter Reads",
    "dram_ofmap_writes": "DRAM OFMAP Writes",
    "total_cycles_incl_prefetch": "Total Cycles (incl. prefetch)",
    **{f"{mem.lower()}_{op.lower()}_{edge}": f"{mem} {op} {edge.title()} Cycle"
       for mem, op in _STREAMS for edge in ("start", "stop")},
    **{f"avg_{op.lower()}_{mem.lower()}_bw": f"Avg {op.upper()} {mem} BW" for mem, op in _STREAMS},
}


_TABLE_INPUTS = ("layer", "M", "N", "K", "array_rows", "array_cols", "dataflow", "ifmap_sram_kb",
                 "filter_sram_kb", "ofmap_sram_kb", "bw_mode", "bandwidth")


def table_row_case(row: dict, source: str, line: int = 0) -> tuple[ScaleSimConfig, GemmLayer]:
    """The config and layer of one reference-table row (one SCALE-Sim run of one GEMM; the
    SRAM bank bandwidths default to ``bandwidth``, as the tables' runs set them).  A bad value
    is an InputFileError naming the file, line and column."""
    where = f"{source}:{line}" if line else source

    def positive(col, value=None):
        raw = row.get(col) if value is None else value
        try:
            v = int(raw)
        except (TypeError, ValueError):
            raise InputFileError(f"{where}: {col} must be an integer, got {raw!r}") from None
        if not 1 <= v <= 2**31:
            raise InputFileError(f"{where}: {col} must be in 1..2**31, got {v}")
        return v

    bw = positive("bandwidth")
    mode = str(row.get("bw_mode", "")).strip().upper()
    if mode not in ("CALC", "USER"):
        raise InputFileError(f"{where}: bw_mode must be CALC or USER, got {row.get('bw_mode')!r}")
    try:
        dataflow = folds.DATAFLOW_NAMES[folds.dataflow_code(row.get("dataflow", ""))]
    except ValueError as exc:
        raise InputFileError(f"{where}: dataflow: {exc}") from None
    cfg = ScaleSimConfig(
        path=source, run_name=str(row.get("case", "")),
        array_rows=positive("array_rows"), array_cols=positive("array_cols"),
        ifmap_sram_kb=positive("ifmap_sram_kb"), filter_sram_kb=positive("filter_sram_kb"),
        ofmap_sram_kb=positive("ofmap_sram_kb"), dataflow=dataflow,
        bandwidth_mode=mode, bandwidths=(bw,),
        ifmap_sram_bank_bandwidth=positive("ifmap_bank_bw", row.get("ifmap_bank_bw") or bw),
        filter_sram_bank_bandwidth=positive("filter_bank_bw", row.get("filter_bank_bw") or bw))
    layer = GemmLayer(str(row["layer"]), positive("M"), positive("N"), positive("K"), line=line)
    return cfg, layer


def table_matches(path: str) -> dict:
    """Per report column the table has, how many of its rows archsim reproduces exactly (floats
    to 1e-9 relative); ``rows``: the table's length; ``rows exact``: rows with every column
    equal."""
    text = _read_text(path, "SCALE-Sim reference table")
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [c for c in _TABLE_INPUTS if c not in header]
    if missing:
        raise InputFileError(f"{path}: missing column(s) {', '.join(missing)} (a make_cases.py table "
                             "has one row per GEMM: the run's inputs, then SCALE-Sim's columns)")
    rows = list(reader)
    present = {key: col for key, col in TABLE_COLUMNS.items() if rows and rows[0].get(key)}
    if not present:
        raise InputFileError(f"{path}: no report column to compare (e.g. total_cycles)")
    counts = {col: 0 for col in present.values()}
    exact_rows = 0
    for line, ref in enumerate(rows, start=2):
        cfg, layer = table_row_case(ref, path, line)
        (ours,) = report_rows(cfg, [layer], path)
        all_equal = True
        for key, col in present.items():
            try:
                want = float(ref[key])
            except (TypeError, ValueError):
                raise InputFileError(f"{path}:{line}: {key} must be a number, got {ref[key]!r}") from None
            got = ours[col]
            if isinstance(got, int):
                equal = got == want
            else:
                equal = got is not None and abs(got - want) <= 1e-9 * max(abs(want), 1.0)
            counts[col] += equal
            all_equal &= equal
        exact_rows += all_equal
    return {"rows": len(rows), "rows exact": exact_rows,
            **{f"{col} exact": n for col, n in counts.items()}}


def run(cfg_path: str, topology_path: str) -> tuple[ScaleSimConfig, list[dict]]:
    """Read both files and return (config, report rows)."""
    cfg = read_config(cfg_path)
    layers = read_topology(topology_path)
    return cfg, report_rows(cfg, layers, topology_path)
