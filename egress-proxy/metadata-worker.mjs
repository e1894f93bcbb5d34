// The entry of MetadataReader's worker thread. The sources run as TypeScript
// through tsx, and on Node 20 a worker does not inherit the loader its parent
// was started with, so the worker registers it before loading its module.
import { register } from 'tsx/esm/api';

register();
await import('./metadata-worker-thread.ts');
