/**
 * A Server-Sent Events response (the `text/event-stream` answer of
 * `POST /execute`): named events whose data is one line of JSON, and a
 * comment line every so often so that proxies and clients see the
 * connection is alive while the program is quiet.
 *
 * The stream opens (status 200 and headers sent) only when the execution
 * starts; until then a failure is the usual JSON error with its status.
 * Once open, a failure can only be told in the stream: an `error` event.
 */
import type { ServerResponse } from 'node:http';

export const EVENT_STREAM_TYPE = 'text/event-stream';

/** The events of a streamed execution, in the order they can come. */
export type ExecutionEventName = 'start' | 'stdout' | 'stderr' | 'network' | 'result' | 'error';

/**
 * One event in the wire format. JSON never holds a raw CR or LF, so the
 * data is one `data:` line whatever the program printed.
 */
export function formatEvent(event: ExecutionEventName, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A comment line: ignored by every SSE client, but it keeps the connection busy. */
export const HEARTBEAT = ': heartbeat\n\n';

/** What of a response the stream writes to (a ServerResponse fits). */
export type EventSink = Pick<ServerResponse, 'writeHead' | 'flushHeaders' | 'write' | 'end' | 'once' | 'writableEnded' | 'destroyed' | 'headersSent'>;

export class EventStream {
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(
    private readonly sink: EventSink,
    private readonly heartbeatMs: number,
  ) {
    sink.once('close', () => this.#stopHeartbeat());
  }

  /** Whether the status and headers are out: from then on only events can tell the client anything. */
  get opened(): boolean {
    return this.sink.headersSent;
  }

  /** Sends the status and headers; later calls do nothing. */
  open(): void {
    if (this.opened || this.#gone) return;
    this.sink.writeHead(200, {
      'Content-Type': `${EVENT_STREAM_TYPE}; charset=utf-8`,
      'Cache-Control': 'no-cache, no-transform',
      Connection: 'keep-alive',
      // Reverse proxies (nginx) would otherwise hold the events back in their buffers.
      'X-Accel-Buffering': 'no',
    });
    this.sink.flushHeaders();
    this.#heartbeat = setInterval(() => this.#write(HEARTBEAT), this.heartbeatMs);
    this.#heartbeat.unref();
  }

  send(event: ExecutionEventName, data: unknown): void {
    this.open();
    this.#write(formatEvent(event, data));
  }

  /** The last event: the stream ends after it. */
  finish(event: 'result' | 'error', data: unknown): void {
    this.send(event, data);
    this.#stopHeartbeat();
    if (!this.#gone) this.sink.end();
  }

  get #gone(): boolean {
    return this.sink.writableEnded || this.sink.destroyed;
  }

  #write(text: string): void {
    if (!this.#gone) this.sink.write(text);
  }

  #stopHeartbeat(): void {
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
  }
}
