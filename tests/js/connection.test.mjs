// Connection against a fake socket: its options, one answer shape for every
// failure, and a retry after the server refused or dropped us.

import "./register.mjs";
import assert from "node:assert/strict";
import { test } from "node:test";
import { sockets } from "./fake-socket.io.mjs";
import { settle } from "./helpers.mjs";

const { Connection, errorMessage } = await import("../../progressbar/static/index.js");

function connection(t, options = {}) {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const statuses = [];
  // Asking for the identity cookie has tests of its own, below.
  const conn = new Connection({ onStatus: (s) => statuses.push(s), identityUrl: null, ...options });
  return { conn, socket: sockets.at(-1), statuses };
}

test("defaults: the page's origin, /progress, polling then websocket, not connected yet", (t) => {
  const { socket } = connection(t);
  assert.equal(socket.uri, "/progress");
  assert.deepEqual(socket.options.transports, ["polling", "websocket"]);
  assert.equal(socket.options.autoConnect, false);
  assert.equal(socket.connects, 0);
});

test("url, namespace, path and transports are the caller's", (t) => {
  const { socket } = connection(t, {
    url: "https://tasks.example/",
    namespace: "/jobs",
    path: "/app/socket.io",
    transports: ["websocket"],
  });
  assert.equal(socket.uri, "https://tasks.example/jobs");
  assert.equal(socket.options.path, "/app/socket.io");
  assert.deepEqual(socket.options.transports, ["websocket"]);
});

test("a request while offline is refused at once, and nothing is sent", async (t) => {
  const { conn, socket } = connection(t);
  const answer = await conn.request("start", { kind: "simulate" });
  assert.equal(answer.ok, false);
  assert.equal(answer.error.code, "offline");
  assert.deepEqual(socket.emitted, []);
});

test("the server's answer comes back as is; an unreadable one becomes invalid", async (t) => {
  const { conn, socket } = connection(t);
  conn.open();
  socket.up();
  socket.server = (event) => (event === "list" ? { ok: true, tasks: [] } : "nonsense");
  assert.deepEqual(await conn.request("list"), { ok: true, tasks: [] });
  assert.deepEqual(socket.emitted, [["list", {}]]);
  const bad = await conn.request("start", { kind: "x" });
  assert.equal(bad.error.code, "invalid");
});

test("no answer within 5 s is a timeout answer, never a rejection", async (t) => {
  const { conn, socket } = connection(t);
  conn.open();
  socket.up();
  let answer;
  conn.request("subscribe", { task_id: "a" }).then((a) => (answer = a));
  t.mock.timers.tick(4999);
  await settle();
  assert.equal(answer, undefined);
  t.mock.timers.tick(1);
  await settle();
  assert.equal(answer.error.code, "timeout");
  assert.match(errorMessage(answer), /did not answer in time/);
  assert.equal(errorMessage({ ok: false }), "Something went wrong. Try again.");
});

test("after the server drops us, it connects again 5 s later; close() stops that", (t) => {
  const { conn, socket, statuses } = connection(t);
  conn.open();
  socket.up();
  socket.drop("io server disconnect");
  assert.equal(socket.connects, 1);
  t.mock.timers.tick(5000);
  assert.equal(socket.connects, 2);

  socket.up();
  socket.drop("io server disconnect");
  conn.close();
  t.mock.timers.tick(10_000);
  assert.equal(socket.connects, 2);
  assert.deepEqual(statuses, ["connected", "reconnecting", "connected", "reconnecting"]);
});

test("a refused connection is retried when socket.io gave up", (t) => {
  const { conn, socket, statuses } = connection(t);
  conn.open();
  socket.active = false; // socket.io does not retry a refusal by itself
  socket.fire("connect_error", new Error("refused"));
  t.mock.timers.tick(5000);
  assert.equal(socket.connects, 2);
  assert.deepEqual(statuses, ["reconnecting"]);
});

test("a refusal for want of an identity is reported and not retried", (t) => {
  const { conn, socket, statuses } = connection(t);
  conn.open();
  socket.active = false;
  const refusal = Object.assign(new Error("sign in"), { data: { code: "unauthorized" } });
  socket.fire("connect_error", refusal);
  t.mock.timers.tick(60000);
  assert.equal(socket.connects, 1);
  assert.deepEqual(statuses, ["unauthorized"]);
});

test("the identity is asked of the server beside the modules, or of the given origin", () => {
  assert.match(new Connection().identityUrl, /\/progressbar\/identity$/);
  assert.equal(
    new Connection({ url: "https://tasks.example/" }).identityUrl,
    "https://tasks.example/progressbar/identity",
  );
});

test("it asks for the identity cookie before its first connect, once; a failure does not stop it", async (t) => {
  const asked = [];
  let answer = Promise.resolve({ status: 204 });
  t.mock.method(globalThis, "fetch", (url, options) => {
    asked.push([url, options.credentials]);
    return answer;
  });
  const conn = new Connection({ identityUrl: "/progressbar/identity" });
  const socket = sockets.at(-1);
  conn.open();
  assert.equal(socket.connects, 0); // not before the cookie is there
  await settle();
  assert.equal(socket.connects, 1);
  assert.deepEqual(asked, [["/progressbar/identity", "include"]]);
  conn.close();
  conn.open();
  assert.equal(socket.connects, 2);
  assert.equal(asked.length, 1);

  answer = Promise.reject(new TypeError("offline"));
  const unlucky = new Connection({ identityUrl: "/progressbar/identity" });
  const other = sockets.at(-1);
  unlucky.open();
  await settle();
  assert.equal(other.connects, 1);
  unlucky.close();
});

test("a request made while the page is still connecting waits for the connection", async (t) => {
  const { conn, socket } = connection(t);
  socket.server = () => ({ ok: true, tasks: [] });
  conn.open();
  const pending = conn.request("list");
  await settle();
  assert.deepEqual(socket.emitted, []); // held, not refused
  socket.up();
  assert.deepEqual(await pending, { ok: true, tasks: [] });
});

test("it waits 5 s at most for the first connection, then answers offline", async (t) => {
  const { conn } = connection(t);
  conn.open();
  const pending = conn.request("start", { kind: "simulate" });
  await settle();
  t.mock.timers.tick(5000);
  const answer = await pending;
  assert.equal(answer.error.code, "offline");
});

test("once a websocket has worked, reconnects try it first, polling still behind it", (t) => {
  const { socket } = connection(t);
  assert.equal(socket.options.tryAllTransports, true);
  socket.io.open();
  assert.deepEqual(socket.io.opts.transports, ["polling", "websocket"]);
  socket.io.upgrade();
  assert.deepEqual(socket.io.opts.transports, ["websocket", "polling"]);
  socket.io.open();
  assert.equal(socket.io.engine.transport.name, "websocket");
});

test("a page served websocket only stays so", (t) => {
  const { socket } = connection(t, { transports: ["websocket"] });
  socket.io.open();
  assert.deepEqual(socket.io.opts.transports, ["websocket"]);
});
