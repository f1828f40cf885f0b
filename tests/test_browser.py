"""The page in real Chromium: START, a bar that fills, a reload that brings it back."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from tests.stack import Stack, page_errors, wait_until

# A page that dropped finished cards would do so on the final push: watching a
# few frames longer shows the card stays.
FINISHED_CARD_WATCH_MS = 300


@pytest.fixture
def page(browser: Browser, web: str) -> Iterator[Page]:
    context = browser.new_context(base_url=web)
    page = context.new_page()
    errors = page_errors(page)
    page.goto("/")
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")
    yield page
    context.close()
    assert errors == [], errors


def start(page: Page, kind: str, **params: object) -> str:
    """Fill the kind's form, press Start; the new card's task id."""
    form = page.locator(f"form.start-form[data-kind='{kind}']")
    for name, value in params.items():
        form.locator(f"[name='{name}']").fill(str(value))
    before = page.locator(".task-card").count()
    form.get_by_role("button", name="Start").click()
    expect(page.locator(".task-card")).to_have_count(before + 1)
    return page.locator(".task-card").first.get_attribute("data-task-id") or ""


def card(page: Page, task_id: str):
    return page.locator(f".task-card[data-task-id='{task_id}']")


def bar_value(page: Page, task_id: str) -> float:
    return float(card(page, task_id).locator("progress").evaluate("p => p.value"))


def test_start_and_watch_the_bar_reach_100(page: Page) -> None:
    task_id = start(page, "simulate", duration=3, seed=8)
    task = card(page, task_id)
    expect(task).to_have_attribute("data-state", "running", timeout=5000)
    # Mid-way: the bar has moved but is not full, and the text says so.
    page.wait_for_function(
        """id => { const p = document.querySelector(`.task-card[data-task-id='${id}'] progress`);
                   return p && p.value > 20 && p.value < 90; }""",
        arg=task_id,
        timeout=5000,
    )
    progress = task.locator("progress")
    assert 20 < float(progress.get_attribute("aria-valuenow") or 0) < 90
    expect(task).to_have_attribute("data-state", "succeeded", timeout=10000)
    expect(task.locator(".pb-percent")).to_have_text("100%")
    assert bar_value(page, task_id) == 100
    expect(progress).to_have_attribute("aria-valuenow", "100")
    expect(task.locator(".pb-result")).to_contain_text("steps")
    # The page's live region said so, in the bar's words.
    announced = re.compile(r"^Simulated job #\S{6} succeeded\.$")
    expect(page.locator("#announcer")).to_have_text(announced)
    # Finished bars stay until dismissed.
    page.wait_for_timeout(FINISHED_CARD_WATCH_MS)
    expect(task).to_be_visible()
    task.locator(".task-dismiss").click()
    expect(task).to_have_count(0)


def test_reload_mid_task_brings_the_bar_back_still_moving(page: Page) -> None:
    task_id = start(page, "simulate", duration=4, seed=3)
    page.wait_for_function(
        """id => { const p = document.querySelector(`.task-card[data-task-id='${id}'] progress`);
                   return p && p.value >= 15; }""",
        arg=task_id,
        timeout=5000,
    )
    before = bar_value(page, task_id)
    page.reload()
    task = card(page, task_id)
    expect(task).to_have_count(1, timeout=5000)
    expect(task).to_have_attribute("data-state", "running")
    assert bar_value(page, task_id) >= before
    expect(task).to_have_attribute("data-state", "succeeded", timeout=10000)
    expect(task.locator(".pb-percent")).to_have_text("100%")


def test_a_failed_task_shows_its_error(page: Page) -> None:
    task_id = start(page, "simulate", duration=1, fail_at=30, seed=1)
    task = card(page, task_id)
    expect(task).to_have_attribute("data-state", "failed", timeout=10000)
    expect(task.locator(".pb-error")).to_contain_text("Simulated failure at")
    expect(page.locator("#announcer")).to_contain_text("failed: Simulated failure at")
    assert bar_value(page, task_id) < 30


def test_primes_result_is_shown(page: Page) -> None:
    task_id = start(page, "primes", limit=1000000)
    task = card(page, task_id)
    expect(task).to_have_attribute("data-state", "succeeded", timeout=10000)
    expect(task.locator(".pb-result")).to_contain_text("78498")


def test_invalid_input_is_reported_next_to_the_form(page: Page) -> None:
    form = page.locator("form.start-form[data-kind='simulate']")
    # The browser's own validation is bypassed to see the server's answer.
    form.evaluate("f => f.noValidate = true")
    form.locator("[name='duration']").fill("99999")
    form.get_by_role("button", name="Start").click()
    expect(form.get_by_role("alert")).to_contain_text("duration")
    expect(page.locator(".task-card")).to_have_count(0)


def test_bars_resume_after_the_web_process_restarts(
    browser: Browser, stack: Stack, worker, web: str
) -> None:
    """The socket drops and comes back: every bar resubscribes, a running one
    moves on from where it was, and one that ended meanwhile shows how."""
    restarted = stack.start_web("web-restart")
    context = browser.new_context(base_url=stack.url("web-restart"))
    try:
        page = context.new_page()
        errors = page_errors(page)
        page.goto("/")
        status = page.locator("#connection-status")
        expect(status).to_have_attribute("data-state", "connected")
        running = start(page, "simulate", duration=12, seed=6)
        ending = start(page, "simulate", duration=1.5, seed=7)
        failing = start(page, "simulate", duration=1.5, fail_at=60, seed=8)
        for task_id in (running, ending, failing):
            expect(card(page, task_id)).to_have_attribute("data-state", "running", timeout=5000)

        restarted.stop()
        # Polling requests the server answered from now on (refused ones fail).
        polls: list[str] = []
        page.on(
            "requestfinished",
            lambda r: polls.append(r.url) if "transport=polling" in r.url else None,
        )
        expect(status).to_have_attribute("data-state", "disconnected", timeout=5000)
        # The other web process, on the same Redis, says when the short ones
        # have ended: they end while this page cannot hear it.
        cookies = {c["name"]: c["value"] for c in context.cookies()}
        for task_id in (ending, failing):
            wait_until(
                lambda task_id=task_id: (
                    requests.get(f"{web}/api/tasks/{task_id}", cookies=cookies, timeout=5).json()[
                        "task"
                    ]["state"]
                    in ("succeeded", "failed")
                ),
                15,
                f"task {task_id} ended",
            )
        seen_while_down = bar_value(page, running)
        assert card(page, ending).get_attribute("data-state") == "running"
        restarted = stack.start_web("web-restart")  # on the same port

        expect(status).to_have_attribute("data-state", "connected", timeout=15000)
        expect(card(page, ending)).to_have_attribute("data-state", "succeeded", timeout=10000)
        expect(card(page, ending).locator(".pb-percent")).to_have_text("100%")
        expect(card(page, failing)).to_have_attribute("data-state", "failed", timeout=10000)
        expect(card(page, failing).locator(".pb-error")).to_contain_text("Simulated failure")
        # Still running, and moving on from where it stood.
        page.wait_for_function(
            """([id, before]) => {
                 const card = document.querySelector(`.task-card[data-task-id='${id}']`);
                 return card.dataset.state === "running"
                   && card.querySelector("progress").value > before; }""",
            arg=[running, seen_while_down],
            timeout=10000,
        )
        task = card(page, running)
        expect(task).to_have_attribute("data-state", "succeeded", timeout=20000)
        expect(task.locator(".pb-percent")).to_have_text("100%")
        # Its websocket had worked: it came back on one, without polling's
        # handshake and upgrade (four requests to the server instead of one).
        assert polls == []
        # The browser logs each refused reconnect; the page itself threw nothing.
        assert [e for e in errors if "ERR_CONNECTION_REFUSED" not in e] == []
    finally:
        context.close()
        restarted.stop()


XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'


def test_html_from_a_task_shows_as_text_and_runs_nothing(page: Page) -> None:
    task_id = start(page, "simulate", duration=0.5, fail_at=50, seed=2, label=XSS)
    task = card(page, task_id)
    expect(task).to_have_attribute("data-state", "failed", timeout=10000)
    expect(task.locator(".pb-message")).to_contain_text(XSS)
    expect(task.locator(".pb-error")).to_contain_text(XSS + ": Simulated failure")
    assert task.locator("img, script").count() == 0
    assert page.evaluate("window.__xss") is None


def test_cancel_button_stops_a_running_task(page: Page) -> None:
    task_id = start(page, "simulate", duration=60, seed=4)
    task = card(page, task_id)
    expect(task).to_have_attribute("data-state", "running", timeout=5000)
    task.locator(".task-cancel").click()
    expect(task).to_have_attribute("data-state", "cancelled", timeout=3000)
    expect(task.locator(".pb-state")).to_have_text("cancelled")
    expect(task.locator(".task-cancel")).to_be_hidden()
    expect(task.locator(".task-dismiss")).to_be_visible()


def test_a_batch_shows_one_bar_with_a_small_bar_per_part(page: Page) -> None:
    task_id = start(page, "batch", parts=3, duration=1.5, seed=4)
    task = card(page, task_id)
    parts = task.locator(".task-children .task-child")
    expect(parts).to_have_count(3)
    expect(task).to_have_attribute("data-state", "succeeded", timeout=15000)
    expect(task.locator(".pb-percent")).to_have_text("100%")
    for index in range(3):
        expect(parts.nth(index)).to_have_attribute("data-state", "succeeded")
        expect(parts.nth(index)).to_contain_text(f"Part {index + 1}: succeeded")
