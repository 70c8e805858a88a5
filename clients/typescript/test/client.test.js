// HiveClient in Node (`ws` as its WebSocket) against real reference servers that pytest
// started. Only the environment (online/offline, visibility) is a stand-in: Node has none.
import assert from "node:assert/strict";
import { test } from "node:test";
import { HiveClient } from "../dist/index.js";
import {
  AUTH_TOKEN,
  AUTH_WS_URL,
  FakeEnvironment,
  WS_URL,
  WebSocket,
  countingSocket,
  publish,
  until,
} from "./helpers.js";

function client(options = {}) {
  return new HiveClient({ url: WS_URL, WebSocket, environment: new FakeEnvironment(), subscriptions: [], ...options });
}

test("subscribes, receives a published update, and measures a ping", async () => {
  const hive = client({ subscriptions: ["tasks"] });
  const seen = [];
  hive.on("update", (frame) => seen.push(frame));
  const opened = new Promise((resolve) => hive.on("open", resolve));
  hive.start();
  try {
    await opened;
    const seq = await publish("tasks", { task_id: "n-1" });
    await until(() => seen.some((f) => f.seq === seq), "the published update");
    assert.deepEqual(seen.at(-1).data, { task_id: "n-1" });
    const latency = await hive.ping();
    assert.ok(latency >= 0 && latency < 5000, `latency ${latency} ms`);
  } finally {
    hive.stop();
  }
});

test("typed handlers get their own frame type only", async () => {
  const hive = client();
  const updated = [];
  hive.on("subscription_updated", (frame) => updated.push(frame.subscriptions));
  const opened = new Promise((resolve) => hive.on("open", resolve));
  hive.start();
  try {
    await opened;
    hive.subscribe(["alerts"]);
    await until(() => updated.length === 1, "subscription_updated");
    assert.deepEqual(updated[0], ["alerts"]);
    hive.unsubscribe(["alerts"]);
    await until(() => updated.length === 2, "the second subscription_updated");
    assert.deepEqual(updated[1], []);
  } finally {
    hive.stop();
  }
});

test("offline then online: reconnects at once and resumes with nothing lost or repeated", async () => {
  const environment = new FakeEnvironment();
  const hive = client({ subscriptions: ["tasks"], environment });
  const seqs = [];
  let opens = 0;
  hive.on("update", (frame) => frame.subscription === "tasks" && seqs.push(frame.seq));
  hive.on("open", () => (opens += 1));
  hive.start();
  try {
    await until(() => opens === 1, "the first connection");
    const first = await publish("tasks", { n: 0 });
    await until(() => seqs.includes(first), "the first update");
    environment.navigator.onLine = false;
    environment.fire("offline");
    assert.equal(hive.connected, false);
    const missed = [];
    for (let n = 1; n <= 5; n += 1) missed.push(await publish("tasks", { n }));
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.equal(opens, 1, "no reconnect while offline");
    environment.navigator.onLine = true;
    environment.fire("online");
    await until(() => missed.every((seq) => seqs.includes(seq)), "the updates published while offline");
    const from = seqs.indexOf(first);
    assert.deepEqual(seqs.slice(from), [first, ...missed]);
  } finally {
    hive.stop();
  }
});

// kuzzleio/sdk-javascript#455/#456 and joewalnes/reconnecting-websocket#72: retrying while the
// browser is offline only drains the battery; centrifugal/centrifuge-js#203: reconnecting
// took a minute after the network came back, until the `online` event was used.
test("does not spin while offline: no socket is made until online", async () => {
  const environment = new FakeEnvironment();
  environment.navigator.onLine = false;
  const { Counting, made } = countingSocket();
  const hive = client({ WebSocket: Counting, environment });
  hive.start();
  try {
    await new Promise((resolve) => setTimeout(resolve, 500));
    assert.equal(made.length, 0);
    environment.navigator.onLine = true;
    environment.fire("online");
    await until(() => hive.connected, "the connection after online");
    assert.equal(made.length, 1);
  } finally {
    hive.stop();
  }
});

