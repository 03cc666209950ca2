"""Kubernetes quantity strings to exact numbers.

Stop-gap: `instance_types.quantity.parse_quantity` is the shared parser; until it lands this module
holds the minimum the extender needs (the C.2 grammar), memoised because the same few strings
("100m", "1Gi") arrive with every one of 150,000 pods.
"""

from __future__ import annotations

import re
from fractions import Fraction
from functools import lru_cache

_SUFFIX: dict[str, Fraction] = {
    "": Fraction(1),
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
    "Ki": Fraction(2**10),
    "Mi": Fraction(2**20),
    "Gi": Fraction(2**30),
    "Ti": Fraction(2**40),
    "Pi": Fraction(2**50),
    "Ei": Fraction(2**60),
}
_QUANTITY = re.compile(r"^([+-]?)(\d+\.?\d*|\.\d+)(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$")


@lru_cache(maxsize=4096)
def parse_quantity(text: str) -> Fraction:
    """Exact value of a quantity such as `500m`, `1.5Gi` or `1e3`; ValueError names the bad text."""
    match = _QUANTITY.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not a Kubernetes quantity (e.g. 500m, 2, 1.5Gi)")
    sign, number, exponent, suffix = match.groups()
    value = Fraction(number)
    value *= Fraction(10) ** int(exponent[1:]) if exponent else _SUFFIX[suffix or ""]
    return -value if sign == "-" else value
