"""Groups: one bar for a batch of parts, against the live web process and worker."""

from __future__ import annotations

from tests.stack import error_code, identity_cookie


def non_decreasing(values: list[float]) -> bool:
    return all(b >= a for a, b in zip(values, values[1:], strict=False))


def test_a_batch_has_one_bar_that_only_moves_forward(connect, cookie) -> None:
    client = connect(cookie)
    group = client.start("batch", parts=3, duration=1.5, seed=1)
    assert group["kind"] == "batch" and group["state"] == "queued"
    assert [c["state"] for c in group["children"]] == ["queued"] * 3
    final = client.wait_terminal(group["task_id"], timeout=20)
    assert final["state"] == "succeeded" and final["result"] == {"parts": 3}
    assert (final["current"], final["total"], final["percent"]) == (300, 300, 100)
    assert [c["state"] for c in final["children"]] == ["succeeded"] * 3
    pushes = client.pushes_for(group["task_id"])
    assert len(pushes) >= 5
    assert non_decreasing([p["percent"] or 0 for p in pushes])
    assert [p["seq"] for p in pushes] == sorted({p["seq"] for p in pushes})
    # Each part is a task of its own, reachable from the group; the list shows the group.
    part = client.call("subscribe", {"task_id": final["children"][0]["task_id"]})
    assert part["ok"] and part["task"]["kind"] == "simulate"
    assert part["task"]["state"] == "succeeded"
    assert [t["task_id"] for t in client.call("list")["tasks"]] == [group["task_id"]]


def test_a_failed_part_fails_the_batch_once_the_others_finish(connect, cookie) -> None:
    client = connect(cookie)
    group = client.start("batch", parts=3, duration=1, fail_at=30, seed=2)
    final = client.wait_terminal(group["task_id"], timeout=20)
    assert final["state"] == "failed"
    assert final["error"].startswith("1 of 3 parts failed; part 1: Simulated failure at")
    assert [c["state"] for c in final["children"]] == ["failed", "succeeded", "succeeded"]


def test_cancelling_a_batch_cancels_every_unfinished_part(connect, cookie) -> None:
    client = connect(cookie)
    group = client.start("batch", parts=3, duration=60, seed=3)
    client.wait_for(group["task_id"], lambda s: s["state"] == "running" and s["percent"] > 0)
    answer = client.call("cancel", {"task_id": group["task_id"]})
    assert answer["ok"] and answer["outcome"] == "requested"
    final = client.wait_terminal(group["task_id"], timeout=5)
    assert final["state"] == "cancelled"
    assert {c["state"] for c in final["children"]} == {"cancelled"}


def test_a_stranger_cannot_reach_a_part(connect, cookie, web) -> None:
    client = connect(cookie)
    group = client.start("batch", parts=2, duration=0.5)
    final = client.wait_terminal(group["task_id"], timeout=20)
    stranger = connect(identity_cookie(web))
    answer = stranger.call("subscribe", {"task_id": final["children"][1]["task_id"]})
    assert error_code(answer) == "not_found"
