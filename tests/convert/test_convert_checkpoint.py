"""Tests of tools/convert_checkpoint.py (standard library unittest + numpy; no torch):
    python3 tests/convert/test_convert_checkpoint.py
Converts each checkpoint of tests/convert/fixtures (made by tools/fixtures/make_convert_fixtures.py) and
compares every output tensor with <fixture>.npz; checks the report of unmapped keys, --strict, --list,
--keep-fc, and the one-line errors for files that are not (intact) checkpoints. The converter runs in a
subprocess in which `import torch` fails, so it is also checked never to need torch."""
import contextlib
import importlib.util
import io
import json
import os
import pickle
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import types
import unittest
import zipfile
from unittest import mock

try:
    import numpy as np
except ImportError:
    sys.exit("test_convert_checkpoint: needs numpy (Debian: python3-numpy); run it with such a python3")

sys.dont_write_bytecode = True  # importing the tool must leave no __pycache__ in tools/
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TOOL = os.path.join(ROOT, "tools", "convert_checkpoint.py")
FIXTURES = os.path.join(HERE, "fixtures")
with open(os.path.join(FIXTURES, "manifest.json")) as _f:
    MANIFEST = json.load(_f)

# Runs the converter with `import torch` made to fail.
_RUNNER = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
           "runpy.run_path(sys.argv[0], run_name='__main__')")


