/**
 * A streamed execution through the execution service: the live listeners
 * reach the job, output leaves as whole characters with secret values
 * replaced (the same text the result carries), and only a streamed job is
 * handed the abort signal.
 */
import { describe, expect, it } from 'vitest';
import type { ExecutionJob, ExecutionResult, NetworkLogEntry } from '../executor/index.ts';
import { SecretBinding } from '../policies/index.ts';
import { Admission } from './admission.ts';
import { ExecuteRequestSchema } from './execute-request.ts';
import { ExecutionService, type LiveExecution } from './execution-service.ts';
import { ANONYMOUS_CALLER } from './identity/index.ts';

const KEY = 'sk_test_live_0123456789abcdef';
const ENTRY: NetworkLogEntry = { method: 'GET', url: 'https://api.stripe.com/v1/x', hostname: 'api.stripe.com', statusCode: 200, blocked: false, durationMs: 2 };

/** A runner that plays `output` (stream, bytes) through the job's live listeners, one byte at a time, then answers. */
function playing(output: ReadonlyArray<readonly ['stdout' | 'stderr', string]>, jobs: ExecutionJob[]) {
  return {
    run: (job: ExecutionJob): Promise<ExecutionResult> => {
      jobs.push(job);
      const text = { stdout: '', stderr: '' };
      for (const [stream, piece] of output) {
        text[stream] += piece;
        for (const byte of Buffer.from(piece)) job.live?.output?.(stream, Buffer.from([byte]));
      }
      job.live?.network?.(ENTRY);
      return Promise.resolve({
        ...text,
        code: 0,
        signal: null,
        timedOut: false,
        oomKilled: false,
        truncated: { stdout: false, stderr: false },
        durationMs: 1,
        networkLog: [ENTRY],
        networkLogCapped: false,
        isolation: 'runc',
      });
    },
  };
}

function serviceWith(executor: ReturnType<typeof playing>): ExecutionService {
  return new ExecutionService({
    executor,
    admission: new Admission({ maxConcurrent: 1, queueLimit: 1, queueTimeoutMs: 1_000 }),
    defaultTimeoutMs: 1_000,
    maxTimeoutMs: 1_000,
    fileLimits: { maxInputFiles: 4, maxInputBytes: 1024, maxOutputFiles: 4, maxOutputBytes: 1024 },
    isolation: { tier: 'runc', available: ['runc'] },
    packageRegistries: { npm: 'registry.npmjs.org', pypi: 'pypi.org' },
  });
}

function recorder(): { live: LiveExecution; seen: Array<[string, unknown]> } {
  const seen: Array<[string, unknown]> = [];
  return {
    seen,
    live: {
      started: (executionId) => seen.push(['start', executionId]),
      output: (stream, text) => seen.push([stream, text]),
      network: (entry) => seen.push(['network', entry]),
    },
  };
}

const request = ExecuteRequestSchema.parse({ code: 'x' });
const textOf = (seen: Array<[string, unknown]>, stream: string): string => seen.filter(([name]) => name === stream).map(([, text]) => text).join('');

describe('ExecutionService, streamed', () => {
  it('streams whole characters with secret values replaced: the same text the result carries', async () => {
    const jobs: ExecutionJob[] = [];
    const secrets = SecretBinding.fromSpecs([{ name: 'STRIPE_KEY', value: KEY, hosts: ['api.stripe.com'], in: ['header'], source: 'request' }]);
    const { live, seen } = recorder();
    const data = await serviceWith(playing([['stdout', `key ${KEY} €\n`], ['stderr', `é ${KEY}`]], jobs)).execute(request, ANONYMOUS_CALLER, { secrets, live, signal: new AbortController().signal });

    expect(seen[0]).toEqual(['start', data.executionId]);
    expect(textOf(seen, 'stdout')).toBe(data.stdout);
    expect(textOf(seen, 'stderr')).toBe(data.stderr);
    expect(JSON.stringify(seen)).not.toContain(KEY);
    expect(JSON.stringify(seen)).not.toContain('\uFFFD');
    expect(seen.filter(([name]) => name === 'network')).toEqual([['network', ENTRY]]);
    expect(jobs[0]?.signal).toBeDefined();
  });

  it('gives a plain execution neither live listeners nor the abort signal: its run outlives its caller as before', async () => {
    const jobs: ExecutionJob[] = [];
    await serviceWith(playing([['stdout', 'hi\n']], jobs)).execute(request, ANONYMOUS_CALLER, { signal: new AbortController().signal });
    expect(jobs[0]?.live).toBeUndefined();
    expect(jobs[0]?.signal).toBeUndefined();
  });
});
