// The list of task cards: which tasks are shown and in what order. Keeping
// each card current (seq order, resubscribing, re-asking) is ProgressClient's.

import { errorMessage } from "progressbar";
import { TaskCard } from "./task-card.js";

const RESYNC_AFTER_MS = 5000;

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
    this.client = null;
    this.cards = new Map();
    this.updateEmpty();
  }

  /**
   * Keep the cards current through `client`. Its `onConnect` calls `sync`,
   * so the board exists first and is given the client before it opens.
   */
  follow(client) {
    this.client = client;
  }

  /** Add a card for a task not shown yet, from any source (start, list); the client keeps it current. */
  show(snapshot, { announce = true } = {}) {
    const id = snapshot?.task_id;
    if (typeof id !== "string" || this.cards.has(id) || this.dismissed.has(id)) return;
    const title = this.titles.get(snapshot.kind) ?? snapshot.kind;
    const card = new TaskCard(this.template, snapshot, title, {
      announcer: this.announcer,
      announce,
      onCancel: (c) => this.cancel(c),
      onDismiss: (c) => this.dismiss(c),
    });
    this.cards.set(id, card);
    // Newest first, wherever it came from.
    const next = [...this.list.children].find(
      (el) => this.cards.get(el.dataset.taskId).createdAt < card.createdAt,
    );
    this.list.insertBefore(card.root, next ?? null);
    this.updateEmpty();
    card.unwatch = this.client.watch(id, (update) => card.apply(update));
  }

  /** On every (re)connect: show the tasks not shown yet (another tab's, or from before a reload). */
  async sync() {
    clearTimeout(this.resyncTimer);
    const answer = await this.client.list();
    if (!answer.ok) {
      this.error.textContent = `Could not load your tasks: ${errorMessage(answer)}`;
      this.resyncTimer = setTimeout(() => this.client.connected && this.sync(), RESYNC_AFTER_MS);
      return;
    }
    this.error.textContent = "";
    // Restored cards are not news: the live region speaks only of changes.
    for (const snapshot of answer.tasks) this.show(snapshot, { announce: false });
  }

  async cancel(card) {
    card.setBusy(true);
    card.showActionError("");
    // A "requested" answer reaches the card through the client, as `cancelling…`.
    const answer = await this.client.cancel(card.taskId);
    card.setBusy(false);
    if (!answer.ok) card.showActionError(`Could not cancel: ${errorMessage(answer)}`);
  }

  dismiss(card) {
    this.dismissed.add(card.taskId);
    // Hand focus to the next finished card's Dismiss, else to the heading,
    // so a keyboard user is not dropped at the top of the page.
    const shown = [...this.list.children];
    const nextButton = shown
      .slice(shown.indexOf(card.root) + 1)
      .map((el) => el.querySelector(".task-dismiss"))
      .find((button) => button && !button.hidden);
    const hadFocus = card.root.contains(card.root.ownerDocument.activeElement);
    card.root.remove();
    this.cards.delete(card.taskId);
    this.updateEmpty();
    if (hadFocus) (nextButton ?? this.heading).focus();
    card.unwatch();
  }

  tick() {
    for (const card of this.cards.values()) card.tick();
  }

  updateEmpty() {
    this.empty.hidden = this.cards.size > 0;
  }
}
