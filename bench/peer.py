"""The PyTorch peer of bench_matmul and bench_elementwise: the same figures, as JSON lines.

Run with Debian's python3-torch (/usr/bin/python3). Exits 0 with a note when torch is missing.
Takes the same flags as the two binaries: [--sizes 256,1024,2048] [--numel 16777216] [--threads 2].
"""
import argparse
import ctypes
import json
import os
import sys
import time


def steady_malloc():
    """glibc's malloc hands freed blocks back to the system below thresholds that it raises only as larger blocks are
    freed, so a fresh process running one conv shape of a few MB maps and faults in its buffers on every call
    (PyTorch's 1x1 64 -> 64 at 56 x 56, alone in a process: forward+backward 11-40 GFLOP/s, 180-340 after a larger
    shape or with these thresholds), where a long run has raised them. Set them as such a run has them (32 MB:
    glibc's largest dynamic mmap threshold)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameters (malloc.h)
    libc.mallopt(m_mmap_threshold, 32 << 20)
    libc.mallopt(m_trim_threshold, 64 << 20)


steady_malloc()

try:
    import torch
except ImportError:
    print("peer.py: torch is not installed (apt-get install python3-torch); no peer figures", file=sys.stderr)
    sys.exit(0)


def median_seconds(f, min_reps=5, min_seconds=1.0):
    f()
    f()
    times = []
    while len(times) < min_reps or sum(times) < min_seconds:
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
        if len(times) >= 200:
            break
    times.sort()
    return times[len(times) // 2]


def peer_isa():
    """The widest vector ISA PyTorch's kernels may use here: ONEDNN_MAX_CPU_ISA's limit (run.sh sets AVX2 for the
    comparison with tinyvid's AVX2 kernels, with ATEN_CPU_CAPABILITY=avx2), else the CPU's best."""
    limit = os.environ.get("ONEDNN_MAX_CPU_ISA", "").lower()
    if limit.startswith("avx2"):
        return "avx2"
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line.split() for line in f if line.startswith("flags")), [])
    except OSError:
        flags = []
    return "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "generic"


def with_variant(row, variant):
    """row with "variant": variant added when one is given (a second run under other settings)."""
    if variant:
        row["variant"] = variant
    return row


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="256,1024,2048")
    ap.add_argument("--numel", type=int, default=16777216)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    threads = args.threads
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    for n in map(int, args.sizes.split(",")):
        a, b = torch.randn(n, n), torch.randn(n, n)
        s = median_seconds(lambda: a @ b)
        print(json.dumps({"bench": "matmul", "impl": "pytorch", "n": n, "threads": threads,
                          "torch": torch.__version__, "seconds": round(s, 6), "gflops": round(2 * n**3 / s / 1e9, 1)}))
    n = args.numel
    a, b = torch.randn(n), torch.randn(n)
    side = 4096
    m = torch.randn(side, side)
    cases = [
        ("add", n, 3 * n * 4, lambda: a + b),
        ("relu", n, 2 * n * 4, lambda: torch.relu(a)),
        ("exp", n, 2 * n * 4, lambda: torch.exp(a)),
        ("tanh", n, 2 * n * 4, lambda: torch.tanh(a)),
        ("sum", n, n * 4, lambda: a.sum()),
        ("transpose_copy", side * side, 2 * side * side * 4, lambda: m.t().contiguous()),
    ]
    for op, numel, nbytes, f in cases:
        s = median_seconds(f)
        print(json.dumps({"bench": "elementwise", "impl": "pytorch", "op": op, "numel": numel, "threads": threads,
                          "seconds": round(s, 6), "gbps": round(nbytes / s / 1e9, 2)}))


if __name__ == "__main__":
    main()
