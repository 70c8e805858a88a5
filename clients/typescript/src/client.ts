import { backoffDelay } from "./backoff.js";
import { TokenBucket } from "./bucket.js";
import type {
  ClientFrame,
  CriticalAlert,
  DataResponse,
  Positions,
  RequestData,
  ResyncRequired,
  ServerFrame,
  Update,
} from "./ws_messages.js";

/** A frame that carries a `seq`: a published update. */
export type UpdateFrame = Update | CriticalAlert;
/** The `type` of every control frame (a server frame that is not an update). */
export type ControlType = Exclude<ServerFrame, Update>["type"];
/** The data types `request_data` can ask for. */
export type DataType = RequestData["data_type"];

/** The part of the browser's `WebSocket` the client uses (the `ws` package has it too). */
export interface SocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
}
/** A `WebSocket` constructor: the browser's, or `ws`'s in Node. */
export type SocketConstructor = new (url: string) => SocketLike;

/** Where `online`/`offline` (window) and `visibilitychange` (document) come from. */
export interface Environment {
  window?: {
    addEventListener(type: string, listener: () => void): void;
    removeEventListener(type: string, listener: () => void): void;
    navigator?: { onLine?: boolean };
  };
  document?: {
    addEventListener(type: string, listener: () => void): void;
    removeEventListener(type: string, listener: () => void): void;
    visibilityState?: string;
  };
}

/** Options of {@link HiveClient}; every limit has a unit and a default. */
export interface ClientOptions {
  /**
   * `ws://host:port/api/dashboard/ws/dashboard` (query parameters are added by the client), or
   * a function of the number of connection attempts made so far (0, 1, ...) that returns it:
   * rotate through instances so a reconnect after one fails tries the next.
   */
  url: string | ((attempts: number) => string);
  /**
   * Sent as `?access_token=` (browsers cannot set headers on a WebSocket): a string, or a
   * function called before each connection attempt that returns the current one (refresh it
   * there, or call `setToken`).
   */
  token?: string | (() => string | undefined);
  /**
   * Last `seq` per subscription to resume from on the first connection (default none): pass
   * an old client's `positions()` so its replacement loses and repeats nothing.
   */
  resume?: Positions;
  /** Subscriptions to stream live from the first connection, without a snapshot. */
  subscriptions?: string[];
  /** The WebSocket constructor; default `globalThis.WebSocket`. Pass `ws`'s in Node. */
  WebSocket?: SocketConstructor;
  /** First backoff ceiling, ms (default 100). */
  backoffBaseMs?: number;
  /** Largest backoff ceiling, ms (default 1000: a restarted server is back within about 1 s). */
  backoffCapMs?: number;
  /** Mirror of the server's `rate_limit_tokens_per_second` (default 20 frames/s). */
  rateTokensPerSecond?: number;
  /** Mirror of the server's `rate_limit_burst_capacity` (default 40 frames). */
  rateBurst?: number;
  /**
   * Tokens of the burst left unused (default 4 frames): frames sent exactly at the rate arrive
   * bunched by network jitter, and a bunch would find the server's bucket empty. 4 tokens
   * absorb 200 ms of jitter at 20 frames/s.
   */
  rateHeadroomTokens?: number;
  /** Most bytes of frames waiting for a token or a connection (default 262144); past it `send` throws. */
  maxOutboundBytes?: number;
  /** Most bytes of updates held while a snapshot is awaited (default 4194304); past it the client reconnects and re-takes it. */
  maxBufferedBytes?: number;
  /** How often to ping an open connection, ms (default 15000; 0 turns it off). */
  pingIntervalMs?: number;
  /**
   * How long a connection must stay up before the backoff starts again from `backoffBaseMs`,
   * ms (default 5000): a server that accepts and then closes at once (1013 when overloaded)
   * meets a growing backoff, not a reconnect every `backoffBaseMs`.
   */
  healthyAfterMs?: number;
  /** Most bytes of the client's own frames (subscribe, request_data, ping) queued; they go before the app's (default 65536). */
  maxControlBytes?: number;
  /** Most pages of a truncated `agent_status` answer a snapshot fetches (default 64); past it the snapshot is rejected. */
  maxSnapshotPages?: number;
  /** How long a ping or a snapshot may wait for its answer, ms, before the client reconnects (default 10000). */
  replyTimeoutMs?: number;
  /** Close codes after which reconnecting cannot help (default 4401 unauthorized, 4403 forbidden origin). */
  permanentCloseCodes?: number[];
  /** Online and visibility events; default the page's `window` and `document` when present. */
  environment?: Environment;
  /** Clock in ms (default `Date.now`) and random source in [0, 1) (default `Math.random`). */
  now?: () => number;
  random?: () => number;
}

