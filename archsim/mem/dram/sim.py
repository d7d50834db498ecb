"""Trace replay on the bank-level controller model: the Python side of :func:`run_controller`."""
from __future__ import annotations


import numpy as np

from archsim.errors import ConfigError, InputFileError, did_you_mean
from archsim.mem.dram import kernel as K
from archsim.mem.dram.energy import energy_nj
from archsim.mem.dram.mapping import build_mapping
from archsim.mem.dram.presets import Preset, load_preset

#: request schedulers of the controller (``run_trace(scheduler=...)``)
SCHEDULERS = ("frfcfs", "frfcfs_rowhit")
#: row-buffer policies of the controller (``run_trace(page_policy=...)``)
PAGE_POLICIES = ("open", "closed", "closed_cap")


def static_arrays(preset: Preset):
    """Node geometry and constraint tables as kernel arrays."""
    t = preset.tables
    L = t.n_levels
    lsize = t.level_sizes.astype(np.int64)
    ncount = np.ones(L, dtype=np.int64)
    for lv in range(1, L):
        ncount[lv] = ncount[lv - 1] * lsize[lv]
    NB = int(ncount[L - 1])
    bnode = np.zeros((L, NB), dtype=np.int64)
    for lv in range(L):
        bnode[lv] = np.arange(NB) // (NB // ncount[lv])
    haswin = np.zeros((L, K.N_CMD), dtype=np.bool_)
    hassib = np.zeros((L, K.N_CMD), dtype=np.bool_)
    for lv, p, f, lat, win, sib in t.entries:
        if win > 1:
            haswin[lv, p] = True
        if sib:
            hassib[lv, p] = True
    rscope = preset.standard.levels.index(preset.standard.refresh_level)
    return L, lsize, ncount, NB, bnode, haswin, hassib, rscope


