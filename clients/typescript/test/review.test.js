// The review of issue 15, with a scripted socket: each case is a fault another client shipped
// (named above it), made to happen on demand. tests/clients/test_review_client.py runs the
// same faults against real servers.
import assert from "node:assert/strict";
import { test } from "node:test";
import { HiveClient } from "../dist/index.js";
import { FakeEnvironment, ScriptedSocket, established, update } from "./helpers.js";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const agent = (id, seq) => ({ type: "agent_update", subscription: "agents", data: { agent_id: id }, seq });

function start(options = {}) {
  const environment = new FakeEnvironment();
  const hive = new HiveClient({ url: "ws://127.0.0.1:1/ws", WebSocket: ScriptedSocket, environment, pingIntervalMs: 0, ...options });
  const seqs = [];
  const problems = [];
  hive.on("update", (frame) => seqs.push(frame.seq));
  hive.on("problem", (error) => problems.push(error.message));
  hive.start();
  return { hive, seqs, problems, environment, socket: ScriptedSocket.last };
}

const requests = (socket) => socket.sent.filter((f) => f.type === "request_data");
const answer = (socket, request, data, positions) =>
  socket.deliver({ type: "data_response", correlation_id: request.correlation_id, data_type: request.data_type, data, positions });

// mqttjs/MQTT.js#100 (state reset after handing control to the user), centrifugal/centrifuge-js#394
// (a throwing app handler left the client half-way through a frame).
test("a throwing snapshot handler is reported, and the resuming subscribe is still sent", async () => {
  const { hive, seqs, problems, socket } = start();
  hive.on("snapshot", () => {
    throw new Error("render bug");
  });
  const taken = hive.snapshot("agent_status", ["agents"]);
  socket.deliver(established());
  answer(socket, requests(socket)[0], { agents: [] }, { agents: 5 });
  await taken;
  assert.deepEqual(socket.sent.find((f) => f.type === "subscribe").resume, { agents: 5 });
  assert.match(problems.join("\n"), /a snapshot handler threw: Error: render bug/);
  socket.deliver(update(6));
  assert.deepEqual(seqs, [6]);
  hive.stop();
});

// yjs/y-websocket#195 and #74, destinygg/chat-gui#872: a server that accepts and closes at once
// reset the backoff on every open.
test("the backoff grows while connections close before healthyAfterMs", async () => {
  const { hive } = start({ random: () => 0, healthyAfterMs: 1000 });
  const attempts = [];
  hive.on("open", ({ attempt }) => attempts.push(attempt));
  for (let i = 0; i < 3; i += 1) {
    const socket = ScriptedSocket.last;
    socket.deliver(established());
    socket.onclose({ code: 1013, reason: "try again later" });
    await sleep(20);
  }
  assert.deepEqual(attempts, [0, 1, 2]);
  hive.stop();
});

test("a connection that stayed up healthyAfterMs starts the backoff again", async () => {
  const { hive } = start({ random: () => 0, healthyAfterMs: 50 });
  const attempts = [];
  hive.on("open", ({ attempt }) => attempts.push(attempt));
  ScriptedSocket.last.deliver(established());
  ScriptedSocket.last.onclose({ code: 1013, reason: "" });
  await sleep(20);
  ScriptedSocket.last.deliver(established());
  await sleep(100);
  ScriptedSocket.last.onclose({ code: 1006, reason: "" });
  await sleep(20);
  ScriptedSocket.last.deliver(established());
  assert.deepEqual(attempts, [0, 1, 1], "one failure since the healthy connection, not two");
  hive.stop();
});

// A refusal is permanent: redux-websocket#103 retried whatever the server said.
test("a refused snapshot rejects, keeps the connection, and streams on from the last seq", async () => {
  const { hive, seqs, socket } = start();
  const closes = [];
  hive.on("close", (info) => closes.push(info));
  hive.subscribe(["agents"]);
  socket.deliver(established(["agents"]));
  socket.deliver(update(3));
  hive.unsubscribe(["agents"]);
  socket.deliver({ type: "subscription_updated", subscriptions: [] });
  const taken = hive.snapshot("agent_status", ["agents"]);
  socket.deliver({ type: "data_error", correlation_id: requests(socket)[0].correlation_id, data_type: "agent_status", error: "no" });
  await assert.rejects(taken, /snapshot agent_status abandoned: refused by the server: no/);
  assert.deepEqual(closes, []);
  assert.deepEqual(socket.sent.at(-1).subscriptions, ["agents"]);
  socket.deliver(update(4));
  assert.deepEqual(seqs, [3, 4]);
  hive.stop();
});

test("a coordination_metrics snapshot neither holds back nor skips agents updates", async () => {
  const { hive, seqs, socket } = start();
  hive.subscribe(["agents"]);
  socket.deliver(established(["agents"]));
  socket.deliver(update(10));
  const taken = hive.snapshot("coordination_metrics", ["agents"]);
  socket.deliver(update(11));
  assert.deepEqual(seqs, [10, 11], "not held while the metrics are taken");
  answer(socket, requests(socket)[0], { latest_seq: { agents: 20 } }, { agents: 20 });
  const snapshot = await taken;
  assert.deepEqual(snapshot.positions, { agents: 20 });
  socket.deliver(update(12));
  assert.deepEqual(seqs, [10, 11, 12]);
  assert.deepEqual(hive.positions(), { agents: 12 });
  hive.stop();
});

test("a snapshot older than the last seq does not move the position back", async () => {
  const { hive, seqs, socket } = start();
  hive.subscribe(["agents"]);
  socket.deliver(established(["agents"]));
  socket.deliver(update(50));
  const taken = hive.snapshot("agent_status", ["agents"]);
  answer(socket, requests(socket)[0], { agents: [] }, { agents: 45 });
  await taken;
  socket.deliver(update(48)); // a lagging instance's replay
  socket.deliver(update(51));
  assert.deepEqual(seqs, [50, 51]);
  hive.stop();
});

