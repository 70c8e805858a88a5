// A dashboard connection that survives drops without losing updates, with the client
// package: it remembers the last `seq` of every subscription and resumes from it on every
// reconnect, with full-jitter backoff capped at 1 s. The demo drops the connection,
// publishes while it is down, and checks that every update arrived exactly once, in order.
import { HiveClient } from "@agent-hive/dashboard-client";

const SERVER = "127.0.0.1:8000";

const client = new HiveClient({
  url: `ws://${SERVER}/api/dashboard/ws/dashboard`,
  subscriptions: ["tasks"],
  backoffCapMs: 1000, // the default: a restarted server is back within about a second
});
const seen: number[] = [];
let connections = 0;
client.on("open", () => (connections += 1));
client.on("update", (update) => seen.push(update.seq));
// The server could not replay everything (its history is bounded): refetch your state.
client.on("resync_required", (frame) => console.log(`refetch ${frame.subscription}`));
client.on("close", ({ code, reconnect }) => reconnect || console.error(`closed for good: ${code}`));

async function publish(taskId: string): Promise<number> {
  const url = `http://${SERVER}/api/dashboard/websocket/broadcast?subscription=tasks`;
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ task_id: taskId, status: "queued" }),
  });
  if (!response.ok) throw new Error(`publish failed: HTTP ${response.status}`);
  return ((await response.json()) as { seq: number }).seq;
}

async function until(done: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

client.start();
await until(() => connections === 1);
const first = await publish("before-drop");
await until(() => seen.includes(first));

client.reconnect(); // drops the socket as a network failure would, then comes back
const missed = [await publish("while-down-1"), await publish("while-down-2")];
await until(() => connections === 2 && missed.every((seq) => seen.includes(seq)));
client.stop();

const gapOrRepeat = seen.some((seq, i) => i > 0 && seq !== seen[i - 1] + 1);
if (gapOrRepeat) throw new Error(`updates lost or repeated: ${seen.join(", ")}`);
console.log(`received seq ${seen.join(", ")}: nothing lost, nothing twice`);
