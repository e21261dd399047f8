"""Tests of tools/convert_checkpoint.py (standard library unittest + numpy; no torch):
    python3 tests/convert/test_convert_checkpoint.py
Converts each checkpoint of tests/convert/fixtures (made by tools/fixtures/make_convert_fixtures.py) and
compares every output tensor with <fixture>.npz; checks the report of unmapped keys, --strict, --list,
--keep-fc, and the one-line errors for files that are not (intact) checkpoints; and the export (--to): each
fixture read, written back in its layout (torch.save's zip format) and read again gives the same tensors,
and every tinyvid name written in every layout reads back as itself (TDN's own names: in the tdn layout).
The converter runs in a subprocess in which `import torch` fails, so it is also checked never to need torch
(test_convert_export_torch.py loads the exported files with torch)."""
import collections
import contextlib
import importlib.util
import io
import json
import os
import pickle
import pickletools
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
        self.assertEqual({e["layout"] for e in MANIFEST.values()}, {"torchvision", "mmaction2", "dnr", "tdn"})
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

    def test_tdn_shape_check(self):
        # TDN's modules: conv biases, conv1_5's 12 input channels and conv1's output, the mse's shapes, the shift's.
        def authors(name):
            for tinyvid, theirs in (("backbone.layer2.", "module.base_model.layer2_bak."),
                                    ("backbone.", "module.base_model."), ("cls_head.fc_cls.", "module.new_fc.")):
                if name.startswith(tinyvid):
                    return theirs + name[len(tinyvid):]
            raise AssertionError(name)

        sd = {authors(k): (v.astype(np.int64) if dtype == "I64" else v.astype(np.float32))
              for k, (dtype, v) in tiny_tdn_state().items()}
        for temp in ("conv1_temp", "conv1_temp1"):  # as their first release saved them, left out
            sd["module.base_model.%s.weight" % temp] = np.ones((4, 3, 7, 7), np.float32)
            sd["module.base_model.%s.bias" % temp] = np.ones(4, np.float32)
        rc, out, err = self.convert(sd, "--strict")
        self.assertEqual(rc, 0, err)
        self.assertIn("layout: tdn (detected)", err)
        self.assertIn("shape check: ok", err)
        self.assertIn("4 keys left out on purpose:", err)
        self.assertIn("  module.base_model.conv1_temp1.bias (the second ResNet's conv1", err)
        sd["module.base_model.conv1.bias"] = np.zeros(5, np.float32)
        sd["module.base_model.conv1_5.0.weight"] = np.zeros((4, 15, 7, 7), np.float32)
        sd["module.base_model.layer2_bak.0.mse.conv2.weight"] = np.zeros((2, 2, 3, 3), np.float32)
        sd["module.base_model.layer2_bak.0.mse.bn3.weight"] = np.zeros(16, np.float32)
        sd["module.base_model.layer2_bak.0.shift.conv.weight"] = np.zeros((32, 3), np.float32)
        rc, out, err = self.convert(sd, "--strict")
        self.assertEqual(rc, 1, err)
        for problem in (
                "backbone.conv1.bias: expected one per output channel of backbone.conv1.weight (4x3x7x7), got 5",
                "backbone.conv1_5.0.weight: expected 12 input channels (4 frame differences x RGB), got 4x15x7x7",
                "backbone.layer2.0.mse.conv2.weight: expected 2x1x3x3 (C = 32 channels, C/16 = 2), got 2x2x3x3",
                "backbone.layer2.0.mse.bn3: 16 channels, expected 32",
                "backbone.layer2.0.mse.conv3.weight: 32 output channels, but backbone.layer2.0.mse.bn3 has 16",
                "backbone.layer2.0.shift.conv.weight: expected 32x1x3 (one 3-tap kernel per channel of conv1's 32), "
                "got 32x3"):
            self.assertIn(problem, err)
        self.assertIn("9 shape problem(s)", err)  # bn3's other 3 tensors disagree with its weight too

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


# ------------------------------------------------------------------------------------------------
# Export (--to LAYOUT): safetensors with tinyvid's names -> .pth
# ------------------------------------------------------------------------------------------------

_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8"}