/** What a snapshot gave: the answer and the positions it was taken at. */
export interface Snapshot {
  dataType: DataType;
  data: DataResponse["data"];
  /**
   * The answer's `positions` as the server gave them (the first page's when paged). Only the
   * subscriptions whose state `data` holds start from them, and never move back.
   */
  positions: Positions;
}

/** Why the connection closed, and whether the client will try again. */
export interface CloseInfo {
  code: number;
  reason: string;
  reconnect: boolean;
}

/** Lifecycle events, beside one per control frame type. */
export interface ClientEvents {
  /** A connection is established (its first frame came); `attempt` failures preceded it. */
  open: { attempt: number };
  close: CloseInfo;
  /** An update, delivered exactly once, in `seq` order per subscription. */
  update: UpdateFrame;
  snapshot: Snapshot;
  /** Updates `from`..`to` were not received and no `resync_required` announced it. */
  gap: { subscription: string; from: number; to: number };
  /** Round trip of a ping, ms. */
  latency: number;
  /**
   * Something went wrong that the client handled (its message says what it did), or an
   * app handler threw (the client carries on; a throwing `problem` handler goes to
   * `console.error`).
   */
  problem: Error;
}

/** One event per control frame type, carrying that frame. */
export type FrameEvents = { [K in ControlType]: Extract<ServerFrame, { type: K }> };
/** Every event `on` accepts: lifecycle events and one per control frame type. */
export type Events = ClientEvents & FrameEvents;
/** A handler of `event`: it receives that event's value. */
export type Handler<K extends keyof Events> = (event: Events[K]) => void;

interface Pending {
  correlationId: string;
  subscriptions: string[];
  buffer: UpdateFrame[];
  bytes: number;
  waiters: { resolve: (snapshot: Snapshot) => void; reject: (error: Error) => void }[];
  /** Agents of the pages so far, and the first page's positions (`agent_status` paging). */
  agents: Agent[];
  pages: number;
  first?: Positions;
}

interface Queue {
  items: Queued[];
  bytes: number;
}

interface Agent {
  agent_id: string;
  seq?: number;
}

interface Ping {
  sent: number;
  resolve: (ms: number) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

/** A queued frame; `ping` names the ping whose clock starts when it is sent. */
interface Queued {
  text: string;
  ping?: string;
}

// The subscriptions whose state each data type's `data` holds (docs/reference/protocol.md:
// `coordination_metrics` gives positions for every subscription but holds only counts, so
// its positions must not advance a stream past updates the app has not seen).
const HOLDS: Partial<Record<string, string[]>> = { agent_status: ["agents"] };

const OPEN = 1;
const DEFAULT_PERMANENT = [4401, 4403];
// 4000-4999 are for applications (RFC 6455 §7.4.2); the client closes with this one itself.
const CLIENT_CLOSE = 4000;
// RFC 6455 §7.4.1 1008 policy violation: the server's close for a client still flooding.
const RATE_LIMITED = 1008;

function isUpdate(frame: ServerFrame): frame is UpdateFrame {
  return typeof (frame as UpdateFrame).seq === "number";
}

/**
 * A dashboard connection that stays up: it reconnects with full-jitter backoff, resumes every
 * subscription from its last `seq`, re-takes snapshots after `resync_required`, and delivers
 * each update once, in order.
 *
 * Call `start()`, register handlers with `on`, and stop with `stop()`. Sends are queued and
 * paced under the server's inbound rate limit; frames queued when a connection closes are
 * dropped (subscriptions and snapshots are restored by the client itself on reconnect).
 */
export class HiveClient {
  private readonly o: Required<Omit<ClientOptions, "token" | "environment" | "WebSocket">> & ClientOptions;
  private readonly handlers = new Map<string, Set<(event: never) => void>>();
  private readonly live = new Set<string>();
  private readonly sources = new Map<DataType, string[]>();
  private readonly pending = new Map<DataType, Pending>();
  private readonly lastSeq = new Map<string, number>();
  private readonly jumpOk = new Set<string>();
  private readonly serverSubs = new Set<string>();
  private readonly pings = new Map<string, Ping>();
  private readonly bucket: TokenBucket;
  private readonly permanent: Set<number>;
  private readonly outbound: Queue = { items: [], bytes: 0 };
  private readonly controls: Queue = { items: [], bytes: 0 };
  /** Per agent, the `seq` a paged snapshot holds: later pages may hold updates the stream replays. */
  private agentSeq = new Map<string, number>();
  private agentSeqTop = 0;
  private token: string | (() => string | undefined) | undefined;
  private socket: SocketLike | null = null;
  private established = false;
  private attempt = 0;
  private stopped = true;
  private counter = 0;
  private attempts = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private drainTimer: ReturnType<typeof setTimeout> | undefined;
  private pingTimer: ReturnType<typeof setInterval> | undefined;
  private replyTimer: ReturnType<typeof setTimeout> | undefined;
  private healthyTimer: ReturnType<typeof setTimeout> | undefined;
  /** The last measured round trip, ms (NaN before the first pong). */
  latencyMs = Number.NaN;

