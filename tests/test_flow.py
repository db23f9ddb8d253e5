"""The flow inverts, its log-determinant is the Jacobian's, and its density integrates to 1."""

from __future__ import annotations

import math

import torch

from bench.evaluation.quadrature import log_partition
from tests.helpers import example_batch, tiny_model


def _trained_flow():
    m = tiny_model("flow", "vector")
    x = example_batch("vector", 256)
    opt = torch.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(20):  # away from the near-identity initialisation
        opt.zero_grad()
        m.loss(x).backward()
        opt.step()
    return m.eval(), x


def test_flow_inverts():
    m, x = _trained_flow()
    with torch.no_grad():
        t = m.transform()
        z = t(x)
        assert (z - x).abs().max() > 1e-2  # not the identity
        torch.testing.assert_close(t.inv(z), x, atol=1e-4, rtol=0)


def test_log_det_matches_the_autograd_jacobian():
    m, x = _trained_flow()
    t = m.transform()
    for xi in x[:5]:
        _, ladj = t.call_and_ladj(xi[None])
        jac = torch.autograd.functional.jacobian(lambda v: t(v[None])[0], xi)
        assert math.isclose(float(ladj.detach()), float(torch.linalg.slogdet(jac).logabsdet), abs_tol=1e-4)


def test_flow_density_integrates_to_one():
    m, _ = _trained_flow()
    with torch.no_grad():
        q = log_partition(lambda p: -m.log_prob(p), -12.0, 12.0, n=512)
    assert abs(q.log_z) < 2e-3 + q.error


def test_sampling_is_the_inverse_of_the_density_transform():
    m, _ = _trained_flow()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        x = m.sample(100, generator=g)
        z = torch.randn(100, 2, generator=torch.Generator().manual_seed(0))
        torch.testing.assert_close(m.transform()(x), z, atol=1e-4, rtol=0)
