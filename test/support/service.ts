/** Starts the real service, in-process, on an ephemeral port with its own DATA_DIR. */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { imageTags } from '../../images/index.ts';
import { loadConfig } from '../../server/config.ts';
import { createLogger } from '../../server/logger.ts';
import { startService, type RunningService } from '../../server/service.ts';
import { postJson, type JsonResponse } from './http.ts';

export interface TestService extends RunningService {
  dataDir: string;
  /** Every log line the service wrote, parsed. */
  logLines: Array<Record<string, unknown>>;
  post(path: string, body: unknown, headers?: Record<string, string>): Promise<JsonResponse>;
}

/** The engine runtime the suites run under: EXEC_RUNTIME when set, else runc. */
export function testExecRuntime(): 'runc' | 'runsc' | 'auto' {
  const value = process.env.EXEC_RUNTIME;
  return value === 'runsc' || value === 'auto' ? value : 'runc';
}

/** The isolation tier results must report under testExecRuntime() (auto is taken to mean runsc where the suites run it). */
export function testIsolation(): 'runc' | 'gvisor' {
  return testExecRuntime() === 'runc' ? 'runc' : 'gvisor';
}

export async function startTestService(env: Record<string, string> = {}): Promise<TestService> {
  const dataDir = await mkdtemp(join(tmpdir(), 'sandbox-test-'));
  const logLines: Array<Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  // Suites run many executions from one address; the rate-limit tests set their own limits.
  // The suites run under runc unless EXEC_RUNTIME names the tier (CI runs the tier suites again under runsc).
  const config = loadConfig({
    PORT: '0',
    HOST: '127.0.0.1',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'info',
    RATE_LIMIT_IP_MAX: '10000',
    RATE_LIMIT_SUBJECT_MAX: '10000',
    RATE_LIMIT_ADDRESS_MAX: '10000',
    RATE_LIMIT_AUTH_FAILURES_MAX: '10000',
    EXEC_MAX_CONCURRENT_PER_CALLER: '10000',
    EXEC_RUNTIME: testExecRuntime(),
    ...env,
  });
  const service = await startService({ config, images: await imageTags(), logger: createLogger('info', sink) });
  return {
    ...service,
    dataDir,
    logLines,
    post: (path, body, headers = {}) => postJson(`${service.url}${path}`, body, headers),
    async close() {
      await service.close();
      await rm(dataDir, { recursive: true, force: true });
    },
  };
}
