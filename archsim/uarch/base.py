"""The interface every microarchitecture implements.

A microarchitecture supplies its config model, its unit list, a lowerer (workload graph ->
Program), a cost kernel (Program -> per-instruction durations and per-layer action
counters), its counter names, peak throughput for bounds, and energy/area prices. The
timing kernel, the memory models, the energy pricing and the CLI are shared.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class LowerOptions:
    all_layers: bool = False          # informational; the workload graph already reflects it
    seed: int = 0
    extra: dict = field(default_factory=dict)


class Uarch:
    name: str = ""
    doc: str = ""
    config_cls: type = object
    #: counter columns "component.action" produced by the cost kernel
    counter_names: tuple[str, ...] = ()
    #: the counter column holding the MACs the datapath issued
    mac_counter: str = "array.mac"
    #: (read, write) counter columns holding off-chip traffic that the program does not move
    #: through the memory model (a system of coarse instructions, e.g. hetero): added to the
    #: layers' off-chip bytes; ``peak_offchip_bytes_per_cycle`` then gives their peak rate
    offchip_counters: tuple = ()
    #: a repeated layer group is lowered as a first and a steady-state instance
    #: (:mod:`archsim.workload.instances`); False for a microarchitecture whose lowering does so
    #: itself
    steady_state_instances: bool = True

    def instances(self, workload):
        """The workload as this microarchitecture lowers it: each repeated block group as a
        first and a steady-state instance (unless ``steady_state_instances`` is False)."""
        if not self.steady_state_instances:
            return workload
        from archsim.workload.instances import first_and_steady
        return first_and_steady(workload)

    def unit_names(self, cfg) -> list[str]:
        raise NotImplementedError

    def lower(self, cfg, workload, opts: LowerOptions):
        """Return an :class:`archsim.isa.Program`."""
        raise NotImplementedError

    def cost(self, cfg, program) -> tuple[np.ndarray, np.ndarray]:
        """(duration int64[n], counters int64[n_layers, len(counter_names)])."""
        raise NotImplementedError

    def peak_macs_per_cycle(self, cfg) -> float:
        raise NotImplementedError

    def notes(self, cfg, workload) -> list[str]:
        """Remarks on how this run models the workload that the user should know (the result's
        ``notes``, printed on stderr by the CLI)."""
        return []

    def sparse_weight_ops(self, cfg, workload) -> set:
        """Names of the pruned GEMMs (``workload.sparsity.pruned_ops``) whose weights this
        datapath exploits (skips, compresses); the others run dense, which the result notes.
        Default: none (a dense datapath multiplies the zeros)."""
        return set()

    def run_config(self, cfg, workload):
        """The config that prices this run's MACs and sets its peak (utilisation): ``cfg``
        itself unless the datapath runs several precisions and the workload picks one."""
        return cfg

    def devices(self, cfg) -> int:
        """Identical devices the simulated program stands for (tensor parallelism simulates one
        device): the memory model's byte and command counts and the bandwidth peak are multiplied
        by it, so a result's traffic and energy are the whole system's. The cost kernel's counters
        must already be system-wide."""
        return 1

    def peak_offchip_bytes_per_cycle(self, cfg) -> float | None:
        """Peak off-chip bytes per cycle of the whole system when ``offchip_counters`` carry its
        traffic (None: the memory model's peak times ``devices``)."""
        return None

    def prices(self, cfg, table) -> dict[str, float]:
        """pJ per count for each counter name (missing names cost nothing)."""
        return {}

    def leakage_w(self, cfg, table) -> dict[str, float]:
        """Static power per component in watts."""
        return {}

    def area_mm2(self, cfg, table) -> dict[str, float]:
        return {}

    def peak_dynamic_w(self, cfg, table) -> float:
        """Dynamic power with every MAC unit busy (default: peak MACs x the ``array.mac`` price)."""
        return self.peak_macs_per_cycle(cfg) * cfg.clock * self.prices(cfg, table).get("array.mac", 0.0) * 1e-12

    # Optional: ``summary(result) -> dict`` adds a microarchitecture-specific breakdown to the
    # JSON result under ``uarch_summary``. For pipeline stages (archsim/sim/pipeline.py):
    # ``check_capacity(cfg, workload)`` checks the whole batch against the devices' memory before
    # it is split into micro-batches, and ``split_run_overhead(cfg) -> (cfg, cycles)`` takes a
    # once-per-run cost out of the configuration so that it is paid once, not per micro-batch.
