/**
 * The audit store's figures: warm /execute while 10,000 decisions are being
 * written, beside the same run with the store off; and the administrator
 * queries over 100,000 stored decisions (SQLite, the default store).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AuditStore, SqliteDriver, type DecisionRecord, type ExecutionRecord } from '../server/audit/index.ts';
import { startBenchService, warmLatency } from './execute.ts';
import { summarise, type Summary } from './stats.ts';

const SUBJECTS = 10;
const EXECUTIONS = 1_000;
const DECISIONS_PER_EXECUTION = 100;
const QUERY_RUNS = 20;
export const DECISIONS_UNDER_LOAD = 10_000;

function execution(i: number): ExecutionRecord {
  return {
    id: `bench-${i}`, subject: `user-${i % SUBJECTS}`, policySource: 'jwt', policyHash: 'a'.repeat(64), policyVersion: null, language: 'node', tier: null,
    outcome: i % 7 === 0 ? 'nonzero_exit' : 'ok', exitCode: 0, signal: null, errorCode: null, durationMs: 40, queuedMs: 0, allowedRequests: 90,
    blockedRequests: 10, wouldBlockRequests: 0, codeSha256: 'c'.repeat(64), codeBytes: 100, code: null, startedAt: 1_700_000_000_000 + i * 1_000, finishedAt: 1_700_000_000_000 + i * 1_000 + 40,
  };
}

function decision(executionId: string, i: number, at: number): DecisionRecord {
  const blocked = i % 10 === 0;
  return {
    executionId, at, method: i % 3 === 0 ? 'POST' : 'GET', scheme: 'https', host: blocked ? 'api.github.com' : `api-${i % 5}.example.com`, port: 443,
    path: `/v1/items/${i}`, allowed: !blocked, wouldBlock: false, reason: blocked ? 'Domain api.github.com is not in allowed list' : null,
    rule: blocked ? 'allowedDomains' : 'allowedDomains[0]', statusCode: blocked ? 403 : 200, secrets: [], durationMs: 3,
  };
}

async function timed(fn: () => Promise<unknown>): Promise<Summary> {
  const samples: number[] = [];
  for (let i = 0; i < QUERY_RUNS; i += 1) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  return summarise(samples);
}

export interface AuditQueryResult {
  decisions: number;
  listBySubject: Summary;
  executionWithDecisions: Summary;
  summaryBySubject: Summary;
  summaryAll: Summary;
  decisionsOfSubject: Summary;
}

export async function auditQueries(): Promise<AuditQueryResult> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-audit-'));
  const store = new AuditStore(new SqliteDriver(join(dir, 'audit.sqlite')));
  try {
    await store.migrate();
    for (let e = 0; e < EXECUTIONS; e += 10) {
      const runs = Array.from({ length: 10 }, (_, k) => execution(e + k));
      await store.write(runs, runs.flatMap((run) => Array.from({ length: DECISIONS_PER_EXECUTION }, (_, i) => decision(run.id, i, run.startedAt + i))));
    }
    return {
      decisions: EXECUTIONS * DECISIONS_PER_EXECUTION,
      listBySubject: await timed(() => store.listExecutions({ subject: 'user-3', blockedOnly: true, limit: 50 })),
      executionWithDecisions: await timed(() => store.getExecution('bench-503')),
      summaryBySubject: await timed(() => store.summary({ subject: 'user-3' })),
      summaryAll: await timed(() => store.summary({})),
      decisionsOfSubject: await timed(() => store.decisionsOf({ subject: 'user-3', limit: 10_000 })),
    };
  } finally {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  }
}

export interface AuditLoadResult {
  storeOff: Summary;
  storeOn: Summary;
  decisionsWritten: number;
  dropped: number;
}

/** Warm hello worlds with the store off, then on while DECISIONS_UNDER_LOAD decisions stream into its writer. */
export async function auditUnderLoad(n: number): Promise<AuditLoadResult> {
  const off = await startBenchService({ EXEC_POOL_SIZE: '2', AUDIT_STORE: 'off' });
  let storeOff: Summary;
  try {
    await off.pool.whenFull();
    storeOff = (await warmLatency(off, n)).latency;
  } finally {
    await off.stop();
  }
  const on = await startBenchService({ EXEC_POOL_SIZE: '2', AUDIT_STORE: 'on' });
  try {
    await on.pool.whenFull();
    const writer = on.audit!.writer;
    let sent = 0;
    // 10,000 decisions spread over the run: a steady stream, as a busy proxy makes.
    const pump = setInterval(() => {
      for (let i = 0; i < 100 && sent < DECISIONS_UNDER_LOAD; i += 1, sent += 1) writer.decision(decision(`load-${Math.floor(sent / 100)}`, sent, Date.now()));
    }, 20);
    const storeOn = (await warmLatency(on, n)).latency;
    clearInterval(pump);
    for (; sent < DECISIONS_UNDER_LOAD; sent += 1) writer.decision(decision('load-rest', sent, Date.now()));
    await writer.flush();
    const status = writer.status();
    return { storeOff, storeOn, decisionsWritten: status.written.decision, dropped: status.dropped.decision };
  } finally {
    await on.stop();
  }
}

const ms = (s: Summary) => `${s.p50} / ${s.p95} / ${s.p99}`;

export function auditRows(load: AuditLoadResult, queries: AuditQueryResult): Array<[string, string, string, string]> {
  const q = (name: string, s: Summary): [string, string, string, string] => [`audit query over ${queries.decisions} decisions: ${name}`, ms(s), 'target < 100 ms', ''];
  return [
    [`/execute hello, warm, audit store on (${load.decisionsWritten} decisions written, ${load.dropped} dropped)`, ms(load.storeOn), `store off ${load.storeOff.p50}`, load.storeOff.p50 > 0 ? `${(load.storeOn.p50 / load.storeOff.p50).toFixed(2)}×` : ''],
    q('executions of a subject, blocked only', queries.listBySubject),
    q('one execution with its decisions', queries.executionWithDecisions),
    q('summary of a subject', queries.summaryBySubject),
    q('summary of everyone', queries.summaryAll),
    q('decisions of a subject (suggestions)', queries.decisionsOfSubject),
  ];
}
