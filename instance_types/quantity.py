"""Kubernetes resource quantities, compared exactly.

Kubernetes parses quantities in fixed point and never through floats (`resource.Quantity` in
k8s.io/apimachinery); a float would make `0.1 + 0.2 > 0.3` and let a pod ask for more than its
instance type allows. Values are `fractions.Fraction`, so `1536Mi == 1.5Gi` and `700m < 1` hold
exactly. The grammar accepted is what the CRD pattern and Go's parser both accept (Go alone also
takes oddities such as `.` or `+` for zero, which the apiserver's schema check refuses first).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

from inferplane.errors import UserError

_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX_BY_EXPONENT = {exponent: suffix for suffix, exponent in _DECIMAL.items()}
_BINARY_SUFFIX_BY_POWER = {power // 10: suffix for suffix, power in _BINARY.items()}

# Go's scanner takes only digits after e/E, so `1e1.5` fails there even though the CRD pattern allows it.
_QUANTITY = re.compile(
    r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?[0-9]+)?"
)

NANO = Fraction(1, 10**9)
# Go caps BinarySI values at the int64 maximum.
_INT64_MAX = 2**63 - 1
# Beyond this a value means nothing for a machine and would only cost time to build; Go itself
# silently truncates exponents to int32.
_MAX_EXPONENT = 1000

ACCEPTED_FORMS = "use a number with an optional suffix such as 500m, 2, 1536Mi, 4Gi"


class QuantityError(UserError):
    """A value that is not a Kubernetes quantity; the message names it and the accepted forms."""


def parse_quantity(value: str | int) -> Fraction:
    """The exact value of a quantity, rounded up to 1n like Go so both sides agree on every comparison."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        hint = f'; quote it: "{value}"' if isinstance(value, float) else ""
        raise QuantityError(f"{value!r} is not a quantity; {ACCEPTED_FORMS}{hint}")
    if isinstance(value, int):
        return Fraction(value)
    match = _QUANTITY.fullmatch(value)
    if match is None:
        if value.endswith("K") and _QUANTITY.fullmatch(value[:-1] + "k"):
            digits = value[:-1]
            raise QuantityError(
                f'"{value}" is not a quantity; write {digits}k for thousands or {digits}Ki for 1024s'
            )
        raise QuantityError(f'"{value}" is not a quantity; {ACCEPTED_FORMS}')
    sign, number, suffix = match.group(1), Fraction(match.group(2)), match.group(3) or ""
    if suffix in _BINARY:
        amount = number * 2 ** _BINARY[suffix]
        amount = min(amount, Fraction(_INT64_MAX))
    elif suffix in _DECIMAL:
        amount = number * Fraction(10) ** _DECIMAL[suffix]
    else:
        exponent = int(suffix[1:])
        if abs(exponent) > _MAX_EXPONENT:
            raise QuantityError(
                f'"{value}" is out of range; keep the exponent within ±{_MAX_EXPONENT}, e.g. 1e3 or 4G'
            )
        amount = number * Fraction(10) ** exponent
    amount = _round_up_to_nano(amount)
    return -amount if sign == "-" else amount


def _round_up_to_nano(amount: Fraction) -> Fraction:
    """Round away from zero to a multiple of 1n, as Go's `inf.RoundUp` at scale 9 does."""
    magnitude = math.ceil(abs(amount) / NANO) * NANO
    return magnitude if amount >= 0 else -magnitude


def format_quantity(value: Fraction | int, binary: bool = False) -> str:
    """Kubernetes' canonical spelling: the largest suffix that keeps the value exact, no fraction.

    `binary=True` asks for Ki/Mi/Gi… as memory is usually written; like Go, it falls back to
    decimal when the value is below 1024 or not a whole number, and also (unlike Go) beyond the
    int64 range, where a binary spelling would parse back capped.
    """
    amount = _round_up_to_nano(Fraction(value))
    if amount == 0:
        return "0"
    if binary and 1024 <= abs(amount) <= _INT64_MAX and amount.denominator == 1:
        return _format_binary(amount.numerator)
    return _format_decimal(amount)


def _format_binary(amount: int) -> str:
    power = 0
    while amount % 1024 == 0 and power < max(_BINARY_SUFFIX_BY_POWER):
        amount //= 1024
        power += 1
    return f"{amount}{_BINARY_SUFFIX_BY_POWER.get(power, '')}"


def _format_decimal(amount: Fraction) -> str:
    # A multiple of 1n: an integer mantissa at exponent -9, then move factors of 1000 into the suffix.
    mantissa, exponent = int(amount / NANO), -9
    while mantissa % 1000 == 0 and exponent < max(_DECIMAL_SUFFIX_BY_EXPONENT):
        mantissa //= 1000
        exponent += 3
    return f"{mantissa}{_DECIMAL_SUFFIX_BY_EXPONENT[exponent]}"


def milli_value(value: Fraction) -> int:
    """Thousandths, rounded up like Go's `MilliValue()`: what the kubelet and scheduler use for CPU."""
    return math.ceil(value * 1000)


def is_quantity(value: object) -> bool:
    """Whether `value` parses; for filters that must not raise."""
    try:
        parse_quantity(value)  # type: ignore[arg-type]
    except QuantityError:
        return False
    return True