def run_trace(preset: Preset | str, addrs, is_write=None, cycles=None, *, channels: int | None = None,
              mapping: str = "RoBaRaCoCh", xor: str = "none", channel_interleave: str = "cacheline",
              queue_depth: int = 32, write_queue_depth: int | None = None, refresh: str = "all_bank",
              page_policy: str = "open", write_high_watermark: float = 0.8, write_low_watermark: float = 0.2,
              frontend_per_cycle: int = 16, check_capacity: bool = True, wck_always_on: bool = False,
              scheduler: str = "frfcfs", cap: int = 4) -> dict:
    """Replay a request trace; returns the metrics dict (see ``archsim dram --format json``).
    ``wck_always_on``: LPDDR5 with the WCK clock kept running (no CAS sync before accesses).
    ``scheduler``: ``frfcfs`` (timing-ready first, then oldest) or ``frfcfs_rowhit`` (the same,
    but no request closes a row that an older or as old request of its queue hits).
    ``page_policy``: ``open`` (rows stay open until a conflict or refresh), ``closed`` (an access
    auto-precharges unless another queued request hits its row) or ``closed_cap`` (a row closes
    after ``cap`` column accesses: the next access auto-precharges, or a PRE is queued as
    maintenance once it is timing-ready; see :func:`archsim.mem.dram.kernel.run_controller`)."""
    if scheduler not in SCHEDULERS:
        raise ConfigError([("scheduler", f"unknown scheduler {scheduler!r}{did_you_mean(scheduler, SCHEDULERS)} "
                                         f"(known: {', '.join(SCHEDULERS)})")])
    if page_policy not in PAGE_POLICIES:
        raise ConfigError([("page_policy", f"unknown page policy {page_policy!r}"
                                           f"{did_you_mean(str(page_policy), PAGE_POLICIES)} "
                                           f"(known: {', '.join(PAGE_POLICIES)})")])
    if isinstance(cap, bool) or not isinstance(cap, (int, np.integer)) or cap < 1:
        raise ConfigError([("cap", f"must be a positive integer (column accesses before closed_cap closes a "
                                   f"row), got {cap!r}")])
    if isinstance(preset, str):
        preset = load_preset(preset)
    addrs = np.ascontiguousarray(addrs, dtype=np.int64)
    N = len(addrs)
    if N == 0:
        raise InputFileError("empty trace")
    is_write = np.zeros(N, bool) if is_write is None else np.ascontiguousarray(is_write, dtype=bool)
    cycles = np.zeros(N, np.int64) if cycles is None else np.ascontiguousarray(cycles, dtype=np.int64)
    C = channels or preset.channels
    if C <= 0 or C & (C - 1):
        raise ConfigError([("channels", f"must be a positive power of two, got {C}")])
    if refresh == "per_bank" and not preset.standard.per_bank_refresh:
        raise ConfigError([("refresh", f"{preset.standard.name} has no per-bank refresh")])
    capacity = preset.capacity_bytes // preset.channels * C
    if check_capacity:
        bad = np.nonzero(addrs >= capacity)[0]
        if len(bad):
            k = int(bad[0])
            raise InputFileError(f"request {k + 1}: address {hex(int(addrs[k]))} is beyond the capacity "
                                 f"of {preset.name} with {C} channel(s) ({capacity} bytes = {hex(capacity)})")
    mp = build_mapping(preset, mapping, C, xor, channel_interleave)
    ch = np.empty(N, dtype=np.int64)
    bank = np.empty(N, dtype=np.int64)
    row = np.empty(N, dtype=np.int64)
    K.map_channel_bank_row(addrs, mp.tx_bits, mp.fkind, mp.fbits, mp.mode, mp.xor_mode, preset.tables.n_levels,
                           preset.tables.level_sizes, mp.row_bits, mp.col_bits, ch, bank, row)
    L, lsize, ncount, NB, bnode, haswin, hassib, rscope = static_arrays(preset)
    loff = np.zeros(L, dtype=np.int64)
    for lv in range(1, L):
        loff[lv] = loff[lv - 1] + C * ncount[lv - 1]
    t = preset.tables
    arrive = np.full(N, -1, dtype=np.int64)
    depart = np.full(N, -1, dtype=np.int64)
    first = np.full(N, -1, dtype=np.int64)
    cc = np.zeros((C, K.N_CC), dtype=np.int64)
    rmode = {"off": 0, "all_bank": 1, "per_bank": 3 if preset.standard.refpb_per_scope else 2}[refresh]
    qw = write_queue_depth or queue_depth
    ticks = K.run_controller(ch, bank, row, is_write, addrs, cycles,
                             L, lsize, ncount, loff, bnode, rscope,
                             t.c_start, t.c_fol, t.c_lat, t.c_win, t.c_sib, haswin, hassib,
                             preset.standard.dual_bus, preset.standard.edge_rules, t.read_latency, rmode,
                             t.timing["nREFI"], t.timing["nREFIpb"], queue_depth, qw,
                             write_high_watermark, write_low_watermark, frontend_per_cycle,
                             page_policy == "closed", C, NB, arrive, depart, cc, first,
                             *controller_rules(preset, wck_always_on), scheduler == "frfcfs_rowhit",
                             int(cap) if page_policy == "closed_cap" else 0)
    res = summarize(preset, C, int(ticks), cc, arrive, depart, is_write, N, mapping, queue_depth, refresh)
    res["page_policy"] = page_policy
    if page_policy == "closed_cap":
        res["cap"] = int(cap)
    return res


def controller_rules(preset, wck_always_on: bool = False) -> tuple:
    """The standard's controller rules as :func:`run_controller`'s trailing arguments
    (split activation and its tAAD; WCK sync and the ticks an access keeps WCK running)."""
    std, tm = preset.standard, preset.tables.timing
    return (bool(std.split_act), int(tm["nAAD"]), bool(std.wck_sync and not wck_always_on),
            int(tm["nCL"] + tm["nBL"] + tm["nWCKPST"]), int(tm["nCWL"] + tm["nBL"] + tm["nWCKPST"]))