def run_tool(*args):
    p = subprocess.run([sys.executable, "-B", "-c", _RUNNER, TOOL] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    return p.returncode, p.stdout, p.stderr


def load_tool():
    spec = importlib.util.spec_from_file_location("convert_checkpoint", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def read_safetensors(test, path):
    """Parses a safetensors file, checking what tinyvid relies on: F32, num_batches_tracked as I64 (PyTorch's
    dtype), names sorted, data laid out in name order with no gap, header padded with spaces to 8 bytes."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    test.assertEqual(n % 8, 0, "header length not a multiple of 8")
    text = blob[8:8 + n].decode("utf-8")
    test.assertEqual(text, text.rstrip(" ") + " " * (len(text) - len(text.rstrip(" "))))
    header = json.loads(text)
    meta = header.pop("__metadata__", {})
    names = list(header)
    test.assertEqual(names, sorted(names), "names not sorted")
    data = blob[8 + n:]
    offset, tensors = 0, {}
    for name in names:
        h = header[name]
        test.assertEqual(set(h), {"dtype", "shape", "data_offsets"})
        count = name.endswith("num_batches_tracked")
        test.assertEqual(h["dtype"], "I64" if count else "F32", name)
        begin, end = h["data_offsets"]
        test.assertEqual(begin, offset, name)
        test.assertEqual(end - begin, (8 if count else 4) * int(np.prod(h["shape"], dtype=np.int64)), name)
        tensors[name] = np.frombuffer(data[begin:end], dtype="<i8" if count else "<f4").reshape(h["shape"])
        offset = end
    test.assertEqual(offset, len(data), "data longer than its tensors")
    return meta, tensors


def expected_tensors(entry):
    with np.load(os.path.join(FIXTURES, entry["expected"])) as z:
        return {k: z[k].astype(np.float32) for k in z.files}


# ------------------------------------------------------------------------------------------------
# Checkpoints written here without torch: a stand-in `torch` module only while pickling, so the
# pickle names torch's globals exactly as torch.save does.
# ------------------------------------------------------------------------------------------------

class _StorageRef:
    def __init__(self, key, array):
        self.key, self.array = key, array


@contextlib.contextmanager
def _fake_torch():
    saved = {k: sys.modules.get(k) for k in ("torch", "torch._utils")}
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in ("FloatStorage", "DoubleStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))

    def _rebuild_tensor_v2(*args):
        raise AssertionError("never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        yield torch
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


def write_checkpoint(path, obj, byteorder="little"):
    """torch.save's zip format for obj, a structure of dicts and numpy arrays (float32/float64/int64)."""
    storages = []

    class Tensor:
        def __init__(self, a):
            self.a = np.array(a, order="C")  # (ascontiguousarray would make a scalar 1-d)

        def __reduce__(self):
            ref = _StorageRef(str(len(storages)), self.a)
            storages.append(ref)
            stride, acc = [], 1
            for d in reversed(self.a.shape):
                stride.insert(0, acc)
                acc *= d
            return (sys.modules["torch._utils"]._rebuild_tensor_v2,
                    (ref, 0, tuple(self.a.shape), tuple(stride), False, {}))

    def wrap(o):
        if isinstance(o, np.ndarray):
            return Tensor(o)
        if isinstance(o, dict):
            return {k: wrap(v) for k, v in o.items()}
        return o

    with _fake_torch() as torch:
        kinds = {"f4": torch.FloatStorage, "f8": torch.DoubleStorage, "i8": torch.LongStorage}

        class Pickler(pickle.Pickler):
            def persistent_id(self, o):
                if isinstance(o, _StorageRef):
                    return ("storage", kinds[o.array.dtype.str[1:]], o.key, "cpu", o.array.size)
                return None

        buf = io.BytesIO()
        Pickler(buf, protocol=2).dump(wrap(obj))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", byteorder)
        for ref in storages:
            a = ref.array.astype(ref.array.dtype.newbyteorder("<" if byteorder == "little" else ">"))
            z.writestr("archive/data/" + ref.key, a.tobytes())
        z.writestr("archive/version", "3\n")


def tiny_dnr_stage(c=8):
    """A DNR-named state dict of one stage relay cell and the stem, with C = c."""
    r = np.random.RandomState(0)
    sd = {"backbone.conv1.weight": r.randn(4, 3, 7, 7).astype(np.float32)}
    for w in ("w_ih", "w_hh"):
        p = "backbone.layer1.lstm.%s.0.seq." % w
        sd[p + "0.weight"] = r.randn(c // 4, c).astype(np.float32)
        sd[p + "0.bias"] = r.randn(c // 4).astype(np.float32)
        sd[p + "2.weight"] = r.randn(4 * c, c // 4).astype(np.float32)
        sd[p + "2.bias"] = r.randn(4 * c).astype(np.float32)
    return sd


class FixtureConversion(unittest.TestCase):
    """Every fixture converts to exactly its expected tensors."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "out.safetensors")

    def tearDown(self):
        self.tmp.cleanup()

    def check_entry(self, name, entry, *extra):
        rc, out, err = run_tool(os.path.join(FIXTURES, entry["checkpoint"]), self.out, *extra)
        self.assertEqual(rc, 0, err)
        self.assertNotIn("Traceback", err)
        meta, tensors = read_safetensors(self, self.out)
        self.assertEqual(meta.get("source_layout"), entry["layout"])
        self.assertEqual(meta.get("source_file"), entry["checkpoint"])
        want = expected_tensors(entry)
        if "--keep-fc" not in extra:
            for k in entry["keep_fc_only"]:
                del want[k]
        self.assertEqual(sorted(tensors), sorted(want), name)
        for k, v in want.items():
            self.assertEqual(tensors[k].shape, v.shape, k)
            self.assertTrue(np.array_equal(tensors[k], v), "%s: %s differs" % (name, k))
        total = len(entry["unmapped"]) + len(entry["dropped"]) + len(want) - (
            len(entry["keep_fc_only"]) if "--keep-fc" in extra else 0)
        self.assertIn("mapped %d of %d keys" % (len(tensors), total), err)
        self.assertIn("shape check: ok", err)
        return err

    def test_each_fixture(self):
        self.assertGreaterEqual(len(MANIFEST), 6)
        for name, entry in MANIFEST.items():
            with self.subTest(fixture=name):
                err = self.check_entry(name, entry)
                self.assertIn("layout: %s (detected)" % entry["layout"], err)
                if entry["format"] == "legacy":
                    self.assertIn("legacy (torch < 1.6) format", err)
                for k in entry["dropped"]:
                    self.assertIn("  %s (" % k, err)
                if entry["unmapped"]:
                    self.assertIn("%d keys could not be mapped:" % len(entry["unmapped"]), err)
                    for k in entry["unmapped"]:
                        self.assertIn("  %s (no tinyvid counterpart)" % k, err)
                else:
                    self.assertNotIn("could not be mapped", err)

    def test_forced_layout_matches_detection(self):
        for name, entry in MANIFEST.items():
            with self.subTest(fixture=name):
                err = self.check_entry(name, entry, "--layout", entry["layout"])
                self.assertIn("layout: %s (--layout)" % entry["layout"], err)

    def test_keep_fc(self):
        entries = {n: e for n, e in MANIFEST.items() if e["keep_fc_only"]}
        self.assertTrue(entries)
        for name, entry in entries.items():
            with self.subTest(fixture=name):
                err = self.check_entry(name, entry, "--keep-fc")
                self.assertNotIn("left out on purpose", err)

    def test_formats_and_layouts_covered(self):
        self.assertEqual({e["layout"] for e in MANIFEST.values()}, {"torchvision", "mmaction2", "dnr"})
        self.assertEqual({e["format"] for e in MANIFEST.values()}, {"zip", "legacy"})

    def test_strict(self):
        for name, entry in MANIFEST.items():
            with self.subTest(fixture=name):
                if os.path.exists(self.out):
                    os.remove(self.out)
                rc, out, err = run_tool(os.path.join(FIXTURES, entry["checkpoint"]), self.out, "--strict")
                if entry["unmapped"]:
                    self.assertEqual(rc, 1, err)
                    self.assertIn("--strict", err)
                    self.assertFalse(os.path.exists(self.out), "--strict failure still wrote the output")
                else:
                    self.assertEqual(rc, 0, err)  # keys dropped on purpose do not fail --strict
                    self.assertTrue(os.path.exists(self.out))
                self.assertEqual(os.listdir(self.tmp.name), ["out.safetensors"] if rc == 0 else [])

    def test_wrong_layout_reports_every_key(self):
        entry = MANIFEST["mmaction2_tsn_r50"]
        rc, out, err = run_tool(os.path.join(FIXTURES, entry["checkpoint"]), self.out, "--layout", "torchvision")
        self.assertEqual(rc, 2)
        self.assertIn("backbone.conv1.conv.weight (no tinyvid counterpart)", err)
        self.assertTrue(err.strip().splitlines()[-1].startswith("convert_checkpoint: error: nothing to convert"))
        self.assertFalse(os.path.exists(self.out))

    def test_list(self):
        entry = MANIFEST["mmaction2_tvnames_dp_f16"]
        rc, out, err = run_tool(os.path.join(FIXTURES, entry["checkpoint"]), "--list")
        self.assertEqual(rc, 0, err)
        lines = out.strip().splitlines()
        self.assertEqual(len(lines), len(expected_tensors(entry)))
        self.assertIn("module.backbone.conv1.weight\t[2, 3, 7, 7]\tfloat16", lines)
        self.assertIn("module.backbone.bn1.num_batches_tracked\t[]\tint64", lines)
        entry = MANIFEST["dnr_r50_legacy"]
        rc, out, err = run_tool(os.path.join(FIXTURES, entry["checkpoint"]), "--list")
        self.assertEqual(rc, 0, err)
        self.assertIn("backbone.layer1.lstm.w_ih.0.seq.0.weight\t[1, 4]\tfloat32", out.splitlines())
        self.assertIn("backbone.layer4.ModuleList.0.conv2.weight\t[16, 16, 3, 3]\tbfloat16", out.splitlines())


class Errors(unittest.TestCase):
    """Files that are not intact checkpoints: one line on stderr, exit status 2, nothing written."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.dir = self.tmp.name
        self.out = os.path.join(self.dir, "out.safetensors")

    def tearDown(self):
        self.tmp.cleanup()

    def path(self, name, data=None):
        p = os.path.join(self.dir, name)
        if data is not None:
            with open(p, "wb") as f:
                f.write(data)
        return p

    def assert_error(self, src, fragment, out=None, only_line=True):
        """Exit status 2, the error in one line (the last; with only_line the only one), no traceback."""
        rc, stdout, err = run_tool(src, out or self.out)
        self.assertEqual(rc, 2, err)
        self.assertNotIn("Traceback", err)
        lines = err.strip().splitlines()
        if only_line:
            self.assertEqual(len(lines), 1, err)
        self.assertEqual(sum(line.startswith("convert_checkpoint: error: ") for line in lines), 1, err)
        self.assertTrue(lines[-1].startswith("convert_checkpoint: error: "), err)
        self.assertIn(fragment, lines[-1])
        self.assertFalse(os.path.exists(out or self.out))
        return lines[-1]

    def fixture_bytes(self, name):
        with open(os.path.join(FIXTURES, MANIFEST[name]["checkpoint"]), "rb") as f:
            return f.read()

    def test_missing_file(self):
        self.assert_error(self.path("missing.pth"), "no such file")

    def test_directory(self):
        self.assert_error(self.dir, "is a directory")

    def test_empty_file(self):
        self.assert_error(self.path("empty.pth", b""), "not a PyTorch checkpoint")

    def test_random_bytes(self):
        self.assert_error(self.path("noise.pth", np.random.RandomState(1).bytes(4096)), "not a PyTorch checkpoint")

    def test_text_file(self):
        self.assert_error(self.path("notes.pth", b"model = dict(type='TSN')\n" * 20), "not a PyTorch checkpoint")

    def test_plain_pickle(self):
        self.assert_error(self.path("plain.pkl", pickle.dumps({"a": [1, 2, 3]}, protocol=2)),
                          "not a PyTorch checkpoint")

    def test_truncated_zip(self):
        data = self.fixture_bytes("mmaction2_tsn_r50")
        self.assert_error(self.path("cut.pth", data[:len(data) // 2]), "corrupt checkpoint")

    def test_zip_with_corrupt_member(self):
        data = bytearray(self.fixture_bytes("torchvision_r18"))
        at = data.find(b"torchvision_r18/data.pkl")
        at = data.find(b"\x80\x02", at)  # the pickle's first bytes, inside a stored (uncompressed) member
        data[at:at + 64] = b"\xff" * 64
        self.assert_error(self.path("bad.pth", bytes(data)), "corrupt")

    def test_zip_with_corrupt_storage(self):
        src = self.fixture_bytes("mmaction2_tsn_r50")
        with zipfile.ZipFile(io.BytesIO(src)) as z:
            info = z.getinfo("mmaction2_tsn_r50/data/0")
        data = bytearray(src)
        name_len, extra_len = struct.unpack("<HH", src[info.header_offset + 26:info.header_offset + 30])
        start = info.header_offset + 30 + name_len + extra_len  # the member's stored bytes
        data[start:start + 8] = bytes(255 - b for b in data[start:start + 8])
        # Storages are read after the report, so the error is the last line rather than the only one.
        self.assert_error(self.path("bad_storage.pth", bytes(data)), "corrupt checkpoint (BadZipFile", only_line=False)

    def test_zip_not_a_checkpoint(self):
        p = self.path("other.zip")
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("readme.txt", "hello")
        self.assert_error(p, "not a PyTorch checkpoint")

    def test_zip_missing_storage(self):
        src = self.fixture_bytes("torchvision_r18")
        p = self.path("nostorage.pth")
        with zipfile.ZipFile(io.BytesIO(src)) as zin, zipfile.ZipFile(p, "w") as zout:
            for info in zin.infolist():
                if not info.filename.endswith("/data/0"):
                    zout.writestr(info.filename, zin.read(info.filename))
        self.assert_error(p, "missing")

    def test_truncated_legacy(self):
        data = self.fixture_bytes("dnr_r50_legacy")
        self.assert_error(self.path("cut_legacy.pth", data[:len(data) - 1000]), "ends inside the storages")
        self.assert_error(self.path("cut_legacy2.pth", data[:200]), "corrupt")

    def test_load_from_bytes_refused(self):
        data = b"\x80\x02ctorch.storage\n_load_from_bytes\nq\x00C\x03abcq\x01\x85q\x02Rq\x03."
        p = self.path("nested.pth")
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("archive/data.pkl", data)
        self.assert_error(p, "_load_from_bytes")

    def test_arbitrary_globals_never_run(self):
        marker = os.path.join(self.dir, "pwned")
        payload = ("cos\nsystem\n(S'touch %s'\ntR." % marker).encode()
        p = self.path("evil.pth")
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("archive/data.pkl", payload)
        self.assert_error(p, "no state dict found")
        self.assertFalse(os.path.exists(marker))
        # The same inside a state dict: the value is a placeholder, reported as not a tensor.
        payload = b"\x80\x02}q\x00X\x01\x00\x00\x00xq\x01cos\nsystem\nq\x02X\x04\x00\x00\x00trueq\x03\x85q\x04Rq\x05s."
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("archive/data.pkl", payload)
        self.assert_error(p, "no state dict found")

    def test_torchscript_archive(self):
        p = self.path("scripted.pt")
        with zipfile.ZipFile(p, "w") as z:
            z.writestr("scripted/data.pkl", b"\x80\x02}q\x00.")
            z.writestr("scripted/constants.pkl", b"\x80\x02)q\x00.")
        self.assert_error(p, "TorchScript")

    def test_no_state_dict(self):
        p = self.path("meta_only.pth")
        write_checkpoint(p, {"meta": {"epoch": 3}, "optimizer": {"lr": 0.1}})
        self.assert_error(p, "no state dict found")

    def test_unknown_layout(self):
        p = self.path("other_model.pth")
        write_checkpoint(p, {"encoder.weight": np.zeros((2, 2), np.float32)})
        self.assert_error(p, "use --layout", only_line=False)

    def test_unwritable_output(self):
        out = os.path.join(self.dir, "no", "such", "dir", "out.safetensors")
        self.assert_error(os.path.join(FIXTURES, MANIFEST["torchvision_r18"]["checkpoint"]), "cannot write", out=out,
                          only_line=False)
        self.assertEqual(os.listdir(self.dir), [])


class Conversion(unittest.TestCase):
    """Details checked on checkpoints written here (zip format, no torch needed)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.src = os.path.join(self.tmp.name, "in.pth")
        self.out = os.path.join(self.tmp.name, "out.safetensors")

    def tearDown(self):
        self.tmp.cleanup()

    def test_big_endian_and_dtypes(self):
        sd = {"conv1.weight": np.arange(2 * 3 * 7 * 7, dtype=np.float64).reshape(2, 3, 7, 7),
              "bn1.weight": np.ones(2, np.float32), "bn1.num_batches_tracked": np.array(123456789, np.int64)}
        write_checkpoint(self.src, {"state_dict": sd}, byteorder="big")
        rc, out, err = run_tool(self.src, self.out)
        self.assertEqual(rc, 0, err)
        self.assertIn("shape check: ok", err)
        meta, t = read_safetensors(self, self.out)
        self.assertTrue(np.array_equal(t["backbone.conv1.weight"], sd["conv1.weight"].astype(np.float32)))
        # num_batches_tracked stays int64, exact (as float32 it would be 123456792).
        self.assertEqual(t["backbone.bn1.num_batches_tracked"].shape, ())
        self.assertEqual(t["backbone.bn1.num_batches_tracked"].dtype, np.dtype("<i8"))
        self.assertEqual(int(t["backbone.bn1.num_batches_tracked"]), 123456789)

    def test_relay_shape_check(self):
        sd = tiny_dnr_stage(8)
        rc, out, err = self.convert(sd)
        self.assertEqual(rc, 0, err)
        self.assertIn("shape check: ok", err)
        sd["backbone.layer1.lstm.w_ih.0.seq.0.weight"] = np.zeros((4, 8), np.float32)  # C/2 x C, not C/4 x C
        rc, out, err = self.convert(sd)
        self.assertEqual(rc, 0, err)  # reported, converted anyway
        self.assertIn("backbone.layer1.relay.input_proj.0.weight: expected 2x8", err)
        rc, out, err = self.convert(sd, "--strict")
        self.assertEqual(rc, 1, err)
        self.assertIn("1 shape problem(s)", err)

    def test_bn_channels_check(self):
        sd = {"conv1.weight": np.zeros((4, 3, 7, 7), np.float32), "bn1.weight": np.zeros(5, np.float32),
              "bn1.bias": np.zeros(4, np.float32), "fc.weight": np.zeros((3, 4), np.float32)}
        rc, out, err = self.convert(sd, "--strict")
        self.assertEqual(rc, 1)
        self.assertIn("backbone.bn1.bias: 4 channels, but other tensors of backbone.bn1 have 5", err)
        self.assertIn("backbone.conv1.weight: 4 output channels, but backbone.bn1 has 5", err)

    def test_non_finite_values_refused(self):
        # Weights holding NaN or infinity are an error naming the tensor and where; nothing is written.
        sd = tiny_dnr_stage(8)
        sd["backbone.conv1.weight"][0, 0, 1, 2] = np.nan
        rc, out, err = self.convert(sd)
        self.assertEqual(rc, 2, err)
        last = err.strip().splitlines()[-1]
        self.assertIn("convert_checkpoint: error: %s: backbone.conv1.weight (backbone.conv1.weight) holds nan at "
                      "flat index 9 (1 non-finite of 588 values); expected finite weights, nothing written"
                      % self.src, last)
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ["in.pth"])
        # float64 beyond float32's range becomes infinity: refused the same way.
        sd = tiny_dnr_stage(8)
        sd["backbone.layer1.lstm.w_hh.0.seq.2.bias"] = np.full(32, 1e300)
        rc, out, err = self.convert(sd)
        self.assertEqual(rc, 2, err)
        self.assertIn("backbone.layer1.lstm.w_hh.0.seq.2.bias (backbone.layer1.relay.hidden_proj.2.bias) holds 1e+300 "
                      "at flat index 0 (32 non-finite of 32 values, beyond float32's range)", err)
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ["in.pth"])

    def test_count_that_is_not_whole_refused(self):
        sd = tiny_dnr_stage(8)
        sd["backbone.bn1.num_batches_tracked"] = np.array(2.5)
        rc, out, err = self.convert(sd)
        self.assertEqual(rc, 2, err)
        self.assertIn("backbone.bn1.num_batches_tracked holds 2.5; expected a whole number", err)
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ["in.pth"])

    def test_module_prefix_collision(self):
        sd = {"module.conv1.weight": np.zeros((4, 3, 7, 7), np.float32),
              "conv1.weight": np.zeros((4, 3, 7, 7), np.float32)}
        write_checkpoint(self.src, sd)
        rc, out, err = run_tool(self.src, self.out)
        self.assertEqual(rc, 2)
        self.assertIn("with and without a 'module.' prefix", err)

    def test_non_tensor_entries_reported(self):
        sd = tiny_dnr_stage(8)
        sd["backbone.layer1.lstm.note"] = "hello"
        rc, out, err = self.convert(sd, "--strict")
        self.assertEqual(rc, 1)
        self.assertIn("backbone.layer1.lstm.note (not a tensor)", err)

    def convert(self, sd, *extra):
        if os.path.exists(self.out):
            os.remove(self.out)
        write_checkpoint(self.src, {"state_dict": sd, "meta": {"epoch": 1}})
        return run_tool(self.src, self.out, *extra)


class Writing(unittest.TestCase):
    """The output file: flushed to disk before it replaces OUT, and a temporary of its own per writer."""

    @classmethod
    def setUpClass(cls):
        cls.tool = load_tool()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.out = os.path.join(self.tmp.name, "out.safetensors")

    def tearDown(self):
        self.tmp.cleanup()

    def test_flushed_before_rename_and_directory_after(self):
        events = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd):
            events.append("fsync directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
            real_fsync(fd)

        def replace(src, dst):
            events.append("rename")
            real_replace(src, dst)

        x = np.arange(6, dtype=np.float32).reshape(2, 3)
        with mock.patch("os.fsync", fsync), mock.patch("os.replace", replace):
            self.tool.write_safetensors(self.out, {"x": x.shape}, lambda name: x, {})
        self.assertEqual(events, ["fsync file", "rename", "fsync directory"])
        self.assertEqual(os.listdir(self.tmp.name), ["out.safetensors"])

    def test_two_writers_of_one_file_never_share_a_temporary(self):
        # Both writers are inside write_safetensors at once (each waits for the other in produce): with one
        # temporary name per process they would write into the same file and one rename would find it gone.
        both_writing = threading.Barrier(2, timeout=30)
        results = {}

        def write(value):
            a = np.full((1000,), value, np.float32)

            def produce(name):
                both_writing.wait()
                return a

            try:
                self.tool.write_safetensors(self.out, {"x": a.shape}, produce, {"writer": str(value)})
                results[value] = "ok"
            except Exception as e:  # reported by the assertion below
                results[value] = repr(e)

        threads = [threading.Thread(target=write, args=(v,)) for v in (1.0, 2.0)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(results, {1.0: "ok", 2.0: "ok"})
        self.assertEqual(os.listdir(self.tmp.name), ["out.safetensors"])
        meta, tensors = read_safetensors(self, self.out)
        self.assertEqual(set(np.unique(tensors["x"])), {float(meta["writer"])})  # one whole version


class KeyMapping(unittest.TestCase):
    """Name variants that the fixtures do not all carry."""

    @classmethod
    def setUpClass(cls):
        cls.tool = load_tool()

    def check(self, layout, cases):
        for src, want in cases:
            with self.subTest(key=src):
                self.assertEqual(self.tool.map_key(src, layout)[0], want)

    def test_mmaction2(self):
        self.check("mmaction2", [
            ("backbone.conv1.conv.weight", "backbone.conv1.weight"),
            ("backbone.conv1.bn.running_var", "backbone.bn1.running_var"),
            ("backbone.layer3.5.conv2.bn.num_batches_tracked", "backbone.layer3.5.bn2.num_batches_tracked"),
            ("backbone.layer4.0.downsample.conv.weight", "backbone.layer4.0.downsample.0.weight"),
            ("backbone.layer4.0.downsample.bn.bias", "backbone.layer4.0.downsample.1.bias"),
            # TSM, shift_place='blockres': TemporalShift replaces conv1.conv (MMAction2's resnet_tsm.py) ...
            ("backbone.layer1.0.conv1.conv.net.weight", "backbone.layer1.0.conv1.weight"),
            # ... and the same shift around the whole ConvModule, should a version wrap it so
            ("backbone.layer1.0.conv1.net.conv.weight", "backbone.layer1.0.conv1.weight"),
            ("backbone.layer1.0.conv1.net.bn.weight", "backbone.layer1.0.bn1.weight"),
            # shift_place='block', temporal_pool (layer2 wrapped), non-local (block wrapped)
            ("backbone.layer1.2.net.conv3.conv.weight", "backbone.layer1.2.conv3.weight"),
            ("backbone.layer2.net.1.conv2.bn.weight", "backbone.layer2.1.bn2.weight"),
            ("backbone.layer3.0.block.conv1.conv.net.weight", "backbone.layer3.0.conv1.weight"),
            ("backbone.layer3.0.non_local_block.g.conv.weight", None),
            # torchvision's names under backbone. (torchvision backbones, MMAction v1's ResNet)
            ("backbone.layer1.0.downsample.1.running_mean", "backbone.layer1.0.downsample.1.running_mean"),
            ("backbone.bn1.weight", "backbone.bn1.weight"),
            # an MMAction2 backbone saved on its own
            ("layer2.1.conv1.conv.weight", "backbone.layer2.1.conv1.weight"),
            ("cls_head.fc_cls.weight", "cls_head.fc_cls.weight"),
            ("cls_head.fc_cls.extra", None),
            ("backbone.layer1.0.conv1.bias", None),  # tinyvid's convs have no bias
            ("backbone.layer5.0.conv1.conv.weight", None),
            ("data_preprocessor.mean", None),
        ])

    def test_dnr(self):
        self.check("dnr", [
            ("backbone.layer3.lstm.w_ih.0.seq.0.weight", "backbone.layer3.relay.input_proj.0.weight"),
            ("backbone.layer3.lstm.w_hh.0.seq.2.bias", "backbone.layer3.relay.hidden_proj.2.bias"),
            ("backbone.layer2.ModuleList.3.bn2.lstm.w_ih.0.seq.2.weight",
             "backbone.layer2.3.bn2.relay.input_proj.2.weight"),
            ("backbone.layer2.ModuleList.3.bn2.lstm.w_hh.0.seq.0.bias",
             "backbone.layer2.3.bn2.relay.hidden_proj.0.bias"),
            ("backbone.layer2.ModuleList.3.bn1.running_mean", "backbone.layer2.3.bn1.running_mean"),
            ("backbone.layer2.ModuleList.0.downsample.0.weight", "backbone.layer2.0.downsample.0.weight"),
            ("backbone.layer1.lstm.w_ih.1.weight", None),  # a second LSTM layer: not in tinyvid
            ("backbone.layer1.lstm.w_ih.0.seq.1.weight", None),
            ("cls_head.fc_cls.bias", "cls_head.fc_cls.bias"),
            ("spatial_temporal_module.anything", None),
        ])
        self.assertTrue(self.tool.map_key("segmental_consensus.x", "dnr")[1].startswith("dropped"))

    def test_torchvision(self):
        self.check("torchvision", [
            ("conv1.weight", "backbone.conv1.weight"),
            ("layer4.1.bn2.running_var", "backbone.layer4.1.bn2.running_var"),
            ("layer4.1.downsample.0.weight", "backbone.layer4.1.downsample.0.weight"),
            ("fc.weight", None),
            ("avgpool.weight", None),
        ])
        self.assertEqual(self.tool.map_key("fc.bias", "torchvision", keep_fc=True)[0], "cls_head.fc_cls.bias")

    def test_detect_layout(self):
        d = self.tool.detect_layout
        self.assertEqual(d(["backbone.layer1.ModuleList.0.conv1.weight"]), "dnr")
        self.assertEqual(d(["backbone.conv1.conv.weight", "cls_head.fc_cls.weight"]), "mmaction2")
        self.assertEqual(d(["conv1.conv.weight", "layer1.0.conv1.conv.weight"]), "mmaction2")
        self.assertEqual(d(["conv1.weight", "layer1.0.conv1.weight", "fc.weight"]), "torchvision")
        self.assertIsNone(d(["encoder.weight"]))


if __name__ == "__main__":
    unittest.main()
