"""Image data layer and image metrics that need no network: IDX files, verification, bits/dim, novelty."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

from bench.data import images
from bench.evaluation.image import bits_per_dim
from bench.evaluation.metrics.novelty import nearest_distances, novelty


def write_idx(path, array: np.ndarray) -> None:
    """An IDX file (LeCun's MNIST format): magic 0x0000 08 <ndim>, big-endian dims, uint8 data."""
    path.write_bytes(struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
                     + array.astype(np.uint8).tobytes())


@pytest.fixture
def tiny_mnist(tmp_path, monkeypatch):
    monkeypatch.setenv("GENBENCH_DATA_MIRROR", str(tmp_path / "no-mirror"))
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    arrays = {"train-images-idx3-ubyte": rng.integers(0, 256, (5, 28, 28)),
              "train-labels-idx1-ubyte": np.array([0, 1, 2, 3, 4]),
              "t10k-images-idx3-ubyte": rng.integers(0, 256, (3, 28, 28)),
              "t10k-labels-idx1-ubyte": np.array([7, 8, 9])}
    for name, a in arrays.items():
        write_idx(raw / name, a)
    return tmp_path, arrays


def test_idx_files_parse_through_torchvision(tiny_mnist):
    root, arrays = tiny_mnist
    images.ensure_mnist(root, expected=None)
    x, y = images.read_mnist(root, train=True)
    assert x.shape == (5, 1, 28, 28) and x.dtype == torch.uint8
    np.testing.assert_array_equal(x[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    np.testing.assert_array_equal(y.numpy(), [0, 1, 2, 3, 4])
    xt, yt = images.read_mnist(root, train=False)
    assert xt.shape == (3, 1, 28, 28) and yt.tolist() == [7, 8, 9]


def test_a_corrupt_file_is_named_with_both_hashes(tiny_mnist):
    root, _ = tiny_mnist
    with pytest.raises(images.DatasetError) as e:
        images.ensure_mnist(root)  # the official hashes cannot match the hand-made files
    msg = str(e.value)
    assert "is corrupt" in msg and "train-images-idx3-ubyte" in msg
    assert images.MNIST_SHA256["train-images-idx3-ubyte"] in msg


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty offline mirror, and torchvision downloads that fail as without network."""
    import torchvision.datasets

    monkeypatch.setenv("GENBENCH_DATA_MIRROR", str(tmp_path / "empty-mirror"))

    def no_network(self):
        raise OSError("network unreachable")

    for cls in (torchvision.datasets.MNIST, torchvision.datasets.CIFAR10):
        monkeypatch.setattr(cls, "download", no_network)


def test_a_missing_dataset_says_where_it_looked(tmp_path, offline):
    with pytest.raises(images.DatasetError) as e:
        images.ensure_mnist(tmp_path / "data")
    msg = str(e.value)
    assert str(tmp_path / "data" / "MNIST" / "raw") in msg
    assert str(tmp_path / "empty-mirror" / "mnist") in msg
    assert "network unreachable" in msg


def test_mirror_files_are_decompressed_and_verified(tmp_path, monkeypatch):
    import gzip

    mirror = tmp_path / "mirror" / "mnist"
    mirror.mkdir(parents=True)
    payload = b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x05\x06"
    with gzip.open(mirror / "t10k-labels-idx1-ubyte.gz", "wb") as f:
        f.write(payload)
    monkeypatch.setenv("GENBENCH_DATA_MIRROR", str(tmp_path / "mirror"))
    import hashlib

    want = {"t10k-labels-idx1-ubyte": hashlib.sha256(payload).hexdigest()}
    raw = images.ensure_mnist(tmp_path / "root", expected=want)
    assert (raw / "t10k-labels-idx1-ubyte").read_bytes() == payload


def test_uniform_model_over_256_levels_scores_exactly_8_bits_per_dim():
    dims = 784
    log_prob = -dims * math.log(256)  # every pixel has probability 1/256
    assert bits_per_dim(-log_prob, dims) == pytest.approx(8.0, abs=1e-12)


def test_novelty_by_hand():
    train = np.zeros((3, 1, 2, 2), dtype=np.uint8)
    train[1] = 255
    queries = np.array([np.zeros((1, 2, 2)), np.full((1, 2, 2), 51)], dtype=np.uint8)  # 51/255 = 0.2
    d = nearest_distances(queries, train)
    np.testing.assert_allclose(d, [0.0, 0.2 * 2], atol=1e-6)  # sqrt(4 * 0.2^2) = 0.4
    copies = novelty(np.zeros(10), np.linspace(0.1, 1.0, 100))
    assert copies["copy_fraction"] == 1.0 and copies["novelty_ratio"] == 0.0
    same = novelty(np.linspace(0.1, 1.0, 100), np.linspace(0.1, 1.0, 100))
    assert same["novelty_ratio"] == 1.0 and same["copy_fraction"] == 0.01


def test_cifar_jpeg_archive_decodes_in_label_order(tmp_path):
    import io
    import tarfile

    from PIL import Image

    archive = tmp_path / "tiny.tar.xz"
    colours = {("train", "airplane", 0): (255, 0, 0), ("train", "truck", 0): (0, 0, 255),
               ("test", "cat", 0): (0, 255, 0)}
    with tarfile.open(archive, "w:xz") as tar:
        for (split, cls, i), rgb in colours.items():
            buf = io.BytesIO()
            Image.new("RGB", (32, 32), rgb).save(buf, format="JPEG", quality=95)
            info = tarfile.TarInfo(f"{split}/{cls}/{i:04d}.jpg")
            info.size = len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    out = images._decode_jpeg_archive(archive)
    x, y = out["train"]
    assert x.shape == (2, 32, 32, 3) and x.dtype == np.uint8
    assert y.tolist() == [0, 9]  # airplane = 0, truck = 9: CIFAR-10's order is alphabetical
    assert abs(int(x[0, ..., 0].mean()) - 255) <= 3 and abs(int(x[1, ..., 2].mean()) - 255) <= 3  # lossy, but close
    assert out["test"][1].tolist() == [3]  # cat


def test_missing_cifar_names_every_place_it_looked(tmp_path, offline):
    with pytest.raises(images.DatasetError) as e:
        images.load_cifar10(tmp_path / "data")
    msg = str(e.value)
    assert str(tmp_path / "data") in msg and "cifar10-jpeg-q75.tar.xz" in msg and "network unreachable" in msg


@pytest.mark.slow  # loads the real 60,000 images (decoding the archive on a fresh data root: ~20 s)
def test_the_offline_cifar_copy_is_labelled_not_comparable():
    if not (images.mirror_dir() / images.CIFAR10_JPEG_ARCHIVE).exists():
        pytest.skip("no offline CIFAR-10 archive on this machine")
    from bench import data
    from bench.config.suite import DataConfig

    ds = data.load("cifar10", DataConfig())
    assert ds.info["variant"] == "cifar10-jpeg75" and ds.info["comparable_to_published"] is False
    assert ds.info["archive_sha256"] == images.CIFAR10_JPEG_SHA256
    assert ds.train.shape == (50000, 3, 32, 32) and ds.test.shape == (10000, 3, 32, 32)
    assert ds.test_labels.bincount().tolist() == [1000] * 10
