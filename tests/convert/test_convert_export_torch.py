"""The export of tools/convert_checkpoint.py (--to LAYOUT) checked with PyTorch (skipped without it):
    python3 tests/convert/test_convert_export_torch.py
For each layout, a PyTorch model of that layout's structure saves its weights as that code base does; the
converter (run without torch) reads them into tinyvid's safetensors and writes them back with --to; the
file opens with torch.load (weights_only=True too), loads into a fresh model of the same structure with
load_state_dict(strict=True), and that model gives the original's outputs on a random input, exactly.
The models: torchvision's ResNet (tools/fixtures/make_convert_fixtures.py's TinyResNet, run with
torchvision's forward), MMAction2's ResNet / ResNetTSM (ConvModule, TemporalShift; written here) in a
recognizer, the DNR authors' TSN2D (tools/fixtures/make_authors_fixture.py) with the fixture
checkpoint of their code, and the TDN authors' TSN (tools/fixtures/make_tdn_convert_fixture.py's module tree, under
DataParallel as their main.py saves and resumes it) with its fixture checkpoint, and with tinyvid-named weights of
tools/fixtures/make_tdn_fixtures.py's reference, which the export must carry to the same scores."""
import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
TOOL = os.path.join(ROOT, "tools", "convert_checkpoint.py")
FIXTURES = os.path.join(HERE, "fixtures")

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:  # pragma: no cover - depends on the interpreter
    if __name__ == "__main__":
        print("test_convert_export_torch: skipped: needs torch (Debian: python3-torch)")
        sys.exit(0)
    raise unittest.SkipTest("needs torch")

# The converter runs with `import torch` made to fail, as in test_convert_checkpoint.py.
_RUNNER = ("import runpy, sys; sys.modules['torch'] = None; sys.argv = sys.argv[1:]; "
           "runpy.run_path(sys.argv[0], run_name='__main__')")


