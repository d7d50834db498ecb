"""Benchmark: decode attention of a GPT-3-size model on DRAM-bank PIM (batch 64, 2048 tokens,
96 heads of 128, 96 layers), a 4096 x 4096 HBM-PIM GEMV and an 8192 x 8192 AiM GEMV at a
request buffer of 32 and of 1024 entries; reports wall time warm and PIM commands timed per
second."""
import time

from archsim.uarch.dram_pim import attention_cycles, gemv_cycles


def main():
    attention_cycles("attacc_pim", 1, [256], 16, 128)          # JIT warm-up
    for stacks in (1, 5, 40):
        t = time.perf_counter()
        r = attention_cycles("attacc_pim", 64, 2048, 96, 128, layers=96, overrides=[f"pim.stacks={stacks}"])
        dt = time.perf_counter() - t
        print(f"attention GPT-3 B=64 L=2048 x96 layers, {stacks:2d} stack(s): {r.cycles:>12,d} cycles "
              f"({r.seconds * 1e3:.2f} ms simulated) in {dt:.2f} s wall")
    gemv_cycles("hbm_pim", 512, 512)
    t = time.perf_counter()
    r = gemv_cycles("hbm_pim", 4096, 4096)
    print(f"HBM-PIM GEMV 4096x4096: {r.cycles:,d} cycles in {time.perf_counter() - t:.2f} s wall")
    gemv_cycles("aim", 512, 512)
    for window in (32, 1024):
        t = time.perf_counter()
        r = gemv_cycles("aim", 8192, 8192, overrides=[f"pim.window={window}"])
        dt = time.perf_counter() - t
        cmds = sum(v for k, v in r.counters.items()
                   if k not in ("cycles", "bank_acts", "ref_skipped", "wr_hb_dq"))
        print(f"AiM GEMV 8192x8192, window {window:4d}: {r.cycles:,d} cycles in {dt:.2f} s wall "
              f"({cmds / dt:,.0f} commands/s)")


if __name__ == "__main__":
    main()
