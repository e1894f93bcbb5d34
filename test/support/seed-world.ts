/**
 * The world of the seed's scenarios: HTTPS upstreams on loopback standing in
 * for api.stripe.com, dev-123.okta.com and api.github.com (reached through
 * EGRESS_HOST_MAP and trusted through EGRESS_UPSTREAM_CA), a user whose
 * policy is the seed's, and a token for that user.
 */
import { copyFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startUpstream, type Upstream, type UpstreamResponder } from '../fixtures/upstream.ts';
import { mintToken, TEST_AUDIENCE, TEST_HS_SECRET, TEST_ISSUER } from './jwt.ts';
import { startTestService, type TestService } from './service.ts';

export const SEED_USER = 'seed-user';
export const SEED_HOSTS = ['api.stripe.com', 'dev-123.okta.com', 'api.github.com'] as const;

export interface SeedWorld {
  service: TestService;
  upstream: Upstream;
  token: string;
  /** A token for another user (one of `options.users`, or any subject). */
  tokenFor(subject: string): Promise<string>;
  /** POST /execute with the seed user's token; returns `data`. */
  run(body: Record<string, unknown>, options?: { token?: string | null }): Promise<any>;
  close(): Promise<void>;
}

export function hostMapEnv(upstream: Upstream, hosts: readonly string[]): string {
  return [...upstream.hostMap(hosts)].map(([key, { address, port }]) => `${key}=${address}:${port}`).join(',');
}

export interface SeedWorldOptions {
  /** More users beside the seed user, each with its policy (policy API format); built once the upstream's ports are known. */
  users?: (upstream: Upstream) => Record<string, unknown>;
  /** More `host:port` keys sent to the upstream's HTTPS listener (the seed hosts' ports 80 and 443 always are). */
  httpsRoutes?: readonly string[];
  /** Answers requests in place of the upstream's echo (stand-ins with behaviour of their own). */
  respond?: UpstreamResponder;
}

export async function startSeedWorld(env: Record<string, string> = {}, options: SeedWorldOptions = {}): Promise<SeedWorld> {
  const upstream = await startUpstream([...SEED_HOSTS], options.respond);
  const dir = await mkdtemp(join(tmpdir(), 'seed-world-'));
  const policyDir = join(dir, 'policies');
  await writeFile(join(dir, 'upstream-ca.pem'), upstream.caPem);
  await import('node:fs/promises').then((fs) => fs.mkdir(policyDir));
  await copyFile(new URL('../../examples/policies/seed.json', import.meta.url), join(policyDir, `${SEED_USER}.json`));
  for (const [subject, policy] of Object.entries(options.users?.(upstream) ?? {})) {
    await writeFile(join(policyDir, `${encodeURIComponent(subject)}.json`), JSON.stringify(policy));
  }
  const hostMap = [hostMapEnv(upstream, SEED_HOSTS), ...(options.httpsRoutes ?? []).map((key) => `${key}=127.0.0.1:${upstream.httpsPort}`)];

  const service = await startTestService({
    JWT_SECRET: TEST_HS_SECRET,
    JWT_ISSUER: TEST_ISSUER,
    JWT_AUDIENCE: TEST_AUDIENCE,
    POLICY_DIR: policyDir,
    EGRESS_HOST_MAP: hostMap.join(','),
    EGRESS_UPSTREAM_CA: join(dir, 'upstream-ca.pem'),
    ...env,
  });
  const token = await mintToken(TEST_HS_SECRET, { alg: 'HS256', sub: SEED_USER });
  return {
    service,
    upstream,
    token,
    tokenFor: (subject) => mintToken(TEST_HS_SECRET, { alg: 'HS256', sub: subject }),
    async run(body, options = {}) {
      const bearer = options.token === undefined ? token : options.token;
      const response = await service.post('/execute', body, bearer ? { authorization: `Bearer ${bearer}` } : {});
      if (response.status !== 200) throw new Error(`POST /execute answered ${response.status}: ${response.text}`);
      return response.json.data;
    },
    async close() {
      await service.close();
      await upstream.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
