"""Drive the DRAM controller kernel on one channel with a hand-written request list (shared by
the timing tests of several standards)."""
import numpy as np

from archsim.mem.dram import kernel as K
from archsim.mem.dram.mapping import build_mapping
from archsim.mem.dram.sim import static_arrays

REFRESH = {"off": 0, "all_bank": 1, "per_bank": 2}


def run_channel(p, reqs, tail, refresh="off"):
    """reqs: (cycle, is_write, address) on channel 0 of preset ``p`` under RoBaRaCoCh; ``tail``
    is the address of a trailing far-away read that keeps the run going until the requests of
    interest completed. Returns (arrive, depart, counters, first command kind) per request."""
    cyc = np.array([r[0] for r in reqs] + [50_000], dtype=np.int64)
    w = np.array([r[1] for r in reqs] + [False], dtype=bool)
    a = np.array([r[2] for r in reqs] + [tail], dtype=np.int64)
    ch, bank, row, col = build_mapping(p, "RoBaRaCoCh", 1).decode(p, a)
    L, lsize, ncount, NB, bnode, haswin, hassib, rscope = static_arrays(p)
    loff = np.zeros(L, dtype=np.int64)
    for lv in range(1, L):
        loff[lv] = loff[lv - 1] + ncount[lv - 1]
    t = p.tables
    n = len(a)
    arrive = np.full(n, -1, np.int64); depart = np.full(n, -1, np.int64); first = np.full(n, -1, np.int64)
    cc = np.zeros((1, K.N_CC), np.int64)
    K.run_controller(ch, bank, row, w, a, cyc, L, lsize, ncount, loff, bnode, rscope,
                     t.c_start, t.c_fol, t.c_lat, t.c_win, t.c_sib, haswin, hassib, False, False,
                     t.read_latency, REFRESH[refresh], t.timing["nREFI"], t.timing["nREFIpb"],
                     32, 32, 0.8, 0.2, 16, False, 1, NB, arrive, depart, cc, first)
    return arrive[:-1], depart[:-1], cc[0], first[:-1]
