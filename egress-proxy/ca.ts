/**
 * The deployment's own CA, made on first start in `${dataDir}/ca/` and reused
 * after that, so a sandbox image or an operator can trust it once.
 * `ca.key.pem` is 0600 (the directory 0700), `ca.pem` 0644.
 */
import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { EgressError } from './errors.ts';
import { ECDSA_P256, ECDSA_SHA256, randomSerial, subtle, x509 } from './x509-provider.ts';
import type { CryptoKey } from './x509-provider.ts';

export const CA_CERT_FILE = 'ca.pem';
export const CA_KEY_FILE = 'ca.key.pem';
const CA_LIFETIME_MS = 10 * 365 * 24 * 3600 * 1000;

export interface CertificateAuthority {
  readonly certPem: string;
  readonly cert: x509.X509Certificate;
  readonly privateKey: CryptoKey;
  /** Where the files live. */
  readonly certPath: string;
  readonly keyPath: string;
}

/** Loads the CA from `${dataDir}/ca/`, creating it if neither file exists yet. */
export async function loadOrCreateCa(dataDir: string): Promise<CertificateAuthority> {
  const dir = path.join(dataDir, 'ca');
  const certPath = path.join(dir, CA_CERT_FILE);
  const keyPath = path.join(dir, CA_KEY_FILE);
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });

  const [certExists, keyExists] = await Promise.all([exists(certPath), exists(keyPath)]);
  if (certExists && !keyExists) {
    // Regenerating here would silently invalidate whatever already trusts the old CA.
    throw new EgressError('ERR_EGRESS_CA', `CA is incomplete in ${dir}: ${CA_KEY_FILE} is missing`);
  }
  // A key without a certificate is another process mid-creation: loadCa waits for the certificate.
  if (!keyExists) {
    const created = await createCa();
    try {
      await writeCaFiles(dir, certPath, keyPath, created.certPem, created.keyPem);
    } catch (err) {
      // Another process won the race to create it: use theirs.
      if (!isCode(err, 'EEXIST')) throw err;
    }
  }
  return loadCa(certPath, keyPath);
}

async function createCa(): Promise<{ certPem: string; keyPem: string }> {
  const keys = (await subtle.generateKey(ECDSA_P256, true, ['sign', 'verify']));
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    // A per-deployment suffix, so two deployments' CAs are told apart in a trust store.
    name: [{ CN: [`Sandbox Egress CA ${randomBytes(4).toString('hex')}`] }, { O: ['Sandbox Egress Proxy'] }],
    notBefore: new Date(now - 3600_000),
    notAfter: new Date(now + CA_LIFETIME_MS),
    signingAlgorithm: ECDSA_SHA256,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  const pkcs8 = await subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem'), keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') };
}

/**
 * Key first, created exclusively (`wx`) with 0600 from the start, so it is
 * never readable by others even for a moment and two racing starts cannot
 * both write one.
 */
async function writeCaFiles(dir: string, certPath: string, keyPath: string, certPem: string, keyPem: string): Promise<void> {
  await fs.writeFile(keyPath, keyPem, { mode: 0o600, flag: 'wx' });
  const tmp = path.join(dir, `.${CA_CERT_FILE}.${process.pid}.tmp`);
  await fs.writeFile(tmp, certPem, { mode: 0o644 });
  await fs.chmod(tmp, 0o644);
  await fs.rename(tmp, certPath);
}

async function loadCa(certPath: string, keyPath: string): Promise<CertificateAuthority> {
  const keyStat = await fs.stat(keyPath);
  if ((keyStat.mode & 0o077) !== 0) {
    throw new EgressError('ERR_EGRESS_CA', `CA key ${keyPath} is readable by others (mode ${(keyStat.mode & 0o777).toString(8)}); chmod 600 it`);
  }
  let cert: x509.X509Certificate;
  let privateKey: CryptoKey;
  let certPem: string;
  try {
    certPem = await readWhenPresent(certPath);
  } catch (err) {
    throw new EgressError('ERR_EGRESS_CA', `CA is incomplete: ${certPath} is missing`, { cause: err });
  }
  try {
    cert = new x509.X509Certificate(certPem);
    const keyPem = await fs.readFile(keyPath, 'utf8');
    privateKey = await subtle.importKey('pkcs8', x509.PemConverter.decodeFirst(keyPem), ECDSA_P256, false, ['sign']);
  } catch (err) {
    throw new EgressError('ERR_EGRESS_CA', `CA in ${path.dirname(certPath)} cannot be read (expected an ECDSA P-256 key)`, { cause: err });
  }
  if (cert.notAfter.getTime() < Date.now() + 24 * 3600_000) {
    throw new EgressError('ERR_EGRESS_CA', `CA certificate ${certPath} expires ${cert.notAfter.toISOString()}; replace it`);
  }
  // The key must be the certificate's: otherwise every leaf would fail to verify, far from the cause.
  const probe = randomBytes(32);
  const signature = await subtle.sign(ECDSA_SHA256, privateKey, probe);
  const publicKey = await subtle.importKey('spki', cert.publicKey.rawData, ECDSA_P256, false, ['verify']);
  if (!(await subtle.verify(ECDSA_SHA256, publicKey, signature, probe))) {
    throw new EgressError('ERR_EGRESS_CA', `CA key ${keyPath} does not belong to ${certPath}`);
  }
  return { certPem: cert.toString('pem') + '\n', cert, privateKey, certPath, keyPath };
}

/** The certificate is renamed into place just after the key is written; a racing loader waits briefly for it. */
async function readWhenPresent(file: string): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fs.readFile(file, 'utf8');
    } catch (err) {
      if (!isCode(err, 'ENOENT') || attempt >= 50) throw err;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.lstat(file);
    return true;
  } catch (err) {
    if (isCode(err, 'ENOENT')) return false;
    throw err;
  }
}

export function isCode(err: unknown, code: string): boolean {
  return typeof err === 'object' && err !== null && 'code' in err && (err).code === code;
}
