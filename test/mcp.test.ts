/**
 * /mcp end to end: the SDK's own client over real HTTP with the seed user's
 * token, the real engine and proxy, and the seed's stand-in upstreams.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { describeWithDocker } from './support/docker.ts';
import { mintToken } from './support/jwt.ts';
import { SEED_USER, startSeedWorld, type SeedWorld } from './support/seed-world.ts';

describeWithDocker('the MCP endpoint', () => {
  let world: SeedWorld;
  let client: Client;

  const connect = async (token: string | null): Promise<Client> => {
    const mcp = new Client({ name: 'mcp-test', version: '1.0.0' });
    const headers: Record<string, string> = token === null ? {} : { authorization: `Bearer ${token}` };
    await mcp.connect(new StreamableHTTPClientTransport(new URL('/mcp', world.service.url), { requestInit: { headers } }));
    return mcp;
  };
  const call = async (name: string, args: Record<string, unknown> = {}): Promise<CallToolResult> =>
    (await client.callTool({ name, arguments: args })) as CallToolResult;
  const textOf = (result: CallToolResult): string => result.content.map((part) => (part.type === 'text' ? part.text : '')).join('\n');

  beforeAll(async () => {
    world = await startSeedWorld();
    client = await connect(world.token);
  });
  afterAll(async () => {
    await client?.close();
    await world?.close();
  });
  beforeEach(() => {
    world.upstream.reset();
  });

  it('lists the three tools, with the execute input taken from the /execute schema', async () => {
    const { tools } = await client.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(['check_egress', 'describe_policy', 'execute']);
    const execute = tools.find((tool) => tool.name === 'execute');
    expect(Object.keys(execute?.inputSchema.properties ?? {}).sort()).toEqual(['args', 'code', 'files', 'language', 'outputFiles', 'packages', 'stdin', 'timeoutMs']);
    expect(execute?.inputSchema.required).toEqual(['code']);
  });

  it('runs the Stripe scenario through execute', async () => {
    const result = await call('execute', {
      code: 'const https = require("https"); https.get("https://api.stripe.com/v1/products", r => console.log(r.statusCode));',
    });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ stdout: '200\n', code: 0, policyInfo: { source: 'jwt' } });
    expect(textOf(result)).toContain('exit: 0');
    expect(textOf(result)).toContain('allowed GET https://api.stripe.com/v1/products -> 200');
    expect(world.upstream.requests.map((r) => `${r.method} ${r.path}`)).toEqual(['GET /v1/products']);
  });

  it('runs the GitHub scenario through execute: 403 and the reason in the text and the structured result', async () => {
    const result = await call('execute', {
      code: 'const https = require("https"); https.get("https://api.github.com/users/github", r => console.log(r.statusCode));',
    });
    const reason = 'Domain api.github.com is not in allowed list';
    expect(result.structuredContent).toMatchObject({
      stdout: '403\n',
      networkLog: [{ method: 'GET', url: 'https://api.github.com/users/github', blocked: true, reason }],
    });
    expect(textOf(result)).toContain('403');
    expect(textOf(result)).toContain(`blocked GET https://api.github.com/users/github -> 403: ${reason}`);
    expect(world.upstream.requests).toEqual([]);
  });

  it('takes files in and gives output files back through execute', async () => {
    const result = await call('execute', {
      language: 'python',
      code: "rows = open('in.csv').read().split()\nopen('report.txt', 'w').write(f'{len(rows) - 1} rows')",
      files: [{ path: 'in.csv', content: Buffer.from('a,b\n1,2\n3,4\n').toString('base64') }],
      outputFiles: ['*.txt'],
    });
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toMatchObject({ code: 0, files: [{ path: 'report.txt', size: 6, content: Buffer.from('2 rows').toString('base64') }], truncated: { files: false } });
    expect(textOf(result)).toContain('report.txt (6 bytes)');
    const refused = await call('execute', { code: '1', files: [{ path: '../x', content: '' }] });
    expect(refused.isError).toBe(true);
    expect(textOf(refused)).toContain('files[0].path');
  });

  it('answers check_egress under the caller\'s policy', async () => {
    const blocked = await call('check_egress', { method: 'DELETE', url: 'https://dev-123.okta.com/api/v1/users/1' });
    expect(blocked.structuredContent).toMatchObject({ allowed: false, reason: 'Method DELETE not allowed for *.okta.com' });
    expect(textOf(blocked)).toContain('blocked');
    expect(textOf(blocked)).toContain('Method DELETE not allowed for *.okta.com');
    const allowed = await call('check_egress', { method: 'GET', url: 'https://api.stripe.com/v1/charges' });
    expect(allowed.structuredContent).toMatchObject({ allowed: true, rule: 'allowedDomains[0]' });
  });

  it('describes the caller\'s own policy', async () => {
    const result = await call('describe_policy');
    expect(result.structuredContent).toMatchObject({
      source: 'jwt',
      enforcement: 'enforce',
      allowedDomains: ['api.stripe.com', '*.okta.com'],
      allowedPackages: ['@okta'],
      allowedBinaries: ['ffmpeg'],
    });
    expect(textOf(result)).toContain('deny DELETE /*');
  });

  it('gives a caller without a token the default policy', async () => {
    const anonymous = await connect(null);
    try {
      const result = (await anonymous.callTool({ name: 'check_egress', arguments: { method: 'GET', url: 'https://api.stripe.com/' } })) as CallToolResult;
      expect(result.structuredContent).toMatchObject({ allowed: false });
    } finally {
      await anonymous.close();
    }
  });

  it('refuses a bad token with 401 and a bearer challenge', async () => {
    const forged = await mintToken('another-secret-that-is-long-enough-for-hs256-987', { alg: 'HS256', sub: SEED_USER });
    await expect(connect(forged)).rejects.toMatchObject({ code: 401 });
    const response = await fetch(new URL('/mcp', world.service.url), {
      method: 'POST',
      headers: { authorization: `Bearer ${forged}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list' }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/^Bearer /);
  });
});

describeWithDocker('an MCP execution is an execution like any other', () => {
  const ADMIN_TOKEN = 'mcp-admin-token-0123456789';
  let world: SeedWorld;

  beforeAll(async () => {
    world = await startSeedWorld({ RATE_LIMIT_SUBJECT_MAX: '2', ADMIN_TOKEN, AUDIT_FLUSH_MS: '20' });
  });
  afterAll(async () => {
    await world?.close();
  });

  const auditEntry = async (id: string): Promise<{ status: number; body: any }> => {
    const response = await fetch(`${world.service.url}/admin/executions/${id}`, { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    return { status: response.status, body: await response.json() };
  };

  it('is audited and shares the per-caller rate limit with /execute; listing tools costs nothing', async () => {
    const client = new Client({ name: 'mcp-test', version: '1.0.0' });
    await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', world.service.url), { requestInit: { headers: { authorization: `Bearer ${world.token}` } } }));
    try {
      for (let i = 0; i < 3; i += 1) await client.listTools();
      const first = (await client.callTool({ name: 'execute', arguments: { code: 'console.log(1)' } })) as CallToolResult;
      const { executionId } = first.structuredContent as { executionId: string };

      let audited = await auditEntry(executionId);
      for (let attempt = 0; audited.status !== 200 && attempt < 600; attempt += 1) {
        await new Promise((resolve) => setTimeout(resolve, 100));
        audited = await auditEntry(executionId);
      }
      expect(audited.status).toBe(200);
      expect(audited.body.data).toMatchObject({ subject: SEED_USER });

      await world.run({ code: 'console.log(2)' });
      await expect(client.callTool({ name: 'execute', arguments: { code: 'console.log(3)' } })).rejects.toMatchObject({ code: 429 });
    } finally {
      await client.close();
    }
  });
});
