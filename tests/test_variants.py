from __future__ import annotations

import pytest

from musicgen_ft.errors import InputError
from musicgen_ft.variants import VARIANTS, get_variant


def test_registry_has_every_trainable_variant() -> None:
    assert set(VARIANTS) == {
        "small",
        "medium",
        "melody",
        "stereo-small",
        "stereo-medium",
        "stereo-melody",
        "debug",
        "debug-stereo",
    }


@pytest.mark.parametrize("name", ["large", "facebook/musicgen-large", "LARGE"])
def test_large_is_refused_with_a_reason(name: str) -> None:
    with pytest.raises(InputError) as err:
        get_variant(name)
    assert err.value.field == "model_version"
    assert "not trainable" in str(err.value)


def test_unknown_variant_lists_the_choices() -> None:
    with pytest.raises(InputError) as err:
        get_variant("tiny")
    assert "stereo-melody" in str(err.value) and "'tiny'" in str(err.value)


def test_hub_ids_are_accepted_as_aliases() -> None:
    assert get_variant("facebook/musicgen-stereo-small").name == "stereo-small"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_specs_are_consistent(name: str) -> None:
    v = VARIANTS[name]
    assert v.n_q == 4 * v.channels
    assert v.continuation is not v.melody
    assert (v.max_duration is not None) is v.melody