def run_tool(*args):
    p = subprocess.run([sys.executable, "-B", "-c", _RUNNER, TOOL] + [str(a) for a in args],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    if p.returncode != 0:
        raise AssertionError("convert_checkpoint %s: exit %d\n%s" % (" ".join(map(str, args)), p.returncode, p.stderr))
    return p.stderr


def load_fixture_script(name):
    """A fixture script as a module; some set torch's default dtype to float64 when imported: kept as it was."""
    dtype = torch.get_default_dtype()
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", "fixtures", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    finally:
        torch.set_default_dtype(dtype)
    return module


@contextlib.contextmanager
def default_dtype(dtype):
    saved = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(saved)


def load_fixture_tool():
    """tools/convert_checkpoint.py as a module (its safetensors writer)."""
    spec = importlib.util.spec_from_file_location("convert_checkpoint", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def randomize(model, seed):
    """Random weights and trained-looking batch-norm statistics, so eval mode uses all of them."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.dim() > 1 else 0.1) + (1 if name.endswith("bn.weight")
                                                                                      else 0))
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(int(torch.randint(1, 1000, (), generator=g)))
    return model


# ------------------------------------------------------------------------------------------------
# torchvision's ResNet forward for make_convert_fixtures.TinyResNet (which has torchvision's names)
# ------------------------------------------------------------------------------------------------

def torchvision_forward(model, x):
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    for s in range(1, 5):
        for b in getattr(model, "layer%d" % s):
            out = b.relu(b.bn1(b.conv1(x)))
            out = b.bn2(b.conv2(out))
            x = b.relu(out + (b.downsample(x) if b.downsample is not None else x))
    return model.fc(torch.flatten(model.avgpool(x), 1))


# ------------------------------------------------------------------------------------------------
# MMAction2's ResNet (mmaction/models/backbones/resnet.py, resnet_tsm.py) in a Recognizer2D, reduced to
# the parameter-carrying structure and the inference computation
# ------------------------------------------------------------------------------------------------

class ConvModule(nn.Module):
    def __init__(self, cin, cout, k, stride=1, padding=0, act=True):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = act

    def forward(self, x):
        x = self.bn(self.conv(x))
        return F.relu(x) if self.act else x


class TemporalShift(nn.Module):
    def __init__(self, net, num_segments, shift_div=8):
        super().__init__()
        self.net, self.num_segments, self.shift_div = net, num_segments, shift_div

    def forward(self, x):
        n, c, h, w = x.shape
        x = x.view(-1, self.num_segments, c, h * w)
        fold = c // self.shift_div
        out = torch.zeros_like(x)
        out[:, :-1, :fold] = x[:, 1:, :fold]
        out[:, 1:, fold:2 * fold] = x[:, :-1, fold:2 * fold]
        out[:, :, 2 * fold:] = x[:, :, 2 * fold:]
        return self.net(out.view(n, c, h, w))


class MMBottleneck(nn.Module):
    def __init__(self, inplanes, planes, stride, downsample):
        super().__init__()
        self.conv1 = ConvModule(inplanes, planes, 1)
        self.conv2 = ConvModule(planes, planes, 3, stride, 1)
        self.conv3 = ConvModule(planes, planes * 4, 1, act=False)
        self.downsample = downsample

    def forward(self, x):
        out = self.conv3(self.conv2(self.conv1(x)))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class MMResNet(nn.Module):
    """ResNet-50's structure at a small width; TSM: make_temporal_shift with shift_place 'blockres'."""

    def __init__(self, width=4, blocks=(3, 4, 6, 3), tsm=False, num_segments=4):
        super().__init__()
        self.conv1 = ConvModule(3, width, 7, 2, 3)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        inplanes = width
        for i, n in enumerate(blocks):
            planes, stride = width << i, 1 if i == 0 else 2
            down = ConvModule(inplanes, planes * 4, 1, stride, act=False)
            layer = [MMBottleneck(inplanes, planes, stride, down)]
            layer += [MMBottleneck(planes * 4, planes, 1, None) for _ in range(1, n)]
            if tsm:
                for b in layer:
                    b.conv1.conv = TemporalShift(b.conv1.conv, num_segments)
            setattr(self, "layer%d" % (i + 1), nn.Sequential(*layer))
            inplanes = planes * 4
        self.feat_dim = inplanes

    def forward(self, x):
        x = self.maxpool(self.conv1(x))
        for i in range(1, 5):
            x = getattr(self, "layer%d" % i)(x)
        return x


class Recognizer2D(nn.Module):
    def __init__(self, tsm, num_segments=4, num_classes=5):
        super().__init__()
        self.num_segments = num_segments
        self.backbone = MMResNet(tsm=tsm, num_segments=num_segments)
        self.cls_head = nn.Module()
        self.cls_head.fc_cls = nn.Linear(self.backbone.feat_dim, num_classes)

    def forward(self, x):
        f = self.backbone(x).mean((2, 3))
        return self.cls_head.fc_cls(f).view(-1, self.num_segments, self.cls_head.fc_cls.out_features).mean(1)


class ExportLoadsIntoPyTorch(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.src = os.path.join(self.tmp.name, "original.pth")
        self.st = os.path.join(self.tmp.name, "tinyvid.safetensors")
        self.out = os.path.join(self.tmp.name, "exported.pth")

    def tearDown(self):
        self.tmp.cleanup()

    def round_trip(self, src, layout, *extra):
        """src -> safetensors -> --to layout; the exported file as torch.load gives it (weights_only: the
        same), and the converter's report."""
        run_tool(src, self.st, "--strict", *extra)
        report = run_tool("--to", layout, self.st, self.out, "--strict", *extra)
        loaded = torch.load(self.out)
        safe = torch.load(self.out, weights_only=True)
        state = loaded["state_dict"] if "state_dict" in loaded else loaded
        safe_state = safe["state_dict"] if "state_dict" in safe else safe
        self.assertEqual(list(state), list(safe_state))
        for k in state:
            self.assertTrue(torch.equal(state[k], safe_state[k]), k)
        return loaded, state, report

    def check_same(self, original, fresh, state, x, forward=None):
        result = fresh.load_state_dict(state, strict=True)
        self.assertEqual((result.missing_keys, result.unexpected_keys), ([], []))
        for (k, a), (_, b) in zip(original.state_dict().items(), fresh.state_dict().items()):
            self.assertTrue(torch.equal(a, b), k)
            if k.endswith("num_batches_tracked"):
                self.assertEqual(state[k].dtype, torch.int64, k)
        original.eval()
        fresh.eval()
        with torch.no_grad():
            forward = forward or (lambda m, x: m(x))
            y0, y1 = forward(original, x), forward(fresh, x)
        self.assertTrue(torch.isfinite(y0).all())
        self.assertTrue(torch.equal(y0, y1), (y0 - y1).abs().max())

    def test_torchvision(self):
        fixtures = load_fixture_script("make_convert_fixtures")
        model = randomize(fixtures.TinyResNet(width=4, num_classes=6), 1)
        torch.save(model.state_dict(), self.src)
        loaded, state, report = self.round_trip(self.src, "torchvision", "--keep-fc")
        self.assertEqual(type(loaded).__name__, "OrderedDict")  # a bare state dict, as torchvision's
        x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(5))
        self.check_same(model, fixtures.TinyResNet(width=4, num_classes=6), state, x, torchvision_forward)

    def test_mmaction2_tsn_and_tsm(self):
        for tsm in (False, True):
            with self.subTest(tsm=tsm):
                model = randomize(Recognizer2D(tsm), 2)
                torch.save({"meta": {"epoch": 1}, "state_dict": model.state_dict()}, self.src)
                loaded, state, report = self.round_trip(self.src, "mmaction2")
                self.assertEqual(sorted(loaded), ["meta", "state_dict"])
                self.assertEqual(any(".net." in k for k in state), tsm)
                x = torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(6))
                self.check_same(model, Recognizer2D(tsm), state, x)

    def test_mmaction2_tsm_by_model_name(self):
        # Weights that tinyvid wrote itself name no variant: --model says it is a TSM.
        model = randomize(Recognizer2D(True), 3)
        torch.save({"state_dict": model.state_dict()}, self.src)
        run_tool(self.src, self.st)
        with open(self.st, "rb") as f:
            self.assertIn(b'"source_variant":"tsm"', f.read(4096))
        plain = os.path.join(self.tmp.name, "plain.safetensors")
        run_tool("--to", "mmaction2", self.st, os.path.join(self.tmp.name, "tsn.pth"))
        run_tool(os.path.join(self.tmp.name, "tsn.pth"), plain)  # now TSN's names: no variant recorded
        run_tool("--to", "mmaction2", plain, self.out, "--model", "tsm_r50", "--strict")
        fresh = Recognizer2D(True)
        fresh.load_state_dict(torch.load(self.out)["state_dict"], strict=True)
        x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(7))
        self.check_same(model, fresh, fresh.state_dict(), x)

    def test_tdn_authors_code(self):
        fixture = load_fixture_script("make_tdn_convert_fixture")
        src = os.path.join(FIXTURES, fixture.NAME + ".pth")
        original = nn.DataParallel(fixture.AuthorsTSN())  # 'module.' names, as their training saves them
        original.load_state_dict(torch.load(src)["state_dict"], strict=True)  # float16 values in float32
        loaded, state, report = self.round_trip(src, "tdn")
        self.assertEqual(sorted(loaded), ["meta", "state_dict"])
        self.assertIn("module.base_model.conv1_temp.weight (= backbone.conv1.weight)", report)
        fresh = nn.DataParallel(fixture.AuthorsTSN())
        result = fresh.load_state_dict(state, strict=True)
        self.assertEqual((result.missing_keys, result.unexpected_keys), ([], []))
        for (k, a), (_, b) in zip(original.state_dict().items(), fresh.state_dict().items()):
            if ".conv1_temp" not in k:  # unused by forward: written back as conv1's copies
                self.assertTrue(torch.equal(a, b), k)
            if k.endswith("num_batches_tracked"):
                self.assertEqual(state[k].dtype, torch.int64, k)
        self.assertTrue(torch.equal(state["module.base_model.conv1_temp.weight"],
                                    state["module.base_model.conv1.weight"]))
        x = torch.randn(2 * fixture.SEGMENTS * 5, 3, 64, 64, generator=torch.Generator().manual_seed(9))
        original.eval()
        fresh.eval()
        with torch.no_grad(), default_dtype(torch.float64):
            y0, y1 = original.double()(x.double()), fresh.double()(x.double())
        self.assertTrue(torch.isfinite(y0).all())
        self.assertTrue(torch.equal(y0, y1), (y0 - y1).abs().max())

    def test_tdn_from_tinyvid_names(self):
        # Weights in tinyvid's names (make_tdn_fixtures.py's deterministic TDN, as float32) exported with --to tdn load
        # strictly into the authors' module tree, which then gives the tinyvid-named reference's scores.
        fixture = load_fixture_script("make_tdn_convert_fixture")
        with default_dtype(torch.float64):  # the reference's own
            reference = fixture.TDN(50, fixture.WIDTH, 3, fixture.SEGMENTS)
        reference.p = {k: v.detach().float().double() for k, v in reference.p.items()}
        tool = load_fixture_tool()
        tool.write_safetensors(self.st, {k: tuple(v.shape) for k, v in reference.p.items()},
                               lambda k: reference.p[k].numpy(), {"format": "pt", "model": "tdn_r50"})
        report = run_tool("--to", "tdn", self.st, self.out, "--strict")
        self.assertIn("model: tdn_r50 (the file's metadata)", report)
        state = torch.load(self.out, weights_only=True)["state_dict"]
        model = nn.DataParallel(fixture.AuthorsTSN(classes=3))
        result = model.load_state_dict(state, strict=True)
        self.assertEqual((result.missing_keys, result.unexpected_keys), ([], []))
        model.double().eval()
        x = fixture.clip_input((2 * fixture.SEGMENTS * 5, 3, 64, 64))
        with torch.no_grad(), default_dtype(torch.float64):
            y, want = model(x), reference.forward(x, False)
        self.assertEqual(y.shape, (2, 3))
        self.assertTrue(torch.equal(y, want), (y - want).abs().max())

    def test_dnr_authors_code(self):
        authors = load_fixture_script("make_authors_fixture")
        src = os.path.join(FIXTURES, "authors_dnr_r50.pth")
        original = authors.TSN2D()
        original.load_state_dict(torch.load(src)["state_dict"], strict=True)  # float16 values in float32
        loaded, state, report = self.round_trip(src, "dnr")
        self.assertEqual(sorted(loaded), ["meta", "state_dict"])
        x = torch.randn(2 * authors.FRAMES, 3, authors.SIZE, authors.SIZE, generator=torch.Generator().manual_seed(8))
        self.check_same(original, authors.TSN2D(), state, x)


if __name__ == "__main__":
    unittest.main()
