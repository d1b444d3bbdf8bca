"""OpenBLAS's side of bench/compare.sh's fused section: the three GEMMs an
LM head's loss and backward cannot avoid — logits = H·Wᵀ, dH = G·W and
dW = Gᵀ·H for N tokens of width H over a vocabulary of V — through NumPy
on the thread count the environment sets. Prints the best of three runs
in seconds: with posttrain's own three GEMMs beside it, how fast any
fused head on this machine could be. Needs Debian's python3-numpy and
libopenblas0; never run by CI.

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/fused_openblas.py 8192 576 49152
"""
import sys
import time

import numpy as np


def main():
    n, h, v = (int(a) for a in sys.argv[1:4])
    with open("/proc/meminfo") as f:
        avail = next((int(l.split()[1]) * 1024 for l in f if l.startswith("MemAvailable:")), 0)
    if avail and avail < 1.5 * 4 * n * v:
        print(f"fused_openblas.py: skipped: {avail / 2**30:.1f} GiB available", file=sys.stderr)
        print("-")
        return
    rng = np.random.default_rng(1)
    hid = rng.standard_normal((n, h), dtype=np.float32)
    w = rng.standard_normal((v, h), dtype=np.float32)
    z = np.empty((n, v), np.float32)
    dh = np.empty((n, h), np.float32)
    dw = np.empty((v, h), np.float32)

    def run():
        t = time.perf_counter()
        np.matmul(hid, w.T, out=z)
        np.matmul(z, w, out=dh)
        np.matmul(z.T, hid, out=dw)
        return time.perf_counter() - t

    run()
    print(f"{min(run() for _ in range(3)):.3f}")


if __name__ == "__main__":
    main()
