"""Mapping paths: RFC 9535 singular queries (name and index selectors) and nothing that selects many."""

import pytest

from eventpulse.webhooks.paths import MISSING, PathError, compile_path, resolve

DOC = {"a": {"b c": [10, {"d": "x"}], "it's": 1, "ü": 2}, "list": [1, 2, 3], "n": None}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("$", DOC),
        ("$.a['b c'][0]", 10),
        ('$.a["b c"][1].d', "x"),
        ("$.a['it\\'s']", 1),
        ("$.a.ü", 2),
        ("$.list[-1]", 3),
        ("$.list[ 1 ]", 2),
        ("$.n", None),  # present, null: not missing
        ("$['a']['\\u0062 c'][0]", 10),
    ],
)
def test_a_singular_query_names_its_value(path: str, value: object) -> None:
    assert resolve(DOC, compile_path(path)) == value


@pytest.mark.parametrize("path", ["$.missing", "$.list[3]", "$.list[-4]", "$.a.b", "$.list.x", "$.a['b c'][1].d.e"])
def test_a_path_that_names_nothing_is_missing(path: str) -> None:
    assert resolve(DOC, compile_path(path)) is MISSING


@pytest.mark.parametrize(
    "path", ["a.b", "$.a[*]", "$..a", "$.a[0:2]", "$.a[?@.b]", "$.a.", "$.a[01]", "$['a]", "$.1a", "$.a['\\q']"]
)
def test_what_is_not_a_singular_query_is_refused(path: str) -> None:
    with pytest.raises(PathError):
        compile_path(path)


def test_an_index_never_reads_an_object_nor_a_name_a_list() -> None:
    assert resolve({"0": "zero"}, compile_path("$[0]")) is MISSING
    assert resolve([1], compile_path("$['0']")) is MISSING
