/**
 * Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * the wait before attempt `n` is uniform in `[0, min(capMs, baseMs * 2^n))`, so clients cut
 * off together do not all come back in the same instant.
 *
 * @param attempt - failed attempts so far (0 before the first retry).
 * @param baseMs - the first ceiling, in milliseconds.
 * @param capMs - the largest ceiling, in milliseconds.
 * @param random - a number in `[0, 1)`, `Math.random()` in production.
 * @returns the delay in milliseconds, in `[0, capMs)`.
 */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: number): number {
  // 2 ** 1024 is Infinity; the cap bounds it anyway, so the exponent is clamped first.
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 52));
  return Math.max(0, random) * ceiling;
}
