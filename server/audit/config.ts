/** The audit store's environment variables, spread into the server's ConfigSchema. */
import { z } from 'zod';
import { optionalText, positiveInt } from '../../service-kit/index.ts';

export const AUDIT_CONFIG_SHAPE = {
  AUDIT_STORE: z.enum(['on', 'off']).default('on')
    .describe('on: every execution and egress decision is kept in the audit store (SQLite in DATA_DIR, or DATABASE_URL); off: nothing is kept and the /admin audit endpoints answer 404'),
  DATABASE_URL: optionalText
    .refine((v) => v === undefined || /^postgres(ql)?:\/\//u.test(v), { message: 'must be a postgres:// URL' })
    .describe('PostgreSQL for the audit store (postgres://user:pass@host/db, or ?host=/socket/dir), so several instances share one trail; unset: SQLite file DATA_DIR/audit.sqlite'),
  AUDIT_STORE_CODE: z.enum(['true', 'false']).default('false').transform((v) => v === 'true')
    .describe('true: keep each program\'s text in the store (its SHA-256 and size are always kept)'),
  AUDIT_RETENTION_DAYS: positiveInt(30).describe('executions and decisions older than this are deleted, in the background'),
  AUDIT_QUEUE_LIMIT: positiveInt(10_000).describe('records waiting to be written at most; beyond it (store slow or down) records are dropped and counted'),
  AUDIT_BATCH_SIZE: positiveInt(500).describe('records per write transaction'),
  AUDIT_FLUSH_MS: positiveInt(250).describe('longest a record waits for its batch before it is written'),
};
