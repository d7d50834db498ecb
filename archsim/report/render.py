"""Rendering of results: rich tables, CSV, Chrome trace-event JSON (files are written by archsim.report.files)."""
from __future__ import annotations

import csv
import io
import json

from rich.console import Console
from rich.table import Table

from archsim.isa import Op


def to_json(d: dict) -> str:
    return json.dumps(d, indent=2, sort_keys=False) + "\n"


def to_csv(d: dict) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["layer", "repeat", "cycles", "total_cycles", "macs", "energy_pj", "total_energy_pj",
                "offchip_read_bytes", "offchip_write_bytes"])
    for r in d["layers"]:
        w.writerow([r["name"], r["repeat"], r["cycles"], r["total_cycles"], r["macs"], r["energy_pj"],
                    r["total_energy_pj"], r["offchip_read_bytes"], r["offchip_write_bytes"]])
    w.writerow(["TOTAL", 1, d["cycles"], d["cycles"], d["macs"], d["energy_pj"], d["energy_pj"],
                sum(r["offchip_read_bytes"] * r["repeat"] for r in d["layers"]),
                sum(r["offchip_write_bytes"] * r["repeat"] for r in d["layers"])])
    return buf.getvalue()


OPS_COLUMNS = ("layer", "name", "added_cycles", "span_cycles", "start", "end", "busy_cycles", "macs",
               "offchip_bytes", "ops")


def ops_csv(d: dict) -> str:
    """The per-op breakdown as CSV (one row per op of each simulated layer; ``ops``: the workload
    ops a row covers, space-separated)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(OPS_COLUMNS)
    for r in d.get("ops") or []:
        w.writerow([" ".join(r[c]) if c == "ops" else ("" if r[c] is None else r[c]) for c in OPS_COLUMNS])
    return buf.getvalue()


def _fmt(x, unit=""):
    if x is None:
        return "-"
    if isinstance(x, float):
        for div, suf in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
            if abs(x) >= div:
                return f"{x / div:.3f} {suf}{unit}"
        return f"{x:.4g} {unit}".strip()
    return f"{x:,}{(' ' + unit) if unit else ''}"


_UNIT_SUFFIXES = (("_per_s", ""), ("_s", "s"), ("_j", "J"), ("_pj", "pJ"), ("_w", "W"), ("_bytes", "B"))


def _unit(key: str):
    """Unit named by a key's suffix (``busy_s`` -> s), None if it names none."""
    return next((u for suf, u in _UNIT_SUFFIXES if key.endswith(suf)), None)


def _summary_value(v, unit: str, percent: bool = False) -> str:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return str(v)
    if isinstance(v, (list, tuple)):
        items = [_summary_value(x, unit) for x in v[:8]]
        return "[" + ", ".join(items) + (", ..." if len(v) > 8 else "") + "]"
    if percent:
        return f"{100 * v:.1f} %"
    if unit == "pJ":
        v, unit = v * 1e-12, "J"
    if isinstance(v, float) and unit != "B":
        return f"{v:.4g} {unit}".strip()
    return _fmt(v, unit)


def summary_table(uarch: str, sm: dict) -> Table:
    """The microarchitecture's own breakdown (``uarch_summary``): one row per entry; a mapping of
    plain values on one row (``name value, ...``, in the unit its own or its parent's key names),
    deeper ones flattened to ``parent.key`` rows."""
    t = Table(title=f"{uarch} summary", show_header=False)
    t.add_column("metric", overflow="fold")
    t.add_column("value", overflow="fold")

    def rows(name: str, obj, unit: str, pct: bool):
        if isinstance(obj, dict) and all(not isinstance(x, (dict, list, tuple)) for x in obj.values()):
            t.add_row(name, ", ".join(f"{k} {_summary_value(x, _unit(k) or unit, pct)}" for k, x in obj.items()))
        elif isinstance(obj, dict):
            for k, x in obj.items():
                rows(f"{name}.{k}", x, _unit(k) or unit, pct or "utili" in k)
        else:
            t.add_row(name, _summary_value(obj, unit, pct))

    for k, v in sm.items():
        rows(k, v, _unit(k) or "", "utili" in k)
    return t


