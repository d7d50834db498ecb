"""Orchestration: validate -> lower -> cost -> time -> price -> Result."""
from __future__ import annotations

import numpy as np

from archsim import uarch as uarch_registry
from archsim.energy import table_of
from archsim.isa import Op
from archsim.mem.interface import MC_BUSY_CYCLES, MC_READ_BYTES, MC_WRITE_BYTES, MEM_COUNTER_NAMES, build_memory
from archsim.report.result import LayerRecord, Result
from archsim.sim.timing import schedule
from archsim.uarch.base import LowerOptions
from archsim.workload.instances import LAST, group_of


def memory_energy_pj(memory, cfg, table, memc_total: np.ndarray) -> dict[str, float]:
    """Energy of off-chip traffic: the memory model's own pricing if it has one, else bytes x pJ/bit."""
    fn = getattr(memory, "energy_pj", None)
    if callable(fn):
        return fn(memc_total)
    pj_bit = cfg.memory.energy_per_bit if cfg.memory.energy_per_bit is not None else table.dram_pj_per_bit()
    return {"read": float(memc_total[MC_READ_BYTES]) * 8 * pj_bit,
            "write": float(memc_total[MC_WRITE_BYTES]) * 8 * pj_bit}


#: a run's cycle count must stay well inside int64 (sums over layers and repeats)
MAX_CYCLES = 1 << 62


def check_range(res: Result, finish: np.ndarray | None = None) -> None:
    """Refuse a result the simulator cannot represent: a cycle count that overflowed 64 bits
    (negative, or beyond 2^62) or a non-finite energy. Both come from absurd inputs (a bandwidth
    or clock many orders of magnitude off, a price near the float limit), never from a real
    design, so they are the user's error, not a number to report."""
    from archsim.errors import OutOfRangeError
    over = res.cycles < 0 or res.cycles >= MAX_CYCLES
    if finish is not None and len(finish):
        over = over or int(finish.min()) < 0 or int(finish.max()) >= MAX_CYCLES
    if over:
        raise OutOfRangeError(
            f"the run's cycle count leaves the 64-bit range ({res.cycles} cycles): a rate (memory "
            f"bandwidth, clock, link bandwidth) is orders of magnitude too small or a size too large "
            f"in {res.cfg.name!r}")
    e = res.energy_pj
    if not np.isfinite(e):
        bad = sorted(f"{comp}.{act}" for comp, c in res.components.items()
                     for act, v in c["energy_pj"].items() if not np.isfinite(v))
        raise OutOfRangeError(f"the run's energy is not finite ({', '.join(bad) or 'total'}): an energy "
                              f"price (energy_per_bit, a pJ table entry) is out of range in {res.cfg.name!r}")


def shared_pipe_cycles(prog) -> np.ndarray:
    """Cycles per layer the on-chip shared memory's pipe is busy (its SHARED transfers, each
    ``ceil(bytes / bytes per cycle)`` as the timing kernel times them); zeros without one."""
    out = np.zeros(max(1, len(prog.layer_names)), np.int64)
    bpc = prog.meta.get("shared_bytes_per_cycle")
    if bpc:
        sh = prog.op == Op.SHARED
        np.add.at(out, prog.layer[sh], np.ceil(prog.nbytes[sh] / bpc).astype(np.int64))
    return out


def layer_ends(layer: np.ndarray, finish: np.ndarray, n_layers: int) -> np.ndarray:
    """The cycle each layer's last instruction finishes, made monotone over the layer order."""
    ends = np.zeros(n_layers, np.int64)
    if len(finish):
        # a layer's instructions come in a few long runs: reduce the runs, then the runs' maxima
        cut = np.concatenate(([0], np.flatnonzero(np.diff(layer)) + 1))
        np.maximum.at(ends, layer[cut], np.maximum.reduceat(finish, cut))
    return np.maximum.accumulate(ends)


def isolated_ends(prog, dur: np.ndarray, memory, start: np.ndarray, finish: np.ndarray,
                  weights: np.ndarray) -> np.ndarray:
    """Layer ends of the timeline, with each repeated layer's span taken from its instance alone.

    A repeated layer is lowered once and its span counts ``repeat`` times. Instructions of the
    layers after it (the next layer's weights prefetched, say) may start before it ends and
    contend with it for the memory and the units. In the whole model that contention touches
    the last instance only, so when it happens the instructions up to the repeated layer are
    timed again without the later ones: that span is the instance's, and the delay the later
    layers caused is charged to the layer after it (once). A steady-state instance's own last
    instance (``block.last``) is not a later layer: it stands for the next block."""
    n_layers = max(1, len(prog.layer_names))
    ends = layer_ends(prog.layer, finish, n_layers)
    adj = ends.copy()
    names = list(prog.layer_names)
    for lyr in np.nonzero(weights > 1)[0]:
        # a steady-state instance followed by its group's last instance
        # (archsim.workload.instances) overlaps it as every block overlaps the next one: the
        # layers after that one are the later ones
        tail = lyr + 1 if lyr + 1 < len(names) and names[lyr + 1] == f"{names[lyr]}.{LAST}" else lyr
        later = prog.layer > tail
        if not later.any() or int(start[later].min()) >= int(ends[lyr]):
            continue
        keep = int(np.argmax(later))                # later layers follow in program order
        if not later[keep:].all() or not (prog.layer[:keep] == lyr).any():
            continue
        sub = prog.prefix(keep)
        _, fin2, _, _ = schedule(sub, dur[:keep], memory)
        ends2 = layer_ends(sub.layer, fin2, n_layers)
        own = int(ends2[lyr] - (ends2[lyr - 1] if lyr > 0 else 0))
        prev = int(adj[lyr - 1]) if lyr > 0 else 0
        adj[lyr] = min(int(ends[lyr]), prev + own)
    return adj


