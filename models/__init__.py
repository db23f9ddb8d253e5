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
import os
import pkgutil
import sys
from pathlib import Path
from typing import Any

import torch

from models.base import Capabilities, GenerativeModel, Textbook, TrainConfig, gradients

__all__ = [
    "Capabilities",
    "GenerativeModel",
    "Textbook",
    "TrainConfig",
    "gradients",
    "RegistryError",
    "register",
    "get",
    "names",
    "entries",
    "textbook",
    "discover",
    "build",
    "save_checkpoint",
    "load_checkpoint",
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
    """Remove a registration (for tests that register a temporary family)."""
    _REGISTRY.pop((name, modality), None)


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


def save_checkpoint(model: GenerativeModel, path: str | Path, **extra: Any) -> None:
    """Write ``model`` (weights, config, data shape) and ``extra`` metadata to ``path``.

    The file is written to a temporary name and renamed, so an interrupted save
    never leaves a truncated checkpoint.
    """
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(
        {
            "family": model.family,
            "modality": model.modality,
            "config": model.config_dict(),
            "data_shape": list(model.data_shape),
            "state_dict": model.state_dict(),
            "extra": extra,
        },
        tmp,
    )
    tmp.replace(path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> GenerativeModel:
    """Load a model saved by :func:`save_checkpoint`, in eval mode.

    Args:
        path: the ``model.pt`` of a result cell.
        map_location: device to load the weights to.

    Returns:
        The model, exposing ``sample(n)`` and, where ``model.capabilities`` allows,
        ``log_prob(x)``, ``log_prob_bounds(x)`` or ``energy(x)`` (all in nats). Its
        training metadata is in ``model.checkpoint_extra``.

    Raises:
        FileNotFoundError: no file at ``path``.
        RegistryError: the checkpoint's family is not registered.
    """
    ckpt = torch.load(Path(path), map_location=map_location, weights_only=False)
    cls = get(ckpt["family"], ckpt["modality"])
    config = cls.Config(**ckpt["config"])
    model = cls(config, tuple(ckpt["data_shape"]))
    model.load_state_dict(ckpt["state_dict"])
    model.checkpoint_extra = ckpt.get("extra", {})
    return model.to(map_location).eval()


# --------------------------------------------------------------------------- discovery
_NOT_FAMILIES = {"base"}  # modules of this package that hold no family (helpers are imported harmlessly)
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
        if not info.name.startswith("_") and info.name not in _NOT_FAMILIES and f"models.{info.name}" not in sys.modules:
            importlib.import_module(f"models.{info.name}")
            done.append(f"models.{info.name}")
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


discover(*[p for p in os.environ.get("GENBENCH_FAMILIES", "").split(os.pathsep) if p])
