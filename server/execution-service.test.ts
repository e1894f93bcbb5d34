/**
 * What the execution service makes of an execution's secrets: the program's
 * environment holds placeholders, the job carries the binding for the
 * egress session, and any value left in the output leaves as its placeholder.
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionJob, ExecutionResult } from '../executor/index.ts';
import { SecretBinding } from '../policies/index.ts';
import { Admission } from './admission.ts';
import { ExecuteRequestSchema } from './execute-request.ts';
import { ExecutionService } from './execution-service.ts';
import { ANONYMOUS_CALLER } from './identity/index.ts';

const KEY = 'sk_test_service_0123456789';

describe('ExecutionService with secrets', () => {
  it('hands the program placeholders, the egress session the binding, and scrubs the output', async () => {
    const jobs: ExecutionJob[] = [];
    const executor = {
      run: (job: ExecutionJob): Promise<ExecutionResult> => {
        jobs.push(job);
        return Promise.resolve({
          stdout: `leaked ${KEY} and ${Buffer.from(KEY).toString('base64')}\n`,
          stderr: `also ${KEY}`,
          code: 0,
          signal: null,
          timedOut: false,
          oomKilled: false,
          truncated: { stdout: false, stderr: false },
          durationMs: 1,
          networkLog: [],
          networkLogCapped: false,
          isolation: 'runc',
        });
      },
    };
    const service = new ExecutionService({
      executor,
      admission: new Admission({ maxConcurrent: 1, queueLimit: 1, queueTimeoutMs: 1_000 }),
      defaultTimeoutMs: 1_000,
      maxTimeoutMs: 1_000,
      isolation: { tier: 'runc', available: ['runc'] },
      packageRegistries: { npm: 'registry.npmjs.org', pypi: 'pypi.org' },
      fileLimits: { maxInputFiles: 4, maxInputBytes: 1024, maxOutputFiles: 4, maxOutputBytes: 1024 },
    });
    const secrets = SecretBinding.fromSpecs([{ name: 'STRIPE_KEY', value: KEY, hosts: ['api.stripe.com'], in: ['header'], source: 'request' }]);
    const placeholder = secrets.placeholderEnv().STRIPE_KEY ?? '';
    const request = ExecuteRequestSchema.parse({ code: 'x', env: { PLAIN: 'v' } });

    const data = await service.execute(request, ANONYMOUS_CALLER, { secrets });

    expect(jobs[0]?.env).toEqual({ PLAIN: 'v', STRIPE_KEY: placeholder });
    expect(JSON.stringify(jobs[0])).not.toContain(KEY);
    expect(jobs[0]?.secrets).toBe(secrets);
    expect(data.stdout).toBe(`leaked ${placeholder} and ${Buffer.from(placeholder).toString('base64')}\n`);
    expect(data.stderr).toBe(`also ${placeholder}`);
  });

  it('scrubs secret values from output files too, and hands the job the files and the output limits', async () => {
    const jobs: ExecutionJob[] = [];
    const fileText = `key=${KEY}\n`;
    const executor = {
      run: (job: ExecutionJob): Promise<ExecutionResult> => {
        jobs.push(job);
        return Promise.resolve({
          stdout: '',
          stderr: '',
          code: 0,
          signal: null,
          timedOut: false,
          oomKilled: false,
          truncated: { stdout: false, stderr: false },
          durationMs: 1,
          networkLog: [],
          networkLogCapped: false,
          isolation: 'runc',
          outputFiles: { files: [{ path: 'out.txt', size: fileText.length, content: Buffer.from(fileText).toString('base64') }], truncated: true },
        });
      },
    };
    const service = new ExecutionService({
      executor,
      admission: new Admission({ maxConcurrent: 1, queueLimit: 1, queueTimeoutMs: 1_000 }),
      defaultTimeoutMs: 1_000,
      maxTimeoutMs: 1_000,
      isolation: { tier: 'runc', available: ['runc'] },
      packageRegistries: { npm: 'registry.npmjs.org', pypi: 'pypi.org' },
      fileLimits: { maxInputFiles: 4, maxInputBytes: 1024, maxOutputFiles: 5, maxOutputBytes: 2048 },
    });
    const secrets = SecretBinding.fromSpecs([{ name: 'STRIPE_KEY', value: KEY, hosts: ['api.stripe.com'], in: ['header'], source: 'request' }]);
    const placeholder = secrets.placeholderEnv().STRIPE_KEY ?? '';
    const request = ExecuteRequestSchema.parse({ code: 'x', files: [{ path: 'in/a.csv', content: 'YQ==' }], outputFiles: ['*.txt'] });

    const data = await service.execute(request, ANONYMOUS_CALLER, { secrets });

    expect(jobs[0]?.files).toEqual([{ path: 'in/a.csv', content: 'YQ==' }]);
    expect(jobs[0]?.outputFiles).toEqual({ patterns: ['*.txt'], maxFiles: 5, maxBytes: 2048 });
    const scrubbed = `key=${placeholder}\n`;
    expect(data.files).toEqual([{ path: 'out.txt', size: scrubbed.length, content: Buffer.from(scrubbed).toString('base64') }]);
    expect(data.truncated).toEqual({ stdout: false, stderr: false, files: true });
  });
});
