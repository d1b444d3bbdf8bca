"""Time float32 matrix products through NumPy's BLAS, for bench/gemm_compare.sh.

Prints one line per shape: "MxKxN GFLOPS", the best of several timed runs,
with the same shape names as Go's BenchmarkGemm. The thread count comes
from the environment (OPENBLAS_NUM_THREADS etc.), set by the caller.
Shapes given as arguments ("1024x1024x1024") replace the default list.
"""
import sys
import time

import numpy as np

SHAPES = [(256, 256, 256), (1024, 1024, 1024), (1040, 1040, 1040),
          (1, 512, 49152), (4, 512, 49152), (16, 512, 49152), (4096, 512, 512)]


def main():
    rng = np.random.default_rng(1)
    shapes = [tuple(int(d) for d in a.split("x")) for a in sys.argv[1:]] or SHAPES
    for m, k, n in shapes:
        a = rng.standard_normal((m, k), dtype=np.float32)
        b = rng.standard_normal((k, n), dtype=np.float32)
        c = np.empty((m, n), dtype=np.float32)
        np.matmul(a, b, out=c)
        flops = 2.0 * m * n * k
        best = 0.0
        for _ in range(5):
            reps, t0 = 0, time.perf_counter()
            while True:
                np.matmul(a, b, out=c)
                reps += 1
                dt = time.perf_counter() - t0
                if dt > 0.25:
                    break
            best = max(best, flops * reps / dt / 1e9)
        print(f"{m}x{k}x{n} {best:.1f}")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
