// One task's bar, rendered into an element the host page provides. Task data
// is only ever set as text.

import * as format from "./format.js";
import { FIGURES } from "./figures.js";
import { barValue, isCancelling, isTerminal } from "./snapshot.js";

let bars = 0;

function make(document, tag, name) {
  const element = document.createElement(tag);
  element.className = `pb-${name}`;
  return element;
}

// A clock-driven refresh rewrites the same text every second: touch the DOM
// only on a change.
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

// Visually hidden, inline so it holds without the stylesheet (CSSOM, not a
// style attribute: a strict CSP allows it).
function hide(element) {
  Object.assign(element.style, {
    position: "absolute", width: "1px", height: "1px", margin: "-1px", padding: "0",
    overflow: "hidden", clip: "rect(0 0 0 0)", whiteSpace: "nowrap", border: "0",
  });
}

/**
 * Set a `<progress>` to `value` (0–100) with its `aria-valuenow`, or make it
 * indeterminate for `null` (a running task with no total yet).
 * @param {HTMLProgressElement} bar
 * @param {number | null} value
 */
export function setBarValue(bar, value) {
  if (value === null) {
    bar.removeAttribute("value");
    bar.removeAttribute("aria-valuenow");
  } else {
    bar.value = value;
    bar.setAttribute("aria-valuenow", String(Math.floor(value)));
  }
}

export class ProgressBar {
  /**
   * Replace `element`'s content with a bar, `<div class="pb">` (`root`):
   * a label and the state, a native `<progress>`, the percent and the
   * task's message, the figures asked for, its result or error, and a polite
   * live region that announces each new state. Once rendered, `root` carries
   * `data-state`. Every part is in `parts`, by name, for a host page to
   * style, move or add to; the bar keeps updating the parts wherever they are.
   * @param {HTMLElement} element
   * @param {object} [options]
   * @param {string | Node} [options.label] the bar's accessible name, shown
   *   above it; a node (e.g. a fragment of styled spans) shows as given and
   *   its text is what the live region says
   * @param {Array<keyof typeof FIGURES>} [options.figures] any of "count"
   *   (beside the message), "rate", "eta", "elapsed" (a `<dl>` below it)
   * @param {HTMLElement} [options.announcer] a polite live region already in
   *   the page to announce into, instead of one of the bar's own: a bar added
   *   after load (a list of tasks) is heard only through a region that was
   *   there before its text changed
   * @param {() => number} [options.now] a monotonic clock in ms (tests)
   */
  constructor(element, { label = "Task", figures = [], announcer, now = () => performance.now() } = {}) {
    for (const name of figures) {
      if (!Object.hasOwn(FIGURES, name)) throw new TypeError(`ProgressBar: no figure called ${JSON.stringify(name)}`);
    }
    const doc = element.ownerDocument;
    const part = (tag, name) => make(doc, tag, name);
    /** @type {HTMLDivElement} */
    this.root = doc.createElement("div");
    this.root.className = "pb";
    this.label = typeof label === "string" ? label : label.textContent ?? "";
    this.now = now;
    /** @type {import("./snapshot.js").Snapshot | null} the last one rendered */
    this.snapshot = null;
    this.renderedAt = 0;
    this.announced = null;

    const parts = {};
    parts.head = part("div", "head");
    parts.label = part("span", "label");
    parts.label.id = `pb-label-${++bars}`; // from a counter, never from task data
    parts.label.append(label);
    parts.state = part("span", "state");
    parts.head.append(parts.label, " ", parts.state);

    parts.bar = part("progress", "bar");
    parts.bar.max = 100;
    parts.bar.setAttribute("role", "progressbar");
    parts.bar.setAttribute("aria-valuemin", "0");
    parts.bar.setAttribute("aria-valuemax", "100");
    parts.bar.setAttribute("aria-labelledby", parts.label.id);
    parts.bar.removeAttribute("value");

    parts.figures = part("div", "figures");
    parts.percent = part("span", "percent");
    parts.message = part("span", "message");
    parts.figures.append(parts.percent, " ", parts.message);
    this.root.append(parts.head, parts.bar, parts.figures);

    this.shown = figures.filter((name, i) => figures.indexOf(name) === i);
    for (const name of this.shown) parts[name] = part(name === "count" ? "span" : "dd", name);
    if (parts.count) parts.figures.append(" ", parts.count);
    const stats = this.shown.filter((name) => name !== "count");
    if (stats.length) {
      parts.stats = part("dl", "stats");
      for (const name of stats) {
        const stat = part("div", "stat");
        const caption = doc.createElement("dt");
        caption.textContent = FIGURES[name].caption;
        stat.append(caption, parts[name]);
        parts.stats.append(stat);
      }
      this.root.append(parts.stats);
    }

    parts.result = part("p", "result");
    parts.error = part("p", "error");
    parts.result.hidden = parts.error.hidden = true;
    this.root.append(parts.result, parts.error);

    if (announcer) {
      this.announcer = announcer;
    } else {
      parts.live = part("p", "live");
      parts.live.setAttribute("aria-live", "polite");
      hide(parts.live);
      this.root.append(parts.live);
      this.announcer = parts.live;
    }
    /** The bar's elements by name: head, label, state, bar, figures, percent,
     * message, result, error, live (unless `announcer`), and one per figure
     * asked for (with `stats`, the `<dl>` of rate, eta and elapsed). */
    this.parts = Object.freeze(parts);
    element.replaceChildren(this.root);
  }

  /**
   * Show `snapshot`. Ordering is the caller's: `ProgressClient.watch` only
   * hands over newer snapshots.
   * @param {import("./snapshot.js").Snapshot} snapshot
   * @param {object} [options]
   * @param {boolean} [options.announce] false to show a state without
   *   saying it (a task restored after a reload is not news); later
   *   renders announce only a state different from it
   */
  render(snapshot, { announce = true } = {}) {
    const s = snapshot;
    const { parts } = this;
    this.snapshot = s;
    this.renderedAt = this.now();
    const stateText = isCancelling(s) ? "cancelling…" : String(s.state);
    this.root.dataset.state = s.state;
    parts.state.textContent = stateText;

    const value = barValue(s);
    setBarValue(parts.bar, value);
    parts.percent.textContent = format.percent(value);
    parts.message.textContent = typeof s.message === "string" ? s.message : "";
    this.tick();

    const resultText = s.state === "succeeded" ? format.result(s.result) : "";
    parts.result.textContent = resultText;
    parts.result.hidden = resultText === "";
    const errorText = typeof s.error === "string" ? s.error : "";
    parts.error.textContent = errorText;
    parts.error.hidden = errorText === "";

    if (stateText !== this.announced) {
      this.announced = stateText;
      const detail = errorText && isTerminal(s.state) ? `: ${errorText}` : "";
      if (announce) this.announcer.textContent = `${this.label} ${stateText}${detail}.`;
    }
  }

  /**
   * Bring the figures up to the clock: a live task's elapsed time runs on
   * and its ETA counts down between snapshots. Call it every second or so
   * when showing "eta" or "elapsed"; `render` calls it too.
   */
  tick() {
    if (!this.snapshot) return;
    const since = this.age();
    for (const name of this.shown) setText(this.parts[name], FIGURES[name].text(this.snapshot, since));
  }

  /** Seconds since the last `render`, by the bar's clock; null before the first. */
  age() {
    return this.snapshot ? (this.now() - this.renderedAt) / 1000 : null;
  }
}
