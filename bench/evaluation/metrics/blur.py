"""Blur of image samples, measured against real images: high-frequency spectral energy and the Laplacian.

Two per-image statistics, each averaged over a sample set and divided by the same average over
real test images, so that 1 means "as sharp as the data", below 1 blurrier, above 1 sharper or noisier:

* **high-frequency energy** (after Durall et al., "Watch your Up-Convolution", CVPR 2020,
  arXiv:2003.01826, who compare the power spectra of real and generated images): the spectral energy of an
  image above half the Nyquist frequency (radial frequency |f| > 1/4 cycle per pixel), from the 2D DFT of the
  grey image (the channel mean) in [0, 1], as the mean square of that high-pass part of the image (Parseval:
  sum over those frequencies of |F|² / (H W)²), in (pixels/255)². An absolute energy, not a fraction of the
  image's own: a blank image has none, however its residual noise is distributed;
* **variance of the Laplacian** (Pech-Pacheco et al. 2000, the usual focus measure): the variance (ddof = 0) over
  pixels of the 3x3 Laplacian [[0, 1, 0], [1, -4, 1], [0, 1, 0]] of the grey image in [0, 1] (valid
  convolution), in (pixels/255)² units.

Noise raises both as much as blur lowers them: a VAE drawn with its per-pixel observation noise
looks "sharper" than the data. Hence the |log ratio| (:func:`blur_metrics`), the distance from the
data's sharpness in either direction, reported beside the signed ratio. Standard errors of the log
ratios are by the delta method from the per-image values of both sets (sample std, ddof = 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
CUTOFF = 0.25  # cycles per pixel: half the Nyquist frequency (0.5)


def _grey(images) -> torch.Tensor:
    """uint8 (N, C, H, W) (or (N, H, W)) -> float64 (N, H, W) in [0, 1], the mean over channels."""
    x = torch.as_tensor(np.asarray(images))
    if x.dim() == 3:
        x = x[:, None]
    if x.dim() != 4:
        raise ValueError(f"need images of shape (N, C, H, W), got {tuple(x.shape)}")
    return x.double().mean(1) / 255.0


def hf_energy(images, cutoff: float = CUTOFF, batch: int = 1024) -> np.ndarray:
    """Per image, the energy of its spectrum above ``cutoff`` cycles per pixel: the mean square of its high-pass part.

    Args:
        images: uint8 (N, C, H, W), values 0..255.
        cutoff: radial frequency in cycles per pixel (Nyquist = 0.5); default half the Nyquist frequency.

    Returns:
        (N,) float64 >= 0, in (pixels/255)² (a 0/255 checkerboard: 0.25; a constant image: 0).

    Raises:
        ValueError: not a batch of images.
    """
    g = _grey(images)
    h, w = g.shape[1:]
    fy, fx = torch.meshgrid(torch.fft.fftfreq(h, dtype=torch.float64), torch.fft.fftfreq(w, dtype=torch.float64),
                            indexing="ij")
    high = torch.sqrt(fx**2 + fy**2) > cutoff
    out = [((torch.fft.fft2(c).abs() ** 2) * high).sum((1, 2)) / (h * w) ** 2 for c in g.split(batch)]
    return torch.cat(out).numpy()


def laplacian_variance(images, batch: int = 1024) -> np.ndarray:
    """Per image, the variance over pixels of its 3x3 Laplacian (grey, [0, 1] scale, valid convolution).

    Returns:
        (N,) float64, in (pixels/255)² units; 0 for a constant image.

    Raises:
        ValueError: not a batch of images or smaller than 3x3.
    """
    g = _grey(images)
    if min(g.shape[1:]) < 3:
        raise ValueError(f"images must be at least 3x3, got {tuple(g.shape[1:])}")
    k = LAPLACIAN.double()[None, None]
    return torch.cat([F.conv2d(c[:, None], k)[:, 0].flatten(1).var(1, correction=0) for c in g.split(batch)]).numpy()


def _log_ratio(samples: np.ndarray, reference: np.ndarray) -> tuple[float, float, float]:
    """(mean of samples, ratio of means, SE of the log ratio by the delta method); NaN values are dropped."""
    a, b = samples[np.isfinite(samples)], reference[np.isfinite(reference)]
    ma, mb = float(a.mean()), float(b.mean())
    if len(a) < 2 or len(b) < 2 or ma <= 0 or mb <= 0:
        return ma, math.nan, math.nan
    se = math.sqrt(a.var(ddof=1) / (len(a) * ma**2) + b.var(ddof=1) / (len(b) * mb**2))
    return ma, ma / mb, se


def blur_metrics(samples, reference_hf: np.ndarray, reference_lap: np.ndarray) -> dict:
    """Both blur measures of ``samples`` (uint8 (N, C, H, W)) relative to real images' per-image values.

    Args:
        samples: the generated images.
        reference_hf, reference_lap: :func:`hf_energy` and :func:`laplacian_variance` of the real
            reference images (e.g. the first N test images).

    Returns:
        The :class:`~bench.store.schema.SamplerResult` fields: ``hf_energy``, ``hf_energy_ratio``,
        ``hf_energy_log_ratio_se``, ``hf_energy_abs_log_ratio``, ``laplacian_var``, ``laplacian_var_ratio``,
        ``laplacian_log_ratio_se``, ``laplacian_abs_log_ratio`` (ratios NaN when a mean is 0, e.g. blank samples).
    """
    out = {}
    for name, values, ref, prefix, log_name in (
            ("hf_energy", hf_energy(samples), reference_hf, "hf_energy", "hf_energy_log_ratio_se"),
            ("laplacian_var", laplacian_variance(samples), reference_lap, "laplacian", "laplacian_log_ratio_se")):
        mean, ratio, se = _log_ratio(values, ref)
        ratio_key = "hf_energy_ratio" if prefix == "hf_energy" else "laplacian_var_ratio"
        out.update({name: mean, ratio_key: ratio, log_name: se,
                    f"{prefix}_abs_log_ratio": abs(math.log(ratio)) if ratio > 0 else math.nan})
    return out
