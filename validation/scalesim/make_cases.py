"""Regenerate the reference tables (cases_extra / _llm / _user / _user_llm.csv) by running
SCALE-Sim (PyPI ``scalesim`` 3.0.0).

Needs an environment with ``scalesim`` and ``numpy<2.4`` (not a project
dependency), e.g.::

    python -m venv .venv-scalesim
    .venv-scalesim/bin/pip install "numpy<2.4" scalesim==3.0.0
    .venv-scalesim/bin/python validation/scalesim/make_cases.py --n 60 --seed 7
    .venv-scalesim/bin/python validation/scalesim/make_cases.py --profile llm --n 45 --seed 2027
    .venv-scalesim/bin/python validation/scalesim/make_cases.py --profile user --n 60 --seed 11
    .venv-scalesim/bin/python validation/scalesim/make_cases.py --profile user_llm --n 60 --seed 5

Random array shapes (square and non-square), random GEMMs, all three
dataflows, CALC mode and bandwidth-limited USER runs.  Each SCALE-Sim run
writes COMPUTE_REPORT.csv, DETAILED_ACCESS_REPORT.csv and BANDWIDTH_REPORT.csv
into a scratch directory; every column is copied into the CSV, one row per GEMM.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import os
import random
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

CFG_TEMPLATE = """[general]
run_name = case
[architecture_presets]
ArrayHeight: {R}
ArrayWidth: {C}
IfmapSramSzkB: {ik}
FilterSramSzkB: {fk}
OfmapSramSzkB: {ok}
IfmapOffset: 0
FilterOffset: 10000000
OfmapOffset: 20000000
Bandwidth : {bw}
Dataflow : {df}
ReadRequestBuffer: 32
WriteRequestBuffer: 32
[layout]
IfmapCustomLayout: False
IfmapSRAMBankBandwidth: {ibw}
IfmapSRAMBankNum: 1
IfmapSRAMBankPort: 2
FilterCustomLayout: False
FilterSRAMBankBandwidth: {fbw}
FilterSRAMBankNum: 1
FilterSRAMBankPort: 2
[sparsity]
SparsitySupport : false
SparseRep : ellpack_block
OptimizedMapping : false
BlockSize : 8
RandomNumberGeneratorSeed : 40
[run_presets]
InterfaceBandwidth: {mode}
UseRamulatorTrace: False
"""

FIELDS = ["case", "layer", "M", "N", "K", "array_rows", "array_cols", "dataflow",
          "ifmap_sram_kb", "filter_sram_kb", "ofmap_sram_kb", "bw_mode", "bandwidth",
          "total_cycles", "stall_cycles", "overall_util_pct", "mapping_eff_pct",
          "compute_util_pct", "sram_ifmap_reads", "sram_filter_reads", "sram_ofmap_writes",
          "dram_ifmap_reads", "dram_filter_reads", "dram_ofmap_writes"]
#: SCALE-Sim's further report columns (COMPUTE_REPORT, DETAILED_ACCESS_REPORT, BANDWIDTH_REPORT).
EXTRA_FIELDS = {
    "total_cycles_incl_prefetch": "Total Cycles (incl. prefetch)",
    **{f"{mem}_{op}_{edge}": f"{mem.upper()} {name} {edge.title()} Cycle"
       for mem in ("sram", "dram") for op, name in (("ifmap", "IFMAP"), ("filter", "Filter"),
                                                    ("ofmap", "OFMAP"))
       for edge in ("start", "stop")},
    **{f"avg_{op}_{mem}_bw": f"Avg {op.upper()} {mem.upper()} BW"
       for mem in ("sram", "dram") for op in ("ifmap", "filter", "ofmap")},
}
FIELDS += list(EXTRA_FIELDS)
#: cases_user.csv also records the IFMAP / FILTER fill bandwidths (the SRAM bank bandwidths).
FIELDS_USER = FIELDS[:13] + ["ifmap_bank_bw", "filter_bank_bw"] + FIELDS[13:]


def write_inputs(d, R, C, df, gemms, mode="CALC", bw=10, ik=512, fk=512, ok=256, ibw=None, fbw=None):
    cfg = os.path.join(d, "case.cfg")
    topo = os.path.join(d, "topo.csv")
    with open(cfg, "w") as fh:
        fh.write(CFG_TEMPLATE.format(R=R, C=C, df=df, mode=mode, bw=bw, ik=ik, fk=fk, ok=ok,
                                    ibw=ibw or bw, fbw=fbw or bw))
    with open(topo, "w") as fh:
        fh.write("Layer,M,N,K,\n")
        for name, M, N, K in gemms:
            fh.write(f"{name},{M},{N},{K},\n")
    return cfg, topo


def read_reports(run_dir):
    """Parse SCALE-Sim's COMPUTE_REPORT.csv, DETAILED_ACCESS_REPORT.csv and BANDWIDTH_REPORT.csv
    by column name; one dict per layer (the bandwidth columns merged into the second)."""
    def table(name):
        with open(os.path.join(run_dir, name)) as fh:
            rows = [[c.strip() for c in r] for r in csv.reader(fh)]
        head = rows[0]
        return [dict(zip(head, r)) for r in rows[1:] if any(r)]
    access = table("DETAILED_ACCESS_REPORT.csv")
    for row, bw in zip(access, table("BANDWIDTH_REPORT.csv")):
        row.update(bw)
    return table("COMPUTE_REPORT.csv"), access


def run_scalesim(cfg, topo, out_dir):
    from scalesim.scale_sim import scalesim  # imported only where installed
    with contextlib.redirect_stdout(io.StringIO()):
        s = scalesim(save_disk_space=True, verbose=False, config=cfg, topology=topo,
                     layout=os.path.join(HERE, "layout_dummy.csv"), input_type_gemm=True)
        s.run_scale(top_path=out_dir)
    sub = [os.path.join(out_dir, x) for x in os.listdir(out_dir)]
    return read_reports(sub[0])


def _gemms(prefix, case, n, draw_m, draw_n, draw_k):
    """``n`` GEMMs named ``<prefix><case>_<j>``, each drawn M, then N, then K (the order the
    stored tables' random streams were drawn in)."""
    return [(f"{prefix}{case}_{j}", draw_m(), draw_n(), draw_k()) for j in range(n)]


def _small_case(rng, case):
    R = rng.choice([2, 3, 4, 5, 7, 8, 12, 16, 20, 24, 32, 48, 64])
    C = rng.choice([2, 3, 4, 6, 8, 9, 12, 16, 17, 32, 40, 64])
    df = ("os", "ws", "is")[case % 3]
    user = case % 5 == 4
    mode, bw = ("USER", rng.choice([1, 2, 5, 20, 64])) if user else ("CALC", 10)
    ik, fk = rng.choice([(512, 512), (64, 64), (8, 16), (2, 4)])
    ok = rng.choice([256, 64, 4, 1])
    gemms = _gemms("g", case, 3, lambda: rng.choice([1, 2, rng.randint(1, 40), rng.randint(1, 200)]),
                   lambda: rng.choice([rng.randint(1, 40), rng.randint(1, 300)]),
                   lambda: rng.choice([rng.randint(1, 40), rng.randint(1, 300)]))
    return R, C, df, mode, bw, ik, fk, ok, gemms


def _llm_case(rng, case):
    R = rng.choice([8, 16, 32, 64, 128, 12, 24, 48])
    C = rng.choice([8, 16, 32, 64, 128, 20, 40])
    df = ("os", "ws", "is")[case % 3]
    ik, fk = rng.choice([(1024, 1024), (256, 256), (128, 64), (6144, 6144), (32, 64)])
    ok = rng.choice([256, 1024, 64, 16])
    gemms = _gemms("h", case, 2, lambda: rng.choice([1, 4, 16, 64, 128, 200]),
                   lambda: rng.choice([64, 256, 768, 512, 1000]), lambda: rng.choice([64, 256, 768, 512, 300]))
    return R, C, df, "CALC", 10, ik, fk, ok, gemms


def _user_case(rng, case):
    """Bandwidth-limited USER runs: fill and drain rates set apart, SRAMs from 1 kB."""
    R = rng.choice([2, 4, 5, 8, 12, 16, 24, 32, 64])
    C = rng.choice([2, 3, 4, 8, 9, 16, 20, 32, 64])
    df = ("os", "ws", "is")[case % 3]
    bw = rng.choice([1, 2, 4, 8, 16, 32, 64])
    ibw = rng.choice([1, 2, 3, 8, 10, 16, 32, 64])
    fbw = rng.choice([1, 2, 4, 5, 10, 16, 32, 64])
    ik = rng.choice([1, 2, 8, 32, 64, 256])
    fk = rng.choice([1, 4, 16, 32, 64, 256])
    ok = rng.choice([1, 4, 16, 64, 256])
    gemms = _gemms("u", case, 3, lambda: rng.choice([1, 2, rng.randint(1, 64), rng.randint(1, 160)]),
                   lambda: rng.choice([rng.randint(1, 64), rng.randint(1, 256)]),
                   lambda: rng.choice([rng.randint(1, 64), rng.randint(1, 256)]))
    return R, C, df, "USER", bw, ik, fk, ok, gemms, ibw, fbw


def _user_llm_case(rng, case):
    """USER runs of LLM-sized GEMMs on larger arrays and SRAMs."""
    R = rng.choice([16, 32, 64, 128, 24])
    C = rng.choice([16, 32, 64, 128, 40])
    df = ("os", "ws", "is")[case % 3]
    bw = rng.choice([8, 16, 32, 64, 128])
    ibw = rng.choice([4, 8, 16, 32, 64])
    fbw = rng.choice([4, 8, 16, 32, 64, 128])
    ik, fk = rng.choice([(32, 32), (64, 128), (256, 256), (1024, 512)])
    ok = rng.choice([16, 64, 256])
    gemms = _gemms("v", case, 2, lambda: rng.choice([1, 8, 32, 64, 128]),
                   lambda: rng.choice([64, 256, 512, 768]), lambda: rng.choice([64, 256, 512, 768]))
    return R, C, df, "USER", bw, ik, fk, ok, gemms, ibw, fbw


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=60, help="number of SCALE-Sim runs")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--profile", choices=("small", "llm", "user", "user_llm"), default="small",
                    help="small: arrays of 2-64 PEs a side, GEMMs up to 300, CALC and USER runs "
                         "(cases_extra.csv); llm: arrays of 8-128, LLM-sized GEMMs (up to "
                         "200 x 1000 x 768), SRAMs of 32 kB-6 MB, CALC (cases_llm.csv); user: "
                         "bandwidth-limited USER runs with their own fill rates, SRAMs from 1 kB "
                         "(cases_user.csv); user_llm: USER runs of LLM-sized GEMMs on arrays of "
                         "16-128, SRAMs of 32 kB-1 MB (cases_user_llm.csv)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.out is None:
        args.out = os.path.join(HERE, {"small": "cases_extra.csv", "llm": "cases_llm.csv",
                                       "user": "cases_user.csv",
                                       "user_llm": "cases_user_llm.csv"}[args.profile])
    rng = random.Random(args.seed)
    rows = []
    for case in range(args.n):
        ibw = fbw = None
        if args.profile == "llm":
            R, C, df, mode, bw, ik, fk, ok, gemms = _llm_case(rng, case)
        elif args.profile == "user":
            R, C, df, mode, bw, ik, fk, ok, gemms, ibw, fbw = _user_case(rng, case)
        elif args.profile == "user_llm":
            R, C, df, mode, bw, ik, fk, ok, gemms, ibw, fbw = _user_llm_case(rng, case)
        else:
            R, C, df, mode, bw, ik, fk, ok, gemms = _small_case(rng, case)
        with tempfile.TemporaryDirectory() as d:
            cfg, topo = write_inputs(d, R, C, df, gemms, mode, bw, ik, fk, ok, ibw, fbw)
            comp, acc = run_scalesim(cfg, topo, os.path.join(d, "out"))
        for (name, M, N, K), c, a in zip(gemms, comp, acc):
            rows.append({
                "case": case, "layer": name, "M": M, "N": N, "K": K,
                "array_rows": R, "array_cols": C, "dataflow": df,
                "ifmap_sram_kb": ik, "filter_sram_kb": fk, "ofmap_sram_kb": ok,
                "bw_mode": mode, "bandwidth": bw,
                **({"ifmap_bank_bw": ibw, "filter_bank_bw": fbw} if args.profile.startswith("user") else {}),
                "total_cycles": c["Total Cycles"], "stall_cycles": c["Stall Cycles"],
                "overall_util_pct": c["Overall Util %"],
                "mapping_eff_pct": c["Mapping Efficiency %"],
                "compute_util_pct": c["Compute Util %"],
                "sram_ifmap_reads": a["SRAM IFMAP Reads"],
                "sram_filter_reads": a["SRAM Filter Reads"],
                "sram_ofmap_writes": a["SRAM OFMAP Writes"],
                "dram_ifmap_reads": a["DRAM IFMAP Reads"],
                "dram_filter_reads": a["DRAM Filter Reads"],
                "dram_ofmap_writes": a["DRAM OFMAP Writes"],
                **{key: {**c, **a}[col] for key, col in EXTRA_FIELDS.items()},
            })
        print(f"case {case}: {df} {R}x{C} {mode} done", flush=True)
    with open(args.out, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=FIELDS_USER if args.profile.startswith("user") else FIELDS)
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} rows to {args.out}")


if __name__ == "__main__":
    main()
