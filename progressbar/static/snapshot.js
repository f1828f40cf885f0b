// What a task's SNAPSHOT means: whether it has ended, what its bar shows, and
// which of two snapshots is newer. Pure functions, no DOM.

/**
 * A task's state as the server describes it (README, "The protocol").
 * @typedef {object} Snapshot
 * @property {string} task_id
 * @property {string} kind
 * @property {string} state queued, running, succeeded, failed, cancelled or lost
 * @property {number} seq grows with every new state of the task
 * @property {number | null} percent 0–100, null while the total is unknown
 * @property {string} [message]
 * @property {string} [error] when failed or lost
 * @property {any} [result] when succeeded
 * @property {true} [cancel_requested] a running task asked to stop
 */

/** A finite number: what a figure must be to count (NaN and Infinity do not). */
export const isNumber = (value) => typeof value === "number" && Number.isFinite(value);

/** States after which a task never changes again. */
export const TERMINAL_STATES = Object.freeze(["succeeded", "failed", "cancelled", "lost"]);

/**
 * @param {string | undefined} state
 * @returns {boolean}
 */
export function isTerminal(state) {
  return TERMINAL_STATES.includes(state);
}

/**
 * True while a live task was asked to stop and has not yet: it stops at its
 * next report. A bar says "cancelling…".
 * @param {Snapshot} snapshot
 * @returns {boolean}
 */
export function isCancelling(snapshot) {
  return !isTerminal(snapshot.state) && snapshot.cancel_requested === true;
}

/**
 * The bar's value, 0–100, or null for an indeterminate bar. Full when the
 * task succeeded whatever the last count said; empty rather than animated
 * when it ended without ever knowing its total.
 * @param {Snapshot} snapshot
 * @returns {number | null}
 */
export function barValue(snapshot) {
  if (snapshot.state === "succeeded") return 100;
  if (isNumber(snapshot.percent)) return Math.min(100, Math.max(0, snapshot.percent));
  return isTerminal(snapshot.state) ? 0 : null;
}

/**
 * True if `candidate` should replace `shown` (null: nothing shown yet): a
 * higher seq. Every change of a task's record, a requested cancel included,
 * has a seq of its own, so an equal seq is never news.
 * @param {Snapshot} candidate
 * @param {Snapshot | null | undefined} shown
 * @returns {boolean}
 */
export function isNewer(candidate, shown) {
  return !shown || candidate.seq > shown.seq;
}

/**
 * Does `value` look like a snapshot this client can order?
 * @param {unknown} value
 * @returns {value is Snapshot}
 */
export function isSnapshot(value) {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof value.task_id === "string" &&
    typeof value.state === "string" &&
    isNumber(value.seq)
  );
}

/**
 * A `lost` snapshot for a task the server no longer knows, built from the
 * last one shown (if any), one seq above it: nothing newer will ever come.
 * @param {string} taskId
 * @param {Snapshot | null} last
 * @param {string} error
 * @returns {Snapshot}
 */
export function lostSnapshot(taskId, last, error) {
  const blank = {
    kind: null, current: 0, total: null, percent: null, message: "", rate: null,
    elapsed: 0, seq: 0, created_at: null, updated_at: Date.now() / 1000,
  };
  const { cancel_requested: _, ...kept } = last ?? blank;
  return { ...kept, task_id: taskId, state: "lost", eta: null, error, seq: kept.seq + 1 };
}
