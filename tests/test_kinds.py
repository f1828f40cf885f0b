"""Validation of `start` parameters: every bad value is named in the message."""

from __future__ import annotations

import pytest

from progressbar.errors import ProtocolError
from progressbar.kinds import resolve


def error_of(kind: object, params: object) -> tuple[str, str]:
    with pytest.raises(ProtocolError) as info:
        resolve(kind, params)
    return info.value.code, info.value.message


def test_defaults_are_filled_in() -> None:
    kind, params = resolve("simulate", None)
    assert kind.task == "progressbar.simulate"
    assert params == {"duration": 30}
    assert resolve("primes", {})[1] == {"limit": 10**6}


def test_good_params_pass_through() -> None:
    _, params = resolve("simulate", {"duration": 0.5, "fail_at": 50, "seed": 7})
    assert params == {"duration": 0.5, "fail_at": 50, "seed": 7}
    _, params = resolve("simulate", {"label": "<b>x</b>"})
    assert params == {"duration": 30, "label": "<b>x</b>"}


@pytest.mark.parametrize(
    ("kind", "params", "code", "names"),
    [
        ("nope", {}, "unknown_kind", "nope"),
        ("", {}, "invalid", "kind"),
        (3, {}, "invalid", "kind"),
        (None, {}, "invalid", "kind"),
        ("simulate", [], "invalid", "params"),
        ("simulate", {"duration": "3"}, "invalid", "params.duration"),
        ("simulate", {"duration": True}, "invalid", "params.duration"),
        ("simulate", {"duration": 0.01}, "invalid", "params.duration"),
        ("simulate", {"duration": 3601}, "invalid", "params.duration"),
        ("simulate", {"duration": float("nan")}, "invalid", "params.duration"),
        ("simulate", {"duration": float("inf")}, "invalid", "params.duration"),
        ("simulate", {"fail_at": 0}, "invalid", "params.fail_at"),
        ("simulate", {"fail_at": 100}, "invalid", "params.fail_at"),
        ("simulate", {"fail_at": 50.5}, "invalid", "params.fail_at"),
        ("simulate", {"seed": 2**53}, "invalid", "params.seed"),
        ("simulate", {"speed": 1}, "invalid", "params.speed"),
        ("simulate", {"label": 5}, "invalid", "params.label"),
        ("simulate", {"label": "x" * 81}, "invalid", "params.label"),
        ("primes", {"limit": 1}, "invalid", "params.limit"),
        ("primes", {"limit": 10**9 + 1}, "invalid", "params.limit"),
    ],
)
def test_bad_input_is_refused_with_the_field_named(
    kind: object, params: object, code: str, names: str
) -> None:
    got_code, message = error_of(kind, params)
    assert got_code == code
    assert names in message
