/** Deletes what is older than the retention period, at start and then every hour, off the request path. */
import type { AuditStore } from './store.ts';

const RETENTION_INTERVAL_MS = 60 * 60 * 1000;
const DAY_MS = 24 * 60 * 60 * 1000;

export interface RetentionLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export function startRetention(store: Pick<AuditStore, 'deleteBefore'>, days: number, log: RetentionLog, now: () => number = Date.now): { stop(): void } {
  let running = false;
  const sweep = async (): Promise<void> => {
    if (running) return;
    running = true;
    try {
      const deleted = await store.deleteBefore(now() - days * DAY_MS);
      if (deleted.executions + deleted.decisions > 0) log.info({ ...deleted, retentionDays: days }, 'audit retention deleted old records');
    } catch (error) {
      log.warn({ err: error instanceof Error ? error.message : String(error) }, 'audit retention sweep failed; next one in an hour');
    } finally {
      running = false;
    }
  };
  void sweep();
  const timer = setInterval(() => void sweep(), RETENTION_INTERVAL_MS);
  timer.unref();
  return { stop: () => clearInterval(timer) };
}
