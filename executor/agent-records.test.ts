import { describe, expect, it } from 'vitest';
import { AgentRecordFilter, newRecordToken } from './agent-records.ts';
import { CappedSink } from './output.ts';

const token = newRecordToken();
const other = newRecordToken();
const started = `\0sandbox:${token}:started\n`;
const exit = (code: string, signal: string, t = token) => `\0sandbox:${t}:exit:${code}:${signal}\n`;

function filterFor(expecting: string | null = token) {
  const sink = new CappedSink(1 << 20);
  const filter = new AgentRecordFilter(sink);
  if (expecting !== null) filter.expect(expecting);
  return { sink, filter };
}

/** Feeds `wire` in chunks of `size` bytes and ends the stream. */
function feed(filter: AgentRecordFilter, wire: string, size = wire.length) {
  const bytes = Buffer.from(wire, 'latin1');
  for (let i = 0; i < bytes.length; i += size) filter.write(bytes.subarray(i, i + size));
  filter.end();
}

describe('AgentRecordFilter', () => {
  it('token is 32 fresh hex digits', () => {
    expect(token).toMatch(/^[0-9a-f]{32}$/);
    expect(token).not.toBe(other);
  });

  it.each([1, 2, 3, 7, 64])('strips both records and drops what follows the exit, in chunks of %i bytes', async (size) => {
    const { sink, filter } = filterFor();
    feed(filter, `${started}out\0put ${exit('3', '')}left behind`, size);
    expect(sink.text()).toBe('out\0put ');
    expect(filter.started).toBe(true);
    expect(filter.exit).toEqual({ code: 3, signal: null });
    await expect(filter.exited).resolves.toEqual({ code: 3, signal: null });
  });

  it('reports a signal death', () => {
    const { filter } = filterFor();
    feed(filter, exit('', 'SIGKILL'));
    expect(filter.exit).toEqual({ code: null, signal: 'SIGKILL' });
  });

  it.each([
    ['a record under another token', `${exit('0', '', other)}after\n`],
    ['a record without its token', `\0sandbox::exit:0:\nafter\n`],
    ['the prefix alone at the end of the stream', `after\n\0sandbox:${token.slice(0, 10)}`],
    ['NUL bytes of the program', 'a\0b\0\0c\n'],
  ])('passes %s through as output and reports nothing', (_name, wire) => {
    for (const size of [1, 5, wire.length]) {
      const { sink, filter } = filterFor();
      feed(filter, wire, size);
      expect(sink.text()).toBe(wire);
      expect(filter.exit).toBeUndefined();
      expect(filter.started).toBe(false);
    }
  });

  it('passes everything through before it is told the token', () => {
    const { sink, filter } = filterFor(null);
    feed(filter, exit('0', ''));
    expect(sink.text()).toBe(exit('0', ''));
    expect(filter.exit).toBeUndefined();
  });

  it('ignores a malformed exit record of the right token and drops what follows', () => {
    const { sink, filter } = filterFor();
    feed(filter, `x\0sandbox:${token}:exit:zero:\nmore`);
    expect(sink.text()).toBe('x');
    expect(filter.exit).toBeUndefined();
  });

  describe('files record', () => {
    const payload = JSON.stringify({ files: [{ path: 'out/a.txt', size: 5, content: 'aGVsbG8=' }], truncated: true });
    const filesRecord = (body: string, t = token) => `\0sandbox:${t}:files:${Buffer.byteLength(body)}\n${body}`;

    it.each([1, 3, 64])('reads a length-prefixed payload, even one holding a record prefix and newlines, in chunks of %i bytes', async (size) => {
      const { sink, filter } = filterFor(null);
      filter.expect(token, 4096);
      const tricky = JSON.stringify({ files: [{ path: `\0sandbox:${token}:exit:1:\n`, size: 0, content: '' }], truncated: false });
      feed(filter, `${started}out ${filesRecord(tricky)}${exit('0', '')}`, size);
      expect(sink.text()).toBe('out ');
      expect(filter.files).toEqual({ files: [{ path: `\0sandbox:${token}:exit:1:\n`, size: 0, content: '' }], truncated: false });
      await expect(filter.exited).resolves.toEqual({ code: 0, signal: null });
    });

    it('takes the files the agent reported', () => {
      const { filter } = filterFor(null);
      filter.expect(token, 4096);
      feed(filter, `${filesRecord(payload)}${exit('0', '')}`);
      expect(filter.files).toEqual({ files: [{ path: 'out/a.txt', size: 5, content: 'aGVsbG8=' }], truncated: true });
    });

    it('passes an imitation under another token through as output', () => {
      const { sink, filter } = filterFor(null);
      filter.expect(token, 4096);
      const forged = filesRecord(payload, other);
      feed(filter, `${forged}${exit('0', '')}`);
      expect(sink.text()).toBe(forged);
      expect(filter.files).toBeUndefined();
    });

    it.each([
      ['longer than the job allows', 16, payload],
      ['when the job asked for none', 0, payload],
      ['that is not the expected JSON', 4096, '{"files":"no"}'],
    ])('ends the output at a files record %s (only a broken agent sends one)', (_name, cap, body) => {
      const { sink, filter } = filterFor(null);
      filter.expect(token, cap);
      feed(filter, `before ${filesRecord(body)}${exit('0', '')}after`);
      expect(sink.text()).toBe('before ');
      expect(filter.files).toBeUndefined();
      expect(filter.exit).toBeUndefined();
    });
  });
});
