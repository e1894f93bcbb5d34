/**
 * Waiting on the thing a test awaits instead of sleeping a fixed time: a
 * fixed sleep is either too short on a loaded machine or wasted on an idle
 * one.
 */
export interface EventuallyOptions {
  /** Give up after this long (default 20 s); the result is then the last check's. */
  timeoutMs?: number;
  /** Pause between checks (default 25 ms). */
  everyMs?: number;
}

/** Polls `check` until it holds or `timeoutMs` passes; returns whether it held. */
export async function eventually(check: () => boolean | Promise<boolean>, options: EventuallyOptions = {}): Promise<boolean> {
  const { timeoutMs = 20_000, everyMs = 25 } = options;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
  return check();
}
