from __future__ import annotations

import inspect
from typing import Any

import pytest

from musicgen_ft.errors import InputError
from musicgen_ft.inputs import TrainInputs


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
    assert list(params) == list(TrainInputs.model_fields)
    for name, info in TrainInputs.model_fields.items():
        if name == "dataset_path":
            continue
        assert params[name].default.default == info.default, name


def _cog_inputs(module: str, name: str) -> dict[str, Any]:
    """The inputs as Cog itself reads them from an entry point (its own inspector)."""
    from cog._inspector import create_predictor

    return dict(create_predictor(module, name).inputs)


def test_published_training_schema_agrees_with_cogs_schema_of_train() -> None:
    """The server's OpenAPI TrainingInput and Cog's view of train(), field by field."""
    from serving.trainer import OPERATOR_ONLY, training_input_schema

    published = training_input_schema()["properties"]
    cog = {k: v for k, v in _cog_inputs("train", "train").items() if k not in OPERATOR_ONLY}
    assert list(published) == list(cog)
    for name, prop in published.items():
        field = cog[name]
        cog_type = field.type.json_type()
        assert prop["type"] == cog_type["type"], name
        assert prop.get("format") == cog_type.get("format"), name
        assert prop["description"] == field.description, name
        assert prop.get("default") == field.default, name
        assert prop.get("enum") == field.choices, name
        assert prop.get("minimum") == field.ge, name
        assert prop.get("maximum") == field.le, name
        assert prop.get("maxLength") == field.max_length, name
        assert prop["x-order"] == field.order, name
    assert published["batch_size"]["maximum"] == 4096  # the bounds that used to drift
    assert published["updates_per_epoch"]["maximum"] == 1_000_000
    assert published["seed"]["maximum"] == 2**32 - 1


def test_cog_predict_signature_is_the_generation_table() -> None:
    from inference.params import GenerateParams

    cog = _cog_inputs("predict", "Predictor")
    assert list(cog) == [*GenerateParams.model_fields, "replicate_weights"]
    for name, info in GenerateParams.model_fields.items():
        assert cog[name].default == (None if info.default is None else info.default), name
        assert cog[name].description == info.description, name
    assert cog["output_format"].choices == ["wav", "mp3"]
    assert cog["top_p"].le == 1.0 and cog["duration"].ge == 0.1


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
        ({"dataset_path": "a", "lr": 0}, "lr", ">= 1e-09"),
        ({"dataset_path": "a", "seed": 2**32}, "seed", "<= 4294967295"),
        ({"dataset_path": "a", "one_same_description": "x" * 2001}, "one_same_description", "2000"),
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
