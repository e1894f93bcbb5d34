/**
 * The development signing key: made on first start when no key is configured
 * (outside production), kept in `DATA_DIR/dev-keys/` so tokens minted before a
 * restart stay valid after it. Only the private key is stored; the public key
 * and its JWKS are derived from it.
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, SignJWT, type JSONWebKeySet, type JWK } from 'jose';

export const DEV_KEY_ALGORITHM = 'ES256';
export const DEV_KEY_FILE = 'signing-key.pem';

export interface DevelopmentKeys {
  privateKey: KeyObject;
  publicKey: KeyObject;
  /** JWK thumbprint of the public key: the `kid` of minted tokens and of the served JWKS. */
  kid: string;
  /** What `GET /.well-known/jwks.json` serves. */
  jwks: JSONWebKeySet;
  /** The key file, for the start-up banner. */
  path: string;
}

export async function loadOrCreateDevelopmentKeys(dataDir: string): Promise<DevelopmentKeys> {
  const directory = join(dataDir, 'dev-keys');
  await mkdir(directory, { recursive: true, mode: 0o700 });
  const path = join(directory, DEV_KEY_FILE);
  const pem = await readOrCreatePrivateKey(path);
  // The key file is a credential: keep it owner-only even if someone loosened it.
  await chmod(path, 0o600);
  const privateKey = createPrivateKey(pem);
  const publicKey = createPublicKey(privateKey);
  const publicJwk: JWK = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(publicJwk);
  return {
    privateKey,
    publicKey,
    kid,
    jwks: { keys: [{ ...publicJwk, kid, alg: DEV_KEY_ALGORITHM, use: 'sig' }] },
    path,
  };
}

async function readOrCreatePrivateKey(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  try {
    // `wx`: never overwrite a key another process created meanwhile; its tokens are in use.
    await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
    return pem;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return readFile(path, 'utf8');
    throw error;
  }
}

export interface DemoTokenOptions {
  subject?: string;
  lifetimeSeconds?: number;
  issuer?: string;
  audience?: string | string[];
}

/** A token the development key signs, carrying whatever issuer/audience the verifier expects. */
export async function mintDemoToken(keys: DevelopmentKeys, options: DemoTokenOptions = {}): Promise<string> {
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: DEV_KEY_ALGORITHM, kid: keys.kid, typ: 'JWT' })
    .setSubject(options.subject ?? 'demo-user')
    .setIssuedAt()
    .setExpirationTime(`${options.lifetimeSeconds ?? 24 * 3600}s`);
  if (options.issuer !== undefined) jwt.setIssuer(options.issuer);
  if (options.audience !== undefined) jwt.setAudience(options.audience);
  return jwt.sign(keys.privateKey);
}
