"""TrainConfig.from_dict reads a checkpoint's config back strictly: unknown keys, missing fields and
wrong types are errors naming the file, the key and the closest valid key."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hvla_platform.lib.training.train import TrainConfig, TrainConfigDocument, TrainConfigError

CFG = TrainConfig(exp_name="e", release="r", cameras=("head",), image_size=(32, 40), steps=7)


def refused(d: dict) -> str:
    with pytest.raises(TrainConfigError) as err:
        TrainConfig.from_dict(d, source="ckpt/config.json")
    return str(err.value)


def test_the_contract_has_exactly_the_dataclass_fields_and_defaults():
    assert list(TrainConfigDocument.model_fields) == [f.name for f in dataclasses.fields(TrainConfig)]
    default = TrainConfig(exp_name="e", release="r")
    assert TrainConfig.from_dict({"exp_name": "e", "release": "r"}) == default
    assert dataclasses.asdict(TrainConfig.from_dict(default.to_dict())) == dataclasses.asdict(default)


def test_to_dict_round_trips_through_json_unchanged():
    back = TrainConfig.from_dict(json.loads(json.dumps(CFG.to_dict())))
    assert back == CFG and back.to_dict() == CFG.to_dict()
    assert back.image_size == (32, 40) and back.cameras == ("head",)  # tuples again, as the dataclass holds


def test_a_checkpoint_config_json_reads_back_and_a_misspelled_key_is_refused(step_dir, tmp_path):
    stored = json.loads((step_dir / "config.json").read_text())["train_config"]
    cfg = TrainConfig.from_dict(stored, source=str(step_dir / "config.json"))
    assert (cfg.config_name, cfg.exp_name, cfg.release, cfg.steps) == ("hvla_serve_test", "serve", "tiny-v1", 5)
    edited = dict(stored)
    edited["learning_rte"] = edited.pop("learning_rate")
    with pytest.raises(TrainConfigError) as err:
        TrainConfig.from_dict(edited, source=str(step_dir / "config.json"))
    assert str(err.value) == f"{step_dir / 'config.json'}: unknown key 'learning_rte' (did you mean 'learning_rate'?)"


@pytest.mark.parametrize("edit,expected", [
    (lambda d: d.update(btach_size=8), "unknown key 'btach_size' (did you mean 'batch_size'?)"),
    (lambda d: d.pop("release"), "missing required field 'release'"),
    (lambda d: d.update(steps="300"), "steps: expected an integer, got '300'"),
    (lambda d: d.update(learning_rate="fast"), "learning_rate: expected a number, got 'fast'"),
    (lambda d: d.update(residual_to_state="yes"), "residual_to_state: expected true or false, got 'yes'"),
    (lambda d: d.update(image_size=[48]), "image_size: missing item [1]"),
])
def test_bad_configs_name_the_key(edit, expected):
    d = CFG.to_dict()
    edit(d)
    text = refused(d)
    assert text.startswith("ckpt/config.json: ") and expected in text, text
