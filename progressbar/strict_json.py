"""Strict JSON: every text the server writes (task records, pushes, answers)
is standard JSON, and every record it reads back can be read.

Python's `json` writes a float that is not finite as a bare `NaN` or
`Infinity`: no browser parses that, and the Lua scripts' encoder refuses it.
Here such a number is written as null. A value that has no JSON text at all
(nested too deeply, or circular) is refused with `Unencodable` before
anything is stored or sent.
"""

from __future__ import annotations

import json
import math
import numbers
import sys
from collections.abc import Callable
from typing import Any

LARGEST = sys.float_info.max


class Unencodable(ValueError):
    """A value with no JSON text: nested too deeply, or circular."""


def finite_number(value: Any) -> int | float | None:
    """`value` as a plain int or float if it is a finite real number (a
    numpy scalar, say); None for anything else: NaN, ±infinity, an integer
    beyond what a float (and so a browser) can hold, a bool, a non-number."""
    kind = type(value)
    if kind is float:  # the common cases first: this runs on every update
        return value if math.isfinite(value) else None
    if kind is int:
        return value if -LARGEST <= value <= LARGEST else None
    if kind is bool or not isinstance(value, numbers.Real):
        return None
    if isinstance(value, numbers.Integral):
        whole = int(value)
        return whole if -LARGEST <= whole <= LARGEST else None
    number = float(value)
    return number if math.isfinite(number) else None


def finite_only(value: Any) -> Any:
    """`value` with every number that is not finite (see `finite_number`)
    inside it replaced by None; tuples become lists, as JSON has them."""
    if isinstance(value, dict):
        return {key: finite_only(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_only(item) for item in value]
    if isinstance(value, float | int) and not isinstance(value, bool):
        return finite_number(value)
    return value


def _encode(value: Any, default: Callable[[Any], Any] | None) -> str:
    return json.dumps(value, separators=(",", ":"), allow_nan=False, default=default)


def dumps(value: Any, default: Callable[[Any], Any] | None = None, **_: Any) -> str:
    """Compact, standard JSON text of `value`; a number that is not finite
    is written as null. Unencodable if it has no JSON text (nested too
    deeply, circular, a key JSON cannot have); TypeError, as `json.dumps`,
    for a type `default` does not turn into one."""
    try:
        return _encode(value, default)
    except RecursionError:
        raise Unencodable("nested too deeply") from None
    except ValueError:
        pass  # a number that is not finite, or a circular reference: cleaned below
    except TypeError as exc:
        if not _bad_key(exc):
            raise
        raise Unencodable(str(exc)) from None
    try:
        return _encode(finite_only(value), default)
    except (ValueError, RecursionError) as exc:
        raise Unencodable(str(exc) or type(exc).__name__) from None
    except TypeError as exc:
        if not _bad_key(exc):
            raise
        raise Unencodable(str(exc)) from None


def _bad_key(exc: TypeError) -> bool:
    # json.dumps's words for a dict key that is not a str, number, bool or None
    # (`default` is never asked about keys).
    return str(exc).startswith("keys must be")


def loads(text: str | bytes) -> Any:
    """Read a record, whichever version wrote it: a bare NaN or ±Infinity
    (as earlier versions stored them) reads as None."""
    return json.loads(text, parse_constant=lambda _: None)
