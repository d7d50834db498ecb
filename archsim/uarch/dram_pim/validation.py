"""Validation-case functions (``kind: python``) for the DRAM-PIM model."""
from __future__ import annotations

from archsim.uarch.dram_pim import api
from archsim.validate import error_summary, table_rows


def attacc_case(case: dict) -> dict:
    """One row of AttAcc's Ramulator reference: attention of ``heads`` heads of length ``seq_len``
    on one HBM3-PIM stack. Metrics: mem_cycles, n_MAC_cmds, n_SFM_cmds, n_MVGB_cmds, n_MVSB_cmds,
    n_WRGB_cmds."""
    prec = "fp16" if int(case.get("bytes_per_elem", 2)) == 2 else "int8"
    r = api.attention_cycles(case.get("arch", "attacc_pim"), 1, [int(case["seq_len"])], int(case["heads"]),
                             int(case.get("d_head", 128)), overrides=[f"pim.precision={prec}"],
                             placement=case["placement"], power_constrained=bool(case["power_constrained"]),
                             reference_trace=bool(case.get("reference_trace", True)))
    c = r.counters
    return {"mem_cycles": r.cycles, "n_MAC_cmds": c["mac_ab"] + c["mac_sb"] + c["mac_pb"],
            "n_SFM_cmds": c["sfm"], "n_MVGB_cmds": c["mvgb"], "n_MVSB_cmds": c["mvsb"], "n_WRGB_cmds": c["wrgb"]}


_ATTACC_COMMANDS = ("n_MAC_cmds", "n_SFM_cmds", "n_MVGB_cmds", "n_MVSB_cmds", "n_WRGB_cmds")


def attacc_table(case: dict) -> dict:
    """Rows of AttAcc's Ramulator reference table (``table``, relative to the case file; only the
    ``seq_lens`` listed) run as :func:`attacc_case`.  Metrics: ``rows``; ``mem_cycles within
    10%`` and ``commands exact``, counts of rows; ``max mem_cycles error``, relative.  INT8 rows
    run with d_head 160 (MT-530B's, see validation/dram_pim/attacc_ramulator.yaml)."""
    keep = {int(x) for x in case.get("seq_lens", [])}

    def one(r):
        L, ebytes = int(r["seq_len_L"]), int(r["bytes_per_elem"])
        if keep and L not in keep:
            return None
        got = attacc_case({"placement": r["pim_level"], "power_constrained": r["power_constrained"] == "True",
                           "seq_len": L, "heads": int(r["heads_per_hbm"]),
                           "d_head": 160 if ebytes == 1 else int(r["d_head"]), "bytes_per_elem": ebytes})
        return (got["mem_cycles"] / int(r["mem_cycles"]) - 1.0, all(got[k] == int(r[k]) for k in _ATTACC_COMMANDS))

    res = table_rows(case, "AttAcc reference table", one)
    return {"rows": len(res), "mem_cycles within 10%": sum(abs(err) <= 0.10 for err, _ in res),
            "commands exact": sum(same for _, same in res),
            "max mem_cycles error": max((abs(err) for err, _ in res), default=0.0)}


def pimsim_case(case: dict) -> dict:
    """Samsung PIMSimulator benchmarks: gemv / add / mul / relu (PIM and host baseline cycles,
    speed-up) and plain-stack read / write bandwidth."""
    arch = case.get("arch", "hbm_pim")
    test = case["test"]
    base = list(case.get("pim_overrides", []))
    if test == "gemv":
        p = api.gemv_cycles(arch, int(case["rows"]), int(case["cols"]), overrides=base)
        b = api.gemv_baseline_cycles(arch, int(case["rows"]), int(case["cols"]), overrides=base)
        return {"pim": p.cycles, "non_pim": b.cycles, "speedup": b.cycles / p.cycles}
    if test in ("add", "mul", "relu"):
        p = api.eltwise_cycles(arch, test, int(case["elements"]), overrides=base)
        b = api.eltwise_baseline_cycles(arch, test, int(case["elements"]), overrides=base)
        return {"pim": p.cycles, "non_pim": b.cycles, "speedup": b.cycles / p.cycles}
    if test == "bandwidth":
        ov = base + [f"pim.stacks={int(case.get('stacks', 1))}"]
        rd = api.stream_cycles(arch, int(case["read_bytes"]), 0, overrides=ov)
        wr = api.stream_cycles(arch, 0, int(case["write_bytes"]), overrides=ov)
        return {"read_GBps": case["read_bytes"] / rd.seconds / 1e9, "write_GBps": case["write_bytes"] / wr.seconds / 1e9}
    raise ValueError(f"unknown test {test!r}")


