"""Image datasets: MNIST and CIFAR-10 through torchvision, with an offline mirror and verified content.

Where the data comes from, in order:

1. ``<root>/MNIST/raw/`` (torchvision's layout), if the files are there;
2. the offline mirror (``GENBENCH_DATA_MIRROR``, default ``../shared/data`` beside the
   project root): its ``mnist/*.gz`` files are decompressed into ``<root>/MNIST/raw/``;
3. torchvision's download, for users with internet access.

The SHA-256 of every uncompressed file is checked against the official content. A
missing or corrupt dataset raises :class:`DatasetError` saying where the harness
looked. Images are uint8 tensors of shape (N, 1, 28, 28), values 0..255.

CIFAR-10 (N, 3, 32, 32): exact through torchvision where its files exist or can be
downloaded; offline, from the mirror's ``cifar10/cifar10-jpeg-q75.tar.xz`` (all
60,000 images as quality-75 JPEGs), decoded once and cached. That copy is lossy:
results on it carry the variant ``cifar10-jpeg75`` and the archive's SHA-256, and
are not comparable with published CIFAR-10 numbers.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path

import numpy as np
import torch

from bench.core import env
from bench.core.files import atomic_write, load_npz, sha256_file

ROOT = env.ROOT

# SHA-256 of the uncompressed official MNIST files (torchvision's names, without .gz).
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}


class DatasetError(RuntimeError):
    """A dataset is missing or corrupt; the message says where the harness looked."""


def data_root(root: str | Path) -> Path:
    """``root`` as an absolute path; a relative root is taken from the project root."""
    root = Path(root).expanduser()
    return root if root.is_absolute() else ROOT / root


def mirror_dir() -> Path:
    """The offline mirror: ``$GENBENCH_DATA_MIRROR``, else ``../shared/data`` beside the project root."""
    return Path(os.environ.get("GENBENCH_DATA_MIRROR", ROOT.parent / "shared" / "data"))


def _from_mirror(raw: Path, name: str) -> bool:
    src = mirror_dir() / "mnist" / f"{name}.gz"
    if not src.exists():
        return False
    with gzip.open(src, "rb") as fin:
        atomic_write(raw / name, lambda fout: shutil.copyfileobj(fin, fout))
    return True


def ensure_mnist(root: str | Path, *, expected: dict[str, str] | None = MNIST_SHA256) -> Path:
    """Make sure ``<root>/MNIST/raw/`` holds the four verified MNIST files; return that folder.

    Args:
        root: the data root.
        expected: file name -> SHA-256 of its content; ``None`` skips verification
            (only for tests on hand-made files).

    Raises:
        DatasetError: a file is missing everywhere, or its content hash is wrong.
    """
    raw = data_root(root) / "MNIST" / "raw"
    names = list(expected or MNIST_SHA256)
    missing = [n for n in names if not (raw / n).exists() and not _from_mirror(raw, n)]
    if missing:
        try:
            from torchvision.datasets import MNIST

            MNIST(str(data_root(root)), train=True, download=True)
            MNIST(str(data_root(root)), train=False, download=True)
        except Exception as e:  # no network, or the server is down
            raise DatasetError(
                f"MNIST not found: looked for {', '.join(missing)} in {raw}, for .gz copies in "
                f"{mirror_dir() / 'mnist'}, and tried torchvision's download ({type(e).__name__}: "
                f"{str(e).splitlines()[0] if str(e) else ''}); provide it: put the files in {raw}, or point "
                "GENBENCH_DATA_MIRROR at a folder holding mnist/*.gz, or run once with network access"
            ) from None
    for n, want in (expected or {}).items():
        got = sha256_file(raw / n)
        if got != want:
            raise DatasetError(f"MNIST file {raw / n} is corrupt: SHA-256 {got}, expected {want}; delete it to "
                               "fetch it again")
    return raw


def read_mnist(root: str | Path, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, 1, 28, 28) uint8 and labels (N,) int64 of one split, through torchvision's ``MNIST``."""
    from torchvision.datasets import MNIST

    ds = MNIST(str(data_root(root)), train=train, download=False)
    return ds.data[:, None].contiguous(), ds.targets.clone()


def mnist_fingerprint(raw: Path, train: bool, size: int) -> dict:
    """Name, split, size and content hash (SHA-256 over the images' and labels' SHA-256s) of a split."""
    prefix = "train" if train else "t10k"
    files = [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]
    digest = hashlib.sha256("".join(sha256_file(raw / f) for f in files).encode()).hexdigest()
    return {"name": "mnist", "variant": "mnist", "split": "train" if train else "test", "size": size,
            "sha256": digest, "files": files}


# --------------------------------------------------------------------------- CIFAR-10
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_JPEG_ARCHIVE = "cifar10/cifar10-jpeg-q75.tar.xz"
CIFAR10_JPEG_SHA256 = "0f8f9395cd0f160cc8c896959e1d9d04f68e3f53de8a0d71bf4605d5078cfdec"
CIFAR10_JPEG_NOTE = (
    "CIFAR-10 decoded from the offline copy of quality-75 JPEGs (variant cifar10-jpeg75): pixels differ from "
    "the real CIFAR-10, so FID, bits/dim and every other number here are NOT comparable with published "
    "CIFAR-10 results; they compare the models of this run with each other only."
)


