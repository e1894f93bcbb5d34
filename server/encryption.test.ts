import { compactDecrypt, decodeProtectedHeader } from 'jose';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';
import { decodeResponseKey, ResponseEncryptor } from './encryption.ts';

const KEY = Buffer.alloc(32, 7);

describe('decodeResponseKey', () => {
  it.each([
    ['hex', KEY.toString('hex')],
    ['upper-case hex', KEY.toString('hex').toUpperCase()],
    ['base64url', KEY.toString('base64url')],
    ['padded base64', KEY.toString('base64')],
  ])('reads 32 bytes written as %s', (_form, text) => {
    expect(Buffer.from(decodeResponseKey(text)!)).toEqual(KEY);
  });

  it.each([
    ['too short hex', KEY.subarray(0, 16).toString('hex')],
    ['too long base64url', Buffer.alloc(33, 1).toString('base64url')],
    ['a passphrase', 'correct horse battery staple'],
    ['empty', ''],
  ])('refuses %s', (_form, text) => {
    expect(decodeResponseKey(text)).toBeNull();
  });
});

describe('ResponseEncryptor', () => {
  it('seals JSON in a dir/A256GCM compact JWE that jose opens with the key', async () => {
    const body = { success: true, data: { stdout: 'héllo\n' } };
    const envelope = await new ResponseEncryptor(KEY).seal(body);
    expect(envelope.encrypted).toBe(true);
    expect(decodeProtectedHeader(envelope.data)).toMatchObject({ alg: 'dir', enc: 'A256GCM' });
    const { plaintext } = await compactDecrypt(envelope.data, KEY);
    expect(JSON.parse(new TextDecoder().decode(plaintext))).toEqual(body);
  });

  it('uses a fresh IV every time', async () => {
    const encryptor = new ResponseEncryptor(KEY);
    expect((await encryptor.seal({ a: 1 })).data).not.toBe((await encryptor.seal({ a: 1 })).data);
  });

  it('refuses a key of the wrong length', () => {
    expect(() => new ResponseEncryptor(new Uint8Array(16))).toThrow(RangeError);
  });
});

describe('RESPONSE_ENCRYPTION_KEY at start-up', () => {
  it('is refused when it is not 32 bytes, named without its value', () => {
    const bad = 'not-a-32-byte-key-but-a-passphrase';
    let message = '';
    try {
      loadConfig({ RESPONSE_ENCRYPTION_KEY: bad });
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      message = (error as Error).message;
    }
    expect(message).toMatch(/RESPONSE_ENCRYPTION_KEY: must be 32 bytes/);
    expect(message).not.toContain(bad);
  });

  it('is accepted as hex or base64url', () => {
    expect(loadConfig({ RESPONSE_ENCRYPTION_KEY: KEY.toString('hex') }).RESPONSE_ENCRYPTION_KEY).toBe(KEY.toString('hex'));
    expect(loadConfig({ RESPONSE_ENCRYPTION_KEY: KEY.toString('base64url') }).RESPONSE_ENCRYPTION_KEY).toBeDefined();
  });
});
