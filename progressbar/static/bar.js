// One task's bar, rendered into an element the host page provides. Task data
// is only ever set as text.

import * as format from "./format.js";
import { barValue, isCancelling, isTerminal } from "./snapshot.js";

let bars = 0;

function part(document, tag, name) {
  const element = document.createElement(tag);
  element.className = `pb-${name}`;
  return element;
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
   * task's message, its result or error, and a polite live region that
   * announces each new state. Once rendered, `root` carries `data-state`.
   * @param {HTMLElement} element
   * @param {object} [options]
   * @param {string} [options.label] the bar's accessible name, shown above it
   */
  constructor(element, { label = "Task" } = {}) {
    const doc = element.ownerDocument;
    /** @type {HTMLDivElement} */
    this.root = doc.createElement("div");
    this.root.className = "pb";
    this.label = label;
    this.announced = null;

    const head = part(doc, "div", "head");
    const name = part(doc, "span", "label");
    name.id = `pb-label-${++bars}`; // from a counter, never from task data
    name.textContent = label;
    this.stateText = part(doc, "span", "state");
    head.append(name, " ", this.stateText);

    this.bar = part(doc, "progress", "bar");
    this.bar.max = 100;
    this.bar.setAttribute("role", "progressbar");
    this.bar.setAttribute("aria-valuemin", "0");
    this.bar.setAttribute("aria-valuemax", "100");
    this.bar.setAttribute("aria-labelledby", name.id);
    this.bar.removeAttribute("value");

    const figures = part(doc, "div", "figures");
    this.percent = part(doc, "span", "percent");
    this.message = part(doc, "span", "message");
    figures.append(this.percent, " ", this.message);

    this.result = part(doc, "p", "result");
    this.error = part(doc, "p", "error");
    this.result.hidden = this.error.hidden = true;

    this.live = part(doc, "p", "live");
    this.live.setAttribute("aria-live", "polite");
    hide(this.live);

    this.root.append(head, this.bar, figures, this.result, this.error, this.live);
    element.replaceChildren(this.root);
  }

  /**
   * Show `snapshot`. Ordering is the caller's: `ProgressClient.watch` only
   * hands over newer snapshots.
   * @param {import("./snapshot.js").Snapshot} snapshot
   */
  render(snapshot) {
    const s = snapshot;
    const stateText = isCancelling(s) ? "cancelling…" : String(s.state);
    this.root.dataset.state = s.state;
    this.stateText.textContent = stateText;

    const value = barValue(s);
    setBarValue(this.bar, value);
    this.percent.textContent = format.percent(value);
    this.message.textContent = typeof s.message === "string" ? s.message : "";

    const resultText = s.state === "succeeded" ? format.result(s.result) : "";
    this.result.textContent = resultText;
    this.result.hidden = resultText === "";
    const errorText = typeof s.error === "string" ? s.error : "";
    this.error.textContent = errorText;
    this.error.hidden = errorText === "";

    if (stateText !== this.announced) {
      this.announced = stateText;
      const detail = errorText && isTerminal(s.state) ? `: ${errorText}` : "";
      this.live.textContent = `${this.label} ${stateText}${detail}.`;
    }
  }
}
