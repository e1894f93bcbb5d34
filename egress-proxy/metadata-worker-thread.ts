/**
 * The thread that reads registry metadata for MetadataReader: one message in
 * (an id and the metadata), one message out (the id and its facts).
 */
import { parentPort } from 'node:worker_threads';
import { readRegistryMetadata, type RegistryMetadata } from '../policies/index.ts';

export interface MetadataJob {
  id: number;
  metadata: RegistryMetadata;
}

parentPort?.on('message', (job: MetadataJob) => {
  parentPort?.postMessage({ id: job.id, facts: readRegistryMetadata(job.metadata) });
});
