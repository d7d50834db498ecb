"""GEMV, element-wise kernels and the host-streaming baseline lowered to command streams.

GEMV (y = W x, W: rows x cols) is partitioned row-wise: output rows are dealt evenly to every
unit of every stream; each unit's weights are stored in the order the unit consumes them
(output group, input tile, output row, burst), walking one bank row after another, the
unit's banks one after the other. Per stream:

    for each output group (<= output_registers rows per unit):
        for each input tile (<= global_buffer_bytes of x):
            input-vector write into the unit buffers (one broadcast write per burst;
            a data-path command, or a DRAM write to a reserved row in 'row' mode: all-bank,
            or into the odd bank half with two banks per unit, as HBM-PIM)
            barrier
            one MAC command per (row, burst): every unit consumes one column burst
            barrier
        result read-out (data-path commands; writes of the output registers into a result
        row in 'row' mode)

With two banks per unit and 'row' writes (HBM-PIM) a MAC reads one bank of every unit's pair
(half-bank command) and PIM mode switches frame the kernel (see :func:`_mode_switch`).

The baseline is the same DRAM without PIM: the host streams W and x with plain reads
(bank-interleaved rows, every pseudo-channel its own stream) and writes y back.
"""
from __future__ import annotations

import math

import numpy as np

from archsim.uarch.dram_pim import engine as E


def units_per_stream(dev, placement, banks_per_unit, geom):
    P, R, G, B = (int(x) for x in geom)
    if placement == "bank":
        return P * R * G * B // banks_per_unit
    if placement == "bankgroup":
        return P * R * G
    return P


def bank_halves(pim, dev) -> bool:
    """Two banks per unit, driven as an even and an odd half (HBM-PIM's HAB mode: a command to
    an even / odd bank acts on every even / odd bank)."""
    return pim.banks_per_unit == 2 and dev.banks % 2 == 0


def mac_kind(placement):
    return {"bank": E.K_MAC_AB, "bankgroup": E.K_MAC_SB, "buffer_die": E.K_MAC_PB}[placement]


