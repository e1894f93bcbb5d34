/**
 * A Server-Sent Events reader for tests, after the WHATWG parsing rules:
 * lines end in CRLF, LF or CR; `:` starts a comment; `data:` lines join
 * with LF; a blank line dispatches the event. Comments are kept so tests
 * can see heartbeats.
 */
export interface SseEvent {
  event: string;
  data: string;
}

export class SseParser {
  #buffer = '';
  #event = '';
  #data: string[] = [];
  /** Comment lines seen so far, without their colon. */
  readonly comments: string[] = [];

  /** Feeds text (whole characters); returns the events it completed. */
  push(text: string): SseEvent[] {
    this.#buffer += text;
    const events: SseEvent[] = [];
    for (;;) {
      const match = /\r\n|\r|\n/u.exec(this.#buffer);
      // A lone CR at the end may be the first half of CRLF: wait for more.
      if (match === null || (match[0] === '\r' && match.index === this.#buffer.length - 1)) break;
      const line = this.#buffer.slice(0, match.index);
      this.#buffer = this.#buffer.slice(match.index + match[0].length);
      const event = this.#line(line);
      if (event !== null) events.push(event);
    }
    return events;
  }

  #line(line: string): SseEvent | null {
    if (line === '') {
      if (this.#data.length === 0) {
        this.#event = '';
        return null;
      }
      const event = { event: this.#event || 'message', data: this.#data.join('\n') };
      this.#event = '';
      this.#data = [];
      return event;
    }
    if (line.startsWith(':')) {
      this.comments.push(line.slice(1).trimStart());
      return null;
    }
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.#event = value;
    else if (field === 'data') this.#data.push(value);
    return null;
  }
}

export interface ArrivedEvent extends SseEvent {
  /** Date.now() when the reader parsed it (comparable with timestamps a sandboxed program prints: same clock). */
  arrivedAt: number;
}

export interface EventStreamResponse {
  status: number;
  headers: Headers;
  /** The events, as they are parsed; ends with the response. */
  events: AsyncGenerator<ArrivedEvent>;
  /** The body when the answer is not an event stream. */
  json(): Promise<any>;
  /** Comments (heartbeats) seen so far. */
  comments: readonly string[];
}

/** POSTs JSON asking for an event stream; `signal` closes the connection. */
export async function postForEvents(url: string, body: unknown, headers: Record<string, string> = {}, signal?: AbortSignal): Promise<EventStreamResponse> {
  const response = await fetch(url, {
    method: 'POST',
    body: JSON.stringify(body),
    headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
    ...(signal === undefined ? {} : { signal }),
  });
  const parser = new SseParser();
  async function* events(): AsyncGenerator<ArrivedEvent> {
    const decoder = new TextDecoder('utf-8');
    const reader = response.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      for (const event of parser.push(decoder.decode(value, { stream: true }))) yield { ...event, arrivedAt: Date.now() };
    }
    // An event the stream did not finish with a blank line is dropped, as the standard says.
    for (const event of parser.push(decoder.decode())) yield { ...event, arrivedAt: Date.now() };
  }
  return { status: response.status, headers: response.headers, events: events(), json: () => response.json(), comments: parser.comments };
}

/** Reads every event to the end of the stream. */
export async function allEvents(response: EventStreamResponse): Promise<ArrivedEvent[]> {
  const out: ArrivedEvent[] = [];
  for await (const event of response.events) out.push(event);
  return out;
}
