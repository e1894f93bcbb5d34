/**
 * Where verification keys come from and which algorithms they may verify.
 * Exactly one source is used: a JWKS URL, a public key (PEM, X.509 or JWK,
 * inline or from a file), an HMAC secret, or, outside production, the
 * development key. Keys named inside a token (`jku`, `x5u`, `jwk`) are never
 * consulted: verification only ever sees the key chosen here.
 *
 * The algorithm allowlist is derived from the key type and an explicit
 * JWT_ALGORITHMS must fit it, so an HMAC algorithm can never be paired with a
 * public key (the classic algorithm-confusion attack signs HS256 with the
 * public key's bytes as the secret).
 */
import { createPublicKey, X509Certificate, type JsonWebKey, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createLocalJWKSet, createRemoteJWKSet, errors, type JSONWebKeySet, type JWK, type JWTVerifyGetKey } from 'jose';
import { ConfigError, type Config } from '../config.ts';
import { KeySourceUnavailableError } from './errors.ts';
import { DEV_KEY_ALGORITHM, loadOrCreateDevelopmentKeys, type DevelopmentKeys } from './dev-keys.ts';

export type KeySourceKind = 'jwks-url' | 'jwks' | 'public-key' | 'secret' | 'development';

export interface KeySource {
  kind: KeySourceKind;
  key: KeyObject | Uint8Array | JWTVerifyGetKey;
  algorithms: readonly string[];
  /** For the start-up log line: what is being trusted, never key material. */
  description: string;
  /** Present only in development mode. */
  development?: DevelopmentKeys;
}

type KeySettings = Pick<Config, 'NODE_ENV' | 'DATA_DIR' | 'JWT_JWKS_URL' | 'JWT_PUBLIC_KEY' | 'JWT_SECRET' | 'JWT_ALGORITHMS'>;

const RSA_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'];
const EC_ALGORITHMS: Record<string, string> = { prime256v1: 'ES256', secp384r1: 'ES384', secp521r1: 'ES512' };
const EDDSA_ALGORITHMS = ['EdDSA', 'Ed25519'];
const ASYMMETRIC_ALGORITHMS = [...RSA_ALGORITHMS, ...Object.values(EC_ALGORITHMS), ...EDDSA_ALGORITHMS];
const HMAC_ALGORITHMS = ['HS256', 'HS384', 'HS512'];
/** RFC 7518 §3.2: an HMAC key at least as long as the hash output. */
export const MIN_SECRET_BYTES = 32;
const JWKS_TIMEOUT_MS = 5_000;

export const NO_KEY_IN_PRODUCTION =
  'NODE_ENV=production needs a verification key: set one of JWT_JWKS_URL, JWT_PUBLIC_KEY or JWT_SECRET';

export async function loadKeySource(config: KeySettings): Promise<KeySource> {
  const configured = (['JWT_JWKS_URL', 'JWT_PUBLIC_KEY', 'JWT_SECRET'] as const).filter((name) => config[name] !== undefined);
  if (configured.length > 1) {
    throw new ConfigError([`${configured.join(', ')}: set only one verification key source`]);
  }
  const source = await keySourceFromSettings(config);
  return { ...source, algorithms: allowedAlgorithms(config.JWT_ALGORITHMS, source) };
}

type UncheckedSource = Omit<KeySource, 'algorithms'> & { compatible: readonly string[]; defaults: readonly string[] };

async function keySourceFromSettings(config: KeySettings): Promise<UncheckedSource> {
  if (config.JWT_JWKS_URL !== undefined) return jwksUrlSource(config.JWT_JWKS_URL, config.NODE_ENV);
  if (config.JWT_PUBLIC_KEY !== undefined) return publicKeySource(config.JWT_PUBLIC_KEY);
  if (config.JWT_SECRET !== undefined) return secretSource(config.JWT_SECRET);
  if (config.NODE_ENV === 'production') throw new ConfigError([NO_KEY_IN_PRODUCTION]);
  const development = await loadOrCreateDevelopmentKeys(config.DATA_DIR);
  return {
    kind: 'development',
    key: development.publicKey,
    description: `development key ${development.path}`,
    development,
    compatible: [DEV_KEY_ALGORITHM],
    defaults: [DEV_KEY_ALGORITHM],
  };
}

function jwksUrlSource(url: string, nodeEnv: string): UncheckedSource {
  const parsed = new URL(url);
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(parsed.hostname);
  if (nodeEnv === 'production' && parsed.protocol !== 'https:' && !loopback) {
    // Whoever can rewrite a plain-HTTP JWKS response can mint tokens.
    throw new ConfigError(['JWT_JWKS_URL: must be https in production']);
  }
  return {
    kind: 'jwks-url',
    key: reportingUnavailability(createRemoteJWKSet(parsed, { timeoutDuration: JWKS_TIMEOUT_MS }), parsed.href),
    description: `JWKS ${parsed.href}`,
    compatible: ASYMMETRIC_ALGORITHMS,
    defaults: ASYMMETRIC_ALGORITHMS,
  };
}

/**
 * jose reports an unreachable or broken JWKS endpoint with generic errors;
 * those are told apart here from the token naming a key the set lacks, so the
 * caller gets 503 for our outage and 401 only for their token.
 */
function reportingUnavailability(jwks: JWTVerifyGetKey, url: string): JWTVerifyGetKey {
  return async (header, token) => {
    try {
      return await jwks(header, token);
    } catch (error) {
      if (error instanceof errors.JWKSNoMatchingKey || error instanceof errors.JWKSMultipleMatchingKeys) throw error;
      if (error instanceof errors.JOSENotSupported || error instanceof errors.JWKInvalid) throw error;
      throw new KeySourceUnavailableError(`JWKS ${url} unavailable: ${(error as Error).message}`, { cause: error });
    }
  };
}

