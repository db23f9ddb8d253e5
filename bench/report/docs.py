"""README text generated from the protocol constants, so prose and code cannot drift apart.

    python -m bench.report.docs        # print the generated README table rows

The rows name the defaults of :class:`bench.config.suite.EvalConfig` (KID subsets and
subset size, the k of precision/recall and of density/coverage); a test checks
that the README carries them verbatim.
"""

from __future__ import annotations

from bench.config.suite import EvalConfig


def readme_rows(ev: EvalConfig | None = None) -> list[str]:
    """The README's metric-table rows that state protocol constants, from ``ev`` (default: the defaults)."""
    ev = ev or EvalConfig()
    return [
        f"| `precision`, `recall` | k-NN manifolds with k = {ev.pr_k} (Kynkäänniemi et al. 2019), on coordinates. |",
        f"| `kid_<split>_mean/_std` | unbiased MMD² with the cubic polynomial kernel, {ev.kid_subsets} subsets of "
        f"{ev.kid_subset_size} (half the smaller set below {2 * ev.kid_subset_size} rows), seeded. |",
        f"| `precision`, `recall` | k-NN manifolds, k = {ev.pr_k} (Kynkäänniemi et al. 2019), on the same Inception "
        "features, against the first N reference images. |",
        f"| `density`, `coverage` | Naeem et al. 2020, k = {ev.dc_k}, same features. |",
    ]


if __name__ == "__main__":
    print("\n".join(readme_rows()))
