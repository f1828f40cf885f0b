"""Task kinds a client may start: their parameters and how they are checked.

A host app registers its own kinds on the extension (`ProgressBar.kind`);
nothing here knows any particular task.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .errors import ProtocolError

# Beyond this a browser cannot send an integer exactly.
SAFE_INTEGER = 2**53 - 1


@dataclass(frozen=True)
class Param:
    """A parameter: a number (`integer` or not) in [minimum, maximum], or, with
    `text`, a string of at most `maximum` characters. No default: optional."""

    name: str
    label: str
    integer: bool
    minimum: float
    maximum: float
    default: float | None = None
    help: str = ""
    text: bool = False

    @classmethod
    def int_range(
        cls,
        name: str,
        minimum: int = -SAFE_INTEGER,
        maximum: int = SAFE_INTEGER,
        default: int | None = None,
        label: str | None = None,
        help: str = "",
    ) -> Param:
        """A whole number in [minimum, maximum]."""
        return cls(
            name,
            label or _label(name),
            integer=True,
            minimum=minimum,
            maximum=maximum,
            default=default,
            help=help,
        )

    @classmethod
    def float_range(
        cls,
        name: str,
        minimum: float,
        maximum: float,
        default: float | None = None,
        label: str | None = None,
        help: str = "",
    ) -> Param:
        """Any number in [minimum, maximum]."""
        return cls(
            name,
            label or _label(name),
            integer=False,
            minimum=minimum,
            maximum=maximum,
            default=default,
            help=help,
        )

    @classmethod
    def string(cls, name: str, max_length: int, label: str | None = None, help: str = "") -> Param:
        """Optional text of at most `max_length` characters."""
        return cls(
            name,
            label or _label(name),
            integer=False,
            minimum=0,
            maximum=max_length,
            help=help,
            text=True,
        )

    def from_text(self, raw: str) -> str | int | float:
        """The value typed on a command line, as this parameter's type; not
        checked (`check` does that). ValueError if it is not a number."""
        if self.text:
            return raw
        return int(raw) if self.integer else float(raw)

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


def _label(name: str) -> str:
    return name.replace("_", " ").capitalize()


@dataclass(frozen=True)
class Kind:
    """A startable kind: its name in the protocol, the Celery task that runs it
    (a task object or its registered name) and its parameters.

    A group has `parts_of` (the kind of its parts) and `split`, which turns the
    group's checked params into one params dict per part.
    """

    name: str
    task: Any = ""
    title: str = ""
    description: str = ""
    params: tuple[Param, ...] = field(default_factory=tuple)
    # Not offered on a page, and not startable by clients (Socket.IO, HTTP):
    # server code and the CLI start it (or clients, with START_HIDDEN_KINDS).
    hidden: bool = False
    parts_of: str | None = None
    split: Callable[[dict[str, Any]], list[dict[str, Any]]] | None = None
    # Seconds its task may run (Celery's soft time limit); None: TASK_TIME_LIMIT,
    # unless its Celery task sets its own.
    time_limit: float | None = None

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError("a kind needs a non-empty name")
        if (self.parts_of is None) != (self.split is None):
            raise ValueError(f"kind {self.name}: a group needs both parts_of and split")
        # Not `not self.task`: that would evaluate a shared task's proxy now.
        missing = self.task is None or (isinstance(self.task, str) and not self.task)
        if self.parts_of is None and missing:
            raise ValueError(f"kind {self.name}: needs the task that runs it")
        if not self.title:
            object.__setattr__(self, "title", _label(self.name))
        if self.time_limit is not None and not self.time_limit > 0:
            raise ValueError(f"kind {self.name}: time_limit must be a positive number of seconds")

    @property
    def task_name(self) -> str:
        """The Celery task's name; a task object is asked only now, once Celery is set up."""
        return self.task if isinstance(self.task, str) else str(self.task.name)

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


class Kinds:
    """The kinds one extension offers, by name."""

    def __init__(self) -> None:
        self._kinds: dict[str, Kind] = {}

    def add(self, kind: Kind) -> Kind:
        if kind.name in self._kinds:
            raise ValueError(f"a kind named {kind.name!r} is already registered")
        if kind.parts_of is not None and kind.parts_of not in self._kinds:
            raise ValueError(f"kind {kind.name}: register its part kind {kind.parts_of!r} first")
        self._kinds[kind.name] = kind
        return kind

    def __iter__(self) -> Iterator[Kind]:
        return iter(self._kinds.values())

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __getitem__(self, name: str) -> Kind:
        return self._kinds[name]

    def get(self, name: str) -> Kind | None:
        return self._kinds.get(name)

    def names(self) -> list[str]:
        return list(self._kinds)

    def visible(self) -> list[Kind]:
        """The kinds a page offers: all but the hidden ones."""
        return [k for k in self._kinds.values() if not k.hidden]

    def resolve(
        self, kind: Any, params: Any, hidden: bool = True
    ) -> tuple[Kind, dict[str, Any]]:
        """The Kind named `kind` and its checked params; a hidden kind, only
        with `hidden` (else it is unknown, as one that does not exist)."""
        if not isinstance(kind, str) or not kind:
            raise ProtocolError("invalid", "kind must be a non-empty string")
        found = self._kinds.get(kind)
        if found is None or (found.hidden and not hidden):
            raise ProtocolError("unknown_kind", f"no task kind named {kind[:40]!r}")
        return found, found.validate(params)

    def parts(self, kind: Kind, params: dict[str, Any]) -> list[dict[str, Any]]:
        """A group's part params, checked as its part kind's; [] if not a group."""
        if kind.split is None or kind.parts_of is None:
            return []
        part_kind = self._kinds[kind.parts_of]
        parts = [part_kind.validate(p) for p in kind.split(params)]
        if not parts:
            raise ProtocolError("invalid", f"{kind.name} would have no parts")
        return parts
