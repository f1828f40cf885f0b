// Stands in for socket.io-client's `io` in the library's modules (see
// register.mjs): a socket the test drives by hand, playing the server.

/** Every socket `io()` made, newest last. */
export const sockets = [];

export function io(uri, options) {
  const socket = new FakeSocket(uri, options);
  sockets.push(socket);
  return socket;
}

class Emitter {
  constructor() {
    this.handlers = new Map();
  }

  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(handler);
    return this;
  }

  once(event, handler) {
    const wrapped = (...args) => {
      this.handlers.set(event, (this.handlers.get(event) ?? []).filter((h) => h !== wrapped));
      handler(...args);
    };
    return this.on(event, wrapped);
  }

  fire(event, ...args) {
    for (const handler of [...(this.handlers.get(event) ?? [])]) handler(...args);
  }
}

class FakeManager extends Emitter {
  constructor(options) {
    super();
    this.opts = { ...options, transports: [...(options.transports ?? [])] };
    this.engine = null;
  }

  /** An engine opens on `transport`, as the next try's first transport would. */
  open(transport = this.opts.transports[0]) {
    this.engine = new Emitter();
    this.engine.transport = { name: transport };
    this.fire("open");
  }

  /** The open engine moves to websocket. */
  upgrade() {
    this.engine.transport = { name: "websocket" };
    this.engine.fire("upgrade", this.engine.transport);
  }
}

class FakeSocket {
  constructor(uri, options) {
    this.uri = uri;
    this.options = options;
    this.handlers = new Map();
    this.connected = false;
    this.active = false;
    this.connects = 0;
    /** Requests not answered yet: {event, payload, answer(value)}. */
    this.pending = [];
    /** Every request emitted, in order: [event, payload]. */
    this.emitted = [];
    /** Answers at once when it returns an answer; undefined leaves it pending. */
    this.server = () => undefined;
    /** The Manager: its options (transports) and its engine's transport. */
    this.io = new FakeManager(options);
  }

  on(event, handler) {
    if (!this.handlers.has(event)) this.handlers.set(event, []);
    this.handlers.get(event).push(handler);
    return this;
  }

  once(event, handler) {
    let done = false;
    return this.on(event, (...args) => {
      if (done) return;
      done = true;
      handler(...args);
    });
  }

  fire(event, ...args) {
    for (const handler of this.handlers.get(event) ?? []) handler(...args);
  }

  connect() {
    this.connects += 1;
    this.active = true;
  }

  disconnect() {
    this.active = false;
    this.connected = false;
    this.fire("disconnect", "io client disconnect");
  }

  timeout(ms) {
    return {
      emitWithAck: (event, payload) =>
        new Promise((resolve, reject) => {
          this.emitted.push([event, payload]);
          const now = this.server(event, payload);
          if (now !== undefined) {
            resolve(now);
            return;
          }
          const timer = setTimeout(() => reject(new Error("operation has timed out")), ms);
          this.pending.push({
            event,
            payload,
            answer: (value) => {
              clearTimeout(timer);
              resolve(value);
            },
          });
        }),
    };
  }

  // The server's side of the test:

  up() {
    this.connected = true;
    this.active = true;
    this.fire("connect");
  }

  drop(reason = "transport close") {
    this.connected = false;
    this.fire("disconnect", reason);
  }

  push(snapshot) {
    this.fire("progress", snapshot);
  }

  /** Requests of `event` emitted so far, their payloads. */
  sent(event) {
    return this.emitted.filter(([name]) => name === event).map(([, payload]) => payload);
  }
}
