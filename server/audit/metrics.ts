/**
 * The audit writer's counts on the service's /metrics, read at scrape
 * time: records written and dropped (by kind), failed batches, the queue.
 */
import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { AuditWriterStatus, RecordKind } from './writer.ts';

export const AUDIT_DROPPED_METRIC = 'sandbox_audit_records_dropped_total';

export function registerAuditMetrics(registry: Registry, status: () => AuditWriterStatus): void {
  const registers = [registry];
  const byKind = (name: string, help: string, pick: (s: AuditWriterStatus) => Record<RecordKind, number>) =>
    new Counter({
      name,
      help,
      labelNames: ['kind'],
      registers,
      collect() {
        this.reset();
        const counts = pick(status());
        for (const kind of ['execution', 'decision'] as const) this.inc({ kind }, counts[kind]);
      },
    });
  byKind(AUDIT_DROPPED_METRIC, 'Audit records dropped because the write queue was full (store slow or down)', (s) => s.dropped);
  byKind('sandbox_audit_records_written_total', 'Audit records written to the store', (s) => s.written);
  new Counter({
    name: 'sandbox_audit_write_failures_total',
    help: 'Audit write batches that failed (the batch is retried)',
    registers,
    collect() {
      this.reset();
      this.inc(status().failedBatches);
    },
  });
  new Gauge({
    name: 'sandbox_audit_queue_depth',
    help: 'Audit records waiting to be written',
    registers,
    collect() {
      this.set(status().queued);
    },
  });
}
