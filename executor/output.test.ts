import { describe, expect, it } from 'vitest';
import { CappedSink, DockerStreamDemuxer } from './output.ts';

function frame(type: number, payload: string): Buffer {
  const body = Buffer.from(payload);
  const header = Buffer.alloc(8);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

describe('DockerStreamDemuxer', () => {
  it('splits stdout and stderr frames, even when chunks cut headers and payloads', () => {
    const out = new CappedSink(1024);
    const err = new CappedSink(1024);
    const demux = new DockerStreamDemuxer(out, err);
    const wire = Buffer.concat([frame(1, 'hello '), frame(2, 'oops'), frame(1, 'world')]);
    for (let i = 0; i < wire.length; i += 3) demux.push(wire.subarray(i, i + 3));
    expect(out.text()).toBe('hello world');
    expect(err.text()).toBe('oops');
  });
});

describe('CappedSink', () => {
  it('keeps at most the cap, counts the rest and flags truncation', () => {
    const sink = new CappedSink(5);
    sink.write(Buffer.from('abc'));
    sink.write(Buffer.from('defgh'));
    expect(sink.text()).toBe('abcde');
    expect(sink.total).toBe(8);
    expect(sink.truncated).toBe(true);
  });

  it('is not truncated at exactly the cap', () => {
    const sink = new CappedSink(3);
    sink.write(Buffer.from('abc'));
    expect(sink.truncated).toBe(false);
  });
});

describe('CappedSink.listen', () => {
  it('hands on the kept bytes as they arrive, and nothing past the cap', () => {
    const sink = new CappedSink(8);
    const seen: string[] = [];
    sink.listen((chunk) => seen.push(chunk.toString()));
    sink.write(Buffer.from('hello '));
    expect(seen).toEqual(['hello ']);
    sink.write(Buffer.from('world'));
    sink.write(Buffer.from('more'));
    expect(seen).toEqual(['hello ', 'wo']);
    expect(sink.text()).toBe('hello wo');
    expect(sink.truncated).toBe(true);
  });
});
