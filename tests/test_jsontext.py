"""jsontext: JSON that strict parsers read, and records written from their fields."""

import json
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np

from caffe_nantools.errors import NonFiniteError
from caffe_nantools.finite import finite_stats
from caffe_nantools.jsontext import dumps, fields_dict


@dataclass
class Point:
    x: float
    y: float


@dataclass
class Shape:
    name: str
    corners: List[Point]
    by_tag: Dict[str, Point] = field(default_factory=dict)
    center: Optional[Point] = None
    spans: Tuple[int, ...] = ()
    hidden: int = 0

    @property
    def size(self) -> int:
        return len(self.corners)


def test_non_finite_numbers_are_written_as_strings_that_strict_parsers_read():
    text = dumps({"a": float("nan"), "b": [float("inf"), -float("inf"), 2.5]})
    assert json.loads(text) == {"a": "nan", "b": ["inf", "-inf", 2.5]}


def test_a_dataclass_is_written_field_by_field_with_nested_records_in_lists_and_dicts():
    shape = Shape("tri", [Point(0, 1), Point(2, 3)], {"top": Point(4, 5)}, Point(6, 7), (8, 9))
    assert fields_dict(shape) == {
        "name": "tri",
        "corners": [{"x": 0, "y": 1}, {"x": 2, "y": 3}],
        "by_tag": {"top": {"x": 4, "y": 5}},
        "center": {"x": 6, "y": 7},
        "spans": (8, 9),
        "hidden": 0,
    }


def test_keys_convert_and_leave_out_reshape_the_record():
    shape = Shape("sq", [], spans=(3, 1, 2), hidden=5)
    record = fields_dict(
        shape,
        keys={"name": "label"},
        convert={"spans": sorted},
        leave_out={"corners", "by_tag", "hidden"},
    )
    assert record == {"label": "sq", "center": None, "spans": [1, 2, 3]}


def test_names_choose_the_attributes_properties_and_nested_fields_in_their_order():
    shape = Shape("hex", [Point(1, 1)] * 6, center=Point(-1, 2))
    record = fields_dict(shape, names=("size", "center.y", "name"))
    assert list(record.items()) == [("size", 6), ("y", 2), ("name", "hex")]


def test_an_inline_record_is_spread_in_place_and_an_empty_field_can_be_left_out():
    shape = Shape("dot", [], center=Point(3, 4))
    record = fields_dict(shape, names=("name", "center", "by_tag"), inline={"center"})
    assert list(record) == ["name", "x", "y", "by_tag"]
    empty = fields_dict(shape, names=("name", "by_tag"), unless_empty={"by_tag"})
    assert empty == {"name": "dot"}
    shape.by_tag["a"] = Point(0, 0)
    full = fields_dict(shape, names=("name", "by_tag"), unless_empty={"by_tag"})
    assert full == {"name": "dot", "by_tag": {"a": {"x": 0, "y": 0}}}


def test_a_non_finite_error_writes_its_fields_its_stats_among_them_then_its_message():
    x = np.zeros((4, 2), np.float32)
    x[2, 1] = np.nan
    error = NonFiniteError(
        layer="check_fc7",
        blob="fc7",
        pass_="forward",
        phase="TEST",
        iteration=11,
        stats=finite_stats(x),
    )
    record = error.to_dict()
    fields = ["layer", "blob", "writer", "pass", "phase", "iteration", "max_abs", "lr", "by"]
    assert list(record)[:9] == fields
    assert record["bad_samples"] == [2] and record["nan"] == 1
    assert list(record)[-1] == "message" and record["message"] == str(error)
    assert NonFiniteError.from_dict(record).to_dict() == record
