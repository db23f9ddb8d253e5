"""Registry: names, unknown names with suggestions, duplicates."""

from __future__ import annotations

import pytest

import models
from models.base import GenerativeModel

SEVEN = ["autoregressive", "diffusion", "energy", "flow", "gan", "score", "vae"]


@pytest.mark.parametrize("modality", ["vector", "image"])
def test_the_seven_seed_families_are_registered_for_both_modalities(modality):
    assert set(SEVEN) <= set(models.names(modality))  # more may be added; these must be there


def test_unknown_name_lists_registered_and_suggests_closest():
    with pytest.raises(models.RegistryError) as e:
        models.get("difusion", "vector")
    msg = str(e.value)
    assert "unknown family 'difusion'" in msg
    assert "did you mean 'diffusion'?" in msg
    for name in SEVEN:
        assert name in msg


def test_duplicate_registration_is_an_error():
    with pytest.raises(models.RegistryError, match="duplicate family 'flow'"):
        @models.register("flow", modality="vector")
        class Again(GenerativeModel):
            pass


def test_unknown_modality_is_an_error():
    with pytest.raises(models.RegistryError, match="unknown modality"):
        models.register("x", modality="audio")


@pytest.mark.parametrize("name,kind", [("autoregressive", "exact"), ("flow", "exact"), ("vae", "bound"),
                                       ("diffusion", "bound"), ("energy", "unnormalized"), ("gan", "none"),
                                       ("score", "none")])
def test_declared_likelihood_kinds_match_the_taxonomy(name, kind):
    assert models.get(name, "vector").capabilities.likelihood == kind