def gemv_speedup_case(case: dict) -> dict:
    """GEMV on a PIM device against the same DRAM streamed to the host without PIM: ``speedup``
    (host cycles / PIM cycles) and ``energy_per_bit_reduction`` (host energy / PIM energy for the
    same matrix bits: in-bank reads and activations, PIM MACs, data-path and host I/O,
    background)."""
    ov = list(case.get("pim_overrides", []))
    p = api.gemv_cycles(case["arch"], int(case["rows"]), int(case["cols"]), overrides=ov)
    b = api.gemv_baseline_cycles(case["arch"], int(case["rows"]), int(case["cols"]), overrides=ov)
    return {"speedup": b.cycles / p.cycles, "energy_per_bit_reduction": b.energy_total_pj / p.energy_total_pj}


def internal_bandwidth_case(case: dict) -> dict:
    """Processing bandwidth of a PIM device against its external bandwidth.

    ``internal_to_external``: the bytes the units of one command stream (a pseudo-channel in
    all-bank mode) read from their banks per CK, one burst per unit every MAC interval (the
    device's ``mac_gap``: tCCD_L, or the unit clock when slower), over the bytes the stream's
    data bus moves per CK (one burst per tBL). ``sustained_to_external``: the same ratio
    measured on the engine: the extra weight bytes of a GEMV twice as tall over its extra
    cycles (the fixed start and end cancel; the rows' activations and precharges and the input
    loads repeated per block of output rows stay), against all data buses of the devices.
    Overrides: ``overrides``."""
    from archsim.uarch.dram_pim.dram_adapter import resolve
    from archsim.uarch.dram_pim.gemv import units_per_stream

    ov = list(case.get("overrides", []))
    cfg = api.load(case.get("arch", "hbm_pim"), ov)
    dev = resolve(cfg)
    geom, n_streams = dev.stream_geom(cfg.pim.stream)
    units = units_per_stream(dev, cfg.pim.placement, cfg.pim.banks_per_unit, geom)
    internal = units * dev.tx_bytes / dev.mac_gap
    external = dev.peak_external_bytes_per_ck / n_streams
    rows, cols = int(case.get("rows", 4096)), int(case.get("cols", 4096))
    if cfg.pim.output_group == "padded":
        # whole output tiles (every unit a full group of output registers), or the padding
        # would hide the extra rows
        tile = units * n_streams * dev.stacks * int(cfg.pim.output_registers)
        rows = -(-rows // tile) * tile
    a = api.gemv_cycles(cfg, rows, cols)
    b = api.gemv_cycles(cfg, 2 * rows, cols)
    extra_bytes = rows * cols * dev.elem_bytes
    sustained = extra_bytes / max(1, b.cycles - a.cycles) / (dev.peak_external_bytes_per_ck * dev.stacks)
    return {"internal_to_external": internal / external, "sustained_to_external": sustained}


def pimsim_sweep(case: dict) -> dict:
    """Rows of ``case["table"]`` (a CSV of PIMSimulator benchmark runs beside the case file:
    test gemv / add / mul / relu, rows, cols, elements, non_pim_cycles, pim_cycles) replayed
    through :func:`pimsim_case` with the case's ``pim_overrides``. Metrics: ``rows``, and per
    side (``pim``, ``non_pim``) the share of rows within ``case["row_tol"]`` (default 0.10) of the
    reference cycles and the mean absolute relative error."""
    base = {"arch": case.get("arch", "hbm_pim"), "pim_overrides": case.get("pim_overrides", [])}

    def one(r):
        c = dict(base, test=r["test"].lower())
        if c["test"] == "gemv":
            c.update(rows=int(r["rows"]), cols=int(r["cols"]))
        else:
            c["elements"] = int(r["elements"])
        out = pimsim_case(c)
        return out["pim"] / float(r["pim_cycles"]) - 1.0, out["non_pim"] / float(r["non_pim_cycles"]) - 1.0

    errs = table_rows(case, "PIMSimulator table", one)
    tol = float(case.get("row_tol", 0.10))
    return {"rows": len(errs), **error_summary([e for e, _ in errs], tol, "pim_"),
            **error_summary([e for _, e in errs], tol, "non_pim_")}
