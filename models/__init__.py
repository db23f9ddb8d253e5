"""The registry of generative families, and checkpoints.

Each family is one file in this package. It registers one model class per data
modality under the family's name::

    @register("flow", modality="vector")
    class SplineFlow(GenerativeModel): ...

The registry discovers its families: importing :mod:`models` imports every module
of this package (:func:`discover`), and the directories listed in the environment
variable ``GENBENCH_FAMILIES`` (``os.pathsep``-separated), so a new family is one
file, here or in a folder of one's own, with nothing else to edit. Names resolve
lazily through :func:`get`, which suggests the closest registered name.

Modalities: ``"vector"`` (data of shape (D,), e.g. the 2D suite) and ``"image"``
(data of shape (C, H, W)).

Load a trained model back with :func:`load_checkpoint`::

    import models
    model = models.load_checkpoint("results/toy2d/<run>/8gaussians__flow__s0/model.pt")
    x = model.sample(1000)                 # (1000, 2) float32, no autograd graph: x.numpy() works
    nll = -model.log_prob(x)               # (1000,) nats; if model.capabilities.log_prob
    with models.gradients():               # ask for gradients explicitly
        (-model.log_prob(x).mean()).backward()
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import io
import os
import pickle
import pkgutil
import sys
from pathlib import Path
from typing import Any

import torch

from models import files
from models.base import Capabilities, GenerativeModel, Textbook, TrainConfig, gradients

__all__ = [
    "Capabilities",
    "GenerativeModel",
    "Textbook",
    "TrainConfig",
    "gradients",
    "RegistryError",
    "CheckpointError",
    "CHECKPOINT_FORMAT",
    "register",
    "get",
    "names",
    "entries",
    "textbook",
    "discover",
    "build",
    "save_checkpoint",
    "load_checkpoint",
    "checkpoint_metadata",
]

MODALITIES = ("vector", "image")
_REGISTRY: dict[tuple[str, str], type[GenerativeModel]] = {}


class RegistryError(KeyError):
    """An unknown or duplicate family name. ``str()`` is one readable line."""

    def __str__(self) -> str:
        return str(self.args[0])


def register(name: str, *, modality: str):
    """Class decorator: register a :class:`GenerativeModel` under ``(name, modality)``.

    Raises:
        RegistryError: the pair is already registered, the modality is unknown, the
            class leaves ``loss`` or ``sample`` abstract, or its ``textbook`` claims
            disagree with the family's other modality.
    """
    if modality not in MODALITIES:
        raise RegistryError(f"unknown modality {modality!r}; expected one of {MODALITIES}")

    def decorator(cls: type[GenerativeModel]) -> type[GenerativeModel]:
        key = (name, modality)
        where = f"{cls.__module__}.{cls.__qualname__}"
        if key in _REGISTRY:
            raise RegistryError(
                f"duplicate family {name!r} for modality {modality!r}: "
                f"already registered by {_REGISTRY[key].__module__}.{_REGISTRY[key].__qualname__}"
            )
        missing = sorted(getattr(cls, "__abstractmethods__", ()))
        if cls.generate is GenerativeModel.generate and "native" in cls.sampler_kinds():
            missing.append("generate (it declares a native sampler)")
        if missing:
            raise RegistryError(f"family {name!r} ({where}) does not implement: {', '.join(missing)}")
        for (other, _), known in _REGISTRY.items():
            if other == name and known.textbook != cls.textbook:
                raise RegistryError(f"family {name!r}: {where}.textbook differs from "
                                    f"{known.__module__}.{known.__qualname__}.textbook; a family has one claim")
        cls.family, cls.modality = name, modality
        _REGISTRY[key] = cls
        return cls

    return decorator


def unregister(name: str, *, modality: str) -> None:
    """Remove a registration (for tests that register a temporary family). When the last family a discovered
    file registered is gone, the file leaves :func:`discovered_folders` too (a worker process would import it
    again)."""
    cls = _REGISTRY.pop((name, modality), None)
    if cls is None or any(c.__module__ == cls.__module__ for c in _REGISTRY.values()):
        return
    file = getattr(sys.modules.get(cls.__module__), "__file__", None)
    if file:
        _LOADED_PATHS.discard(Path(file).resolve())


def names(modality: str | None = None) -> list[str]:
    """Sorted registered family names, optionally only those with a ``modality`` form."""
    return sorted({n for n, m in _REGISTRY if modality is None or m == modality})


def entries() -> list[tuple[str, str]]:
    """Every registered ``(name, modality)`` pair, sorted."""
    return sorted(_REGISTRY)


def textbook(name: str) -> Textbook | None:
    """The textbook claims of family ``name`` (every modality's class carries the same), or ``None``.

    Raises:
        RegistryError: ``name`` is not registered.
    """
    for (n, _), cls in _REGISTRY.items():
        if n == name:
            return cls.textbook
    get(name, MODALITIES[0])  # raises with suggestions
    return None


def get(name: str, modality: str) -> type[GenerativeModel]:
    """The class registered as ``(name, modality)``.

    Raises:
        RegistryError: unknown name (the message lists the registered names and the
            closest match) or no form for this modality.
    """
    if (name, modality) in _REGISTRY:
        return _REGISTRY[(name, modality)]
    known = names()
    if name in known:
        raise RegistryError(f"family {name!r} has no {modality!r} form (it has: "
                            f"{', '.join(m for n, m in entries() if n == name)})")
    close = difflib.get_close_matches(name, known, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise RegistryError(f"unknown family {name!r} ({hint}registered: {', '.join(known)})")


def build(name: str, modality: str, config: Any, data_shape: tuple[int, ...]) -> GenerativeModel:
    """Instantiate family ``name`` for ``modality`` with a filled ``config`` dataclass."""
    return get(name, modality)(config, data_shape)


CHECKPOINT_FORMAT = "genbench.checkpoint/2"
_PLAIN = (str, int, float, bool, type(None))


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded safely: truncated, corrupt, foreign or from an older genbench.

    ``str()`` is one line naming the file and what to do.
    """


def _check_plain(obj: Any, where: str) -> None:
    """Raise TypeError unless ``obj`` is made of str/int/float/bool/None, lists, tuples and str-keyed dicts
    (what ``torch.load(weights_only=True)`` reads back without running code)."""
    if isinstance(obj, _PLAIN):
        return
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _check_plain(v, f"{where}[{i}]")
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, str):
                raise TypeError(f"checkpoint metadata {where}: key {k!r} is not a str")
            _check_plain(v, f"{where}.{k}")
        return
    raise TypeError(f"checkpoint metadata {where}: {type(obj).__name__} is not a plain type "
                    "(str, int, float, bool, None, list, tuple, dict)")


