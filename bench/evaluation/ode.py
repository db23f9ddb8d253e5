"""The exact likelihood of diffusion and score models by their probability-flow ODE, and what it costs.

Song et al. 2021 (arXiv:2011.13456, Sec. 4.3, App. D.2) turn a score model into a continuous normalizing
flow: integrating the probability-flow ODE from the data up to the prior, with the divergence of its drift
along the way, gives log p(x) exactly, up to the solver's error, at a cost of NFE network evaluations, each
with a backward pass (D of them for the exact trace, one for Hutchinson's estimator). The integrator is
:class:`models.samplers.ProbabilityFlow` (Euler or Heun on :func:`models.samplers.odeint`); the cell's first
sampler of kind ``pf_ode`` sets its steps, method and trace estimator.

:func:`ode_likelihood` (a model stage: it needs the network) returns the :class:`~bench.store.schema.DensityResult`
fields ``ode_*``: the mean test NLL in nats and its standard error on the first ``eval.bound_n`` test points
(the budget of every per-point iterative density), the NFE, the trace estimator, the wall time per example,
and, in 2D, the measured normalization: the log of the integral of the ODE density over the same box as the
exact densities' check, by the midpoint rule on a grid of ``eval.quadrature_grid // 4`` points per axis (its
error |log Z(n) - log Z(n/2)|). On images the density is of uniformly dequantized pixels, so its bits/dim
(``ode_test_bpd``, added by the image evaluation) bound the discrete ones from above.

The solver's own error is measured too: the first batch of test points (``eval.density_batch`` of them, the
same dequantization noise and Hutchinson probes) is solved again at half the steps, and the mean paired change
of the NLL from ``steps // 2`` to ``steps`` is recorded with its standard error (``ode_step_change_nats``).
For a method of order p (Euler 1, Heun 2) the error left at ``steps`` is about that change / (r^p - 1), r the
ratio of the step counts (2 for an even count)
(Richardson; :func:`bench.analysis.sample_verdicts.ode_solver_error`), and
:func:`bench.analysis.sample_verdicts.ode_unsettled` calls the likelihood unsettled when that error exceeds its
standard error over the test points.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from bench.config.suite import EvalConfig
from bench.core.timing import Stopwatch
from bench.evaluation.quadrature import log_partition
from models.samplers import ProbabilityFlow, Sampler


def quadrature_side(ev: EvalConfig) -> int:
    """Points per axis of the 2D ODE density's quadrature grid: ``quadrature_grid // 4``, even, at least 8."""
    return max(8, ev.quadrature_grid // 4 // 2 * 2)


def ode_sampler(samplers: dict[str, Sampler] | None) -> tuple[str, ProbabilityFlow] | None:
    """The first ``pf_ode`` sampler among a cell's samplers, with its name, or ``None``."""
    return next(((name, s) for name, s in (samplers or {}).items() if isinstance(s, ProbabilityFlow)), None)


@torch.no_grad()
def ode_likelihood(model: Any, ds: Any, ev: EvalConfig, device: torch.device, samplers: dict[str, Sampler] | None,
                   closed_form: bool) -> dict[str, Any]:
    """The probability-flow ODE likelihood of ``model`` on ``ds``'s test set, if the cell has a ``pf_ode`` sampler.

    Args:
        model: a trained diffusion or score model (the ``pf_*`` hooks of :class:`models.samplers.ProbabilityFlow`).
        ds: the dataset (its ``test`` split).
        ev: evaluation settings (``bound_n``, ``density_batch``, ``seed``, ``quadrature_grid``).
        device: where the model runs.
        samplers: the cell's samplers (:func:`ode_sampler` picks the ODE).
        closed_form: 2D data (:attr:`bench.evaluation.modality.Modality.closed_form_density`): also integrate
            the ODE density over a box.

    Returns:
        The ``ode_*`` fields of :class:`~bench.store.schema.DensityResult`, by name; ``{}`` without a ``pf_ode``
        sampler, and for a class-conditional model (its ODE is per label; the marginal is not integrated).
    """
    found = ode_sampler(samplers)
    if found is None or model.conditional:  # a conditional model's ODE is per label: its marginal is not integrated
        return {}
    name, sampler = found
    sampler = model.resolve_sampler(sampler)
    gen = torch.Generator(device).manual_seed(ev.seed)
    xs = ds.test[: ev.bound_n].to(device)
    with Stopwatch(device) as clock:
        lp = torch.cat([sampler.log_prob(model, c, generator=gen) for c in xs.split(ev.density_batch)]).double().cpu()
    out: dict[str, Any] = {
        "ode_sampler": name, "ode_test_n": len(lp), "ode_test_nll_nats": float(-lp.mean()),
        "ode_test_nll_se_nats": float(lp.std() / len(lp) ** 0.5) if len(lp) > 1 else None,
        "ode_nfe": sampler.nfe(model), "ode_trace": sampler.trace_kind(model), "ode_steps": sampler.steps,
        "ode_method": sampler.method, "ode_seconds": clock.seconds, "ode_ms_per_example": 1e3 * clock.seconds / len(lp),
    }
    out.update(step_check(model, sampler, xs[: ev.density_batch], lp[: ev.density_batch], ev.seed, device))
    if closed_form:
        L = float(ds.test.abs().max()) * 1.5 + 1.0
        n = quadrature_side(ev)
        q = log_partition(lambda p: -sampler.log_prob(model, p), -L, L, n, device=device, chunk=ev.density_batch * 8)
        out.update(ode_log_integral_nats=q.log_z, ode_log_integral_error_nats=q.error, ode_integral_grid=q.n)
    return out


@torch.no_grad()
def step_check(model: Any, sampler: ProbabilityFlow, xs: torch.Tensor, lp: torch.Tensor, seed: int,
               device: torch.device) -> dict[str, Any]:
    """The ODE likelihood of the points ``xs`` solved again at half of ``sampler``'s steps, paired with ``lp``.

    Args:
        model: the model whose ODE gave ``lp``.
        sampler: that ODE (its ``steps``, ``method``).
        xs: the test points (M, *data_shape) of the first batch of the full solve.
        lp: their log-densities at ``sampler.steps`` (M,), nats, computed from a generator seeded with ``seed``
            as the first call on it, so that the half-step solve draws the same dequantization noise and probes.
        seed: that generator's seed.
        device: where the model runs.

    Returns:
        ``ode_check_steps`` (steps // 2), ``ode_check_n`` (M), ``ode_step_change_nats`` (mean of NLL(steps) -
        NLL(steps // 2) per point, nats), ``ode_step_change_se_nats`` (its paired standard error; ``None`` for
        M = 1), ``ode_check_seconds``; ``{}`` when ``sampler.steps`` < 2 or there are no points.
    """
    if sampler.steps < 2 or len(xs) == 0:
        return {}
    half = dataclasses.replace(sampler, steps=sampler.steps // 2)
    gen = torch.Generator(device).manual_seed(seed)
    with Stopwatch(device) as clock:
        lp_half = half.log_prob(model, xs, generator=gen).double().cpu()
    diff = lp_half - lp.double()  # NLL(steps) - NLL(steps // 2) = log p(steps // 2) - log p(steps)
    return {
        "ode_check_steps": half.steps, "ode_check_n": len(diff), "ode_step_change_nats": float(diff.mean()),
        "ode_step_change_se_nats": float(diff.std() / len(diff) ** 0.5) if len(diff) > 1 else None,
        "ode_check_seconds": clock.seconds,
    }
