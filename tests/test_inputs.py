from __future__ import annotations

import inspect

import pytest

from musicgen_ft.errors import InputError
from musicgen_ft.inputs import TrainInputs, input_fields


def test_defaults_match_the_hosted_fine_tuner() -> None:
    inputs = TrainInputs(dataset_path="x.zip")
    assert (inputs.model_version, inputs.epochs, inputs.updates_per_epoch) == (
        "stereo-melody",
        3,
        100,
    )
    assert (inputs.batch_size, inputs.optimizer, inputs.lr, inputs.lr_scheduler) == (
        16,
        "dadam",
        1.0,
        "cosine",
    )
    assert (inputs.warmup, inputs.cfg_p, inputs.drop_vocals, inputs.auto_labeling) == (
        8,
        0.3,
        True,
        True,
    )
    assert inputs.one_same_description is None


def test_cog_train_signature_matches_the_inputs_table() -> None:
    import train

    params = inspect.signature(train.train).parameters
    assert list(params) == [f.name for f in input_fields()]
    for f in input_fields():
        if f.name == "dataset_path":
            continue
        assert params[f.name].default.default == f.default, f.name


def test_from_dict_coerces_json_and_cli_values() -> None:
    inputs = TrainInputs.from_dict(
        {
            "dataset_path": "a.zip",
            "epochs": "5",
            "lr": "1e-4",
            "drop_vocals": "false",
            "optimizer": "adamw",
            "batch_size": 8.0,
        }
    )
    assert inputs.epochs == 5 and inputs.lr == 1e-4 and inputs.drop_vocals is False
    assert inputs.batch_size == 8


@pytest.mark.parametrize(
    ("data", "field", "fragment"),
    [
        ({"dataset_path": "a", "epochs": "three"}, "epochs", "not an integer"),
        ({"dataset_path": "a", "epochs": 1.5}, "epochs", "not an integer"),
        ({"dataset_path": "a", "epochs": 0}, "epochs", ">= 1"),
        ({"dataset_path": "a", "drop_vocals": "maybe"}, "drop_vocals", "boolean"),
        ({"dataset_path": "a", "optimizer": "sgd"}, "optimizer", "dadam, adamw"),
        ({"dataset_path": "a", "lr": "nan"}, "lr", "finite"),
        ({"dataset_path": "a", "lr": 0}, "lr", "> 0"),
        ({"dataset_path": "a", "cfg_p": 1.5}, "cfg_p", "<= 1"),
        ({"dataset_path": "a", "model_version": "large"}, "model_version", "not trainable"),
        ({"dataset_path": "a", "learning_rate": 1}, "learning_rate", "unknown input"),
        ({"epochs": 1}, "dataset_path", "required"),
        ({"dataset_path": "  "}, "dataset_path", "required"),
    ],
)
def test_bad_inputs_name_the_field(data: dict, field: str, fragment: str) -> None:
    with pytest.raises(InputError) as err:
        TrainInputs.from_dict(data)
    assert err.value.field == field
    assert fragment in str(err.value)
