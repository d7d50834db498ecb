"""DRAM standards: hierarchy levels, commands and the timing-constraint tables.

A *standard* (DDR4, HBM2, ...) fixes the hierarchy between the channel and the bank, which
commands exist, how many controller ticks each command occupies on its command bus, and the
list of JEDEC timing relations "command P at level X constrains command F at level X by
<expression of timing parameters>". A *preset* (``arch_configs/dram/*.yaml``) supplies the
numbers. :func:`build_tables` evaluates the relations into integer tables in controller ticks.

Conventions (shared with the peer simulator used for validation, see docs/dram.md):

- A constraint is measured between the moments the DRAM has *received* each command. The
  controller records a command at its first tick, so for a command occupying ``k`` ticks the
  latency is adjusted by ``+(k_pre - 1) - (k_fol - 1)``.
- ``window = 4`` on ACT -> ACT is tFAW: the fifth ACT waits for the fourth-most-recent one.
- ``sibling`` constraints apply to the *other* nodes of the same level under the same parent
  (rank-to-rank switching, HBM3 stack-ID switching).
- Commands occupying more than one tick block their command bus for that many ticks; standards
  with separate row and column command buses (HBM) get one bus constraint per bus.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# command ids (fixed for every standard; a standard uses a subset)
ACT, PRE, PREA, RD, WR, RDA, WRA, REF, REFPB = range(9)
N_CMD = 9
CMD_NAMES = ("ACT", "PRE", "PREA", "RD", "WR", "RDA", "WRA", "REF", "REFPB")
ROW_CMDS = (ACT, PRE, PREA, REF, REFPB)
COL_CMDS = (RD, WR, RDA, WRA)

_RD = ("RD", "RDA")
_WR = ("WR", "WRA")
_CAS = _RD + _WR


@dataclass(frozen=True)
class Standard:
    name: str
    levels: tuple[str, ...]              # channel .. bank
    refresh_level: str                   # scope of an all-bank refresh
    constraints: tuple                   # (level, pre, fol, expr, window, sibling)
    cmd_ticks: dict = field(default_factory=dict)   # CK cycles on the command bus (default 1)
    tick_multiplier: int = 1             # controller ticks per CK
    dual_bus: bool = False               # separate row and column command buses
    edge_rules: bool = False             # HBM3: column cmds on rising edges, PRE pairing on falling
    per_bank_refresh: bool = False
    read_latency: str = "nCL + nBL"
    split_act: bool = False              # LPDDR5: ACT-1 / ACT-2 (the second within tAAD)
    wck_sync: bool = False               # LPDDR5: a CAS (WCK2CK sync) before an access once WCK stopped
    # per-bank refresh: tREFIpb apart, one bank of the channel (False), or one bank of every
    # refresh scope, each scope stepping through its own banks (HBM3: JESD238 defines the
    # per-bank refresh interval per pseudo-channel); the scopes' REFpb are queued a tick apart
    refpb_per_scope: bool = False


def _c(level, pre, fol, expr, window=1, sibling=False):
    pre = (pre,) if isinstance(pre, str) else tuple(pre)
    fol = (fol,) if isinstance(fol, str) else tuple(fol)
    return (level, pre, fol, expr, window, sibling)


# --- DDR-style (Channel / Rank / BankGroup / Bank), JESD79-4 (DDR4) relations -------------
def _ddr_constraints(rank="Rank", bankgroup="BankGroup", ddr5=False, ppd=None,
                     wr_rd_rank="nCWL + nBL + nCS - nCL"):
    """JESD79-4 relations; ``ddr5`` takes JESD79-5's differences: write-to-write spacings of
    their own (tCCD_S_WR, tCCD_L_WR: a second write to a bank group waits for the first's
    internal read-modify-write), read and write preambles of 2 cycles each in the read-to-write
    turnaround, and PRE-to-PRE tPPD (``ppd``,
    default with ``ddr5``). Write-to-read within a bank group counts the longest burst
    (tBL_max, JESD209-5's BL/n_max; tBL unless a preset sets it) and all-bank precharge to ACT
    tRPab (tRP unless set). A read in another rank after a write waits ``wr_rd_rank``: by default
    until the write's data has left the bus plus the rank-switch gap tCS (CWL + BL + tCS - CL,
    timed from the commands), LPDDR5 passes its own form."""
    r, g = rank, bankgroup
    ww_s, ww_l = ("nCCDSWR", "nCCDLWR") if ddr5 else ("nCCDS", "nCCDL")
    out = [
        # data bus occupancy
        _c("Channel", _RD, _RD, "nBL"), _c("Channel", _WR, _WR, "nBL"),
        # column to column, different bank group (tCCD_S)
        _c(r, _RD, _RD, "nCCDS"), _c(r, _WR, _WR, ww_s),
        # read-to-write and write-to-read turnaround (tWTR_S, preamble 2 cycles)
        _c(r, _RD, _WR, "nCL + nBL + 4 - nCWL" if ddr5 else "nCL + nBL + 2 - nCWL"),
        _c(r, _WR, _RD, "nCWL + nBL + nWTRS"),
        # rank-to-rank switching
        _c(r, _RD, _CAS, "nBL + nCS", sibling=True),
        _c(r, _WR, _RD, wr_rd_rank, sibling=True),
        # CAS <-> PREab
        _c(r, "RD", "PREA", "nRTP"), _c(r, "WR", "PREA", "nCWL + nBL + nWR"),
        # ACT <-> ACT (tRRD_S, tFAW)
        _c(r, "ACT", "ACT", "nRRDS"), _c(r, "ACT", "ACT", "nFAW", window=4),
        _c(r, "ACT", "PREA", "nRAS"), _c(r, "PREA", "ACT", "nRPab"),
        # refresh
        _c(r, "ACT", "REF", "nRC"), _c(r, ("PRE", "PREA"), "REF", "nRP"),
        _c(r, "RDA", "REF", "nRP + nRTP"), _c(r, "WRA", "REF", "nCWL + nBL + nWR + nRP"),
        _c(r, "REF", ("ACT", "PREA"), "nRFC"),
        # same bank group (tCCD_L, tWTR_L, tRRD_L)
        _c(g, _RD, _RD, "nCCDL"), _c(g, _WR, _WR, ww_l),
        _c(g, _WR, _RD, "nCWL + nBLmax + nWTRL"),
        _c(g, "ACT", "ACT", "nRRDL"),
        # bank
        _c("Bank", "ACT", "ACT", "nRC"),
        _c("Bank", "ACT", _RD, "nRCDRD"), _c("Bank", "ACT", _WR, "nRCDWR"),
        _c("Bank", "ACT", "PRE", "nRAS"), _c("Bank", "PRE", "ACT", "nRP"),
        _c("Bank", "RD", "PRE", "nRTP"), _c("Bank", "WR", "PRE", "nCWL + nBL + nWR"),
        _c("Bank", "RDA", "ACT", "nRTP + nRP"), _c("Bank", "WRA", "ACT", "nCWL + nBL + nWR + nRP"),
    ]
    if ddr5 if ppd is None else ppd:
        out.append(_c(r, ("PRE", "PREA"), ("PRE", "PREA"), "nPPD"))
    return tuple(out)


def _ddr_pb_constraints(rank="Rank", bankgroup="BankGroup"):
    """Per-bank refresh relations (LPDDR5 / DDR5 same-bank refresh, simplified to one bank)."""
    r = rank
    return (
        _c(r, "REFPB", "REFPB", "nRREFD"), _c(r, "REFPB", "ACT", "nRREFD"),
        _c(r, "ACT", "REFPB", "nRRDS"),
        _c("Bank", "REFPB", "ACT", "nRFCpb"), _c("Bank", "ACT", "REFPB", "nRC"),
        _c("Bank", "PRE", "REFPB", "nRP"),
    )


# --- GDDR6 (Channel / BankGroup / Bank) -----------------------------------------------------
def _gddr6_constraints():
    """GDDR6 relations as Ramulator 2.1's GDDR6 table lists them (python/ramulator/dram/gddr6.py;
    JESD250 itself is not public, so this is the one documented GDDR6 table at hand, and trace
    replays agree with that simulator cycle for cycle). A GDDR6 channel has no ranks: the
    relations DDR4 keeps per rank hold per channel, and the channel is the all-bank refresh
    scope. Where the list departs from the JESD79-4 form (``_ddr_constraints``):

    - read -> write: CL + 1. The write may be sent once the read data has started (its short
      write latency puts the write data after the read burst); DDR4 counts the burst and a
      2-CK preamble, CL + BL + 2 - CWL.
    - all-bank refresh: REFab -> ACT after tRFC and after tRFCab, REFab -> REFab after tRFCab
      (the later one binds; tRFCab defaults to tRFC). Only PREab precedes a REFab by tRP: a bank
      closed by its own PRE is covered by ACT -> REFab tRC (PRE comes tRAS after the ACT), fully
      where tRC >= tRAS + tRP; the peer's GDDR6-7000 tRC is one short, and that shows in its runs.
    - per-bank refresh: REFpb behaves as an activation of its bank for the channel's activate
      spacing (ACT -> REFpb tRRD_L, REFpb -> ACT / REFpb tRREFD); it waits tRP after a PREab and
      the auto-precharge of an RDA / WRA anywhere in the channel, and tRC / tRP / the
      auto-precharge at its own bank; REFpb -> ACT of that bank tRFCpb.
    - no rank switching, no PRE-to-PRE spacing; PREab -> ACT is tRP."""
    ch = "Channel"
    return (
        # data bus occupancy, column to column (tCCD_S in the channel, tCCD_L in a bank group)
        _c(ch, _RD, _RD, "nBL"), _c(ch, _WR, _WR, "nBL"),
        _c(ch, _RD, _RD, "nCCDS"), _c(ch, _WR, _WR, "nCCDS"),
        # turnarounds
        _c(ch, _RD, _WR, "nCL + 1"),
        _c(ch, _WR, _RD, "nCWL + nBL + nWTRS"),
        # CAS <-> PREab
        _c(ch, "RD", "PREA", "nRTP"), _c(ch, "WR", "PREA", "nCWL + nBL + nWR"),
        # ACT <-> ACT (tRRD_S, tFAW), PREab
        _c(ch, "ACT", "ACT", "nRRDS"), _c(ch, "ACT", "ACT", "nFAW", window=4),
        _c(ch, "ACT", "PREA", "nRAS"), _c(ch, "PREA", "ACT", "nRP"),
        # all-bank refresh
        _c(ch, "ACT", "REF", "nRC"), _c(ch, "PREA", "REF", "nRP"),
        _c(ch, "RDA", "REF", "nRP + nRTP"), _c(ch, "WRA", "REF", "nCWL + nBL + nWR + nRP"),
        _c(ch, "REF", "ACT", "nRFC"), _c(ch, "REF", ("ACT", "REF"), "nRFCab"),
        # per-bank refresh, channel level
        _c(ch, "ACT", "REFPB", "nRRDL"), _c(ch, "PREA", "REFPB", "nRP"),
        _c(ch, "RDA", "REFPB", "nRP + nRTP"), _c(ch, "WRA", "REFPB", "nCWL + nBL + nWR + nRP"),
        _c(ch, "REFPB", ("ACT", "REFPB"), "nRREFD"),
        # same bank group (tCCD_L, tWTR_L, tRRD_L)
        _c("BankGroup", _RD, _RD, "nCCDL"), _c("BankGroup", _WR, _WR, "nCCDL"),
        _c("BankGroup", _WR, _RD, "nCWL + nBL + nWTRL"),
        _c("BankGroup", "ACT", "ACT", "nRRDL"),
        # bank
        _c("Bank", "ACT", "ACT", "nRC"),
        _c("Bank", "ACT", _RD, "nRCDRD"), _c("Bank", "ACT", _WR, "nRCDWR"),
        _c("Bank", "ACT", "PRE", "nRAS"), _c("Bank", "PRE", "ACT", "nRP"),
        _c("Bank", "RD", "PRE", "nRTP"), _c("Bank", "WR", "PRE", "nCWL + nBL + nWR"),
        _c("Bank", "RDA", "ACT", "nRTP + nRP"), _c("Bank", "WRA", "ACT", "nCWL + nBL + nWR + nRP"),
        _c("Bank", "ACT", "REFPB", "nRC"), _c("Bank", "PRE", "REFPB", "nRP"),
        _c("Bank", "RDA", "REFPB", "nRP + nRTP"), _c("Bank", "WRA", "REFPB", "nCWL + nBL + nWR + nRP"),
        _c("Bank", "REFPB", "ACT", "nRFCpb"),
    )


# --- HBM2 / HBM2E (Channel / PseudoChannel / BankGroup / Bank), JESD235 relations ----------
def _hbm2_constraints():
    p = "PseudoChannel"
    return (
        _c(p, _RD, _RD, "nBL"), _c(p, _WR, _WR, "nBL"),
        _c(p, _RD, _RD, "nCCDS"), _c(p, _WR, _WR, "nCCDS"),
        _c(p, _RD, _WR, "nCL + nBL + 2 - nCWL"),
        _c(p, _WR, _RD, "nCWL + nBL + nWTRS"),
        _c(p, "RD", "PREA", "nRTP"), _c(p, "WR", "PREA", "nCWL + nBL + nWR"),
        _c(p, "ACT", "ACT", "nRRDS"), _c(p, "ACT", "ACT", "nFAW", window=4),
        _c(p, "ACT", "PREA", "nRAS"), _c(p, "PREA", "ACT", "nRP"),
        _c(p, "ACT", "REF", "nRC"), _c(p, ("PRE", "PREA"), "REF", "nRP"),
        _c(p, "RDA", "REF", "nRP + nRTP"), _c(p, "WRA", "REF", "nCWL + nBL + nWR + nRP"),
        _c(p, "REF", ("ACT", "PREA"), "nRFC"),
        _c(p, "REFPB", "ACT", "nRREFD"), _c(p, "ACT", "REFPB", "nRRDS"),
        _c("BankGroup", _RD, _RD, "nCCDL"), _c("BankGroup", _WR, _WR, "nCCDL"),
        _c("BankGroup", _WR, _RD, "nCWL + nBL + nWTRL"),
        _c("BankGroup", "ACT", "ACT", "nRRDL"),
        _c("Bank", "ACT", "ACT", "nRC"),
        _c("Bank", "ACT", _RD, "nRCDRD"), _c("Bank", "ACT", _WR, "nRCDWR"),
        _c("Bank", "ACT", "PRE", "nRAS"), _c("Bank", "PRE", "ACT", "nRP"),
        _c("Bank", "RD", "PRE", "nRTP"), _c("Bank", "WR", "PRE", "nCWL + nBL + nWR"),
        _c("Bank", "RDA", "ACT", "nRTP + nRP"), _c("Bank", "WRA", "ACT", "nCWL + nBL + nWR + nRP"),
        _c("Bank", "REFPB", "ACT", "nRFCpb"), _c("Bank", "ACT", "REFPB", "nRC"),
        _c("Bank", "PRE", "REFPB", "nRP"),
    )


# --- HBM3 (Channel / PseudoChannel / StackID / BankGroup / Bank), JESD238 relations ----------
def _hbm3_constraints():
    p = "PseudoChannel"
    return (
        _c(p, _RD, _RD, "nBL"), _c(p, _WR, _WR, "nBL"),
        _c(p, _RD, _WR, "nRTW"),
        _c(p, _WR, _RD, "nCWL + nBL + nWTRS"),
        _c(p, "RD", "PREA", "nRTP"), _c(p, "WR", "PREA", "nCWL + nBL + nWR"),
        _c(p, "ACT", "ACT", "nRRDS"), _c(p, "ACT", "ACT", "nFAW", window=4),
        _c(p, "ACT", "PREA", "nRAS"), _c(p, "PREA", "ACT", "nRP"),
        _c(p, ("PRE", "PREA"), ("PRE", "PREA"), "nPPD"),
        _c(p, "ACT", "REF", "nRC"), _c(p, ("PRE", "PREA"), "REF", "nRP"),
        _c(p, "RDA", "REF", "nRP + nRTP"), _c(p, "WRA", "REF", "nCWL + nBL + nWR + nRP"),
        _c(p, "REF", ("ACT", "PREA"), "nRFC"),
        _c(p, "REFPB", "REFPB", "nRREFD"), _c(p, "REFPB", "ACT", "nRREFD"),
        _c(p, "ACT", "REFPB", "nRRDS"),
        _c("Sid", _RD, _RD, "nBL"), _c("Sid", _WR, _WR, "nBL"),
        _c("Sid", _RD, _RD, "nCCDR", sibling=True),
        _c("BankGroup", _RD, _RD, "nCCDL"), _c("BankGroup", _WR, _WR, "nCCDL"),
        _c("BankGroup", _WR, _RD, "nCWL + nBL + nWTRL"),
        _c("BankGroup", "ACT", "ACT", "nRRDL"),
        _c("Bank", "ACT", "ACT", "nRC"),
        _c("Bank", "ACT", _RD, "nRCDRD"), _c("Bank", "ACT", _WR, "nRCDWR"),
        _c("Bank", "ACT", "PRE", "nRAS"), _c("Bank", "PRE", "ACT", "nRP"),
        _c("Bank", "RD", "PRE", "nRTP"), _c("Bank", "WR", "PRE", "nCWL + nBL + nWR"),
        _c("Bank", "RDA", "ACT", "nRTP + nRP"), _c("Bank", "WRA", "ACT", "nCWL + nBL + nWR + nRP"),
        _c("Bank", "REFPB", "ACT", "nRFCpb"), _c("Bank", "ACT", "REFPB", "nRC"),
        _c("Bank", "PRE", "REFPB", "nRP"),
    )


STANDARDS: dict[str, Standard] = {
    "DDR4": Standard("DDR4", ("Channel", "Rank", "BankGroup", "Bank"), "Rank", _ddr_constraints()),
    # DDR5: one 32-bit sub-channel is modelled as a channel; ACT/RD/WR are 2-cycle commands.
    "DDR5": Standard("DDR5", ("Channel", "Rank", "BankGroup", "Bank"), "Rank",
                     _ddr_constraints(ddr5=True) + _ddr_pb_constraints(),
                     cmd_ticks={"ACT": 2, "RD": 2, "WR": 2, "RDA": 2, "WRA": 2}, per_bank_refresh=True),
    "LPDDR5": Standard("LPDDR5", ("Channel", "Rank", "BankGroup", "Bank"), "Rank",
                       # rank switch after a write as Ramulator 2.1's lpddr5.py has it (one rank in
                       # the presets: the relation is not exercised)
                       _ddr_constraints(ppd=True, wr_rd_rank="nCL + nBL + nCS - nCWL")
                       + _ddr_pb_constraints(), per_bank_refresh=True,
                       split_act=True, wck_sync=True),
    "GDDR6": Standard("GDDR6", ("Channel", "BankGroup", "Bank"), "Channel", _gddr6_constraints(),
                      per_bank_refresh=True),
    "HBM2": Standard("HBM2", ("Channel", "PseudoChannel", "BankGroup", "Bank"), "PseudoChannel",
                     _hbm2_constraints(), cmd_ticks={"ACT": 2}, dual_bus=True, per_bank_refresh=True),
    "HBM3": Standard("HBM3", ("Channel", "PseudoChannel", "Sid", "BankGroup", "Bank"), "PseudoChannel",
                     _hbm3_constraints(), cmd_ticks={"ACT": 1.5, "RD": 1, "WR": 1, "RDA": 1, "WRA": 1,
                                                     "PRE": 0.5, "PREA": 0.5, "REF": 0.5, "REFPB": 0.5},
                     tick_multiplier=2, dual_bus=True, edge_rules=True, per_bank_refresh=True,
                     refpb_per_scope=True),
}
STANDARDS["HBM2E"] = STANDARDS["HBM2"]


def _eval(expr: str, t: dict) -> int:
    val = eval(expr, {"__builtins__": {}}, t)      # expressions are the fixed strings above
    return int(val)


@dataclass
class Tables:
    """Integer tables in controller ticks, ready for the kernels."""

    standard: Standard
    level_sizes: np.ndarray       # int64[L]; [0] = 1 (one channel per controller)
    timing: dict                  # name -> ticks
    cmd_ticks: np.ndarray         # int64[N_CMD]
    # constraints in CSR form by (level, preceding command)
    c_start: np.ndarray           # int64[L, N_CMD + 1]
    c_fol: np.ndarray
    c_lat: np.ndarray
    c_win: np.ndarray
    c_sib: np.ndarray
    read_latency: int
    entries: list                 # (level, pre, fol, lat, window, sibling) for inspection / tests

    @property
    def n_levels(self) -> int:
        return len(self.level_sizes)


def build_tables(std: Standard, level_sizes: list[int], timing_ck: dict) -> Tables:
    """Evaluate ``std``'s relations with ``timing_ck`` (CK cycles) into tick tables."""
    m = std.tick_multiplier
    t = {k: int(round(v * m)) for k, v in timing_ck.items()}
    ticks = {c: int(round(std.cmd_ticks.get(c, 1) * m)) for c in CMD_NAMES}
    level_idx = {n: i for i, n in enumerate(std.levels)}
    entries = []
    for level, pre, fol, expr, win, sib in std.constraints:
        nominal = _eval(expr, t)
        for p in pre:
            for f in fol:
                lat = nominal + (ticks[p] - 1) - (ticks[f] - 1)
                entries.append((level_idx[level], CMD_NAMES.index(p), CMD_NAMES.index(f), lat, win, sib))
    # command-bus occupancy of multi-tick commands
    if std.dual_bus:
        buses = [("ACT", "PRE", "PREA", "REF", "REFPB"), ("RD", "WR", "RDA", "WRA")]
    else:
        buses = [CMD_NAMES]
    for bus in buses:
        for p in bus:
            if ticks[p] > 1:
                for f in bus:
                    entries.append((0, CMD_NAMES.index(p), CMD_NAMES.index(f), ticks[p], 1, False))
    L = len(std.levels)
    # CSR by (level, pre)
    entries.sort(key=lambda e: (e[0], e[1]))
    c_start = np.zeros((L, N_CMD + 1), dtype=np.int64)
    c_fol, c_lat, c_win, c_sib = [], [], [], []
    k = 0
    for lv in range(L):
        for p in range(N_CMD):
            c_start[lv, p] = k
            for e in entries:
                if e[0] == lv and e[1] == p:
                    c_fol.append(e[2]); c_lat.append(e[3]); c_win.append(e[4]); c_sib.append(int(e[5]))
                    k += 1
        c_start[lv, N_CMD] = k
    arr = lambda x: np.asarray(x, dtype=np.int64)
    return Tables(std, arr(level_sizes), t, arr([ticks[c] for c in CMD_NAMES]), c_start,
                  arr(c_fol), arr(c_lat), arr(c_win), arr(c_sib), _eval(std.read_latency, t), entries)


def effective_table(entries) -> dict:
    """{(level, pre, fol, window, sibling): max latency} — the binding form of a constraint list."""
    out: dict = {}
    for lv, p, f, lat, win, sib in entries:
        key = (lv, p, f, win, bool(sib))
        out[key] = max(out.get(key, lat), lat)
    return out
