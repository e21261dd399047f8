#!/usr/bin/env python3
"""Converts a PyTorch checkpoint into a .safetensors file with the parameter names of a tinyvid model.

    python3 tools/convert_checkpoint.py IN.pth OUT.safetensors [--layout auto|torchvision|mmaction2|dnr]
                                        [--keep-fc] [--strict] [--list]

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
The output holds every mapped tensor as F32, except num_batches_tracked as I64 (PyTorch's dtype, exact),
names sorted, with `__metadata__` naming the source layout and file. It is written to a temporary file of
its own, flushed to disk and renamed over OUT, so OUT is never seen half-written. The report goes to
stderr: keys mapped, keys dropped on purpose, keys that could not be mapped, and shape checks. Exit
status: 0 done; 1 with --strict when a key could not be mapped or a shape check failed (nothing is written
then); 2 an error (missing or unreadable file, not a checkpoint, nothing to convert, a tensor holding NaN
or infinity), reported in one line.
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
# Key mapping
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
    r"|cls_head\.fc_cls\.(weight|bias))$" % {"bn": BN_FIELDS, "proj": _PROJ})

LAYOUTS = ("torchvision", "mmaction2", "dnr")

# Parameter-free modules of MMAction (v1) / MMAction2 recognizers and their data preprocessor: any
# key under them (none normally) carries nothing tinyvid has.
IGNORED_PREFIXES = ("spatial_temporal_module.", "segmental_consensus.", "data_preprocessor.")


def detect_layout(keys):
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


def map_mmaction2_backbone(rest):
    """An MMAction2 ResNet name (after 'backbone.') -> torchvision's name, or None."""
    parts = rest.split(".")
    # TemporalShift / TemporalPool wrap with `.net`; NL3DWrapper puts the block under `.block`.
    parts = [p for p in parts if p != "net"]
    if len(parts) > 3 and re.fullmatch(r"layer[1-4]", parts[0]) and parts[1].isdigit() and parts[2] == "block":
        del parts[2]
    name = ".".join(parts)
    m = re.fullmatch(r"conv1\.(conv|bn)\.(\w+)", name)
    if m:
        return ("conv1." if m.group(1) == "conv" else "bn1.") + m.group(2)
    m = re.fullmatch(r"(layer[1-4]\.\d+)\.(conv([123])|downsample)\.(conv|bn)\.(\w+)", name)
    if m:
        block, module, n, kind, field = m.groups()
        if module == "downsample":
            return "%s.downsample.%s.%s" % (block, "0" if kind == "conv" else "1", field)
        return "%s.%s%s.%s" % (block, "conv" if kind == "conv" else "bn", n, field)
    return name  # torchvision-style names (torchvision backbones, MMAction v1's ResNet) pass through


def map_dnr_backbone(rest):
    """A name of the authors' ResNet_DNR (after 'backbone.') -> tinyvid's, or the name unchanged."""
    m = re.fullmatch(r"(layer[1-4])\.lstm\.(w_ih|w_hh)\.0\.seq\.([02])\.(weight|bias)", rest)
    if m:
        stage, w, i, field = m.groups()
        return "%s.relay.%s.%s.%s" % (stage, "input_proj" if w == "w_ih" else "hidden_proj", i, field)
    m = re.fullmatch(r"(layer[1-4])\.ModuleList\.(\d+)\.(.+)", rest)
    if m:
        stage, b, inner = m.groups()
        c = re.fullmatch(r"bn2\.lstm\.(w_ih|w_hh)\.0\.seq\.([02])\.(weight|bias)", inner)
        if c:
            w, i, field = c.groups()
            inner = "bn2.relay.%s.%s.%s" % ("input_proj" if w == "w_ih" else "hidden_proj", i, field)
        return "%s.%s.%s" % (stage, b, inner)
    return rest


