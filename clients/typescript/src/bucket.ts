/**
 * A token bucket mirroring the server's inbound limit (`rate_limit_tokens_per_second`,
 * `rate_limit_burst_capacity`): every frame costs one token, tokens come back at `rate` per
 * second up to `burst`. A client that only sends when `take` says so is never dropped.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  /**
   * @param rate - tokens per second (the server's default is 20).
   * @param burst - most tokens held at once (the server's default is 40).
   * @param now - the current time, in milliseconds.
   * @throws RangeError when `rate` or `burst` is not a positive finite number.
   */
  constructor(
    private readonly rate: number,
    private readonly burst: number,
    now: number,
  ) {
    if (!(rate > 0 && rate < Infinity) || !(burst >= 1 && burst < Infinity)) {
      throw new RangeError(`token bucket needs rate > 0 and burst >= 1, got ${rate}, ${burst}`);
    }
    this.tokens = burst;
    this.last = now;
  }

  private refill(now: number): void {
    // A clock that steps back (a suspended tab) must not mint or burn tokens.
    const elapsed = Math.max(0, now - this.last);
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
    this.last = now;
  }

  /** Take one token at `now` (ms); false when none is left. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds from `now` until one token is available (0 when one is). */
  wait(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.rate);
  }
}
