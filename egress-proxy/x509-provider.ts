/**
 * @peculiar/x509 signs through WebCrypto; point it at Node's implementation
 * once, for every module that issues certificates.
 */
import { webcrypto } from 'node:crypto';
import './reflect-metadata.ts';
import * as x509 from '@peculiar/x509';

export const subtle = webcrypto.subtle;
x509.cryptoProvider.set(webcrypto);

export type CryptoKey = webcrypto.CryptoKey;
export type CryptoKeyPair = webcrypto.CryptoKeyPair;

export const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256' } as const;
export const ECDSA_SHA256 = { name: 'ECDSA', hash: 'SHA-256' } as const;

/** A random positive 128-bit serial (RFC 5280 wants it unpredictable and at most 20 octets). */
export function randomSerial(): string {
  const bytes = webcrypto.getRandomValues(new Uint8Array(16));
  bytes[0] = (bytes[0] ?? 0) & 0x7f;
  return Buffer.from(bytes).toString('hex');
}

export { x509 };
