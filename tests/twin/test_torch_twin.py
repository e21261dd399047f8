#!/usr/bin/env python3
"""tools/torch_twin.py against tinyvid:
- small models of every architecture, with and without DNR, bottleneck and basic-block depths and non-default
  switches: the twin's module and `tinyvid forward` load the same safetensors file (both strictly) and give the same
  scores to 1e-5 (relative to the largest score), the twin in float64 and in float32. The weights are random with
  sensible scales and non-trivial running statistics (a fresh model's mean 0 and variance 1 would hide a swapped or
  skipped norm), written by the twin in tinyvid's names and format and read by tinyvid's own strict loader;
- weights `tinyvid train` wrote (one epoch on a tiny synthetic dataset; when the CLI has the video commands): its
  latest.safetensors and latest.state.safetensors give `tinyvid forward`'s scores;
- training mode: TSN-R18-DNR, TANet-R18 and TDN-R18 (and TDN-R50-DNR in eval mode) against the PyTorch references
  of tinyvid's own tests (tests/fixtures): scores, gradients, running statistics;
- strict loading: a file with a key missing, an extra key or a tensor of another shape is refused, the keys named;
- ONNX: TANet-R18-DNR (TAM, bidirectional relay) and, through the command line, TDN-R18 export, pass onnx.checker
  and the graph's output has the scores' shape.

    python3 tests/twin/test_torch_twin.py path/to/tinyvid [--keep DIR]
Needs torch; the ONNX part needs onnx (Debian: python3-torch, python3-onnx)."""
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tools"))
import torch  # noqa: E402
import torch_twin as tt  # noqa: E402

TOL = 1e-5

# name, input frames per clip, clips, frame side, switches (width 8 and 5 classes unless set)
CASES = [
    ("tsn_r50", 4, 2, 32, {}),
    ("tsn_r18_dnr", 4, 2, 32, {"ct_group_frames": "2"}),
    ("tsm_r50", 4, 2, 32, {"shift_div": "4"}),
    ("tsm_r50_dnr", 4, 2, 32, {"ct_group_frames": "2", "ct_bidirectional": "true"}),
    ("tsm_r18_dnr", 4, 2, 32, {"cross_layer": "false", "ct_bidirectional": "true", "ct_shared_direction_cell": "true",
                               "reduction": "2"}),
    ("tanet_r50", 4, 2, 32, {}),
    ("tanet_r50_dnr", 4, 2, 32, {"ct_group_frames": "2"}),
    ("tanet_r18", 6, 2, 32, {"tam_alpha": "3", "tam_beta": "2", "tam_adaptive_kernel_size": "5",
                             "tam_conv1d_kernel_size": "1"}),
    ("tanet_r18_dnr", 4, 2, 32, {"cross_temporal": "false", "interlace": "false"}),
    ("tdn_r50", 20, 2, 64, {"width": "16"}),
    ("tdn_r50_dnr", 20, 2, 64, {"width": "16", "ct_group_frames": "2"}),
    ("tdn_r18", 40, 1, 64, {"width": "16"}),  # 8 segments: the fusion's other weights (1/2, 1/2)
    ("tdn_r18_dnr", 20, 1, 64, {"width": "16", "stats_group_clips": "1"}),
]


