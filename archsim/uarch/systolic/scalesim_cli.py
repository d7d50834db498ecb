"""``archsim scalesim CFG TOPOLOGY``: SCALE-Sim compatible per-layer report."""

from __future__ import annotations

import csv
import io
import json
import sys

import click

from archsim.errors import ArchsimError
from archsim.uarch.systolic import scalesim_compat

def _fmt_cell(col: str, value) -> str:
    if value is None:
        return ""  # beyond the replay limit: not computed
    if isinstance(value, float):
        return repr(value)  # full precision, as SCALE-Sim writes Python floats
    return str(value)


def render_csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(scalesim_compat.ALL_COLUMNS)
    for r in rows:
        w.writerow([_fmt_cell(c, r[c]) for c in scalesim_compat.ALL_COLUMNS])
    return buf.getvalue()


def render_json(cfg, rows: list[dict]) -> str:
    doc = {
        "config": {
            "file": cfg.path,
            "run_name": cfg.run_name,
            "array_rows": cfg.array_rows,
            "array_cols": cfg.array_cols,
            "dataflow": cfg.dataflow,
            "ifmap_sram_kb": cfg.ifmap_sram_kb,
            "filter_sram_kb": cfg.filter_sram_kb,
            "ofmap_sram_kb": cfg.ofmap_sram_kb,
            "bandwidth_mode": cfg.bandwidth_mode,
            "bandwidths": list(cfg.bandwidths),
            "word_bytes": cfg.word_bytes,
        },
        "layers": rows,
    }
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def format_cell(value, digits: int = 4) -> str:
    """A report value for people: thousands separators, ``digits`` decimals, "-" for none."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


#: The second table: the DRAM side of the run (the bandwidth estimate, in CALC mode).
_DRAM_TABLE = ("Layer", "Total Cycles (incl. prefetch)") + tuple(
    c for c in scalesim_compat.WINDOW_COLUMNS + scalesim_compat.BANDWIDTH_COLUMNS if "DRAM" in c)


def render_table(cfg, rows: list[dict]) -> str:
    from rich.console import Console
    from rich.table import Table

    title = (f"SCALE-Sim compatible report: {cfg.run_name} "
             f"({cfg.array_rows}x{cfg.array_cols}, {cfg.dataflow}, {cfg.bandwidth_mode})")
    tables = [Table(title=title), Table(title="DRAM streams: first / last cycle and average "
                                              "words per cycle")]
    for table, columns in zip(tables, (scalesim_compat.REPORT_COLUMNS, _DRAM_TABLE)):
        for col in columns:
            table.add_column(col, justify="left" if col == "Layer" else "right",
                             no_wrap=(col == "Layer"))
        for r in rows:
            table.add_row(*[format_cell(r[col]) for col in columns])
    closed = [r["Layer"] for r in rows if r.get("Buffers") == "closed form"]
    if closed:
        tables[0].caption = (f"{len(closed)} layer(s) beyond the buffer replay's limit "
                             f"({', '.join(closed[:5])}{', ...' if len(closed) > 5 else ''}): "
                             "stalls and DRAM counts from closed forms, no DRAM windows")
    buf = io.StringIO()
    console = Console(file=buf, width=max(200, 16 * len(scalesim_compat.REPORT_COLUMNS)),
                      force_terminal=False, color_system=None)
    for table in tables:
        console.print(table)
    return buf.getvalue()


@click.command("scalesim")
@click.argument("cfg", type=click.Path(dir_okay=False))
@click.argument("topology", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table",
              show_default=True, help="Output format; csv uses SCALE-Sim's column names.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), default=None,
              help="Write the report to this file instead of stdout.")
def scalesim(cfg: str, topology: str, fmt: str, out_path: str | None) -> None:
    """Per-layer report of a SCALE-Sim .cfg and GEMM topology (SCALE-Sim's -i gemm).

    Prints what SCALE-Sim reports (Total Cycles, Stall Cycles, Overall Util %,
    Mapping Efficiency %, Compute Util %, SRAM and DRAM access counts) under
    SCALE-Sim's own column names, so the two can be diffed.  Stalls and DRAM counts
    replay SCALE-Sim's SRAM buffers (CALC and USER bandwidth modes).
    """
    from archsim.report.files import check_writable, write_texts

    try:
        if out_path:
            check_writable(out_path, "--out")
        config, rows = scalesim_compat.run(cfg, topology)
        if fmt == "csv":
            text = render_csv(rows)
        elif fmt == "json":
            text = render_json(config, rows)
        else:
            text = render_table(config, rows)
        if out_path:
            write_texts([(out_path, text, "--out")], make_dirs=False)
        else:
            click.echo(text, nl=False)
    except ArchsimError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":  # pragma: no cover
    scalesim()
