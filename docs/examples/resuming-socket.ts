// A dashboard connection for a browser or PWA that survives drops without losing updates.
// It remembers the last `seq` of every subscription and reconnects with `?resume=`, waiting
// with capped, jittered backoff; `resync_required` tells it to refetch state instead.
// The demo at the bottom drops the connection, publishes while it is down, and checks that
// the reconnected socket got every update exactly once, in order.
import type { ResyncRequired, ServerFrame } from "./ws_messages";

const SERVER = "127.0.0.1:8000";
const WS_URL = `ws://${SERVER}/api/dashboard/ws/dashboard`;
// Close codes after which reconnecting cannot help: fix the token or the page's origin.
const FATAL_CLOSE_CODES = new Set([4401, 4403]);
const BACKOFF_BASE_MS = 250;
const BACKOFF_CAP_MS = 30_000;

export class ResumingSocket {
  private socket: WebSocket | null = null;
  private readonly lastSeq = new Map<string, number>();
  private failures = 0;
  private stopped = false;

  constructor(
    private readonly subscriptions: string[],
    private readonly onFrame: (frame: ServerFrame) => void,
    private readonly onResync: (subscription: string) => void,
  ) {}

  start(): void {
    this.stopped = false;
    this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.socket?.close(1000);
  }

  /** Close the socket as a network failure would, to see the client recover. */
  simulateDrop(): void {
    this.socket?.close(4000, "simulated drop");
  }

  private url(): string {
    const query = new URLSearchParams({ subscriptions: this.subscriptions.join(",") });
    const resume = [...this.lastSeq].map(([name, seq]) => `${name}:${seq}`).join(",");
    if (resume) query.set("resume", resume);
    return `${WS_URL}?${query}`;
  }

  private connect(): void {
    const socket = new WebSocket(this.url());
    this.socket = socket;
    socket.onmessage = (event: MessageEvent<string>) => {
      const frame = JSON.parse(event.data) as ServerFrame;
      if (frame.type === "connection_established") this.failures = 0;
      if (frame.type === "resync_required") {
        // Updates between last_seq and oldest_seq are gone: refetch state, carry on live.
        const resync = frame as ResyncRequired;
        this.lastSeq.set(resync.subscription, resync.latest_seq);
        this.onResync(resync.subscription);
      } else if ("seq" in frame) {
        this.lastSeq.set(frame.subscription, frame.seq);
      }
      this.onFrame(frame);
    };
    socket.onclose = (event: CloseEvent) => {
      if (this.stopped || FATAL_CLOSE_CODES.has(event.code)) return;
      // Full jitter: clients cut off together must not all come back in the same instant.
      const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** this.failures);
      this.failures += 1;
      setTimeout(() => this.connect(), Math.random() * ceiling);
    };
  }
}

// -- demo -------------------------------------------------------------------------------

async function publish(taskId: string): Promise<number> {
  const url = `http://${SERVER}/api/dashboard/websocket/broadcast?subscription=tasks`;
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ task_id: taskId, status: "queued" }),
  });
  if (!response.ok) throw new Error(`publish failed: HTTP ${response.status}`);
  const receipt = (await response.json()) as { seq: number };
  return receipt.seq;
}

async function until(done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const seen: number[] = [];
let connections = 0;
const client = new ResumingSocket(
  ["tasks"],
  (frame) => {
    if (frame.type === "connection_established") connections += 1;
    if ("seq" in frame && frame.subscription === "tasks") seen.push(frame.seq);
  },
  (subscription) => console.log(`refetch ${subscription}`),
);
client.start();
await until(() => connections === 1);
const first = await publish("before-drop");
await until(() => seen.includes(first));

client.simulateDrop();
const missed = [await publish("while-down-1"), await publish("while-down-2")];
await until(() => connections === 2 && missed.every((seq) => seen.includes(seq)));
client.stop();

const gapOrRepeat = seen.some((seq, i) => i > 0 && seq !== seen[i - 1] + 1);
if (gapOrRepeat) throw new Error(`updates lost or repeated: ${seen.join(", ")}`);
console.log(`received seq ${seen.join(", ")}: nothing lost, nothing twice`);
