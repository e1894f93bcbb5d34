import { describe, expect, it } from 'vitest';
import { parseDeb822, parseOneLine } from './lib/apt-source.ts';
import { imageInputsHash, imageTag } from './index.ts';

describe('image inputs', () => {
  it('tags the node image with the first 12 hex digits of its inputs hash', async () => {
    const [tag, hash] = await Promise.all([imageTag('node'), imageInputsHash('node')]);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(tag).toBe(`sandbox-node:${hash.slice(0, 12)}`);
    expect(await imageTag('node')).toBe(tag);
  });

  it('reads mirrors from deb822 and one-line apt sources', () => {
    const deb822 = [
      'Types: deb deb-src',
      'URIs: http://mirror.local/debian',
      'Suites: bookworm bookworm-updates',
      'Components: main',
      '',
      'Enabled: no',
      'Types: deb',
      'URIs: http://disabled.local/debian',
      'Suites: bookworm',
    ].join('\n');
    expect(parseDeb822(deb822)).toEqual([{ types: ['deb', 'deb-src'], uris: ['http://mirror.local/debian'], suites: ['bookworm', 'bookworm-updates'] }]);
    expect(parseOneLine('# comment\ndeb [arch=amd64 signed-by=/k.gpg] http://m.local/debian bookworm main\n')).toEqual([
      { types: ['deb'], uris: ['http://m.local/debian'], suites: ['bookworm'] },
    ]);
  });

  it('tags the python image with the first 12 hex digits of its inputs hash', async () => {
    const [tag, hash] = await Promise.all([imageTag('python'), imageInputsHash('python')]);
    expect(tag).toBe(`sandbox-python:${hash.slice(0, 12)}`);
  });
});
