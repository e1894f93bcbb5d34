/**
 * Learn mode end to end: a user whose policy is in audit mode reaches a host
 * outside allowedDomains (logged wouldBlock with the reason), while the
 * proxy's own checks (private addresses, Host binding) still refuse.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable } from './support/docker.ts';
import { startSeedWorld, type SeedWorld } from './support/seed-world.ts';

const hasDocker = await dockerAvailable();
const LEARNER = 'learner';
const ADMIN_TOKEN = 'learn-admin-token-0123456789';

/** Raw plain-HTTP requests to the sandbox's proxy (127.0.0.1:3128), with an explicit target and Host: one status each. */
const PROGRAM = `
const net = require('net');
const get = (target, host) => new Promise((resolve) => {
  const socket = net.connect(3128, '127.0.0.1', () => socket.write('GET ' + target + ' HTTP/1.1\\r\\nHost: ' + host + '\\r\\nConnection: close\\r\\n\\r\\n'));
  let text = '';
  socket.on('data', (d) => { text += d; });
  socket.on('close', () => resolve(Number(text.split(' ')[1])));
  socket.on('error', (e) => resolve(e.code));
});
(async () => console.log(JSON.stringify([
  await get('http://api.github.com/users/github', 'api.github.com'),
  await get('http://10.1.2.3/', '10.1.2.3'),
  await get('http://api.stripe.com/v1/products', 'api.github.com'),
])))();
`;

describe.skipIf(!hasDocker)('learn mode', () => {
  let world: SeedWorld;

  beforeAll(async () => {
    world = await startSeedWorld({ ADMIN_TOKEN, AUDIT_FLUSH_MS: '20' }, {
      users: () => ({ [LEARNER]: { allowedDomains: ['api.stripe.com'], enforcement: 'audit' } }),
    });
  });
  afterAll(async () => {
    await world?.close();
  });

  it('forwards what the rules would block, logged wouldBlock with the reason; private addresses and Host mismatches stay refused', async () => {
    const data = await world.run({ code: PROGRAM }, { token: await world.tokenFor(LEARNER) });
    expect(data.policyInfo).toMatchObject({ source: 'jwt', enforcement: 'audit' });
    expect(data.stderr).toBe('');
    expect(JSON.parse(data.stdout)).toEqual([200, 403, 403]);
    expect(world.upstream.requests.map((r) => `${r.method} ${r.path} ${r.headers.host ?? ''}`)).toEqual(['GET /users/github api.github.com']);
    const [github, privateAddress, mismatch] = data.networkLog;
    expect(github).toMatchObject({ hostname: 'api.github.com', blocked: false, wouldBlock: true, statusCode: 200, reason: 'Domain api.github.com is not in allowed list' });
    expect(privateAddress).toMatchObject({ blocked: true, statusCode: 403 });
    expect(privateAddress).not.toHaveProperty('wouldBlock');
    expect(mismatch).toMatchObject({ blocked: true, statusCode: 403, reason: 'Host header names api.github.com, not api.stripe.com' });

    // The audit trail keeps the would-be block too.
    let detail: any;
    for (let i = 0; i < 300; i += 1) {
      const response = await fetch(`${world.service.url}/admin/executions/${data.executionId}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      if (response.status === 200) {
        detail = ((await response.json()) as any).data;
        if (detail.decisions.length === 3) break;
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(detail).toMatchObject({ wouldBlockRequests: 1, blockedRequests: 2 });
    expect(detail.decisions.find((d: { host: string }) => d.host === 'api.github.com')).toMatchObject({ allowed: true, wouldBlock: true, reason: 'Domain api.github.com is not in allowed list' });
  });

  it('keeps an enforcing user\'s blocks', async () => {
    const data = await world.run({ code: PROGRAM });
    expect(data.policyInfo.enforcement).toBe('enforce');
    expect(JSON.parse(data.stdout)[0]).toBe(403);
  });
});
