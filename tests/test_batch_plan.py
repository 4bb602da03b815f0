from __future__ import annotations

import pytest

from musicgen_ft.errors import InputError
from musicgen_ft.variants import get_variant
from training.overrides import plan_batch_size


def test_divisible_batch_is_kept() -> None:
    assert plan_batch_size(16, 8, get_variant("small")) == (16, [])


def test_indivisible_batch_is_rounded_down_with_a_note() -> None:
    batch, notes = plan_batch_size(20, 8, get_variant("small"))
    assert batch == 16
    assert notes and "does not divide by the 8" in notes[0] and "using 16" in notes[0]


def test_batch_smaller_than_world_is_refused_never_zero() -> None:
    with pytest.raises(InputError) as err:
        plan_batch_size(4, 8, get_variant("small"))
    assert "smaller than the 8 GPUs" in str(err.value) and "use 8" in str(err.value)


def test_cpu_world_accepts_any_batch() -> None:
    assert plan_batch_size(3, 1, get_variant("debug")) == (3, [])


def test_medium_is_capped_per_gpu_with_a_note() -> None:
    batch, notes = plan_batch_size(16, 8, get_variant("medium"))
    assert batch == 8
    assert "using 8" in notes[0]
