/**
 * The per-session network log: every request, allowed or blocked, in the
 * order it arrived, capped so a chatty program cannot grow the server's memory
 * (or the /execute response) without bound.
 */
import type { NetworkLogEntry, NetworkLogResult } from './types.ts';

export class NetworkLog {
  readonly #cap: number;
  readonly #entries: NetworkLogEntry[] = [];
  #capped = false;
  #overflow = 0;

  constructor(cap: number) {
    this.#cap = Math.max(0, Math.floor(cap));
  }

  /**
   * Takes a slot at arrival so the log keeps arrival order even when answers
   * finish out of order. Returns null once the cap is reached; the caller then
   * only writes the log line.
   */
  reserve(entry: NetworkLogEntry): NetworkLogEntry | null {
    if (this.#entries.length >= this.#cap) {
      this.#capped = true;
      this.#overflow += 1;
      return null;
    }
    this.#entries.push(entry);
    return entry;
  }

  /** Requests that arrived after the cap was reached, so far. */
  get overflow(): number {
    return this.#overflow;
  }

  snapshot(): NetworkLogResult {
    return { entries: this.#entries.map((e) => ({ ...e })), capped: this.#capped };
  }
}
