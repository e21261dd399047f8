"""A checkpoint in the layout of the TDN authors' code (tests/convert/fixtures/tdn_authors_r50.pth, made by
tools/fixtures/make_tdn_convert_fixture.py: their module names, width 8, 4 segments, 5 classes) converted by
tools/convert_checkpoint.py and run by `tinyvid forward --model tdn_r50` gives that model's class scores
(tdn_authors_r50_expected.npz) to 1e-5 of the largest.
Usage: python3 test_authors_tdn_forward.py PATH/TO/tinyvid  (numpy, no torch)."""
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, HERE)
import convert_checkpoint  # noqa: E402
from test_authors_forward import read_safetensors  # noqa: E402

SEGMENTS, SEGMENT_FRAMES, SIZE, CLASSES, WIDTH = 4, 5, 64, 5, 8  # as make_tdn_convert_fixture.py
NAME = "tdn_authors_r50"


def main():
    tinyvid = sys.argv[1]
    frames = 2 * SEGMENTS * SEGMENT_FRAMES  # 2 clips: 40 frames, a segment's 5 adjacent
    n = frames * 3 * SIZE * SIZE
    x = np.sin(0.1 * np.arange(n, dtype=np.float64) + 0.3).reshape(frames, 3, SIZE, SIZE).astype(np.float32)
    expected = np.load(os.path.join(HERE, "fixtures", NAME + "_expected.npz"))["output"]
    with tempfile.TemporaryDirectory() as tmp:
        weights, inp, out = (os.path.join(tmp, f) for f in ("w.safetensors", "x.safetensors", "y.safetensors"))
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_checkpoint.py"),
                        os.path.join(HERE, "fixtures", NAME + ".pth"), weights, "--strict"], check=True)
        convert_checkpoint.write_safetensors(inp, {"input": x.shape}, lambda name: x, {})
        subprocess.run([tinyvid, "forward", "--model", "tdn_r50", "--weights", weights, "--input", inp, "--output", out,
                        "--num-classes", str(CLASSES), "--frames", str(SEGMENTS * SEGMENT_FRAMES),
                        "--set", "width=%d" % WIDTH], check=True)
        y = read_safetensors(out)["output"]
    err = np.abs(y - expected).max() / np.abs(expected).max()
    print("tinyvid vs the TDN authors' model: max |difference| / max |score| = %.2e" % err)
    if y.shape != expected.shape or not err < 1e-5:
        print("FAIL: scores differ\n tinyvid %s\n authors %s" % (y, expected))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