def write_st(path, tensors, meta=None):
    """A safetensors file of name -> (dtype, array): F64, F32, F16, I64 or BF16 (the top 16 bits of float32)."""
    header, blobs, offset = {}, [], 0
    if meta:
        header["__metadata__"] = meta
    for name, (dtype, a) in tensors.items():
        a = np.asarray(a)
        if dtype == "BF16":
            data = (np.ascontiguousarray(a, np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        else:
            data = np.ascontiguousarray(a, _ST_DTYPES[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    blob = json.dumps(header).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob + b"".join(blobs))


def tiny_tinyvid_state():
    """tinyvid's names for a stem and one bottleneck block with a downsample, and a classifier."""
    r = np.random.RandomState(3)
    sd = {"backbone.conv1.weight": r.randn(4, 3, 7, 7)}
    for bn, c in (("backbone.bn1", 4), ("backbone.layer1.0.bn1", 2), ("backbone.layer1.0.bn2", 2),
                  ("backbone.layer1.0.bn3", 8), ("backbone.layer1.0.downsample.1", 8)):
        sd[bn + ".weight"], sd[bn + ".bias"] = r.randn(c), r.randn(c)
        sd[bn + ".running_mean"], sd[bn + ".running_var"] = r.randn(c), r.rand(c) + 0.5
        sd[bn + ".num_batches_tracked"] = np.array(17)
    sd["backbone.layer1.0.conv1.weight"] = r.randn(2, 4, 1, 1)
    sd["backbone.layer1.0.conv2.weight"] = r.randn(2, 2, 3, 3)
    sd["backbone.layer1.0.conv3.weight"] = r.randn(8, 2, 1, 1)
    sd["backbone.layer1.0.downsample.0.weight"] = r.randn(8, 4, 1, 1)
    sd["cls_head.fc_cls.weight"], sd["cls_head.fc_cls.bias"] = r.randn(3, 8), r.randn(3)
    return {k: ("I64" if k.endswith("num_batches_tracked") else "F32", v) for k, v in sd.items()}


def tiny_tdn_state(width=4):
    """tinyvid's names for a TDN's stem (biases, conv1_5, a one-block resnext_layer1) and one layer2 block with its
    mse (32 channels: 2 after the reduction) and shift, and a classifier."""
    r = np.random.RandomState(5)
    sd = {}

    def bn(prefix, c):
        sd[prefix + ".weight"], sd[prefix + ".bias"] = r.randn(c), r.randn(c)
        sd[prefix + ".running_mean"], sd[prefix + ".running_var"] = r.randn(c), r.rand(c) + 0.5
        sd[prefix + ".num_batches_tracked"] = np.array(9)

    def conv(prefix, cout, cin, k, bias=True):
        sd[prefix + ".weight"] = r.randn(cout, cin, k, k)
        if bias:
            sd[prefix + ".bias"] = r.randn(cout)

    conv("backbone.conv1", width, 3, 7)
    bn("backbone.bn1", width)
    conv("backbone.conv1_5.0", width, 12, 7, bias=False)
    bn("backbone.conv1_5.1", width)
    for block, inplanes, planes in (("backbone.resnext_layer1.0", width, width), ("backbone.layer2.0", 16, 32)):
        conv(block + ".conv1", planes, inplanes, 1)
        bn(block + ".bn1", planes)
        conv(block + ".conv2", planes, planes, 3)
        bn(block + ".bn2", planes)
        conv(block + ".conv3", planes * 4, planes, 1)
        bn(block + ".bn3", planes * 4)
        conv(block + ".downsample.0", planes * 4, inplanes, 1)
        bn(block + ".downsample.1", planes * 4)
    mse = "backbone.layer2.0.mse."
    conv(mse + "conv1", 2, 32, 1, bias=False)
    bn(mse + "bn1", 2)
    sd[mse + "conv2.weight"] = r.randn(2, 1, 3, 3)
    conv(mse + "conv3", 32, 2, 1, bias=False)
    bn(mse + "bn3", 32)
    for scale in ("2", "4"):
        conv(mse + "conv3_smallscale" + scale, 2, 2, 3, bias=False)
        bn(mse + "bn3_smallscale" + scale, 2)
    sd["backbone.layer2.0.shift.conv.weight"] = r.randn(32, 1, 3)
    sd["cls_head.fc_cls.weight"], sd["cls_head.fc_cls.bias"] = r.randn(3, 128), r.randn(3)
    return {k: ("I64" if k.endswith("num_batches_tracked") else "F32", v) for k, v in sd.items()}


class Export(unittest.TestCase):
    """--to LAYOUT: each fixture read, written back in its layout and read again is the same; the .pth is
    torch.save's zip format; dtypes, counts, TSM's names, train states, errors."""

    @classmethod
    def setUpClass(cls):
        cls.tool = load_tool()

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.st = os.path.join(self.tmp.name, "in.safetensors")
        self.pth = os.path.join(self.tmp.name, "out.pth")

    def tearDown(self):
        self.tmp.cleanup()

    def state_of(self, path):
        """(what the .pth holds, its state dict as name -> array) read by the tool's own reader."""
        with self.tool.Checkpoint(path) as ckpt:
            state, where = self.tool.find_state_dict(ckpt.obj)
            return ckpt.obj, collections.OrderedDict((k, (v.numpy(), v.dtype_name)) for k, v in state.items())

    def export(self, *args, src=None, rc=0):
        code, out, err = run_tool("--to", *args[:1], src or self.st, self.pth, *args[1:])
        self.assertEqual(code, rc, err)
        self.assertNotIn("Traceback", err)
        return err

    def test_round_trip_each_fixture(self):
        # .pth -> safetensors -> .pth (same layout) -> safetensors: the same tensors each time; for the
        # fixtures in the layout's own names, the same keys as the original too.
        for name, entry in MANIFEST.items():
            with self.subTest(fixture=name):
                fc = ["--keep-fc"] if entry["keep_fc_only"] else []
                first, again = self.st, os.path.join(self.tmp.name, "again.safetensors")
                rc, out, err = run_tool(os.path.join(FIXTURES, entry["checkpoint"]), first, *fc)
                self.assertEqual(rc, 0, err)
                err = self.export(entry["layout"], *fc)
                self.assertIn("shape check: ok", err)
                self.assertNotIn("could not be mapped", err)
                obj, written = self.state_of(self.pth)
                if entry["layout"] == "torchvision":
                    self.assertIsInstance(obj, collections.OrderedDict)  # a bare state dict, as torchvision's
                else:
                    self.assertEqual(sorted(obj), ["meta", "state_dict"])
                    self.assertEqual(obj["meta"]["layout"], entry["layout"])
                rc, out, err = run_tool(self.pth, again, "--strict", *fc)
                self.assertEqual(rc, 0, err)
                self.assertIn("layout: %s (detected)" % entry["layout"], err)
                meta1, t1 = read_safetensors(self, first)
                meta2, t2 = read_safetensors(self, again)
                self.assertEqual(meta1.get("source_variant"), meta2.get("source_variant"))
                self.assertEqual(sorted(t1), sorted(t2))
                for k in t1:
                    self.assertTrue(np.array_equal(t1[k], t2[k]), "%s: %s differs" % (name, k))
                # Against the original checkpoint, key by key.
                _, original = self.state_of(os.path.join(FIXTURES, entry["checkpoint"]))
                original = {k.replace("layer2.0.block.", "layer2.0."): v for k, v in original.items()
                            if k not in entry["unmapped"]}  # the non-local wrapper tinyvid has not
                if name == "mmaction2_tvnames_dp_f16":
                    self.assertIn("backbone.layer1.0.conv1.conv.weight", written)  # ConvModule names now
                    continue
                self.assertEqual(sorted(written), sorted(original))
                for k, (a, dtype) in written.items():
                    b = original[k][0]
                    if ".conv1_temp" in k:  # TDN's unused second conv1: left out, written back as conv1's values
                        b = original[k.replace(".conv1_temp1.", ".conv1.").replace(".conv1_temp.", ".conv1.")][0]
                    self.assertEqual(dtype, "int64" if k.endswith("num_batches_tracked") else "float32", k)
                    self.assertTrue(np.array_equal(a, b.astype(a.dtype)), "%s: %s differs" % (name, k))

    def test_pth_is_torch_save_zip(self):
        entry = MANIFEST["mmaction2_tsn_r50"]
        run_tool(os.path.join(FIXTURES, entry["checkpoint"]), self.st)
        self.export("mmaction2")
        with open(self.pth, "rb") as f:
            data = f.read()
        with zipfile.ZipFile(self.pth) as z:
            infos = z.infolist()
            names = [i.filename for i in infos]
            n = len(names) - 3
            self.assertEqual(sorted(names), sorted(["archive/data.pkl", "archive/byteorder", "archive/version"] +
                                                   ["archive/data/%d" % i for i in range(n)]))
            self.assertEqual(z.read("archive/byteorder"), b"little")
            self.assertEqual(z.read("archive/version"), b"3\n")
            for info in infos:
                self.assertEqual(info.compress_type, zipfile.ZIP_STORED, info.filename)
                name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
                self.assertEqual((info.header_offset + 30 + name_len + extra_len) % 64, 0, info.filename)
            ops = list(pickletools.genops(z.read("archive/data.pkl")))
        self.assertEqual(ops[0][0].name, "PROTO")
        self.assertEqual(ops[0][1], 2)
        globals_ = {arg for op, arg, pos in ops if op.name == "GLOBAL"}
        self.assertEqual(globals_, {"collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch FloatStorage",
                                    "torch LongStorage"})
        self.assertEqual(sum(op.name == "BINPERSID" for op, arg, pos in ops), n)
        # Deterministic: the same input gives the same bytes.
        first = data
        self.export("mmaction2")
        with open(self.pth, "rb") as f:
            self.assertEqual(f.read(), first)

    def test_dtypes_kept_counts_int64(self):
        x = np.array([[1.5, -2.25], [3.0, 0.125]], np.float32)  # exact in every dtype below
        write_st(self.st, {"backbone.conv1.weight": ("F16", x.reshape(2, 1, 1, 2)),
                           "backbone.bn1.weight": ("BF16", x[0]), "backbone.bn1.bias": ("F64", x[1]),
                           "backbone.bn1.num_batches_tracked": ("F32", np.array(7.0)),
                           "backbone.layer1.0.bn1.num_batches_tracked": ("I64", np.array(2 ** 40 + 1))})
        self.export("torchvision")
        obj, sd = self.state_of(self.pth)
        self.assertEqual(sd["conv1.weight"][1], "float16")
        self.assertEqual(sd["bn1.weight"][1], "bfloat16")
        self.assertEqual(sd["bn1.bias"][1], "float64")
        self.assertTrue(np.array_equal(sd["conv1.weight"][0], x.reshape(2, 1, 1, 2)))
        self.assertTrue(np.array_equal(sd["bn1.weight"][0], x[0]))
        self.assertTrue(np.array_equal(sd["bn1.bias"][0], x[1]))
        self.assertEqual(sd["bn1.num_batches_tracked"], (np.array(7), "int64"))
        self.assertEqual(int(sd["layer1.0.bn1.num_batches_tracked"][0]), 2 ** 40 + 1)
        self.assertEqual(sd["layer1.0.bn1.num_batches_tracked"][0].shape, ())

    def test_count_not_whole_refused(self):
        write_st(self.st, {"backbone.bn1.num_batches_tracked": ("F32", np.array(2.5))})
        err = self.export("mmaction2", rc=2)
        self.assertIn("backbone.conv1.bn.num_batches_tracked holds 2.5; expected a whole number", err)
        self.assertEqual(os.listdir(self.tmp.name), ["in.safetensors"])

    def test_non_finite_refused(self):
        w = np.ones((4, 3, 7, 7), np.float32)
        w[0, 0, 0, 5] = np.inf
        write_st(self.st, {"backbone.conv1.weight": ("F32", w)})
        err = self.export("dnr", rc=2)
        self.assertIn("backbone.conv1.weight (backbone.conv1.weight) holds inf at flat index 5 (1 non-finite of 588 "
                      "values); expected finite weights, nothing written", err.strip().splitlines()[-1])
        self.assertEqual(os.listdir(self.tmp.name), ["in.safetensors"])

    def test_tsm_names(self):
        write_st(self.st, tiny_tinyvid_state(), {"format": "pt"})  # as io::save_weights: no model named
        err = self.export("mmaction2")
        self.assertIn("model: not named: written without TSM's names", err)
        _, sd = self.state_of(self.pth)
        self.assertIn("backbone.layer1.0.conv1.conv.weight", sd)
        self.assertFalse(any(".net." in k for k in sd))
        err = self.export("mmaction2", "--model", "tsm_r50")
        self.assertIn("model: tsm_r50 (--model)", err)
        obj, sd = self.state_of(self.pth)
        self.assertEqual(obj["meta"]["model"], "tsm_r50")
        self.assertIn("backbone.layer1.0.conv1.conv.net.weight", sd)
        self.assertIn("backbone.layer1.0.conv2.conv.weight", sd)  # only the block's first conv is shifted
        self.assertIn("backbone.layer1.0.downsample.conv.weight", sd)
        self.assertIn("backbone.conv1.bn.running_var", sd)
        # Layouts without a TSM naming ignore it.
        err = self.export("dnr", "--model", "tsm_r50")
        self.assertNotIn("TSM", err)
        _, sd = self.state_of(self.pth)
        self.assertIn("backbone.layer1.ModuleList.0.conv1.weight", sd)

    def test_tanet_names(self):
        # MMAction2's TANet: each block in a TABlock (`.block`), its TAM beside it (`.tam.*`, tinyvid's names too).
        t = tiny_tinyvid_state()
        t["backbone.layer1.0.tam.G.0.weight"] = ("F32", np.arange(48, dtype=np.float64).reshape(6, 8))
        t["backbone.layer1.0.tam.L.0.weight"] = ("F32", np.arange(24, dtype=np.float64).reshape(2, 4, 3))
        write_st(self.st, t, {"format": "pt"})
        self.export("mmaction2", "--model", "tanet_r50", "--strict")
        _, sd = self.state_of(self.pth)
        for k in ("backbone.layer1.0.block.conv1.conv.weight", "backbone.layer1.0.block.conv3.bn.running_var",
                  "backbone.layer1.0.block.downsample.conv.weight", "backbone.layer1.0.block.downsample.bn.bias",
                  "backbone.layer1.0.tam.G.0.weight", "backbone.layer1.0.tam.L.0.weight",
                  "backbone.conv1.conv.weight", "cls_head.fc_cls.weight"):
            self.assertIn(k, sd)
        self.assertFalse(any(k.startswith("backbone.layer1.0.conv") for k in sd))
        # ... and back: the same names and values.
        back = os.path.join(self.tmp.name, "back.safetensors")
        rc, out, err = run_tool(self.pth, back, "--strict")
        self.assertEqual(rc, 0, err)
        meta, got = read_safetensors(self, back)
        self.assertEqual(sorted(got), sorted(t))
        for k, (_, v) in t.items():
            self.assertTrue(np.array_equal(got[k], v.astype(got[k].dtype)), k)

    def test_tdn_names(self):
        # The TDN authors' names under DataParallel's 'module.', their unused conv1_temp as conv1's copy (their
        # current code's; the first release's conv1_temp1 is not written); the names only TDN has go to no other
        # layout.
        t = tiny_tdn_state()
        write_st(self.st, t, {"format": "pt", "model": "tdn_r50"})
        err = self.export("tdn", "--strict")
        self.assertIn("mapped %d of %d keys" % (len(t), len(t)), err)
        self.assertIn("2 tensors the tdn model holds but never uses, written as copies (load_state_dict(strict=True) "
                      "needs them):", err)
        self.assertIn("  module.base_model.conv1_temp.bias (= backbone.conv1.bias)", err)
        obj, sd = self.state_of(self.pth)
        self.assertEqual(sorted(obj), ["meta", "state_dict"])
        self.assertEqual(obj["meta"]["layout"], "tdn")
        self.assertEqual(len(sd), len(t) + 2)
        self.assertNotIn("module.base_model.conv1_temp1.weight", sd)
        for k in ("module.base_model.conv1.bias", "module.base_model.conv1_5.0.weight",
                  "module.base_model.conv1_5.1.num_batches_tracked", "module.base_model.resnext_layer1.0.conv3.bias",
                  "module.base_model.layer2_bak.0.mse.conv3_smallscale4.weight",
                  "module.base_model.layer2_bak.0.mse.bn3_smallscale2.running_var",
                  "module.base_model.layer2_bak.0.shift.conv.weight",
                  "module.base_model.layer2_bak.0.downsample.0.bias",
                  "module.new_fc.weight"):
            self.assertIn(k, sd)
        for p in ("weight", "bias"):
            a, dtype = sd["module.base_model.conv1_temp." + p]
            self.assertEqual(dtype, "float32")
            self.assertTrue(np.array_equal(a, t["backbone.conv1." + p][1].astype(np.float32)))
        self.assertEqual(sd["module.base_model.layer2_bak.0.mse.bn1.num_batches_tracked"][1], "int64")
        # ... and back: the same names and values; the copies left out on purpose.
        back = os.path.join(self.tmp.name, "back.safetensors")
        rc, out, err = run_tool(self.pth, back, "--strict")
        self.assertEqual(rc, 0, err)
        self.assertIn("layout: tdn (detected)", err)
        self.assertIn("2 keys left out on purpose:", err)
        self.assertIn("  module.base_model.conv1_temp.weight (the second ResNet's conv1, which the authors' TDN_Net "
                      "keeps but never runs; --to tdn writes conv1's values there)", err)
        self.assertIn("shape check: ok", err)
        meta, got = read_safetensors(self, back)
        self.assertEqual(meta["source_layout"], "tdn")
        self.assertEqual(sorted(got), sorted(t))
        for k, (_, v) in t.items():
            self.assertTrue(np.array_equal(got[k], v.astype(got[k].dtype)), k)
        # The other layouts have no place for TDN's names: each is reported, --strict refuses.
        err = self.export("mmaction2", "--strict", rc=1)
        self.assertIn("  backbone.conv1.bias (no mmaction2 counterpart (a name of tinyvid's TDN models, written by "
                      "--to tdn))", err)
        self.assertIn("  backbone.layer2.0.shift.conv.weight (no mmaction2 counterpart", err)
        self.assertNotIn("backbone.layer2.0.conv1.weight (", err)  # a name every ResNet has still maps

    def test_train_state(self):
        t = tiny_tinyvid_state()
        state = {"model." + k: v for k, v in t.items()}
        state["momentum.backbone.conv1.weight"] = t["backbone.conv1.weight"]
        write_st(self.st, state, {"format": "tinyvid-train-state", "model": "tsm_r50", "epoch": "3"})
        err = self.export("mmaction2", "--strict")
        self.assertIn("model: tsm_r50 (the file's metadata)", err)
        self.assertIn("momentum.backbone.conv1.weight (a train state's optimizer momentum)", err)
        self.assertIn("mapped %d of %d keys" % (len(t), len(t) + 1), err)
        _, sd = self.state_of(self.pth)
        self.assertEqual(len(sd), len(t))
        self.assertIn("backbone.layer1.0.conv1.conv.net.weight", sd)

    def test_unmapped_and_strict(self):
        t = tiny_tinyvid_state()
        t["encoder.weight"] = ("F32", np.zeros(3))
        write_st(self.st, t)
        err = self.export("dnr")
        self.assertIn("1 key could not be mapped:", err)
        self.assertIn("  encoder.weight (not a tinyvid name)", err)
        os.remove(self.pth)
        err = self.export("dnr", "--strict", rc=1)
        self.assertIn("--strict: 1 unmapped key(s); nothing written", err)
        self.assertEqual(os.listdir(self.tmp.name), ["in.safetensors"])

    def test_keep_fc(self):
        write_st(self.st, tiny_tinyvid_state())
        err = self.export("torchvision")
        self.assertIn("cls_head.fc_cls.weight (the classifier, as torchvision's fc is ImageNet's; --keep-fc writes", err)
        _, sd = self.state_of(self.pth)
        self.assertNotIn("fc.weight", sd)
        self.assertIn("layer1.0.downsample.1.running_mean", sd)
        self.export("torchvision", "--keep-fc")
        _, sd = self.state_of(self.pth)
        self.assertEqual(sd["fc.weight"][0].shape, (3, 8))

    def test_errors(self):
        pth = os.path.join(FIXTURES, MANIFEST["torchvision_r18"]["checkpoint"])
        err = self.export("dnr", src=pth, rc=2)
        self.assertIn("is not a safetensors file (it looks like a PyTorch checkpoint: to convert one into tinyvid's "
                      "names, leave out --to)", err)
        write_st(self.st, tiny_tinyvid_state())
        rc, out, err = run_tool(self.st, os.path.join(self.tmp.name, "x.safetensors"))
        self.assertEqual(rc, 2)
        self.assertIn("is a safetensors file, not a PyTorch checkpoint (to write it as one, use --to LAYOUT)", err)
        rc, out, err = run_tool("--to", "dnr", "--layout", "dnr", self.st, self.pth)
        self.assertEqual(rc, 2)
        self.assertIn("give one", err)
        rc, out, err = run_tool("--model", "tsm_r50", self.st, self.pth)
        self.assertEqual(rc, 2)
        self.assertIn("--model goes with --to", err)
        with open(self.st, "r+b") as f:  # data_offsets past the end
            f.truncate(os.path.getsize(self.st) - 4)
        err = self.export("dnr", rc=2)
        self.assertIn("corrupt safetensors file", err)
        self.assertEqual(len(err.strip().splitlines()), 1, err)
        write_st(self.st, {"encoder.weight": ("F32", np.zeros(2))})
        err = self.export("dnr", rc=2)
        self.assertIn("nothing to convert", err.strip().splitlines()[-1])
        out = os.path.join(self.tmp.name, "no", "dir", "out.pth")
        write_st(self.st, tiny_tinyvid_state())
        rc, _, err = run_tool("--to", "dnr", self.st, out)
        self.assertEqual(rc, 2)
        self.assertIn("cannot write", err)
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ["in.safetensors"])

    def test_list(self):
        write_st(self.st, tiny_tinyvid_state())
        rc, out, err = run_tool("--to", "mmaction2", self.st, "--list")
        self.assertEqual(rc, 0, err)
        self.assertIn("backbone.bn1.num_batches_tracked\t[]\tint64", out.splitlines())
        self.assertIn("backbone.conv1.weight\t[4, 3, 7, 7]\tfloat32", out.splitlines())

    def test_written_atomically(self):
        events = []
        real_fsync, real_replace = os.fsync, os.replace

        def fsync(fd):
            events.append("fsync directory" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
            real_fsync(fd)

        def replace(src, dst):
            events.append("rename")
            real_replace(src, dst)

        x = np.arange(6, dtype="<f4")
        t = self.tool.PthTensor("FloatStorage", (2, 3), x.tobytes)
        with mock.patch("os.fsync", fsync), mock.patch("os.replace", replace):
            self.tool.write_pth(self.pth, collections.OrderedDict([("x", t)]))
        self.assertEqual(events, ["fsync file", "rename", "fsync directory"])
        self.assertEqual(sorted(os.listdir(self.tmp.name)), ["out.pth"])
        _, sd = self.state_of(self.pth)
        self.assertTrue(np.array_equal(sd["x"][0], x.reshape(2, 3)))


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

    def test_tdn(self):
        self.check("tdn", [
            ("module.base_model.conv1.weight", "backbone.conv1.weight"),
            ("module.base_model.conv1.bias", "backbone.conv1.bias"),
            ("base_model.bn1.running_var", "backbone.bn1.running_var"),  # saved without DataParallel
            ("module.base_model.conv1_5.0.weight", "backbone.conv1_5.0.weight"),
            ("module.base_model.conv1_5.1.num_batches_tracked", "backbone.conv1_5.1.num_batches_tracked"),
            ("module.base_model.resnext_layer1.2.downsample.0.bias", "backbone.resnext_layer1.2.downsample.0.bias"),
            ("module.base_model.layer1_bak.0.conv2.bias", "backbone.layer1.0.conv2.bias"),
            ("module.base_model.layer4_bak.2.bn3.weight", "backbone.layer4.2.bn3.weight"),
            ("module.base_model.layer3_bak.5.mse.conv3_smallscale4.weight",
             "backbone.layer3.5.mse.conv3_smallscale4.weight"),
            ("module.base_model.layer2_bak.0.mse.bn3.running_mean", "backbone.layer2.0.mse.bn3.running_mean"),
            ("module.base_model.layer2_bak.3.shift.conv.weight", "backbone.layer2.3.shift.conv.weight"),
            ("module.new_fc.weight", "cls_head.fc_cls.weight"),
            ("module.base_model.fc.bias", "cls_head.fc_cls.bias"),  # their TSN with dropout 0
            ("module.base_model.conv1_temp.weight", None),
            ("module.base_model.conv1_temp1.bias", None),
            ("module.base_model.layer2_bak.0.mse.avg_pool_forward2.weight", None),
            ("module.base_model.layer5_bak.0.conv1.weight", None),
            ("module.base_model.conv1_5.2.weight", None),
        ])
        for key in ("module.base_model.conv1_temp.weight", "base_model.conv1_temp1.bias"):
            target, note = self.tool.map_key(key, "tdn")
            self.assertTrue(note.startswith("dropped: the second ResNet's conv1"), note)
        # tinyvid's TDN names belong to the tdn layout only.
        self.assertIsNone(self.tool.map_key("backbone.conv1.bias", "mmaction2")[0])
        self.assertIsNone(self.tool.map_key("backbone.layer2.0.mse.conv1.weight", "dnr")[0])

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
        self.assertEqual(d(["base_model.conv1.weight", "base_model.layer1_bak.0.conv1.weight", "new_fc.weight"]), "tdn")
        self.assertEqual(d(["base_model.conv1_5.0.weight"]), "tdn")
        self.assertIsNone(d(["base_model.conv1.weight", "base_model.layer1.0.conv1.net.weight"]))  # TSM's authors'
        self.assertIsNone(d(["encoder.weight"]))


    def test_export_inverts_import(self):
        ex = self.tool.export_key
        cases = [
            ("mmaction2", (), "backbone.conv1.weight", "backbone.conv1.conv.weight"),
            ("mmaction2", (), "backbone.bn1.num_batches_tracked", "backbone.conv1.bn.num_batches_tracked"),
            ("mmaction2", (), "backbone.layer1.0.conv1.weight", "backbone.layer1.0.conv1.conv.weight"),
            ("mmaction2", ("tsm",), "backbone.layer1.0.conv1.weight", "backbone.layer1.0.conv1.conv.net.weight"),
            ("mmaction2", ("tsm",), "backbone.layer4.2.conv3.weight", "backbone.layer4.2.conv3.conv.weight"),
            ("mmaction2", (), "backbone.layer3.5.bn2.running_var", "backbone.layer3.5.conv2.bn.running_var"),
            ("mmaction2", (), "backbone.layer4.0.downsample.0.weight", "backbone.layer4.0.downsample.conv.weight"),
            ("mmaction2", (), "backbone.layer4.0.downsample.1.bias", "backbone.layer4.0.downsample.bn.bias"),
            ("mmaction2", (), "cls_head.fc_cls.weight", "cls_head.fc_cls.weight"),
            ("dnr", (), "backbone.layer3.relay.input_proj.0.weight", "backbone.layer3.lstm.w_ih.0.seq.0.weight"),
            ("dnr", (), "backbone.layer2.3.bn2.relay.hidden_proj.2.bias",
             "backbone.layer2.ModuleList.3.bn2.lstm.w_hh.0.seq.2.bias"),
            ("dnr", (), "backbone.layer2.0.downsample.1.running_mean",
             "backbone.layer2.ModuleList.0.downsample.1.running_mean"),
            ("dnr", (), "backbone.bn1.weight", "backbone.bn1.weight"),
            ("dnr", (), "cls_head.fc_cls.bias", "cls_head.fc_cls.bias"),
            ("torchvision", (), "backbone.layer4.1.bn2.running_var", "layer4.1.bn2.running_var"),
            ("torchvision", (), "cls_head.fc_cls.weight", None),
            ("torchvision", (), "encoder.weight", None),
            ("dnr", (), "backbone.layer1.0.conv1.bias", None),  # TDN's only
            ("tdn", (), "backbone.layer1.0.conv1.bias", "module.base_model.layer1_bak.0.conv1.bias"),
            ("tdn", (), "backbone.conv1.weight", "module.base_model.conv1.weight"),
            ("tdn", (), "backbone.conv1_5.1.weight", "module.base_model.conv1_5.1.weight"),
            ("tdn", (), "backbone.resnext_layer1.0.bn1.bias", "module.base_model.resnext_layer1.0.bn1.bias"),
            ("tdn", (), "backbone.layer4.2.mse.bn3_smallscale4.running_var",
             "module.base_model.layer4_bak.2.mse.bn3_smallscale4.running_var"),
            ("tdn", (), "backbone.layer2.0.shift.conv.weight", "module.base_model.layer2_bak.0.shift.conv.weight"),
            ("tdn", (), "cls_head.fc_cls.bias", "module.new_fc.bias"),
            ("tdn", (), "backbone.layer1.0.conv1.extra", None),
            ("mmaction2", (), "backbone.conv1_5.0.weight", None),
            ("torchvision", (), "backbone.layer2.0.mse.conv1.weight", None),
        ]
        for layout, variants, name, want in cases:
            with self.subTest(layout=layout, name=name):
                self.assertEqual(ex(name, layout, variants=variants)[0], want)
        self.assertEqual(ex("cls_head.fc_cls.bias", "torchvision", keep_fc=True)[0], "fc.bias")
        self.assertTrue(ex("cls_head.fc_cls.bias", "torchvision")[1].startswith("dropped"))
        # Every tinyvid name of every fixture, written in every layout (and variant), reads back as itself; the names
        # only TDN has, in the tdn layout, and in no other.
        names = set()
        for entry in MANIFEST.values():
            names |= set(expected_tensors(entry))
        self.assertGreater(len(names), 150)
        tdn_only = {n for n in names if not self.tool.TINYVID_KEY.match(n)}
        self.assertGreater(len(tdn_only), 300)
        for layout in self.tool.LAYOUTS:
            for variants in ((), ("tsm",), ("tanet",)):
                for name in sorted(names):
                    target = ex(name, layout, keep_fc=True, variants=variants)[0]
                    if name in tdn_only and layout != "tdn":
                        self.assertIsNone(target, (layout, name))
                        continue
                    self.assertIsNotNone(target, (layout, name))
                    self.assertEqual(self.tool.map_key(target, layout, keep_fc=True)[0], name, (layout, target))

    def test_layout_table(self):
        self.assertEqual(self.tool.LAYOUTS, ("torchvision", "mmaction2", "dnr", "tdn"))
        self.assertEqual(self.tool.LAYOUT_TABLE["mmaction2"].variants, {"tsm", "tanet"})
        self.assertEqual(self.tool.LAYOUT_TABLE["dnr"].variants, set())
        self.assertEqual(self.tool.LAYOUT_TABLE["tdn"].variants, set())
        self.assertEqual(self.tool.LAYOUT_ALIASES, {"authors": "dnr"})  # the names: authors (DNR's), tdn
        self.assertEqual(self.tool.import_key("backbone.layer1.0.conv1.conv.net.weight", "mmaction2"),
                         ("backbone.layer1.0.conv1.weight", "", "tsm"))
        self.assertEqual(self.tool.import_key("backbone.layer1.0.conv1.conv.weight", "mmaction2")[2], None)

if __name__ == "__main__":
    unittest.main()
