"""Image datasets: MNIST through torchvision, with an offline mirror and verified content.

Where the data comes from, in order:

1. ``<root>/MNIST/raw/`` (torchvision's layout), if the files are there;
2. the offline mirror (``GENBENCH_DATA_MIRROR``, default ``../shared/data`` beside the
   project root): its ``mnist/*.gz`` files are decompressed into ``<root>/MNIST/raw/``;
3. torchvision's download, for users with internet access.

The SHA-256 of every uncompressed file is checked against the official content. A
missing or corrupt dataset raises :class:`DatasetError` saying where the harness
looked. Images are uint8 tensors of shape (N, 1, 28, 28), values 0..255.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]

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


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _from_mirror(raw: Path, name: str) -> bool:
    src = mirror_dir() / "mnist" / f"{name}.gz"
    if not src.exists():
        return False
    raw.mkdir(parents=True, exist_ok=True)
    tmp = raw / f".{name}.tmp{os.getpid()}"
    with gzip.open(src, "rb") as fin, open(tmp, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    tmp.replace(raw / name)
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
                f"{mirror_dir() / 'mnist'} (set GENBENCH_DATA_MIRROR to move it), and tried torchvision's "
                f"download ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})"
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