def map_key(key, layout, keep_fc=False):
    """(target name or None, note). A None target with a note starting 'dropped' is a key left out on
    purpose; any other None is a key that could not be mapped."""
    if key.startswith(IGNORED_PREFIXES):
        return None, "dropped: a parameter-free module's key"
    if layout == "torchvision":
        if key in ("fc.weight", "fc.bias"):
            if keep_fc:
                return "cls_head.fc_cls." + key[3:], ""
            return None, "dropped: torchvision's ImageNet classifier (--keep-fc maps it to cls_head.fc_cls)"
        target = "backbone." + key
    else:
        key = _backbone(key)
        if key.startswith("backbone."):
            rest = key[len("backbone."):]
            rest = map_mmaction2_backbone(rest) if layout == "mmaction2" else map_dnr_backbone(rest)
            target = "backbone." + rest
        else:
            target = key
    if TINYVID_KEY.match(target):
        return target, ""
    return None, "no tinyvid counterpart"


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
        if not m or not TINYVID_KEY.match(name):
            continue
        prefix, field = m.groups()
        is_norm = re.search(r"(^|\.)(bn[123]|downsample\.1)$", prefix) is not None
        if is_norm:
            if field == "num_batches_tracked":
                need(shape == (), "%s: expected a scalar, got %s" % (name, fmt(shape)))
            else:
                need(len(shape) == 1, "%s: expected a vector, got %s" % (name, fmt(shape)))
                if len(shape) == 1:
                    if norms.setdefault(prefix, shape[0]) != shape[0]:
                        problems.append("%s: %d channels, but other tensors of %s have %d"
                                        % (name, shape[0], prefix, norms[prefix]))
        elif re.search(r"(^|\.)(conv[123]|downsample\.0)$", prefix):
            need(len(shape) == 4, "%s: expected a 4-d convolution weight, got %s" % (name, fmt(shape)))
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
        if n in ("2", "3"):
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
        m = re.fullmatch(r"backbone\.(layer[1-4])\.relay", cell)
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
    w, b = shapes.get("cls_head.fc_cls.weight"), shapes.get("cls_head.fc_cls.bias")
    if w is not None:
        need(len(w) == 2, "cls_head.fc_cls.weight: expected a matrix, got %s" % fmt(w))
        if b is not None and len(w) == 2:
            need(b == (w[0],), "cls_head.fc_cls.bias: expected %d, got %s" % (w[0], fmt(b)))
        last = _last_stage_channels(shapes)
        if last is not None and len(w) == 2:
            need(w[1] == last, "cls_head.fc_cls.weight: %d input features, but the backbone gives %d" % (w[1], last))
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


def write_safetensors(path, shapes, produce, metadata):
    """shapes: name -> shape; produce(name): that tensor as an array, asked for one at a time while
    writing, so only one tensor is in memory; stored as F32, or I64 for num_batches_tracked (stored_dtype).
    Header: sorted names, padded with spaces to 8 bytes. Written to a temporary file of this process and
    call (two writers never share one), flushed to disk, renamed over `path`, and the directory flushed;
    nothing is left behind on failure."""
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
    tmp = "%s.tmp.%d.%d" % (path, os.getpid(), next(_TEMP_COUNT))
    try:
        with open(tmp, "xb") as f:
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            for name in names:
                a = produce(name)
                if tuple(a.shape) != tuple(shapes[name]):  # cannot happen: the shape is the tensor's own
                    raise ConvertError("internal error: %s changed shape" % name)
                if stored_dtype(name) == "I64":
                    whole = (a == np.trunc(a)) & (np.abs(a) < 2.0 ** 63) if a.dtype.kind == "f" else True
                    if not np.all(whole):
                        raise ConvertError("cannot write %s: %s holds %s; expected a whole number (a count, stored "
                                           "as int64)" % (path, name, a[~whole].ravel()[0]))
                    f.write(np.ascontiguousarray(a, dtype="<i8").tobytes())
                else:
                    f.write(np.ascontiguousarray(a, dtype="<f4").tobytes())
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
    return 8 + len(blob) + offset


# --------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------

def strip_module(key):
    while key.startswith("module."):
        key = key[len("module."):]
    return key


def _fmt_shape(shape):
    return "[" + ", ".join(str(d) for d in shape) + "]"


