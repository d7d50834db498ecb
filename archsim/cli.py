"""The ``archsim`` command line. Thin: parses arguments, calls the public API, renders.
This is the only place that turns errors into exit codes (ArchsimError -> 2)."""
from __future__ import annotations

import functools
import importlib
import json
import sys
import time

import click
from rich.console import Console

from archsim import __version__
from archsim.errors import ArchsimError

DEFAULT_ARCH = "systolic_128x128"
DEFAULT_WORKLOAD = "llama2-7b"
err_console = Console(stderr=True)


def fail(e: ArchsimError) -> None:
    click.echo(f"archsim: error: {e}", err=True)
    sys.exit(e.exit_code)


def guarded(fn):
    """Run a command body; user errors become a message and exit status 2, no traceback. A
    number in the input too large for the simulator's 64-bit arithmetic is one of them."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except ArchsimError as e:
            fail(e)
        except OverflowError as e:
            from archsim.errors import OutOfRangeError
            fail(OutOfRangeError(f"a number in the input is too large for 64-bit arithmetic ({e})"))
        except OSError as e:
            # a file the command was pointed at cannot be read or written
            from archsim.errors import InputFileError
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            fail(InputFileError(f"{where}{e.strerror or e}"))
        except MemoryError:
            from archsim.errors import OutOfRangeError
            fail(OutOfRangeError("the configuration needs more memory than this machine has: a count "
                                 "(array.count, sm count, batch, stacks, ...) is far too large"))
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="archsim")
def main():
    """archsim: cycle-level accelerator simulation for LLM workloads."""


@main.command()
@click.argument("config", required=False, default=DEFAULT_ARCH)
@click.argument("workload", required=False, default=DEFAULT_WORKLOAD)
@click.option("--phase", type=click.Choice(["prefill", "decode"]), help="prefill or decode")
@click.option("--batch", type=int, help="requests in the batch")
@click.option("--seq-len", type=int, help="prompt tokens per request (prefill)")
@click.option("--kv-len", type=int, help="tokens already in the KV cache (decode)")
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE",
              help="override a field, e.g. array.rows=256 or workload.batch=8 (repeatable)")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.option("--out", type=click.Path(dir_okay=False), help="write the result to this file")
@click.option("--trace", type=click.Path(dir_okay=False), help="write a Chrome trace-event JSON (Perfetto)")
@click.option("--trace-max-events", type=click.IntRange(min=1), default=200_000, show_default=True)
@click.option("--all-layers", is_flag=True, help="simulate every layer instead of timing identical ones once")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--ops", "show_ops", is_flag=True,
              help="per-op breakdown (the time each op adds to its layer): a second table, or with "
                   "--format csv the per-op rows instead of the per-layer ones (JSON always has it)")
@guarded
def run(config, workload, phase, batch, seq_len, kv_len, overrides, fmt, out, trace, trace_max_events,
        all_layers, seed, show_ops):
    """Simulate WORKLOAD on the hardware CONFIG (defaults: Llama-2-7B decode on the 128x128 preset)."""
    from archsim.api import load
    from archsim.report.files import write_texts
    from archsim.report.render import chrome_trace, ops_csv, ops_table, to_csv, to_json, to_table
    from archsim.sim.run import simulate_loaded

    from archsim.report.files import check_writable
    for path, opt in ((out, "--out"), (trace, "--trace")):
        if path is not None:
            check_writable(path, opt, make_dirs=True)     # before the run, not after it
    if (config == DEFAULT_ARCH and workload == DEFAULT_WORKLOAD and phase is None
            and not any(o.replace(" ", "").startswith("workload.phase=") for o in overrides)):
        phase = "decode"
    t0 = time.perf_counter()
    with err_console.status("simulating...", spinner="dots") if err_console.is_terminal else _Null():
        cfg, wl = load(config, workload, overrides=overrides, phase=phase, batch=batch, seq_len=seq_len,
                       kv_len=kv_len, all_layers=all_layers)
        res = simulate_loaded(cfg, wl, seed=seed, keep_timeline=bool(trace), all_layers=all_layers)
    d = res.to_dict()
    wall = time.perf_counter() - t0
    files = []
    render_csv = ops_csv if show_ops else to_csv
    if out is not None:
        files.append((out, render_csv(d) if fmt == "csv" else to_json(d), "--out"))
    if trace is not None:
        files.append((trace, json.dumps(chrome_trace(res, trace_max_events)), "--trace"))
    # the result and the trace are written together or not at all
    write_texts(files)
    for path, _, _ in files:
        click.echo(f"wrote {'trace ' if path == trace else ''}{path}", err=True)
    if not out:
        if fmt == "json":
            click.echo(to_json(d), nl=False)
        elif fmt == "csv":
            click.echo(render_csv(d), nl=False)
        else:
            to_table(d, Console())
            if show_ops:
                ops_table(d, Console())
    if not d["bounds"]["ok"]:
        click.echo("archsim: warning: a bound does not hold (see 'bounds' in the JSON)", err=True)
    for note in d.get("notes", ()):
        click.echo(f"archsim: note: {note}", err=True)
    if fmt == "table" and not out:
        click.echo(f"simulated in {wall:.2f} s wall", err=True)


class _Null:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


@main.command(name="list")
@guarded
def list_cmd():
    """List hardware presets, workloads and microarchitectures."""
    from archsim import uarch
    from archsim.config.loader import list_presets

    click.echo("microarchitectures: " + ", ".join(uarch.names()))
    click.echo("presets (arch_configs/): " + ", ".join(list_presets("arch_configs")))
    click.echo("workloads (workloads/): " + ", ".join(list_presets("workloads")))


def _describe(model, prefix=""):
    from pydantic import BaseModel

    from archsim.config.loader import _unwrap
    rows = []
    for name, f in model.model_fields.items():
        sub = _unwrap(f.annotation)
        path = f"{prefix}{name}"
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            rows.append((path, "section", "", (sub.__doc__ or "").strip().splitlines()[0] if sub.__doc__ else ""))
            rows += _describe(sub, path + ".")
        else:
            schema = (f.json_schema_extra or {}) if isinstance(f.json_schema_extra, dict) else {}
            default = "" if f.is_required() else repr(f.get_default(call_default_factory=True))
            typ = getattr(f.annotation, "__name__", str(f.annotation)).replace("typing.", "")
            meta = [m for m in f.metadata if hasattr(m, "json_schema")]
            if meta:
                typ = meta[0].json_schema.get("description", typ).split(",")[0]
            rows.append((path, typ, default if default != "None" else "", f.description or schema.get("description", "")))
    return rows


@main.command()
@click.argument("uarch_name")
@guarded
def info(uarch_name):
    """Parameters of a microarchitecture with units and docs."""
    from rich.table import Table

    from archsim import uarch
    u = uarch.get(uarch_name)
    click.echo(f"{u.name}: {u.doc}")
    t = Table()
    for c in ("field", "type / unit", "default", "description"):
        t.add_column(c)
    for row in _describe(u.config_cls):
        t.add_row(*[str(x) for x in row])
    Console().print(t)


@main.command()
@click.argument("uarch_name", required=False)
@guarded
def schema(uarch_name):
    """Print the JSON Schema of hardware descriptions (all microarchitectures, or one)."""
    from archsim import uarch
    if uarch_name:
        out = uarch.get(uarch_name).config_cls.model_json_schema()
    else:
        from pydantic.json_schema import models_json_schema
        # one schema generation for every microarchitecture, so that models of the same name in
        # different packages (two BufferConfig, two TileConfig) get distinct definitions
        classes = list(dict.fromkeys(uarch.get(n).config_cls for n in uarch.names()))
        refs, top = models_json_schema([(c, "validation") for c in classes])
        out = {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "archsim hardware description",
               "oneOf": [refs[(c, "validation")] for c in classes],
               "$defs": top.get("$defs", {})}
    click.echo(json.dumps(out, indent=2))


@main.command()
@click.argument("config")
@click.argument("workload")
@click.option("--phase", type=click.Choice(["prefill", "decode"]))
@click.option("--batch", type=int)
@click.option("--seq-len", type=int)
@click.option("--kv-len", type=int)
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE")
@click.option("--all-layers", is_flag=True)
@click.option("--out", type=click.Path(dir_okay=False), default="program.npz", show_default=True)
@guarded
def lower(config, workload, phase, batch, seq_len, kv_len, overrides, all_layers, out):
    """Lower WORKLOAD for CONFIG and write the Program (.npz); print a summary."""
    from archsim import uarch
    from archsim.api import load
    from archsim.mem.interface import build_memory
    from archsim.uarch.base import LowerOptions

    cfg, wl = load(config, workload, overrides=overrides, phase=phase, batch=batch, seq_len=seq_len,
                   kv_len=kv_len, all_layers=all_layers)
    u = uarch.get(cfg.uarch)
    from archsim.sim.run import lower_instances
    _, prog = lower_instances(u, cfg, wl, LowerOptions(all_layers=all_layers), build_memory(cfg.memory, cfg.clock))
    from archsim.report.files import atomic_outputs
    with atomic_outputs([(out, "--out")], make_dirs=True) as (tmp,):
        prog.save(tmp)
    click.echo(json.dumps(prog.summary(), indent=2))
    click.echo(f"wrote {out}", err=True)


@main.command()
@click.option("--filter", "pattern", help="only cases whose id contains this text")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.option("--root", type=click.Path(file_okay=False, exists=True),
              help="validation folder (default: the project's)")
@click.option("--jobs", "-j", type=click.IntRange(0, 256), default=0, show_default=True,
              help="run the cases in this many processes (0: one per CPU, at most 8, when more "
                   "than 16 cases are selected, else 1)")
@guarded
def validate(pattern, fmt, root, jobs):
    """Run the validation cases and compare with published and peer numbers."""
    from archsim.validate import print_table, run_all
    rows = run_all(root=root, pattern=pattern, jobs=jobs)
    if fmt == "json":
        click.echo(json.dumps(rows, indent=2))
    else:
        print_table(rows, Console())
    if any(r["status"] == "error" for r in rows):
        sys.exit(1)


# subcommands owned by their packages
_PLUGINS = (
    ("archsim.uarch.systolic.scalesim_cli", "scalesim"),
    ("archsim.mem.dram.cli", "dram"),
    ("archsim.sweep.cli", "sweep"),
    ("archsim.sweep.cli", "pareto"),
    ("archsim.sweep.cli", "plot"),
)
for _mod, _name in _PLUGINS:
    try:
        main.add_command(getattr(importlib.import_module(_mod), _name), _name)
    except ModuleNotFoundError as _e:        # package not built in this checkout
        if not (_e.name and _mod.startswith(_e.name)):
            raise
    except AttributeError:
        pass

if __name__ == "__main__":
    main()
