"""Benchmark: decode attention of a GPT-3-size model on DRAM-bank PIM (batch 64, 2048 tokens,
96 heads of 128, 96 layers) and a 4096 x 4096 HBM-PIM GEMV; reports wall time warm."""
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


if __name__ == "__main__":
    main()
