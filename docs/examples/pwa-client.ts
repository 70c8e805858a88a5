// A PWA's dashboard connection with the client package `@agent-hive/dashboard-client`.
// It loads the agents' state and streams `agents` from exactly where that state was taken,
// streams `alerts` live, measures a ping, then stops. In a page, `WebSocket` is the
// browser's; our tests run this file under Node with the `ws` package in its place.
import { HiveClient } from "@agent-hive/dashboard-client";

const client = new HiveClient({
  url: "ws://127.0.0.1:8000/api/dashboard/ws/dashboard",
  subscriptions: ["alerts"],
  // token: () => currentToken(),  // when the server requires one: asked before each connection
});

// One typed handler per frame type: `frame` is a SubscriptionUpdated here.
client.on("subscription_updated", (frame) => console.log(`streaming ${frame.subscriptions.join(", ")}`));
client.on("update", (update) => console.log(`${update.type} #${update.seq} on ${update.subscription}`));
client.on("close", ({ code, reconnect }) => reconnect || console.error(`closed for good: ${code}`));
client.on("problem", (error) => console.error(error.message));

const deadline = setTimeout(() => {
  client.stop();
  throw new Error("no snapshot and pong within 10 s");
}, 10_000);

client.start();
const snapshot = await client.snapshot("agent_status", ["agents"]);
console.log(`agents loaded; streaming from ${JSON.stringify(snapshot.positions)}`);
console.log(`round trip ${Math.round(await client.ping())} ms`);
clearTimeout(deadline);
client.stop();
