#!/usr/bin/env python3
"""Converts a PyTorch checkpoint into a .safetensors file with the parameter names of a tinyvid model,
and (--to) such a file back into a PyTorch checkpoint of one of the layouts it reads.

    python3 tools/convert_checkpoint.py IN.pth OUT.safetensors [--layout auto|torchvision|mmaction2|dnr|tdn]
                                        [--keep-fc] [--strict] [--list]
    python3 tools/convert_checkpoint.py --to torchvision|mmaction2|dnr|tdn IN.safetensors OUT.pth
                                        [--model NAME] [--keep-fc] [--strict] [--list]

Needs only Python 3 and numpy (Debian: python3-numpy); it never imports torch. It reads both of
torch.save's formats: the zip archive of torch >= 1.6 (`<name>/data.pkl` + `<name>/data/<key>`) and
the older sequence of pickles followed by the raw storages (torch < 1.6, e.g. MMAction v1 era, or
`_use_new_zipfile_serialization=False`). Pickles are read with an unpickler that builds tensors from
a fixed list of torch's rebuild functions and turns every other class into an inert placeholder, so
reading a checkpoint never runs code from it; parts that are not the model's state dict (`meta`,
`optimizer`, `message_hub`, ...) may hold such placeholders and are ignored.

The state dict is the checkpoint itself or its 'state_dict' (MMCV / MMAction2) or 'model' entry; a
leading 'module.' (DataParallel) is stripped. Source layouts (--layout auto detects them):
  torchvision  torchvision's ResNet (conv1.weight, layer1.0.conv1.weight, fc.weight): prefixed with
               'backbone.'; fc.* (an ImageNet head) is dropped unless --keep-fc maps it to cls_head.fc_cls.
  mmaction2    MMAction2 recognizers (backbone.*, cls_head.fc_cls.*). Its ResNet wraps conv + bn in a
               ConvModule (backbone.layer1.0.conv1.conv.weight, ...conv1.bn.weight, downsample.conv/bn);
               TSM wraps a conv in a TemporalShift (`.net`: ...conv1.conv.net.weight), temporal pooling
               a stage (layer2.net.0...) and non-local a block (layer2.0.block...). Backbones from
               torchvision (`torchvision.resnet50` configs) and MMAction v1's ResNet already use
               torchvision's names and pass through.
  dnr          the DNR authors' code (MMAction v1, resnet_dnr.py): per stage a `wrapper` with the blocks
               in `ModuleList` and the cross-layer relay `lstm` (w_ih / w_hh: Linear, ReLU, Linear);
               each block's bn2 (cross-temporal) holds its own `lstm`.
  tdn          the TDN authors' code (github MCG-NJU/TDN: their TSN around TDN_Net, saved under DataParallel):
               base_model.* with the stages as layer1_bak..layer4_bak (-> backbone.layerN), conv1 / bn1 and the
               difference branch conv1_5 / resnext_layer1 (-> backbone.*), the classifier new_fc (-> cls_head.fc_cls;
               base_model.fc when trained with dropout 0). base_model.conv1_temp (and conv1_temp1 of their first
               release, Dec 2020), the second ResNet's conv1 that TDN_Net keeps but never runs, is left out on
               purpose. The blocks' names (convs with biases, mse.*, shift.conv) are tinyvid's tdn_* models' own.
Each layout is one table of rules (LAYOUT_TABLE: a layout's name and tinyvid's as templates), read one
way to import and the other way to export; adding a layout is adding an entry.
The output holds every mapped tensor as F32, except num_batches_tracked as I64 (PyTorch's dtype, exact),
names sorted, with `__metadata__` naming the source layout and file (and `source_variant=tsm` when the
names were TSM's, so that --to writes them so again). It is written to a temporary file of
its own, flushed to disk and renamed over OUT, so OUT is never seen half-written. The report goes to
stderr: keys mapped, keys dropped on purpose, keys that could not be mapped, and shape checks. Exit
status: 0 done; 1 with --strict when a key could not be mapped or a shape check failed (nothing is written
then); 2 an error (missing or unreadable file, not a checkpoint, nothing to convert, a tensor holding NaN
or infinity), reported in one line.

--to LAYOUT exports: IN is a safetensors file with tinyvid's names (io::save_weights, this tool, or a
`tinyvid train` state, whose model.* it takes), OUT a .pth in torch.save's zip format that torch.load
opens (also with weights_only=True): `archive/data.pkl` (a protocol-2 pickle of tensors rebuilt by
torch._utils._rebuild_tensor_v2 from storages given as persistent ids), `archive/data/<key>` (the
storages' bytes, 64-byte aligned), `archive/byteorder`, `archive/version`. torchvision: the bare state dict
(cls_head.fc_cls only with --keep-fc, as fc); mmaction2 and dnr: {'meta': ..., 'state_dict': ...} as MMCV
saves it; tdn: the same dict, the names under 'module.' as the authors' training saves them (their test script and
resume both read that), with base_model.conv1_temp written as a copy of conv1 (their current TDN_Net registers it, so
load_state_dict(strict=True) needs it; unused by forward, its values do not matter).
Floating-point tensors keep the file's dtype (F32, F16, BF16, F64); num_batches_tracked is int64 (a whole
number whatever its stored dtype). A TSM model is written with MMAction2's TemporalShift names
(conv1.conv.net.*): the model is --model NAME (tinyvid's, e.g. tsm_r50), else the file's metadata
(`model`, or `source_variant` left by an import), else taken to be a TSN. Every name written is checked
to read back as the tinyvid name it came from. The report, --strict and exit status are as above.
"""
import argparse
import collections
import io
import itertools
import json
import os
import pickle
import re
import struct
import sys
import tarfile
import zipfile

try:
    import numpy as np
except ImportError:  # pragma: no cover - depends on the interpreter
    sys.stderr.write("convert_checkpoint: error: this tool needs numpy (Debian: apt-get install python3-numpy)\n")
    sys.exit(2)

PROG = "convert_checkpoint"


class ConvertError(Exception):
    """A problem reported to the user in one line (exit status 2)."""


# --------------------------------------------------------------------------------------------------
# Reading torch.save's pickles without torch
# --------------------------------------------------------------------------------------------------

# Storage class name -> (numpy dtype, element size). bfloat16 is read as its 16 raw bits.
STORAGE_DTYPES = {
    "DoubleStorage": ("f8", 8),
    "FloatStorage": ("f4", 4),
    "HalfStorage": ("f2", 2),
    "BFloat16Storage": ("bf16", 2),
    "LongStorage": ("i8", 8),
    "IntStorage": ("i4", 4),
    "ShortStorage": ("i2", 2),
    "CharStorage": ("i1", 1),
    "ByteStorage": ("u1", 1),
    "BoolStorage": ("?", 1),
    "ComplexFloatStorage": ("c8", 8),
    "ComplexDoubleStorage": ("c16", 16),
    "UntypedStorage": ("u1", 1),
}


class StorageType:
    """Stands in for torch.FloatStorage and friends: only names the element type."""

    def __init__(self, name):
        self.name = name
        self.dtype, self.itemsize = STORAGE_DTYPES[name]

    def __repr__(self):
        return "torch." + self.name


