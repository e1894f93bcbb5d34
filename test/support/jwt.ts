/**
 * JWT helpers for tests: key pairs, minting tokens (well-formed or
 * deliberately broken), and a loopback server that records every request,
 * to prove a URL named inside a token was never fetched.
 */
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, SignJWT, type JWK, type JWTPayload, type JWTHeaderParameters } from 'jose';

export const TEST_ISSUER = 'https://issuer.test';
export const TEST_AUDIENCE = 'sandbox-service';
/** 48 bytes: above the 32-byte minimum the service enforces for HS256. */
export const TEST_HS_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456';

export interface TestKeyPair {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** SPKI PEM, as JWT_PUBLIC_KEY takes it. */
  publicPem: string;
  publicJwk: JWK;
}

export async function rsaKeyPair(): Promise<TestKeyPair> {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return {
    privateKey,
    publicKey,
    publicPem: publicKey.export({ type: 'spki', format: 'pem' }).toString(),
    publicJwk: await exportJWK(publicKey),
  };
}

export interface MintOptions {
  alg?: string;
  /** `null` leaves the claim out. */
  sub?: string | null;
  iss?: string | null;
  aud?: string | null;
  /** Seconds from now; `null` leaves `exp` out. */
  expiresIn?: number | null;
  /** Seconds from now. */
  notBefore?: number;
  /** Seconds from now (default 0); `null` leaves `iat` out. */
  issuedAt?: number | null;
  claims?: JWTPayload;
  /** Extra protected-header members (`kid`, `jku`, `jwk`, …). */
  header?: Partial<JWTHeaderParameters>;
}

const now = (): number => Math.floor(Date.now() / 1000);

/** A signed token with the test issuer and audience unless told otherwise. */
export async function mintToken(key: KeyObject | Uint8Array | string, options: MintOptions = {}): Promise<string> {
  const alg = options.alg ?? 'RS256';
  const claims: JWTPayload = { ...options.claims };
  if (options.sub !== null) claims.sub = options.sub ?? 'alice';
  if (options.iss !== null) claims.iss = options.iss ?? TEST_ISSUER;
  if (options.aud !== null) claims.aud = options.aud ?? TEST_AUDIENCE;
  if (options.issuedAt !== null) claims.iat = now() + (options.issuedAt ?? 0);
  if (options.expiresIn !== null) claims.exp = now() + (options.expiresIn ?? 3600);
  if (options.notBefore !== undefined) claims.nbf = now() + options.notBefore;
  const signingKey = typeof key === 'string' ? new TextEncoder().encode(key) : key;
  return new SignJWT(claims).setProtectedHeader({ ...options.header, alg }).sign(signingKey);
}

const base64url = (value: unknown): string => Buffer.from(JSON.stringify(value)).toString('base64url');

/** A token assembled by hand: for `alg: none` and other shapes no honest library produces. */
export function handmadeToken(header: Record<string, unknown>, claims: JWTPayload, signature = ''): string {
  return `${base64url(header)}.${base64url(claims)}.${signature}`;
}

export interface RecordingServer {
  url: string;
  /** Request paths received, in order. */
  readonly requests: string[];
  close(): Promise<void>;
}

/** A loopback server answering `body` as JSON to every request, and recording each one. */
export async function startRecordingServer(body: unknown = {}): Promise<RecordingServer> {
  const requests: string[] = [];
  const server = http.createServer((req, res) => {
    requests.push(req.url ?? '');
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A loopback port with nothing listening on it. */
export async function closedPort(): Promise<number> {
  const server = http.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
