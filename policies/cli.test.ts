import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { main } from './cli.ts';

const bin = fileURLToPath(new URL('../bin/sandbox-policy.mjs', import.meta.url));
const seed = fileURLToPath(new URL('../examples/policies/seed.json', import.meta.url));
const githubReadonly = fileURLToPath(new URL('../examples/policies/github-readonly.json', import.meta.url));
const broken = (name: string) => fileURLToPath(new URL(`../test/fixtures/policies/broken/${name}`, import.meta.url));

/** Runs the real bin from an unrelated directory, as an operator would. */
async function sandboxPolicy(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args], { cwd: tmpdir() });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

function capture(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = main(argv, { out: (line) => out.push(line), err: (line) => err.push(line) });
  return { code, out, err };
}

describe('sandbox-policy bin', () => {
  it('explains the seed DELETE as blocked, with reason and rule', async () => {
    const result = await sandboxPolicy('explain', seed, 'DELETE', 'https://dev-123.okta.com/api/v1/users/123');
    expect(result.code).toBe(1);
    expect(result.stdout).toContain('blocked\n');
    expect(result.stdout).toContain('reason: Method DELETE not allowed for *.okta.com');
    expect(result.stdout).toContain('rule:   apiPathRules["*.okta.com"][1]');
  });

  it('lints a broken fixture with exit 1 and every problem listed', async () => {
    const result = await sandboxPolicy('lint', broken('bad-ports.json'));
    expect(result.code).toBe(1);
    expect(result.stdout.trim().split('\n')).toEqual([
      'allowedDomains[0]: "api.example.com:0" has a bad port "0" (expected 1-65535)',
      'allowedDomains[1]: "api.example.com:65536" has a bad port "65536" (expected 1-65535)',
      'allowedDomains[2]: "api.example.com:https" has a bad port "https" (expected 1-65535)',
    ]);
  });

  it('lints a good policy with exit 0', async () => {
    expect(await sandboxPolicy('lint', githubReadonly)).toMatchObject({ code: 0, stdout: 'ok\n' });
  });

  it('lints the seed with exit 0 and a warning about *.okta.com', async () => {
    const result = await sandboxPolicy('lint', seed);
    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual([
      'warning: allowedDomains[1]: "*.okta.com" covers every customer of okta.com, and anyone can sign up for a name under it; name your own tenant (e.g. "your-org.okta.com") instead',
      'ok',
    ]);
  });
});

describe('cli main', () => {
  it('allows the seed GET with exit 0', () => {
    const result = capture(['explain', seed, 'GET', 'https://dev-123.okta.com/api/v1/users/123']);
    expect(result).toMatchObject({ code: 0 });
    expect(result.out.slice(0, 3)).toEqual(['allowed', 'reason: Path /api/v1/users/123 is allowed for *.okta.com', 'rule:   apiPathRules["*.okta.com"][0]']);
  });

  it('passes -H headers, so overrides are checked', () => {
    const result = capture(['explain', seed, 'GET', 'https://dev-123.okta.com/x', '-H', 'X-HTTP-Method-Override: DELETE']);
    expect(result.code).toBe(1);
    expect(result.out[1]).toBe('reason: Method DELETE not allowed for *.okta.com');
  });

  it('uses the port and raw host of the URL', () => {
    expect(capture(['explain', seed, 'GET', 'https://api.stripe.com:8443/v1']).out[1]).toBe('reason: Port 8443 is not allowed for api.stripe.com');
    expect(capture(['explain', seed, 'GET', 'https://API.Stripe.com./v1']).out.slice(0, 2)).toEqual(['allowed', 'reason: Domain api.stripe.com is allowed']);
  });

  it('exits 2 on usage errors and unreadable files', () => {
    expect(capture([]).code).toBe(2);
    expect(capture(['frobnicate']).code).toBe(2);
    expect(capture(['explain', seed, 'GET']).code).toBe(2);
    expect(capture(['lint', '/nonexistent/policy.json']).code).toBe(2);
    expect(capture(['explain', broken('glob-mid-label.json'), 'GET', 'https://x.com/']).code).toBe(2);
    expect(capture(['--help'])).toMatchObject({ code: 0, out: [expect.stringContaining('Exit status:')] });
  });
});