test("a truncated agent_status is paged on, streams from the first page, skips what later pages hold", async () => {
  const { hive, seqs, socket } = start();
  const taken = hive.snapshot("agent_status", ["agents"]);
  socket.deliver(established());
  answer(socket, requests(socket)[0], { agents: [{ agent_id: "a", seq: 9 }], count: 1, total: 2, truncated: true, next_after: "a" }, { agents: 10 });
  assert.deepEqual(requests(socket)[1].params, { after: "a" });
  // Taken later: agent b's state already holds update 12.
  answer(socket, requests(socket)[1], { agents: [{ agent_id: "b", seq: 12 }], count: 1, total: 2, truncated: false }, { agents: 13 });
  const snapshot = await taken;
  assert.deepEqual(snapshot.data.agents.map((a) => a.agent_id), ["a", "b"]);
  assert.equal(snapshot.data.count, 2);
  assert.deepEqual(snapshot.positions, { agents: 10 });
  assert.deepEqual(socket.sent.find((f) => f.type === "subscribe").resume, { agents: 10 });
  for (const [id, seq] of [["a", 11], ["b", 12], ["a", 13], ["b", 14]]) socket.deliver(agent(id, seq));
  assert.deepEqual(seqs, [11, 13, 14]);
  hive.stop();
});

test("past maxSnapshotPages the snapshot is rejected and the stream goes on", async () => {
  const { hive, socket } = start({ maxSnapshotPages: 2 });
  const taken = hive.snapshot("agent_status", ["agents"]);
  socket.deliver(established());
  for (let page = 0; page < 2; page += 1) {
    answer(socket, requests(socket)[page], { agents: [{ agent_id: `a${page}`, seq: 1 }], truncated: true, next_after: `a${page}` }, { agents: 1 });
  }
  await assert.rejects(taken, /over maxSnapshotPages 2 pages/);
  assert.equal(requests(socket).length, 2);
  assert.deepEqual(socket.sent.at(-1).subscriptions, ["agents"]);
  hive.stop();
});

// intechstudio/grid-editor#597, madari/go-socket.io#4: heartbeats stuck behind queued messages.
test("the client's own frames go before the app's, from their own budget", () => {
  const { hive, socket } = start({ maxOutboundBytes: 2048, rateBurst: 5, rateHeadroomTokens: 0 });
  socket.deliver(established());
  assert.throws(() => {
    for (let i = 0; i < 100; i += 1) hive.send({ type: "ping", correlation_id: `app-${i}` });
  }, RangeError);
  hive.snapshot("agent_status", ["agents"]).catch(() => undefined); // rejected by stop()
  hive.ping().catch(() => undefined);
  const waiting = socket.sent.length;
  return sleep(120).then(() => {
    const next = socket.sent.slice(waiting).map((f) => f.correlation_id.split("-")[0]);
    assert.deepEqual(next.slice(0, 2), ["snapshot", "ping"]);
    hive.stop();
  });
});

// iterate/iterate#2048, runtypelabs/persona#351: `online` was gated on the page being visible.
test("back online while hidden: connects at once", () => {
  const { hive, environment } = start({ backoffBaseMs: 60_000, backoffCapMs: 60_000 });
  const first = ScriptedSocket.last;
  first.deliver(established());
  environment.visibilityState = "hidden";
  environment.fire("visibilitychange");
  environment.navigator.onLine = false;
  environment.fire("offline");
  environment.navigator.onLine = true;
  environment.fire("online");
  assert.notEqual(ScriptedSocket.last, first);
  hive.stop();
});

// felangel/web_socket_client#31, dsrees/JavaPhoenixClient#82: a token frozen at construction.
test("a token provider is asked before each connection; resume positions carry over", async () => {
  let token = "old";
  const { hive } = start({ token: () => token, resume: { agents: 41 }, subscriptions: ["agents"], random: () => 0 });
  assert.equal(new URL(ScriptedSocket.last.url).searchParams.get("access_token"), "old");
  assert.equal(new URL(ScriptedSocket.last.url).searchParams.get("resume"), "agents:41");
  token = "new";
  hive.reconnect();
  await sleep(10);
  assert.equal(new URL(ScriptedSocket.last.url).searchParams.get("access_token"), "new");
  hive.setToken("set");
  hive.reconnect();
  await sleep(10);
  assert.equal(new URL(ScriptedSocket.last.url).searchParams.get("access_token"), "set");
  hive.stop();
});

// deribit-v2-ws#12, sidorares/node-mysql2#812: pending requests left hanging after a close.
test("a pending ping rejects when the client stops", async () => {
  const { hive, socket } = start({ replyTimeoutMs: 60_000 });
  socket.deliver(established());
  const ping = hive.ping();
  hive.stop();
  await assert.rejects(ping, /connection closed \(1000\) before the pong/);
});

test("latency is measured from when the ping leaves, not from when it was queued", async () => {
  let clock = 0;
  const { hive, socket } = start({ now: () => clock, rateBurst: 1, rateHeadroomTokens: 0, rateTokensPerSecond: 1000 });
  socket.deliver(established());
  hive.send({ type: "ping", correlation_id: "app" }); // takes the only token
  const ping = hive.ping();
  clock = 2000; // the ping waits for a token
  await sleep(20);
  const sent = socket.sent.find((f) => f.correlation_id?.startsWith("ping-"));
  clock = 2003;
  socket.deliver({ type: "pong", correlation_id: sent.correlation_id });
  assert.equal(await ping, 3);
  hive.stop();
});
