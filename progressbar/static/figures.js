// The figures a bar can show beside its percent, and what each reads for a
// snapshot. Pure functions, no DOM.

import * as format from "./format.js";
import { isNumber, isTerminal } from "./snapshot.js";

const DASH = "—";

/** Has the task counted anything yet? A count of 0 with no total says nothing. */
function counted(s) {
  return isNumber(s.total) || (isNumber(s.current) && s.current > 0);
}

/**
 * Each figure's name, its caption, and its text for snapshot `s` shown
 * `since` seconds ago: a live task's ETA counts down and its elapsed time
 * runs on between pushes, by the local clock (the server's may not agree).
 */
export const FIGURES = Object.freeze({
  count: {
    caption: "Done",
    text: (s) => (counted(s) ? format.count(s.current, s.total) : ""),
  },
  rate: {
    caption: "Rate",
    text: (s) => format.rate(s.rate),
  },
  eta: {
    caption: "ETA",
    text: (s, since) =>
      s.state === "running" && isNumber(s.eta) ? format.duration(Math.max(0, s.eta - since), Math.ceil) : DASH,
    ticks: true,
  },
  elapsed: {
    caption: "Elapsed",
    text: (s, since) => {
      if (isTerminal(s.state)) return format.finalDuration(s.elapsed);
      const running = s.state === "running" && isNumber(s.elapsed);
      return format.duration(running ? s.elapsed + since : s.elapsed, Math.floor);
    },
    ticks: true,
  },
});

/**
 * What figure `name` reads for `snapshot`, `since` seconds after it arrived.
 * @param {keyof typeof FIGURES} name
 * @param {import("./snapshot.js").Snapshot} snapshot
 * @param {number} [since]
 * @returns {string}
 */
export function figureText(name, snapshot, since = 0) {
  return FIGURES[name].text(snapshot, since);
}