def save_checkpoint(model: GenerativeModel, path: str | Path, **extra: Any) -> None:
    """Write ``model`` (weights, config, data shape) and ``extra`` metadata to ``path``.

    The file holds only tensors and plain types (format :data:`CHECKPOINT_FORMAT`), so
    :func:`load_checkpoint` reads it with ``torch.load(weights_only=True)``, which runs no
    code. It is serialised in memory, then written to a unique temporary name and
    renamed, so an interrupted or failing save (a full disk raises ``OSError``) never
    leaves a truncated checkpoint, and concurrent saves never mix.

    Raises:
        TypeError: the config or ``extra`` holds something other than plain types.
        OSError: the file cannot be written (``errno.ENOSPC`` when the disk is full).
    """
    path = Path(path)
    meta = {"family": model.family, "modality": model.modality, "config": model.config_dict(),
            "data_shape": list(model.data_shape), "extra": extra}
    _check_plain(meta, "")
    buf = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **meta, "state_dict": model.state_dict()}, buf)
    files.atomic_write(path, lambda f: f.write(buf.getbuffer()))


def _why(e: Exception, *markers: str) -> str:
    """The informative part of a torch error message: the first line holding a marker (else the first
    line), cut at its first sentence."""
    lines = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
    line = next((ln for ln in lines if any(m in ln for m in markers)), lines[0] if lines else type(e).__name__)
    return line.split(". ")[0].rstrip(".")


def _read_checkpoint(path: Path, map_location: str | torch.device, mmap: bool = False) -> dict[str, Any]:
    """``torch.load(weights_only=True)`` of ``path``, checked to be a genbench checkpoint.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: the file needs unsafe unpickling, is truncated or corrupt, or is not laid
            out as a genbench checkpoint.
    """
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except FileNotFoundError:
        raise
    except pickle.UnpicklingError as e:  # weights_only refused a global or opcode: loading would run code
        raise CheckpointError(f"{path}: saved by an older genbench or not a genbench checkpoint; loading it "
                              f"would need unsafe unpickling, refused ({_why(e, 'Unsupported', 'unsupported')}); "
                              "re-run the cell with --force") from None
    except Exception as e:  # torch reports truncation and bad zips as RuntimeError, EOFError or ValueError
        raise CheckpointError(f"{path}: unreadable checkpoint, truncated or corrupt ({_why(e)}); "
                              "re-run the cell with --force") from None
    ok = (isinstance(ckpt, dict) and isinstance(ckpt.get("family"), str) and isinstance(ckpt.get("modality"), str)
          and isinstance(ckpt.get("config"), dict) and isinstance(ckpt.get("data_shape"), (list, tuple))
          and all(isinstance(s, int) for s in ckpt["data_shape"]) and isinstance(ckpt.get("state_dict"), dict)
          and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in ckpt["state_dict"].items())
          and isinstance(ckpt.get("extra", {}), dict))
    if not ok:
        raise CheckpointError(f"{path}: not a genbench checkpoint (no family, config, data shape and tensors "
                              "where genbench keeps them); re-run the cell with --force")
    if ckpt.get("format", CHECKPOINT_FORMAT) != CHECKPOINT_FORMAT:  # genbench 0.1 wrote no format: same layout
        raise CheckpointError(f"{path}: checkpoint format {ckpt['format']!r} is not readable by this genbench "
                              f"(reads {CHECKPOINT_FORMAT!r}); upgrade genbench or re-run the cell with --force")
    return ckpt


def checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The metadata of a checkpoint without building its model: ``family``, ``modality``, ``config``,
    ``data_shape`` and ``extra`` (tensors are memory-mapped, not read).

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: as :func:`load_checkpoint`.
    """
    ckpt = _read_checkpoint(Path(path), "cpu", mmap=True)
    return {k: ckpt.get(k, {}) if k == "extra" else ckpt[k] for k in ("family", "modality", "config", "data_shape",
                                                                         "extra")}


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> GenerativeModel:
    """Load a model saved by :func:`save_checkpoint`, in eval mode.

    Only tensors and plain types are read (``torch.load(weights_only=True)``): a
    checkpoint that would need to run code to load is refused, never executed.
    Checkpoints of genbench 0.1 (before :data:`CHECKPOINT_FORMAT`) load when they hold
    nothing else.

    Args:
        path: the ``model.pt`` of a result cell.
        map_location: device to load the weights to.

    Returns:
        The model, exposing ``sample(n)`` and, where ``model.capabilities`` allows,
        ``log_prob(x)``, ``log_prob_bounds(x)`` or ``energy(x)`` (all in nats). Its
        training metadata is in ``model.checkpoint_extra``.

    Raises:
        FileNotFoundError: no file at ``path``.
        CheckpointError: a pickle that needs unsafe loading (an older genbench or a foreign
            file), a truncated or corrupt file, or weights and config that do not fit the family.
        RegistryError: the checkpoint's family is not registered.
    """
    path = Path(path)
    ckpt = _read_checkpoint(path, map_location)
    cls = get(ckpt["family"], ckpt["modality"])
    try:
        config = cls.Config(**{k: v for k, v in ckpt["config"].items() if k not in cls.legacy_config_keys})
        model = cls(config, tuple(ckpt["data_shape"]))
        model.load_state_dict(ckpt["state_dict"])
    except (TypeError, ValueError, RuntimeError) as e:
        why = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: the checkpoint does not fit family {ckpt['family']!r} of this genbench "
                              f"({why}); re-run the cell with --force") from None
    model.checkpoint_extra = ckpt.get("extra", {})
    return model.to(map_location).eval()


# --------------------------------------------------------------------------- discovery
_NOT_FAMILIES = {"base", "files"}  # modules of this package that hold no family (helpers are imported harmlessly)
_LOADED_PATHS: set[Path] = set()


def discover(*paths: str | Path) -> list[str]:
    """Import every family module: this package's, then each ``*.py`` file in ``paths``.

    A module under a path is imported once under the name ``genbench_family_<stem>``;
    importing it runs its :func:`register` decorators. Files whose name starts with
    ``_`` are skipped. Returns the names of the modules imported by this call.

    Raises:
        RegistryError: a module registers a duplicate or incomplete family.
        NotADirectoryError: a path is not a directory.
    """
    done = []
    for info in pkgutil.iter_modules(__path__):
        name = f"models.{info.name}"
        if not info.name.startswith("_") and info.name not in _NOT_FAMILIES and name not in sys.modules:
            importlib.import_module(name)
            done.append(name)
    for folder in paths:
        folder = Path(folder).resolve()
        if not folder.is_dir():
            raise NotADirectoryError(f"family path {folder} is not a directory")
        for file in sorted(folder.glob("*.py")):
            if file.name.startswith("_") or file in _LOADED_PATHS:
                continue
            name = f"genbench_family_{file.stem}"
            spec = importlib.util.spec_from_file_location(name, file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            _LOADED_PATHS.add(file)
            spec.loader.exec_module(module)
            done.append(name)
    return done


def discovered_folders() -> list[Path]:
    """The folders whose family files :func:`discover` has imported in this process (sorted), so that another
    process (a launcher's worker) can import the same families before it reads a suite that uses them."""
    return sorted({f.parent for f in _LOADED_PATHS})


discover(*[p for p in os.environ.get("GENBENCH_FAMILIES", "").split(os.pathsep) if p])