def _cifar_exact(root: Path) -> dict | None:
    """Exact CIFAR-10 from torchvision's files under ``root`` (downloading them if ``root`` lacks them)."""
    from torchvision.datasets import CIFAR10

    out = {}
    for split, train in (("train", True), ("test", False)):
        ds = CIFAR10(str(root), train=train, download=False)
        out[split] = (torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous(), torch.tensor(ds.targets))
    return out


def _decode_jpeg_archive(archive: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Decode ``train/<class>/NNNN.jpg`` and ``test/<class>/NNNN.jpg`` to (N, 32, 32, 3) uint8 and labels."""
    import tarfile

    from PIL import Image

    found: dict[str, list[tuple[str, int, np.ndarray]]] = {"train": [], "test": []}
    with tarfile.open(archive, "r:xz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if not member.isfile() or len(parts) != 3 or parts[0] not in found:
                continue
            label = CIFAR10_CLASSES.index(parts[1])
            with Image.open(tar.extractfile(member)) as im:
                found[parts[0]].append((member.name, label, np.asarray(im.convert("RGB"), dtype=np.uint8)))
    out = {}
    for split, items in found.items():
        items.sort(key=lambda t: t[0])  # by class folder, then file number
        out[split] = (np.stack([t[2] for t in items]), np.array([t[1] for t in items], dtype=np.int64))
    return out


def cifar10_jpeg(root: str | Path) -> tuple[dict, dict]:
    """CIFAR-10 from the offline JPEG-75 archive, decoded once and cached under ``<root>/cifar10-jpeg75``.

    Returns ({split: (images (N, 3, 32, 32) uint8, labels (N,))}, facts about the archive).

    Raises:
        DatasetError: the archive is missing or its SHA-256 is wrong.
    """
    archive = mirror_dir() / CIFAR10_JPEG_ARCHIVE
    if not archive.exists():
        raise DatasetError(f"CIFAR-10 not found: no torchvision files under {data_root(root)} "
                           f"(cifar-10-batches-py), no offline archive at {archive} (set GENBENCH_DATA_MIRROR), "
                           "and torchvision's download failed")
    digest = sha256_file(archive)
    if digest != CIFAR10_JPEG_SHA256:
        raise DatasetError(f"CIFAR-10 archive {archive} is corrupt: SHA-256 {digest}, expected {CIFAR10_JPEG_SHA256}")
    cache = data_root(root) / "cifar10-jpeg75" / f"arrays_{digest[:12]}.npz"
    f = load_npz(cache)
    if f is None:  # absent, or damaged (an interrupted copy): decode again
        arrays = _decode_jpeg_archive(archive)
        f = {**{f"{s}_x": a[0] for s, a in arrays.items()}, **{f"{s}_y": a[1] for s, a in arrays.items()}}
        atomic_write(cache, lambda out: np.savez(out, **f))
    splits = {s: (torch.from_numpy(f[f"{s}_x"]).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(f[f"{s}_y"]))
              for s in ("train", "test")}
    return splits, {"archive": str(archive), "archive_sha256": digest}


def load_cifar10(root: str | Path) -> tuple[dict, dict]:
    """CIFAR-10 splits and provenance: exact through torchvision where possible, else the JPEG-75 copy.

    Order: torchvision's files under ``root``; the offline JPEG archive; torchvision's
    download. The provenance dict gives ``variant`` (``cifar10`` or ``cifar10-jpeg75``),
    whether numbers are comparable with published ones, and for the JPEG copy the
    archive's SHA-256.
    """
    root = data_root(root)
    if (root / "cifar-10-batches-py").is_dir():
        return _cifar_exact(root), {"variant": "cifar10", "comparable_to_published": True}
    if (mirror_dir() / CIFAR10_JPEG_ARCHIVE).exists():
        splits, facts = cifar10_jpeg(root)
        return splits, {"variant": "cifar10-jpeg75", "comparable_to_published": False, "note": CIFAR10_JPEG_NOTE,
                        **facts}
    try:
        from torchvision.datasets import CIFAR10

        CIFAR10(str(root), train=True, download=True)
        CIFAR10(str(root), train=False, download=True)
    except Exception as e:
        raise DatasetError(f"CIFAR-10 not found: no torchvision files under {root} (cifar-10-batches-py), no "
                           f"offline archive at {mirror_dir() / CIFAR10_JPEG_ARCHIVE}, and torchvision's download "
                           f"failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); provide it: "
                           f"put cifar-10-batches-py under {root}, or point GENBENCH_DATA_MIRROR at a folder holding "
                           f"{CIFAR10_JPEG_ARCHIVE}, or run once with network access") from None
    return _cifar_exact(root), {"variant": "cifar10", "comparable_to_published": True}


def array_fingerprint(name: str, variant: str, split: str, x: torch.Tensor) -> dict:
    """Name, variant, split, size and SHA-256 of the pixel array's bytes."""
    return {"name": name, "variant": variant, "split": split, "size": len(x),
            "sha256": hashlib.sha256(x.numpy().tobytes()).hexdigest()}
