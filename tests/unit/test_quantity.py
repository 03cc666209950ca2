"""Quantities as Kubernetes reads them: the vectors of wire.md C.2 and Go's quantity_test.go."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inferplane.errors import UserError
from instance_types.quantity import (
    QuantityError,
    format_quantity,
    is_quantity,
    milli_value,
    parse_quantity,
)

F = Fraction


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", F(0)),
        ("700m", F(7, 10)),
        ("1", F(1)),
        ("1.", F(1)),
        (".5", F(1, 2)),
        ("+2", F(2)),
        ("-1.5", F(-3, 2)),
        ("1k", F(1000)),
        ("1e3", F(1000)),
        ("1E3", F(1000)),
        ("1e+3", F(1000)),
        ("1e-3", F(1, 1000)),
        ("1Ki", F(1024)),
        ("1536Mi", F(1536 * 2**20)),
        ("1.5Gi", F(3 * 2**29)),
        ("2Gi", F(2 * 2**30)),
        ("1u", F(1, 10**6)),
        ("5n", F(5, 10**9)),
        ("1.G", F(10**9)),
        ("1M", F(10**6)),
        ("1E", F(10**18)),
        ("0.1m", F(1, 10**4)),
        ("0.1n", F(1, 10**9)),  # finer than 1n rounds up, away from zero
        ("-0.1n", F(-1, 10**9)),
        ("1.0000000001", F(1) + F(1, 10**9)),
        ("8Ei", F(2**63 - 1)),  # binary values are capped at the int64 maximum, like Go
        ("-8Ei", F(-(2**63 - 1))),
        (3, F(3)),
    ],
)
def test_parse_vectors(text: str | int, value: Fraction) -> None:
    assert parse_quantity(text) == value


def test_equal_spellings_compare_equal() -> None:
    assert parse_quantity("1536Mi") == parse_quantity("1.5Gi")
    assert parse_quantity("1e3") == parse_quantity("1k")
    assert parse_quantity("1") == parse_quantity("1000m")
    assert parse_quantity("700m") < parse_quantity("1")
    assert parse_quantity("1Ki") > parse_quantity("1k")
    # 0.1 + 0.2 is not 0.3 in floats; here it is.
    assert parse_quantity("100m") + parse_quantity("200m") == parse_quantity("300m")


@pytest.mark.parametrize(
    "text",
    [
        "",
        "K",
        "1K",
        "E",
        "1e",
        "1e1.5",
        ".",
        "+",
        "-",
        "1.5x",
        " 1",
        "1 ",
        "1KiB",
        "1ki",
        "1mi",
        "0x10",
        "1,5",
    ],
)
def test_refuses_what_kubernetes_refuses(text: str) -> None:
    with pytest.raises(QuantityError) as err:
        parse_quantity(text)
    assert f'"{text}"' in str(err.value)
    assert isinstance(err.value, UserError)
    assert not is_quantity(text)


def test_message_names_value_and_accepted_forms() -> None:
    with pytest.raises(QuantityError) as err:
        parse_quantity("1.5x")
    assert str(err.value) == (
        '"1.5x" is not a quantity; use a number with an optional suffix such as 500m, 2, 1536Mi, 4Gi'
    )


def test_capital_k_gets_a_hint() -> None:
    with pytest.raises(QuantityError) as err:
        parse_quantity("2K")
    assert str(err.value) == '"2K" is not a quantity; write 2k for thousands or 2Ki for 1024s'


@pytest.mark.parametrize("value", [0.5, True, None, [1]])
def test_refuses_non_string_values(value: object) -> None:
    with pytest.raises(QuantityError, match="is not a quantity"):
        parse_quantity(value)  # type: ignore[arg-type]


def test_float_hint_says_to_quote() -> None:
    with pytest.raises(QuantityError, match=r'quote it: "0.5"'):
        parse_quantity(0.5)  # type: ignore[arg-type]


def test_absurd_exponent_is_refused_fast() -> None:
    with pytest.raises(QuantityError, match="out of range"):
        parse_quantity("1e999999999")


@pytest.mark.parametrize(
    ("value", "binary", "text"),
    [
        (F(3, 2), False, "1500m"),
        (F(3 * 2**29), True, "1536Mi"),
        (F(3 * 2**29), False, "1610612736"),
        (F(1000), False, "1k"),
        (F(1200), False, "1200"),
        (F(12000), False, "12k"),
        (F(1024), True, "1Ki"),
        (F(1000), True, "1k"),  # below 1024: decimal even when binary is asked for
        (F(2049, 2), True, "1024500m"),  # not whole: decimal
        (F(1, 10**4), False, "100u"),
        (F(1, 10**10), False, "1n"),  # rounded up to 1n
        (F(0), True, "0"),
        (F(-3, 2), False, "-1500m"),
        (F(-2048), True, "-2Ki"),
        (F(10**21), False, "1000E"),
        (F(2**62), True, "4Ei"),
        (F(2**70), True, "1180591620717411303424"),  # would parse back capped in binary
        (F(600, 1000), False, "600m"),
    ],
)
def test_format_canonical(value: Fraction, binary: bool, text: str) -> None:
    assert format_quantity(value, binary=binary) == text


def test_milli_value_rounds_up() -> None:
    assert milli_value(parse_quantity("0.1m")) == 1
    assert milli_value(parse_quantity("1.5")) == 1500
    assert milli_value(parse_quantity("1.0001")) == 1001


# Any multiple of 1n within a generous range: what parse_quantity can return.
nanos = st.integers(min_value=-(10**30), max_value=10**30).map(lambda n: Fraction(n, 10**9))


@given(nanos, st.booleans())
def test_format_then_parse_round_trips(value: Fraction, binary: bool) -> None:
    assert parse_quantity(format_quantity(value, binary=binary)) == value


@given(nanos, st.booleans())
def test_canonical_form_is_stable(value: Fraction, binary: bool) -> None:
    text = format_quantity(value, binary=binary)
    assert format_quantity(parse_quantity(text), binary=binary) == text
    assert "." not in text


@given(st.fractions(max_denominator=10**12))
def test_parse_rounds_away_from_zero_to_a_nano(value: Fraction) -> None:
    text = format_quantity(value)
    parsed = parse_quantity(text)
    assert (parsed * 10**9).denominator == 1
    assert abs(parsed) >= abs(value)
    assert abs(parsed - value) < Fraction(1, 10**9)