  /** @throws RangeError when a limit is not a positive number. */
  constructor(options: ClientOptions) {
    this.o = {
      subscriptions: [],
      backoffBaseMs: 100,
      backoffCapMs: 1000,
      rateTokensPerSecond: 20,
      rateBurst: 40,
      rateHeadroomTokens: 4,
      maxOutboundBytes: 262_144,
      maxBufferedBytes: 4_194_304,
      pingIntervalMs: 15_000,
      replyTimeoutMs: 10_000,
      healthyAfterMs: 5000,
      maxControlBytes: 65_536,
      maxSnapshotPages: 64,
      resume: {},
      permanentCloseCodes: DEFAULT_PERMANENT,
      now: Date.now,
      random: Math.random,
      ...options,
    };
    for (const key of ["backoffBaseMs", "backoffCapMs", "maxOutboundBytes", "maxBufferedBytes", "replyTimeoutMs", "maxControlBytes", "maxSnapshotPages"] as const) {
      if (!(this.o[key] > 0)) throw new RangeError(`${key} must be a positive number of its unit, got ${this.o[key]}`);
    }
    const burst = Math.max(1, this.o.rateBurst - this.o.rateHeadroomTokens);
    this.bucket = new TokenBucket(this.o.rateTokensPerSecond, burst, this.o.now());
    this.permanent = new Set(this.o.permanentCloseCodes);
    for (const name of this.o.subscriptions) this.live.add(name);
    for (const [name, seq] of Object.entries(this.o.resume)) if (typeof seq === "number") this.lastSeq.set(name, seq);
    this.token = options.token;
  }

  /** Use `token` from the next connection on (call `reconnect()` to use it now, or `start()` after a 4401). */
  setToken(token: string | (() => string | undefined) | undefined): void {
    this.token = token;
  }

