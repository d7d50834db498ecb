"""DRAM presets: every preset resolves, every number carries a source, the evaluated
constraint tables equal the ones the peer simulator resolved, bad timing sets are refused."""
import json
from pathlib import Path

import pytest
import yaml

from archsim.errors import ConfigError
from archsim.mem.dram.presets import load_preset, preset_dir, preset_names, resolve
from archsim.mem.dram.spec import CMD_NAMES, effective_table

PEER = Path("/work/shared/validation/dram/presets.json")
#: Ramulator 2.1's resolved GDDR6 presets, stored with the tests (the peer files are not in the repo)
PEER_GDDR6 = Path(__file__).resolve().parent / "data" / "dram" / "ramulator21_gddr6_tables.json"
#: and its resolved DDR4 organisations / speed bins
PEER_DDR4 = Path(__file__).resolve().parent / "data" / "dram" / "ramulator21_ddr4_tables.json"
REQUIRED = {"HBM2-2000", "HBM2E-3200", "HBM3-6400", "DDR4-2400", "DDR4-3200", "DDR5-4800", "LPDDR5-6400", "GDDR6-14000"}


def test_all_presets_resolve_and_are_jedec_consistent():
    assert REQUIRED <= set(preset_names())
    for name in preset_names():
        p = load_preset(name)
        t = p.timing
        if p.raw.get("allow_trc_below_tras_trp"):
            # only where a peer's preset has it (GDDR6-7000: tRC one below tRAS + tRP)
            assert t["nRAS"] + t["nRP"] - 1 <= t["nRC"] < t["nRAS"] + t["nRP"], name
        else:
            assert t["nRC"] >= t["nRAS"] + t["nRP"], name
        assert p.peak_GBps > 0 and p.capacity_bytes > 0


def test_channel_counts_and_peaks():
    assert load_preset("HBM2-2000").channels == 8 and load_preset("HBM2-2000").peak_GBps == pytest.approx(256.0)
    assert load_preset("HBM3-6400").channels == 16 and load_preset("HBM3-6400").peak_GBps == pytest.approx(819.2, rel=1e-3)
    for n in ("DDR4-2400", "DDR4-3200"):
        p = load_preset(n)
        assert p.channels == 1 and p.n_ranks == 1
    assert load_preset("DDR4-3200").peak_GBps == pytest.approx(25.6)


def test_every_timing_line_has_a_source_comment():
    for f in preset_dir().glob("*.yaml"):
        lines = f.read_text().splitlines()
        assert lines[0].startswith("#"), f
        in_timing = False
        for ln in lines:
            if ln.startswith("timing:"):
                in_timing = True
                continue
            if in_timing and ln and not ln.startswith(" "):
                in_timing = False
            if in_timing and ":" in ln and f.stem not in ("HBM2E-3200", "DDR5-4800"):
                assert "#" in ln, f"{f.name}: {ln}"


def _peer_entries(d, p):
    """A peer-resolved constraint list as (level, pre, fol, latency, window, sibling) entries."""
    ren = {"PREpb": "PRE", "PREab": "PREA", "REFab": "REF", "REFpb": "REFPB"}
    lv = [x.lower() for x in p.standard.levels]
    theirs = []
    for c in d["timing_constraints"]:
        for a in c["preceding"]:
            for b in c["following"]:
                a2, b2 = ren.get(a, a), ren.get(b, b)
                if a2 in CMD_NAMES and b2 in CMD_NAMES:
                    theirs.append((lv.index(c["level"].lower()), CMD_NAMES.index(a2), CMD_NAMES.index(b2),
                                   c["latency_ticks"], c["window"], c["sibling"]))
    return theirs


@pytest.mark.skipif(not PEER.exists(), reason="peer tables not available")
@pytest.mark.parametrize("key,name", [("v2.1/DDR4", "DDR4-2400"), ("v2.1/HBM2", "HBM2-2000"), ("v2.1/HBM3", "HBM3-6400")])
def test_tables_equal_the_peer_resolved_tables(key, name):
    d = json.loads(PEER.read_text())[key]
    p = load_preset(name)
    assert effective_table(p.tables.entries) == effective_table(_peer_entries(d, p))
    assert p.tables.read_latency == d["read_latency_ticks"]