def to_table(d: dict, console: Console) -> None:
    t = Table(title=f"{d['arch']} ({d['uarch']}) / {d['workload']['name']} {d['workload']['phase']} "
                    f"batch {d['workload']['batch']}", show_header=False)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_row("cycles", _fmt(d["cycles"]))
    t.add_row("time", _fmt(d["seconds"], "s"))
    t.add_row("energy", _fmt(d["energy_pj"] * 1e-12, "J"))
    t.add_row("power", _fmt(d["power_w"], "W"))
    if d["tokens_per_s"]:
        t.add_row("tokens/s", f"{d['tokens_per_s']:.4g}")
    if d.get("speculative"):
        sp = d["speculative"]
        t.add_row("accepted tokens/s", f"{sp['accepted_tokens_per_s']:.4g}")
        t.add_row("accepted tokens/J", f"{sp['accepted_tokens_per_j']:.4g}")
    if d.get("pipeline"):
        pp = d["pipeline"]
        t.add_row("pipeline", f"{pp['stages']} stages x {pp['microbatches']} micro-batches ({pp['schedule']}), "
                              f"bubble {100 * pp['bubble_fraction']:.1f} %")
    t.add_row("MACs", _fmt(d["macs"]))
    t.add_row("MAC utilisation", f"{100 * d['utilization']:.2f} %")
    t.add_row("area", _fmt(d["area_mm2"], "mm^2"))
    b = d["bounds"]
    t.add_row("compute / memory bound", f"{b['compute_bound_cycles']:,} / {b['memory_bound_cycles']:,} cycles")
    t.add_row("layers", d["dedup"]["note"])
    console.print(t)
    if d.get("uarch_summary"):
        console.print(summary_table(d["uarch"], d["uarch_summary"]))
    lt = Table(title="per layer")
    for c in ("layer", "x", "cycles (each)", "share", "MACs (each)", "energy (each)", "off-chip R/W bytes"):
        # a narrow terminal wraps a number onto two lines rather than cutting digits off
        lt.add_column(c, justify="right" if c != "layer" else "left", overflow="fold")
    # with pipeline stages the layers' cycles are work summed over micro-batches and stages
    denom = sum(r["total_cycles"] for r in d["layers"]) if d.get("pipeline") else d["cycles"]
    for r in d["layers"]:
        share = r["total_cycles"] / denom if denom else 0
        lt.add_row(r["name"], str(r["repeat"]), _fmt(r["cycles"]), f"{100 * share:.1f} %", _fmt(r["macs"]),
                   _fmt(r["energy_pj"] * 1e-12, "J"),
                   f"{_fmt(r['offchip_read_bytes'])} / {_fmt(r['offchip_write_bytes'])}")
    console.print(lt)
    ct = Table(title="per component")
    ct.add_column("component", overflow="fold")
    ct.add_column("counts", overflow="fold")
    ct.add_column("energy", justify="right", overflow="fold")
    for comp, v in d["components"].items():
        counts = ", ".join(f"{k} {_fmt(c)}" for k, c in v["counts"].items() if c)
        ct.add_row(comp, counts, _fmt(sum(v["energy_pj"].values()) * 1e-12, "J"))
    console.print(ct)


def ops_table(d: dict, console: Console) -> None:
    """Per simulated layer instance, its ops by the time they add to the layer."""
    rows = d.get("ops") or []
    if not rows:
        console.print("no per-op breakdown for this run")
        return
    if d.get("ops_scope"):
        console.print(f"per-op breakdown of {d['ops_scope']}")
    layers: dict = {}
    for r in rows:
        layers.setdefault(r["layer"], []).append(r)
    for name, ops in layers.items():
        span = max(r["end"] for r in ops)
        t = Table(title=f"per op: {name} (one instance, {span:,} cycles from its first instruction)")
        for c in ("op", "added cycles", "share", "span", "busiest unit", "MACs", "off-chip"):
            t.add_column(c, justify="left" if c == "op" else "right", overflow="fold")
        for r in sorted(ops, key=lambda r: -r["added_cycles"]):
            t.add_row(r["name"], _fmt(r["added_cycles"]), f"{100 * r['added_cycles'] / span:.1f} %" if span else "-",
                      _fmt(r["span_cycles"]), _fmt(r["busy_cycles"]),
                      "-" if r["macs"] is None else _fmt(float(r["macs"])),
                      "-" if r["offchip_bytes"] is None else _fmt(float(r["offchip_bytes"]), "B"))
        console.print(t)


def chrome_trace(result, max_events: int = 200_000) -> dict:
    """Chrome trace-event JSON (Perfetto) of the per-unit timeline, capped at ``max_events``.
    Times are microseconds; for a weighted (deduplicated) run the timeline shows each
    distinct layer once."""
    start, finish = result.timeline
    p = result.program
    sel = [i for i in range(len(p)) if p.op[i] != Op.SYNC][:max_events]
    us = 1e6 / result.clock_hz
    events = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": result.cfg.name}}]
    for u, name in enumerate(p.unit_names):
        events.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": u, "args": {"name": name}})
    tags = p.op_tag if len(p.op_tag) == len(p) else None
    for i in sel:
        kind = Op(int(p.op[i])).name
        name = f"{p.op_names[tags[i]]} {kind}" if tags is not None and tags[i] >= 0 else kind
        events.append({"name": name, "cat": p.layer_names[p.layer[i]], "ph": "X", "pid": 0,
                       "tid": int(p.unit[i]), "ts": float(start[i]) * us,
                       "dur": float(max(finish[i] - start[i], 0)) * us,
                       "args": {"m": int(p.m[i]), "n": int(p.n[i]), "k": int(p.k[i]), "bytes": int(p.nbytes[i])}})
    return {"traceEvents": events, "displayTimeUnit": "ns",
            "otherData": {"truncated": len(sel) < int((p.op != Op.SYNC).sum()), "max_events": max_events}}