def summarize(preset, C, ticks, cc, arrive, depart, is_write, N, mapping, queue_depth, refresh) -> dict:
    tot = cc.sum(axis=0)
    tick_ns = preset.tick_ps / 1000.0
    sim_ns = ticks * tick_ns
    tx = preset.tx_bytes
    served_r = int(tot[K.CC_RSERVED])
    lat, lat_sum = K.read_latencies(is_write, arrive, depart, ticks)
    avg_lat = float(float(lat_sum) / max(1, served_r)) if served_r else 0.0
    p99 = float(np.percentile(lat, 99, overwrite_input=True)) if len(lat) else 0.0
    n_writes = int(np.count_nonzero(is_write))
    hits = int(tot[K.CC_RHIT] + tot[K.CC_WHIT])
    misses = int(tot[K.CC_RMISS] + tot[K.CC_WMISS])
    conf = int(tot[K.CC_RCONF] + tot[K.CC_WCONF])
    nreq = hits + misses + conf
    counts = {"act": int(tot[K.CC_ACT]), "pre": int(tot[K.CC_PRE] + tot[K.CC_PREA]),
              "rd": int(tot[K.CC_RD]), "wr": int(tot[K.CC_WR]), "ref": int(tot[K.CC_REF] + tot[K.CC_REFPB]),
              "act2": int(tot[K.CC_ACT2]), "cas": int(tot[K.CC_CAS]), "cap_pre": int(tot[K.CC_CAPPRE])}
    en = energy_nj(preset, counts, sim_ns * 1e-9, C)
    buses = preset.level_sizes[1] if preset.standard.levels[1] == "PseudoChannel" else 1
    nbl = preset.tables.timing["nBL"]
    util = [float((cc[c, K.CC_RD] + cc[c, K.CC_WR]) * nbl / max(1, ticks * buses)) for c in range(C)]
    peak = C * buses * tx / nbl / tick_ns
    bw = N * tx / sim_ns if sim_ns > 0 else 0.0
    return {
        "preset": preset.name, "channels": C, "mapping": mapping, "queue_depth": queue_depth,
        "refresh": refresh, "requests": int(N), "reads": int(N) - n_writes, "writes": n_writes,
        "dram_cycles": int(ticks), "tick_ns": tick_ns,
        "completion_cycles": int(max(ticks, depart.max() if len(depart) else 0)), "sim_time_ns": sim_ns,
        "bandwidth_GBps": bw, "peak_GBps": peak, "bw_utilization": bw / peak if peak else 0.0,
        "bandwidth_served_GBps": (served_r + int(tot[K.CC_WSERVED])) * tx / sim_ns if sim_ns > 0 else 0.0,
        "reads_served": served_r, "writes_served": int(tot[K.CC_WSERVED]),
        "reads_forwarded": int(tot[K.CC_FWD]), "writes_coalesced": int(tot[K.CC_COALESCED]),
        "row_hits": hits, "row_misses": misses, "row_conflicts": conf,
        "row_hit_rate": hits / nreq if nreq else 0.0,
        "avg_read_latency_cycles": avg_lat, "avg_read_latency_ns": avg_lat * tick_ns,
        "p99_read_latency_ns": p99 * tick_ns,
        "refresh_cmds": counts["ref"], "commands": counts,
        # commands served from the maintenance (priority) queue: refreshes, and the row closes the
        # closed_cap policy queues there (the peer's num_maintenance_reqs_served)
        "maintenance_cmds": counts["ref"] + counts["cap_pre"],
        "channel_utilization": util,
        "energy_nJ": en, "energy_total_nJ": en["total"],
        "avg_power_mW": en["total"] / sim_ns * 1e3 if sim_ns > 0 else 0.0,
    }
