// Shared by the node tests: the live servers pytest started, a publisher, bounded waits.
import WebSocket from "ws";

export { WebSocket };

/** The reference server under test (started by tests/clients/test_typescript.py). */
export const WS_URL = process.env.HIVE_WS_URL;
export const HTTP_URL = process.env.HIVE_HTTP_URL;
/** A second server that requires the token `HIVE_AUTH_TOKEN`. */
export const AUTH_WS_URL = process.env.HIVE_AUTH_WS_URL;
export const AUTH_TOKEN = process.env.HIVE_AUTH_TOKEN;

if (!WS_URL || !HTTP_URL || !AUTH_WS_URL || !AUTH_TOKEN) {
  // Run through pytest (scripts/test tests/clients): it starts the servers these name.
  throw new Error("HIVE_WS_URL, HIVE_HTTP_URL, HIVE_AUTH_WS_URL and HIVE_AUTH_TOKEN must be set");
}

/** Publish `data` on `subscription`; resolves with the acknowledged seq. */
export async function publish(subscription, data) {
  const response = await fetch(`${HTTP_URL}/api/dashboard/websocket/broadcast?subscription=${subscription}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(data),
    signal: AbortSignal.timeout(5000),
  });
  if (!response.ok) throw new Error(`publish: HTTP ${response.status} ${await response.text()}`);
  return (await response.json()).seq;
}

/** Resolve once `done()` holds; reject after `ms` naming `what`. */
export async function until(done, what, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** An EventTarget standing in for `window` and `document` (Node has neither). */
export class FakeEnvironment {
  constructor() {
    this.target = new EventTarget();
    this.navigator = { onLine: true };
    this.visibilityState = "visible";
    const on = (type, fn) => this.target.addEventListener(type, fn);
    const off = (type, fn) => this.target.removeEventListener(type, fn);
    this.window = { addEventListener: on, removeEventListener: off, navigator: this.navigator };
    const self = this;
    this.document = {
      addEventListener: on,
      removeEventListener: off,
      get visibilityState() {
        return self.visibilityState;
      },
    };
  }
  fire(type) {
    this.target.dispatchEvent(new Event(type));
  }
}

/** A `ws` constructor that counts the sockets made and keeps the last one. */
export function countingSocket() {
  const made = [];
  class Counting extends WebSocket {
    constructor(url) {
      super(url);
      made.push(this);
    }
  }
  return { Counting, made };
}

/** A socket the test drives: what the client sends is kept in `sent`, `deliver` hands it a frame. */
export class ScriptedSocket {
  static last = null;
  constructor(url) {
    this.url = url;
    this.readyState = 1;
    this.sent = [];
    this.onmessage = this.onclose = this.onopen = this.onerror = null;
    ScriptedSocket.last = this;
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = 3;
  }
  deliver(frame) {
    this.onmessage({ data: JSON.stringify({ correlation_id: "x", timestamp: "2026-11-29T00:00:00Z", ...frame }) });
  }
}

/** A `connection_established` frame holding `subscriptions`. */
export const established = (subscriptions = []) => ({
  type: "connection_established",
  connection_id: "c",
  subscriptions,
  server_time: "2026-11-29T00:00:00Z",
  contract_version: "1.1.0",
});
/** An agents update numbered `seq`. */
export const update = (seq) => ({ type: "agent_update", subscription: "agents", data: { seq }, seq });
