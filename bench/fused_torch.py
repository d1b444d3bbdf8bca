"""PyTorch eager's side of bench/compare.sh's fused section: an LM head's
linear layer, cross-entropy and backward on N tokens of width H over a
vocabulary of V, on two threads, materializing the [N, V] logits as eager
PyTorch does. Prints "seconds peak_extra_MB cpu_seconds": the time of one
call after a small warm call, the process's peak resident memory during it
above its resident memory before it (VmHWM after clearing it through
/proc/self/clear_refs, minus VmRSS), and its CPU time. Needs Debian's
python3-torch and, for its BLAS, libopenblas0; never run by CI.

    /usr/bin/python3 bench/fused_torch.py 8192 576 49152
"""
import sys
import time

import torch
import torch.nn.functional as F


def status_file(path, field):
    with open(path) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def status(field):
    return status_file("/proc/self/status", field)


def main():
    n, h, v = (int(a) for a in sys.argv[1:4])
    # Eager PyTorch holds the logits, their log-softmax and their gradient
    # at once: about three [N, V] float32 tensors (measured 2.9x at
    # V = 49,152). On a shared machine, do not push others into the OOM
    # killer: skip when that much memory is not available.
    need = 3.5 * 4 * n * v
    avail = status_file("/proc/meminfo", "MemAvailable")
    if avail and avail < need:
        print(f"fused_torch.py: skipped: needs ~{need / 2**30:.1f} GiB, "
              f"{avail / 2**30:.1f} GiB available", file=sys.stderr)
        print("- - -")
        return
    torch.set_num_threads(2)
    torch.manual_seed(1)
    hid = torch.randn(n, h).requires_grad_()
    w = (torch.randn(v, h) * (3 / h ** 0.5)).requires_grad_()
    labels = torch.randint(0, v, (n,))

    def step(rows):
        hid.grad, w.grad = None, None
        F.cross_entropy(F.linear(hid[:rows], w), labels[:rows]).backward()

    step(64)  # threads, allocator and autograd warmed on a small slice
    hid.grad, w.grad = None, None
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = status("VmRSS")
    t, c = time.perf_counter(), time.process_time()
    step(n)
    dt, dc = time.perf_counter() - t, time.process_time() - c
    peak = status("VmHWM") - before
    print(f"{dt:.3f} {peak / 2**20:.0f} {dc:.3f}")


if __name__ == "__main__":
    main()
