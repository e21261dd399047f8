#!/bin/bash
# Another guest on one core: a process pinned to CPU $1 (default 1), busy 1 ms in every 5, until killed. For
# measuring how a run holds up when its threads' cores are not equally free (docs/cpu_kernels.md,
# "Shares taken over"):  bash bench/contend.sh 1 & build/bench/bench_conv --only stem_7x7s2_3_64; kill %1
exec taskset -c "${1:-1}" python3 -c '
import time
while True:
    t = time.perf_counter()
    while time.perf_counter() - t < 0.001:
        pass
    time.sleep(0.004)'
