"""Which profile of a suite runs on this machine, and why.

A profile block may say what it needs and what to run instead::

    profiles:
      default: {requires: cuda, fallback: cpu}   # the top level is sized for one GPU
      cpu: {device: cpu, ...}

``requires`` lists what the profile's device must be (only ``cuda`` so far): it is met
when the device the profile would run on (``--device``/``--set device=...``, else the
suite's ``device``, ``auto`` being CUDA where available) is a CUDA device. ``fallback``
names the profile to run when ``requires`` is not met and no profile was asked for.

The choice (:func:`choose`):

* no ``--profile``: the default profile if its needs are met, else its ``fallback``, with
  a one-line notice saying so and how to force the default (``--profile default --device cpu``);
* ``--profile NAME``: that profile; if its needs are not met, a forced device
  (``--device cpu``) runs it anyway, with a notice; without one it is an error that
  names the profile to use instead.

The reason is stored with every record (``config.profile_reason``) and in ``run.json``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench.config.suite import DEFAULT_PROFILE, ConfigError, Suite, load_suite, parse_override, read_yaml

REQUIREMENTS = ("cuda",)


@dataclass(frozen=True)
class ProfileMeta:
    """What a profile needs (``requires``) and which profile replaces it when that is missing (``fallback``)."""

    requires: tuple[str, ...] = ()
    fallback: str | None = None


@dataclass
class Choice:
    """The profile that runs, why, and the line to print about it (``None`` when there is nothing to say)."""

    suite: Suite
    reason: str
    notice: str | None = None


def read_meta(path: str | Path) -> dict[str, ProfileMeta]:
    """Every profile's :class:`ProfileMeta`, ``"default"`` included, from a suite file.

    Raises:
        ConfigError: an unknown requirement, a ``fallback`` that is not a profile of the
            file, or a wrong type (the message names the file and the key).
    """
    src = str(path)
    raw = read_yaml(Path(path))  # one-line ConfigError: unreadable, not UTF-8, malformed, repeated keys
    profiles = raw.get("profiles") if isinstance(raw, Mapping) else None
    if not isinstance(profiles, Mapping):
        return {DEFAULT_PROFILE: ProfileMeta()}
    names = sorted({*profiles, DEFAULT_PROFILE})
    out = {DEFAULT_PROFILE: ProfileMeta()}
    for name, block in profiles.items():
        if not isinstance(block, Mapping):
            continue  # load_suite reports it when the profile is used
        req = block.get("requires", ())
        req = (req,) if isinstance(req, str) else req
        if not isinstance(req, (list, tuple)) or any(r not in REQUIREMENTS for r in req):
            raise ConfigError(f"{src}: profiles.{name}.requires: expected one of {list(REQUIREMENTS)} or a list "
                              f"of them, got {block.get('requires')!r}")
        fallback = block.get("fallback")
        if fallback is not None and (fallback not in names or fallback == name):
            raise ConfigError(f"{src}: profiles.{name}.fallback: {fallback!r} is not another profile of the file "
                              f"(profiles: {', '.join(names)})")
        out[str(name)] = ProfileMeta(tuple(req), fallback)
    return out


def _device_override(overrides: list[str] | tuple[str, ...]) -> str | None:
    """The device set on the command line (``--device`` arrives as ``device=...``), if any."""
    device = None
    for o in overrides:
        d = parse_override(o)
        if "device" in d:
            device = str(d["device"])
    return device


def _device_type(device: str, cuda_available: bool) -> str:
    if device == "auto":
        return "cuda" if cuda_available else "cpu"
    return device.split(":")[0]


def unmet(meta: ProfileMeta, suite: Suite, cuda_available: bool) -> str | None:
    """Why ``suite`` (loaded with its profile) cannot meet ``meta.requires`` here, or ``None`` if it can."""
    if "cuda" in meta.requires:
        kind = _device_type(suite.device, cuda_available)
        if kind != "cuda":
            return "no CUDA on this machine" if not cuda_available else f"device {suite.device!r} is not CUDA"
        if not cuda_available:
            return "no CUDA on this machine"
    return None


def choose(path: str | Path, requested: str | None, overrides: list[str] | tuple[str, ...] = (), *,
           cuda_available: bool) -> Choice:
    """Load the suite with the profile that fits this machine (see the module docstring).

    Args:
        path: the suite file.
        requested: ``--profile``, or ``None`` to choose.
        overrides: ``--set`` strings (``--device X`` included as ``device=X``).
        cuda_available: ``torch.cuda.is_available()``.

    Raises:
        ConfigError: a malformed suite or profile block, or ``--profile NAME`` whose
            needs are unmet without a forced device (the message says what to run instead).
    """
    meta = read_meta(path)
    forced = _device_override(overrides)
    name = requested or DEFAULT_PROFILE
    suite = load_suite(path, profile=name, overrides=overrides)
    info = meta.get(name, ProfileMeta())
    why = unmet(info, suite, cuda_available)
    needs = "/".join(info.requires)
    if why is None:
        reason = f"--profile {name}" if requested else f"auto: the {name} profile" + (
            f" (its needs, {needs}, are met)" if info.requires else "")
        return _chosen(suite, reason)
    if requested:
        if forced is not None:
            reason = f"--profile {name} --device {forced}: forced although the profile requires {needs} ({why})"
            return _chosen(suite, reason, f"genbench: profile {name!r} requires {needs} ({why}); running it on "
                                          f"{forced} because --device {forced} was given")
        instead = info.fallback or next((n for n, m in meta.items() if n != name and not m.requires), None)
        hint = f"run --profile {instead}, or " if instead else ""
        raise ConfigError(f"{path}: profiles.{name}: requires {needs}, but {why}; {hint}force it on the CPU with "
                          f"--profile {name} --device cpu")
    if info.fallback is None:
        raise ConfigError(f"{path}: the {name} profile requires {needs}, but {why}, and it names no fallback; "
                          f"choose one with --profile NAME, or force it with --device cpu")
    fb = load_suite(path, profile=info.fallback, overrides=overrides)
    fb_why = unmet(meta.get(info.fallback, ProfileMeta()), fb, cuda_available)
    if fb_why is not None:
        raise ConfigError(f"{path}: the {name} profile requires {needs} ({why}) and its fallback "
                          f"{info.fallback!r} cannot run either ({fb_why})")
    reason = f"auto: {why}, and the {name} profile requires {needs}; its fallback is {info.fallback!r}"
    notice = (f"genbench: {why}; the {name} profile of {path} requires {needs}, so this runs its "
              f"{info.fallback!r} profile (force the {name} one with --profile {name} --device cpu)")
    return _chosen(fb, reason, notice)


def _chosen(suite: Suite, reason: str, notice: str | None = None) -> Choice:
    suite.profile_reason = reason
    return Choice(suite, reason, notice)
