// The Socket.IO link to the /progress namespace: requests with
// acknowledgements, and the link's state for a status indicator.

import { io } from "./vendor/socket.io.esm.min.js";

const ACK_TIMEOUT_MS = 5000;
// After the server refuses or drops us, socket.io does not retry by itself.
const RETRY_AFTER_REFUSAL_MS = 5000;

/**
 * The server's answer to a request: `{ok: true, ...}` or
 * `{ok: false, error: {code, message}}`. Besides the server's codes, the
 * client answers `offline`, `timeout` and `invalid` (an answer it cannot read).
 * @typedef {{ok: true, [field: string]: any} | {ok: false, error: {code: string, message: string}}} Answer
 */

const failure = (code, message) => ({ ok: false, error: { code, message } });

/**
 * The human message of a failed answer, whatever shape the error came in.
 * @param {Answer | undefined} answer
 * @returns {string}
 */
export function errorMessage(answer) {
  return answer?.error?.message || "Something went wrong. Try again.";
}

export class Connection {
  /**
   * Nothing is sent before `open()`, so listeners added with `on()` miss no event.
   * @param {object} [options]
   * @param {string} [options.url] the server's origin; default the page's
   * @param {string} [options.namespace] default "/progress"
   * @param {string} [options.path] Socket.IO's HTTP path; default "/socket.io"
   * @param {string[]} [options.transports] default ["polling", "websocket"];
   *   ["websocket"] when the server serves only that (no sticky sessions)
   * @param {(status: "connected" | "reconnecting" | "unauthorized") => void} [options.onStatus]
   *   "unauthorized": the app's identity loader knows nobody; no retry
   *   (signing in, then reloading the page, is the way back)
   * @param {string | null} [options.identityUrl] asked once before connecting,
   *   so that the connection carries the identity cookie; default the
   *   server's `/progressbar/identity`, null not to ask
   */
  constructor({
    url,
    namespace = "/progress",
    path,
    transports = ["polling", "websocket"],
    onStatus = () => {},
    identityUrl,
  } = {}) {
    const origin = url ? url.replace(/\/+$/, "") : "";
    const target = origin + namespace;
    // Beside this module, which the server serves at /progressbar/static/.
    this.identityUrl =
      identityUrl === undefined
        ? (origin ? `${origin}/progressbar/identity` : new URL("../identity", import.meta.url).href)
        : identityUrl;
    this.identityAsked = false;
    this.opened = false;
    this.everConnected = false;
    // Credentials: the identity is a cookie, also across origins. A try
    // whose first transport fails goes on to the next (tryAllTransports).
    const options = { autoConnect: false, transports, withCredentials: true, tryAllTransports: true };
    if (path) options.path = path;
    this.socket = io(target, options);
    // After a web restart every open page reconnects at once, and a polling
    // handshake with its upgrade costs the server four requests where a
    // websocket costs one: once a websocket has worked, reconnects try it first.
    this.socket.io.on("open", () => this.#preferWebsocketOnceItWorks());
    // Settles on the first connect: a request made while the page is still
    // connecting waits for it (a while) rather than being refused at once.
    this.firstConnect = new Promise((resolve) => this.socket.once("connect", resolve));
    this.closed = false;
    this.retryTimer = undefined;
    this.socket.on("connect", () => {
      this.everConnected = true;
      onStatus("connected");
    });
    this.socket.on("disconnect", (reason) => {
      if (reason === "io client disconnect") return; // close()
      onStatus("reconnecting");
      if (reason === "io server disconnect") this.#retrySoon();
    });
    this.socket.on("connect_error", (error) => {
      if (error?.data?.code === "unauthorized") {
        onStatus("unauthorized");
        return;
      }
      onStatus("reconnecting");
      if (!this.socket.active) this.#retrySoon();
    });
  }

  /**
   * Listen to a server event: "connect" (the first connect and every
   * reconnect: the server forgot our rooms with the old socket) or
   * "progress" (a pushed snapshot).
   * @param {string} event
   * @param {(...args: any[]) => void} handler
   * @returns {this}
   */
  on(event, handler) {
    this.socket.on(event, handler);
    return this;
  }

  /** Connect, and keep reconnecting until `close()`. */
  open() {
    this.closed = false;
    this.opened = true;
    if (this.identityAsked || !this.identityUrl) {
      this.socket.connect();
      return;
    }
    this.identityAsked = true;
    // Whatever the answer, connect: without the cookie the server gives this
    // connection an identity of its own.
    fetch(this.identityUrl, { credentials: "include", cache: "no-store" })
      .catch(() => undefined)
      .then(() => this.closed || this.socket.connect());
  }

  /** Disconnect for good. */
  close() {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.socket.disconnect();
  }

  /** @returns {boolean} */
  get connected() {
    return this.socket.connected;
  }

  #preferWebsocketOnceItWorks() {
    const manager = this.socket.io;
    const engine = manager.engine;
    const prefer = () => {
      if (engine.transport?.name !== "websocket") return;
      const others = manager.opts.transports.filter((name) => name !== "websocket");
      manager.opts.transports = ["websocket", ...others];
    };
    prefer();
    engine.once("upgrade", prefer);
  }

  #retrySoon() {
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.closed || this.socket.connect(), RETRY_AFTER_REFUSAL_MS);
  }

  /**
   * Emit `event` and resolve to the server's answer. Never rejects: a timeout
   * (5 s) or a dead link becomes an error answer like any other, so callers
   * handle one shape.
   * @param {string} event
   * @param {object} [payload]
   * @returns {Promise<Answer>}
   */
  async request(event, payload = {}) {
    if (!this.socket.connected && this.opened && !this.everConnected && !this.closed) {
      let timer;
      const patience = new Promise((resolve) => (timer = setTimeout(resolve, ACK_TIMEOUT_MS)));
      await Promise.race([this.firstConnect, patience]);
      clearTimeout(timer);
    }
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
