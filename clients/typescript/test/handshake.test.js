// The snapshot handshake's bookkeeping, with a scripted socket: the interleavings that matter
// (updates arriving while the snapshot is taken, a replay overlapping them) cannot be made to
// happen on demand with a real server. The browser tests run the same handshake for real.
import assert from "node:assert/strict";
import { test } from "node:test";
import { HiveClient } from "../dist/index.js";
import { FakeEnvironment, ScriptedSocket, established, update } from "./helpers.js";

function start() {
  const hive = new HiveClient({ url: "ws://127.0.0.1:1/ws", WebSocket: ScriptedSocket, environment: new FakeEnvironment(), pingIntervalMs: 0 });
  const seqs = [];
  const snapshots = [];
  hive.on("update", (frame) => seqs.push(frame.seq));
  hive.on("snapshot", (snapshot) => snapshots.push(snapshot));
  hive.start();
  return { hive, seqs, snapshots, socket: ScriptedSocket.last };
}

test("snapshot first: not subscribed in the URL, then subscribe with resume = positions", async () => {
  const { hive, seqs, socket } = start();
  const taken = hive.snapshot("agent_status", ["agents"]);
  assert.equal(new URL(socket.url).searchParams.get("subscriptions"), "");
  socket.deliver(established());
  const request = socket.sent.find((f) => f.type === "request_data");
  assert.equal(request.data_type, "agent_status");
  socket.deliver({ type: "data_response", correlation_id: request.correlation_id, data_type: "agent_status", data: { agents: [] }, positions: { agents: 41 } });
  const snapshot = await taken;
  assert.deepEqual(snapshot.positions, { agents: 41 });
  const subscribe = socket.sent.find((f) => f.type === "subscribe");
  assert.deepEqual(subscribe.subscriptions, ["agents"]);
  assert.deepEqual(subscribe.resume, { agents: 41 });
  socket.deliver(update(42));
  socket.deliver(update(43));
  assert.deepEqual(seqs, [42, 43]);
  hive.stop();
});

test("updates during the snapshot are held, and those it covers dropped", () => {
  const { hive, seqs, socket } = start();
  hive.subscribe(["agents"]);
  socket.deliver(established(["agents"]));
  socket.deliver(update(10));
  hive.snapshot("agent_status", ["agents"]).catch(() => undefined); // rejected by stop()
  const request = socket.sent.find((f) => f.type === "request_data");
  socket.deliver(update(11));
  socket.deliver(update(12));
  socket.deliver(update(13));
  assert.deepEqual(seqs, [10], "nothing delivered while the snapshot is pending");
  socket.deliver({ type: "data_response", correlation_id: request.correlation_id, data_type: "agent_status", data: {}, positions: { agents: 12 } });
  socket.deliver(update(13)); // a replay overlapping the buffer
  socket.deliver(update(14));
  assert.deepEqual(seqs, [10, 13, 14]);
  assert.equal(socket.sent.filter((f) => f.type === "subscribe").length, 0, "already streaming: no second subscribe");
  hive.stop();
});

test("resync_required re-takes the snapshot and nothing it covers is delivered twice", () => {
  const { hive, seqs, snapshots, socket } = start();
  hive.snapshot("agent_status", ["agents"]).catch(() => undefined); // rejected by stop()
  socket.deliver(established());
  let request = socket.sent.find((f) => f.type === "request_data");
  socket.deliver({ type: "data_response", correlation_id: request.correlation_id, data_type: "agent_status", data: {}, positions: { agents: 5 } });
  socket.deliver({ type: "subscription_updated", subscriptions: ["agents"] });
  socket.deliver({ type: "resync_required", subscription: "agents", last_seq: 5, oldest_seq: 100, latest_seq: 102 });
  socket.deliver(update(100));
  socket.deliver(update(101));
  request = socket.sent.filter((f) => f.type === "request_data").at(-1);
  assert.equal(socket.sent.filter((f) => f.type === "request_data").length, 2);
  socket.deliver({ type: "data_response", correlation_id: request.correlation_id, data_type: "agent_status", data: {}, positions: { agents: 101 } });
  socket.deliver(update(102));
  assert.deepEqual(seqs, [102]);
  assert.equal(snapshots.length, 2);
  hive.stop();
});

test("a gap nobody announced is reported", () => {
  const { hive, socket } = start();
  const gaps = [];
  hive.on("gap", (gap) => gaps.push(gap));
  hive.subscribe(["agents"]);
  socket.deliver(established(["agents"]));
  socket.deliver(update(1));
  socket.deliver(update(4));
  assert.deepEqual(gaps, [{ subscription: "agents", from: 2, to: 3 }]);
  hive.stop();
});