class Storage:
    """A storage's elements, read when a tensor needs them from the checkpoint (zip member or file
    region). Only the storage read last stays in memory (tensors sharing a storage come together)."""

    _recent = [None, None]  # [storage, its elements]

    def __init__(self, stype, read_bytes, byteorder="little"):
        self.stype = stype
        self._read_bytes = read_bytes  # callable returning the raw bytes; set later for legacy files
        self._byteorder = byteorder
        self.base, self.base_offset, self.view_numel = None, 0, None  # legacy views of a root storage

    def array(self):
        if Storage._recent[0] is self:
            return Storage._recent[1]
        if self.base is not None:
            root = self.base.array()
            if self.base_offset + self.view_numel > root.size:
                raise ConvertError("corrupt checkpoint: a storage view lies outside its storage")
            arr = root[self.base_offset:self.base_offset + self.view_numel]
            Storage._recent[:] = [self, arr]
            return arr
        if self._read_bytes is None:
            raise ConvertError("corrupt checkpoint: the data of a storage is missing")
        raw = self._read_bytes()
        itemsize = self.stype.itemsize
        if len(raw) % itemsize:
            raise ConvertError("corrupt checkpoint: a %s of %d bytes" % (self.stype.name, len(raw)))
        end = "<" if self._byteorder == "little" else ">"
        if self.stype.dtype == "bf16":
            bits = np.frombuffer(raw, dtype=end + "u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        elif self.stype.dtype in ("?", "u1", "i1"):
            arr = np.frombuffer(raw, dtype=self.stype.dtype)
        else:
            arr = np.frombuffer(raw, dtype=end + self.stype.dtype)
        Storage._recent[:] = [self, arr]
        return arr


class LazyTensor:
    """A tensor as torch's _rebuild_tensor_v2 describes it; its values are read when asked for."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, Storage):
            raise ConvertError("corrupt checkpoint: a tensor without a storage")
        try:
            self.shape = tuple(int(s) for s in size)
            self.stride = tuple(int(s) for s in stride)
            self.offset = int(offset)
        except (TypeError, ValueError):
            raise ConvertError("corrupt checkpoint: a tensor with a malformed size or stride")
        if len(self.shape) != len(self.stride) or self.offset < 0 or any(s < 0 for s in self.shape + self.stride):
            raise ConvertError("corrupt checkpoint: a tensor with a malformed size or stride")
        self.storage = storage

    @property
    def dtype_name(self):
        return {"f8": "float64", "f4": "float32", "f2": "float16", "bf16": "bfloat16", "i8": "int64", "i4": "int32",
                "i2": "int16", "i1": "int8", "u1": "uint8", "?": "bool", "c8": "complex64",
                "c16": "complex128"}[self.storage.stype.dtype]

    def numpy(self):
        """The values as a new C-contiguous array (offset, size and stride honoured)."""
        data = self.storage.array()
        if any(s == 0 for s in self.shape):
            return np.zeros(self.shape, dtype=data.dtype)
        last = self.offset + sum((n - 1) * st for n, st in zip(self.shape, self.stride))
        if last >= data.size:  # as_strided does not check: never read past the storage
            raise ConvertError("corrupt checkpoint: a tensor reaches past the end of its storage")
        view = np.lib.stride_tricks.as_strided(data[self.offset:], shape=self.shape,
                                               strides=[st * data.itemsize for st in self.stride], writeable=False)
        return np.array(view, copy=True, order="C")


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return LazyTensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False, backward_hooks=None, *unused):
    return LazyTensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=True, backward_hooks=None, *unused):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    # func was resolved by find_class below, so it is one of these functions or a placeholder.
    return func(*args)


class Opaque:
    """An object of a class this tool does not know (optimizer state, config objects, numpy scalars,
    pickled modules). Construction, pickle state and items are recorded or dropped; nothing runs."""

    _qualname = "?"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        pass

    def __setstate__(self, state):
        # A pickled torch.nn.Module keeps _parameters / _buffers / _modules here (see module_state_dict).
        self.__dict__["_pickle_state"] = state

    def __setitem__(self, key, value):
        pass

    def append(self, value):
        pass

    def extend(self, values):
        pass

    def __repr__(self):
        return "<%s>" % self._qualname


_OPAQUE_CLASSES = {}


def _opaque_class(module, name):
    key = module + "." + name
    if key not in _OPAQUE_CLASSES:
        _OPAQUE_CLASSES[key] = type("Opaque_" + re.sub(r"\W", "_", key), (Opaque,), {"_qualname": key})
    return _OPAQUE_CLASSES[key]


# The only globals that resolve to something other than a placeholder.
_SAFE_GLOBALS = {
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch", "Size"): tuple,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
    ("__builtin__", "frozenset"): frozenset,
}


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals above (and storage classes); everything else becomes a placeholder."""

    def __init__(self, file, persistent_load=None):
        super().__init__(file, encoding="utf-8")
        self._persistent = persistent_load

    def find_class(self, module, name):
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        if module in ("torch", "torch.cuda") and name in STORAGE_DTYPES:
            return StorageType(name)
        if module == "torch.storage" and name == "_load_from_bytes":
            raise ConvertError("the checkpoint holds storages pickled with torch.storage._load_from_bytes (a "
                               "nested torch.save); they cannot be read without torch: load it with torch and "
                               "save the state dict again with torch.save(model.state_dict(), path)")
        return _opaque_class(module, name)

    def persistent_load(self, pid):
        if self._persistent is None:
            raise pickle.UnpicklingError("unexpected persistent id")
        return self._persistent(pid)


def _text(v):
    return v.decode("ascii", "replace") if isinstance(v, bytes) else v


def _storage_type(stype):
    if isinstance(stype, StorageType):
        return stype
    # torch >= 2 may name the dtype instead of a storage class (e.g. torch.float32 as a placeholder).
    name = getattr(stype, "_qualname", str(stype))
    by_dtype = {"torch.float64": "DoubleStorage", "torch.float32": "FloatStorage", "torch.float16": "HalfStorage",
                "torch.bfloat16": "BFloat16Storage", "torch.int64": "LongStorage", "torch.int32": "IntStorage",
                "torch.int16": "ShortStorage", "torch.int8": "CharStorage", "torch.uint8": "ByteStorage",
                "torch.bool": "BoolStorage"}
    if name in by_dtype:
        return StorageType(by_dtype[name])
    raise ConvertError("unsupported storage type %s in the checkpoint" % name)


def load_zip(path, zf):
    """torch >= 1.6: <prefix>/data.pkl plus one member per storage under <prefix>/data/."""
    names = zf.namelist()
    pkls = [n for n in names if n == "data.pkl" or (n.endswith("/data.pkl") and n.count("/") == 1)]
    if not pkls:
        if any(n.endswith("/model.json") or n.endswith("/constants.pkl") for n in names):
            raise ConvertError("%s is a TorchScript archive (torch.jit.save), not a torch.save checkpoint" % path)
        raise ConvertError("%s is a zip file but not a PyTorch checkpoint (no data.pkl)" % path)
    prefix = pkls[0][:-len("data.pkl")]
    if prefix + "constants.pkl" in names:
        raise ConvertError("%s is a TorchScript archive (torch.jit.save), not a torch.save checkpoint" % path)
    byteorder = "little"
    if prefix + "byteorder" in names:
        byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
        if byteorder not in ("little", "big"):
            raise ConvertError("corrupt checkpoint: unknown byte order %r" % byteorder)
    storages = {}

    def persistent_load(pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or _text(pid[0]) != "storage":
            what = pid[:1] if isinstance(pid, tuple) else pid
            raise ConvertError("corrupt checkpoint: unexpected persistent id %r" % (what,))
        stype, key = _storage_type(pid[1]), str(_text(pid[2]))
        if key not in storages:
            member = prefix + "data/" + key
            if member not in names:
                raise ConvertError("corrupt checkpoint: storage %s is missing from the archive" % key)
            storages[key] = Storage(stype, lambda member=member: zf.read(member), byteorder)
        return storages[key]

    with zf.open(pkls[0]) as f:
        return RestrictedUnpickler(io.BufferedReader(f), persistent_load).load()


LEGACY_MAGIC = 0x1950a86a20f9469cfc6c
LEGACY_PROTOCOL = 1001


def load_legacy(path, f):
    """torch < 1.6: pickles of the magic number, protocol, sys info, the object (storages as persistent
    ids), the storage keys; then per storage an int64 element count and the raw elements."""
    def plain():
        return RestrictedUnpickler(f).load()

    try:
        magic = plain()
    except Exception:
        magic = None
    if magic != LEGACY_MAGIC:
        f.seek(0)
        if f.read(4) == b"PK\x03\x04":
            raise ConvertError("%s: corrupt checkpoint: a zip archive without its central directory (truncated?)"
                               % path)
        f.seek(0)
        if _is_tar(f):
            raise ConvertError("%s is a tar archive: torch's tar format (torch < 0.4) is not supported; re-save "
                               "the checkpoint with a newer torch" % path)
        f.seek(0)
        head = f.read(9)
        if len(head) == 9 and head[8:] == b"{" and struct.unpack("<Q", head[:8])[0] <= os.fstat(f.fileno()).st_size:
            raise ConvertError("%s is a safetensors file, not a PyTorch checkpoint (to write it as one, use --to "
                               "LAYOUT)" % path)
        raise ConvertError("%s is not a PyTorch checkpoint (neither a zip archive nor torch's legacy format)" % path)
    if plain() != LEGACY_PROTOCOL:
        raise ConvertError("%s: unsupported legacy checkpoint protocol" % path)
    sys_info = plain()
    byteorder = "little"
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        byteorder = "big"
    roots, views = {}, {}

    def persistent_load(pid):
        if not isinstance(pid, tuple) or not pid:
            raise ConvertError("corrupt checkpoint: unexpected persistent id")
        kind = _text(pid[0])
        if kind == "module":  # a pickled nn.Module class with its source: the class is the placeholder
            return pid[1]
        if kind != "storage" or len(pid) < 6:
            raise ConvertError("corrupt checkpoint: unexpected persistent id %r" % (kind,))
        stype, root_key, view_meta = _storage_type(pid[1]), str(_text(pid[2])), pid[5]
        if root_key not in roots:
            roots[root_key] = Storage(stype, None, byteorder)
        root = roots[root_key]
        if view_meta is None:
            return root
        view_key, offset, numel = str(_text(view_meta[0])), int(view_meta[1]), int(view_meta[2])
        if view_key not in views:
            view = Storage(stype, None, byteorder)
            view.base, view.base_offset, view.view_numel = root, offset, numel
            views[view_key] = view
        return views[view_key]

    obj = RestrictedUnpickler(f, persistent_load).load()
    keys = plain()
    if not isinstance(keys, list):
        raise ConvertError("corrupt checkpoint: no storage list after the object")
    for key in keys:
        key = str(_text(key))
        head = f.read(8)
        if len(head) != 8:
            raise ConvertError("corrupt checkpoint: the file ends inside the storages")
        count = struct.unpack("<q" if byteorder == "little" else ">q", head)[0]
        storage = roots.get(key)
        if storage is None:
            raise ConvertError("corrupt checkpoint: storage %s is not used by the object" % key)
        start, nbytes = f.tell(), count * storage.stype.itemsize
        if count < 0 or start + nbytes > os.fstat(f.fileno()).st_size:
            raise ConvertError("corrupt checkpoint: the file ends inside the storages")
        storage._read_bytes = lambda start=start, nbytes=nbytes: _read_at(f, start, nbytes)
        f.seek(start + nbytes)
    return obj


def _read_at(f, start, nbytes):
    f.seek(start)
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise ConvertError("corrupt checkpoint: the file ends inside the storages")
    return data


class Checkpoint:
    """An open checkpoint: `obj` is what torch.save pickled (tensors as LazyTensor)."""

    def __init__(self, path):
        self.path = path
        if not os.path.exists(path):
            raise ConvertError("%s: no such file" % path)
        if os.path.isdir(path):
            raise ConvertError("%s is a directory, not a checkpoint" % path)
        try:
            self._file = open(path, "rb")
        except OSError as e:
            raise ConvertError("%s: %s" % (path, e.strerror or e))
        self._zip = None
        try:
            if zipfile.is_zipfile(self._file):
                self._file.seek(0)
                self.format = "zip (torch >= 1.6)"
                try:
                    self._zip = zipfile.ZipFile(self._file)
                    self.obj = load_zip(path, self._zip)
                except ConvertError as e:
                    raise _about(path, e)
                except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, pickle.UnpicklingError, KeyError,
                        ValueError, TypeError, IndexError, AttributeError, OSError, struct.error,
                        UnicodeDecodeError, NotImplementedError) as e:
                    raise ConvertError("%s: corrupt checkpoint (%s)" % (path, _why(e)))
            else:
                self._file.seek(0)
                self.format = "legacy (torch < 1.6)"
                try:
                    self.obj = load_legacy(path, self._file)
                except ConvertError as e:
                    raise _about(path, e)
                except (EOFError, pickle.UnpicklingError, KeyError, ValueError, TypeError, IndexError,
                        AttributeError, OSError, struct.error, UnicodeDecodeError, NotImplementedError) as e:
                    raise ConvertError("%s: corrupt checkpoint (%s)" % (path, _why(e)))
        except BaseException:
            self.close()
            raise

    def close(self):
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _about(path, e):
    """The error with the file's name in front, once."""
    text = str(e)
    return e if text.startswith(path) else ConvertError("%s: %s" % (path, text))


def _is_tar(f):
    try:
        return tarfile.is_tarfile(f) if sys.version_info >= (3, 9) else False
    except Exception:
        return False


def _why(e):
    text = str(e).strip().splitlines()
    return type(e).__name__ + (": " + text[0] if text else "")


def module_state_dict(obj, prefix=""):
    """The state dict of a pickled torch.nn.Module (torch.save(model)): its _parameters and (persistent)
    _buffers, recursively through _modules. None when obj is not a pickled module."""
    state = obj.__dict__.get("_pickle_state") if isinstance(obj, Opaque) else None
    if not isinstance(state, dict) or not isinstance(state.get("_modules"), dict):
        return None
    out = collections.OrderedDict()
    skip = state.get("_non_persistent_buffers_set") or set()
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is not None and not (group == "_buffers" and name in skip):
                out[prefix + name] = value
    for name, child in state["_modules"].items():
        if child is not None:
            sub = module_state_dict(child, prefix + name + ".")
            if sub:
                out.update(sub)
    return out


def find_state_dict(obj):
    """(state dict, where it was found) from what torch.save stored."""
    def tensors(d):
        return sum(isinstance(v, LazyTensor) for v in d.values())

    if isinstance(obj, dict):
        for key in ("state_dict", "model", "model_state"):
            if key in obj:
                value = obj[key]
                if isinstance(value, dict) and tensors(value):
                    return value, "the checkpoint's %r entry" % key
                sub = module_state_dict(value)
                if sub:
                    return sub, "the module pickled as the checkpoint's %r entry" % key
        if tensors(obj):
            return obj, "the checkpoint itself"
        raise ConvertError("no state dict found: the checkpoint is a dict with entries [%s] and none holds tensors"
                           % ", ".join(str(k) for k in list(obj)[:20]))
    sub = module_state_dict(obj)
    if sub:
        return sub, "the pickled module"
    raise ConvertError("no state dict found: the checkpoint holds a %s, not a dict of tensors"
                       % (getattr(obj, "_qualname", None) or type(obj).__name__))


# --------------------------------------------------------------------------------------------------
# Key mapping: per layout one table of rules, read one way to import and the other way to export
# --------------------------------------------------------------------------------------------------

BN_FIELDS = "weight|bias|running_mean|running_var|num_batches_tracked"
_PROJ = r"(input_proj|hidden_proj)\.[02]\.(weight|bias)"
# Every name a tinyvid recognizer (ResNet backbone, plain or DNR, + ClsHead) has.
TINYVID_KEY = re.compile(
    r"^(backbone\.conv1\.weight"
    r"|backbone\.bn1\.(%(bn)s)"
    r"|backbone\.layer[1-4]\.\d+\.(conv[123]\.weight|bn[123]\.(%(bn)s)|downsample\.0\.weight|downsample\.1\.(%(bn)s))"
    r"|backbone\.layer[1-4]\.relay\.%(proj)s"
    r"|backbone\.layer[1-4]\.\d+\.bn2\.(relay|relay_backward)\.%(proj)s"
    r"|backbone\.layer[1-4]\.\d+\.tam\.[GL]\.([03]\.weight|1\.(%(bn)s))"  # TANet's TAM
    r"|cls_head\.fc_cls\.(weight|bias))$" % {"bn": BN_FIELDS, "proj": _PROJ})
# The names only tinyvid's TDN models have (models/tdn.hpp), read and written by the tdn layout alone: convs with
# biases (the authors' FBResNet), the stem's difference branch (conv1_5, resnext_layer1 with its DNR cells), and in
# the blocks of layer2..layer4 the long-term difference module (mse) and the learnable shift.
TDN_KEY = re.compile(
    r"^(backbone\.conv1\.bias"
    r"|backbone\.conv1_5\.(0\.weight|1\.(%(bn)s))"
    r"|backbone\.(layer[1-4]|resnext_layer1)\.\d+\.(conv[123]|downsample\.0)\.(weight|bias)"
    r"|backbone\.resnext_layer1\.\d+\.(bn[123]|downsample\.1)\.(%(bn)s)"
    r"|backbone\.resnext_layer1\.relay\.%(proj)s"
    r"|backbone\.resnext_layer1\.\d+\.bn2\.(relay|relay_backward)\.%(proj)s"
    r"|backbone\.layer[1-4]\.\d+\.mse\.(conv[123]|conv3_smallscale[24])\.weight"
    r"|backbone\.layer[1-4]\.\d+\.mse\.(bn1|bn3|bn3_smallscale[24])\.(%(bn)s)"
    r"|backbone\.layer[1-4]\.\d+\.shift\.conv\.weight)$" % {"bn": BN_FIELDS, "proj": _PROJ})


def is_tinyvid_name(name):
    """A name some tinyvid recognizer has."""
    return bool(TINYVID_KEY.match(name) or TDN_KEY.match(name))


# What the {X} of a rule's templates stand for; an X stands for the same text on both sides.
_PLACEHOLDERS = {"L": r"layer[1-4]", "B": r"\d+", "N": r"[123]", "I": r"[02]", "P": r"weight|bias", "F": r"\w+",
                 "REST": r".+"}


def _template_regex(template):
    parts = re.split(r"\{(\w+)\}", template)  # literal, placeholder, literal, ...
    return re.compile("".join(re.escape(p) if i % 2 == 0 else "(?P<%s>%s)" % (p, _PLACEHOLDERS[p])
                              for i, p in enumerate(parts)))


class Rule:
    """A layout's name (`source`) and tinyvid's (`tinyvid`) for the same tensors, as templates. `option`:
    None, a rule for every model; "keep_fc", the classifier, mapped only with --keep-fc and otherwise left
    out on purpose (`dropped` says why, by direction); or a variant of a model ("tsm"): read whenever a
    source has such names, written only for a model of that variant (VARIANTS). `export_only`: a rule export
    writes but import leaves to the layout's `unwrap` (a wrapper whose name another wrapper shares).
    tinyvid None: a source tensor tinyvid has no place for, left out on import on purpose (`dropped[True]`
    says why); export never writes it."""

    def __init__(self, source, tinyvid, option=None, dropped=None, export_only=False):
        self.source, self.tinyvid, self.option, self.dropped = source, tinyvid, option, dropped or {}
        self.export_only = export_only
        self._regex = {True: _template_regex(source), False: _template_regex(tinyvid) if tinyvid else None}

    def matches(self, name, to_tinyvid):
        regex = self._regex[to_tinyvid]
        return regex is not None and regex.fullmatch(name) is not None

    def translate(self, name, to_tinyvid):
        """The name on the other side, or None when this rule does not match it (or has none)."""
        if self._regex[to_tinyvid] is None or (to_tinyvid and self.tinyvid is None):
            return None
        m = self._regex[to_tinyvid].fullmatch(name)
        if m is None:
            return None
        return (self.tinyvid if to_tinyvid else self.source).format(**m.groupdict())


class Layout:
    """A source layout: its rules, tried in order (a name no rule matches is the same on both sides);
    `bare_backbone`: keys of a backbone saved on its own (conv1.*, layer1.*) get 'backbone.' on import;
    `unwrap`: on import, a key no rule matches is tried again with wrappers tinyvid has no counterpart of
    taken out; `wrapped`: export writes {'state_dict': ..., 'meta': ...} as MMCV / MMEngine do, else the
    bare state dict; `export_prefix`: put before every name export writes (import takes any 'module.' off);
    `names`: tinyvid names beyond TINYVID_KEY that only this layout's models have (TDN_KEY); `copies`: (source,
    tinyvid) templates of tensors the layout's model holds but never uses, which export writes as copies of
    tinyvid's tensor so that a strict load finds them (import leaves them out by a rule of tinyvid None)."""

    def __init__(self, rules, bare_backbone=True, unwrap=None, wrapped=True, export_prefix="", names=None,
                 copies=()):
        self.rules, self.bare_backbone, self.unwrap, self.wrapped = rules, bare_backbone, unwrap, wrapped
        self.export_prefix, self.names = export_prefix, names
        self.copies = [(source, _template_regex(tinyvid)) for source, tinyvid in copies]

    def has_name(self, name):
        """Whether a model of this layout can have tinyvid's `name`."""
        return bool(TINYVID_KEY.match(name) or (self.names is not None and self.names.match(name)))

    @property
    def variants(self):
        return {r.option for r in self.rules} - {None, "keep_fc"}


def _unwrap_mmaction2(key):
    """MMAction2's wrappers: TemporalShift / TemporalPool add `.net` (anywhere; shift_place 'block', temporal
    pooling), NL3DWrapper puts a block under `.block`."""
    if not key.startswith("backbone."):
        return key
    parts = [p for p in key[len("backbone."):].split(".") if p != "net"]
    if len(parts) > 3 and re.fullmatch(r"layer[1-4]", parts[0]) and parts[1].isdigit() and parts[2] == "block":
        del parts[2]
    return "backbone." + ".".join(parts)


_TDN_STEM_COPY = ("the second ResNet's conv1, which the authors' TDN_Net keeps but never runs; --to tdn writes "
                  "conv1's values there")

_FC_DROPPED = {True: "torchvision's ImageNet classifier (--keep-fc maps it to cls_head.fc_cls)",
               False: "the classifier, as torchvision's fc is ImageNet's; --keep-fc writes cls_head.fc_cls as fc"}

# Adding a layout is one entry here (and a detect_layout clue for reading it without --layout).
LAYOUT_TABLE = collections.OrderedDict([
    # torchvision's ResNet (conv1.weight, layer1.0.conv1.weight, fc.weight): the backbone's own names.
    ("torchvision", Layout([
        Rule("fc.{P}", "cls_head.fc_cls.{P}", "keep_fc", _FC_DROPPED),
        Rule("{REST}", "backbone.{REST}"),
    ], bare_backbone=False, wrapped=False)),
    # MMAction2's ResNet: conv + bn in a ConvModule; TSM (shift_place 'blockres') wraps each block's
    # conv1.conv in a TemporalShift. Torchvision's names under backbone. (torchvision backbones, MMAction
    # v1's ResNet) match no rule and pass through on import.
    ("mmaction2", Layout([
        Rule("backbone.conv1.conv.{F}", "backbone.conv1.{F}"),
        Rule("backbone.conv1.bn.{F}", "backbone.bn1.{F}"),
        Rule("backbone.{L}.{B}.conv1.conv.net.{F}", "backbone.{L}.{B}.conv1.{F}", "tsm"),
        # TANet: each block inside a TABlock (`.block`) beside its TAM (`.tam.*`, tinyvid's names too). On import
        # `.block` is unwrapped as NL3DWrapper's, which has the same name.
        Rule("backbone.{L}.{B}.block.conv{N}.conv.{F}", "backbone.{L}.{B}.conv{N}.{F}", "tanet", export_only=True),
        Rule("backbone.{L}.{B}.block.conv{N}.bn.{F}", "backbone.{L}.{B}.bn{N}.{F}", "tanet", export_only=True),
        Rule("backbone.{L}.{B}.block.downsample.conv.{F}", "backbone.{L}.{B}.downsample.0.{F}", "tanet",
             export_only=True),
        Rule("backbone.{L}.{B}.block.downsample.bn.{F}", "backbone.{L}.{B}.downsample.1.{F}", "tanet",
             export_only=True),
        Rule("backbone.{L}.{B}.conv{N}.conv.{F}", "backbone.{L}.{B}.conv{N}.{F}"),
        Rule("backbone.{L}.{B}.conv{N}.bn.{F}", "backbone.{L}.{B}.bn{N}.{F}"),
        Rule("backbone.{L}.{B}.downsample.conv.{F}", "backbone.{L}.{B}.downsample.0.{F}"),
        Rule("backbone.{L}.{B}.downsample.bn.{F}", "backbone.{L}.{B}.downsample.1.{F}"),
    ], unwrap=_unwrap_mmaction2)),
    # The DNR authors' ResNet_DNR (MMAction v1): per stage a `wrapper` of the blocks (`ModuleList`) and the
    # cross-layer `lstm` (w_ih / w_hh: Linear, ReLU, Linear); each block's bn2 holds its own `lstm`.
    ("dnr", Layout([
        Rule("backbone.{L}.lstm.w_ih.0.seq.{I}.{P}", "backbone.{L}.relay.input_proj.{I}.{P}"),
        Rule("backbone.{L}.lstm.w_hh.0.seq.{I}.{P}", "backbone.{L}.relay.hidden_proj.{I}.{P}"),
        Rule("backbone.{L}.ModuleList.{B}.bn2.lstm.w_ih.0.seq.{I}.{P}",
             "backbone.{L}.{B}.bn2.relay.input_proj.{I}.{P}"),
        Rule("backbone.{L}.ModuleList.{B}.bn2.lstm.w_hh.0.seq.{I}.{P}",
             "backbone.{L}.{B}.bn2.relay.hidden_proj.{I}.{P}"),
        Rule("backbone.{L}.ModuleList.{B}.{REST}", "backbone.{L}.{B}.{REST}"),
    ])),
    # The TDN authors' TSN (MCG-NJU/TDN, ops/models.py) around TDN_Net (ops/tdn_net.py): the RGB ResNet's stages as
    # layerN_bak, the difference branch (conv1_5, resnext_layer1) beside conv1 / bn1, the classifier new_fc (fc with
    # dropout 0), under 'module.' (DataParallel) as their main.py saves it. conv1_temp is the second ResNet's conv1,
    # unused by forward; their first release (2b0a287, Dec 2020) registers it a second time as conv1_temp1, their
    # current code (bcf28d9, Mar 2021, which tinyvid's TDN follows) does not: export writes conv1_temp only, as a
    # strict load into the current code needs.
    ("tdn", Layout([
        Rule("new_fc.{P}", "cls_head.fc_cls.{P}"),
        Rule("base_model.fc.{P}", "cls_head.fc_cls.{P}"),
        Rule("base_model.conv1_temp.{P}", None, dropped={True: _TDN_STEM_COPY}),
        Rule("base_model.conv1_temp1.{P}", None, dropped={True: _TDN_STEM_COPY}),
        Rule("base_model.{L}_bak.{REST}", "backbone.{L}.{REST}"),
        Rule("base_model.{REST}", "backbone.{REST}"),
    ], bare_backbone=False, export_prefix="module.", names=TDN_KEY,
       copies=[("base_model.conv1_temp.{P}", "backbone.conv1.{P}")])),
])
LAYOUTS = tuple(LAYOUT_TABLE)

# A tinyvid model of a variant (by its name, see models/registry.hpp) is written with that variant's rules.
VARIANTS = {"tsm": re.compile(r"^tsm_"), "tanet": re.compile(r"^tanet_")}
# Other names of layouts on the command line: the issue's `authors` is the DNR authors' layout.
LAYOUT_ALIASES = {"authors": "dnr"}

# Parameter-free modules of MMAction (v1) / MMAction2 recognizers and their data preprocessor: any
# key under them (none normally) carries nothing tinyvid has.
IGNORED_PREFIXES = ("spatial_temporal_module.", "segmental_consensus.", "data_preprocessor.")


def detect_layout(keys):
    if any(re.match(r"^base_model\.(layer[1-4]_bak|conv1_5|resnext_layer1)\.", k) for k in keys):
        return "tdn"
    if any(".ModuleList." in k or ".lstm.w_ih." in k or ".lstm.w_hh." in k for k in keys):
        return "dnr"
    if any(k.startswith(("backbone.", "cls_head.")) for k in keys):
        return "mmaction2"
    if any(re.match(r"^(conv1\.conv|layer[1-4]\.\d+\.conv[123]\.conv)\.", k) for k in keys):
        return "mmaction2"  # an MMAction2 backbone's own state dict
    if any(k == "conv1.weight" or k.startswith("layer1.") or k.startswith("fc.") for k in keys):
        return "torchvision"
    return None


def _backbone(key):
    """Backbone keys saved without the recognizer around them get 'backbone.'."""
    if key.startswith(("backbone.", "cls_head.")):
        return key
    if re.match(r"^(conv1|bn1|layer[1-4])\.", key):
        return "backbone." + key
    return key


def _translate(name, layout, to_tinyvid, keep_fc, variants=()):
    """(the name on the other side or None, note, the rule that matched or None) by the first matching
    rule; export skips the rules of variants the model is not."""
    for rule in layout.rules:
        if not to_tinyvid and rule.option not in (None, "keep_fc") and rule.option not in variants:
            continue
        if to_tinyvid and rule.export_only:
            continue
        if to_tinyvid and rule.tinyvid is None:
            if rule.matches(name, True):
                return None, "dropped: " + rule.dropped[True], rule
            continue
        out = rule.translate(name, to_tinyvid)
        if out is not None:
            if rule.option == "keep_fc" and not keep_fc:
                return None, "dropped: " + rule.dropped[to_tinyvid], rule
            return out, "", rule
    return name, "", None


def import_key(key, layout, keep_fc=False):
    """(tinyvid name or None, note, the variant the key's name shows or None)."""
    key = strip_module(key)
    if key.startswith(IGNORED_PREFIXES):
        return None, "dropped: a parameter-free module's key", None
    lay = LAYOUT_TABLE[layout]
    if lay.bare_backbone:
        key = _backbone(key)
    target, note, rule = _translate(key, lay, True, keep_fc)
    if rule is None and lay.unwrap is not None:
        target, note, rule = _translate(lay.unwrap(key), lay, True, keep_fc)
    if target is None:
        return None, note, None
    if lay.has_name(target):
        return target, "", rule.option if rule is not None and rule.option in lay.variants else None
    return None, "no tinyvid counterpart", None


def map_key(key, layout, keep_fc=False):
    """(target name or None, note). A None target with a note starting 'dropped' is a key left out on
    purpose; any other None is a key that could not be mapped."""
    return import_key(key, layout, keep_fc)[:2]


def export_key(name, layout, keep_fc=False, variants=()):
    """(the layout's name for tinyvid's `name` or None, note), as map_key: the same rules read the other
    way. The name written must read back as `name`, so the two directions cannot drift apart."""
    if not is_tinyvid_name(name):
        return None, "not a tinyvid name"
    lay = LAYOUT_TABLE[layout]
    if not lay.has_name(name):
        return None, "no %s counterpart (a name of tinyvid's TDN models, written by --to tdn)" % layout
    target, note, rule = _translate(name, lay, False, keep_fc, variants)
    if target is None:
        return None, note
    target = lay.export_prefix + target
    back = map_key(target, layout, keep_fc=True)[0]
    if back != name:  # cannot happen with the tables above; a new rule that breaks this is caught here
        return None, "no %s counterpart (%s would read back as %s)" % (layout, target, back)
    return target, ""


# --------------------------------------------------------------------------------------------------
# Shape checks
# --------------------------------------------------------------------------------------------------

def check_shapes(shapes):
    """Consistency of the converted tensors' shapes (name -> shape tuple); a list of problems."""
    problems = []

    def need(cond, msg):
        if not cond:
            problems.append(msg)

    def fmt(s):
        return "x".join(str(d) for d in s) if s else "scalar"

    norms = {}  # norm prefix -> channels
    for name, shape in shapes.items():
        m = re.fullmatch(r"(.+)\.(weight|bias|running_mean|running_var|num_batches_tracked)", name)
        if not m or not is_tinyvid_name(name):
            continue
        prefix, field = m.groups()
        is_norm = re.search(r"(^|\.)(bn[123]|downsample\.1|conv1_5\.1|bn3_smallscale[24])$", prefix) is not None
        if is_norm:
            if field == "num_batches_tracked":
                need(shape == (), "%s: expected a scalar, got %s" % (name, fmt(shape)))
            else:
                need(len(shape) == 1, "%s: expected a vector, got %s" % (name, fmt(shape)))
                if len(shape) == 1:
                    if norms.setdefault(prefix, shape[0]) != shape[0]:
                        problems.append("%s: %d channels, but other tensors of %s have %d"
                                        % (name, shape[0], prefix, norms[prefix]))
        elif re.search(r"(^|\.)(conv[123]|downsample\.0|conv1_5\.0|conv3_smallscale[24])$", prefix):
            if field == "weight":
                need(len(shape) == 4, "%s: expected a 4-d convolution weight, got %s" % (name, fmt(shape)))
            else:  # TDN's convs have biases: one per output channel
                w = shapes.get(prefix + ".weight")
                need(len(shape) == 1 and (w is None or not w or shape[0] == w[0]), "%s: expected one per output "
                     "channel of %s.weight (%s), got %s" % (name, prefix, fmt(w) if w else "missing", fmt(shape)))
    # Each conv's output channels feed the norm after it.
    for name, shape in shapes.items():
        m = re.fullmatch(r"(.*)(conv([123])|downsample\.0)\.weight", name)
        if not m or len(shape) != 4:
            continue
        base, module, n = m.groups()
        norm = base + ("bn" + n if n else "downsample.1")
        if norm in norms:
            need(norms[norm] == shape[0], "%s: %d output channels, but %s has %d"
                 % (name, shape[0], norm, norms[norm]))
        if n in ("2", "3") and not base.endswith(".mse."):  # TDN's mse.conv2 is depthwise: checked below
            prev = shapes.get("%sconv%d.weight" % (base, int(n) - 1))
            if prev is not None and len(prev) == 4:
                need(prev[0] == shape[1], "%s: %d input channels, but conv%d gives %d"
                     % (name, shape[1], int(n) - 1, prev[0]))
    stem = shapes.get("backbone.conv1.weight")
    if stem is not None:
        need(stem[1:2] == (3,), "backbone.conv1.weight: expected 3 input channels (RGB), got %s" % fmt(stem))
    # Relay cells: input_proj.0 C/4 x C, input_proj.2 4C x C/4 (hidden_proj the same), C being the
    # channels of the norm they drive.
    cells = sorted({re.sub(r"\.(input_proj|hidden_proj)\..*$", "", n) for n in shapes if ".relay" in n})
    for cell in cells:
        w = shapes.get(cell + ".input_proj.0.weight")
        if w is None or len(w) != 2:
            problems.append("%s: input_proj.0.weight is missing or not a matrix" % cell)
            continue
        c = w[1]
        m = re.fullmatch(r"backbone\.(layer[1-4]|resnext_layer1)\.relay", cell)
        norm = (m.group(1) + ".0.bn1") if m else cell.rsplit(".", 1)[0]  # stage cell: its blocks' bn1
        norm = norm if norm.startswith("backbone.") else "backbone." + norm
        if norm in norms:
            need(norms[norm] == c, "%s: a relay cell for %d channels drives %s with %d" % (cell, c, norm, norms[norm]))
        expected = {"0.weight": (c // 4, c), "0.bias": (c // 4,), "2.weight": (4 * c, c // 4), "2.bias": (4 * c,)}
        for proj in ("input_proj", "hidden_proj"):
            for suffix, want in expected.items():
                name = "%s.%s.%s" % (cell, proj, suffix)
                got = shapes.get(name)
                if got is None:
                    problems.append("%s: missing (a relay cell needs all 8 tensors)" % name)
                else:
                    need(got == want, "%s: expected %s (C/4 x C, 4C x C/4 with C = %d), got %s"
                         % (name, fmt(want), c, fmt(got)))
    problems += _check_tdn_shapes(shapes, norms, fmt)
    w, b = shapes.get("cls_head.fc_cls.weight"), shapes.get("cls_head.fc_cls.bias")
    if w is not None:
        need(len(w) == 2, "cls_head.fc_cls.weight: expected a matrix, got %s" % fmt(w))
        if b is not None and len(w) == 2:
            need(b == (w[0],), "cls_head.fc_cls.bias: expected %d, got %s" % (w[0], fmt(b)))
        last = _last_stage_channels(shapes)
        if last is not None and len(w) == 2:
            need(w[1] == last, "cls_head.fc_cls.weight: %d input features, but the backbone gives %d" % (w[1], last))
    return problems


def _check_tdn_shapes(shapes, norms, fmt):
    """TDN's modules: the difference branch's conv1_5 (4 RGB differences in, conv1's channels out, as the two
    paths are added); per block the mse (C -> C/16 by conv1, depthwise conv2, conv3 back to C; C being the block's
    conv1 output) and the shift (one 3-tap kernel per channel)."""
    problems = []

    def need(cond, msg):
        if not cond:
            problems.append(msg)

    diff, stem = shapes.get("backbone.conv1_5.0.weight"), shapes.get("backbone.conv1.weight")
    if diff is not None and len(diff) == 4:
        need(diff[1] == 12, "backbone.conv1_5.0.weight: expected 12 input channels (4 frame differences x RGB), got %s"
             % fmt(diff))
        if stem is not None and len(stem) == 4:
            need(diff[0] == stem[0], "backbone.conv1_5.0.weight: %d output channels, but conv1 gives %d (TDN adds the "
                 "two)" % (diff[0], stem[0]))
        if "backbone.conv1_5.1" in norms:
            need(norms["backbone.conv1_5.1"] == diff[0], "backbone.conv1_5.0.weight: %d output channels, but "
                 "backbone.conv1_5.1 has %d" % (diff[0], norms["backbone.conv1_5.1"]))
    for name, shape in shapes.items():
        m = re.fullmatch(r"(backbone\.layer[1-4]\.\d+)\.(mse\.conv1|shift\.conv)\.weight", name)
        if not m:
            continue
        block, module = m.groups()
        conv1 = shapes.get(block + ".conv1.weight")
        planes = conv1[0] if conv1 else (shape[1] if module == "mse.conv1" and len(shape) > 1 else shape[0])
        if module == "shift.conv":
            need(shape == (planes, 1, 3), "%s: expected %s (one 3-tap kernel per channel of conv1's %d), got %s"
                 % (name, fmt((planes, 1, 3)), planes, fmt(shape)))
            continue
        mid = shape[0]
        expected = {"conv1": (mid, planes, 1, 1), "conv2": (mid, 1, 3, 3), "conv3": (planes, mid, 1, 1),
                    "conv3_smallscale2": (mid, mid, 3, 3), "conv3_smallscale4": (mid, mid, 3, 3)}
        for conv, want in expected.items():
            got = shapes.get("%s.mse.%s.weight" % (block, conv))
            if got is not None:
                need(got == want, "%s.mse.%s.weight: expected %s (C = %d channels, C/16 = %d), got %s"
                     % (block, conv, fmt(want), planes, mid, fmt(got)))
        for bn, want in (("bn1", mid), ("bn3", planes), ("bn3_smallscale2", mid), ("bn3_smallscale4", mid)):
            got = norms.get("%s.mse.%s" % (block, bn))
            if got is not None:
                need(got == want, "%s.mse.%s: %d channels, expected %d" % (block, bn, got, want))
    return problems


def _last_stage_channels(shapes):
    blocks = {}
    for name in shapes:
        m = re.fullmatch(r"backbone\.layer4\.(\d+)\.conv([123])\.weight", name)
        if m:
            b, n = int(m.group(1)), int(m.group(2))
            blocks[b] = max(blocks.get(b, 0), n)
    if not blocks:
        return None
    b = max(blocks)
    w = shapes.get("backbone.layer4.%d.conv%d.weight" % (b, blocks[b]))
    return w[0] if w is not None and len(w) == 4 else None


# --------------------------------------------------------------------------------------------------
# safetensors
# --------------------------------------------------------------------------------------------------

def stored_dtype(name):
    """PyTorch keeps BatchNorm's num_batches_tracked as int64: stored so, it stays exact (as tinyvid writes it)."""
    return "I64" if name.endswith("num_batches_tracked") else "F32"


_TEMP_COUNT = itertools.count()


def _fsync_directory(path):
    """Makes a rename in path's directory durable; best effort, since some file systems refuse it."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path, write):
    """write(f) fills a temporary file of this process and call (two writers never share one), which is
    flushed to disk and renamed over `path`, and the directory flushed; nothing is left behind on failure."""
    tmp = "%s.tmp.%d.%d" % (path, os.getpid(), next(_TEMP_COUNT))
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise ConvertError("cannot write %s: %s" % (path, e.strerror or e))
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_directory(path)


def count_bytes(path, name, a):
    """A count (num_batches_tracked) as int64 bytes; refused unless every element is a whole number."""
    whole = (a == np.trunc(a)) & (np.abs(a) < 2.0 ** 63) if a.dtype.kind == "f" else True
    if not np.all(whole):
        raise ConvertError("cannot write %s: %s holds %s; expected a whole number (a count, stored as int64)"
                           % (path, name, a[~whole].ravel()[0]))
    return np.ascontiguousarray(a, dtype="<i8").tobytes()


def check_finite(path, what, original, converted):
    """Weights holding NaN or infinity (a diverged run, or float64 beyond float32's range) would make every
    output NaN: refused, with the first bad element. `what`: the tensor's names, source (target)."""
    if converted.dtype.kind not in "fc":
        return
    bad = np.flatnonzero(~np.isfinite(converted))
    if bad.size:
        i = int(bad[0])
        value = original.ravel()[i]
        raise ConvertError("%s: %s holds %s at flat index %d (%d non-finite of %d values%s); expected finite weights, "
                           "nothing written" % (path, what, value, i, bad.size, converted.size,
                                                ", beyond float32's range" if np.isfinite(value) else ""))


def write_safetensors(path, shapes, produce, metadata):
    """shapes: name -> shape; produce(name): that tensor as an array, asked for one at a time while
    writing, so only one tensor is in memory; stored as F32, or I64 for num_batches_tracked (stored_dtype).
    Header: sorted names, padded with spaces to 8 bytes. Written atomically (write_atomically)."""
    header = {"__metadata__": {str(k): str(v) for k, v in metadata.items()}}
    offset = 0
    names = sorted(shapes)
    for name in names:
        dtype = stored_dtype(name)
        nbytes = (8 if dtype == "I64" else 4) * int(np.prod(shapes[name], dtype=np.int64))
        header[name] = {"dtype": dtype, "shape": list(shapes[name]), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode("utf-8")
    blob += b" " * (-len(blob) % 8)

    def write(f):
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name in names:
            a = produce(name)
            if tuple(a.shape) != tuple(shapes[name]):  # cannot happen: the shape is the tensor's own
                raise ConvertError("internal error: %s changed shape" % name)
            if stored_dtype(name) == "I64":
                f.write(count_bytes(path, name, a))
            else:
                f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())

    write_atomically(path, write)
    return 8 + len(blob) + offset


# safetensors dtype -> the torch storage holding it (STORAGE_DTYPES: how to read its bytes).
SAFETENSORS_STORAGES = {"F64": "DoubleStorage", "F32": "FloatStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage",
                        "I64": "LongStorage", "I32": "IntStorage", "I16": "ShortStorage", "I8": "CharStorage",
                        "U8": "ByteStorage", "BOOL": "BoolStorage"}


class SafetensorsFile:
    """A safetensors file read without loading it: `metadata`, and `tensors` (name -> LazyTensor over
    the file's bytes, little-endian as the format says), in the header's order."""

    def __init__(self, path):
        if not os.path.exists(path):
            raise ConvertError("%s: no such file" % path)
        if os.path.isdir(path):
            raise ConvertError("%s is a directory, not a safetensors file" % path)
        try:
            self._file = open(path, "rb")
        except OSError as e:
            raise ConvertError("%s: %s" % (path, e.strerror or e))
        try:
            self._read_header(path)
        except BaseException:
            self.close()
            raise

    def _read_header(self, path):
        f = self._file
        size = os.fstat(f.fileno()).st_size
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        first = f.read(1) if 0 < n <= size - 8 else b""
        if first != b"{":
            f.seek(0)
            start = f.read(4)
            hint = ""
            if start.startswith(b"PK\x03\x04") or start.startswith(b"\x80"):
                hint = " (it looks like a PyTorch checkpoint: to convert one into tinyvid's names, leave out --to)"
            raise ConvertError("%s is not a safetensors file%s" % (path, hint))
        try:
            header = json.loads((first + f.read(n - 1)).decode("utf-8"),
                                object_pairs_hook=collections.OrderedDict)
        except (ValueError, UnicodeDecodeError) as e:
            raise ConvertError("%s: corrupt safetensors header (%s)" % (path, _why(e)))
        if not isinstance(header, dict):
            raise ConvertError("%s: corrupt safetensors header (not a JSON object)" % path)
        meta = header.pop("__metadata__", None) or {}
        if not isinstance(meta, dict):
            raise ConvertError("%s: corrupt safetensors header (__metadata__ is not an object)" % path)
        self.metadata = collections.OrderedDict((str(k), str(v)) for k, v in meta.items())
        data_start, data_size = 8 + n, size - 8 - n
        self.tensors = collections.OrderedDict()
        for name, e in header.items():
            try:
                dtype, shape, (begin, end) = e["dtype"], [int(d) for d in e["shape"]], e["data_offsets"]
                begin, end = int(begin), int(end)
                stype = StorageType(SAFETENSORS_STORAGES[dtype])
            except (KeyError, TypeError, ValueError):
                raise ConvertError("%s: corrupt safetensors header: tensor %r: %s" % (
                    path, name, "dtype %r is none of %s" % (e.get("dtype"), ", ".join(SAFETENSORS_STORAGES))
                    if isinstance(e, dict) and e.get("dtype") not in SAFETENSORS_STORAGES
                    else "expected dtype, shape and data_offsets"))
            numel = int(np.prod(shape, dtype=np.int64))
            if any(d < 0 for d in shape) or not 0 <= begin <= end <= data_size or end - begin != numel * stype.itemsize:
                raise ConvertError("%s: corrupt safetensors file: tensor %r (%s %s) does not fit data_offsets [%d, %d] "
                                   "of %d data bytes" % (path, name, dtype, shape, begin, end, data_size))
            storage = Storage(stype, lambda at=data_start + begin, nbytes=end - begin: _read_at(self._file, at, nbytes))
            stride, acc = [], 1
            for d in reversed(shape):
                stride.insert(0, acc)
                acc *= d
            self.tensors[str(name)] = LazyTensor(storage, 0, shape, stride)

    def close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------------------------------
# torch.save's zip format, written
# --------------------------------------------------------------------------------------------------

class PthTensor:
    """A tensor to write: its storage class (STORAGE_DTYPES), shape, and produce() -> its little-endian bytes,
    asked for once, while writing."""

    def __init__(self, storage, shape, produce):
        self.storage, self.shape, self.produce = storage, tuple(shape), produce


def _pickle_for_torch(obj, tensors):
    """obj (dicts, OrderedDicts, lists, tuples, str, int, float, bool, None, PthTensor) as torch.save pickles it
    (protocol 2): a tensor is torch._utils._rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict())
    with the storage a persistent id ('storage', torch.<X>Storage, key, 'cpu', numel). Written opcode by opcode,
    so no torch module is needed (pickle.Pickler would import torch to check its globals). Appends each
    tensor to `tensors`; its key is its index."""
    out = bytearray(b"\x80\x02")

    def global_(module, name):
        out.extend(b"c%s\n%s\n" % (module.encode(), name.encode()))

    def items(pairs, op):
        pairs = list(pairs)
        if pairs:
            out.extend(b"(")
            for k, v in pairs:
                emit(k)
                emit(v)
            out.extend(op)

    def emit(o):
        if o is None:
            out.extend(b"N")
        elif o is True or o is False:
            out.extend(b"\x88" if o else b"\x89")
        elif isinstance(o, int):
            if 0 <= o < 256:
                out.extend(b"K" + bytes([o]))
            elif 0 <= o < 65536:
                out.extend(b"M" + struct.pack("<H", o))
            elif -2 ** 31 <= o < 2 ** 31:
                out.extend(b"J" + struct.pack("<i", o))
            else:
                n = (o.bit_length() + 8) // 8
                out.extend(b"\x8a" + bytes([n]) + o.to_bytes(n, "little", signed=True))
        elif isinstance(o, float):
            out.extend(b"G" + struct.pack(">d", o))
        elif isinstance(o, str):
            data = o.encode("utf-8")
            out.extend(b"X" + struct.pack("<I", len(data)) + data)
        elif isinstance(o, tuple):
            if not o:
                out.extend(b")")
            else:
                out.extend(b"(")
                for x in o:
                    emit(x)
                out.extend(b"t")
        elif isinstance(o, list):
            out.extend(b"]")
            if o:
                out.extend(b"(")
                for x in o:
                    emit(x)
                out.extend(b"e")
        elif isinstance(o, collections.OrderedDict):
            global_("collections", "OrderedDict")
            out.extend(b")R")
            items(o.items(), b"u")
        elif isinstance(o, dict):
            out.extend(b"}")
            items(o.items(), b"u")
        elif isinstance(o, PthTensor):
            key = str(len(tensors))
            tensors.append(o)
            stride, acc = [], 1
            for d in reversed(o.shape):
                stride.insert(0, acc)
                acc *= d
            global_("torch._utils", "_rebuild_tensor_v2")
            out.extend(b"((")  # the arguments' tuple, then the persistent id's
            emit("storage")
            global_("torch", o.storage)
            emit(key)
            emit("cpu")
            emit(acc)
            out.extend(b"tQ")
            for x in (0, o.shape, tuple(stride), False, collections.OrderedDict()):
                emit(x)
            out.extend(b"tR")
        else:
            raise TypeError("cannot write a %s into a checkpoint" % type(o).__name__)

    emit(obj)
    out.extend(b".")
    return bytes(out)


PTH_ARCHIVE = "archive"  # the folder of the zip's members (torch.load takes any name)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same tensors give the same bytes


def write_pth(path, obj):
    """torch.save(obj, path) in its zip format (torch >= 1.6), without torch: archive/data.pkl (the pickle),
    archive/byteorder ("little"), archive/data/<key> per storage (its raw bytes, stored uncompressed at a
    multiple of 64 bytes as torch aligns them), archive/version ("3"). Tensors' bytes are asked for one at a
    time. Written atomically (write_atomically); returns the file's size."""
    tensors = []
    pkl = _pickle_for_torch(obj, tensors)

    def write(f):
        with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as z:
            def member(name, data):
                name = "%s/%s" % (PTH_ARCHIVE, name)
                info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
                info.compress_type = zipfile.ZIP_STORED
                # The local header is 30 bytes, the name, the extra field, and (for a large member) zip64's
                # 20-byte extra; torch pads its extra field ('FB') so the data starts at a multiple of 64.
                zip64 = 20 if len(data) * 1.05 > zipfile.ZIP64_LIMIT else 0
                pad = -(f.tell() + 30 + len(name.encode("utf-8")) + 4 + zip64) % 64
                info.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad
                z.writestr(info, data)

            member("data.pkl", pkl)
            member("byteorder", b"little")
            for key, t in enumerate(tensors):
                data = t.produce()
                want = STORAGE_DTYPES[t.storage][1] * int(np.prod(t.shape, dtype=np.int64))
                if len(data) != want:  # cannot happen: the bytes are the tensor's own
                    raise ConvertError("internal error: tensor %d has %d bytes, expected %d" % (key, len(data), want))
                member("data/%d" % key, data)
            member("version", b"3\n")

    write_atomically(path, write)
    return os.path.getsize(path)


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

def strip_module(key):
    while key.startswith("module."):
        key = key[len("module."):]
    return key


def _fmt_shape(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _list(tensors, skipped=()):
    for key, t in tensors.items():
        print("%s\t%s\t%s" % (key, _fmt_shape(t.shape), t.dtype_name))
    for key in skipped:
        print("%s\t-\tnot a tensor" % key)
    return 0


def _report(log, args, n_mapped, n_keys, dropped, unmapped, shapes=None):
    """Logs what was mapped, left out and not mapped, and the shape check (tinyvid's names -> shapes; None:
    nothing to check); with --strict, False when a key could not be mapped or a shape is wrong (nothing is
    written then)."""
    log("mapped %d of %d keys" % (n_mapped, n_keys))
    if dropped:
        log("%d key%s left out on purpose:" % (len(dropped), "" if len(dropped) == 1 else "s"))
        for key, note in dropped:
            log("  %s (%s)" % (key, note[len("dropped: "):]))
    if unmapped:
        log("%d key%s could not be mapped:" % (len(unmapped), "" if len(unmapped) == 1 else "s"))
        for key, note in unmapped:
            log("  %s (%s)" % (key, note))
    if shapes is None:
        return True
    problems = check_shapes(shapes)
    if problems:
        log("shape check: %d problem%s:" % (len(problems), "" if len(problems) == 1 else "s"))
        for p in problems:
            log("  " + p)
    else:
        log("shape check: ok")
    if args.strict and (unmapped or problems):
        log("--strict: %s; nothing written" % ", ".join(
            x for x in ("%d unmapped key(s)" % len(unmapped) if unmapped else "",
                        "%d shape problem(s)" % len(problems) if problems else "") if x))
        return False
    return True


def _map_all(names, translate):
    """translate(name) -> (target or None, note): (target -> source name, dropped, unmapped)."""
    mapped, dropped, unmapped = collections.OrderedDict(), [], []
    for name in names:
        target, note = translate(name)
        if target is None:
            (dropped if note.startswith("dropped") else unmapped).append((name, note))
        elif target in mapped:
            unmapped.append((name, "maps to %s like %s" % (target, mapped[target])))
        else:
            mapped[target] = name
    return mapped, dropped, unmapped


def convert(args, log):
    """IN.pth -> OUT.safetensors with tinyvid's names."""
    with Checkpoint(args.input) as ckpt:
        state, where = find_state_dict(ckpt.obj)
        entries = ""
        if isinstance(ckpt.obj, dict) and where != "the checkpoint itself":
            entries = " (entries: %s)" % ", ".join(str(k) for k in ckpt.obj)
        log("read %s: %s format, state dict from %s%s" % (args.input, ckpt.format, where, entries))
        tensors = collections.OrderedDict()
        skipped = []
        for key, value in state.items():
            if isinstance(value, LazyTensor):
                tensors[str(key)] = value
            else:
                skipped.append(str(key))
        if args.list:
            return _list(tensors, skipped)

        source = [strip_module(k) for k in tensors]
        if len(set(source)) != len(tensors):
            raise ConvertError("the state dict has the same key with and without a 'module.' prefix")
        layout = args.layout or "auto"
        if layout == "auto":
            layout = detect_layout(source)
            if layout is None:
                raise ConvertError("cannot tell the checkpoint's layout from its keys (e.g. %s); use --layout"
                                   % ", ".join(source[:3]))
            log("layout: %s (detected)" % layout)
        else:
            log("layout: %s (--layout)" % layout)

        variants = set()

        def translate(key):
            target, note, variant = import_key(key, layout, args.keep_fc)
            if variant:
                variants.add(variant)
            return target, note

        owner, dropped, unmapped = _map_all(tensors, lambda key: translate(strip_module(key)))
        unmapped += [(k, "not a tensor") for k in skipped]
        mapped = {target: tensors[orig] for target, orig in owner.items()}
        if not mapped:
            _report(log, args, 0, len(source) + len(skipped), dropped, unmapped)
            raise ConvertError("nothing to convert: no key maps to a tinyvid name with layout %s" % layout)
        if not _report(log, args, len(mapped), len(source) + len(skipped), dropped, unmapped,
                       {k: t.shape for k, t in mapped.items()}):
            return 1

        for name, t in mapped.items():
            if t.storage.stype.dtype in ("c8", "c16"):
                raise ConvertError("%s is complex; tinyvid has no complex tensors" % owner[name])

        def produce(name):
            try:
                a = mapped[name].numpy()
            except ConvertError as e:
                raise _about(args.input, e)
            except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:  # a damaged storage, read only now
                raise ConvertError("%s: corrupt checkpoint (%s)" % (args.input, _why(e)))
            if stored_dtype(name) == "I64":
                return a
            converted = a.astype(np.float32)
            check_finite(args.input, "%s (%s)" % (owner[name], name), a, converted)
            return converted

        meta = {"format": "pt", "source_layout": layout, "source_file": os.path.basename(args.input),
                "converter": "tinyvid tools/convert_checkpoint.py"}
        if variants:  # e.g. TSM's names: --to writes them back
            meta["source_variant"] = ",".join(sorted(variants))
        size = write_safetensors(args.output, {k: t.shape for k, t in mapped.items()}, produce, meta)
        log("wrote %s: %d tensors, %d bytes" % (args.output, len(mapped), size))
    return 0


def _natural(name):
    """layer1.2 before layer1.10."""
    return [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in name.split(".")]


def _model_variants(model):
    return {v for v, pattern in VARIANTS.items() if pattern.match(model)}


def _le_bytes(a, stype):
    """An array read from a storage of type stype, as that storage's little-endian bytes again."""
    if stype.dtype == "bf16":  # read as float32 with the 16 bits on top: exact
        return (np.ascontiguousarray(a, np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
    return np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


_SHOWN_METADATA = ("format", "model", "source_layout", "source_variant", "source_file")


def export(args, log):
    """IN.safetensors with tinyvid's names -> OUT.pth in the layout args.to."""
    layout = args.to
    lay = LAYOUT_TABLE[layout]
    with SafetensorsFile(args.input) as st:
        meta = st.metadata
        shown = ["%s=%s" % (k, meta[k]) for k in _SHOWN_METADATA if k in meta]
        log("read %s: safetensors, %d tensors%s" % (args.input, len(st.tensors),
                                                      " (metadata: %s)" % ", ".join(shown) if shown else ""))
        if args.list:
            return _list(st.tensors)
        log("layout: %s (--to)" % layout)
        # `tinyvid train`'s state file holds the model's tensors under model. and the optimizer's under momentum.
        train_state = meta.get("format") == "tinyvid-train-state"

        def tinyvid_name(key):
            if not train_state:
                return key
            return key[len("model."):] if key.startswith("model.") else None

        model = args.model or meta.get("model")
        if model:
            variants = _model_variants(model)
            log("model: %s (%s)" % (model, "--model" if args.model else "the file's metadata"))
        else:
            variants = {v for v in meta.get("source_variant", "").split(",") if v} & lay.variants
            if variants:
                log("variant: %s (the file's metadata: converted from such a checkpoint)" % ", ".join(sorted(variants)))
            for v in sorted(lay.variants - variants):
                log("model: not named: written without %s's names (--model %s_r50, say, if it is one)"
                    % (v.upper(), v))

        def translate(key):
            name = tinyvid_name(key)
            if name is None:
                if key.startswith("momentum."):
                    return None, "dropped: a train state's optimizer momentum"
                return None, "not a tinyvid name"
            return export_key(name, layout, args.keep_fc, variants)

        mapped, dropped, unmapped = _map_all(st.tensors, translate)
        shapes = {tinyvid_name(k): t.shape for k, t in st.tensors.items() if tinyvid_name(k)}
        if not mapped:
            _report(log, args, 0, len(st.tensors), dropped, unmapped)
            raise ConvertError("nothing to convert: no tensor of %s has a tinyvid name" % args.input)
        if not _report(log, args, len(mapped), len(st.tensors), dropped, unmapped, shapes):
            return 1
        relay = [k for k in mapped if ".relay" in k]
        if relay and layout != "dnr":
            log("note: %d tensors of DNR's relay cells keep tinyvid's names (%s has no DNR; a model of its own "
                "loads them with strict=False)" % (len(relay), layout))

        def produce(target):
            key = mapped[target]
            t = st.tensors[key]
            try:
                a = t.numpy()
            except (ConvertError, OSError, ValueError) as e:
                raise ConvertError("%s: cannot read %s (%s)" % (args.input, key, _why(e)))
            if key.endswith("num_batches_tracked"):
                return count_bytes(args.output, target, a)
            check_finite(args.input, "%s (%s)" % (key, target), a, a)
            return _le_bytes(a, t.storage.stype)  # the file's dtype, kept

        # Tensors the layout's model holds without using them: copies of tinyvid's, for a strict load.
        copies = collections.OrderedDict()
        for target, key in mapped.items():
            for source, regex in lay.copies:
                m = regex.fullmatch(tinyvid_name(key))
                if m:
                    copies[lay.export_prefix + source.format(**m.groupdict())] = target
        if copies:
            log("%d tensor%s the %s model holds but never uses, written as copies (load_state_dict(strict=True) "
                "needs them):" % (len(copies), "" if len(copies) == 1 else "s", layout))
            for copy, target in copies.items():
                log("  %s (= %s)" % (copy, mapped[target]))

        state = collections.OrderedDict()
        for target in sorted(list(mapped) + list(copies), key=_natural):
            source = copies.get(target, target)
            key = mapped[source]
            t = st.tensors[key]
            storage = "LongStorage" if key.endswith("num_batches_tracked") else t.storage.stype.name
            state[target] = PthTensor(storage, t.shape, lambda source=source: produce(source))
        obj = state
        if lay.wrapped:
            info = {"converter": "tinyvid tools/convert_checkpoint.py", "source_file": os.path.basename(args.input),
                    "layout": layout}
            if model:
                info["model"] = model
            obj = {"meta": info, "state_dict": state}
        size = write_pth(args.output, obj)
        log("wrote %s: %d tensors, %d bytes (torch.save's zip format: %s)" % (
            args.output, len(state), size, "{'meta', 'state_dict'}" if lay.wrapped else "the state dict"))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="convert_checkpoint.py",
        usage="%(prog)s IN.pth OUT.safetensors [--layout LAYOUT] [--keep-fc] [--strict] [--list]\n"
              "       %(prog)s --to LAYOUT IN.safetensors OUT.pth [--model NAME] [--keep-fc] [--strict] [--list]",
        description="Convert a PyTorch .pth (torchvision ResNet, MMAction2 TSN/TSM/TANet, DNR's MMAction v1 code, "
                    "TDN's authors' code) into a "
                    ".safetensors file with tinyvid's parameter names, or with --to, tinyvid's .safetensors into "
                    "a .pth of one of those layouts. Needs numpy, not torch.")
    parser.add_argument("input", help="the .pth checkpoint (with --to: the .safetensors file)")
    parser.add_argument("output", nargs="?", help="the .safetensors file to write (with --to: the .pth)")
    parser.add_argument("--layout", choices=("auto",) + LAYOUTS + tuple(LAYOUT_ALIASES),
                        help="the source's naming (default: detected from the keys); authors = dnr")
    parser.add_argument("--to", choices=LAYOUTS + tuple(LAYOUT_ALIASES),
                        help="export: write IN (tinyvid's names) as a .pth checkpoint with this layout's names; "
                             "authors = dnr")
    parser.add_argument("--model", metavar="NAME",
                        help="with --to: the tinyvid model the weights are for (e.g. tsm_r50); TSM writes "
                             "MMAction2's TemporalShift names, TANet its TABlock names (default: the file's "
                             "metadata)")
    parser.add_argument("--keep-fc", action="store_true",
                        help="torchvision layout: map fc.* to cls_head.fc_cls.* (with --to: the other way) instead "
                             "of dropping it")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 and write nothing when a key cannot be mapped or a shape check fails")
    parser.add_argument("--list", action="store_true", help="print the source's keys, shapes and dtypes, and exit")
    args = parser.parse_args(argv)
    args.layout = LAYOUT_ALIASES.get(args.layout, args.layout)
    args.to = LAYOUT_ALIASES.get(args.to, args.to)
    if args.to and args.layout:
        parser.error("--layout names the layout read, --to the layout written: give one")
    if args.model and not args.to:
        parser.error("--model goes with --to (the model of the weights written)")
    if not args.list and not args.output:
        parser.error("the output file is required (or use --list)")

    def log(msg):
        sys.stderr.write("%s: %s\n" % (PROG, msg))

    try:
        return export(args, log) if args.to else convert(args, log)
    except ConvertError as e:
        log("error: %s" % e)
        return 2
    except MemoryError:
        log("error: out of memory reading %s" % args.input)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception as e:  # a malformed file that slipped past the checks above: still one line
        log("error: cannot convert %s: %s" % (args.input, _why(e)))
        return 2


if __name__ == "__main__":
    sys.exit(main())
