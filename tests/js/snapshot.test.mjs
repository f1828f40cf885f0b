// The pure functions: what a bar shows, which snapshot is newer, and how
// figures read.

import assert from "node:assert/strict";
import { test } from "node:test";
import {
  barValue, isCancelling, isNewer, isNumber, isSnapshot, isTerminal, lostSnapshot,
} from "../../progressbar/static/snapshot.js";
import * as format from "../../progressbar/static/format.js";

test("the bar: full on success, indeterminate while live without a total, empty if it ended without one", () => {
  assert.equal(barValue({ state: "succeeded", percent: 40 }), 100);
  assert.equal(barValue({ state: "running", percent: 42.7 }), 42.7);
  assert.equal(barValue({ state: "running", percent: null }), null);
  assert.equal(barValue({ state: "queued", percent: null }), null);
  assert.equal(barValue({ state: "failed", percent: null }), 0);
  assert.equal(barValue({ state: "lost" }), 0);
  assert.equal(barValue({ state: "running", percent: 130 }), 100);
});

test("terminal states", () => {
  for (const state of ["succeeded", "failed", "cancelled", "lost"]) assert.ok(isTerminal(state), state);
  for (const state of ["queued", "running", undefined]) assert.ok(!isTerminal(state), state);
});

test("cancelling: a live task asked to stop, until it has ended", () => {
  assert.ok(isCancelling({ state: "running", cancel_requested: true }));
  assert.ok(isCancelling({ state: "queued", cancel_requested: true }));
  assert.ok(!isCancelling({ state: "running" }));
  assert.ok(!isCancelling({ state: "cancelled", cancel_requested: true }));
});

test("numbers: finite ones only; format still exports the same function", () => {
  assert.ok(isNumber(0) && isNumber(-2.5));
  for (const bad of [NaN, Infinity, "3", null, undefined]) assert.ok(!isNumber(bad), String(bad));
  assert.equal(format.isNumber, isNumber);
});

test("newer: a higher seq, and nothing else", () => {
  const shown = { task_id: "a", state: "running", seq: 4 };
  assert.ok(isNewer(shown, null));
  assert.ok(isNewer({ ...shown, seq: 5 }, shown));
  assert.ok(!isNewer({ ...shown, seq: 3 }, shown));
  assert.ok(!isNewer({ ...shown }, shown));
  // A requested cancel comes with a seq of its own: at the same seq it is not news.
  assert.ok(!isNewer({ ...shown, cancel_requested: true }, shown));
  assert.ok(isNewer({ ...shown, seq: 5, cancel_requested: true }, shown));
  assert.ok(!isNewer(shown, { ...shown, cancel_requested: true }));
});

test("only well-formed snapshots are taken", () => {
  assert.ok(isSnapshot({ task_id: "a", state: "queued", seq: 1 }));
  for (const bad of [null, "a", { task_id: "a", state: "queued" }, { task_id: 1, state: "queued", seq: 1 }]) {
    assert.ok(!isSnapshot(bad), JSON.stringify(bad));
  }
});

test("a lost snapshot without a previous one is still complete", () => {
  const lost = lostSnapshot("a", null, "Gone.");
  assert.equal(lost.task_id, "a");
  assert.equal(lost.state, "lost");
  assert.equal(lost.seq, 1);
  assert.equal(lost.percent, null);
  assert.equal(barValue(lost), 0);
});

test("figures", () => {
  assert.equal(format.percent(99.9), "99%");
  assert.equal(format.percent(null), "—");
  assert.equal(format.duration(65), "1m 05s");
  assert.equal(format.duration(7380), "2h 03m");
  assert.equal(format.finalDuration(2.345), "2.3s");
  assert.equal(format.result({ steps: 3 }), '{"steps":3}');
  assert.equal(format.result(78498), "78498");
});
