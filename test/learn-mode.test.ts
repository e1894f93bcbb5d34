/**
 * Learn mode end to end: a user whose policy is in audit mode reaches a host
 * outside allowedDomains (logged wouldBlock with the reason), while the
 * proxy's own checks (private addresses, Host binding) still refuse.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../policies/cli.ts';
import { dockerAvailable } from './support/docker.ts';
import { startSeedWorld, type SeedWorld } from './support/seed-world.ts';

const hasDocker = await dockerAvailable();
const LEARNER = 'learner';
const STRIPE_LEARNER = 'stripe-learner';
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
      users: () => ({
        [LEARNER]: { allowedDomains: ['api.stripe.com'], enforcement: 'audit' },
        [STRIPE_LEARNER]: { allowedDomains: ['api.github.com'], enforcement: 'audit' },
      }),
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

  it('suggests, from a learn-mode run on Stripe, a policy that allows what was seen and still blocks the rest', async () => {
    const data = await world.run({
      code: `(async () => {
        const out = [];
        out.push((await fetch('https://api.stripe.com/v1/products/prod_1')).status);
        out.push((await fetch('https://api.stripe.com/v1/products/prod_2')).status);
        out.push((await fetch('https://api.stripe.com/v1/charges', { method: 'POST', body: 'amount=1' })).status);
        console.log(out.join(','));
      })();`,
    }, { token: await world.tokenFor(STRIPE_LEARNER) });
    expect(data.stdout).toBe('200,200,200\n');
    expect(data.networkLog.every((e: { wouldBlock?: boolean }) => e.wouldBlock === true)).toBe(true);

    let suggestion: any;
    for (let i = 0; i < 300; i += 1) {
      const response = await fetch(`${world.service.url}/admin/policies/${STRIPE_LEARNER}/suggestion`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
      suggestion = ((await response.json()) as any).data;
      if (suggestion.decisionsSeen === 3) break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(suggestion.lint.ok).toBe(true);
    expect(suggestion.current).toMatchObject({ allowedDomains: ['api.github.com'], enforcement: 'audit' });
    expect(suggestion.policy.allowedDomains).toEqual(['api.github.com', 'api.stripe.com']);
    expect(suggestion.diff.addedRules).toEqual([
      { host: 'api.stripe.com', method: 'GET', path: '/v1/products/*', covers: ['GET /v1/products/prod_1', 'GET /v1/products/prod_2'] },
      { host: 'api.stripe.com', method: 'POST', path: '/v1/charges', covers: ['POST /v1/charges'] },
    ]);

    const dir = await mkdtemp(join(tmpdir(), 'suggested-'));
    try {
      const file = join(dir, 'policy.json');
      await writeFile(file, JSON.stringify(suggestion.policy));
      const quiet = { out: () => undefined, err: () => undefined };
      expect(await main(['lint', file], quiet)).toBe(0);
      expect(await main(['explain', file, 'GET', 'https://api.stripe.com/v1/products/prod_1'], quiet)).toBe(0);
      expect(await main(['explain', file, 'POST', 'https://api.stripe.com/v1/charges'], quiet)).toBe(0);
      expect(await main(['explain', file, 'DELETE', 'https://api.stripe.com/v1/products/prod_1'], quiet)).toBe(1);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
