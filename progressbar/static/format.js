// How numbers and durations read next to a bar. Pure functions, no DOM.

import { isNumber } from "./snapshot.js";

// Also here, where it was first exported: host pages import it as format.isNumber.
export { isNumber };

const DASH = "—";

const exact = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });
const compact = new Intl.NumberFormat(undefined, {
  notation: "compact",
  maximumSignificantDigits: 3,
});

/** "42%"; floored so a bar never claims 100% before the task has finished. */
export function percent(value) {
  return isNumber(value) ? `${Math.floor(value)}%` : DASH;
}

/** "420 / 1,000", or just "420" while the total is unknown. */
export function count(current, total) {
  if (!isNumber(current)) return "";
  return isNumber(total) ? `${exact.format(current)} / ${exact.format(total)}` : exact.format(current);
}

/** Units per second, compact so a sieve's millions stay short: "3.4/s", "1.2M/s". */
export function rate(value) {
  return isNumber(value) ? `${compact.format(value)}/s` : DASH;
}

/** "5s", "1m 05s", "2h 03m". `round` lets an ETA round up and elapsed round down. */
export function duration(seconds, round = Math.round) {
  if (!isNumber(seconds)) return DASH;
  let s = Math.max(0, round(seconds));
  if (s < 60) return `${s}s`;
  let m = Math.floor(s / 60);
  s %= 60;
  if (m < 60) return `${m}m ${String(s).padStart(2, "0")}s`;
  const h = Math.floor(m / 60);
  m %= 60;
  return `${h}h ${String(m).padStart(2, "0")}m`;
}

/** A finished task's duration: tenths while short, where whole seconds say little. */
export function finalDuration(seconds) {
  if (isNumber(seconds) && seconds < 10) return `${Math.max(0, seconds).toFixed(1)}s`;
  return duration(seconds);
}

/** A task result as text: JSON for objects and arrays, as-is for the rest. */
export function result(value) {
  if (value === undefined || value === null) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

/** Wall-clock time of an epoch-seconds timestamp, for finished cards. */
export function clockTime(epochSeconds) {
  if (!isNumber(epochSeconds)) return "";
  return new Date(epochSeconds * 1000).toLocaleTimeString(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}
