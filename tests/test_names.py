"""Dataset names and data IDs (labshelf.names): what is allowed, and what each refusal says."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import labshelf
from labshelf.names import MAX_NAME_LENGTH, check_name, data_id_key, format_data_id, normalize_data_id

# -- names ----------------------------------------------------------------------------------------

VALID_NAMES = [
    "temperature",
    "camera/image",
    "a-b_c+1",
    "scan/x=1,y=2/peak@3#4%(fit)",
    "_private",
    "0th",
    "Ünïcödé/日本語/λ",
    "a/b/c/d/e/f",
    "x" * MAX_NAME_LENGTH,
    "/".join(["ab"] * 85),
]


@pytest.mark.parametrize("name", VALID_NAMES)
def test_valid_names_are_returned_unchanged(name: str) -> None:
    assert check_name(name) == name


#: (name, phrases the message must contain).  Each message says what is wrong.
INVALID_NAMES = [
    pytest.param("", ["cannot be empty"], id="empty"),
    pytest.param("/x", ["empty part", "leading, trailing or double '/'"], id="leading-slash"),
    pytest.param("x/", ["empty part"], id="trailing-slash"),
    pytest.param("a//b", ["empty part"], id="double-slash"),
    pytest.param("..", ["'.'", "reserved for components"], id="dotdot"),
    pytest.param("../../etc/passwd", ["'.'", "reserved"], id="escape"),
    pytest.param("a/../b", ["'.'", "reserved"], id="dotdot-inside"),
    pytest.param("./a", ["'.'", "reserved"], id="dot-slash"),
    pytest.param("a.b", ["'.'", "reserved for components (name.component)"], id="dot"),
    pytest.param("a:b", ["':'", "reserved for processing stages"], id="colon"),
    pytest.param("x\x00", ["control character"], id="nul"),
    pytest.param("a\nb", ["control character"], id="newline"),
    pytest.param("a\tb", ["control character"], id="tab"),
    pytest.param("a\x1bb", ["control character"], id="escape-char"),
    pytest.param("a\x7fb", ["control character"], id="del"),
    pytest.param(
        "x" * (MAX_NAME_LENGTH + 1),
        [f"{MAX_NAME_LENGTH + 1} characters", f"limit is {MAX_NAME_LENGTH}"],
        id="too-long",
    ),
    pytest.param("a b", ["part 'a b' is not allowed", "letters, digits"], id="space"),
    pytest.param("-a", ["part '-a' is not allowed"], id="leading-dash"),
    pytest.param("a/@b", ["part '@b' is not allowed"], id="part-starts-with-symbol"),
    pytest.param("a*", ["part 'a*' is not allowed"], id="glob-star"),
    pytest.param("a?", ["is not allowed"], id="glob-question"),
    pytest.param("a[0]", ["is not allowed"], id="brackets"),
    pytest.param("~", ["is not allowed"], id="tilde"),
    pytest.param("$HOME", ["is not allowed"], id="dollar"),
    pytest.param("a\\b", ["is not allowed"], id="backslash"),
    pytest.param("C:\\x", ["':'"], id="windows-drive"),
    pytest.param("a\u202eb", ["is not allowed"], id="right-to-left-override"),
]


@pytest.mark.parametrize(("name", "phrases"), INVALID_NAMES)
def test_invalid_name_raises_invalid_name_saying_why(name: str, phrases: list[str]) -> None:
    with pytest.raises(labshelf.InvalidName) as info:
        check_name(name)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    for phrase in phrases:
        assert phrase in message
    if len(name) <= MAX_NAME_LENGTH and name:
        assert repr(name) in message  # the message names the offending name


@pytest.mark.parametrize("name", [None, 5, 1.5, b"camera", ["a"], ("a",), {"a": 1}, object()], ids=repr)
def test_a_name_that_is_no_str_raises_invalid_name(name: Any) -> None:
    with pytest.raises(labshelf.InvalidName, match="must be a str, not " + type(name).__name__):
        check_name(name)


def test_refused_names_say_what_is_allowed() -> None:
    with pytest.raises(labshelf.InvalidName) as info:
        check_name("a b")
    assert "letters, digits and _ - + = @ , # % ( ), parts joined by '/'" in str(info.value)


def test_checking_a_name_twice_gives_the_same_answer() -> None:
    # check_name caches valid names; refusals must not be cached away.
    for _ in range(2):
        assert check_name("repeat/me") == "repeat/me"
        with pytest.raises(labshelf.InvalidName):
            check_name("repeat/../me")


# -- data IDs -------------------------------------------------------------------------------------


def test_no_data_id_is_an_empty_dict() -> None:
    assert normalize_data_id(None) == {}
    assert normalize_data_id({}) == {}
    assert data_id_key({}) == "{}"


def test_valid_data_id_is_sorted_and_plain() -> None:
    data_id = {"detector": np.int64(3), "band": "r", "exposure": 2**70, "ok": np.bool_(True), "_x": False}
    normalized = normalize_data_id(data_id)
    assert normalized == {"_x": False, "band": "r", "detector": 3, "exposure": 2**70, "ok": True}
    assert list(normalized) == ["_x", "band", "detector", "exposure", "ok"]
    assert type(normalized["detector"]) is int and type(normalized["ok"]) is bool
    assert type(normalized["_x"]) is bool  # a bool stays a bool, not 0


def test_data_id_key_does_not_depend_on_order() -> None:
    a = data_id_key(normalize_data_id({"channel": 2, "band": "ü"}))
    b = data_id_key(normalize_data_id({"band": "ü", "channel": 2}))
    assert a == b == '{"band":"ü","channel":2}'


def test_data_id_accepts_any_mapping() -> None:
    from types import MappingProxyType

    assert normalize_data_id(MappingProxyType({"channel": 1})) == {"channel": 1}


def test_format_data_id() -> None:
    assert format_data_id({"channel": 2, "band": "r"}) == "channel=2, band='r'"
    assert format_data_id({}) == ""


@pytest.mark.parametrize(
    ("data_id", "phrases"),
    [
        pytest.param({"1st": 1}, ["'1st'", "not an identifier"], id="key-starts-with-digit"),
        pytest.param({"a-b": 1}, ["'a-b'", "not an identifier"], id="key-with-dash"),
        pytest.param({"": 1}, ["''", "not an identifier"], id="empty-key"),
        pytest.param({"dé": 1}, ["not an identifier"], id="non-ascii-key"),
        pytest.param({3: 1}, ["3", "not an identifier"], id="int-key"),
        pytest.param({"x": 1.5}, ["'x'", "float", "allowed are int, str and bool"], id="float-value"),
        pytest.param({"x": [1]}, ["'x'", "list", "allowed are int, str and bool"], id="list-value"),
        pytest.param({"x": None}, ["NoneType", "allowed are int, str and bool"], id="none-value"),
        pytest.param({"x": {"y": 1}}, ["dict"], id="nested-dict"),
        pytest.param({"x": b"raw"}, ["bytes"], id="bytes-value"),
        pytest.param({"x": np.float64(1)}, ["float64"], id="numpy-float-value"),
    ],
)
def test_invalid_data_id_raises_invalid_data_id(data_id: Any, phrases: list[str]) -> None:
    with pytest.raises(labshelf.InvalidDataId) as info:
        normalize_data_id(data_id)
    assert isinstance(info.value, ValueError)
    for phrase in phrases:
        assert phrase in str(info.value)


@pytest.mark.parametrize("data_id", [[("channel", 1)], "channel=1", 3, ("channel",)], ids=repr)
def test_a_data_id_that_is_no_dict_is_refused(data_id: Any) -> None:
    with pytest.raises(labshelf.InvalidDataId, match=f"must be a dict .*not {type(data_id).__name__}"):
        normalize_data_id(data_id)


def test_run_number_is_one_rule() -> None:
    from labshelf.names import MAX_RUN, run_number

    for value in (1, np.int64(7), np.uint32(7), np.int8(7), MAX_RUN):
        assert run_number(value) == int(value) and type(run_number(value)) is int
    for bad in (0, -1, MAX_RUN + 1, 2**63, 2**300, True, np.bool_(False), 1.0, "1", None):
        with pytest.raises(labshelf.RunNotFound):
            run_number(bad)
        with pytest.raises(labshelf.InvalidValue):
            run_number(bad, new=True)


def test_check_text_refuses_what_a_registry_cannot_store() -> None:
    from labshelf.names import check_text

    for fine in ("", "plain", "\u00e9\U0001f600", "\u2400", "tab\tand\nnewline"):
        assert check_text(fine, "x") == fine
    with pytest.raises(labshelf.InvalidValue, match="NUL"):
        check_text("a\x00", "x")
    with pytest.raises(labshelf.InvalidDataId, match="lone surrogate"):
        check_text("a\udc80", "x", labshelf.InvalidDataId)


def test_new_data_ids_avoid_reserved_dimensions() -> None:
    from labshelf.names import RESERVED_DIMENSIONS

    for dimension in RESERVED_DIMENSIONS:
        assert normalize_data_id({dimension: 1}) == {dimension: 1}  # still found when looking up
        with pytest.raises(labshelf.InvalidDataId, match="reserved"):
            normalize_data_id({dimension: 1}, new=True)
    with pytest.raises(labshelf.InvalidDataId, match="64-bit"):
        normalize_data_id({"det": 2**64}, new=True)
    with pytest.raises(labshelf.InvalidDataId, match="NUL"):
        normalize_data_id({"det": "\x00"})