  /** Add `handler` for `event` (a lifecycle event or a control frame type); returns its remover. */
  on<K extends keyof Events>(event: K, handler: Handler<K>): () => void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as (event: never) => void);
    return () => set.delete(handler as (event: never) => void);
  }

  private emit<K extends keyof Events>(event: K, value: Events[K]): void {
    for (const handler of this.handlers.get(event) ?? []) {
      // An app handler's bug must not stop the client's own steps after it (a browser would
      // only report it, leaving the handshake half done).
      try {
        (handler as Handler<K>)(value);
      } catch (error) {
        if (event === "problem") console.error(error);
        else this.emit("problem", new Error(`a ${event} handler threw: ${String(error)}`));
      }
    }
  }

  /** The last `seq` delivered (or covered by a snapshot) per subscription. */
  positions(): Positions {
    return Object.fromEntries(this.lastSeq);
  }

  /** Whether a connection is established and ready for sends. */
  get connected(): boolean {
    return this.established;
  }

  /** Connect, and keep connecting after drops until `stop()` or a permanent close code. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const env = this.env();
    env.window?.addEventListener("online", this.wake);
    env.window?.addEventListener("offline", this.offline);
    env.document?.addEventListener("visibilitychange", this.visible);
    this.connect();
  }

  /** Close for good (code 1000); pending snapshots and pings are rejected. */
  stop(): void {
    this.stopped = true;
    const env = this.env();
    env.window?.removeEventListener("online", this.wake);
    env.window?.removeEventListener("offline", this.offline);
    env.document?.removeEventListener("visibilitychange", this.visible);
    clearTimeout(this.retryTimer);
    this.drop(1000, "client stopped");
    for (const dataType of [...this.pending.keys()]) this.abandon(dataType, "client stopped");
  }

  private abandon(dataType: DataType, why: string): void {
    const pending = this.pending.get(dataType);
    this.pending.delete(dataType);
    for (const waiter of pending?.waiters ?? []) waiter.reject(new Error(`snapshot ${dataType} abandoned: ${why}`));
  }

  /**
   * Drop the connection and connect again at once (within `backoffBaseMs`), resuming every
   * subscription from its last `seq`: after a token refresh, or to see recovery work.
   */
  reconnect(): void {
    this.attempt = 0;
    if (this.socket) this.drop(CLIENT_CLOSE, "reconnect");
    else this.wake();
  }

  /**
   * Stream `subscriptions` live, resuming from their last `seq` when they had one.
   *
   * @throws RangeError when the client's own queue (`maxControlBytes`) is full.
   */
  subscribe(subscriptions: string[]): void {
    for (const name of subscriptions) this.live.add(name);
    if (this.established) this.sendSubscribe(subscriptions);
  }

  /** Stop streaming `subscriptions` and forget their positions and snapshot sources. */
  unsubscribe(subscriptions: string[]): void {
    for (const name of subscriptions) {
      this.live.delete(name);
      this.lastSeq.delete(name);
    }
    if (subscriptions.includes("agents")) this.agentSeq.clear();
    for (const [dataType, names] of this.sources) {
      if (names.some((name) => subscriptions.includes(name))) {
        this.sources.delete(dataType);
        this.abandon(dataType, `unsubscribed from ${subscriptions.join(", ")}`);
      }
    }
    if (this.established) this.control({ type: "unsubscribe", subscriptions });
  }

  /**
   * Take the state of `dataType` and stream `subscriptions` from exactly where it was taken
   * (`request_data`, then `subscribe` with `resume` set to the answer's `positions`): no update
   * is lost or delivered twice between the two. The client re-takes it by itself after a
   * `resync_required` on one of `subscriptions`, or when a reconnect finds it still pending;
   * each answer is also emitted as a `snapshot` event.
   *
   * Only subscriptions whose state the data holds (`agent_status` holds `agents`) start from
   * the snapshot's position; the others stream on from their last `seq`. A truncated
   * `agent_status` answer is paged on (`params.after`, at most `maxSnapshotPages` pages); the
   * stream resumes from the first page's position, and updates an agent's later page already
   * holds (`seq` not above the agent's own `seq`) are skipped. A position older than the
   * client's last `seq` does not move it back.
   *
   * @returns the first snapshot taken; rejected when the server refuses it (`data_error`: the
   *   connection stays, the subscriptions stream on), the client stops or closes for good, or
   *   `subscriptions` are unsubscribed before it came.
   */
  snapshot(dataType: DataType, subscriptions: string[]): Promise<Snapshot> {
    const held = subscriptions.filter((name) => HOLDS[dataType]?.includes(name));
    this.sources.set(dataType, held);
    const others = subscriptions.filter((name) => !held.includes(name) && !this.live.has(name));
    if (others.length) this.subscribe(others);
    for (const name of held) this.live.add(name);
    return new Promise((resolve, reject) => {
      this.request(dataType);
      this.pending.get(dataType)?.waiters.push({ resolve, reject });
    });
  }

  /**
   * Send a ping, before any frame of the app's; resolves with the round trip in ms, counted
   * from when the frame leaves. Rejects after `replyTimeoutMs`, at once when the connection
   * closes, or when `maxControlBytes` is used up.
   */
  ping(): Promise<number> {
    const id = this.id("ping");
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(new Error(`no pong within ${this.o.replyTimeoutMs} ms`));
      }, this.o.replyTimeoutMs);
      // The clock starts when the frame leaves (`drain`), not while it waits for a token.
      this.pings.set(id, { sent: Number.NaN, resolve, reject, timer });
      try {
        this.control({ type: "ping", correlation_id: id }, id);
      } catch (error) {
        this.settlePings([id], error as Error);
      }
      if (this.established) this.armReply();
    });
  }

  private settlePings(ids: string[], error: Error): void {
    for (const id of ids) {
      const ping = this.pings.get(id);
      if (!ping) continue;
      this.pings.delete(id);
      clearTimeout(ping.timer);
      ping.reject(error);
    }
  }

  /**
   * Queue `frame`, sent as soon as a connection is established and the rate limit allows.
   *
   * @throws RangeError when the queue would pass `maxOutboundBytes`.
   */
  send(frame: ClientFrame): void {
    this.enqueue(this.outbound, this.o.maxOutboundBytes, "maxOutboundBytes", { text: JSON.stringify(frame) });
  }

  /** Queue one of the client's own frames: sent before the app's, from its own budget. */
  private control(frame: ClientFrame, ping?: string): void {
    this.enqueue(this.controls, this.o.maxControlBytes, "maxControlBytes", { text: JSON.stringify(frame), ping });
  }

  private enqueue(queue: Queue, limit: number, name: string, item: Queued): void {
    // JavaScript strings hold 2 bytes per UTF-16 unit: the bound is on memory held.
    const bytes = item.text.length * 2;
    if (queue.bytes + bytes > limit) throw new RangeError(`outbound queue full: ${queue.bytes} + ${bytes} bytes > ${name} ${limit}`);
    queue.items.push(item);
    queue.bytes += bytes;
    this.drain();
  }

  private env(): Environment {
    if (this.o.environment) return this.o.environment;
    const g = globalThis as unknown as Environment["window"] & { document?: Environment["document"] };
    return typeof g.addEventListener === "function" ? { window: g, document: g.document } : {};
  }

  private isOffline(): boolean {
    return this.env().window?.navigator?.onLine === false;
  }

  private readonly visible = (): void => {
    // A hidden page keeps its backoff (it may wait, never stop); a visible one connects now.
    if (this.env().document?.visibilityState !== "hidden") this.wake();
  };

  private readonly wake = (): void => {
    // Back online (hidden or not), or the page is visible again: connect now instead of
    // waiting out a backoff.
    if (this.stopped || this.socket || this.isOffline()) return;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    this.attempt = 0;
    this.connect();
  };

  private readonly offline = (): void => {
    // The socket may linger half-dead for minutes; close it, and wait for `online` to retry.
    if (this.socket) this.drop(CLIENT_CLOSE, "offline");
  };

  private id(kind: string): string {
    this.counter += 1;
    return `${kind}-${this.counter}`;
  }

  private url(): string {
    const url = new URL(typeof this.o.url === "string" ? this.o.url : this.o.url(this.attempts++));
    const streaming = [...this.live].filter((name) => !this.covered(name) || this.lastSeq.has(name));
    url.searchParams.set("subscriptions", streaming.join(","));
    const resume = streaming.filter((name) => this.lastSeq.has(name)).map((name) => `${name}:${this.lastSeq.get(name)}`);
    if (resume.length) url.searchParams.set("resume", resume.join(","));
    const token = typeof this.token === "function" ? this.token() : this.token;
    if (token) url.searchParams.set("access_token", token);
    return url.toString();
  }

  private covered(name: string): boolean {
    for (const names of this.sources.values()) if (names.includes(name)) return true;
    return false;
  }

  private connect(): void {
    if (this.stopped || this.socket) return;
    if (this.isOffline()) return; // `online` calls `wake`: no timers spin meanwhile.
    const Socket = this.o.WebSocket ?? (globalThis as unknown as { WebSocket?: SocketConstructor }).WebSocket;
    if (!Socket) throw new Error("no WebSocket: pass options.WebSocket (the `ws` package in Node)");
    const socket = new Socket(this.url());
    this.socket = socket;
    // A socket already replaced or stopped may still deliver what it had read: ignore it, or
    // updates would reach the app after `stop()` (centrifuge-go#143).
    socket.onmessage = (event) => socket === this.socket && this.receive(String(event.data));
    socket.onclose = (event) => this.closed(socket, event.code, event.reason);
    socket.onerror = () => undefined; // a close always follows; it decides what to do
    this.armReply(); // a handshake that never completes counts as a missing reply
  }

  private closed(socket: SocketLike, code: number, reason: string): void {
    if (socket !== this.socket) return;
    this.socket = null;
    this.established = false;
    this.serverSubs.clear();
    for (const queue of [this.outbound, this.controls]) {
      queue.items = [];
      queue.bytes = 0;
    }
    this.settlePings([...this.pings.keys()], new Error(`connection closed (${code}) before the pong`));
    clearInterval(this.pingTimer);
    clearTimeout(this.healthyTimer);
    clearTimeout(this.replyTimer);
    clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    for (const pending of this.pending.values()) {
      pending.buffer = [];
      pending.bytes = 0;
      pending.agents = [];
      pending.pages = 0;
      pending.first = undefined;
    }
    const reconnect = !this.stopped && !this.permanent.has(code);
    if (this.permanent.has(code)) this.stopped = true;
    this.emit("close", { code, reason, reconnect });
    if (!reconnect) {
      const why = this.permanent.has(code) ? `closed ${code} for good` : "client stopped";
      for (const dataType of [...this.pending.keys()]) this.abandon(dataType, why);
      return;
    }
    // 1008 rate_limited: the error guide says reconnect "after a pause, and send less"; the
    // pause is one backoff cap on top of the jitter, the bucket does the rest.
    const pause = code === RATE_LIMITED ? this.o.backoffCapMs : 0;
    const delay = pause + backoffDelay(this.attempt, this.o.backoffBaseMs, this.o.backoffCapMs, this.o.random());
    this.attempt += 1;
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.connect();
    }, delay);
  }

  private drop(code: number, reason: string): void {
    const socket = this.socket;
    if (!socket) return;
    try {
      socket.close(code, reason);
    } finally {
      // Browsers fire `close` only after the closing handshake; act now, ignore that one.
      this.closed(socket, code, reason);
    }
  }

  private armReply(): void {
    clearTimeout(this.replyTimer);
    this.replyTimer = setTimeout(() => {
      this.emit("problem", new Error(`no reply within ${this.o.replyTimeoutMs} ms: reconnecting`));
      this.drop(CLIENT_CLOSE, "reply timeout");
    }, this.o.replyTimeoutMs);
  }

  private awaiting(): boolean {
    return !this.established || [...this.pings.values()].some((p) => p.sent >= 0) || [...this.pending.values()].some((p) => p.correlationId);
  }

  private receive(text: string): void {
    let frame: ServerFrame;
    try {
      frame = JSON.parse(text) as ServerFrame;
    } catch {
      this.emit("problem", new Error(`not JSON from the server: ${text.slice(0, 80)}`));
      return;
    }
    if (isUpdate(frame)) {
      this.update(frame);
      return;
    }
    switch (frame.type) {
      case "connection_established":
        this.serverSubs.clear();
        for (const name of frame.subscriptions) this.serverSubs.add(name);
        this.opened();
        break;
      case "subscription_updated":
        this.serverSubs.clear();
        for (const name of frame.subscriptions) this.serverSubs.add(name);
        break;
      case "pong": {
        const ping = this.pings.get(frame.correlation_id);
        if (ping && ping.sent >= 0) {
          this.pings.delete(frame.correlation_id);
          clearTimeout(ping.timer);
          this.latencyMs = this.o.now() - ping.sent;
          ping.resolve(this.latencyMs);
          this.emit("latency", this.latencyMs);
        }
        break;
      }
      case "resync_required":
        this.resync(frame);
        break;
      case "data_response":
        this.answered(frame);
        break;
      case "data_error":
        for (const [dataType, pending] of this.pending) {
          if (pending.correlationId === frame.correlation_id) this.refuse(dataType, `refused by the server: ${frame.error}`);
        }
        break;
    }
    if (this.awaiting()) this.armReply();
    else clearTimeout(this.replyTimer);
    this.emit(frame.type as ControlType, frame as never);
  }

  private opened(): void {
    this.established = true;
    const attempt = this.attempt;
    // Accepted is not healthy: a server may accept and close at once (1013), so the backoff
    // starts again only once the connection has lasted (y-websocket#195).
    clearTimeout(this.healthyTimer);
    this.healthyTimer = setTimeout(() => (this.attempt = 0), this.o.healthyAfterMs);
    if (this.o.pingIntervalMs > 0) {
      this.pingTimer = setInterval(() => {
        try {
          this.ping().catch(() => undefined); // a missing pong is caught by the reply timer
        } catch (error) {
          this.emit("problem", error as Error); // the outbound queue is full: skip this one
        }
      }, this.o.pingIntervalMs);
    }
    for (const dataType of this.sources.keys()) {
      const names = this.sources.get(dataType) ?? [];
      // Resumed from a position already: the URL carried it. Otherwise take the snapshot again.
      if (this.pending.has(dataType) || names.some((name) => !this.lastSeq.has(name))) this.request(dataType);
    }
    const unsent = [...this.live].filter((name) => !this.serverSubs.has(name) && !this.covered(name));
    if (unsent.length) this.sendSubscribe(unsent);
    this.emit("open", { attempt });
    this.drain();
  }

  private request(dataType: DataType): void {
    const pending = this.pending.get(dataType) ?? { correlationId: "", subscriptions: [], buffer: [], bytes: 0, waiters: [], agents: [], pages: 0 };
    pending.subscriptions = this.sources.get(dataType) ?? [];
    pending.buffer = [];
    pending.bytes = 0;
    pending.agents = [];
    pending.pages = 0;
    pending.first = undefined;
    pending.correlationId = "";
    this.pending.set(dataType, pending);
    this.ask(dataType, pending, {});
  }

  private ask(dataType: DataType, pending: Pending, params: RequestData["params"]): void {
    if (!this.established) return; // sent by `opened`
    pending.correlationId = this.id("snapshot");
    try {
      this.control({ type: "request_data", data_type: dataType, params, correlation_id: pending.correlationId });
    } catch (error) {
      this.emit("problem", error as Error);
      this.drop(CLIENT_CLOSE, "control queue full"); // a reconnect asks again
      return;
    }
    this.armReply();
  }

  /** A snapshot that cannot be had: reject it, keep the connection, stream on from the last `seq`. */
  private refuse(dataType: DataType, why: string): void {
    const pending = this.pending.get(dataType);
    if (!pending) return;
    this.sources.delete(dataType);
    this.abandon(dataType, why);
    this.emit("problem", new Error(`snapshot ${dataType} ${why}; streaming on without it`));
    for (const update of pending.buffer) this.deliver(update);
    const missing = pending.subscriptions.filter((name) => this.live.has(name) && !this.serverSubs.has(name));
    if (missing.length && this.established) this.sendSubscribe(missing);
  }

  private pendingFor(subscription: string): Pending | undefined {
    for (const pending of this.pending.values()) if (pending.subscriptions.includes(subscription)) return pending;
    return undefined;
  }

  private update(frame: UpdateFrame): void {
    const pending = this.pendingFor(frame.subscription);
    if (pending) {
      pending.bytes += JSON.stringify(frame.data).length * 2 + 256;
      pending.buffer.push(frame);
      if (pending.bytes > this.o.maxBufferedBytes) {
        this.emit("problem", new Error(`snapshot buffer over ${this.o.maxBufferedBytes} bytes: reconnecting to take it again`));
        this.drop(CLIENT_CLOSE, "snapshot buffer full");
      }
      return;
    }
    this.deliver(frame);
  }

  private deliver(frame: UpdateFrame): void {
    const name = frame.subscription;
    const last = this.lastSeq.get(name);
    if (last !== undefined && frame.seq <= last) return; // already delivered or in a snapshot
    if (name === "agents" && this.agentSeq.size) {
      const id = (frame.data as { agent_id?: unknown }).agent_id;
      const held = typeof id === "string" ? this.agentSeq.get(id) : undefined;
      if (frame.seq >= this.agentSeqTop) this.agentSeq.clear();
      if (held !== undefined && frame.seq <= held) {
        // A later page of the snapshot already holds this agent's update.
        this.lastSeq.set(name, frame.seq);
        return;
      }
    }
    // Position 0 reflects no update, and seqs start from a large time-based value: the first
    // update after it is never `last + 1`, and that is no gap.
    if (last !== undefined && last > 0 && frame.seq > last + 1 && !this.jumpOk.has(name)) {
      this.emit("gap", { subscription: name, from: last + 1, to: frame.seq - 1 });
    }
    this.jumpOk.delete(name);
    this.lastSeq.set(name, frame.seq);
    this.emit("update", frame);
  }

  private resync(frame: ResyncRequired): void {
    const name = frame.subscription;
    for (const [dataType, names] of this.sources) {
      if (names.includes(name) && !this.pending.has(dataType)) {
        this.request(dataType);
        return;
      }
    }
    // No snapshot source: the app refetches on its own (the `resync_required` handler); the
    // replay that follows starts past a hole the server announced, so it is not a gap.
    if (!this.pendingFor(name)) this.jumpOk.add(name);
    if (name === "agents") this.agentSeq.clear();
  }

  private answered(frame: DataResponse): void {
    for (const [dataType, pending] of this.pending) {
      if (pending.correlationId !== frame.correlation_id) continue;
      const page = frame.data as { agents?: Agent[]; truncated?: boolean; next_after?: string };
      pending.first ??= frame.positions ?? {};
      pending.pages += 1;
      if (Array.isArray(page.agents)) pending.agents.push(...page.agents);
      if (page.truncated && typeof page.next_after === "string") {
        if (pending.agents.length && pending.pages >= this.o.maxSnapshotPages) {
          this.refuse(dataType, `has over maxSnapshotPages ${this.o.maxSnapshotPages} pages`);
        } else {
          this.ask(dataType, pending, { after: page.next_after });
        }
        return;
      }
      this.pending.delete(dataType);
      const given = pending.first;
      const data = (Array.isArray(page.agents) ? { ...page, agents: pending.agents, count: pending.agents.length } : page) as DataResponse["data"];
      const positions: Positions = {};
      for (const [name, seq] of Object.entries(given)) if (typeof seq === "number") positions[name] = seq;
      const resume: Positions = {};
      for (const name of pending.subscriptions) {
        const position = given[name];
        if (typeof position !== "number") {
          this.emit("problem", new Error(`snapshot ${dataType} has no position for ${name}: updates around it may be lost or repeated`));
          continue;
        }
        // A lagging instance's older snapshot must not replay updates the app already has.
        const seq = Math.max(position, this.lastSeq.get(name) ?? position);
        this.lastSeq.set(name, seq);
        resume[name] = seq;
      }
      if (pending.subscriptions.includes("agents") && pending.agents.length > 0 && pending.pages > 1) {
        this.agentSeq = new Map(pending.agents.filter((a) => typeof a.seq === "number").map((a) => [a.agent_id, a.seq as number]));
        this.agentSeqTop = Math.max(0, ...this.agentSeq.values());
      }
      // The client's own steps first: not streaming yet, subscribe with `resume` to replay
      // exactly what came after the snapshot. App handlers run after.
      const missing = pending.subscriptions.filter((name) => !this.serverSubs.has(name));
      if (missing.length) {
        const from = Object.fromEntries(missing.filter((name) => name in resume).map((name) => [name, resume[name]]));
        this.control({ type: "subscribe", subscriptions: missing, resume: from, correlation_id: this.id("resume") });
      }
      const snapshot: Snapshot = { dataType, data, positions };
      for (const waiter of pending.waiters) waiter.resolve(snapshot);
      this.emit("snapshot", snapshot);
      // Updates that came while the snapshot was taken: those up to its position are in it.
      for (const update of pending.buffer) this.deliver(update);
      return;
    }
  }

  private sendSubscribe(subscriptions: string[]): void {
    const resume: Positions = {};
    for (const name of subscriptions) {
      const seq = this.lastSeq.get(name);
      if (seq !== undefined) resume[name] = seq;
    }
    this.control({ type: "subscribe", subscriptions, resume, correlation_id: this.id("subscribe") });
  }

  private drain(): void {
    const socket = this.socket;
    if (!socket || !this.established || this.drainTimer !== undefined) return;
    for (;;) {
      const queue = this.controls.items.length ? this.controls : this.outbound;
      if (!queue.items.length || socket.readyState !== OPEN) return;
      const now = this.o.now();
      if (!this.bucket.take(now)) {
        this.drainTimer = setTimeout(() => {
          this.drainTimer = undefined;
          this.drain();
        }, this.bucket.wait(now));
        return;
      }
      const item = queue.items.shift() as Queued;
      queue.bytes -= item.text.length * 2;
      const ping = item.ping === undefined ? undefined : this.pings.get(item.ping);
      if (ping) ping.sent = this.o.now();
      socket.send(item.text);
    }
  }
}
