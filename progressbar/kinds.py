"""The task kinds a client may start, their parameters and how they are checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .errors import ProtocolError


@dataclass(frozen=True)
class Param:
    """A parameter: a number (`integer` or not) in [minimum, maximum], or, with
    `text`, a string of at most `maximum` characters."""

    name: str
    label: str
    integer: bool
    minimum: float
    maximum: float
    default: float | None = None
    help: str = ""
    text: bool = False

    def check(self, value: Any) -> Any:
        if self.text:
            if not isinstance(value, str):
                raise ProtocolError("invalid", f"params.{self.name} must be a string")
            if len(value) > self.maximum:
                raise ProtocolError(
                    "invalid", f"params.{self.name} must be at most {self.maximum:g} characters"
                )
            return value
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
    hidden: bool = False  # startable, but not offered on the page
    parts_of: str | None = None  # a group: its parts are tasks of this kind

    def part_params(self, params: dict[str, Any], index: int) -> dict[str, Any]:
        """The params of the group's part number `index` (from 0)."""
        part = {k: v for k, v in params.items() if k not in ("parts", "fail_at", "seed")}
        if "seed" in params:
            part["seed"] = params["seed"] + index
        if "fail_at" in params and index == 0:
            part["fail_at"] = params["fail_at"]  # only the first part fails
        return part

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


SAFE_INTEGER = 2**53 - 1  # beyond this a browser cannot send an integer exactly

KINDS: dict[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            name="simulate",
            title="Simulated job",
            task="progressbar.simulate",
            description="Advances in random steps of 3–10 points, sleeping in proportion.",
            params=(
                Param(
                    "duration",
                    "Duration (s)",
                    integer=False,
                    minimum=0.1,
                    maximum=3600,
                    default=30,
                    help="How long the whole run takes",
                ),
                Param(
                    "fail_at",
                    "Fail at (%)",
                    integer=True,
                    minimum=1,
                    maximum=99,
                    help="Raise once progress passes this",
                ),
                Param(
                    "seed",
                    "Seed",
                    integer=True,
                    minimum=-SAFE_INTEGER,
                    maximum=SAFE_INTEGER,
                    help="Makes the steps repeatable",
                ),
                Param(
                    "label",
                    "Label",
                    integer=False,
                    minimum=0,
                    maximum=80,
                    text=True,
                    help="Shown in each step's message",
                ),
            ),
        ),
        Kind(
            name="primes",
            title="Count primes",
            task="progressbar.primes",
            description="Real CPU work: a segmented sieve counts the primes below a limit.",
            params=(
                Param(
                    "limit",
                    "Below",
                    integer=True,
                    minimum=2,
                    maximum=10**9,
                    default=10**6,
                    help="Count the primes below this",
                ),
            ),
        ),
        Kind(
            name="batch",
            title="Batch of simulations",
            task="",
            description="One bar for a group: the parts run in parallel, each a simulation.",
            params=(
                Param(
                    "parts",
                    "Parts",
                    integer=True,
                    minimum=2,
                    maximum=32,
                    default=4,
                    help="How many simulations",
                ),
                Param(
                    "duration",
                    "Duration (s)",
                    integer=False,
                    minimum=0.1,
                    maximum=3600,
                    default=10,
                    help="Of each part",
                ),
                Param(
                    "fail_at",
                    "Fail at (%)",
                    integer=True,
                    minimum=1,
                    maximum=99,
                    help="Part 1 fails once it passes this",
                ),
                Param(
                    "seed",
                    "Seed",
                    integer=True,
                    minimum=-SAFE_INTEGER,
                    maximum=SAFE_INTEGER - 32,
                    help="Makes the steps repeatable",
                ),
            ),
            parts_of="simulate",
        ),
        Kind(
            name="ticker",
            title="Steady ticker",
            task="progressbar.ticker",
            description="Reports at a fixed rate; each message is its update's wall time.",
            params=(
                Param("updates", "Updates", integer=True, minimum=1, maximum=10**6, default=100),
                Param("rate", "Per second", integer=False, minimum=0.1, maximum=1000, default=10),
            ),
            hidden=True,  # for benchmarks
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
