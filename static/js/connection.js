// The Socket.IO link to /progress: requests with acknowledgements, and the
// link's state for the header indicator.

import { io } from "socket.io-client";

const ACK_TIMEOUT_MS = 5000;
// After the server refuses or drops us, socket.io does not retry by itself.
const RETRY_AFTER_REFUSAL_MS = 5000;

const failure = (code, message) => ({ ok: false, error: { code, message } });

/** The human message of a failed answer, whatever shape the error came in. */
export function errorMessage(answer) {
  return answer?.error?.message || "Something went wrong. Try again.";
}

export class Connection {
  /**
   * `onConnect` runs on the first connect and on every reconnect: the server
   * forgets our rooms with the old socket, so the page must catch up each time.
   */
  constructor({ namespace = "/progress", onConnect, onProgress, onStatus }) {
    this.onStatus = onStatus;
    // Handlers first, then open(): no early event can slip past them.
    // The server says which transports it serves (websocket alone behind a
    // load balancer without sticky sessions).
    const transports = (document.body.dataset.transports || "polling,websocket").split(",");
    this.socket = io(namespace, { autoConnect: false, transports });
    this.socket.on("connect", () => {
      this.onStatus("connected");
      onConnect();
    });
    this.socket.on("progress", (snapshot) => onProgress(snapshot));
    this.socket.on("disconnect", (reason) => {
      this.onStatus("reconnecting");
      if (reason === "io server disconnect") this.retrySoon();
    });
    this.socket.on("connect_error", () => {
      this.onStatus("reconnecting");
      if (!this.socket.active) this.retrySoon();
    });
  }

  open() {
    this.socket.connect();
  }

  get connected() {
    return this.socket.connected;
  }

  retrySoon() {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.socket.connect(), RETRY_AFTER_REFUSAL_MS);
  }

  /**
   * Emit `event` and resolve to the server's answer, `{ok: true, ...}` or
   * `{ok: false, error: {code, message}}`. Never rejects: a timeout or a dead
   * link becomes an error answer like any other, so callers handle one shape.
   */
  async request(event, payload = {}) {
    // Refuse rather than buffer: a `start` queued while offline could run
    // long after the user was told it failed.
    if (!this.socket.connected) {
      return failure("offline", "Not connected to the server. Try again once it reconnects.");
    }
    try {
      const answer = await this.socket.timeout(ACK_TIMEOUT_MS).emitWithAck(event, payload);
      if (answer && typeof answer === "object" && typeof answer.ok === "boolean") return answer;
      return failure("invalid", "The server sent an answer this page does not understand.");
    } catch {
      return failure("timeout", "The server did not answer in time. Try again.");
    }
  }
}
