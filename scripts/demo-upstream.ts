/**
 * `npm run demo-upstream`: stand-ins for api.stripe.com, dev-123.okta.com and
 * api.github.com on loopback (HTTPS on 127.0.0.1:9443, HTTP on :9080), so the
 * seed scenarios can be tried on a machine with no internet. Start the
 * service with the environment this prints; every request the stand-ins
 * receive is printed here, so you can see what the proxy let through.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import { resolve } from 'node:path';
import { createTestCa } from '../test/fixtures/tls.ts';

const HOSTS = ['api.stripe.com', 'dev-123.okta.com', 'api.github.com'];
const HTTPS_PORT = 9443;
const HTTP_PORT = 9080;
const dataDir = resolve(process.env.DATA_DIR ?? '.data');
const caPath = `${dataDir}/demo-upstream-ca.pem`;

const ca = await createTestCa('Sandbox Demo Upstream CA');
const { certPem, keyPem } = await ca.issue(HOSTS);
await mkdir(dataDir, { recursive: true });
await writeFile(caPath, ca.certPem);

const answer = (scheme: string) => (req: http.IncomingMessage, res: http.ServerResponse) => {
  console.log(`${scheme} ${req.method} ${req.headers.host}${req.url}`);
  req.resume();
  const body = JSON.stringify({ ok: true, host: req.headers.host, method: req.method, path: req.url });
  res.writeHead(200, { 'content-type': 'application/json' }).end(body);
};

https.createServer({ cert: certPem, key: keyPem }, answer('https')).listen(HTTPS_PORT, '127.0.0.1');
http.createServer(answer('http')).listen(HTTP_PORT, '127.0.0.1');

const map = HOSTS.flatMap((h) => [`${h}:443=127.0.0.1:${HTTPS_PORT}`, `${h}:80=127.0.0.1:${HTTP_PORT}`]).join(',');
console.log(`Demo upstreams for ${HOSTS.join(', ')} are listening. Start the service with:\n`);
console.log(`  EGRESS_HOST_MAP='${map}' EGRESS_UPSTREAM_CA=${caPath} npm start\n`);
