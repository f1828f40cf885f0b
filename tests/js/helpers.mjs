// Shared by the client tests: a ProgressClient over the fake socket, on
// mocked timers and a clock the test moves.

import { sockets } from "./fake-socket.io.mjs";

/** Let pending promise chains run (setImmediate is not mocked). */
export const settle = () => new Promise((resolve) => setImmediate(resolve));

/** A snapshot as the server sends it. */
export const snap = (taskId, seq, state = "running", extra = {}) => ({
  task_id: taskId,
  kind: "simulate",
  state,
  seq,
  percent: state === "queued" ? 0 : 10 * seq,
  message: `step ${seq}`,
  ...extra,
});

/**
 * A connected client, its fake socket, `advance(ms)` moving the clock and the
 * timers together, and `seen(taskId)`: a watch collecting what it is handed.
 */
export async function connectedClient(t, ProgressClient, options = {}) {
  t.mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  let clock = 1000;
  const client = new ProgressClient({ now: () => clock, identityUrl: null, ...options });
  const socket = sockets.at(-1);
  client.open();
  socket.up();
  t.after(() => client.close());
  const advance = async (ms) => {
    clock += ms;
    t.mock.timers.tick(ms);
    await settle();
  };
  const seen = (taskId) => {
    const got = [];
    got.unwatch = client.watch(taskId, (snapshot) => got.push(snapshot));
    return got;
  };
  return { client, socket, advance, seen };
}