function secretSource(secret: string): UncheckedSource {
  const bytes = new TextEncoder().encode(secret);
  if (bytes.length < MIN_SECRET_BYTES) {
    throw new ConfigError([`JWT_SECRET: must be at least ${MIN_SECRET_BYTES} bytes (it is ${bytes.length})`]);
  }
  return { kind: 'secret', key: bytes, description: 'HMAC secret', compatible: HMAC_ALGORITHMS, defaults: ['HS256'] };
}

/** JWT_PUBLIC_KEY: inline PEM, inline JWK or JWK Set JSON, or the path of a file holding one of those. */
async function publicKeySource(value: string): Promise<UncheckedSource> {
  const inline = looksInline(value);
  let text = value;
  if (!inline) {
    try {
      text = await readFile(value, 'utf8');
    } catch (error) {
      throw new ConfigError([`JWT_PUBLIC_KEY: neither a PEM/JWK value nor a readable file (${(error as Error).message})`]);
    }
  }
  const origin = inline ? 'inline' : value;
  try {
    return looksLikeJson(text) ? jwkSource(JSON.parse(text) as unknown, origin) : pemSource(text, origin);
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    throw new ConfigError([`JWT_PUBLIC_KEY: not a usable public key (${(error as Error).message})`]);
  }
}

const looksLikeJson = (text: string): boolean => text.trimStart().startsWith('{');
const looksInline = (text: string): boolean => looksLikeJson(text) || text.trimStart().startsWith('-----BEGIN');

function pemSource(pem: string, origin: string): UncheckedSource {
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new ConfigError(['JWT_PUBLIC_KEY: this is a private key; configure the public key only']);
  }
  const key = pem.includes('-----BEGIN CERTIFICATE-----') ? new X509Certificate(pem).publicKey : createPublicKey(pem);
  return keyObjectSource(key, `public key (${origin})`);
}

function jwkSource(json: unknown, origin: string): UncheckedSource {
  if (typeof json !== 'object' || json === null) throw new ConfigError(['JWT_PUBLIC_KEY: JSON must be a JWK or a JWK Set']);
  if ('keys' in json && Array.isArray(json.keys)) {
    const set = json as JSONWebKeySet;
    set.keys.forEach((jwk, index) => assertPublicJwk(jwk, `keys[${index}]`));
    return {
      kind: 'jwks',
      key: createLocalJWKSet(set),
      description: `JWK Set of ${set.keys.length} key(s) (${origin})`,
      compatible: ASYMMETRIC_ALGORITHMS,
      defaults: ASYMMETRIC_ALGORITHMS,
    };
  }
  const jwk = json as JWK;
  assertPublicJwk(jwk, 'JWK');
  const source = keyObjectSource(createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }), `public JWK (${origin})`);
  // A JWK that names its algorithm narrows the default to that one.
  return typeof jwk.alg === 'string' && source.compatible.includes(jwk.alg) ? { ...source, defaults: [jwk.alg] } : source;
}

function assertPublicJwk(jwk: JWK, where: string): void {
  if (jwk.kty === 'oct') throw new ConfigError([`JWT_PUBLIC_KEY: ${where} is a symmetric key; use JWT_SECRET for HMAC`]);
  if (jwk.d !== undefined) throw new ConfigError([`JWT_PUBLIC_KEY: ${where} contains a private key; configure the public key only`]);
}

function keyObjectSource(key: KeyObject, description: string): UncheckedSource {
  const algorithms = algorithmsForKey(key);
  return { kind: 'public-key', key, description: `${description}, ${key.asymmetricKeyType ?? 'unknown'} key`, compatible: algorithms, defaults: algorithms };
}

function algorithmsForKey(key: KeyObject): string[] {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') return RSA_ALGORITHMS;
  if (type === 'rsa-pss') return RSA_ALGORITHMS.filter((alg) => alg.startsWith('PS'));
  if (type === 'ed25519') return EDDSA_ALGORITHMS;
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve ?? '(unknown)';
    const alg = EC_ALGORITHMS[curve];
    if (alg === undefined) throw new ConfigError([`JWT_PUBLIC_KEY: unsupported EC curve ${curve}`]);
    return [alg];
  }
  throw new ConfigError([`JWT_PUBLIC_KEY: unsupported key type ${type ?? '(unknown)'}`]);
}

function allowedAlgorithms(setting: string | undefined, source: UncheckedSource): string[] {
  if (setting === undefined) return [...source.defaults];
  const requested = [...new Set(setting.split(',').map((alg) => alg.trim()).filter((alg) => alg !== ''))];
  const problems = requested.flatMap((alg) => {
    if (source.compatible.includes(alg)) return [];
    if (HMAC_ALGORITHMS.includes(alg)) return [`JWT_ALGORITHMS: ${alg} needs JWT_SECRET; it is never accepted with a public key (algorithm confusion)`];
    if (ASYMMETRIC_ALGORITHMS.includes(alg) && source.kind === 'secret') return [`JWT_ALGORITHMS: ${alg} needs a public key, not JWT_SECRET`];
    return [`JWT_ALGORITHMS: ${alg} is not usable with the ${source.description}; allowed: ${source.compatible.join(', ')}`];
  });
  if (requested.length === 0) problems.push('JWT_ALGORITHMS: names no algorithm');
  if (problems.length > 0) throw new ConfigError(problems);
  return requested;
}
