/**
 * The audit trail end to end: the seed's scenarios through the real service,
 * then what administrators read back; and a PostgreSQL store that goes down
 * mid-run and comes back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dockerAvailable } from './support/docker.ts';
import { startPostgres, type PostgresServer } from './support/postgres.ts';
import { SEED_POLICY_HASH } from './support/seed-expectations.ts';
import { SEED_USER, startSeedWorld, type SeedWorld } from './support/seed-world.ts';

const hasDocker = await dockerAvailable();
const ADMIN_TOKEN = 'audit-admin-token-0123456789';

async function eventually<T>(probe: () => Promise<T>, ok: (value: T) => boolean, what: string, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}: last saw ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function admin(world: SeedWorld, path: string): Promise<any> {
  const response = await fetch(`${world.service.url}${path}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
  const body = (await response.json()) as any;
  if (response.status !== 200) throw new Error(`GET ${path} answered ${response.status}: ${JSON.stringify(body)}`);
  return body.data;
}

const metric = async (world: SeedWorld, line: string): Promise<number> => {
  const text = await (await fetch(`${world.service.url}/metrics`)).text();
  const found = text.split('\n').find((l) => l.startsWith(line));
  return found === undefined ? 0 : Number(found.split(' ').at(-1));
};

const SCENARIOS = {
  stripeGet: 'const https = require("https"); https.get("https://api.stripe.com/v1/products", r => console.log(r.statusCode));',
  oktaDelete: 'const https = require("https"); https.request({ hostname: "dev-123.okta.com", path: "/api/v1/users/123", method: "DELETE" }, r => console.log(r.statusCode)).end();',
  githubGet: 'const https = require("https"); https.get("https://api.github.com/users/github?page=2", r => console.log(r.statusCode));',
};

describe.skipIf(!hasDocker)('the audit trail of the seed scenarios', () => {
  let world: SeedWorld;
  const ids: Record<string, string> = {};

  beforeAll(async () => {
    world = await startSeedWorld({ ADMIN_TOKEN, AUDIT_FLUSH_MS: '20' });
    await world.run({ code: 'console.log("Hello");' }, { token: null });
    for (const [name, code] of Object.entries(SCENARIOS)) ids[name] = (await world.run({ code })).executionId;
  });
  afterAll(async () => {
    await world?.close();
  });

  it('lists the subject\'s executions with their policy hash, and each with its decisions and reasons', async () => {
    const page = await eventually(() => admin(world, `/admin/executions?subject=${SEED_USER}`), (d) => d.executions.length === 3, 'three executions');
    expect(page.executions.map((e: { id: string }) => e.id).sort()).toEqual(Object.values(ids).sort());
    for (const execution of page.executions) expect(execution).toMatchObject({ subject: SEED_USER, policyHash: SEED_POLICY_HASH, outcome: 'ok', language: 'node' });

    const detail = async (name: string) =>
      eventually(() => admin(world, `/admin/executions/${ids[name]}`), (d) => d.decisions.length === 1, `the decision of ${name}`);
    expect((await detail('stripeGet')).decisions[0]).toMatchObject({ method: 'GET', host: 'api.stripe.com', path: '/v1/products', allowed: true, statusCode: 200 });
    expect((await detail('oktaDelete')).decisions[0]).toMatchObject({
      method: 'DELETE', host: 'dev-123.okta.com', path: '/api/v1/users/123', allowed: false, statusCode: 403, reason: 'Method DELETE not allowed for *.okta.com',
    });
    const github = await detail('githubGet');
    expect(github).toMatchObject({ blockedRequests: 1, allowedRequests: 0 });
    expect(github.decisions[0]).toMatchObject({ host: 'api.github.com', path: '/users/github', allowed: false, reason: 'Domain api.github.com is not in allowed list' });
  });

  it('counts the two blocked requests under their reasons', async () => {
    const summary = await eventually(
      () => admin(world, `/admin/egress/summary?subject=${SEED_USER}`),
      (d) => d.rows.length === 3,
      'three summary rows',
    );
    expect(summary.rows.filter((r: { decision: string }) => r.decision === 'blocked')).toEqual(expect.arrayContaining([
      { subject: SEED_USER, host: 'dev-123.okta.com', method: 'DELETE', decision: 'blocked', reason: 'Method DELETE not allowed for *.okta.com', count: 1 },
      { subject: SEED_USER, host: 'api.github.com', method: 'GET', decision: 'blocked', reason: 'Domain api.github.com is not in allowed list', count: 1 },
    ]));
    expect(summary.rows.filter((r: { decision: string }) => r.decision === 'blocked')).toHaveLength(2);
  });

  it('filters blocked-only and refuses a bad query naming the field', async () => {
    const blocked = await admin(world, `/admin/executions?subject=${SEED_USER}&blocked=true`);
    expect(blocked.executions.map((e: { id: string }) => e.id).sort()).toEqual([ids.oktaDelete, ids.githubGet].sort());
    const bad = await fetch(`${world.service.url}/admin/executions?since=yesterday`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as any).details).toEqual([expect.objectContaining({ field: 'since' })]);
    expect((await fetch(`${world.service.url}/admin/executions`)).status).toBe(401);
  });

  it('shows the writer in /metrics and /readyz details', async () => {
    await eventually(() => metric(world, 'sandbox_audit_records_written_total{kind="decision"}'), (n) => n >= 3, 'written decisions');
    const ready = (await (await fetch(`${world.service.url}/readyz`)).json()) as any;
    expect(ready.details.audit).toMatchObject({ storeAvailable: true, dropped: { execution: 0, decision: 0 } });
    expect(ready.details.audit.store).toMatch(/^sqlite /u);
  });
});

describe.skipIf(!hasDocker)('a PostgreSQL audit store that goes down mid-run', () => {
  let postgres: PostgresServer;
  let world: SeedWorld;

  beforeAll(async () => {
    postgres = await startPostgres();
    world = await startSeedWorld({ ADMIN_TOKEN, DATABASE_URL: postgres.url, AUDIT_FLUSH_MS: '20', AUDIT_QUEUE_LIMIT: '3' });
  });
  afterAll(async () => {
    await world?.close();
    await postgres?.[Symbol.asyncDispose]();
  });

  it('does not fail /execute, counts the drops, and writes again once the store is back', async () => {
    const before = await world.run({ code: SCENARIOS.stripeGet });
    await eventually(() => admin(world, `/admin/executions?subject=${SEED_USER}`), (d) => d.executions.length === 1, 'the first execution');

    await postgres.stop();
    // Five blocked requests and the execution: more records than the queue holds.
    const during = await world.run({
      code: 'Promise.all([1,2,3,4,5].map((i) => fetch("https://api.github.com/" + i).then((r) => r.status))).then((s) => console.log(s.join(",")));',
    });
    expect(during.stdout).toBe('403,403,403,403,403\n');
    const dropped = await eventually(
      () => metric(world, 'sandbox_audit_records_dropped_total{kind="decision"}'),
      (n) => n > 0,
      'dropped records in /metrics',
    );
    expect(dropped).toBeGreaterThan(0);
    const ready = (await (await fetch(`${world.service.url}/readyz`)).json()) as any;
    expect(ready.details.audit.dropped.decision).toBeGreaterThan(0);
    expect(ready.details.audit.storeAvailable).toBe(false);

    await postgres.start();
    // The records still queued go in first; then new executions are written as before.
    await eventually(async () => ((await (await fetch(`${world.service.url}/readyz`)).json()) as any).details.audit, (a) => a.storeAvailable === true && a.queued === 0, 'the queue written after the outage');
    const after = await world.run({ code: SCENARIOS.oktaDelete });
    const page = await eventually(
      () => admin(world, `/admin/executions?subject=${SEED_USER}`),
      (d) => d.executions.some((e: { id: string }) => e.id === after.executionId),
      'the execution after the store came back',
    );
    expect(page.executions.map((e: { id: string }) => e.id)).toContain(before.executionId);
    const detail = await eventually(() => admin(world, `/admin/executions/${after.executionId}`), (d) => d.decisions.length === 1, 'its decision');
    expect(detail.decisions[0]).toMatchObject({ method: 'DELETE', allowed: false });
  });
});
