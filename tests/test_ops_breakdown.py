"""Per-op breakdown: every lowerer attributes its instructions to workload ops, and the time an op
adds to its layer is credited from the previous op's end."""
import json

import numpy as np
import pytest
from click.testing import CliRunner

from archsim.api import simulate
from archsim.cli import main
from archsim.isa import Op, Program, ProgramBuilder
from archsim.report.ops import op_breakdown


class _Wl:
    def __init__(self, macs):
        self._ops = [type("O", (), {"name": n, "macs": m})() for n, m in macs.items()]

    def ops(self):
        return self._ops


def test_added_cycles_by_hand():
    """Three ops on one layer: a [0, 10) on the compute unit, b a load [5, 12) then compute
    [12, 30), c after an idle gap [40, 50). a adds 10, b 30 - 10 = 20, c 50 - 40 = 10; the gap
    is nobody's: 40 of the 50 cycles are credited."""
    pb = ProgramBuilder(["dma_rd", "pe"])
    L = pb.layer("block")
    pb.tag("block.a")
    pb.add(Op.GEMM, 1, L)
    pb.tag("block.b")
    ld = pb.add(Op.LOAD, 0, L, nbytes=4096)
    pb.add(Op.GEMM, 1, L, deps=ld)
    pb.tag("block.c", members=["block.c1", "block.c2"])
    pb.add(Op.VECTOR, 1, L)
    prog = pb.build()
    start = np.array([0, 5, 12, 40])
    finish = np.array([10, 12, 30, 50])
    dur = finish - start
    rows = op_breakdown(prog, _Wl({"block.a": 100, "block.b": 7, "block.c1": 1, "block.c2": 2}), dur, start, finish)
    got = {r["name"]: r for r in rows}
    assert [r["name"] for r in rows] == ["block.a", "block.b", "block.c"]
    assert [got[n]["added_cycles"] for n in ("block.a", "block.b", "block.c")] == [10, 20, 10]
    assert got["block.b"]["span_cycles"] == 25 and got["block.b"]["busy_cycles"] == 18     # compute only
    assert got["block.b"]["offchip_bytes"] == 4096 and got["block.a"]["offchip_bytes"] == 0
    assert got["block.c"]["macs"] == 3 and got["block.c"]["ops"] == ["block.c1", "block.c2"]
    assert got["block.c"]["start"] == 40 and got["block.c"]["end"] == 50


def test_tags_survive_save_and_load(tmp_path):
    pb = ProgramBuilder(["pe"])
    L = pb.layer("l")
    pb.add(Op.GEMM, 0, L)                  # before any tag: untagged
    pb.tag("l.x")
    pb.add(Op.GEMM, 0, L, m=np.arange(3))
    prog = pb.build()
    assert prog.op_tag.tolist() == [-1, 0, 0, 0] and prog.op_names == ["l.x"]
    prog.save(tmp_path / "p.npz")
    back = Program.load(tmp_path / "p.npz")
    assert back.op_tag.tolist() == [-1, 0, 0, 0] and back.op_names == ["l.x"]


CASES = [
    ("systolic_128x128", "llama2-7b", dict(phase="decode", batch=2, kv_len=256)),
    ("tc_dense", "gpt2", dict(phase="prefill", batch=1, seq_len=64)),
    ("trancim", "bert-base", dict(phase="prefill", batch=1, seq_len=128)),
    ("hbm_pim", "gpt2", dict(phase="decode", batch=1, kv_len=128)),
    ("a100", "llama2-7b", dict(phase="prefill", batch=1, seq_len=256)),
    ("attacc_dgx", "gpt3-175b", dict(phase="decode", batch=16, kv_len=1024)),
]


@pytest.mark.parametrize("arch,wl,kw", CASES, ids=[c[0] for c in CASES])
def test_every_instruction_belongs_to_an_op(arch, wl, kw):
    r = simulate(arch, wl, **kw)
    p = r.program
    assert len(p.op_tag) == len(p) and (p.op_tag >= 0).all()
    ops = r.extra["ops"]
    assert ops and all(o["name"] != "(untagged)" for o in ops)
    names = {op.name for op in r.workload.ops()}
    covered = {m for o in ops for m in o["ops"]}
    # every workload op the lowerer emitted work for is named by some tag
    assert covered <= names
    for layer in {o["layer"] for o in ops}:
        rows = [o for o in ops if o["layer"] == layer]
        span = max(o["end"] for o in rows)
        assert 0 < sum(o["added_cycles"] for o in rows) <= span
        assert all(o["start"] >= 0 and o["end"] - o["start"] == o["span_cycles"] for o in rows)


def test_one_gemm_adds_its_whole_layer():
    r = simulate("systolic_128x128", {"kind": "gemm", "M": 256, "N": 512, "K": 384})
    (row,) = r.extra["ops"]
    assert row["added_cycles"] == row["span_cycles"] == r.cycles
    assert row["macs"] == 256 * 512 * 384


def test_fused_attention_is_one_row_with_its_ops():
    r = simulate("a100", "llama2-7b", phase="decode", batch=4, kv_len=512)
    att = [o for o in r.extra["ops"] if o["name"] == "block.attention"]
    assert len(att) == 1
    assert set(att[0]["ops"]) == {"block.qk", "block.softmax", "block.sv"}
    qk = next(op for op in r.workload.ops() if op.name == "block.qk")
    sv = next(op for op in r.workload.ops() if op.name == "block.sv")
    assert att[0]["macs"] == qk.macs + sv.macs


def test_cli_ops_table_and_trace_names(tmp_path):
    tr = tmp_path / "t.json"
    res = CliRunner().invoke(main, ["run", "systolic_128x128", "gpt2", "--phase", "decode", "--kv-len", "64",
                                    "--ops", "--trace", str(tr)])
    assert res.exit_code == 0, res.output
    assert "per op: block" in res.output and "block.qkv" in res.output
    names = {e["name"] for e in json.loads(tr.read_text())["traceEvents"] if e.get("ph") == "X"}
    assert any(n.startswith("block.qkv ") for n in names)


def test_cli_ops_csv_rows_add_up(tmp_path):
    out = tmp_path / "ops.csv"
    res = CliRunner().invoke(main, ["run", "systolic_128x128", "gemm", "--ops", "--format", "csv", "--out", str(out)])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("layer,name,added_cycles") and len(lines) == 2
    r = simulate("systolic_128x128", "gemm")
    assert lines[1].split(",")[:3] == [r.layers[0].name, "gemm", str(r.cycles)]