def _mac_addresses(placement, q, geom, cpr, bpu, per_bank_q):
    """Bank (flat) and row of the q-th MAC command of a stream."""
    P, R, G, B = (int(x) for x in geom)
    if placement == "bank":
        qq = q % per_bank_q
        ub = q // per_bank_q                      # which bank of the unit
        return (ub % bpu).astype(np.int64), (qq // cpr).astype(np.int64)
    if placement == "bankgroup":
        qq = q % per_bank_q
        b = q // per_bank_q
        return (b % B).astype(np.int64), (qq // cpr).astype(np.int64)
    RG = R * G
    rg = q % RG
    nbg = q // RG
    b = nbg % B
    nbk = nbg // B
    flat = (rg * B + b).astype(np.int64)          # pseudo-channel 0; the command covers all
    return flat, (nbk // cpr).astype(np.int64)


def gemv_stream(dev, pim, geom, rows_per_unit, cols, reserved_row=None):
    """Command stream (kind, sub, bank, row) of one stream's share of a GEMV."""
    P, R, G, B = (int(x) for x in geom)
    be = dev.burst_elems
    kb_total = math.ceil(cols / be)                             # bursts per output row
    tile_b = max(1, min(kb_total, int(pim.global_buffer_bytes // dev.tx_bytes)))
    n_tiles = math.ceil(kb_total / tile_b)
    out_regs = int(pim.output_registers)
    n_og = math.ceil(rows_per_unit / out_regs)
    if pim.output_group == "padded":
        rows_per_unit = n_og * out_regs              # the last group runs full, zero weights in it
    bpu = pim.banks_per_unit if pim.placement == "bank" else (B if pim.placement == "bankgroup" else 1)
    total_q = rows_per_unit * kb_total
    per_bank_q = max(1, math.ceil(total_q / bpu))
    res_row = dev.rows - 1 if reserved_row is None else reserved_row
    out_row = dev.rows - 2
    kinds, subs, banks, rows = [], [], [], []

    def put(k, s, b, r):
        b = np.asarray(b, np.int64).ravel()
        kinds.append(np.full(b.size, k, np.int64))
        subs.append(np.full(b.size, s, np.int64))
        banks.append(b)
        rows.append(np.broadcast_to(np.asarray(r, np.int64), b.shape).astype(np.int64).ravel())

    mk = mac_kind(pim.placement)
    q0 = 0
    nbpp = R * G * B
    # two banks per unit driven as halves (HBM-PIM): register writes go to the odd half while the
    # even half may stay open for MACs, and the kernel runs between PIM mode switches
    halves = pim.buffer_write == "row" and pim.placement == "bank" and bank_halves(pim, dev)
    wr_k, wr_b = (E.K_WR_HB, 1) if halves else (E.K_WR_AB, 0)
    if halves:
        mk = E.K_MAC_HB              # a MAC reads the even or the odd bank of every unit

    def put_list(lst):
        for k, b, r, sb in lst:
            put(k, sb, [b], r)

    if halves:
        put_list(_mode_switch(dev, geom, "enter"))
    for o in range(n_og):
        rows_o = min(out_regs, rows_per_unit - o * out_regs)
        if halves:
            put_list(_mode_switch(dev, geom, "pim_on"))
        for t in range(n_tiles):
            nb_t = min(tile_b, kb_total - t * tile_b)
            if o == 0 or n_tiles > 1 or halves:
                if pim.buffer_write == "row":
                    # input-vector bursts from the host (sub 1: the write carries host data)
                    put(wr_k, 1 if halves else 0, np.full(nb_t, wr_b), res_row)
                else:
                    # one broadcast write per burst, spread over the bank groups' data paths
                    put(E.K_DATA, E.D_WRGB, (np.arange(nb_t) % G) * B, -1)
                put(E.K_BARRIER, 0, [0], -1)
            q = q0 + np.arange(rows_o * nb_t, dtype=np.int64)
            b, r = _mac_addresses(pim.placement, q, geom, dev.cols_per_row, bpu, per_bank_q)
            put(mk, 0, b, r)
            put(E.K_BARRIER, 0, [0], -1)
            q0 += rows_o * nb_t
        # read-out of rows_o results from every unit of the stream
        units = units_per_stream(dev, pim.placement, pim.banks_per_unit, geom)
        if pim.buffer_write == "row":
            put(wr_k, 0, np.full(rows_o, wr_b), out_row)
        else:
            n_ro = math.ceil(rows_o * units * dev.elem_bytes / dev.tx_bytes)
            i = np.arange(n_ro)
            flat = ((i % P) * nbpp + ((i // P) % (R * G)) * B).astype(np.int64)
            put(E.K_DATA, E.D_READOUT, flat, -1)
        put(E.K_BARRIER, 0, [0], -1)
        if halves:
            put_list(_mode_switch(dev, geom, "pim_off"))
    if halves:
        put_list(_mode_switch(dev, geom, "exit"))
    cat = lambda xs: np.concatenate(xs) if xs else np.zeros(0, np.int64)
    return cat(kinds), cat(subs), cat(banks), cat(rows)


def stream_rw(nbytes_rd, nbytes_wr, geom, dev, row0=0, mapping="bankgroup_column_bank"):
    """Host streaming: plain reads of ``nbytes_rd`` then writes of ``nbytes_wr`` on one stream,
    consecutive rows interleaved over the stream's banks. ``mapping`` (``pim.host_mapping``)
    orders the address fields above the burst offset, lowest first:
    ``bankgroup_column_bank`` (bank group, column, bank, rank / pseudo-channel, row: consecutive
    bursts alternate bank groups, tCCD_S apart) or ``bank_bankgroup_column`` (bank, bank group,
    column, rank / pseudo-channel, row: every bank takes one burst of the same column in turn)."""
    P, R, G, B = (int(x) for x in geom)
    nb = P * R * G * B
    cpr = dev.cols_per_row
    out = []
    base = 0
    for k, nbytes in ((E.K_RD, nbytes_rd), (E.K_WR, nbytes_wr)):
        n = math.ceil(nbytes / dev.tx_bytes)
        q = base + np.arange(n, dtype=np.int64)
        if mapping == "bank_bankgroup_column":
            b = q % B
            g = (q // B) % G
            rest = q // (B * G) // cpr            # past the column
            i = rest % (P * R)
        else:
            g = q % G
            rest = q // G // cpr                  # past the column
            b = rest % B
            rest = rest // B
            i = rest % (P * R)
        rc = rest // (P * R)                      # row
        r = i % R
        p = i // R
        flat = ((p * R + r) * G + g) * B + b
        out.append((np.full(n, k, np.int64), np.zeros(n, np.int64), flat.astype(np.int64),
                    (row0 + rc).astype(np.int64)))
        base += ((n + cpr * nb - 1) // (cpr * nb)) * cpr * nb
    return tuple(np.concatenate([o[i] for o in out]) for i in range(4))


def _mode_switch(dev, geom, where):
    """Commands that take one stream between normal (single-bank) mode and the PIM mode, as
    HBM-PIM's host library issues them (PIMSimulator PIMKernel). ``where``: ``enter`` (park-in,
    SB -> HAB, CRF program), ``pim_on`` (HAB -> HAB_PIM), ``pim_off`` (HAB_PIM -> HAB), ``exit``
    (HAB -> SB, park-out). Rows in the reserved region (as the device decodes them): 0x17ff
    (SB -> HAB), 0x1fff (HAB -> SB), 0x3fff (registers), 1 << 12 (park).
    Returns (kind, bank, row, sub) tuples; sub 1 marks a half-bank write carrying host data."""
    P, R, G, B = (int(x) for x in geom)
    top = dev.rows - 1
    park, to_hab, to_sb = min(1 << 12, top), min(0x17ff, top), min(0x1fff, top)
    # park-in / park-out: one read to every bank of the stream (bank index outer, bank group inner)
    parked = [(E.K_RD, (g * B + b) % (P * R * G * B), park, 0) for b in range(B) for g in range(G)]
    bar = (E.K_BARRIER, 0, -1, 0)
    out = []
    if where == "enter":
        out += parked + [bar]
        # SB -> HAB: writes to banks 0 and 1 of bank groups 0 and 2
        for g in (0, 2) if G > 2 else (0,):
            out += [(E.K_WR, g * B, to_hab, 0), (E.K_WR, g * B + 1, to_hab, 0)]
        out += [bar, (E.K_WR_HB, 1, top, 1), bar]                     # program CRF (odd half)
    elif where in ("pim_on", "pim_off"):
        out += [(E.K_WR_HB, 0, top, 1), bar]                          # HAB <-> HAB_PIM
    else:
        out += [(E.K_WR_HB, 0, to_sb, 1), (E.K_WR_HB, 1, to_sb, 1), bar]    # HAB -> SB
        out += parked + [bar]                                               # park-out
    return out


def eltwise_stream(dev, pim, geom, op, n_bursts_per_unit, mode_switch=True):
    """HBM-PIM element-wise kernel on one stream (PIMSimulator's ADD / MUL / ReLU sequence).

    With two banks per unit the host drives the two bank halves separately (HAB mode: a
    column command to an even / odd bank acts on every even / odd bank), so while one half
    reads or writes, the other half's rows can be precharged and opened. Per tile of ``grf``
    bursts:

        ADD / MUL, for each half (even, odd): grf reads of operand 0 into the unit registers,
                   barrier, grf reads of operand 1 with the operation, barrier, grf writes
                   of the result into the half, barrier;
        ReLU,      for each half: grf reads (FILL + ReLU), barrier, grf writes, barrier.

    With one bank per unit every command covers all banks (all-bank read / write)."""
    grf = max(1, int(pim.global_buffer_bytes // dev.tx_bytes))
    bpu = pim.banks_per_unit
    half = bank_halves(pim, dev)
    n_tiles = math.ceil(n_bursts_per_unit / (grf * bpu))
    cpr = dev.cols_per_row
    in0, in1, res = 0, dev.rows // 4, dev.rows // 2
    rd_k, wr_k = (E.K_MAC_HB, E.K_WR_HB) if half else (E.K_MAC_AB, E.K_WR_AB)
    kinds, subs, banks, rows = [], [], [], []

    def put(k, b, r, n, sb=0):
        kinds.append(np.full(n, k, np.int64)); banks.append(np.full(n, b, np.int64))
        rows.append(np.full(n, r, np.int64)); subs.append(np.full(n, sb, np.int64))

    def put_list(lst):
        for k, b, r, sb in lst:
            put(k, b, r, 1, sb)

    if mode_switch and half:
        put_list(_mode_switch(dev, geom, "enter") + _mode_switch(dev, geom, "pim_on"))
    for t in range(n_tiles):
        c = grf * t
        r_off = c // cpr
        for b in range(bpu):
            hb = b % 2 if half else 0
            put(rd_k, hb, in0 + r_off, grf); put(E.K_BARRIER, 0, -1, 1)
            if op in ("add", "mul"):
                put(rd_k, hb, in1 + r_off, grf); put(E.K_BARRIER, 0, -1, 1)
            put(wr_k, hb, res + r_off, grf); put(E.K_BARRIER, 0, -1, 1)
    if mode_switch and half:
        put_list(_mode_switch(dev, geom, "pim_off") + _mode_switch(dev, geom, "exit"))
    return np.concatenate(kinds), np.concatenate(subs), np.concatenate(banks), np.concatenate(rows)
