// One task's card: owns its DOM, shows the snapshots it is handed (the
// library's client orders them), and keeps the clock fields moving between pushes.

import { barValue, format, setBarValue } from "progressbar";

export const ACTIVE_STATES = new Set(["queued", "running"]);

// A running task that has not reported for this long says so on its card.
const STALE_AFTER_S = 3;

const isNumber = (value) => typeof value === "number" && Number.isFinite(value);

const STATE_WORDS = { succeeded: "Finished", failed: "Failed", cancelled: "Cancelled", lost: "Lost" };

let cardCount = 0;

// The clock runs every second on every card: touch the DOM only on a change.
function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

export class TaskCard {
  constructor(template, snapshot, kindTitle, { onCancel, onDismiss }) {
    this.taskId = snapshot.task_id;
    this.createdAt = snapshot.created_at;
    this.label = `${kindTitle} #${this.taskId.slice(0, 6)}`;
    this.snapshot = null;
    this.busy = false;

    this.root = template.content.firstElementChild.cloneNode(true);
    const part = (name) => this.root.querySelector(`.task-${name}`);
    this.el = {
      title: part("title"), kind: part("kind"), id: part("id"), state: part("state"),
      bar: part("bar"), percent: part("percent"), count: part("count"),
      message: part("message"), rate: part("rate"), eta: part("eta"),
      elapsed: part("elapsed"), result: part("result"), error: part("error"),
      updated: part("updated"), cancel: part("cancel"), dismiss: part("dismiss"),
      actionError: part("action-error"), children: part("children"),
    };
    this.root.dataset.taskId = this.taskId;
    this.el.kind.textContent = kindTitle;
    this.el.id.textContent = `#${this.taskId.slice(0, 6)}`;
    this.el.id.title = this.taskId;
    // DOM ids come from a counter, never from task data.
    const titleId = `task-title-${++cardCount}`;
    this.el.title.id = titleId;
    this.root.setAttribute("aria-labelledby", titleId);
    this.el.bar.setAttribute("aria-labelledby", titleId);

    this.el.cancel.addEventListener("click", () => onCancel(this));
    this.el.dismiss.addEventListener("click", () => onDismiss(this));
    this.apply(snapshot);
  }

  get state() {
    return this.snapshot?.state;
  }

  get active() {
    return ACTIVE_STATES.has(this.state);
  }

  /** A running task asked to stop, which it does at its next report. */
  get cancelling() {
    return this.active && this.snapshot.cancel_requested === true;
  }

  /** Show `snapshot`: ProgressClient.watch hands over only newer ones. */
  apply(snapshot) {
    this.snapshot = snapshot;
    // Local monotonic time: the server's clock may not agree with ours.
    this.receivedAt = performance.now();
    this.render();
  }

  /** A cancel request is on its way: Cancel stays disabled until it is answered. */
  setBusy(busy) {
    this.busy = busy;
    this.updateCancel();
  }

  updateCancel() {
    const busy = this.busy || this.cancelling;
    this.el.cancel.disabled = busy;
    this.el.cancel.setAttribute("aria-busy", String(busy));
  }

  showActionError(message) {
    this.el.actionError.textContent = message;
  }

  render() {
    const s = this.snapshot;
    const { el } = this;
    const active = ACTIVE_STATES.has(s.state);
    this.root.dataset.state = s.state;
    el.state.textContent = this.cancelling ? "cancelling…" : s.state;

    const value = barValue(s);
    setBarValue(el.bar, value);
    el.percent.textContent = format.percent(value);

    const counted = isNumber(s.total) || (isNumber(s.current) && s.current > 0);
    el.count.textContent = counted ? format.count(s.current, s.total) : "";
    el.message.textContent = s.message ?? "";
    el.rate.textContent = format.rate(s.rate);

    this.renderChildren(s.children);

    const resultText = s.state === "succeeded" ? format.result(s.result) : "";
    el.result.textContent = resultText;
    el.result.parentElement.hidden = resultText === "";
    const errorText = typeof s.error === "string" ? s.error : "";
    el.error.textContent = errorText;
    el.error.parentElement.hidden = errorText === "";

    // Keep keyboard focus on the card when the button under it goes away.
    const hadFocus = this.root.contains(document.activeElement) && document.activeElement === el.cancel;
    el.cancel.hidden = !active;
    el.dismiss.hidden = active;
    this.updateCancel();
    if (!active && hadFocus) el.dismiss.focus();
    this.tick();
  }

  /** A group's parts, each with a small bar of its own. */
  renderChildren(children) {
    const list = this.el.children;
    list.hidden = !Array.isArray(children) || children.length === 0;
    if (list.hidden) return;
    while (list.children.length > children.length) list.lastElementChild.remove();
    children.forEach((child, index) => {
      let item = list.children[index];
      if (!item) {
        item = document.createElement("li");
        item.className = "task-child";
        const bar = document.createElement("progress");
        bar.max = 100;
        const label = document.createElement("span");
        label.className = "task-child-label";
        item.append(bar, label);
        list.append(item);
      }
      const percent = isNumber(child.percent) ? child.percent : 0;
      item.dataset.state = String(child.state);
      item.querySelector("progress").value = percent;
      item.querySelector("progress").setAttribute("aria-label", `Part ${index + 1}`);
      item.querySelector(".task-child-label").textContent =
        `Part ${index + 1}: ${child.state} ${format.percent(percent)}`;
    });
  }

  /** Advance elapsed, ETA and staleness from the local clock. */
  tick() {
    const s = this.snapshot;
    const since = (performance.now() - this.receivedAt) / 1000;
    const running = s.state === "running";
    const finished = !ACTIVE_STATES.has(s.state);
    setText(
      this.el.elapsed,
      finished
        ? format.finalDuration(s.elapsed)
        : format.duration(running && isNumber(s.elapsed) ? s.elapsed + since : s.elapsed, Math.floor),
    );
    setText(
      this.el.eta,
      running && isNumber(s.eta) ? format.duration(Math.max(0, s.eta - since), Math.ceil) : "—",
    );

    let updated = "";
    if (finished) updated = `${STATE_WORDS[s.state] ?? "Ended"} ${format.clockTime(s.updated_at)}`;
    else if (since >= STALE_AFTER_S) updated = `Last update ${format.duration(since, Math.floor)} ago`;
    setText(this.el.updated, updated);
  }
}
