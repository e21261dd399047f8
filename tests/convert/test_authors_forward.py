"""A checkpoint of the DNR authors' code (tests/convert/fixtures/authors_dnr_r50.pth, made by
tools/fixtures/make_authors_fixture.py) converted by tools/convert_checkpoint.py and run by
`tinyvid forward` with that code's settings (groups of 2 frames, no interlacing) gives that code's
class scores, and a NaN in the input is refused by file, shape and index.
Usage: python3 test_authors_forward.py PATH/TO/tinyvid  (numpy, no torch)."""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_checkpoint  # noqa: E402

FRAMES, SIZE, CLASSES, WIDTH = 8, 32, 7, 4  # as make_authors_fixture.py


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        assert e["dtype"] == "F32", e
        b, end = e["data_offsets"]
        out[name] = np.frombuffer(data[b:end], dtype="<f4").reshape(e["shape"])
    return out


def main():
    tinyvid = sys.argv[1]
    n = 2 * FRAMES * 3 * SIZE * SIZE
    x = np.sin(0.1 * np.arange(n, dtype=np.float64) + 0.3).reshape(2 * FRAMES, 3, SIZE, SIZE).astype(np.float32)
    expected = np.load(os.path.join(HERE, "fixtures", "authors_dnr_r50_expected.npz"))["output"]
    with tempfile.TemporaryDirectory() as tmp:
        weights, inp, out = (os.path.join(tmp, f) for f in ("w.safetensors", "x.safetensors", "y.safetensors"))
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_checkpoint.py"),
                        os.path.join(HERE, "fixtures", "authors_dnr_r50.pth"), weights, "--strict"], check=True)
        convert_checkpoint.write_safetensors(inp, {"input": x.shape}, lambda name: x, {})
        forward = [tinyvid, "forward", "--model", "tsn_r50_dnr", "--weights", weights, "--input", inp, "--output", out,
                   "--num-classes", str(CLASSES), "--frames", str(FRAMES), "--set", "ct_group_frames=2",
                   "--set", "interlace=false", "--set", f"width={WIDTH}"]
        subprocess.run(forward, check=True)
        y = read_safetensors(out)["output"]
        # A non-finite input is refused, naming the file, the shape and the first bad element.
        bad = x.copy()
        bad[9, 1, 4, 7] = np.nan
        convert_checkpoint.write_safetensors(inp, {"input": bad.shape}, lambda name: bad, {})
        r = subprocess.run(forward, capture_output=True, text=True)
        want = "x.safetensors: tensor 'input' of shape [16, 3, 32, 32]: expected finite values, got nan at index [9, 1, 4, 7]"
        if r.returncode != 2 or want not in r.stderr:
            print("FAIL: a NaN input gave exit code %d and %r, expected 2 and %r" % (r.returncode, r.stderr, want))
            return 1
    err = np.abs(y - expected).max() / np.abs(expected).max()
    print("tinyvid vs the authors' code: max |difference| / max |score| = %.2e" % err)
    if y.shape != expected.shape or not err < 1e-4:
        print("FAIL: scores differ\n tinyvid %s\n authors %s" % (y, expected))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
