// The list of task cards: which tasks are shown, in what order, and keeping
// them in step with the server across reloads and reconnects.

import { errorMessage } from "./connection.js";
import { TaskCard } from "./task-card.js";

const RESYNC_AFTER_MS = 5000;
// A live bar that heard nothing for this long asks the server again: pub/sub
// delivers at most once, and a bar must never sit frozen on a lost push.
const STALE_AFTER_MS = 30000;

/** Ids the user dismissed, kept across reloads so `list` does not bring them back. */
export class DismissedIds {
  constructor(key = "progressbar.dismissed", limit = 200) {
    this.key = key;
    this.limit = limit;
    this.ids = [];
    try {
      const stored = JSON.parse(localStorage.getItem(key) ?? "[]");
      if (Array.isArray(stored)) this.ids = stored.filter((id) => typeof id === "string");
    } catch {
      // Storage blocked or corrupt: dismissals then last for this page only.
    }
  }

  has(id) {
    return this.ids.includes(id);
  }

  add(id) {
    if (this.has(id)) return;
    // Oldest first out: the server forgets old tasks long before the cap matters.
    this.ids = [...this.ids, id].slice(-this.limit);
    try {
      localStorage.setItem(this.key, JSON.stringify(this.ids));
    } catch {
      // See the constructor.
    }
  }
}

export class TaskBoard {
  constructor({ list, empty, error, heading, template, announcer, titles, dismissed }) {
    Object.assign(this, { list, empty, error, heading, template, announcer, titles, dismissed });
    this.cards = new Map();
    this.connection = null;
    this.updateEmpty();
  }

  /** Show a snapshot from any source (ack, push, list); the card's seq decides. */
  receive(snapshot, { announce = true } = {}) {
    if (!snapshot || typeof snapshot.task_id !== "string" || this.dismissed.has(snapshot.task_id)) {
      return;
    }
    const card = this.cards.get(snapshot.task_id);
    if (!card) {
      this.add(snapshot, announce);
      return;
    }
    const before = card.state;
    if (card.apply(snapshot) && card.state !== before && announce) this.announce(card);
  }

  add(snapshot, announce) {
    const title = this.titles.get(snapshot.kind) ?? snapshot.kind;
    const card = new TaskCard(this.template, snapshot, title, {
      onCancel: (c) => this.cancel(c),
      onDismiss: (c) => this.dismiss(c),
    });
    this.cards.set(card.taskId, card);
    // Newest first, wherever it came from: a start, a push or a list.
    const next = [...this.list.children].find(
      (el) => this.cards.get(el.dataset.taskId).createdAt < card.createdAt,
    );
    this.list.insertBefore(card.root, next ?? null);
    this.updateEmpty();
    if (announce) this.announce(card);
  }

  /** On every (re)connect: show tasks not yet shown and follow the live ones again. */
  async sync() {
    clearTimeout(this.resyncTimer);
    const answer = await this.connection.request("list", {});
    if (!answer.ok) {
      this.error.textContent = `Could not load your tasks: ${errorMessage(answer)}`;
      this.resyncTimer = setTimeout(() => this.connection.connected && this.sync(), RESYNC_AFTER_MS);
      return;
    }
    this.error.textContent = "";
    // Restored cards are not news: the live region speaks only of changes.
    for (const snapshot of answer.tasks ?? []) this.receive(snapshot, { announce: false });
    const live = [...this.cards.values()].filter((card) => card.active);
    await Promise.all(live.map((card) => this.follow(card)));
  }

  async follow(card) {
    const answer = await this.connection.request("subscribe", { task_id: card.taskId });
    if (answer.ok) this.receive(answer.task);
    else if (answer.error?.code === "not_found") {
      card.markGone("The server no longer knows this task.");
      this.announce(card);
    }
    // Anything else (timeout, offline) is retried by the next connect.
  }

  async cancel(card) {
    card.setCancelling(true);
    card.showActionError("");
    const answer = await this.connection.request("cancel", { task_id: card.taskId });
    card.setCancelling(false);
    if (!answer.ok) {
      card.showActionError(`Could not cancel: ${errorMessage(answer)}`);
      return;
    }
    this.receive(answer.task);
    // Same seq as shown: the request itself is news only to this card.
    if (answer.outcome === "requested") card.markCancelRequested();
  }

  dismiss(card) {
    this.dismissed.add(card.taskId);
    // Hand focus to the next finished card's Dismiss, else to the heading,
    // so a keyboard user is not dropped at the top of the page.
    const after = [...this.list.children].slice([...this.list.children].indexOf(card.root) + 1);
    const nextButton = after
      .map((el) => el.querySelector(".task-dismiss"))
      .find((button) => button && !button.hidden);
    const hadFocus = card.root.contains(document.activeElement);
    card.root.remove();
    this.cards.delete(card.taskId);
    this.updateEmpty();
    if (hadFocus) (nextButton ?? this.heading).focus();
    // Best effort: leaving the room only saves pushes we would ignore anyway.
    this.connection.request("unsubscribe", { task_id: card.taskId });
  }

  tick() {
    const now = performance.now();
    for (const card of this.cards.values()) {
      card.tick();
      if (card.active && now - card.receivedAt > STALE_AFTER_MS && this.connection?.connected) {
        card.receivedAt = now; // one re-ask per quiet period, not one per tick
        this.follow(card);
      }
    }
  }

  announce(card) {
    const { state, error } = card.snapshot;
    const detail = error && !card.active ? `: ${error}` : "";
    this.announcer.textContent = `${card.label} ${state}${detail}.`;
  }

  updateEmpty() {
    this.empty.hidden = this.cards.size > 0;
  }
}
