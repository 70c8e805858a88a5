// Pure logic: the backoff's bounds and the token bucket, with numbers for time and chance.
import assert from "node:assert/strict";
import { test } from "node:test";
import { TokenBucket, backoffDelay } from "../dist/index.js";

test("backoff ceiling doubles from the base and stops at the cap", () => {
  assert.equal(backoffDelay(0, 100, 1000, 0.999999) < 100, true);
  assert.equal(backoffDelay(3, 100, 1000, 0.5), 400);
  assert.equal(backoffDelay(4, 100, 1000, 0.5), 500);
  assert.equal(backoffDelay(2000, 100, 1000, 0.5), 500); // no Infinity, no NaN
});

test("backoff is full jitter: zero is a possible wait", () => {
  assert.equal(backoffDelay(7, 100, 1000, 0), 0);
});

test("bucket gives its burst at once, then one token per interval", () => {
  const bucket = new TokenBucket(20, 40, 0);
  let given = 0;
  while (bucket.take(0)) given += 1;
  assert.equal(given, 40);
  assert.equal(bucket.wait(0), 50);
  assert.equal(bucket.take(49), false);
  assert.equal(bucket.take(100), true);
});

test("bucket ignores a clock that steps back", () => {
  const bucket = new TokenBucket(20, 1, 1000);
  assert.equal(bucket.take(1000), true);
  assert.equal(bucket.take(0), false);
  assert.equal(bucket.take(60), true); // time counts again from the earlier reading
});

test("bucket refuses a rate that is not positive", () => {
  assert.throws(() => new TokenBucket(0, 40, 0), RangeError);
  assert.throws(() => new TokenBucket(20, 0, 0), RangeError);
});
