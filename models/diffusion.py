"""Diffusion family: DDPM with an MLP epsilon-network (vectors) or a U-Net (images).

Both forms share the Gaussian-diffusion math in :class:`GaussianDiffusion`: the
linear beta schedule, the simple epsilon-prediction loss of Ho et al. (2020), the
reverse-process mean, ancestral sampling with all T steps, deterministic DDIM with
fewer, and the variational bound (ELBO) in nats. They differ in the network, in the
data space (raw vectors; images scaled to [-1, 1]) and in the decoder term of the
bound (a Gaussian density for vectors; a discretized Gaussian over the 256 pixel
values for images, so the image bound is on the discrete log P(x)).

Class-conditional forms (``num_classes`` = K): the network also sees the label, as a learned embedding
concatenated to its input (vectors) or through adaptive group normalization in the U-Net (images); training
drops the label with probability ``p_uncond`` (the null label K), so one network gives epsilon(x_t, t, c) and
epsilon(x_t, t, ∅) and the samplers can guide (Ho & Salimans 2021, arXiv:2207.12598).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import torch
from torch import Tensor, nn

from models import register
from models.base import Capabilities, GenerativeModel, Textbook, TrainConfig, ladder_steps
from models.fields import FieldConflict, Range, check_fields
from models.imaging import (
    UNetChannels,
    check_norm_groups,
    check_unet_shape,
    discretized_gaussian_log_prob,
    from_centered,
    to_centered,
    unet,
)
from models.nets import ConditionalMLP
from models.samplers import DDIM, guided

LOG_2PI = math.log(2 * math.pi)

# The taxonomy's row for this family (README; bench/verdicts.py tests it).
TEXTBOOK = Textbook(likelihood="bound", sampling="slow", likelihood_text="ELBO bound", sampling_text="slow (iterative)",
                    training="stable", sample_quality="excellent",
                    claims=("T2", "T10", "T11", "T15", "T19", "T20"))


class GaussianDiffusion(GenerativeModel):
    """DDPM math (epsilon-prediction, fixed reverse variance beta-tilde) on tensors of any shape.

    References: Ho et al., "Denoising Diffusion Probabilistic Models", 2020,
    arXiv:2006.11239; DDIM: Song et al., "Denoising Diffusion Implicit Models", 2021,
    arXiv:2010.02502; bound and clipping as in improved-diffusion (Nichol & Dhariwal
    2021, arXiv:2102.09672).

    Notation follows Ho et al.: beta_t, alpha_t = 1 - beta_t, alpha_bar_t =
    prod_{s<=t} alpha_s, posterior variance beta_tilde_t. Index ``t`` runs 0..T-1 in
    code for the paper's 1..T. Subclasses set ``eps_net`` (a module called as
    ``eps_net(x_t, t)`` with t of shape (N,), or ``eps_net(x_t, t, y)`` with labels y (N,) in [0, K] for a
    conditional model, K being the null label), call :meth:`_init_schedule`, and define
    the data maps :meth:`encode_data`, :meth:`decode_data` and the decoder term
    :meth:`decoder_log_prob`. Sampling is the samplers' (:class:`models.samplers.Ancestral`, T steps,
    the default; :class:`models.samplers.DDIM`; :class:`models.samplers.ProbabilityFlow`, whose ODE also gives
    an exact likelihood beside the ELBO); latent inference is DDIM inversion (:meth:`to_latent`).
    With ``clip_x0`` the predicted x_0 is clipped to [-1, 1] before it forms the reverse mean, in
    sampling and in the bound alike.
    """

    capabilities = Capabilities(sample=True, bound=True, latent="inversion", conditional=True, guidance=True)
    # ancestral (T steps) first: the default; pf_ode: the probability-flow ODE (Heun), also the exact likelihood
    samplers = {"ancestral": {}, "ddim": {"steps": [50]}, "pf_ode": {"steps": 25, "method": "heun"}}
    legacy_config_keys = ("ddim_steps",)
    clip_x0: bool = False

    def _init_schedule(self, T: int, beta_start: float | None, beta_end: float | None) -> None:
        """Register beta, alpha_bar, alpha_bar_prev and log_var (float32 buffers of length T) of the linear
        schedule :func:`linear_betas` resolves."""
        beta = linear_schedule(T, beta_start, beta_end)
        alpha_bar = torch.cumprod(1 - beta, 0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        beta_tilde = beta * (1 - alpha_bar_prev) / (1 - alpha_bar)
        # beta_tilde_0 = 0; the decoder p(x_0|x_1) uses beta_tilde_1 instead (improved-diffusion's "clipped").
        log_var = torch.log(torch.cat([beta_tilde[1:2], beta_tilde[1:]]))
        for name, v in dict(beta=beta, alpha_bar=alpha_bar, alpha_bar_prev=alpha_bar_prev, log_var=log_var).items():
            self.register_buffer(name, v.float(), persistent=False)

    # ------------------------------------------------------------------ hooks
    def encode_data(self, x: Tensor) -> Tensor:
        """Data -> the float space the diffusion runs in."""
        return x

    def decode_data(self, x0: Tensor) -> Tensor:
        """The diffusion's final x_0 -> data (dtype and range of the modality)."""
        return x0

    def decoder_log_prob(self, x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
        """log p(x | x_1) of the data ``x`` under the decoder N(mean, exp(log_var)), nats, (N,)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ helpers
    @staticmethod
    def _at(v: Tensor, t: Tensor, x: Tensor) -> Tensor:
        """Schedule values v[t] for t (N,), shaped (N, 1, ..., 1) to broadcast against x."""
        return v[t].reshape(-1, *[1] * (x.dim() - 1))

    def _eps(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        """The network's epsilon prediction, in float32 (given labels ``y`` in [0, K], K the null label)."""
        return self.eps_net(x_t, t).float() if y is None else self.eps_net(x_t, t, y).float()

    def q_sample(self, x0: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. Eq. 4)."""
        ab = self._at(self.alpha_bar, t, x0)
        return ab.sqrt() * x0 + (1 - ab).sqrt() * eps

    def predict_x0(self, x_t: Tensor, t: Tensor, eps: Tensor) -> Tensor:
        """x_0 implied by epsilon, clipped to [-1, 1] if ``clip_x0``."""
        ab = self._at(self.alpha_bar, t, x_t)
        x0 = (x_t - (1 - ab).sqrt() * eps) / ab.sqrt()
        return x0.clamp(-1, 1) if self.clip_x0 else x0

    def q_posterior_mean(self, x0: Tensor, x_t: Tensor, t: Tensor) -> Tensor:
        """Mean mu_tilde of q(x_{t-1} | x_t, x_0) (Ho et al. Eq. 7)."""
        ab, ab_prev, beta = (self._at(v, t, x_t) for v in (self.alpha_bar, self.alpha_bar_prev, self.beta))
        return (ab_prev.sqrt() * beta * x0 + (1 - beta).sqrt() * (1 - ab_prev) * x_t) / (1 - ab)

    def p_mean(self, x_t: Tensor, t: Tensor, y: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """Mean of p(x_{t-1} | x_t): Ho et al. Eq. 11, or mu_tilde(clip(x_0), x_t) with ``clip_x0``; epsilon from
        :meth:`eps_at` (conditioned on labels ``y`` and guided with scale ``guidance``)."""
        eps = self.eps_at(x_t, t, y, guidance)
        if self.clip_x0:
            return self.q_posterior_mean(self.predict_x0(x_t, t, eps), x_t, t)
        beta, ab = self._at(self.beta, t, x_t), self._at(self.alpha_bar, t, x_t)
        return (x_t - beta / (1 - ab).sqrt() * eps) / (1 - beta).sqrt()

    # ------------------------------------------------------------------ training
    def loss(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        """L_simple: mean squared error of the epsilon prediction per dimension (Ho et al. Eq. 14).

        A conditional model needs the labels ``y`` (int64 (B,) in [0, K)); each is replaced by the null label
        with probability ``p_uncond`` (Ho & Salimans 2021, Alg. 1).

        Raises:
            ValueError: a conditional model without labels, or bad labels.
        """
        y = self.check_labels(y, len(x))
        if self.conditional and y is None:
            raise ValueError("a conditional diffusion model trains on labels: loss(x, y)")
        x0 = self.encode_data(x)
        t = torch.randint(0, self.config.T, (x0.shape[0],), device=x0.device)
        eps = torch.randn_like(x0)
        if y is None:
            return ((self._eps(self.q_sample(x0, t, eps), t) - eps) ** 2).mean()
        return ((self._eps(self.q_sample(x0, t, eps), t, self.drop_labels(y)) - eps) ** 2).mean()

    # ------------------------------------------------------------------ sampling and inversion
    def eps_at(self, x_t: Tensor, t: Tensor, y: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """The network's epsilon prediction at x_t for timesteps t (N,), float32: what samplers call.

        With labels ``y`` (int64 (N,) in [0, K)) it is epsilon(x_t, t, y); with ``guidance`` w > 0 the
        classifier-free guided (1 + w) epsilon(x_t, t, y) - w epsilon(x_t, t, ∅) (Ho & Salimans 2021, Eq. 6),
        both from one network pass on a batch of 2N."""
        if y is None:
            return self._eps(x_t, t)
        if not guidance:
            return self._eps(x_t, t, y)
        null = torch.full_like(y, self.null_label)
        e_c, e_u = self._eps(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
        return guided(e_c, e_u, guidance)

    def inversion_sampler(self, sampler: DDIM | None = None) -> DDIM:
        """The DDIM sampler of latent inference: ``sampler`` if given, else the family's first DDIM sampler,
        made deterministic (eta = 0)."""
        ddim = self.resolve_sampler(sampler or next(s for s in self.default_samplers().values()
                                                    if isinstance(s, DDIM)))
        return ddim if ddim.eta == 0 else dataclasses.replace(ddim, eta=0.0)

    def latent_nfe(self, sampler: DDIM | None = None) -> int:
        return self.inversion_sampler(sampler).nfe(self)

    def _latent_labels(self, y: Tensor | None, n: int) -> Tensor | None:
        y = self.check_labels(y, n)
        if self.conditional and y is None:
            raise ValueError("latent inference of a conditional diffusion model needs the labels y")
        return y

    def to_latent(self, x: Tensor, sampler: DDIM | None = None, y: Tensor | None = None) -> Tensor:
        """x_T by DDIM inversion (:meth:`models.samplers.DDIM.invert`) with ``sampler``'s timesteps (default:
        the family's first DDIM sampler), flattened to (N, D), float32; NFE = its steps. A conditional model
        inverts given the labels ``y`` (int64 (N,))."""
        y = self._latent_labels(y, len(x))
        ddim = self.inversion_sampler(sampler)
        x0 = self.encode_data(x).float()
        return (ddim.invert(self, x0) if y is None else ddim.invert(self, x0, y)).flatten(1)

    def from_latent(self, z: Tensor, sampler: DDIM | None = None, y: Tensor | None = None) -> Tensor:
        """The DDIM sampler (deterministic, eta = 0) started at x_T = z (N, D): data of the modality (given the
        labels ``y`` for a conditional model)."""
        y = self._latent_labels(y, len(z))
        ddim = self.inversion_sampler(sampler)
        return self.decode_data(ddim.denoise(self, z.reshape(-1, *self.data_shape), y=y))

    def schedule_steps(self, train: TrainConfig) -> dict[str, int]:
        """The loop's schedules (:meth:`models.base.GenerativeModel.schedule_steps`) and the noise ladder:
        every one of the ladder's T levels has been drawn for training (levels are drawn
        uniformly, ``batch_size`` per step) with probability at least 1 - 1e-6: after
        ceil(L ln(L / 1e-6) / batch_size) steps, L the number of levels (a union bound)."""
        return {**super().schedule_steps(train), "noise ladder covered": ladder_steps(self.config.T, train.batch_size)}

    # ------------------------------------------------------------------ probability-flow ODE
    # The hooks of models.samplers.ProbabilityFlow. The state is y = x_t / sqrt(alpha_bar_t) at the noise
    # level sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t), where the ODE reads dy/dsigma = eps(x_t, t) (DDIM's
    # ODE, Song et al. 2021, arXiv:2010.02502, Eq. 14); t(sigma) interpolates the discrete schedule linearly in
    # log sigma, so the network is evaluated at fractional timesteps between the ones it was trained on.
    def _sigma_table(self) -> np.ndarray:
        ab = self.alpha_bar.double().cpu().numpy()
        return np.sqrt((1 - ab) / ab)

    def pf_sigma_range(self) -> tuple[float, float]:
        """(sigma at t = 0, sigma at t = T - 1): the ODE runs between the first and the last noise level."""
        table = self._sigma_table()
        return float(table[0]), float(table[-1])

    def pf_timestep(self, sigma: float) -> float:
        """The fractional timestep t in [0, T - 1] whose sigma_t is ``sigma`` (linear in log sigma)."""
        table = self._sigma_table()
        return float(np.interp(np.log(sigma), np.log(table), np.arange(len(table))))

    def pf_drift(self, y: Tensor, sigma: float, labels: Tensor | None = None, guidance: float = 0.0) -> Tensor:
        """dy/dsigma = eps_theta(y / sqrt(1 + sigma^2), t(sigma)), y's shape, float32 (given the class ``labels``
        of a conditional model, guided at ``guidance``: :meth:`eps_at`)."""
        t = torch.full((y.shape[0],), self.pf_timestep(sigma), device=y.device)
        return self.eps_at(y / math.sqrt(1 + sigma**2), t, labels, guidance)

    def pf_prior_sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """y at sigma_max from the DDPM prior x_T ~ N(0, I): N(0, (1 + sigma_max^2) I), (n, *data_shape)."""
        s = math.sqrt(1 + self.pf_sigma_range()[1] ** 2)
        return s * torch.randn(n, *self.data_shape, device=self.device, generator=generator)

    def pf_prior_log_prob(self, y: Tensor) -> Tensor:
        """log N(y; 0, (1 + sigma_max^2) I) in nats, (N,)."""
        var = 1 + self.pf_sigma_range()[1] ** 2
        return -0.5 * (LOG_2PI + math.log(var) + y.double() ** 2 / var).flatten(1).sum(1).float()

    def continuous_data(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Data -> the diffusion's float space as a continuous variable, and log|d(float)/d(data)| per example
        (nats, (N,)). Vectors: themselves, 0."""
        return self.encode_data(x).float(), torch.zeros(x.shape[0], device=x.device)

    def pf_from_data(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """(y at sigma_min, log|dy/dx| per example in nats): y = x_0 / sqrt(alpha_bar_0), the model's density
        being that of x_{t=0}."""
        x0, log_det = self.continuous_data(x, generator)
        ab0 = float(self.alpha_bar[0])
        d = x0[0].numel()
        return x0 / math.sqrt(ab0), log_det - 0.5 * d * math.log(ab0)

    def pf_to_data(self, y: Tensor) -> Tensor:
        """y at sigma_min -> data: x_0 = sqrt(alpha_bar_0) y, decoded."""
        return self.decode_data(y * math.sqrt(float(self.alpha_bar[0])))

    # ------------------------------------------------------------------ variational bound
    def density_nfe(self) -> int:
        return self.config.T  # the ELBO sums T terms, one network pass each

    def log_prob_bounds(self, x: Tensor, generator: torch.Generator | None = None,
                        y: Tensor | None = None) -> dict[str, Tensor]:
        """``{"elbo": ...}``: the DDPM variational lower bound on log p(x), in nats, (N,).

        -ELBO = KL(q(x_T|x_0) || N(0, I)) + sum_{t>1} KL(q(x_{t-1}|x_t, x_0) || p(x_{t-1}|x_t))
        - log p(x_0|x_1) (Ho et al. Eq. 5), the last term from :meth:`decoder_log_prob`.
        Each KL term uses one draw of x_t (from ``generator``); all T terms are summed
        (T network passes). A conditional model bounds log p(x|y) given labels ``y``, and for ``y=None`` the
        marginal log sum_c pi_c exp(ELBO_c), still a lower bound on log p(x) (:meth:`marginal`, K times T passes).
        """
        y = self.check_labels(y, len(x))
        if self.conditional and y is None:
            return self.marginal(lambda yc: self.log_prob_bounds(x, generator, yc), len(x))
        x0 = self.encode_data(x)
        n = x0.shape[0]
        ab_T = self.alpha_bar[-1]
        total = 0.5 * ((1 - ab_T) + ab_T * x0**2 - 1 - torch.log(1 - ab_T)).flatten(1).sum(1)  # prior KL
        for i in range(self.config.T):
            t = torch.full((n,), i, device=x0.device, dtype=torch.long)
            eps = torch.randn(x0.shape, device=x0.device, generator=generator)
            x_t = self.q_sample(x0, t, eps)
            mean = self.p_mean(x_t, t, y)
            log_var = self.log_var[i]
            if i == 0:  # decoder term -log p(x_0 | x_1)
                total = total - self.decoder_log_prob(x, mean, log_var)
            else:  # KL between Gaussians of equal variance beta_tilde_t: ||mu_tilde - mu_theta||^2 / (2 var)
                mu_tilde = self.q_posterior_mean(x0, x_t, t)
                total = total + ((mu_tilde - mean) ** 2).flatten(1).sum(1) / (2 * log_var.exp())
        return {"elbo": -total}


# the options both forms share: the schedule
_T = Annotated[int, Range(ge=2, le=10_000)]  # the bound's decoder term uses beta-tilde_1: two steps at least
_Beta = Annotated[float, Range(ge=1e-8, le=0.999)]  # 0.999: improved-diffusion's max_beta


HO_T, HO_BETAS = 1000, (1e-4, 0.02)  # Ho et al. 2020's linear schedule, for T = 1000 steps
MAX_BETA = 0.999  # improved-diffusion's max_beta
MAX_PRIOR_SIGNAL = 0.05  # the largest sqrt(alpha_bar_T) allowed: sampling starts from N(0, I)


def linear_betas(T: int, beta_start: float | None = None, beta_end: float | None = None) -> tuple[float, float]:
    """The linear schedule's (beta_1, beta_T): each as given, else Ho et al.'s value for 1000 steps (1e-4, 0.02)
    scaled by 1000 / T, so that any T destroys the data as Ho et al.'s 1000 steps do (improved-diffusion's
    ``get_named_beta_schedule("linear", T)``, Nichol & Dhariwal 2021, arXiv:2102.09672), capped at 0.999.

    Example: T = 100 -> (0.001, 0.2), sqrt(alpha_bar_T) = 0.0045; Ho et al.'s (1e-4, 0.02) unscaled at T = 100
    would leave sqrt(alpha_bar_T) = 0.60 of the data at the step where sampling starts from pure noise.
    """
    scale = HO_T / T
    start = min(scale * HO_BETAS[0], MAX_BETA) if beta_start is None else beta_start
    end = min(scale * HO_BETAS[1], MAX_BETA) if beta_end is None else beta_end
    return start, end


def linear_schedule(T: int, beta_start: float | None = None, beta_end: float | None = None) -> Tensor:
    """beta_1 ... beta_T, float64 (T,), linear between the ends :func:`linear_betas` resolves."""
    return torch.linspace(*linear_betas(T, beta_start, beta_end), T, dtype=torch.float64)


def prior_signal(T: int, beta_start: float | None = None, beta_end: float | None = None) -> float:
    """sqrt(alpha_bar_T) of the linear schedule: the fraction of x_0 that x_T keeps (0 for pure noise)."""
    return float(torch.prod(1 - linear_schedule(T, beta_start, beta_end)).sqrt())


def _check_schedule(config) -> None:
    """Fields in range; a linear schedule that rises (beta_start < beta_end, as :func:`linear_betas` resolves
    them) and that ends in noise: sqrt(alpha_bar_T) <= 0.05, since every sampler starts from x_T ~ N(0, I).

    Raises:
        FieldConflict: naming the fields, e.g. ``"T: 100 is not allowed with beta_end = 0.02 and beta_start =
            0.0001: x_T keeps sqrt(alpha_bar_T) = 0.603 of the data (at most 0.05), ..."``.
    """
    check_fields(config)
    start, end = linear_betas(config.T, config.beta_start, config.beta_end)
    if not start < end:
        raise FieldConflict({"beta_start": f"{start!r} is not allowed (must be below beta_end = {end!r})",
                             "beta_end": f"{end!r} is not allowed (must be above beta_start = {start!r})"})
    signal = prior_signal(config.T, start, end)
    if signal > MAX_PRIOR_SIGNAL:
        why = (f"x_T keeps sqrt(alpha_bar_T) = {signal:.3f} of the data (at most {MAX_PRIOR_SIGNAL}), where "
               "sampling starts from N(0, I); raise T or beta_end, or leave both betas unset (Ho et al.'s, scaled "
               "by 1000 / T)")
        values = {"T": config.T, "beta_end": end, "beta_start": start}
        raise FieldConflict({name: f"{value!r} is not allowed with "
                                   + " and ".join(f"{o} = {v!r}" for o, v in values.items() if o != name)
                                   + f": {why}" for name, value in values.items()})


# =========================================================================== vectors
@dataclass
class DDPMConfig:
    """Options of :class:`DDPM`.

    Attributes:
        T: diffusion steps, 2 to 10^4.
        beta_start, beta_end: the linear beta schedule's endpoints, in [1e-8, 0.999] with beta_start <
            beta_end; unset (``None``): Ho et al.'s 1e-4 and 0.02 for T = 1000, scaled by 1000 / T
            (:func:`linear_betas`). The schedule must end in noise: sqrt(alpha_bar_T) <= 0.05.
        hidden: width of the epsilon-network.
        layers: hidden layers of the epsilon-network.
        num_classes: K for a class-conditional model (a label embedding concatenated to the network's input);
            ``None``: unconditional.
        p_uncond: probability that training drops a label (the null label), for classifier-free guidance.

    Raises:
        ValueError: a value outside its declared range, beta_start >= beta_end, or a schedule that does not end
            in noise (:class:`models.fields.FieldConflict`).
    """

    T: _T = 1000
    beta_start: _Beta | None = None
    beta_end: _Beta | None = None
    hidden: Annotated[int, Range(ge=1, le=2048)] = 128
    layers: Annotated[int, Range(ge=1, le=64)] = 3
    num_classes: Annotated[int, Range(ge=2, le=100_000)] | None = None
    p_uncond: Annotated[float, Range(ge=0, lt=1)] = 0.1

    def __post_init__(self):
        _check_schedule(self)


@register("diffusion", modality="vector")
class DDPM(GaussianDiffusion):
    """DDPM (epsilon-prediction, fixed reverse variance beta-tilde) for vector data.

    References: Ho et al., "Denoising Diffusion Probabilistic Models", 2020,
    arXiv:2006.11239; DDIM: Song et al., "Denoising Diffusion Implicit Models",
    2021, arXiv:2010.02502.

    The math is :class:`GaussianDiffusion`'s, on raw coordinates (no clipping); the
    bound's decoder term is the Gaussian density N(x_0; mu_theta(x_1, 1), sigma_1^2).
    Samples are (n, D) float32.
    """

    reference = "Ho et al. 2020, arXiv:2006.11239; Song et al. 2021, arXiv:2010.02502"
    textbook = TEXTBOOK
    # test size (tests/test_contract.py)
    tiny = {"T": 20, "hidden": 16}
    tiny_samplers = {"ddim": {"steps": [5]}, "pf_ode": {"steps": 2}}
    Config = DDPMConfig
    train_defaults = {"lr": 2e-3, "ema": 0.995}

    def __init__(self, config: DDPMConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        (D,) = self.data_shape
        self.eps_net = ConditionalMLP(D, config.hidden, config.layers, num_classes=config.num_classes)
        self._init_schedule(config.T, config.beta_start, config.beta_end)

    def decoder_log_prob(self, x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
        """log N(x; mean, exp(log_var)) summed over D, nats, (N,)."""
        return -0.5 * (LOG_2PI + log_var + (x - mean) ** 2 / log_var.exp()).sum(-1)


# =========================================================================== images
@dataclass
class ImageDDPMConfig:
    """Options of :class:`ImageDDPM`.

    Attributes:
        T: diffusion steps, 2 to 10^4.
        beta_start, beta_end: the linear beta schedule's endpoints, in [1e-8, 0.999] with beta_start <
            beta_end; unset (``None``): Ho et al.'s 1e-4 and 0.02 for T = 1000, scaled by 1000 / T
            (:func:`linear_betas`). The schedule must end in noise: sqrt(alpha_bar_T) <= 0.05.
        channels: U-Net feature maps per resolution level (diffusers' ``block_out_channels``);
            H and W must be divisible by 2 ** (len(channels) - 1).
        layers_per_block: ResNet blocks per level.
        attention: self-attention at the lowest resolution and in the middle block.
        norm_groups: GroupNorm groups (must divide every entry of ``channels``).
        dropout: dropout probability in the ResNet blocks, in [0, 1) (Ho et al.: 0.1 on CIFAR-10).
        clip_x0: clip the predicted x_0 to [-1, 1] in sampling and in the bound
            (improved-diffusion's ``clip_denoised``).
        num_classes: K for a class-conditional U-Net (a class embedding applied by adaptive group
            normalization in every ResNet block, :func:`models.imaging.unet`); ``None``: unconditional.
        p_uncond: probability that training drops a label (the null label), for classifier-free guidance.

    Raises:
        ValueError: a value outside its declared range, beta_start >= beta_end, a schedule that does not end in
            noise, or ``norm_groups`` not dividing ``channels`` (:class:`models.fields.FieldConflict`).
    """

    T: _T = 1000
    beta_start: _Beta | None = None
    beta_end: _Beta | None = None
    channels: UNetChannels = (64, 128, 128)
    layers_per_block: Annotated[int, Range(ge=1, le=8)] = 2
    attention: bool = True
    norm_groups: Annotated[int, Range(ge=1, le=512)] = 32
    dropout: Annotated[float, Range(ge=0, lt=1)] = 0.0
    clip_x0: bool = True
    num_classes: Annotated[int, Range(ge=2, le=100_000)] | None = None
    p_uncond: Annotated[float, Range(ge=0, lt=1)] = 0.1

    def __post_init__(self):
        _check_schedule(self)
        check_norm_groups(self)



class UNetEps(nn.Module):
    """``eps_net(x_t, t, y=None)``: a diffusers U-Net taking (N, C, H, W), timesteps (N,) and, when
    class-conditional, labels (N,) in [0, K] (K, the null label, for ``y=None``)."""

    def __init__(self, data_shape: tuple[int, ...], config: ImageDDPMConfig):
        super().__init__()
        self.num_classes = config.num_classes
        self.unet = unet(data_shape[0], data_shape, config.channels, config.layers_per_block, config.attention,
                         config.norm_groups, config.dropout, num_classes=config.num_classes)

    def forward(self, x_t: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes is None:
            return self.unet(x_t, t).sample
        if y is None:
            y = torch.full((x_t.shape[0],), self.num_classes, dtype=torch.long, device=x_t.device)
        return self.unet(x_t, t, class_labels=y).sample


@register("diffusion", modality="image")
class ImageDDPM(GaussianDiffusion):
    """DDPM on 8-bit images with a U-Net epsilon-network; ELBO on the discrete log P(x).

    References: Ho et al., "Denoising Diffusion Probabilistic Models", 2020,
    arXiv:2006.11239; Song et al. 2021, arXiv:2010.02502 (DDIM); Nichol & Dhariwal,
    "Improved Denoising Diffusion Probabilistic Models", 2021, arXiv:2102.09672 (the
    discretized Gaussian decoder and x_0 clipping).

    Pixels are scaled to [-1, 1] (pixel k at k / 127.5 - 1). The bound's t = 0 term is
    the discretized Gaussian N(mu_theta(x_1, 1), sigma_1^2) over bins of width 2/255,
    edge bins taking the tails (:func:`models.imaging.discretized_gaussian_log_prob`), so
    ``log_prob_bounds`` is a lower bound on log P(x) of the 8-bit image, in nats.
    Samples are rounded to the nearest pixel value, uint8.

    Example:
        >>> m = ImageDDPM(ImageDDPMConfig(T=10, channels=(8, 16), norm_groups=4), (1, 8, 8))
        >>> m.sample(2, sampler=DDIM(steps=5)).dtype
        torch.uint8
    """

    reference = "Ho et al. 2020, arXiv:2006.11239; Nichol & Dhariwal 2021, arXiv:2102.09672"
    textbook = TEXTBOOK
    # test size (tests/test_contract.py)
    tiny = {"T": 20, "channels": (8, 16), "layers_per_block": 1, "norm_groups": 4}
    tiny_samplers = {"ddim": {"steps": [5]}, "pf_ode": {"steps": 2}}
    samplers = {"ancestral": {}, "ddim": {"steps": [10, 20, 50, 100]}, "pf_ode": {"steps": 25, "method": "heun"}}
    Config = ImageDDPMConfig
    train_defaults = {"lr": 2e-4, "ema": 0.999, "warmup_steps": 200, "grad_clip": 1.0}

    @classmethod
    def check_data_shape(cls, config: ImageDDPMConfig, data_shape: tuple[int, ...]) -> None:
        check_unet_shape(config, data_shape)

    def __init__(self, config: ImageDDPMConfig, data_shape: tuple[int, ...]):
        super().__init__(config, data_shape)
        self.eps_net = UNetEps(self.data_shape, config)
        self.clip_x0 = config.clip_x0
        self._init_schedule(config.T, config.beta_start, config.beta_end)

    def encode_data(self, x: Tensor) -> Tensor:
        """uint8 pixels -> [-1, 1]."""
        return to_centered(x)

    def decode_data(self, x0: Tensor) -> Tensor:
        """[-1, 1] -> uint8 pixels, nearest value."""
        return from_centered(x0)

    def continuous_data(self, x: Tensor, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """uint8 pixels k -> k + u, u ~ U[0, 1) (``generator``), mapped to [-1, 1] by (v - 0.5) / 127.5 - 1 (pixel k
        at the centre of its bin, as :func:`to_centered`), and the log-Jacobian -D log 127.5 per example."""
        v = x.float() + torch.rand(x.shape, device=x.device, generator=generator)
        return (v - 0.5) / 127.5 - 1.0, torch.full((x.shape[0],), -x[0].numel() * math.log(127.5), device=x.device)

    def decoder_log_prob(self, x: Tensor, mean: Tensor, log_var: Tensor) -> Tensor:
        """log P(x | x_1) of the uint8 image under the discretized Gaussian, nats, (N,)."""
        return discretized_gaussian_log_prob(x, mean, 0.5 * log_var).flatten(1).sum(1)
