// One task's card: progressbar's own ProgressBar (state, bar, percent,
// message, figures, result or error, announcements) plus what only this page
// has: a group's parts, Cancel and Dismiss, and how long ago the task last
// reported. The library's client orders the snapshots it is handed.

import { ProgressBar, format, isCancelling, isTerminal } from "progressbar";
import { PartsList } from "./parts-list.js";

// A running task that has not reported for this long says so on its card.
const STALE_AFTER_S = 3;

const STATE_WORDS = { succeeded: "Finished", failed: "Failed", cancelled: "Cancelled", lost: "Lost" };

// The clock runs every second on every card: touch the DOM only on a change.
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

/** "Simulate #1a2b3c", the id in a span of its own (styled, full id on hover). */
function title(doc, kindTitle, taskId) {
  const id = doc.createElement("span");
  id.className = "task-id";
  id.textContent = `#${taskId.slice(0, 6)}`;
  id.title = taskId;
  const fragment = doc.createDocumentFragment();
  fragment.append(kindTitle, " ", id);
  return fragment;
}

export class TaskCard {
  /**
   * @param {HTMLTemplateElement} template the card's markup
   * @param {object} snapshot the task's first snapshot
   * @param {string} kindTitle
   * @param {object} options
   * @param {HTMLElement} options.announcer the page's live region, shared by every card's bar
   * @param {boolean} [options.announce] false: show the first state without saying it
   */
  constructor(template, snapshot, kindTitle, { announcer, announce = true, onCancel, onDismiss }) {
    this.taskId = snapshot.task_id;
    this.createdAt = snapshot.created_at;
    this.busy = false;

    this.root = template.content.firstElementChild.cloneNode(true);
    const find = (name) => this.root.querySelector(`.task-${name}`);
    this.el = {
      updated: find("updated"), cancel: find("cancel"), dismiss: find("dismiss"), actionError: find("action-error"),
    };
    this.root.dataset.taskId = this.taskId;

    this.bar = new ProgressBar(find("progress"), {
      label: title(this.root.ownerDocument, kindTitle, this.taskId),
      figures: ["count", "rate", "eta", "elapsed"],
      announcer,
    });
    const { label, figures, stats } = this.bar.parts;
    // The title names the card, and is a heading screen readers can jump between.
    label.setAttribute("role", "heading");
    label.setAttribute("aria-level", "3");
    this.root.setAttribute("aria-labelledby", label.id);
    // The bar's parts sit in the card's grid: the group's parts go under its
    // figures, the rate, ETA and elapsed time beside the buttons.
    const parts = find("children");
    figures.after(parts);
    this.parts = new PartsList(parts);
    find("foot").prepend(stats);

    this.el.cancel.addEventListener("click", () => onCancel(this));
    this.el.dismiss.addEventListener("click", () => onDismiss(this));
    this.apply(snapshot, { announce });
  }

  get snapshot() {
    return this.bar.snapshot;
  }

  get state() {
    return this.snapshot?.state;
  }

  get active() {
    return !isTerminal(this.state);
  }

  /** Show `snapshot`: ProgressClient.watch hands over only newer ones. */
  apply(snapshot, { announce = true } = {}) {
    this.bar.render(snapshot, { announce });
    this.root.dataset.state = snapshot.state;
    this.parts.render(snapshot.children);

    // Keep keyboard focus on the card when the button under it goes away.
    const { cancel, dismiss } = this.el;
    const hadFocus = this.root.ownerDocument.activeElement === cancel;
    cancel.hidden = !this.active;
    dismiss.hidden = this.active;
    this.updateCancel();
    if (!this.active && hadFocus) dismiss.focus();
    this.tick();
  }

  /** A cancel request is on its way: Cancel stays disabled until it is answered. */
  setBusy(busy) {
    this.busy = busy;
    this.updateCancel();
  }

  updateCancel() {
    const busy = this.busy || isCancelling(this.snapshot);
    this.el.cancel.disabled = busy;
    this.el.cancel.setAttribute("aria-busy", String(busy));
  }

  showActionError(message) {
    this.el.actionError.textContent = message;
  }

  /** Move the bar's ETA and elapsed time on, and say when the task went quiet or ended. */
  tick() {
    this.bar.tick();
    const s = this.snapshot;
    const since = this.bar.age();
    let updated = "";
    if (!this.active) updated = `${STATE_WORDS[s.state] ?? "Ended"} ${format.clockTime(s.updated_at)}`;
    else if (since >= STALE_AFTER_S) updated = `Last update ${format.duration(since, Math.floor)} ago`;
    setText(this.el.updated, updated);
  }
}
