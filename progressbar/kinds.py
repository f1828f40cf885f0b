"""The task kinds a client may start, their parameters and how they are checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ProtocolError


@dataclass(frozen=True)
class Param:
    name: str
    label: str
    integer: bool
    minimum: float
    maximum: float
    default: float | None = None
    help: str = ""

    def check(self, value: Any) -> float:
        # bool is an int to Python, never to a user.
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ProtocolError("invalid", f"params.{self.name} must be a number")
        if self.integer and not isinstance(value, int):
            raise ProtocolError("invalid", f"params.{self.name} must be an integer")
        if value != value or not self.minimum <= value <= self.maximum:
            raise ProtocolError(
                "invalid",
                f"params.{self.name} must be between {self.minimum:g} and {self.maximum:g}",
            )
        return value


@dataclass(frozen=True)
class Kind:
    name: str
    title: str
    task: str  # the Celery task name
    description: str
    params: tuple[Param, ...] = field(default_factory=tuple)

    def validate(self, params: Any) -> dict[str, Any]:
        """Checked params with defaults filled in; ProtocolError('invalid') if not."""
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise ProtocolError("invalid", "params must be an object")
        known = {p.name: p for p in self.params}
        for name in params:
            if name not in known:
                raise ProtocolError(
                    "invalid", f"params.{str(name)[:40]} is not a parameter of {self.name}"
                )
        checked = {}
        for p in self.params:
            value = params.get(p.name)
            if value is None:
                if p.default is not None:
                    checked[p.name] = p.default
            else:
                checked[p.name] = p.check(value)
        return checked


KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "simulate",
            "Simulated job",
            "progressbar.simulate",
            "Advances in random steps of 3–10 points, sleeping in proportion.",
            (
                Param(
                    "duration", "Duration (s)", False, 0.1, 3600, 30, "How long the whole run takes"
                ),
                Param(
                    "fail_at", "Fail at (%)", True, 1, 99, None, "Raise once progress passes this"
                ),
                Param(
                    "seed",
                    "Seed",
                    True,
                    -(2**53 - 1),
                    2**53 - 1,
                    None,
                    "Makes the steps repeatable",
                ),
            ),
        ),
        Kind(
            "primes",
            "Count primes",
            "progressbar.primes",
            "Real CPU work: a segmented sieve counts the primes below a limit.",
            (Param("limit", "Below", True, 2, 10**9, 10**6, "Count the primes below this"),),
        ),
    )
}


def resolve(kind: Any, params: Any) -> tuple[Kind, dict[str, Any]]:
    """The Kind named `kind` and its checked params."""
    if not isinstance(kind, str) or not kind:
        raise ProtocolError("invalid", "kind must be a non-empty string")
    if kind not in KINDS:
        raise ProtocolError("unknown_kind", f"no task kind named {kind[:40]!r}")
    return KINDS[kind], KINDS[kind].validate(params)
