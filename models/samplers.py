"""Samplers as objects, apart from the networks they drive (after diffusers' scheduler/pipeline split).

A family trains a network; a :class:`Sampler` turns it into samples. A sampler is a small dataclass of
settings with a name, a number of sequential network evaluations (:meth:`Sampler.nfe`) and a call
(:meth:`Sampler.draw`). ``model.sample(n, generator, sampler=s)`` runs ``s`` on ``model``; without ``s`` the
family's default (the first of its :attr:`~models.base.GenerativeModel.samplers`). Adding a sampler to a
finished run therefore never touches training: suites list samplers outside the model block
(``families.<name>.samplers``), and a changed sampler redoes the sample stage only.

Kinds (:data:`KINDS`):

* ``native``: the family's own procedure, ``model.generate(n, generator)`` (autoregressive, VAE, GAN, flow).
* ``ancestral``: DDPM ancestral sampling, all T steps (Ho et al. 2020, arXiv:2006.11239, Alg. 2).
* ``ddim``: DDIM with ``steps`` steps and stochasticity ``eta`` (Song et al. 2021, arXiv:2010.02502,
  Eq. 12); its one step function, :func:`ddim_step`, also runs the inversion x_0 -> x_T
  (:meth:`DDIM.invert`).
* ``annealed_langevin``: Langevin dynamics over the score family's noise ladder (Song & Ermon 2019,
  arXiv:1907.05600, Alg. 1), then a Tweedie denoising step.
* ``sgld``: stochastic-gradient Langevin dynamics on an energy (Welling & Teh 2011; Du & Mordatch 2019,
  arXiv:1903.08689), clamped to the model's box.
* ``decoder_mean``: a latent-variable model's decoder mean E[x|z], z ~ p(z), without the observation noise
  of p(x|z) (what VAE papers show as samples).
* ``pf_ode``: the probability-flow ODE of a diffusion or score model (Song et al. 2021, arXiv:2011.13456,
  Eq. 13), integrated by :func:`odeint`; the same object gives the model's exact log-likelihood by the
  instantaneous change of variables (:meth:`ProbabilityFlow.log_prob`).

Both Langevin samplers, and the EBM's training chains, run one integrator, :func:`langevin`. The
probability-flow ODE (Song et al. 2021, arXiv:2011.13456) reuses :func:`odeint` (Euler or Heun).

**Conditioning and classifier-free guidance.** ``draw(model, n, generator, y=labels)`` draws sample i from
p(x | y_i) for a class-conditional model (labels int64 (n,) in [0, K); ``model.sample`` checks them). The
samplers that can guide (``native`` for the autoregressive family, ``ancestral``, ``ddim``,
``annealed_langevin``) take a guidance scale w (setting ``guidance``, default 0): the network's output is
(1 + w) f(x, c) - w f(x, ∅) with ∅ the null label, for the noise prediction epsilon, the score
(Ho & Salimans 2021, arXiv:2207.12598, Eq. 6: grad log p~(x|c) = (1 + w) grad log p(x|c) - w grad log p(x)) or
the log-probabilities of an autoregressive conditional. Both passes run as one batch of 2n; NFE counts them
both, so it doubles when w > 0. With w = 0 and no labels every sampler runs exactly its unconditional code.
A suite sweeps w like DDIM's steps (``ddim: {steps: 50, guidance: [0, 1, 2]}`` gives ``ddim_w0``, ``ddim_w1``,
``ddim_w2``).
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from models.fields import FieldConflict, Range, check_fields, check_order

__all__ = ["Sampler", "Native", "Ancestral", "DDIM", "AnnealedLangevin", "SGLD", "DecoderMean", "ProbabilityFlow",
           "KINDS", "ddim_step", "langevin", "odeint", "divergence", "build_samplers", "expand_entries", "guided"]


@dataclass
class Sampler:
    """A way to draw samples from a trained model: settings, a name, an NFE count and a call.

    Subclasses are dataclasses whose fields are the settings (each declaring its allowed values with
    :class:`~models.fields.Range`), with a ``kind`` (the key in :data:`KINDS` and in suites). ``name`` is what
    records and tables call it (``"ddim20"``); it is not a setting.

    Raises:
        ValueError: a setting outside its range (:func:`~models.fields.check_fields`).
    """

    kind: ClassVar[str] = ""
    sweep_label: ClassVar[str | None] = None  # samplers of one sweep differ only in their step count
    name: str = dataclasses.field(default="", init=False, compare=False, repr=False)

    def __post_init__(self):
        check_fields(self)
        if not self.name:
            self.name = self.kind

    def settings(self) -> dict[str, Any]:
        """``{"kind": ..., <setting>: <value>, ...}``: what records store as the sampler's settings."""
        return {"kind": self.kind, **{f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                                      if f.name != "name"}}

    @property
    def sweep(self) -> str | None:
        """The sweep this sampler belongs to (e.g. ``"DDIM (η = 0)"``): one quality-against-NFE curve in the
        report; ``None`` when it stands alone."""
        return None

    def check(self, config: Any) -> None:
        """Refuse settings that do not fit the model built with ``config`` (the family's ``Config``), e.g.
        more DDIM steps than diffusion steps.

        Raises:
            ValueError: naming the setting and the model option it conflicts with.
        """

    def nfe(self, model: Any) -> int:
        """Sequential network function evaluations one call of :meth:`draw` makes on ``model``."""
        raise NotImplementedError

    def draw(self, model: Any, n: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` samples of ``model``, shape (n, *data_shape): float32 vectors or uint8 images.

        All randomness comes from ``generator`` (on the model's device). Called through
        ``model.sample(n, generator, sampler=self)``, which decides whether autograd records a graph; for a
        conditional model it passes ``y=labels`` (int64 (n,), checked) too.
        """
        raise NotImplementedError


_Guidance = Annotated[float, Range(ge=0, le=100)]


def guided(f_cond: Tensor, f_uncond: Tensor, w: float) -> Tensor:
    """Classifier-free guidance: (1 + w) f(x, c) - w f(x, ∅) (Ho & Salimans 2021, arXiv:2207.12598, Eq. 6), for
    an epsilon prediction, a score or log-probabilities (any shape, the two alike); w = 0 returns ``f_cond``."""
    return f_cond if not w else (1 + w) * f_cond - w * f_uncond


def _guided(nfe: int, guidance: float) -> int:
    """NFE of a sampler that makes ``nfe`` network evaluations, doubled under guidance (conditional and
    unconditional pass)."""
    return nfe * (2 if guidance else 1)


# =========================================================================== native
@dataclass
class Native(Sampler):
    """The family's own sampling procedure, ``model.generate(n, generator)``: ancestral sampling of an
    autoregressive model, a VAE's decoder, a GAN's generator, a flow's inverse. NFE: ``model.generate_nfe()``,
    doubled with ``guidance`` > 0 (only families with ``capabilities.guidance``: the autoregressive family, which
    guides each conditional's log-probabilities)."""

    kind: ClassVar[str] = "native"
    guidance: _Guidance = 0.0

    def nfe(self, model: Any) -> int:
        return _guided(int(model.generate_nfe()), self.guidance)

    def draw(self, model: Any, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        if y is None:
            return model.generate(n, generator)
        return model.generate(n, generator, y=y, **({"guidance": self.guidance} if self.guidance else {}))


# =========================================================================== diffusion
@dataclass
class Ancestral(Sampler):
    """DDPM ancestral sampling: x_T ~ N(0, I), then x_{t-1} = mu_theta(x_t, t) + sigma_t z for all T steps,
    no noise at the last (Ho et al. 2020, arXiv:2006.11239, Alg. 2; sigma_t^2 = beta-tilde_t).

    Needs a model with ``config.T``, ``p_mean(x_t, t)``, ``log_var`` (T,), ``data_shape`` and ``decode_data``
    (:class:`models.diffusion.GaussianDiffusion`). NFE = T, 2T with ``guidance`` > 0 (epsilon guided).
    """

    kind: ClassVar[str] = "ancestral"
    guidance: _Guidance = 0.0

    def nfe(self, model: Any) -> int:
        return _guided(int(model.config.T), self.guidance)

    def draw(self, model: Any, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        x = torch.randn(n, *model.data_shape, device=model.device, generator=generator)
        for i in reversed(range(model.config.T)):
            t = torch.full((n,), i, device=x.device, dtype=torch.long)
            x = model.p_mean(x, t) if y is None else model.p_mean(x, t, y=y, guidance=self.guidance)
            if i > 0:
                noise = torch.randn(x.shape, device=x.device, generator=generator)
                x = x + torch.exp(0.5 * model.log_var[i]) * noise
        return model.decode_data(x)


def ddim_step(x: Tensor, eps: Tensor, alpha_bar: Tensor, alpha_bar_to: Tensor, *, eta: float = 0.0,
              clip: bool = False, noise: Tensor | None = None) -> Tensor:
    """One DDIM update from noise level ``alpha_bar`` to ``alpha_bar_to`` (Song et al. 2021, Eq. 12).

    x_0 = (x - sqrt(1 - ab) eps) / sqrt(ab), clipped to [-1, 1] with ``clip`` (then eps is recomputed from
    the clipped x_0, as improved-diffusion does); the result is
    sqrt(ab_to) x_0 + sqrt(1 - ab_to - sigma^2) eps + sigma z with
    sigma = eta sqrt((1 - ab_to) / (1 - ab)) sqrt(1 - ab / ab_to). Going down (ab_to > ab) it samples;
    going up with eta = 0 (ab_to < ab) it is DDIM inversion, the same deterministic map run toward x_T.
    At ab = 1 (x is x_0 itself) x_0 = x and nothing is clipped.

    Args:
        x: x_t, any shape, float32. eps: the network's epsilon at x_t, x's shape.
        alpha_bar, alpha_bar_to: 0-dim tensors in (0, 1]. eta: in [0, 1]; 0 is deterministic.
        noise: z ~ N(0, I) of x's shape, needed when eta > 0.

    Raises:
        ValueError: eta > 0 without ``noise``.
    """
    ab, ab_to = alpha_bar, alpha_bar_to
    x0 = (x - (1 - ab).sqrt() * eps) / ab.sqrt()
    if clip and bool(ab < 1):
        x0 = x0.clamp(-1, 1)
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
    if eta == 0:
        return ab_to.sqrt() * x0 + (1 - ab_to).sqrt() * eps
    if noise is None:
        raise ValueError("ddim_step with eta > 0 needs noise")
    sigma = eta * ((1 - ab_to) / (1 - ab) * (1 - ab / ab_to)).sqrt()
    return ab_to.sqrt() * x0 + (1 - ab_to - sigma**2).sqrt() * eps + sigma * noise


@dataclass
class DDIM(Sampler):
    """DDIM: ``steps`` evenly spaced timesteps of the T-step schedule, stochasticity ``eta``
    (Song et al. 2021, arXiv:2010.02502; eta = 0 is deterministic, eta = 1 matches DDPM's variance).

    Timesteps are ``round(linspace(0, T - 1, steps))``, descending (diffusers' ``timestep_spacing="linspace"``);
    each step is :func:`ddim_step` to the next timestep, the last to alpha_bar = 1. Needs a model with
    ``config.T``, ``alpha_bar`` (T,), ``eps_at(x_t, t)``, ``clip_x0``, ``encode_data`` and ``decode_data``
    (:class:`models.diffusion.GaussianDiffusion`). NFE = the number of distinct timesteps (``steps`` when
    ``steps <= T``), twice that with ``guidance`` > 0 (epsilon guided, Ho & Salimans 2021).

    Raises:
        ValueError: ``steps`` above the model's T (:meth:`check`, a :class:`~models.fields.FieldConflict` naming
            ``steps`` and the model's ``T``).
    """

    kind: ClassVar[str] = "ddim"
    steps: Annotated[int, Range(ge=1, le=10**6)] = 50
    eta: Annotated[float, Range(ge=0, le=1)] = 0.0
    guidance: _Guidance = 0.0

    @property
    def sweep(self) -> str:
        return f"DDIM (η = {self.eta:g})" if not self.guidance else f"DDIM (η = {self.eta:g}, w = {self.guidance:g})"

    def check(self, config: Any) -> None:
        if self.steps > config.T:
            raise FieldConflict({"steps": f"{self.steps} is not allowed (at most the model's T = {config.T})",
                                 "model.T": f"{config.T} is not allowed (at least the steps of sampler "
                                            f"{self.name!r} = {self.steps})"})

    def timesteps(self, T: int) -> np.ndarray:
        """The DDIM sub-sequence: ``steps`` evenly spaced indices in 0..T-1, descending (code index t is the
        paper's t + 1)."""
        return np.unique(np.linspace(0, T - 1, self.steps).round().astype(int))[::-1]

    def nfe(self, model: Any) -> int:
        return _guided(len(self.timesteps(model.config.T)), self.guidance)

    def _eps(self, model: Any, x: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        """epsilon at x_t: unconditional without labels, else guided with this sampler's scale."""
        return model.eps_at(x, t) if y is None else model.eps_at(x, t, y=y, guidance=self.guidance)

    def denoise(self, model: Any, x: Tensor, generator: torch.Generator | None = None,
                y: Tensor | None = None) -> Tensor:
        """From x_T = ``x`` down to x_0 in the diffusion's float space (conditioned on labels ``y`` if given)."""
        n = x.shape[0]
        ts = self.timesteps(model.config.T)
        one = torch.ones((), device=x.device)
        for j, i in enumerate(ts):
            t = torch.full((n,), int(i), device=x.device, dtype=torch.long)
            ab_prev = model.alpha_bar[ts[j + 1]] if j + 1 < len(ts) else one
            noise = (torch.randn(x.shape, device=x.device, generator=generator)
                     if self.eta > 0 and j + 1 < len(ts) else None)
            x = ddim_step(x, self._eps(model, x, t, y), model.alpha_bar[i], ab_prev,
                          eta=self.eta if noise is not None else 0.0, clip=model.clip_x0, noise=noise)
        return x

    def draw(self, model: Any, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        x = torch.randn(n, *model.data_shape, device=model.device, generator=generator)
        return model.decode_data(self.denoise(model, x, generator, y))

    def invert(self, model: Any, x0: Tensor, y: Tensor | None = None) -> Tensor:
        """DDIM inversion, x_0 -> x_T, with eta = 0 (Song et al. 2021, Sec. 4.3; Dhariwal & Nichol 2021,
        arXiv:2105.05233, App. F): the deterministic step run upward through the same timesteps, epsilon
        taken at the current point (the usual approximation; with labels ``y``, guided like :meth:`denoise`).
        ``x0`` in the diffusion's float space; returns x_T of its shape."""
        n = x0.shape[0]
        ts = self.timesteps(model.config.T)[::-1]  # ascending
        one = torch.ones((), device=x0.device)
        x = x0
        for j, i in enumerate(ts):
            cur = int(ts[max(j - 1, 0)])
            eps = self._eps(model, x, torch.full((n,), cur, device=x.device, dtype=torch.long), y)
            x = ddim_step(x, eps, model.alpha_bar[cur] if j > 0 else one, model.alpha_bar[i], clip=model.clip_x0)
        return x


# =========================================================================== Langevin
def langevin(x: Tensor, drift: Callable[[Tensor, int], Tensor], schedule: Sequence[tuple[Any, Any]],
             generator: torch.Generator | None = None,
             clamp: tuple[Tensor | float, Tensor | float] | None = None) -> Tensor:
    """Langevin dynamics: x_{k+1} = clamp(x_k + a_k drift(x_k, k) + b_k xi_k), xi_k ~ N(0, I).

    With drift = grad log p and b_k = sqrt(2 a_k) this is the Langevin discretization with step 2 a_k
    (Welling & Teh 2011; Song & Ermon 2019, Alg. 1 writes it with alpha_i = 2 a_k). Samplers that decouple
    step and noise (Du & Mordatch 2019) pass b_k freely. Both Langevin samplers and the EBM's training
    chains run this loop.

    Args:
        x: the start, any shape, float32.
        drift: ``drift(x, k)``, x's shape: the score, or minus the energy gradient.
        schedule: (a_k, b_k) per step (floats or 0-dim tensors).
        generator: source of xi (``None``: the global generator).
        clamp: (lo, hi): each step's result is clamped to the box, or ``None``.

    Returns:
        x after ``len(schedule)`` steps, x's shape.
    """
    for k, (a, b) in enumerate(schedule):
        g = drift(x, k)
        z = torch.randn(x.shape, device=x.device, generator=generator)
        x = x + a * g + b * z
        if clamp is not None:
            x = x.clamp(*clamp)
    return x


@dataclass
class AnnealedLangevin(Sampler):
    """Annealed Langevin dynamics over a noise ladder sigma_1 > ... > sigma_L (Song & Ermon 2019,
    arXiv:1907.05600, Alg. 1): ``steps_per_sigma`` steps x <- x + alpha_i / 2 s(x, sigma_i) + sqrt(alpha_i) z
    at each level, alpha_i = ``step_eps`` sigma_i^2 / sigma_L^2, from ``model.initial(n, generator)``; with
    ``denoise``, finally x <- x + sigma_L^2 s(x, sigma_L) (Tweedie's formula; Jolicoeur-Martineau et al. 2021,
    arXiv:2009.05475).

    Needs a model with ``sigmas`` (L,), ``score(x, sigma)``, ``initial`` and ``decode_data``
    (:class:`models.score.NoiseConditionalScore`). NFE = L * ``steps_per_sigma`` + ``denoise``, twice that with
    ``guidance`` > 0 (the score guided, Ho & Salimans 2021, Eq. 6).
    """

    kind: ClassVar[str] = "annealed_langevin"
    steps_per_sigma: Annotated[int, Range(ge=1, le=1000)] = 100
    step_eps: Annotated[float, Range(gt=0, le=1)] = 2e-5
    denoise: bool = True
    guidance: _Guidance = 0.0

    def nfe(self, model: Any) -> int:
        return _guided(len(model.sigmas) * self.steps_per_sigma + int(self.denoise), self.guidance)

    def draw(self, model: Any, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        sigmas = model.sigmas
        levels = [i for i in range(len(sigmas)) for _ in range(self.steps_per_sigma)]
        alphas = [self.step_eps * (sigma / sigmas[-1]) ** 2 for sigma in sigmas]
        schedule = [(0.5 * alphas[i], alphas[i].sqrt()) for i in levels]
        kw = {} if y is None else {"y": y, "guidance": self.guidance}
        x = langevin(model.initial(n, generator), lambda x, k: model.score(x, sigmas[levels[k]].expand(n), **kw),
                     schedule, generator)
        if self.denoise:
            x = x + sigmas[-1] ** 2 * model.score(x, sigmas[-1].expand(n), **kw)
        return model.decode_data(x)


@dataclass
class SGLD(Sampler):
    """Stochastic-gradient Langevin dynamics on an energy, from uniform noise on the model's box
    (Welling & Teh 2011; Du & Mordatch 2019, arXiv:1903.08689):
    x <- clamp(x - lambda_k clip(grad E(x)) + sigma_k xi, lo, hi) for ``steps`` steps.

    With ``step_start`` and ``step_end``: exact Langevin steps, lambda_k = eps_k / 2 and sigma_k = sqrt(eps_k),
    eps_k decreasing geometrically from ``step_start`` to ``step_end`` (large steps first to cross between
    modes, small ones last to settle into p(x)). Without them: the family's training-chain schedule
    (``model.chain_schedule(steps)``). Needs :class:`models.energy.ContrastiveDivergenceEBM`. NFE = ``steps``
    (one energy gradient, forward and backward, per step).

    Raises:
        ValueError: only one of ``step_start`` and ``step_end`` given, or ``step_end`` above ``step_start``
            (a :class:`~models.fields.FieldConflict` naming both).
    """

    kind: ClassVar[str] = "sgld"
    steps: Annotated[int, Range(ge=1, le=10**4)] = 500
    step_start: Annotated[float, Range(ge=1e-8, le=100)] | None = None
    step_end: Annotated[float, Range(ge=1e-8, le=100)] | None = None

    def __post_init__(self):
        super().__post_init__()
        if (self.step_start is None) != (self.step_end is None):
            given, missing = ("step_start", "step_end") if self.step_end is None else ("step_end", "step_start")
            both = "give both: a geometric schedule, or neither: the training chains' schedule"
            raise FieldConflict({given: f"{getattr(self, given)!r} is not allowed without {missing} ({both})",
                                 missing: f"null is not allowed while {given} = {getattr(self, given)!r} ({both})"})
        check_order(self, "step_end", "step_start", strict=False)

    def step_sizes(self) -> list[float]:
        """eps_k of the geometric schedule, ``step_start`` to ``step_end`` over ``steps`` steps."""
        k, ratio = max(self.steps - 1, 1), self.step_end / self.step_start
        return [self.step_start * ratio ** (i / k) for i in range(self.steps)]

    def schedule(self, model: Any) -> list[tuple[float, float]]:
        """(lambda_k, sigma_k) of each step."""
        if self.step_start is None:
            return model.chain_schedule(self.steps)
        return [(0.5 * eps, eps**0.5) for eps in self.step_sizes()]

    def nfe(self, model: Any) -> int:
        return self.steps

    def draw(self, model: Any, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        kw = {} if y is None else {"y": y}
        return model.decode_data(model.chains(model.uniform(n, generator), self.schedule(model), generator, **kw))


# =========================================================================== ODE
def odeint(f: Callable[[Tensor, float], Tensor], x: Tensor, ts: Sequence[float], method: str = "heun") -> Tensor:
    """Integrate dx/dt = f(x, t) from ``ts[0]`` to ``ts[-1]`` on the grid ``ts`` (increasing or decreasing).

    ``"euler"``: x <- x + h f(x, t), first order, one evaluation per step. ``"heun"``: the explicit
    trapezoidal rule (Karras et al. 2022, arXiv:2206.00364, Alg. 1 without churn), second order, two
    evaluations per step. NFE = (len(ts) - 1) times 1 or 2. For the probability-flow ODE of a diffusion or
    score model (Song et al. 2021, arXiv:2011.13456, Eq. 13) f is the ODE's drift.

    Raises:
        ValueError: an unknown ``method`` or fewer than two grid points.
    """
    if method not in ("euler", "heun"):
        raise ValueError(f"method must be 'euler' or 'heun', got {method!r}")
    if len(ts) < 2:
        raise ValueError(f"need at least two grid points, got {len(ts)}")
    for t, t_next in zip(ts[:-1], ts[1:]):
        h = t_next - t
        d = f(x, t)
        if method == "euler":
            x = x + h * d
        else:
            x_pred = x + h * d
            x = x + 0.5 * h * (d + f(x_pred, t_next))
    return x


# =========================================================================== latent-variable models
@dataclass
class DecoderMean(Sampler):
    """The decoder mean of a latent-variable model: z ~ p(z), then x = E[x | z], with no draw from p(x|z).

    What VAE papers show as "samples" (Kingma & Welling 2014, arXiv:1312.6114, Fig. 5), and what the
    textbook's "VAE samples are blurrier" refers to; the full draw x ~ p(x|z) is the family's ``native``
    sampler. Needs a model with ``generate_mean(n, generator)`` (:class:`models.vae.GaussianVAE`,
    :class:`models.vae.ConvVAE`). NFE = 1 (one decoder pass). With the same generator seed the latents z equal
    the native sampler's, so the two readings differ only by the observation noise.
    """

    kind: ClassVar[str] = "decoder_mean"

    def nfe(self, model: Any) -> int:
        return 1

    def draw(self, model: Any, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        return model.generate_mean(n, generator) if y is None else model.generate_mean(n, generator, y=y)


# =========================================================================== probability-flow ODE
def divergence(f: Callable[[Tensor], Tensor], y: Tensor, probes: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """f(y) and its divergence sum_i d f_i / d y_i per example, by autograd.

    Exact (``probes=None``): one vector-Jacobian product per dimension, D in all (use it for small D, e.g.
    2D). Hutchinson's estimator (Hutchinson 1990; Grathwohl et al. 2019, FFJORD, arXiv:1810.01367):
    ``probes`` eps of y's shape with E[eps eps^T] = I (Rademacher), div ~ eps^T (df/dy) eps, one product,
    unbiased.

    Args:
        f: maps y (N, ...) to a tensor of y's shape, example by example (no mixing across the batch).
        y: (N, ...) float32. probes: (N, ...) or ``None``.

    Returns:
        (f(y) detached, divergence (N,) float32, detached).
    """
    with torch.enable_grad():
        y = y.detach().requires_grad_(True)
        out = f(y)
        flat = out.flatten(1)
        if probes is not None:
            (g,) = torch.autograd.grad(out, y, probes)
            div = (g * probes).flatten(1).sum(1)
        else:
            cols = []
            for i in range(flat.shape[1]):
                (g,) = torch.autograd.grad(flat[:, i].sum(), y, retain_graph=i + 1 < flat.shape[1])
                cols.append(g.flatten(1)[:, i])
            div = torch.stack(cols, 1).sum(1)
    return out.detach(), div.detach()


@dataclass
class ProbabilityFlow(Sampler):
    """The probability-flow ODE of a diffusion or score model (Song et al. 2021, arXiv:2011.13456, Eq. 13),
    in its variance-exploding form dy/dsigma = -sigma grad_y log p_sigma(y), for sampling and for the exact
    log-likelihood.

    Both families expose the ODE in one parametrization (the model's ``pf_*`` hooks): a noise level sigma in
    [sigma_min, sigma_max], a state y (the score model's x; for DDPM the scaled x / sqrt(alpha_bar), whose
    ODE dy/dsigma = eps(y / sqrt(1 + sigma^2), t(sigma)) is the DDIM ODE of Song et al. 2021,
    arXiv:2010.02502, Eq. 14), and a Gaussian prior at sigma_max. The grid is ``steps`` intervals of Karras et
    al.'s discretization sigma_i = (sigma_min^(1/rho) + i/steps (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho
    (arXiv:2206.00364, Eq. 5); :func:`odeint` integrates it in log sigma (``method``: Euler or Heun). With the
    exact score of the ``8gaussians`` mixture and 50 Heun steps the density integrates to 1.0068 at rho = 3
    (1.0083 at EDM's rho = 7, 1.014 uniform in log sigma); the error falls as steps^-2.

    * sampling (:meth:`draw`): y ~ prior at sigma_max, integrated down to sigma_min, mapped to data.
      NFE = ``steps`` (Euler) or 2 ``steps`` (Heun).
    * likelihood (:meth:`log_prob`): log p(y_0) = log prior(y(sigma_max)) + int div F dsigma from sigma_min up
      to sigma_max (instantaneous change of variables, Chen et al. 2018, arXiv:1806.07366), the divergence by
      the exact trace (``trace="exact"``: D vector-Jacobian products per evaluation) or Hutchinson's estimator
      (``"hutchinson"``: one, Rademacher probes fixed along each trajectory); ``"auto"``: exact up to
      :data:`EXACT_TRACE_MAX_DIM` dimensions. Same NFE, each evaluation with its backward pass(es). The density
      is that of the ODE's push-forward of the prior: normalized up to the solver's error, whatever the network.

    Needs a model with ``pf_sigma_range()``, ``pf_drift(y, sigma)``, ``pf_prior_sample(n, generator)``,
    ``pf_prior_log_prob(y)``, ``pf_from_data(x, generator)`` and ``pf_to_data(y)``
    (:class:`models.diffusion.GaussianDiffusion`, :class:`models.score.NoiseConditionalScore`).
    """

    kind: ClassVar[str] = "pf_ode"
    steps: Annotated[int, Range(ge=1, le=10**5)] = 50
    method: Literal["euler", "heun"] = "heun"
    trace: Literal["auto", "exact", "hutchinson"] = "auto"
    rho: Annotated[float, Range(ge=1, le=100)] = 3.0
    guidance: _Guidance = 0.0

    EXACT_TRACE_MAX_DIM: ClassVar[int] = 16

    @property
    def sweep(self) -> str:
        return f"probability-flow ODE ({self.method})"

    def sigmas(self, model: Any) -> list[float]:
        """The grid: ``steps`` + 1 noise levels from sigma_min to sigma_max (ascending), Karras et al.'s with
        ``rho``."""
        lo, hi = model.pf_sigma_range()
        i = np.arange(self.steps + 1) / self.steps
        grid = (lo ** (1 / self.rho) + i * (hi ** (1 / self.rho) - lo ** (1 / self.rho))) ** self.rho
        grid[0], grid[-1] = lo, hi
        return [float(v) for v in grid]

    def nfe(self, model: Any) -> int:
        return _guided(self.steps * (2 if self.method == "heun" else 1), self.guidance)

    def trace_kind(self, model: Any) -> str:
        """``"exact"`` or ``"hutchinson"``: the divergence estimator :meth:`log_prob` uses on ``model``."""
        if self.trace != "auto":
            return self.trace
        return "exact" if int(np.prod(model.data_shape)) <= self.EXACT_TRACE_MAX_DIM else "hutchinson"

    def integrate(self, model: Any, y: Tensor, sigmas: Sequence[float], labels: Tensor | None = None) -> Tensor:
        """y carried along the ODE over the noise levels ``sigmas`` (either direction), in log sigma; a
        class-conditional model's ODE given ``labels`` (int64 (N,)), its score classifier-free guided at
        ``guidance`` (the guided ODE samples; it has no likelihood of its own)."""
        ts = [float(np.log(s)) for s in sigmas]

        def drift(v: Tensor, t: float) -> Tensor:
            sigma = float(np.exp(t))
            if labels is None:
                return sigma * model.pf_drift(v, sigma)
            return sigma * model.pf_drift(v, sigma, labels, self.guidance)

        return odeint(drift, y, ts, self.method)

    def draw(self, model: Any, n: int, generator: torch.Generator | None = None, y: Tensor | None = None) -> Tensor:
        state = model.pf_prior_sample(n, generator)
        return model.pf_to_data(self.integrate(model, state, self.sigmas(model)[::-1], labels=y))

    def log_prob(self, model: Any, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Exact log-density of data ``x`` (N, *data_shape) under the ODE's model, in nats, (N,).

        Vectors: the density of x itself. Images (uint8): of the uniformly dequantized pixels x + u over
        unit-width bins (u from ``generator``), which bounds the discrete log P(x) from below (Theis et al.
        2016, arXiv:1511.01844), as for the flows.
        """
        y, log_det = model.pf_from_data(x, generator)
        n = y.shape[0]
        probes = None
        if self.trace_kind(model) == "hutchinson":
            probes = torch.randint(0, 2, y.shape, device=y.device, generator=generator).float() * 2 - 1
        shape = y.shape

        def f(z: Tensor, t: float) -> Tensor:  # the state z = [y, a], da/dlog(sigma) = div of the drift
            sigma = float(np.exp(t))
            out, div = divergence(lambda v: sigma * model.pf_drift(v, sigma), z[:, :-1].reshape(shape), probes)
            return torch.cat([out.flatten(1), div[:, None]], 1)

        z0 = torch.cat([y.flatten(1), torch.zeros(n, 1, device=y.device)], 1)
        ts = [float(np.log(s)) for s in self.sigmas(model)]
        z1 = odeint(f, z0, ts, self.method)
        return model.pf_prior_log_prob(z1[:, :-1].reshape(shape)) + z1[:, -1] + log_det


# =========================================================================== settings -> samplers
KINDS: dict[str, type[Sampler]] = {c.kind: c for c in (Native, Ancestral, DDIM, AnnealedLangevin, SGLD, DecoderMean,
                                                        ProbabilityFlow)}


def _scalar_fields(cls: type[Sampler]) -> set[str]:
    """Settings of ``cls`` whose type is a single number, bool or string (a list given for one is a sweep)."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = set()
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        while typing.get_origin(tp) is Annotated:
            tp = typing.get_args(tp)[0]
        args = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
        if f.name != "name" and all(a in (int, float, bool, str) or typing.get_origin(a) is Annotated
                                    for a in args):
            out.add(f.name)
    return out


def expand_entries(entries: Mapping[str, Mapping[str, Any] | None]) -> dict[str, dict[str, Any]]:
    """Sampler entries ``{name: {kind?, setting: value}}`` with list-valued settings expanded into a sweep.

    ``{"ddim": {"steps": [10, 50]}}`` gives ``{"ddim10": {"kind": "ddim", "steps": 10}, "ddim50": {...}}``:
    one sampler per value, named ``<name><value>`` (a guidance sweep ``<name>_w<value>``: ``ddim_w0.5``);
    ``kind`` defaults to the entry's name. A ``None`` entry is
    dropped (a suite removes a family's default sampler that way). At most one setting may be a list.

    Raises:
        ValueError: an unknown kind, a non-mapping entry, or two list-valued settings in one entry.
    """
    out: dict[str, dict[str, Any]] = {}
    for name, entry in entries.items():
        if entry is None:
            continue
        if not isinstance(entry, Mapping):
            raise ValueError(f"{name}: expected a mapping of sampler settings, got {entry!r}")
        entry = dict(entry)
        kind = entry.pop("kind", name)
        if kind not in KINDS:
            raise ValueError(f"{name}: unknown sampler kind {kind!r} (known: {', '.join(KINDS)}); name the kind "
                             "with 'kind:'")
        swept = [k for k, v in entry.items() if isinstance(v, (list, tuple)) and k in _scalar_fields(KINDS[kind])]
        if len(swept) > 1:
            raise ValueError(f"{name}: sweeps over one setting at a time, got lists for {', '.join(swept)}")
        if not swept:
            out[str(name)] = {"kind": kind, **entry}
            continue
        infix = "_w" if swept[0] == "guidance" else ""
        for v in entry[swept[0]]:
            out[f"{name}{infix}{v:g}" if isinstance(v, float) else f"{name}{infix}{v}"] = {"kind": kind, **entry,
                                                                                           swept[0]: v}
    return out


def build_samplers(entries: Mapping[str, Mapping[str, Any] | None]) -> dict[str, Sampler]:
    """Sampler objects from entries (:func:`expand_entries`), by name, in order.

    Raises:
        ValueError: as :func:`expand_entries`; an unknown setting or a value outside its range.
        TypeError: a setting of the wrong type.
    """
    out = {}
    for name, entry in expand_entries(entries).items():
        entry = dict(entry)
        cls = KINDS[entry.pop("kind")]
        unknown = set(entry) - {f.name for f in dataclasses.fields(cls)} | ({"name"} & set(entry))
        if unknown:
            raise ValueError(f"{name}: unknown setting(s) {', '.join(sorted(unknown))} of sampler kind "
                             f"{cls.kind!r}")
        sampler = cls(**entry)
        sampler.name = name
        out[name] = sampler
    return out