@pytest.mark.parametrize("name", ["GDDR6-7000", "GDDR6-7000-1350mV"])
def test_gddr6_tables_equal_the_peer_resolved_tables(name):
    """The GDDR6 presets against Ramulator 2.1's resolved GDDR6_8Gb_x16 presets (stored in
    tests/data/dram): every timing, the organisation, and the constraint table entry for entry."""
    d = json.loads(PEER_GDDR6.read_text())[name]
    p = load_preset(name)
    assert d["org_preset"] == "GDDR6_8Gb_x16"
    canon = {"nRCDWD": "nRCDWR"}
    for k, v in d["timing_CK"].items():
        if k == "tCK_ps":
            assert p.tck_ps == v
        elif k != "rate":
            assert p.timing[canon.get(k, k)] == v, k
    assert d["timing_CK"]["rate"] == round(16 * 1e6 / (p.timing["nBL"] * p.tck_ps))      # 7018 Mb/s
    o = d["org"]
    assert dict(zip(p.standard.levels, p.level_sizes)) == {"Channel": 1, "BankGroup": o["bankgroup"], "Bank": o["bank"]}
    assert (p.rows, p.organisation["columns"], p.organisation["channel_width_bits"]) == (o["row"], o["column"],
                                                                                          o["channel_width"])
    assert (p.tx_bytes, p.channels, p.tick_ps) == (d["tx_bytes"], d["channels"], d["tick_ps"])
    assert set(d["command_cycles_ticks"].values()) == {1} and set(p.tables.cmd_ticks) == {1}
    assert effective_table(p.tables.entries) == effective_table(_peer_entries(d, p))
    assert p.tables.read_latency == d["read_latency_ticks"]


@pytest.mark.parametrize("name", ["DDR4-2400-x16", "DDR4-2400-x4", "DDR4-2400-16Gb", "DDR4-3200AA", "DDR4-3200AA-x16"])
@pytest.mark.parametrize("ranks", [None, 2])
def test_ddr4_organisations_equal_the_peer_resolved_tables(name, ranks):
    """The DDR4 organisation presets against Ramulator 2.1's resolved DDR4 presets (stored in
    tests/data/dram): every timing, the organisation (x16: 2 bank groups; x4 / 16 Gb: 2^17
    rows), and the constraint table entry for entry, one rank and two (the rank count changes
    the hierarchy, not the table: the rank-switch relations are sibling entries)."""
    d = json.loads(PEER_DDR4.read_text())[name]
    p = load_preset(name, ranks=ranks)
    canon = {"nRCD": "nRCDRD"}
    for k, v in d["timing_CK"].items():
        if k == "tCK_ps":
            assert p.tck_ps == v
        elif k != "rate":
            assert p.timing[canon.get(k, k)] == v, k
    o = d["org"]
    assert dict(zip(p.standard.levels, p.level_sizes)) == {"Channel": 1, "Rank": ranks or o["rank"],
                                                           "BankGroup": o["bankgroup"], "Bank": o["bank"]}
    assert (p.rows, p.organisation["columns"], p.organisation["channel_width_bits"]) == (o["row"], o["column"],
                                                                                          o["channel_width"])
    assert p.organisation["devices_per_rank"] == o["channel_width"] // o["dq"]
    assert (p.tx_bytes, p.channels, p.tick_ps) == (d["tx_bytes"], d["channels"], d["tick_ps"])
    assert effective_table(p.tables.entries) == effective_table(_peer_entries(d, p))
    assert p.tables.read_latency == d["read_latency_ticks"]


def test_rank_override():
    """``ranks`` replaces the preset's rank count where the standard has a rank level: twice the
    banks and capacity, one refresh scope per rank, the name says so; refused for HBM (pseudo-
    channels) and GDDR6 (no rank level), and unless a positive power of two."""
    one, two = load_preset("DDR4-2400"), load_preset("DDR4-2400", ranks=2)
    assert two.banks_per_channel == 2 * one.banks_per_channel and two.capacity_bytes == 2 * one.capacity_bytes
    assert two.name == "DDR4-2400 (2 ranks)" and load_preset("DDR4-2400", ranks=1).name == "DDR4-2400"
    assert two.n_ranks == 2 and one.n_ranks == 1
    for name, r, msg in (("HBM2-2000", 2, "no rank level"), ("GDDR6-7000", 2, "no rank level"),
                         ("DDR4-2400", 3, "power of two"), ("DDR4-2400", 0, "power of two")):
        with pytest.raises(ConfigError, match=msg) as e:
            load_preset(name, ranks=r)
        assert e.value.path == "ranks"


def test_trc_below_tras_plus_trp_only_where_the_preset_says_so():
    doc = yaml.safe_load((preset_dir() / "GDDR6-7000.yaml").read_text())
    assert resolve(doc).timing["nRC"] == 89
    doc.pop("allow_trc_below_tras_trp")
    with pytest.raises(ConfigError, match="allow_trc_below_tras_trp") as e:
        resolve(doc)
    assert e.value.path == "timing.tRC"
    doc["allow_trc_below_tras_trp"] = "yes"
    with pytest.raises(ConfigError, match="true or false"):
        resolve(doc)


