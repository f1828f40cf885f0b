"""Validation of `start` parameters: every bad value is named in the message."""

from __future__ import annotations

import pytest

import demo.tasks  # noqa: F401  registers the demo's kinds
from demo import progress_bars
from progressbar import Kind, Param, Settings
from progressbar.errors import ProtocolError
from progressbar.kinds import Kinds

resolve = progress_bars.kinds.resolve


def error_of(kind: object, params: object) -> tuple[str, str]:
    with pytest.raises(ProtocolError) as info:
        resolve(kind, params)
    return info.value.code, info.value.message


def test_defaults_are_filled_in() -> None:
    kind, params = resolve("simulate", None)
    assert kind.task_name == "demo.simulate"
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


def test_a_group_checks_each_part_as_its_part_kind() -> None:
    kinds = progress_bars.kinds
    group, params = resolve("batch", {"parts": 3, "duration": 2, "seed": 5, "fail_at": 40})
    assert kinds.parts(group, params) == [
        {"duration": 2, "seed": 5, "fail_at": 40},
        {"duration": 2, "seed": 6},
        {"duration": 2, "seed": 7},
    ]
    assert kinds.parts(kinds["simulate"], {}) == []


def test_a_registry_refuses_duplicates_and_groups_of_unknown_kinds() -> None:
    kinds = Kinds()
    kinds.add(Kind("resize", task="app.resize", params=(Param.int_range("count", 1, 9),)))
    with pytest.raises(ValueError, match="already registered"):
        kinds.add(Kind("resize", task="app.other"))
    with pytest.raises(ValueError, match="part kind"):
        kinds.add(Kind("many", parts_of="nothing", split=lambda p: [p]))
    with pytest.raises(ValueError, match="needs the task"):
        Kind("orphan")
    assert kinds["resize"].title == "Resize"
    assert kinds.resolve("resize", {"count": 3})[1] == {"count": 3}
    with pytest.raises(ProtocolError, match="between 1 and 9"):
        kinds.resolve("resize", {"count": 10})


def test_a_group_whose_split_gives_bad_parts_is_refused() -> None:
    kinds = Kinds()
    kinds.add(Kind("part", task="app.part", params=(Param.int_range("n", 1, 5),)))
    kinds.add(Kind("whole", parts_of="part", split=lambda p: [{"n": 6}]))
    with pytest.raises(ProtocolError, match="params.n"):
        kinds.parts(kinds["whole"], {})
    kinds.add(Kind("empty", parts_of="part", split=lambda p: []))
    with pytest.raises(ProtocolError, match="no parts"):
        kinds.parts(kinds["empty"], {})


def test_settings_come_from_prefixed_config_keys_as_strings_or_values() -> None:
    settings = Settings.from_config(
        {
            "PROGRESSBAR_REDIS_URL": "redis://example:1/2",
            "PROGRESSBAR_MAX_ACTIVE_TASKS": "3",
            "PROGRESSBAR_LOST_TIMEOUT": 2,
            "PROGRESSBAR_SOCKETIO_TRANSPORTS": "websocket",
            "PROGRESSBAR_ALLOWED_ORIGINS": ["https://a.example", " https://b.example "],
            "MAX_ACTIVE_TASKS": 99,  # not ours: unprefixed keys belong to the host app
        }
    )
    assert settings.redis_url == "redis://example:1/2"
    assert settings.max_active_tasks == 3
    assert settings.lost_timeout == 2.0
    assert settings.socketio_transports == ("websocket",)
    assert settings.allowed_origins == ("https://a.example", "https://b.example")
    assert Settings.from_config({}) == Settings()


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("PROGRESSBAR_MAX_ACTIVE_TASKS", "ten"),
        ("PROGRESSBAR_LOST_TIMEOUT", True),
        ("PROGRESSBAR_SOCKETIO_TRANSPORTS", "carrier-pigeon"),
        ("PROGRESSBAR_SOCKETIO_TRANSPORTS", ""),
        ("PROGRESSBAR_TASK_TTL", 3.5),
    ],
)
def test_a_bad_setting_is_named_in_the_error(key: str, value: object) -> None:
    with pytest.raises(ValueError, match=key) as info:
        Settings.from_config({key: value})
    assert str(info.value).count(key) == 1
