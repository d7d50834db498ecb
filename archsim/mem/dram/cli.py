"""``archsim dram TRACE --preset NAME`` (trace replay) and ``archsim dram selftest --preset NAME``."""
from __future__ import annotations

import json
import sys

import click

from archsim.errors import ArchsimError

_MAPPINGS_HELP = "RoBaRaCoCh | ChRaBaRoCo | RoCoBaRaCh | MOP4CLXOR | a bit order such as RoBaBgRaCoCh"


def _fail(e: ArchsimError):
    click.echo(f"error: {e}", err=True)
    sys.exit(2)


class _DramGroup(click.Group):
    """A group whose first argument is a trace file unless it names a subcommand."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["replay"] + list(args)
        elif args and args[0].startswith("-") and "--help" not in args and "-h" not in args:
            args = ["replay"] + list(args)
        return super().parse_args(ctx, args)


@click.group(cls=_DramGroup, name="dram")
def dram():
    """Bank-level DRAM model: replay a memory trace (archsim dram TRACE --preset HBM2-2000)
    or check a preset (archsim dram selftest --preset HBM3-6400)."""


def _fmt_table(res: dict) -> str:
    rows = [
        ("preset", res["preset"]), ("channels", res["channels"]), ("mapping", res["mapping"]),
        ("queue depth", res["queue_depth"]), ("refresh", res["refresh"]),
        ("requests (R/W)", f"{res['requests']} ({res['reads']}/{res['writes']})"),
        ("DRAM cycles", res["dram_cycles"]), ("time", f"{res['sim_time_ns']:.1f} ns"),
        ("bandwidth", f"{res['bandwidth_GBps']:.3f} GB/s ({100 * res['bw_utilization']:.1f} % of {res['peak_GBps']:.1f})"),
        ("row hits / misses / conflicts", f"{res['row_hits']} / {res['row_misses']} / {res['row_conflicts']}"),
        ("row hit rate", f"{100 * res['row_hit_rate']:.2f} %"),
        ("read latency avg / p99", f"{res['avg_read_latency_ns']:.1f} / {res['p99_read_latency_ns']:.1f} ns"),
        ("refresh commands", res["refresh_cmds"]),
        *([("row closes queued (closed_cap)", res["commands"]["cap_pre"])] if res.get("page_policy") == "closed_cap"
          else []),
        ("commands ACT/PRE/RD/WR/REF", "/".join(str(res["commands"][k]) for k in ("act", "pre", "rd", "wr", "ref"))
         + (f" (ACT-2 {res['commands']['act2']}, CAS {res['commands']['cas']})"
            if res["commands"]["act2"] or res["commands"]["cas"] else "")),
        ("energy", f"{res['energy_total_nJ']:.1f} nJ (" + ", ".join(
            f"{k} {v:.1f}" for k, v in res["energy_nJ"].items() if k != "total") + ")"),
        ("average power", f"{res['avg_power_mW']:.1f} mW"),
        ("channel utilisation", " ".join(f"{u:.2f}" for u in res["channel_utilization"][:16])
         + (" ..." if len(res["channel_utilization"]) > 16 else "")),
    ]
    w = max(len(k) for k, _ in rows)
    return "\n".join(f"{k:<{w}}  {v}" for k, v in rows)


@dram.command("replay", hidden=True)
@click.argument("trace", type=click.Path(dir_okay=False))
@click.option("--preset", default="HBM2-2000", show_default=True, help="DRAM preset name or YAML path")
@click.option("--channels", type=click.IntRange(min=1), default=None, help="number of channels (default: the preset's)")
@click.option("--ranks", type=click.IntRange(min=1), default=None,
              help="ranks per channel (default: the preset's; DDR4 / DDR5 / LPDDR5)")
@click.option("--mapping", default="RoBaRaCoCh", show_default=True, help=_MAPPINGS_HELP)
@click.option("--queue-depth", type=int, default=32, show_default=True, help="read/write queue entries per channel")
@click.option("--refresh", type=click.Choice(["on", "off", "all_bank", "per_bank"]), default="on", show_default=True)
@click.option("--page-policy", type=click.Choice(["open", "closed", "closed_cap"]), default="open", show_default=True,
              help="open rows; close after each access unless a queued request hits the row; or close after "
                   "--cap column accesses (closed_cap)")
@click.option("--cap", type=click.IntRange(min=1), default=4, show_default=True,
              help="closed_cap: column accesses after which a row closes")
@click.option("--wck", type=click.Choice(["sync", "always_on"]), default="sync", show_default=True,
              help="LPDDR5 WCK clock: synchronised by a CAS before an access once stopped, or kept running")
@click.option("--scheduler", type=click.Choice(["frfcfs", "frfcfs_rowhit"]), default="frfcfs", show_default=True,
              help="FR-FCFS, or FR-FCFS that never closes a row an older queued request hits")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def replay(trace, preset, channels, ranks, mapping, queue_depth, refresh, page_policy, cap, wck, scheduler, fmt):
    """Replay TRACE (lines 'LD 0xADDR' / 'ST 0xADDR', or CSV 'cycle,op,addr')."""
    from archsim.mem.dram.presets import load_preset
    from archsim.mem.dram.sim import run_trace
    from archsim.mem.dram.traces import read_trace
    try:
        if queue_depth <= 0:
            raise ArchsimError("--queue-depth must be positive")
        p = load_preset(preset, ranks=ranks)
        addrs, writes, cycles = read_trace(trace)
        ref = {"on": "all_bank", "off": "off"}.get(refresh, refresh)
        res = run_trace(p, addrs, writes, cycles, channels=channels, mapping=mapping,
                        queue_depth=queue_depth, refresh=ref, page_policy=page_policy, cap=cap,
                        wck_always_on=wck == "always_on", scheduler=scheduler)
    except ArchsimError as e:
        _fail(e)
    if fmt == "json":
        click.echo(json.dumps(res, indent=1, sort_keys=True))
    else:
        click.echo(_fmt_table(res))


def _positive_finite(ctx, param, value):
    import math
    if value is not None and not (math.isfinite(value) and value > 0):
        raise click.BadParameter(f"must be a positive number, got {value}")
    return value


def selftest_rows(preset_name: str, scale: float = 0.25) -> list[dict]:
    """Streaming read bandwidth (bank-interleaving mapping) vs peak with refresh on and off,
    and random-read bandwidth with its analytical bound."""
    from archsim.mem.dram.presets import load_preset
    from archsim.mem.dram.sim import run_trace
    from archsim.mem.dram.traces import geometry, pattern
    p = load_preset(preset_name)
    g = geometry(p)
    rows = []
    seq, _ = pattern("seq_read", **g, scale=scale)
    for mapping in ("RoCoBaRaCh", "MOP4CLXOR", "RoBaRaCoCh"):
        on = run_trace(p, seq, mapping=mapping, refresh="all_bank", check_capacity=False)
        off = run_trace(p, seq, mapping=mapping, refresh="off", check_capacity=False)
        rows.append({"test": f"streaming read ({mapping})", "GBps": on["bandwidth_GBps"],
                     "peak_GBps": on["peak_GBps"], "pct_of_peak": 100 * on["bw_utilization"],
                     "refresh_overhead_pct": 100 * (1 - on["bandwidth_GBps"] / off["bandwidth_GBps"]),
                     "row_hit_rate": on["row_hit_rate"]})
    rnd, _ = pattern("rand_read", **g, scale=scale)
    r = run_trace(p, rnd, mapping="RoBaRaCoCh", refresh="all_bank", check_capacity=False)
    t = p.tables.timing
    tick_ns = p.tick_ps / 1000
    ranks = p.level_sizes[1] if p.standard.levels[1] in ("Rank", "PseudoChannel") else 1
    # every random read opens a row: per rank at most 4 ACTs per tFAW and one per tRRD_S
    act_interval = max(t["nFAW"] / 4.0, t["nRRDS"])
    bound = p.channels * ranks * p.tx_bytes / (act_interval * tick_ns)
    rows.append({"test": "random read (RoBaRaCoCh)", "GBps": r["bandwidth_GBps"], "peak_GBps": r["peak_GBps"],
                 "pct_of_peak": 100 * r["bw_utilization"], "act_bound_GBps": min(bound, r["peak_GBps"]),
                 "row_hit_rate": r["row_hit_rate"]})
    return rows


@dram.command("selftest")
@click.option("--preset", default="HBM2-2000", show_default=True, help="DRAM preset name or YAML path")
@click.option("--scale", type=float, default=0.25, show_default=True, callback=_positive_finite,
              help="trace size relative to the reference set")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def selftest(preset, scale, fmt):
    """Streaming bandwidth vs peak, refresh overhead and random-access bandwidth of a preset."""
    try:
        rows = selftest_rows(preset, scale)
    except ArchsimError as e:
        _fail(e)
    if fmt == "json":
        click.echo(json.dumps({"preset": preset, "rows": rows}, indent=1))
        return
    click.echo(f"{'test':<30} {'GB/s':>9} {'peak':>8} {'% peak':>7} {'refresh %':>9} {'ACT bound':>9} {'hit rate':>8}")
    for r in rows:
        click.echo(f"{r['test']:<30} {r['GBps']:>9.2f} {r['peak_GBps']:>8.1f} {r['pct_of_peak']:>7.1f} "
                   f"{r.get('refresh_overhead_pct', float('nan')):>9.2f} {r.get('act_bound_GBps', float('nan')):>9.2f} "
                   f"{r['row_hit_rate']:>8.3f}")