def convert(args, log):
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
            for key, t in tensors.items():
                print("%s\t%s\t%s" % (key, _fmt_shape(t.shape), t.dtype_name))
            for key in skipped:
                print("%s\t-\tnot a tensor" % key)
            return 0

        source = collections.OrderedDict((strip_module(k), (k, t)) for k, t in tensors.items())
        if len(source) != len(tensors):
            raise ConvertError("the state dict has the same key with and without a 'module.' prefix")
        layout = args.layout
        if layout == "auto":
            layout = detect_layout(list(source))
            if layout is None:
                raise ConvertError("cannot tell the checkpoint's layout from its keys (e.g. %s); use --layout"
                                   % ", ".join(list(source)[:3]))
            log("layout: %s (detected)" % layout)
        else:
            log("layout: %s (--layout)" % layout)

        mapped, dropped, unmapped, owner = {}, [], [], {}
        for key, (orig, t) in source.items():
            target, note = map_key(key, layout, args.keep_fc)
            if target is None:
                (dropped if note.startswith("dropped") else unmapped).append((orig, note))
            elif target in owner:
                unmapped.append((orig, "maps to %s like %s" % (target, owner[target])))
            else:
                owner[target] = orig
                mapped[target] = t
        for key in skipped:
            unmapped.append((key, "not a tensor"))

        log("mapped %d of %d keys" % (len(mapped), len(source) + len(skipped)))
        if dropped:
            log("%d key%s left out on purpose:" % (len(dropped), "" if len(dropped) == 1 else "s"))
            for key, note in dropped:
                log("  %s (%s)" % (key, note[len("dropped: "):]))
        if unmapped:
            log("%d key%s could not be mapped:" % (len(unmapped), "" if len(unmapped) == 1 else "s"))
            for key, note in unmapped:
                log("  %s (%s)" % (key, note))
        if not mapped:
            raise ConvertError("nothing to convert: no key maps to a tinyvid name with layout %s" % layout)

        problems = check_shapes({k: t.shape for k, t in mapped.items()})
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
            # Weights holding NaN or infinity (a diverged run, or float64 beyond float32's range) would make
            # every output NaN: refused, with the first bad element.
            converted = a.astype(np.float32)
            bad = np.flatnonzero(~np.isfinite(converted))
            if bad.size:
                i = int(bad[0])
                value = a.ravel()[i]
                raise ConvertError("%s: %s (%s) holds %s at flat index %d (%d non-finite of %d values%s); expected "
                                   "finite weights, nothing written"
                                   % (args.input, owner[name], name, value, i, bad.size, converted.size,
                                      ", beyond float32's range" if np.isfinite(value) else ""))
            return converted

        meta = {"format": "pt", "source_layout": layout, "source_file": os.path.basename(args.input),
                "converter": "tinyvid tools/convert_checkpoint.py"}
        size = write_safetensors(args.output, {k: t.shape for k, t in mapped.items()}, produce, meta)
        log("wrote %s: %d tensors, %d bytes" % (args.output, len(mapped), size))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="convert_checkpoint.py",
        description="Convert a PyTorch .pth (torchvision ResNet, MMAction2 TSN/TSM, DNR's MMAction v1 code) into a "
                    ".safetensors file with tinyvid's parameter names. Needs numpy, not torch.")
    parser.add_argument("input", help="the .pth checkpoint")
    parser.add_argument("output", nargs="?", help="the .safetensors file to write")
    parser.add_argument("--layout", choices=("auto",) + LAYOUTS, default="auto",
                        help="the source's naming (default: detected from the keys)")
    parser.add_argument("--keep-fc", action="store_true",
                        help="torchvision layout: map fc.* to cls_head.fc_cls.* instead of dropping it")
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 and write nothing when a key cannot be mapped or a shape check fails")
    parser.add_argument("--list", action="store_true", help="print the source's keys, shapes and dtypes, and exit")
    args = parser.parse_args(argv)
    if not args.list and not args.output:
        parser.error("the output file is required (or use --list)")

    def log(msg):
        sys.stderr.write("%s: %s\n" % (PROG, msg))

    try:
        return convert(args, log)
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