def test_trc_below_tras_plus_trp_is_refused():
    doc = yaml.safe_load((preset_dir() / "DDR4-2400.yaml").read_text())
    doc["timing"]["tRC"] = 40
    with pytest.raises(ConfigError, match="tRC"):
        resolve(doc)


def test_unknown_preset_and_unknown_timing():
    with pytest.raises(ConfigError, match="unknown DRAM preset"):
        load_preset("HBM2-2001")
    doc = yaml.safe_load((preset_dir() / "DDR4-2400.yaml").read_text())
    doc["timing"]["tRCX"] = 3
    with pytest.raises(ConfigError, match="tRCX"):
        resolve(doc)


def test_resolved_timing_is_the_public_view():
    from archsim.mem.dram.presets import load_preset, resolved_timing
    r = resolved_timing("HBM2-2000")
    p = load_preset("HBM2-2000")
    assert {k: r[k] for k in p.timing} == p.timing
    assert r["levels"] == {"PseudoChannel": 2, "BankGroup": 4, "Bank": 4}
    assert r["banks_per_channel"] == 2 * 4 * 4 and r["tick_ps"] == 1000.0
    r["nRP"] = -1                                   # a copy: the cached preset is untouched
    assert load_preset("HBM2-2000").timing["nRP"] != -1
    assert resolved_timing("HBM2-2000", {"tRC": 50})["nRC"] == 50


def test_zero_timing_is_refused():
    doc = yaml.safe_load((preset_dir() / "DDR4-2400.yaml").read_text())
    doc["timing"]["CL"] = 0
    with pytest.raises(ConfigError) as e:
        resolve(doc)
    assert e.value.path == "timing.CL"


def test_preset_file_not_text_or_duplicate_key(tmp_path):
    from archsim.errors import InputFileError
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\x7fELF\x00\x01" + bytes(range(128, 256)))
    with pytest.raises(InputFileError, match="not a text file"):
        load_preset(p)
    d = tmp_path / "dup.yaml"
    text = (preset_dir() / "DDR4-2400.yaml").read_text()
    d.write_text(text.replace("timing:\n", "timing:\n  tRP: 3\n", 1))
    with pytest.raises(ConfigError, match="duplicate key 'tRP'"):
        load_preset(d)


def test_ddr5_write_spacing_turnarounds_and_precharge_spacing():
    """JESD79-5 relations on a DDR5-4800 (34-34-34 bin, CWL 32, BL16 = 8 CK, tCS 2, tPPD 2):
    two writes to one bank group wait tCCD_L_WR = 48 CK (20 ns; the second write waits for the
    first's internal read-modify-write), to different groups tCCD_S_WR = 8; read -> write in a
    rank CL + BL + 2 + 2 - CWL = 14 (read and write preambles); write -> read in another rank
    CWL + BL + tCS - CL = 8; PRE -> PRE tPPD = 2. Two-tick commands (ACT, RD, WR) keep the rank
    level relations; DDR4 keeps tCCD for writes and its own turnarounds."""
    doc = yaml.safe_load((preset_dir() / "DDR5-4800.yaml").read_text())
    doc["timing"].update(CL=34, CWL=32, tRCD=34, tRP=34, tRC=111, tCCD_S_WR=8, tCCD_L_WR=48)
    p = resolve(doc)
    t = effective_table(p.tables.entries)
    lv = [x.lower() for x in p.standard.levels]
    rank, bg = lv.index("rank"), lv.index("bankgroup")
    c = CMD_NAMES.index
    assert t[(bg, c("WR"), c("WR"), 1, False)] == 48
    assert t[(rank, c("WR"), c("WR"), 1, False)] == 8
    assert t[(rank, c("RD"), c("WR"), 1, False)] == 14
    assert t[(rank, c("WR"), c("RD"), 1, True)] == 8
    assert t[(rank, c("PRE"), c("PRE"), 1, False)] == 2
    d4 = load_preset("DDR4-2400")
    t4 = effective_table(d4.tables.entries)
    tm = d4.timing
    assert t4[(bg, c("WR"), c("WR"), 1, False)] == tm["nCCDL"]
    assert t4[(rank, c("RD"), c("WR"), 1, False)] == tm["nCL"] + tm["nBL"] + 2 - tm["nCWL"]
    # the shipped preset carries tCCD_L_WR = max(16 nCK, 20 ns) at 4800 MT/s
    assert load_preset("DDR5-4800").timing["nCCDLWR"] == 48
