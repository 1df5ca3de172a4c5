"""The shared strict-contract machinery: one readable line per bad document, as the caller's error."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import pytest
from pydantic import Field

from hvla_platform.lib.core.contracts import ContractError, StrictModel, validate_document


class Part(StrictModel):
    capture_day: str
    robot_id: str


class Inner(StrictModel):
    fraction: Annotated[float, Field(strict=True, ge=0.0, lt=1.0)] = 0.25
    seed: int = 0


class Doc(StrictModel):
    name: str
    min_quality: Annotated[float, Field(strict=True)] = 0.6
    partitions: list[Part] = Field(default_factory=list)
    heldout: Inner | None = None
    day: dt.date | None = None


class SpecError(ValueError):
    pass


def msg(data, source="releases/x.yaml", error_cls=SpecError) -> str:
    with pytest.raises(error_cls) as err:
        validate_document(Doc, data, source=source, error_cls=error_cls)
    return str(err.value)


def test_a_valid_document_is_returned_as_the_model():
    doc = validate_document(Doc, {"name": "a", "partitions": [{"capture_day": "2026-11-10", "robot_id": "g1"}]},
                            source="x.yaml")
    assert isinstance(doc, Doc) and doc.partitions[0].robot_id == "g1" and doc.min_quality == 0.6


def test_an_unknown_key_names_the_file_the_key_and_the_closest_valid_key():
    assert msg({"name": "a", "min_qualty": 0.99}) == \
        "releases/x.yaml: unknown key 'min_qualty' (did you mean 'min_quality'?)"


def test_an_unknown_key_with_nothing_close_lists_the_valid_keys():
    assert msg({"name": "a", "zzz": 1}) == \
        "releases/x.yaml: unknown key 'zzz' (valid keys: day, heldout, min_quality, name, partitions)"


def test_nested_locations_are_shown_with_their_path():
    assert msg({"name": "a", "partitions": [{"capture_day": "2026-11-10"}]}) == \
        "releases/x.yaml: partitions[0]: missing required field 'robot_id'"
    assert msg({"name": "a", "heldout": {"fraction": 0.2, "sed": 1}}) == \
        "releases/x.yaml: heldout: unknown key 'sed' (did you mean 'seed'?)"
    assert msg({"name": "a", "heldout": {"fraction": 1.5}}) == \
        "releases/x.yaml: heldout.fraction: expected a value < 1.0, got 1.5"


def test_a_missing_field_and_a_wrong_type_name_the_field_and_what_was_expected():
    assert msg({}) == "releases/x.yaml: missing required field 'name'"
    assert msg({"name": "a", "min_quality": "high"}) == \
        "releases/x.yaml: min_quality: expected a number, got 'high'"
    assert msg({"name": "a", "day": "soon"}).startswith(
        "releases/x.yaml: day: expected an ISO date (YYYY-MM-DD), got 'soon'")


def test_several_problems_are_one_line_joined_and_pydantic_noise_stays_out():
    text = msg({"min_qualty": 1, "partitions": [{"robot": "g1"}]})
    assert "\n" not in text
    assert text == ("releases/x.yaml: missing required field 'name'; partitions[0]: missing required field "
                    "'capture_day'; partitions[0]: missing required field 'robot_id'; partitions[0]: unknown key "
                    "'robot' (did you mean 'robot_id'?); unknown key 'min_qualty' (did you mean 'min_quality'?)")
    for noise in ("pydantic", "validation error", "Input should", "errors.pydantic.dev", "type="):
        assert noise not in text


def test_the_error_is_the_callers_type_with_no_pydantic_traceback_chained():
    with pytest.raises(SpecError) as err:
        validate_document(Doc, {"name": 3}, source="s.yaml", error_cls=SpecError)
    assert str(err.value) == "s.yaml: name: expected a string, got 3"
    assert err.value.__cause__ is None and err.value.__context__ is None
    with pytest.raises(ContractError):  # the default
        validate_document(Doc, {}, source="s.yaml")


@pytest.mark.parametrize("data,shown", [(None, "nothing"), ([1, 2], "a list"), ("text", "a str")])
def test_a_document_that_is_not_a_mapping_is_refused(data, shown):
    assert msg(data) == f"releases/x.yaml: must be a mapping of keys to values, it holds {shown}"
