// ProgressClient against a fake socket: seq order, the start race,
// resubscribing, re-asking quiet tasks, lost on not_found.

import "./register.mjs";
import assert from "node:assert/strict";
import { test } from "node:test";
import { sockets } from "./fake-socket.io.mjs";
import { connectedClient, settle, snap } from "./helpers.mjs";

const { ProgressClient } = await import("../../progressbar/static/index.js");

const seqs = (snapshots) => snapshots.map((s) => s.seq);

/** A client whose server answers `start` with task `id` at seq 1. */
async function started(t, id = "a", options = {}) {
  const setup = await connectedClient(t, ProgressClient, options);
  setup.socket.server = (event) => (event === "start" ? { ok: true, task: snap(id, 1, "queued") } : undefined);
  const answer = await setup.client.start("simulate", { duration: 1 });
  assert.equal(answer.ok, true);
  return setup;
}

test("listeners get each task's snapshots in seq order, whatever brought them", async (t) => {
  const { client, socket, seen } = await started(t);
  const got = seen("a");
  await settle();
  socket.push(snap("a", 3));
  socket.push(snap("a", 2)); // late
  socket.push(snap("a", 3)); // again
  socket.server = () => ({ ok: true, tasks: [snap("a", 3), snap("b", 1, "succeeded")] });
  await client.list();
  socket.server = () => ({ ok: true, tasks: [snap("a", 4)] });
  await client.list();
  assert.deepEqual(seqs(got), [1, 3, 4]);
  // start answered with seq 1 and joined the room: no subscribe needed.
  assert.deepEqual(socket.sent("subscribe"), []);
});

test("pushes that beat the start ack reach a watch made after it", async (t) => {
  const { client, socket, seen } = await connectedClient(t, ProgressClient);
  const starting = client.start("simulate");
  assert.deepEqual(socket.sent("start"), [{ kind: "simulate" }]);
  socket.push(snap("a", 2));
  socket.push(snap("a", 3));
  socket.pending.shift().answer({ ok: true, task: snap("a", 1, "queued") });
  const answer = await starting;
  assert.equal(answer.task.seq, 3, "start answers with the newest snapshot known");
  const got = seen("a");
  assert.equal(got.length, 0, "handed over after watch() returns, not during");
  await settle();
  assert.deepEqual(seqs(got), [3]);
  assert.deepEqual(socket.sent("subscribe"), []);
});

test("every reconnect resubscribes the live watched tasks, then calls onConnect", async (t) => {
  const order = [];
  const { socket, seen } = await connectedClient(t, ProgressClient, {
    onConnect: () => order.push(`onConnect after ${sockets.at(-1).sent("subscribe").length} subscribes`),
  });
  socket.server = (event, { task_id }) =>
    event === "subscribe" ? { ok: true, task: snap(task_id, 2, task_id === "done" ? "succeeded" : "running") } : undefined;
  const live = seen("live");
  const done = seen("done");
  await settle();
  assert.deepEqual(socket.sent("subscribe").map((p) => p.task_id), ["live", "done"]);

  socket.drop();
  socket.push(snap("live", 3)); // the old socket's last words still count
  socket.server = (event, { task_id }) => (event === "subscribe" ? { ok: true, task: snap(task_id, 5) } : undefined);
  socket.up();
  await settle();
  assert.deepEqual(socket.sent("subscribe").map((p) => p.task_id), ["live", "done", "live"]);
  assert.deepEqual(order, ["onConnect after 0 subscribes", "onConnect after 3 subscribes"]);
  assert.deepEqual(seqs(live), [2, 3, 5]);
  assert.deepEqual(seqs(done), [2]);
});

test("a task the server no longer knows is delivered as lost, and not asked about again", async (t) => {
  const { socket, seen } = await started(t);
  const got = seen("a");
  socket.push(snap("a", 5, "running", { cancel_requested: true }));
  await settle();
  socket.drop();
  socket.server = (event) =>
    event === "subscribe" ? { ok: false, error: { code: "not_found", message: "No such task." } } : undefined;
  socket.up();
  await settle();
  const last = got.at(-1);
  assert.equal(last.state, "lost");
  assert.equal(last.error, "The server no longer knows this task.");
  assert.equal(last.seq, 6);
  assert.equal(last.message, "step 5", "the rest of the last snapshot is kept");
  assert.equal(last.cancel_requested, undefined);

  socket.drop();
  socket.up();
  await settle();
  assert.equal(socket.sent("subscribe").length, 1);
});

test("other refusals leave the bar as it was, to be asked again later", async (t) => {
  const { socket, seen } = await started(t);
  const got = seen("a");
  await settle();
  socket.drop();
  socket.server = (event) =>
    event === "subscribe" ? { ok: false, error: { code: "unavailable", message: "Redis is down." } } : undefined;
  socket.up();
  await settle();
  assert.deepEqual(got.map((s) => s.state), ["queued"]);
});

test("a live task that heard nothing for 30 s is asked again, once per quiet period", async (t) => {
  const { socket, advance, seen } = await started(t);
  seen("a");
  await settle();
  const asked = () => socket.sent("subscribe").length;

  await advance(29_000);
  assert.equal(asked(), 0);
  await advance(1_000);
  assert.equal(asked(), 1);
  await advance(29_000); // the question goes unanswered: one per period
  assert.equal(asked(), 1);
  await advance(1_000);
  assert.equal(asked(), 2);

  socket.push(snap("a", 2));
  await advance(29_500);
  assert.equal(asked(), 2, "a push resets the quiet period");

  socket.push(snap("a", 3, "succeeded"));
  await advance(120_000);
  assert.equal(asked(), 2, "a finished task is never asked again");
});

