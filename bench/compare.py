"""Reads the JSON lines of tinyvid's benchmarks and the peer's on stdin, prints them and one line
per figure both measured: {"bench", "key", "tinyvid", "pytorch", "ratio"} (ratio > 1: tinyvid faster)."""
import json
import sys

KEYS = {"matmul": ("n", "gflops"), "elementwise": ("op", "gbps")}
figures = {}
for line in sys.stdin:
    line = line.strip()
    if not line.startswith("{"):
        continue
    print(line)
    r = json.loads(line)
    key_field, value_field = KEYS.get(r["bench"], (None, None))
    if key_field:
        figures.setdefault((r["bench"], f"{key_field}={r[key_field]}"), {})[r["impl"]] = r[value_field]
for (bench, key), v in figures.items():
    if "tinyvid" in v and "pytorch" in v:
        print(json.dumps({"bench": bench, "key": key, "tinyvid": v["tinyvid"], "pytorch": v["pytorch"],
                          "ratio": round(v["tinyvid"] / v["pytorch"], 3)}))
