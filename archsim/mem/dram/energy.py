"""DRAM energy from command counts: per-command energies (ACT, PRE, RD, WR, REF), I/O energy
per bit and background power, from a preset's ``energy`` block.

``method: idd`` follows Micron TN-40-07 (Calculating Memory Power for DDR4 SDRAM): a
command's energy is the current above the standby current it draws over its duration, times
the supply voltage (mA x ns x V = pJ); currents are per device and multiplied by
``devices_per_rank`` (DDR) or taken per channel (HBM). Background power is the active-standby
current (IDD3N) of every rank, an upper bound for open-page operation.
``method: pj_per_bit`` uses per-bit energies (cell activate / precharge per bit of the opened
row, column access per bit transferred) as in the AttAcc / FGDRAM energy tables.
"""
from __future__ import annotations


def command_energies_pj(preset) -> dict:
    e = preset.energy
    t = preset.timing                     # CK cycles
    tck_ns = preset.tck_ps / 1000.0
    row_bits = preset.cols_per_row * preset.tx_bytes * 8
    burst_bits = preset.tx_bytes * 8
    if e.get("method") == "idd":
        vdd = e["VDD"]
        vpp = e.get("VPP", 0.0)
        dev = preset.organisation.get("devices_per_rank", 1)
        ipp = lambda k: e.get(k, 0.0)

        def cur(a, b, cycles, pa="", pb=""):
            v = (e[a] - e[b]) * cycles * tck_ns * vdd
            if vpp and pa:
                v += (ipp(pa) - ipp(pb)) * cycles * tck_ns * vpp
            return max(v, 0.0) * dev

        act = cur("IDD0", "IDD3N", t["nRAS"], "IPP0", "IPP3N")
        pre = cur("IDD0", "IDD2N", t["nRP"], "IPP0", "IPP2N")
        rd = cur("IDD4R", "IDD3N", t["nBL"], "IPP4R", "IPP3N")
        wr = cur("IDD4W", "IDD3N", t["nBL"], "IPP4W", "IPP3N")
        ref = cur("IDD5B", "IDD3N", t["nRFC"], "IPP5B", "IPP3N")
        bg_mw = (e["IDD3N"] * vdd + ipp("IPP3N") * vpp) * dev
        if preset.standard.levels[1] == "Rank":
            bg_mw *= preset.level_sizes[1]         # every rank's devices stand by
        # HBM currents are per 128-bit legacy channel: one background per channel
    elif e.get("method") == "pj_per_bit":
        act = 0.5 * e["act_pre_pj_per_bit"] * row_bits
        pre = 0.5 * e["act_pre_pj_per_bit"] * row_bits
        rd = wr = e["rd_wr_pj_per_bit"] * burst_bits
        scope_banks = preset.banks_per_channel // max(1, preset.level_sizes[1]) \
            if preset.standard.levels[1] != "BankGroup" else preset.banks_per_channel
        ref = e["ref_pj_per_bit"] * row_bits * e.get("rows_per_ref", 1) * scope_banks
        bg_mw = e.get("background_mw_per_channel", 0.0)
    else:
        act = pre = rd = wr = ref = bg_mw = 0.0
    return {"act_pj": act, "pre_pj": pre, "rd_pj": rd, "wr_pj": wr, "ref_pj": ref,
            "io_pj_per_bit": float(e.get("io_pj_per_bit", 0.0)), "background_mw_per_channel": bg_mw}


def energy_nj(preset, counts: dict, seconds: float, channels: int) -> dict:
    """Energy breakdown (nJ) for command ``counts`` (act, pre, rd, wr, ref) over ``seconds``."""
    ce = command_energies_pj(preset)
    bits = (counts.get("rd", 0) + counts.get("wr", 0)) * preset.tx_bytes * 8
    out = {
        "act": counts.get("act", 0) * ce["act_pj"] / 1e3,
        "pre": counts.get("pre", 0) * ce["pre_pj"] / 1e3,
        "rd": counts.get("rd", 0) * ce["rd_pj"] / 1e3,
        "wr": counts.get("wr", 0) * ce["wr_pj"] / 1e3,
        "ref": counts.get("ref", 0) * ce["ref_pj"] / 1e3,
        "io": bits * ce["io_pj_per_bit"] / 1e3,
        "background": ce["background_mw_per_channel"] * 1e-3 * channels * seconds * 1e9,
    }
    out["total"] = sum(out.values())
    return out