def lower_instances(u, cfg, wl, opts, memory):
    """(workload as lowered, Program): the workload's repeated blocks as first, steady-state and
    last instances (:meth:`Uarch.instances`). A workload the microarchitecture cannot lower is
    refused with the error its own ops give (``block.qkv``, not the copy ``block.first.qkv``)."""
    from archsim.errors import ArchsimError
    lwl = u.instances(wl)
    try:
        return lwl, u.lower(cfg, lwl, opts, memory=memory)
    except ArchsimError:
        if lwl is wl:
            raise
        u.lower(cfg, wl, opts, memory=memory)
        raise


def simulate_loaded(cfg, wl, *, seed: int = 0, keep_timeline: bool = False, all_layers: bool = False,
                    pipeline: bool = True) -> Result:
    """Simulate an already validated config and built workload graph. With pipeline-parallel
    stages in the config (``parallel.pipeline`` > 1) the run is split into micro-batches and
    stages (:mod:`archsim.sim.pipeline`); ``pipeline=False`` simulates one stage group running
    every layer (what the pipeline driver itself calls)."""
    if pipeline:
        from archsim.sim.pipeline import pipeline_stages, simulate_pipelined
        if pipeline_stages(cfg) > 1:
            return simulate_pipelined(cfg, wl, seed=seed, all_layers=all_layers)
    u = uarch_registry.get(cfg.uarch)
    memory = build_memory(cfg.memory, cfg.clock)
    lwl, prog = lower_instances(u, cfg, wl, LowerOptions(all_layers=all_layers, seed=seed), memory)
    dur, counters = u.cost(cfg, prog)
    start, finish, memc_dev, busy = schedule(prog, dur, memory)
    # one simulated device may stand for several identical ones (tensor parallel): traffic and
    # commands of the whole system, busy time of one device
    D = int(u.devices(cfg))
    memc = memc_dev * D
    memc[:, MC_BUSY_CYCLES] = memc_dev[:, MC_BUSY_CYCLES]
    n_layers = len(prog.layer_names)
    weights = prog.layer_weights.astype(np.int64)
    # end of each layer (monotone), the layer's share of the timeline; a repeated layer's instance
    # timed without the layers after it (isolated_ends)
    ends = isolated_ends(prog, dur, memory, start, finish, weights)
    span = np.diff(np.concatenate(([0], ends)))
    # a repeated layer can never take less than its busiest resource (steady-state bound)
    compute_units = [i for i, nme in enumerate(prog.unit_names) if not nme.startswith("dma")]
    res_busy = np.maximum(busy[:, compute_units].max(axis=1) if compute_units else 0, memc[:, MC_BUSY_CYCLES])
    res_busy = np.maximum(res_busy, shared_pipe_cycles(prog))
    layer_cycles = np.where(weights > 1, np.maximum(span, res_busy), span)
    cycles = int((layer_cycles * weights).sum())
    table = table_of(cfg)
    rcfg = u.run_config(cfg, wl)             # the precision this run's MACs are priced at
    prices = u.prices(rcfg, table)
    names = list(u.counter_names)
    pvec = np.array([prices.get(nm, 0.0) for nm in names])
    layer_dyn = counters.astype(np.float64) * pvec                 # [layer, counter] pJ
    seconds = cycles / cfg.clock
    leak = {k: v * cfg.energy.leakage_scale for k, v in u.leakage_w(cfg, table).items()}
    # memory energy per layer
    mem_e_layer = np.array([sum(memory_energy_pj(memory, cfg, table, memc[l]).values()) for l in range(n_layers)])
    layers = []
    layer_names = prog.layer_names
    macs_layer = counters[:, names.index(u.mac_counter)] if u.mac_counter in names else \
        np.zeros(n_layers, np.int64)
    # MACs a sparse datapath skipped (any "array.*skipped*" column): conserved with the issued ones
    # and MACs of lanes left idle by padding (any "*padded*" column) are issued but not useful
    skip_cols = [j for j, nm in enumerate(names) if nm.startswith("array.") and "skipped" in nm]
    pad_cols = [j for j, nm in enumerate(names) if "padded" in nm]
    skipped_layer = counters[:, skip_cols].sum(axis=1) if skip_cols else np.zeros(n_layers, np.int64)
    padded_layer = counters[:, pad_cols].sum(axis=1) if pad_cols else np.zeros(n_layers, np.int64)
    # off-chip traffic a coarse-grained system reports through its counters
    ext_rd = np.zeros(n_layers, np.int64)
    ext_wr = np.zeros(n_layers, np.int64)
    if u.offchip_counters:
        ext_rd = counters[:, names.index(u.offchip_counters[0])].astype(np.int64)
        ext_wr = counters[:, names.index(u.offchip_counters[1])].astype(np.int64)
    peak_bpc = u.peak_offchip_bytes_per_cycle(cfg)
    if peak_bpc is None:
        peak_bpc = float(memory.peak_bytes_per_cycle) * D
    for l in range(n_layers):
        lc = int(layer_cycles[l])
        leak_pj = sum(leak.values()) * lc / cfg.clock * 1e12
        layers.append(LayerRecord(
            name=layer_names[l], group=group_of(layer_names[l]), repeat=int(weights[l]), cycles=lc,
            macs=int(macs_layer[l]), dynamic_pj=float(layer_dyn[l].sum() + mem_e_layer[l]),
            leakage_pj=float(leak_pj),
            offchip_read_bytes=int(memc[l, MC_READ_BYTES] + ext_rd[l]),
            offchip_write_bytes=int(memc[l, MC_WRITE_BYTES] + ext_wr[l]),
            unit_busy={prog.unit_names[i]: int(busy[l, i]) for i in range(len(prog.unit_names))}))
    tot_counters = (counters * weights[:, None]).sum(axis=0)
    tot_memc = (memc * weights[:, None]).sum(axis=0)
    components: dict[str, dict] = {}
    for j, nm in enumerate(names):
        comp, act = nm.split(".", 1)
        c = components.setdefault(comp, {"counts": {}, "energy_pj": {}})
        c["counts"][act] = int(tot_counters[j])
        c["energy_pj"][act] = float((layer_dyn[:, j] * weights).sum())
    mem_e = memory_energy_pj(memory, cfg, table, tot_memc)
    components["offchip"] = {"counts": {n: int(v) for n, v in zip(MEM_COUNTER_NAMES, tot_memc) if v},
                             "energy_pj": dict(mem_e)}
    for comp, w in leak.items():
        c = components.setdefault(comp, {"counts": {}, "energy_pj": {}})
        c["energy_pj"]["leakage"] = w * seconds * 1e12
    unit_busy = (busy * weights[:, None]).sum(axis=0)
    res = Result(
        cfg=cfg, workload=lwl, program=prog, cycles=cycles, clock_hz=cfg.clock,
        macs=int((macs_layer * weights).sum()), expected_macs=int(wl.macs()),
        skipped_macs=int((skipped_layer * weights).sum()), padded_macs=int((padded_layer * weights).sum()),
        peak_macs_per_cycle=float(u.peak_macs_per_cycle(rcfg)),
        peak_bytes_per_cycle=float(peak_bpc),
        offchip_bytes=int(tot_memc[MC_READ_BYTES] + tot_memc[MC_WRITE_BYTES]
                          + ((ext_rd + ext_wr) * weights).sum()),
        layers=layers, components=components,
        units={nm: int(unit_busy[i]) for i, nm in enumerate(prog.unit_names)},
        area=u.area_mm2(cfg, table), energy_table=table.name, all_layers=all_layers,
        timeline=(start, finish) if keep_timeline else None,
        memory_info=dict(memory.info, model=memory.name),
        peak_dynamic_w=float(u.peak_dynamic_w(rcfg, table)))
    check_range(res, finish)
    from archsim.report.ops import op_breakdown
    res.extra["ops"] = op_breakdown(prog, lwl, dur, start, finish, bytes_from_instructions=not u.offchip_counters)
    if wl.spec.get("kind") == "speculative":
        from archsim.workload.speculative import speculative_metrics
        res.extra["speculative"] = speculative_metrics(res)
    summary = getattr(u, "summary", None)
    if callable(summary):
        res.extra["uarch_summary"] = summary(res)
    from archsim.workload.batching import context_note
    from archsim.workload.speculative import vocabulary_note
    notes = u.notes(cfg, wl) + [n for n in [dense_pruning_note(u, cfg, wl), context_note(wl),
                                            vocabulary_note(wl)] if n]
    if notes:
        res.extra["notes"] = notes
    return res


def dense_pruning_note(u, cfg, wl) -> str:
    """A note when the workload prunes weights that this datapath runs dense ('' otherwise)."""
    from archsim.workload.sparsity import pruned_ops
    pruned = pruned_ops(wl)
    if not pruned:
        return ""
    used = u.sparse_weight_ops(cfg, wl)
    dense = [op.name for op in pruned if op.name not in used]
    if not dense:
        return ""
    what = f"all {len(pruned)}" if len(dense) == len(pruned) else f"{len(dense)} of the {len(pruned)}"
    return (f"workload.sparsity: {cfg.uarch} runs {what} pruned GEMMs dense, zeros stored and multiplied "
            f"(no sparse datapath for their pruning): {', '.join(dense[:4])}{' ...' if len(dense) > 4 else ''}")