def randomize(model, seed):
    """Every tensor of the state: weights of scale sqrt(2 / fan_in), norms' scales near 1, small biases, running
    means near 0 and variances in [0.5, 1.5]; TDN's temporal shift near its initial taps."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in model.state_dict().items():
            leaf = name.rsplit(".", 1)[-1]
            r = lambda: torch.randn(t.shape, generator=g, dtype=torch.float64)  # noqa: E731
            if leaf == "num_batches_tracked":
                v = torch.tensor(7)
            elif leaf == "running_var":
                v = 0.5 + torch.rand(t.shape, generator=g, dtype=torch.float64)
            elif leaf == "running_mean":
                v = 0.1 * r()
            elif leaf == "bias":
                v = 0.1 * r()
            elif leaf == "weight" and t.dim() == 1:
                v = 1 + 0.1 * r()
            elif name.endswith("shift.conv.weight"):
                v = t.double() + 0.1 * r()
            else:
                v = r() * (2.0 / max(1, t[0].numel())) ** 0.5
            t.copy_(v.float().to(t.dtype) if t.is_floating_point() else v.to(t.dtype))  # exactly F32 values


def calibrate(model, x, seed):
    """Running statistics near the clip's own (one training-mode pass with momentum 1), each variance raised by the
    layer's mean variance and each mean moved a little: in eval mode the norms then keep the activations at a sensible
    scale through the deep models without blowing up a channel that hardly varies. (With arbitrary statistics the
    deepest models' activations grow a thousandfold, with the clip's exact ones a near-constant channel is divided by
    its tiny spread: either way a float32 rounding is amplified past 1e-5 and no two implementations agree.)"""
    g = torch.Generator().manual_seed(seed)
    norms = [m for m in model.modules() if hasattr(m, "running_mean") and hasattr(m, "momentum")]
    for m in norms:
        m.momentum = 1.0
    model.train()
    with torch.no_grad():
        model(x.to(next(model.parameters()).dtype))
        for m in norms:
            m.momentum = 0.1
            rv = m.running_var + m.running_var.mean()
            rm = m.running_mean + 0.1 * rv.sqrt() * torch.randn(rv.shape, generator=g).to(rv.dtype)
            m.running_var.copy_(rv.float())
            m.running_mean.copy_(rm.float())
    model.eval()


def relative(a, b):
    return float((a.double() - b.double()).abs().max() / b.double().abs().max())


def tinyvid(cli, *args):
    r = subprocess.run([cli, *args], capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"tinyvid {' '.join(args)}: exit {r.returncode}\n{r.stdout}{r.stderr}")
    return r.stdout


def check_case(cli, tmp, name, frames, clips, size, sets, seed):
    t_all = time.time()
    sets = {"width": "8", **sets}
    classes = 5
    model = tt.build_model(name, frames, classes, sets)
    randomize(model, seed)
    x = torch.sin(0.01 * torch.arange(clips * frames * 3 * size * size, dtype=torch.float64) * (1 + seed % 7) + seed)
    x = (x.reshape(clips * frames, 3, size, size) + 0.3 * torch.randn(clips * frames, 3, size, size,
         generator=torch.Generator().manual_seed(seed), dtype=torch.float64)).float()
    calibrate(model, x, seed)
    w = os.path.join(tmp, f"{name}.safetensors")
    tt.save_weights(model, w)
    xin, yout = os.path.join(tmp, f"{name}.in.safetensors"), os.path.join(tmp, f"{name}.out.safetensors")
    tt.write_safetensors(xin, {"input": x})
    flags = ["--model", name, "--frames", str(frames), "--num-classes", str(classes)]
    for k, v in sets.items():
        flags += ["--set", f"{k}={v}"]
    t0 = time.time()
    tinyvid(cli, "forward", *flags, "--weights", w, "--input", xin, "--output", yout)
    t_cli = time.time() - t0
    ref = tt.read_safetensors(yout)[0]["output"]
    # The twin: a fresh module, the file loaded strictly; float64 and float32.
    errs = {}
    for dtype in (torch.float64, torch.float32):
        twin = tt.build_model(name, frames, classes, sets).to(dtype)
        tt.load_weights(twin, w)
        twin.eval()
        with torch.no_grad():
            got = twin(x.to(dtype))
        assert got.shape == ref.shape, (name, got.shape, ref.shape)
        errs[dtype] = relative(got, ref)
    # The scores must depend on the clip (a backbone that died out would compare its bias only).
    spread = float((ref - ref.mean(0)).abs().max() / ref.abs().max()) if clips > 1 else 1.0
    ok = errs[torch.float64] <= TOL and errs[torch.float32] <= TOL and spread > 1e-3
    print(f"{'ok' if ok else 'FAIL'} {name} {' '.join(f'{k}={v}' for k, v in sets.items())}: {clips}x{frames} frames "
          f"of {size}x{size}, scores {tuple(ref.shape)}, max |score| {float(ref.abs().max()):.3g}; relative difference "
          f"twin(float64) {errs[torch.float64]:.2e}, twin(float32) {errs[torch.float32]:.2e}, spread over clips "
          f"{spread:.2g} (tinyvid {t_cli:.1f} s, all {time.time() - t_all:.1f} s)", flush=True)
    return ok


# Weights tinyvid trained itself (one epoch of `tinyvid train` on a tiny synthetic dataset; needs the video commands):
# name, input frames per clip, frame side, config keys
TRAINED = [
    ("tsn_r18_dnr", 4, 32, {"model.ct_group_frames": "2"}),
    ("tanet_r50_dnr", 4, 32, {"model.ct_group_frames": "2"}),
    ("tdn_r18_dnr", 20, 64, {"model.width": "16", "model.ct_group_frames": "2", "sampler.clip_len": "5",
                             "sampler.out_of_bound": "repeat_last"}),
]


def check_trained(cli, tmp):
    if subprocess.run([cli, "synth", "--help"], capture_output=True).returncode != 0:
        print("skip weights trained by tinyvid: this tinyvid has no video commands (FFmpeg)")
        return True
    ok = True
    for size in (32, 64):
        tinyvid(cli, "synth", "--out", os.path.join(tmp, f"synth{size}"), "--classes", "2", "--train-per-class", "2",
                "--val-per-class", "1", "--size", str(size), "--frames", "8")
    for name, frames, size, keys in TRAINED:
        t0 = time.time()
        segments = frames // 5 if name.startswith("tdn") else frames
        keys = {"model": name, "data.root": os.path.join(tmp, f"synth{size}"), "num_classes": "2", "model.width": "8",
                "sampler.num_clips": str(segments), "train.crop_size": str(size), "val.crop_size": str(size),
                "train.scales": "1", "batch_size": "2", "schedule.warmup_iters": "1", "epochs": "1", **keys}
        run = os.path.join(tmp, f"run_{name}")
        args = ["train", os.path.join(ROOT, "configs", "demo_tsn_r18.conf"), "--work-dir", run, "--no-progress"]
        for k, v in keys.items():
            args += ["--set", f"{k}={v}"]
        tinyvid(cli, *args)
        sets = {k[len("model."):]: v for k, v in keys.items() if k.startswith("model.")}
        x = torch.randn(2 * frames, 3, size, size, generator=torch.Generator().manual_seed(3))
        xin, yout = os.path.join(tmp, f"{name}.trained.in.safetensors"), os.path.join(tmp, f"{name}.trained.out.safetensors")
        tt.write_safetensors(xin, {"input": x})
        flags = ["--model", name, "--frames", str(frames), "--num-classes", "2"]
        for k, v in sets.items():
            flags += ["--set", f"{k}={v}"]
        tinyvid(cli, "forward", *flags, "--weights", os.path.join(run, "latest.safetensors"), "--input", xin,
                "--output", yout)
        ref = tt.read_safetensors(yout)[0]["output"]
        errs = []
        # The weights file, and the training state (its model.* tensors).
        for weights in ("latest.safetensors", "latest.state.safetensors"):
            twin = tt.build_model(name, frames, 2, sets).double()
            tt.load_weights(twin, os.path.join(run, weights))
            twin.eval()
            with torch.no_grad():
                errs.append(relative(twin(x.double()), ref))
        case_ok = max(errs) <= TOL
        ok &= case_ok
        print(f"{'ok' if case_ok else 'FAIL'} {name} trained by tinyvid (one epoch): scores {tuple(ref.shape)}, max "
              f"|score| {float(ref.abs().max()):.3g}; relative difference twin(float64) {errs[0]:.2e} from "
              f"latest.safetensors, {errs[1]:.2e} from latest.state.safetensors ({time.time() - t0:.1f} s)", flush=True)
    return ok


def read_fixture(path, prefix):
    """tests/fixtures/*.txt (tools/fixtures/fixture_io.py's format): the tensors whose names start with prefix."""
    out, name, shape, values = {}, None, None, []

    def flush():
        if name is not None and name.startswith(prefix):
            out[name[len(prefix):]] = torch.tensor(values, dtype=torch.float64).reshape(shape)
    with open(path) as f:
        for line in f:
            if line.startswith("#"):
                continue
            if line.startswith("tensor "):
                flush()
                words = line.split()
                name, shape, values = words[1], [int(d) for d in words[3:3 + int(words[2])]], []
            else:
                values += [float(v) for v in line.split()]
    flush()
    return out


def check_training():
    """Against the PyTorch references tinyvid's own tests compare with (tools/fixtures/make_dnr_fixtures.py,
    make_tanet_fixtures.py, make_tdn_fixtures.py): their weights loaded by name into the twin, the scores (training
    mode, or eval where the reference has eval only), the gradients the fixture holds, and the eval-mode scores with
    the running statistics the training pass updated."""
    sys.path.insert(0, os.path.join(ROOT, "tools", "fixtures"))
    default = torch.get_default_dtype()
    import make_dnr_fixtures as dnr_ref  # noqa: E402 (the references set float64 as the default dtype)
    import make_tanet_fixtures as tanet_ref  # noqa: E402
    try:
        import make_tdn_fixtures as tdn_ref  # noqa: E402
    except ImportError:
        tdn_ref = None
    torch.set_default_dtype(default)
    fixtures = os.path.join(ROOT, "tests", "fixtures")
    base = {"conv1": "backbone.conv1.weight", "fc": "cls_head.fc_cls.weight"}
    tdn_grads = {**base, "conv1_5": "backbone.conv1_5.0.weight", "mse_conv1": "backbone.layer2.0.mse.conv1.weight",
                 "shift": "backbone.layer2.0.shift.conv.weight"}
    cases = [  # name, the reference's model (a thunk), input frames, classes, switches, fixture, side, gradients, train
        ("tsn_r18_dnr", lambda: dnr_ref.Model(18, 8, 5, 4, True, False, 2, False, True), 4, 5, {"ct_group_frames": "2"},
         "models.txt", 64, base, True),
        ("tanet_r18", lambda: tanet_ref.TANet(18, 8, 5, 4, False, 4), 4, 5, {}, "tanet.txt", 32,
         {**base, "tam_g0": "backbone.layer1.0.tam.G.0.weight", "tam_l0": "backbone.layer2.0.tam.L.0.weight"}, True),
        ("tdn_r18", lambda: tdn_ref.TDN(18, 8, 5, 4), 20, 5, {}, "tdn.txt", 64, tdn_grads, True),
        ("tdn_r50_dnr", lambda: tdn_ref.TDN(50, 8, 3, 4, True, 2), 20, 3, {"ct_group_frames": "2"}, "tdn.txt", 64,
         tdn_grads, False),
    ]
    ok = True
    for name, make_ref, frames, classes, sets, fixture, size, grads, train in cases:
        path = os.path.join(fixtures, fixture)
        if name.startswith("tdn") and (tdn_ref is None or not os.path.exists(path)):
            print(f"skip {name} against {fixture}: no TDN reference (tools/fixtures/make_tdn_fixtures.py) or fixture")
            continue
        want = read_fixture(path, name + ".")
        ref_model = make_ref()
        torch.set_default_dtype(default)
        twin = tt.build_model(name, frames, classes, {"width": "8", **sets}, dropout=0).double()
        tt.load_weights(twin, {k: v.detach().clone() for k, v in ref_model.p.items()})
        twin.train(train)
        x = dnr_ref.clip_input((2 * frames, 3, size, size)).double()
        y = twin(x)
        gy = torch.sin(torch.arange(y.numel(), dtype=torch.float64)).reshape(y.shape)
        params = dict(twin.named_parameters())
        g = torch.autograd.grad(y, [params[p] for p in grads.values()], gy)
        errs = {"train" if train else "eval": relative(y.detach(), want["out"])}
        errs.update({f"grad.{k}": relative(gv, want[f"grad.{k}"]) for k, gv in zip(grads, g)})
        if train:
            twin.eval()
            with torch.no_grad():
                errs["eval after"] = relative(twin(x), want["eval"])
        case_ok = max(errs.values()) <= 1e-9
        ok &= case_ok
        print(f"{'ok' if case_ok else 'FAIL'} {name} against {fixture} (float64): "
              + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()), flush=True)
    return ok


def check_registry(cli):
    """The twin knows tinyvid's models and switches, with the same defaults (from `tinyvid forward --help`)."""
    text = tinyvid(cli, "forward", "--help")
    models = re.search(r"models: \((.*?)\)_r\((.*?)\)\[_dnr\]", text)
    switches = dict(re.findall(r"^  (\w+)=(\S+) ", text, re.M))
    want_models = (tuple(models.group(1).split("|")), tuple(int(d) for d in models.group(2).split("|"))) if models else None
    have = {k: (str(d).lower() if isinstance(d, bool) else str(d)) for k, (d, _, _) in tt.SWITCHES.items()}
    ok = want_models == (tt.ARCHS, tt.DEPTHS) and switches == have
    print(f"{'ok' if ok else 'FAIL'} the registry: tinyvid's models {want_models}, the twin's {(tt.ARCHS, tt.DEPTHS)}; "
          + ("the same switches and defaults" if switches == have else f"switches: tinyvid {switches}, the twin {have}"))
    return ok


def check_strict(tmp):
    """A file with a key missing, one extra, or a shape changed: refused, the keys named."""
    model = tt.build_model("tsn_r18_dnr", 4, 5, {"width": "8"})
    good = {k: v.clone() for k, v in model.state_dict().items()}
    ok = True
    for what, change, expect in (
            ("missing", lambda d: d.pop("backbone.layer2.relay.input_proj.0.weight"), "1 missing: backbone.layer2.relay.input_proj.0.weight"),
            ("unexpected", lambda d: d.__setitem__("backbone.layer1.0.bn1.weight", torch.ones(8)), "1 unexpected: backbone.layer1.0.bn1.weight"),
            ("shape", lambda d: d.__setitem__("cls_head.fc_cls.bias", torch.zeros(6)), "cls_head.fc_cls.bias (file (6,), model (5,))")):
        d = dict(good)
        change(d)
        path = os.path.join(tmp, f"bad_{what}.safetensors")
        tt.write_safetensors(path, d)
        try:
            tt.load_weights(tt.build_model("tsn_r18_dnr", 4, 5, {"width": "8"}), path)
            print(f"FAIL strict loading: a file with a {what} key was accepted")
            ok = False
        except tt.TwinError as e:
            good_msg = expect in str(e)
            ok &= good_msg
            print(f"{'ok' if good_msg else 'FAIL'} strict loading ({what}): {e}")
    return ok


def check_onnx(tmp):
    try:
        import onnx  # noqa: F401
    except ImportError:
        print("skip ONNX: python3-onnx is not installed")
        return True
    sets = {"width": "8", "ct_group_frames": "2", "ct_bidirectional": "true"}
    model = tt.build_model("tanet_r18_dnr", 4, 5, sets)
    randomize(model, 99)
    x = torch.randn(2 * 4, 3, 32, 32, generator=torch.Generator().manual_seed(5))
    calibrate(model, x, 99)
    path = os.path.join(tmp, "tanet_r18_dnr.onnx")
    shape = tt.export_onnx(model, path, x, log=lambda s: print("  " + s))
    ok = shape == [2, 5]
    print(f"{'ok' if ok else 'FAIL'} ONNX export of tanet_r18_dnr (bidirectional relay, TAM): output shape {shape}")
    # The command line: tdn_r18 (AveragePool, Resize), exported with its weights from a file.
    w = os.path.join(tmp, "tdn_onnx.safetensors")
    tdn = tt.build_model("tdn_r18", 20, 5, {"width": "16"})
    randomize(tdn, 7)
    tt.save_weights(tdn, w)
    out = os.path.join(tmp, "tdn_r18.onnx")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "torch_twin.py"), "--model", "tdn_r18",
                        "--weights", w, "--frames", "20", "--num-classes", "5", "--set", "width=16", "--onnx", out,
                        "--batch", "2", "--size", "64"], capture_output=True, text=True)
    cli_ok = r.returncode == 0 and "onnx.checker passed" in r.stdout and "output [2, 5]" in r.stdout
    print(f"{'ok' if cli_ok else 'FAIL'} torch_twin.py --onnx (tdn_r18): {r.stdout.strip()} {r.stderr.strip()}")
    return ok and cli_ok


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    cli = sys.argv[1]
    keep = sys.argv[sys.argv.index("--keep") + 1] if "--keep" in sys.argv else None
    torch.set_num_threads(1)  # the models are tiny: a second thread costs more than it brings
    # oneDNN prepares its kernels anew for every shape, seconds each on this machine; the plain kernels are as exact.
    torch.backends.mkldnn.enabled = False
    t0 = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = keep or tmp
        os.makedirs(tmp, exist_ok=True)
        results = [check_case(cli, tmp, *case, seed=i + 1) for i, case in enumerate(CASES)]
        sections = [("the cases", time.time() - t0)]
        for what, check in (("tinyvid-trained", lambda: check_trained(cli, tmp)), ("references", check_training),
                            ("registry", lambda: check_registry(cli)), ("strict loading", lambda: check_strict(tmp)),
                            ("ONNX", lambda: check_onnx(tmp))):
            t1 = time.time()
            results.append(check())
            sections.append((what, time.time() - t1))
        print("seconds: " + ", ".join(f"{w} {s:.0f}" for w, s in sections))
    failed = results.count(False)
    print(f"{len(results) - failed} passed, {failed} failed ({time.time() - t0:.0f} s)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