test("the snapshot buffer is bounded: past it the client drops the connection", () => {
  const hive = new HiveClient({ url: "ws://127.0.0.1:1/ws", WebSocket: ScriptedSocket, environment: new FakeEnvironment(), pingIntervalMs: 0, maxBufferedBytes: 2000 });
  const problems = [];
  const closes = [];
  hive.on("problem", (error) => problems.push(error.message));
  hive.on("close", (info) => closes.push(info));
  hive.subscribe(["agents"]);
  hive.start();
  const socket = ScriptedSocket.last;
  socket.deliver(established(["agents"]));
  hive.snapshot("agent_status", ["agents"]).catch(() => undefined); // rejected by stop()
  for (let seq = 1; seq <= 10; seq += 1) socket.deliver(update(seq));
  assert.match(problems.join("\n"), /snapshot buffer over 2000 bytes/);
  assert.equal(closes.length, 1);
  assert.equal(closes[0].reconnect, true);
  hive.stop();
});

test("a snapshot at position 0 reflects no update: the first seq after it is no gap", () => {
  const { hive, seqs, socket } = start();
  const gaps = [];
  hive.on("gap", (gap) => gaps.push(gap));
  hive.snapshot("agent_status", ["agents"]).catch(() => undefined); // rejected by stop()
  socket.deliver(established());
  const request = socket.sent.find((f) => f.type === "request_data");
  socket.deliver({ type: "data_response", correlation_id: request.correlation_id, data_type: "agent_status", data: {}, positions: { agents: 0 } });
  assert.deepEqual(socket.sent.find((f) => f.type === "subscribe").resume, { agents: 0 });
  socket.deliver(update(1795972045028910));
  assert.deepEqual(seqs, [1795972045028910]);
  assert.deepEqual(gaps, []);
  hive.stop();
});

// centrifugal/centrifuge-go#143: publications were delivered after the app tore the client
// down. Frames a closed socket still hands over must reach no handler.
test("nothing is delivered after stop(), even frames the old socket still hands over", () => {
  const { hive, seqs, socket } = start();
  hive.subscribe(["agents"]);
  socket.deliver(established(["agents"]));
  socket.deliver(update(1));
  hive.stop();
  socket.deliver(update(2));
  assert.deepEqual(seqs, [1]);
});

// centrifugal/centrifuge-dart#142: a listener that re-subscribed from inside its handler got
// the same publication again, because the position moved only after the event. Here the
// handler reconnects: the new connection must resume after the update being handled.
test("reconnecting from inside an update handler resumes after that update", () => {
  const { hive, seqs, socket } = start();
  hive.subscribe(["agents"]);
  socket.deliver(established(["agents"]));
  hive.on("update", (frame) => frame.seq === 7 && hive.reconnect());
  socket.deliver(update(7));
  return new Promise((resolve) => setTimeout(resolve, 250)).then(() => {
    const next = ScriptedSocket.last;
    assert.notEqual(next, socket);
    assert.equal(new URL(next.url).searchParams.get("resume"), "agents:7");
    next.deliver(established(["agents"]));
    next.deliver(update(7)); // a server that replays it anyway
    next.deliver(update(8));
    assert.deepEqual(seqs, [7, 8]);
    hive.stop();
  });
});

test("a snapshot still pending when the client stops is rejected, not left hanging", async () => {
  const { hive, socket } = start();
  const taken = hive.snapshot("agent_status", ["agents"]);
  socket.deliver(established());
  hive.stop();
  await assert.rejects(taken, /snapshot agent_status abandoned: client stopped/);
});

test("close 1008 (rate limited): the retry waits a whole backoff cap first", async () => {
  const hive = new HiveClient({ url: "ws://127.0.0.1:1/ws", WebSocket: ScriptedSocket, environment: new FakeEnvironment(), pingIntervalMs: 0, backoffCapMs: 300, random: () => 0 });
  hive.start();
  const socket = ScriptedSocket.last;
  socket.deliver(established());
  socket.onclose({ code: 1008, reason: "rate_limited" });
  await new Promise((resolve) => setTimeout(resolve, 200));
  assert.equal(ScriptedSocket.last, socket, "no attempt within the pause");
  await new Promise((resolve) => setTimeout(resolve, 400));
  assert.notEqual(ScriptedSocket.last, socket, "an attempt after it");
  hive.stop();
});