test("no re-ask while offline; the reconnect asks instead", async (t) => {
  const { socket, advance, seen } = await started(t);
  seen("a");
  socket.drop();
  await advance(60_000);
  assert.equal(socket.sent("subscribe").length, 0);
  socket.up();
  await settle();
  assert.equal(socket.sent("subscribe").length, 1);
});

test("a watch made offline subscribes once connected", async (t) => {
  const { client, socket } = await connectedClient(t, ProgressClient);
  socket.drop();
  const got = [];
  client.watch("x", (s) => got.push(s));
  await settle();
  assert.deepEqual(socket.emitted, []);
  socket.server = (event, { task_id }) => (event === "subscribe" ? { ok: true, task: snap(task_id, 7) } : undefined);
  socket.up();
  await settle();
  assert.deepEqual(socket.sent("subscribe"), [{ task_id: "x" }]);
  assert.deepEqual(seqs(got), [7]);
});

test("the last unwatch unsubscribes; watching again starts from the newest", async (t) => {
  const { client, socket, seen } = await started(t);
  const first = seen("a");
  const second = seen("a");
  await settle();
  first.unwatch();
  first.unwatch(); // twice is harmless
  socket.push(snap("a", 2));
  assert.deepEqual(socket.sent("unsubscribe"), []);
  second.unwatch();
  await settle();
  assert.deepEqual(socket.sent("unsubscribe"), [{ task_id: "a" }]);
  socket.push(snap("a", 3)); // still in the room until the server handled it
  assert.deepEqual(seqs(first), [1]);
  assert.deepEqual(seqs(second), [1, 2]);

  socket.server = (event) => (event === "subscribe" ? { ok: true, task: snap("a", 3) } : undefined);
  const again = [];
  client.watch("a", (s) => again.push(s));
  await settle();
  assert.deepEqual(socket.sent("subscribe"), [{ task_id: "a" }], "out of the room: subscribe");
  assert.deepEqual(seqs(again), [3]);
});

test("unwatching an ended task sends nothing: the server let its watchers go", async (t) => {
  const { client, socket, seen } = await started(t);
  const got = seen("a");
  await settle();
  socket.push(snap("a", 2, "succeeded"));
  got.unwatch();
  await settle();
  assert.deepEqual(socket.sent("unsubscribe"), []);
  assert.deepEqual(seqs(got), [1, 2]);
  // Known ended when watched again: neither subscribed nor unsubscribed.
  const again = [];
  const unwatch = client.watch("a", (s) => again.push(s));
  await settle();
  unwatch();
  await settle();
  assert.deepEqual(seqs(again), [2]);
  assert.deepEqual([socket.sent("subscribe"), socket.sent("unsubscribe")], [[], []]);
});

test("a requested cancel reaches watchers with a seq of its own, as cancel_requested", async (t) => {
  const { client, socket, seen } = await started(t);
  const got = seen("a");
  await settle();
  socket.push(snap("a", 4));
  socket.push(snap("a", 4, "running", { cancel_requested: true })); // a flag at the same seq is no news
  socket.server = (event) =>
    event === "cancel"
      ? { ok: true, outcome: "requested", message: "…", task: snap("a", 5, "running", { cancel_requested: true }) }
      : undefined;
  const answer = await client.cancel("a");
  assert.deepEqual(socket.sent("cancel"), [{ task_id: "a" }]);
  assert.equal(answer.outcome, "requested");
  assert.equal(answer.task.cancel_requested, true);
  socket.push(snap("a", 5)); // the same seq again (its push after the ack): nothing new
  await settle();
  assert.deepEqual(got.map((s) => [s.seq, s.cancel_requested === true]), [[1, false], [4, false], [5, true]]);
});

test("snapshots of unwatched tasks are kept for the 200 most recent only", async (t) => {
  const { client, socket } = await connectedClient(t, ProgressClient);
  for (let i = 0; i <= 200; i += 1) socket.push(snap(`t${i}`, 1, "succeeded"));
  const oldest = [];
  const newest = [];
  client.watch("t0", (s) => oldest.push(s));
  client.watch("t200", (s) => newest.push(s));
  await settle();
  assert.deepEqual(oldest, []);
  assert.deepEqual(socket.sent("subscribe"), [{ task_id: "t0" }], "forgotten: ask the server");
  assert.deepEqual(newest.map((s) => s.state), ["succeeded"]);
});

test("a listener that throws does not keep the others from their snapshot", async (t) => {
  const { client, socket } = await started(t);
  const thrown = [];
  // As in a browser, where it reaches the console and window's "error" event.
  globalThis.reportError = (error) => thrown.push(error.message);
  t.after(() => delete globalThis.reportError);
  client.watch("a", () => {
    throw new Error("broken listener");
  });
  const got = [];
  client.watch("a", (s) => got.push(s));
  await settle();
  socket.push(snap("a", 2));
  await settle();
  assert.deepEqual(seqs(got), [1, 2]);
  assert.deepEqual(thrown, ["broken listener", "broken listener"]);
});
