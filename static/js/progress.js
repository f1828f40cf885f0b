// The page's entry point: start forms, the connection indicator, and the
// wiring between progressbar's client and the task board.

import { ProgressClient, errorMessage } from "progressbar";
import { DismissedIds, TaskBoard } from "./board.js";

const TICK_MS = 1000;

/** One kind's form: reads and checks its fields, starts the task, reports errors. */
class StartForm {
  constructor(form, client, onStarted) {
    this.form = form;
    this.kind = form.dataset.kind;
    this.client = client;
    this.onStarted = onStarted;
    this.button = form.querySelector("button[type=submit]");
    this.alert = form.querySelector("[role=alert]");
    this.pending = false;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
  }

  /**
   * The params to send, checked: `{ok: true, params}`, or `{ok: false, input,
   * message}` for the first field that cannot be sent.
   */
  read() {
    const params = {};
    const inputs = [...this.form.querySelectorAll("input[name]")];
    for (const input of inputs) input.removeAttribute("aria-invalid");
    for (const input of inputs) {
      const label = input.dataset.label ?? input.name;
      // Ranges and steps were checked by the browser before `submit` fired,
      // unless the form opted out; then the server's answer says what is wrong.
      // Text a number input cannot parse reads as "", so it is caught here.
      if (input.validity.badInput) return { ok: false, input, message: `${label}: enter a number.` };
      if (input.value.trim() === "") continue; // the server fills in defaults
      if ("text" in input.dataset) {
        params[input.name] = input.value;
        continue;
      }
      const value = input.valueAsNumber;
      if ("integer" in input.dataset && !Number.isSafeInteger(value)) {
        return { ok: false, input, message: `${label}: too large to send exactly; use a smaller whole number.` };
      }
      params[input.name] = value;
    }
    return { ok: true, params };
  }

  async submit() {
    if (this.pending) return;
    const read = this.read();
    if (!read.ok) {
      read.input.setAttribute("aria-invalid", "true");
      this.alert.textContent = read.message;
      read.input.focus();
      return;
    }
    this.setPending(true);
    this.alert.textContent = "";
    const answer = await this.client.start(this.kind, read.params);
    this.setPending(false);
    if (answer.ok) this.onStarted(answer.task);
    else this.alert.textContent = errorMessage(answer);
  }

  setPending(pending) {
    this.pending = pending;
    this.button.disabled = pending;
    this.form.setAttribute("aria-busy", String(pending));
  }
}

/** The header's connected / reconnecting indicator. */
class StatusIndicator {
  constructor(element) {
    this.element = element;
    this.text = element.querySelector(".connection-text");
  }

  show(status) {
    const connected = status === "connected";
    this.element.dataset.state = connected ? "connected" : "disconnected";
    this.text.textContent = connected ? "Connected" : "Reconnecting…";
  }
}

function main() {
  const forms = [...document.querySelectorAll(".start-form")];
  const status = new StatusIndicator(document.querySelector("#connection-status"));
  const board = new TaskBoard({
    list: document.querySelector(".task-list"),
    empty: document.querySelector(".empty-state"),
    error: document.querySelector(".board-error"),
    heading: document.querySelector("#tasks-heading"),
    template: document.querySelector("#task-card-template"),
    announcer: document.querySelector("#announcer"),
    titles: new Map(forms.map((form) => [form.dataset.kind, form.dataset.title])),
    dismissed: new DismissedIds(),
  });
  const client = new ProgressClient({
    // The transports the server serves (websocket alone behind a load
    // balancer without sticky sessions).
    transports: JSON.parse(document.body.dataset.transports),
    onConnect: () => board.sync(),
    onStatus: (state) => status.show(state),
  });
  board.follow(client);
  for (const form of forms) new StartForm(form, client, (task) => board.show(task));
  setInterval(() => board.tick(), TICK_MS);
  client.open();
}

main();
