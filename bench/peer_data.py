"""The peer of bench_data's decode figure: PyAV (Debian's python3-av) decoding the same files in-process to
RGB at native size, one thread, keeping every frame (as tinyvid's read of all indices does). Exits 0 with a note when PyAV is missing. Usage: peer_data.py [videos dir]"""
import json
import os
import sys

try:
    import av
except ImportError:
    print("peer_data.py: python3-av is not installed; no decode peer figures", file=sys.stderr)
    sys.exit(0)
from peer import median_seconds


def decode_all(path):
    """All frames as RGB arrays, held (as bench_data's reader returns them: one clip of every frame)."""
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_count = 1
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return len(frames)


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "tests", "data", "videos")
    for name in ("demo.mp4", "test.mp4", "demo_skeleton.mp4"):
        path = os.path.join(d, name)
        n = decode_all(path)
        s = median_seconds(lambda: decode_all(path), 3, 2.0)
        print(json.dumps({"bench": "decode", "impl": "pytorch", "file": name, "frames": n, "fps": round(n / s)}))


if __name__ == "__main__":
    main()
