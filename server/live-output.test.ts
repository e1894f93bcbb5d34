import { describe, expect, it } from 'vitest';
import { scrubText } from '../egress-proxy/index.ts';
import { SecretBinding } from '../policies/index.ts';
import { LiveText } from './live-output.ts';

const VALUE = 'sk_live_0123456789abcdef';
const binding = SecretBinding.fromSpecs([{ name: 'STRIPE_KEY', value: VALUE, hosts: ['api.stripe.com'], in: ['header'], source: 'request' }]);
const PLACEHOLDER = binding.secrets[0]?.placeholder ?? '';

/** Feeds `chunks` and returns the texts emitted, in order. */
function run(secrets: SecretBinding, chunks: readonly Buffer[], truncated = false): string[] {
  const texts: string[] = [];
  const live = new LiveText(secrets, (text) => texts.push(text));
  for (const chunk of chunks) live.write(chunk);
  live.end(truncated);
  return texts;
}

/** Every byte on its own. */
const bytewise = (text: string): Buffer[] => [...Buffer.from(text, 'utf8')].map((byte) => Buffer.from([byte]));

describe('LiveText', () => {
  it('passes output through as it comes when the execution has no secrets', () => {
    const texts: string[] = [];
    const live = new LiveText(SecretBinding.EMPTY, (text) => texts.push(text));
    live.write(Buffer.from('tick 1\n'));
    expect(texts).toEqual(['tick 1\n']);
  });

  it('never splits a multi-byte character, whatever way its bytes arrive', () => {
    const text = 'a€b😀c\n';
    const texts = run(SecretBinding.EMPTY, bytewise(text));
    expect(texts.join('')).toBe(text);
    for (const piece of texts) expect(piece).not.toContain('\uFFFD');
  });

  it('holds a character back until its last byte, then emits it whole', () => {
    const texts: string[] = [];
    const live = new LiveText(SecretBinding.EMPTY, (text) => texts.push(text));
    const euro = Buffer.from('€', 'utf8');
    live.write(euro.subarray(0, 2));
    expect(texts).toEqual([]);
    live.write(euro.subarray(2));
    expect(texts).toEqual(['€']);
  });

  it('replaces a secret value split across writes, and emits what it scrubbed as the final result would', () => {
    const output = `token=${VALUE}\nhéllo\n`;
    const texts = run(binding, bytewise(output));
    expect(texts.join('')).toBe(`token=${PLACEHOLDER}\nhéllo\n`);
    expect(texts.join('')).toBe(scrubText(output, binding));
    expect(texts.join('')).not.toContain(VALUE);
  });

  it('masks the start of a value cut off at the output cap, as the final result does', () => {
    const output = `end ${VALUE.slice(0, 10)}`;
    expect(run(binding, [Buffer.from(output)], true).join('')).toBe(scrubText(output, binding, { truncated: true }));
    expect(run(binding, [Buffer.from(output)], true).join('')).not.toContain(VALUE.slice(0, 10));
  });
});
