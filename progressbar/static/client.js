// What a host page talks to: start, cancel, list and watch tasks. Every
// snapshot, whatever brought it (a push, an ack, a list), passes through one
// place that keeps each task's newest, and no watched bar is left frozen.

import { Connection } from "./connection.js";
import { isNewer, isSnapshot, isTerminal, lostSnapshot } from "./snapshot.js";

// A live watched task that heard nothing for this long is asked again:
// pub/sub delivers at most once, and a bar must never sit frozen on a lost push.
const QUIET_AFTER_MS = 30000;
const CHECK_EVERY_MS = 1000;
// Pushes for tasks nobody watches yet (a fast worker beats the `start` ack).
const RECENT_LIMIT = 200;
const GONE = "The server no longer knows this task.";

/** @typedef {import("./snapshot.js").Snapshot} Snapshot */
/** @typedef {import("./connection.js").Answer} Answer */

function notify(listener, snapshot) {
  try {
    listener(snapshot);
  } catch (error) {
    // One broken listener must not starve the others; still report it, as
    // an uncaught error would be (the console, window's "error" event).
    if (typeof reportError === "function") reportError(error);
    else queueMicrotask(() => {
      throw error;
    });
  }
}

export class ProgressClient {
  /**
   * Call `open()` to connect.
   * @param {object} [options] also `url`, `namespace`, `path`, `transports`
   *   and `onStatus`, passed to the `Connection` it creates
   * @param {() => void} [options.onConnect] after every (re)connect, once
   *   the watched tasks were resubscribed: a place to `list()` again
   * @param {Connection} [options.connection] use this one instead
   * @param {() => number} [options.now] a monotonic clock in ms (tests)
   */
  constructor({ onConnect = () => {}, connection, now = () => performance.now(), ...connectionOptions } = {}) {
    this.connection = connection ?? new Connection(connectionOptions);
    this.onConnect = onConnect;
    this.now = now;
    /** @type {Map<string, {listeners: Set<Function>, snapshot: Snapshot | null, heardAt: number}>} */
    this.watches = new Map();
    /** @type {Map<string, Snapshot>} newest of unwatched tasks, oldest first */
    this.recent = new Map();
    // Tasks whose room this socket is in; the server forgets them on reconnect.
    this.joined = new Set();
    // The quiet-task check, running between open() and close().
    this.timer = undefined;
    this.connection.on("connect", () => this.#connected());
    this.connection.on("progress", (snapshot) => this.#receive(snapshot));
  }

  /** Connect, and keep asking quiet tasks again until `close()`. */
  open() {
    this.timer ??= setInterval(() => this.#askQuiet(), CHECK_EVERY_MS);
    this.connection.open();
  }

  /** Disconnect for good and stop every timer. */
  close() {
    clearInterval(this.timer);
    this.timer = undefined;
    this.connection.close();
  }

  /** @returns {boolean} */
  get connected() {
    return this.connection.connected;
  }

  /**
   * Start a task of `kind`; on success `task` is its newest snapshot and
   * this client already receives its pushes.
   * @param {string} kind
   * @param {object} [params]
   * @returns {Promise<Answer>} `{ok: true, task}` or an error answer
   */
  async start(kind, params) {
    const answer = await this.connection.request("start", params === undefined ? { kind } : { kind, params });
    if (answer.ok && isSnapshot(answer.task)) this.joined.add(answer.task.task_id);
    return this.#take(answer);
  }

  /**
   * Ask to cancel a task. `outcome`: "cancelled" (it was queued), "requested"
   * (it stops at its next report; watchers get it with `cancel_requested`)
   * or "finished" (it had already ended).
   * @param {string} taskId
   * @returns {Promise<Answer>} `{ok: true, task, outcome, message}` or an error answer
   */
  async cancel(taskId) {
    return this.#take(await this.connection.request("cancel", { task_id: taskId }));
  }

  /**
   * This identity's tasks, newest first; watched ones also reach their listeners.
   * @returns {Promise<Answer>} `{ok: true, tasks}` or an error answer
   */
  async list() {
    const answer = await this.connection.request("list", {});
    if (!answer.ok) return answer;
    const tasks = (Array.isArray(answer.tasks) ? answer.tasks : []).filter(isSnapshot);
    for (const snapshot of tasks) this.#receive(snapshot);
    return { ...answer, tasks: tasks.map((snapshot) => this.#newest(snapshot)) };
  }

  /**
   * Call `listener(snapshot)` with the task's newest snapshot known (soon
   * after this returns, if there is one) and then with each newer one, in
   * seq order, until the task has ended. Subscribes as needed, again after
   * every reconnect; a task the server no longer knows ends `lost`.
   * @param {string} taskId
   * @param {(snapshot: Snapshot) => void} listener
   * @returns {() => void} stops this listener; the last one out unsubscribes
   */
  watch(taskId, listener) {
    let watch = this.watches.get(taskId);
    if (!watch) {
      watch = { listeners: new Set(), snapshot: this.recent.get(taskId) ?? null, heardAt: this.now() };
      this.recent.delete(taskId);
      this.watches.set(taskId, watch);
      if (!this.joined.has(taskId) && !this.#ended(watch) && this.connected) this.#subscribe(taskId);
    }
    watch.listeners.add(listener);
    const known = watch.snapshot;
    // Not synchronously: the caller may not hold the unwatch function yet.
    if (known) {
      queueMicrotask(() => {
        if (watch.listeners.has(listener) && watch.snapshot === known) notify(listener, known);
      });
    }
    return () => {
      if (!watch.listeners.delete(listener) || watch.listeners.size > 0) return;
      this.watches.delete(taskId);
      this.joined.delete(taskId);
      if (watch.snapshot) this.#remember(watch.snapshot);
      // Best effort: leaving the room only saves pushes nobody listens to.
      // An ended task has none to come, and the server let its watchers go.
      if (this.connected && !this.#ended(watch)) this.connection.request("unsubscribe", { task_id: taskId });
    };
  }

  #connected() {
    this.joined.clear();
    for (const [taskId, watch] of this.watches) {
      if (!this.#ended(watch)) this.#subscribe(taskId);
    }
    // The subscribes are on the wire already: the server handles them first.
    this.onConnect();
  }

  async #subscribe(taskId) {
    const watch = this.watches.get(taskId);
    if (watch) watch.heardAt = this.now(); // one question per quiet period
    const answer = await this.connection.request("subscribe", { task_id: taskId });
    if (answer.ok) {
      if (this.watches.has(taskId)) this.joined.add(taskId);
      this.#receive(answer.task);
    } else if (answer.error?.code === "not_found") {
      const gone = this.watches.get(taskId);
      if (gone && !this.#ended(gone)) this.#deliver(gone, lostSnapshot(taskId, gone.snapshot, GONE));
    }
    // Anything else (offline, timeout) is asked again on the next connect
    // or after the next quiet period.
  }

  #askQuiet() {
    if (!this.connected) return;
    const now = this.now();
    for (const [taskId, watch] of this.watches) {
      if (!this.#ended(watch) && now - watch.heardAt >= QUIET_AFTER_MS) this.#subscribe(taskId);
    }
  }

  /** The one door every snapshot comes through. */
  #receive(snapshot) {
    if (!isSnapshot(snapshot)) return;
    const watch = this.watches.get(snapshot.task_id);
    if (watch) this.#deliver(watch, snapshot);
    else if (isNewer(snapshot, this.recent.get(snapshot.task_id))) this.#remember(snapshot);
  }

  #deliver(watch, snapshot) {
    if (!isNewer(snapshot, watch.snapshot)) return;
    watch.snapshot = snapshot;
    watch.heardAt = this.now();
    for (const listener of [...watch.listeners]) notify(listener, snapshot);
  }

  #remember(snapshot) {
    this.recent.delete(snapshot.task_id);
    this.recent.set(snapshot.task_id, snapshot);
    if (this.recent.size > RECENT_LIMIT) this.recent.delete(this.recent.keys().next().value);
  }

  /** An answer carrying `task`, with the newest snapshot known in its place. */
  #take(answer) {
    if (!answer.ok || !isSnapshot(answer.task)) return answer;
    this.#receive(answer.task);
    return { ...answer, task: this.#newest(answer.task) };
  }

  #newest(snapshot) {
    const id = snapshot.task_id;
    const known = this.watches.get(id)?.snapshot ?? this.recent.get(id);
    return known && isNewer(known, snapshot) ? known : snapshot;
  }

  #ended(watch) {
    return watch.snapshot !== null && isTerminal(watch.snapshot.state);
  }
}
