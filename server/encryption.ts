/**
 * Response encryption (`encrypt_messages`, DESIGN §8): the whole JSON answer
 * becomes `{ "encrypted": true, "data": "<compact JWE>" }`, sealed with
 * `dir` + `A256GCM` under the key in RESPONSE_ENCRYPTION_KEY.
 *
 * The key is 32 bytes written as 64 hex digits or as base64url (43
 * characters, padding and standard base64 accepted too), the forms
 * `openssl rand -hex 32` and `openssl rand -base64 32` print.
 */
import { CompactEncrypt } from 'jose';

export const RESPONSE_KEY_BYTES = 32;
export const JWE_ALGORITHM = 'dir';
export const JWE_ENCRYPTION = 'A256GCM';

/** What the client gets instead of the plain body. */
export interface EncryptedEnvelope {
  encrypted: true;
  data: string;
}

/** The 32 key bytes, or null when the text is neither 64 hex digits nor base64(url) of 32 bytes. */
export function decodeResponseKey(text: string): Uint8Array | null {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) return new Uint8Array(Buffer.from(trimmed, 'hex'));
  if (!/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(trimmed)) return null;
  const bytes = Buffer.from(trimmed.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), 'base64url');
  return bytes.length === RESPONSE_KEY_BYTES ? new Uint8Array(bytes) : null;
}

export const RESPONSE_KEY_FORMAT = `${RESPONSE_KEY_BYTES} bytes as 64 hex digits or base64url (e.g. \`openssl rand -hex 32\`)`;

export class ResponseEncryptor {
  readonly #key: Uint8Array;

  constructor(key: Uint8Array) {
    if (key.length !== RESPONSE_KEY_BYTES) throw new RangeError(`the response key must be ${RESPONSE_KEY_BYTES} bytes`);
    this.#key = key;
  }

  /** `body` as JSON, sealed in a compact JWE whose header says what it is. */
  async seal(body: unknown): Promise<EncryptedEnvelope> {
    const data = await new CompactEncrypt(new TextEncoder().encode(JSON.stringify(body)))
      .setProtectedHeader({ alg: JWE_ALGORITHM, enc: JWE_ENCRYPTION, cty: 'application/json' })
      .encrypt(this.#key);
    return { encrypted: true, data };
  }
}

/** The part of an Express response this module replaces. */
interface JsonResponse {
  json(body: unknown): unknown;
  status(code: number): unknown;
}

/**
 * From now on every JSON answer on `res` (success or error, whatever sets
 * it) is sealed first. Should sealing fail, the client gets a plain generic
 * 500: never the unsealed body it asked to have encrypted.
 */
export function sealJsonResponses(res: JsonResponse, encryptor: ResponseEncryptor, onFailure: (error: unknown) => void): void {
  const send = res.json.bind(res);
  res.json = (body: unknown) => {
    encryptor.seal(body).then(
      (envelope) => send(envelope),
      (error: unknown) => {
        onFailure(error);
        res.status(500);
        send({ success: false, error: 'Internal error', code: 'ENCRYPTION_FAILED' });
      },
    );
    return res;
  };
}
