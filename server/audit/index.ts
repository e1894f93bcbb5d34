/**
 * The audit store's front door: opens the store the configuration names
 * (PostgreSQL with DATABASE_URL, else SQLite in DATA_DIR), migrates it, and
 * wires the writer, its metrics, retention and the recorder.
 */
import { join } from 'node:path';
import type { Registry } from 'prom-client';
import type { Logger } from '../logger.ts';
import { registerAuditMetrics } from './metrics.ts';
import { PostgresDriver } from './postgres-driver.ts';
import { AuditRecorder } from './recorder.ts';
import { startRetention } from './retention.ts';
import type { SqlDriver } from './sql.ts';
import { SqliteDriver } from './sqlite-driver.ts';
import { AuditStore } from './store.ts';
import { AuditWriter, type AuditWriterStatus } from './writer.ts';

export { AUDIT_CONFIG_SHAPE } from './config.ts';
export { AUDIT_DROPPED_METRIC } from './metrics.ts';
export { AuditRecorder, decisionRecordFrom, decisionRecordFromLog } from './recorder.ts';
export { AuditStore } from './store.ts';
export { DAY_MS, HOUR_MS } from './aggregates.ts';
export { AuditWriter } from './writer.ts';
export { PostgresDriver } from './postgres-driver.ts';
export { SqliteDriver } from './sqlite-driver.ts';
export type * from './records.ts';
export type { SqlDriver } from './sql.ts';
export type { AuditWriterStatus } from './writer.ts';

export interface AuditConfig {
  DATA_DIR: string;
  DATABASE_URL?: string | undefined;
  AUDIT_STORE_CODE: boolean;
  AUDIT_RETENTION_DAYS: number;
  AUDIT_QUEUE_LIMIT: number;
  AUDIT_BATCH_SIZE: number;
  AUDIT_FLUSH_MS: number;
  EGRESS_MODE: 'inprocess' | 'remote';
}

export interface Audit {
  store: AuditStore;
  writer: AuditWriter;
  recorder: AuditRecorder;
  /** For /readyz details: never makes the service unready (executions go on without their trail). */
  readiness(): { store: string } & AuditWriterStatus;
  close(): Promise<void>;
}

export function auditDriverFor(config: Pick<AuditConfig, 'DATA_DIR' | 'DATABASE_URL'>, logger: Pick<Logger, 'warn'>): SqlDriver {
  if (config.DATABASE_URL !== undefined) {
    return new PostgresDriver(config.DATABASE_URL, (error) => logger.warn({ err: error.message }, 'audit store connection lost'));
  }
  return new SqliteDriver(join(config.DATA_DIR, 'audit.sqlite'));
}

/**
 * Opens and migrates the store. A store that cannot be reached at start is
 * fatal: an operator who asked for an audit trail must not run without one
 * unknowingly. Once running, an outage only drops records (counted).
 */
export async function startAudit(config: AuditConfig, logger: Logger, registry: Registry): Promise<Audit> {
  const store = new AuditStore(auditDriverFor(config, logger));
  const applied = await store.migrate();
  logger.info({ store: store.description, migrationsApplied: applied }, 'audit store ready');
  const writer = new AuditWriter({
    store,
    queueLimit: config.AUDIT_QUEUE_LIMIT,
    batchSize: config.AUDIT_BATCH_SIZE,
    flushMs: config.AUDIT_FLUSH_MS,
    onError: (error, failures) => {
      if (failures === 1) logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'audit store write failed; retrying, records queue meanwhile');
    },
    onRecovered: () => logger.info('audit store writes resumed'),
  });
  registerAuditMetrics(registry, () => writer.status());
  const retention = startRetention(store, config.AUDIT_RETENTION_DAYS, logger);
  const recorder = new AuditRecorder({ records: writer, storeCode: config.AUDIT_STORE_CODE, decisionsFromNetworkLog: config.EGRESS_MODE === 'remote' });
  return {
    store,
    writer,
    recorder,
    readiness: () => ({ store: store.description, ...writer.status() }),
    async close() {
      retention.stop();
      await writer.close();
      await store.close();
    },
  };
}
