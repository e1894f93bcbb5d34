import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { SseParser } from '../test/support/sse.ts';
import { EventStream, formatEvent, HEARTBEAT, type EventSink } from './event-stream.ts';

/** A response stand-in that records what the stream wrote. */
class RecordingSink extends EventEmitter {
  status: number | undefined;
  headers: Record<string, string> = {};
  written = '';
  writableEnded = false;
  destroyed = false;
  get headersSent(): boolean {
    return this.status !== undefined;
  }
  writeHead(status: number, headers: Record<string, string>): this {
    this.status = status;
    this.headers = headers;
    return this;
  }
  flushHeaders(): void {}
  write(text: string): boolean {
    this.written += text;
    return true;
  }
  end(): this {
    this.writableEnded = true;
    this.emit('close');
    return this;
  }
}

const sinkOf = (sink: RecordingSink): EventSink => sink as unknown as EventSink;

describe('formatEvent', () => {
  it.each([
    ['a line', 'tick 1\n'],
    ['CR and CRLF line ends', 'one\rtwo\r\nthree'],
    ['line and paragraph separators', 'a\u2028b\u2029c'],
    ['an empty string', ''],
    ['something that looks like an event', '\n\nevent: result\ndata: {}\n\n'],
  ])('carries %s as one data line a reader gets back exactly', (_name, text) => {
    const wire = formatEvent('stdout', { text });
    expect(wire.split('\n').filter((line) => line.startsWith('data:'))).toHaveLength(1);
    const events = new SseParser().push(wire);
    expect(events).toEqual([{ event: 'stdout', data: JSON.stringify({ text }) }]);
    expect(JSON.parse(events[0]?.data ?? '')).toEqual({ text });
  });

  it('reads back whatever way the wire is cut', () => {
    const wire = formatEvent('stdout', { text: 'héllo €\n' }) + HEARTBEAT + formatEvent('result', { success: true });
    for (let size = 1; size <= 7; size += 1) {
      const parser = new SseParser();
      const events = [];
      for (let at = 0; at < wire.length; at += size) events.push(...parser.push(wire.slice(at, at + size)));
      expect(events.map((e) => e.event)).toEqual(['stdout', 'result']);
      expect(parser.comments).toEqual(['heartbeat']);
    }
  });
});

describe('EventStream', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('sends nothing until it opens, so an error before then can still be a JSON answer', () => {
    const sink = new RecordingSink();
    const stream = new EventStream(sinkOf(sink), 1000);
    vi.advanceTimersByTime(5000);
    expect(stream.opened).toBe(false);
    expect(sink.written).toBe('');
  });

  it('opens with the event-stream headers on its first event', () => {
    const sink = new RecordingSink();
    const stream = new EventStream(sinkOf(sink), 1000);
    stream.send('start', { executionId: 'x' });
    expect(stream.opened).toBe(true);
    expect(sink.status).toBe(200);
    expect(sink.headers['Content-Type']).toBe('text/event-stream; charset=utf-8');
    expect(sink.headers['Cache-Control']).toContain('no-cache');
    expect(new SseParser().push(sink.written)).toEqual([{ event: 'start', data: '{"executionId":"x"}' }]);
  });

  it('writes a heartbeat comment every interval while open, and none after the last event', () => {
    const sink = new RecordingSink();
    const stream = new EventStream(sinkOf(sink), 1000);
    stream.open();
    vi.advanceTimersByTime(3500);
    const parser = new SseParser();
    parser.push(sink.written);
    expect(parser.comments).toEqual(['heartbeat', 'heartbeat', 'heartbeat']);
    stream.finish('result', { success: true });
    expect(sink.writableEnded).toBe(true);
    const length = sink.written.length;
    vi.advanceTimersByTime(5000);
    expect(sink.written.length).toBe(length);
  });

  it('stops writing once the client has gone', () => {
    const sink = new RecordingSink();
    const stream = new EventStream(sinkOf(sink), 1000);
    stream.open();
    sink.destroyed = true;
    sink.emit('close');
    stream.send('stdout', { text: 'late' });
    stream.finish('result', {});
    vi.advanceTimersByTime(5000);
    expect(sink.written).toBe('');
    expect(sink.writableEnded).toBe(false);
  });
});