test("visible again: a pending retry is replaced by an immediate connect", async () => {
  const environment = new FakeEnvironment();
  const { Counting, made } = countingSocket();
  // A huge backoff: only the visibility event can bring it back within the test's bound.
  const hive = client({ WebSocket: Counting, environment, backoffBaseMs: 60_000, backoffCapMs: 60_000, random: () => 0.99 });
  hive.start();
  try {
    await until(() => hive.connected, "the first connection");
    environment.visibilityState = "hidden";
    environment.navigator.onLine = false;
    environment.fire("offline"); // drops the socket; retry far away
    environment.navigator.onLine = true;
    environment.fire("visibilitychange"); // still hidden: nothing
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(made.length, 1);
    environment.visibilityState = "visible";
    environment.fire("visibilitychange");
    await until(() => hive.connected, "the connection after becoming visible", 3000);
    assert.equal(made.length, 2);
  } finally {
    hive.stop();
  }
});

test("sends stay under the server's rate limit: 100 pings, 100 pongs, no rate error", async () => {
  const hive = client();
  const errors = [];
  let pongs = 0;
  hive.on("error", (frame) => errors.push(frame.code));
  hive.on("pong", () => (pongs += 1));
  const opened = new Promise((resolve) => hive.on("open", resolve));
  hive.start();
  try {
    await opened;
    const started = Date.now();
    for (let i = 0; i < 100; i += 1) hive.send({ type: "ping", correlation_id: `flood-${i}` });
    await until(() => pongs === 100, "100 pongs", 15_000);
    assert.deepEqual(errors, []);
    // 36 at once (40 less 4 of headroom), 64 more at 20/s: at least 3.2 s. Faster would mean
    // the bucket let too much through.
    assert.ok(Date.now() - started >= 3100, `100 pings took ${Date.now() - started} ms`);
  } finally {
    hive.stop();
  }
});

test("a full outbound queue throws a RangeError naming the limit", () => {
  const hive = client({ maxOutboundBytes: 200 });
  hive.send({ type: "ping", correlation_id: "a" });
  assert.throws(() => hive.send({ type: "ping", correlation_id: "b".repeat(100) }), /maxOutboundBytes 200/);
});

// PatrickRuddiman/Crabshell#32 and giantmachines/redux-websocket#103: a client that ignored
// the close code reconnected forever after an auth failure.
test("close 4401 (wrong token): no reconnect", async () => {
  const { Counting, made } = countingSocket();
  const hive = new HiveClient({ url: AUTH_WS_URL, token: "wrong", WebSocket: Counting, environment: new FakeEnvironment() });
  const closes = [];
  hive.on("close", (info) => closes.push(info));
  hive.start();
  try {
    await until(() => closes.length === 1, "the close");
    assert.equal(closes[0].code, 4401);
    assert.equal(closes[0].reconnect, false);
    await new Promise((resolve) => setTimeout(resolve, 1500)); // more than the backoff cap
    assert.equal(made.length, 1);
  } finally {
    hive.stop();
  }
});

test("the right token connects", async () => {
  const hive = new HiveClient({ url: AUTH_WS_URL, token: AUTH_TOKEN, WebSocket, environment: new FakeEnvironment() });
  const opened = new Promise((resolve) => hive.on("open", resolve));
  hive.start();
  try {
    await opened;
    assert.equal(hive.connected, true);
  } finally {
    hive.stop();
  }
});

test("a server that is gone: retries stay within the backoff cap", async () => {
  const { Counting, made } = countingSocket();
  const dead = WS_URL.replace(/:\d+\//, ":9/"); // port 9 (discard) is closed on loopback
  const hive = new HiveClient({ url: dead, WebSocket: Counting, environment: new FakeEnvironment(), backoffCapMs: 200 });
  hive.start();
  try {
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // Cap 200 ms: at least 1500 / 200 attempts (each wait < 200 ms), and far fewer than a spin.
    assert.ok(made.length >= 7 && made.length < 400, `${made.length} attempts in 1.5 s`);
  } finally {
    hive.stop();
  }
});

// pladaria/reconnecting-websocket#14 and centrifugal/centrifuge-js#24/#93: close() called
// while a retry was waiting did not cancel it, and the socket came back.
test("stop() during a backoff wait cancels the retry", async () => {
  const { Counting, made } = countingSocket();
  const dead = WS_URL.replace(/:\d+\//, ":9/");
  const hive = new HiveClient({ url: dead, WebSocket: Counting, environment: new FakeEnvironment(), backoffBaseMs: 300, backoffCapMs: 300, random: () => 0.99 });
  const closes = [];
  hive.on("close", (info) => closes.push(info));
  hive.start();
  await until(() => closes.length === 1, "the first failed attempt");
  hive.stop(); // the retry is ~300 ms away
  await new Promise((resolve) => setTimeout(resolve, 800));
  assert.equal(made.length, 1);
});
