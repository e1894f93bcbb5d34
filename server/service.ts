/**
 * Assembles the service from its configuration: Docker client, executor,
 * HTTP app, and the lifecycle around them (orphan reaping at start,
 * draining and cleanup at stop). `npm start` and the integration tests both
 * go through here, so tests exercise the wiring operators run.
 */
import { createHash } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { DockerContainerClient, DEFAULT_LIMITS, Executor, WarmPool, type Runtime } from '../executor/index.ts';
import { adminRouter } from './admin.ts';
import { adminConsoleRouter } from './admin-console.ts';
import { adminPolicyLookup } from './admin-policy-lookup.ts';
import { startAudit, type Audit } from './audit/index.ts';
import { Admission } from './admission.ts';
import { createApp } from './app.ts';
import type { Config } from './config.ts';
import { startEgress } from './egress.ts';
import { ExecutionService } from './execution-service.ts';
import { chooseIsolation } from './isolation.ts';
import { developmentAnnouncement, developmentJwksRouter, loadIdentity } from './identity/index.ts';
import { createLogger, type Logger } from './logger.ts';
import { createPolicyCache, policyServiceRouter } from './policy-service.ts';
import { decodeResponseKey, ResponseEncryptor } from './encryption.ts';
import { ServiceMetrics, type CapacitySource } from './metrics.ts';
import { openApiRouter } from './openapi.ts';
import { Drain } from './shutdown.ts';

export interface ServiceOptions {
  config: Config;
  images: Record<Runtime, string>;
  logger?: Logger;
  /** Where development mode prints its demo token and curl (default: stderr, never the JSON log). */
  announce?: (text: string) => void;
}

export interface RunningService {
  /** The audit trail, unless AUDIT_STORE=off. */
  audit: Audit | undefined;
  url: string;
  port: number;
  logger: Logger;
  executor: Executor;
  pool: WarmPool;
  close(): Promise<void>;
}

/** Containers are labelled with this, so one server never reaps another's (each has its own DATA_DIR). */
/** After the grace period, how long stopped executions get to answer their callers. */
const SHUTDOWN_ANSWER_MS = 5_000;

export function instanceIdFor(dataDir: string): string {
  return createHash('sha256').update(dataDir).digest('hex').slice(0, 16);
}

export async function startService(options: ServiceOptions): Promise<RunningService> {
  const { config } = options;
  const logger = options.logger ?? createLogger(config.LOG_LEVEL);
  // Keys first: a service that cannot verify tokens must not start at all.
  const identity = await loadIdentity(config);
  const policies = createPolicyCache(config);
  const sandboxesDir = join(config.DATA_DIR, 'sandboxes');
  await mkdir(sandboxesDir, { recursive: true, mode: 0o755 });

  const drain = new Drain();
  // The capacity figures are read at scrape time, from whatever exists by then.
  const capacity: CapacitySource = { inFlight: () => drain.inFlight };
  const tiers: { available?: () => readonly string[] } = {};
  const metrics = new ServiceMetrics({ policyStats: () => policies.stats(), capacity, isolation: tiers });
  const audit = config.AUDIT_STORE === 'on' ? await startAudit(config, logger.child({ component: 'audit' }), metrics.registry) : undefined;
  const countDecision = metrics.egressDecisions;
  const egress = await startEgress(
    config,
    logger.child({ component: 'egress' }),
    audit === undefined ? countDecision : (decision) => {
      countDecision(decision);
      audit.recorder.observeDecision(decision);
    },
  );

  const docker = new DockerContainerClient();
  const executor = new Executor({
    client: docker,
    egress,
    images: options.images,
    sandboxesDir,
    instanceId: instanceIdFor(config.DATA_DIR),
    logger,
    limits: {
      ...DEFAULT_LIMITS,
      memoryBytes: config.EXEC_MEMORY_MB * 1024 * 1024,
      outputLimitBytes: config.EXEC_OUTPUT_LIMIT_BYTES,
      pidsLimit: config.EXEC_PIDS_LIMIT,
      nanoCpus: Math.round(config.EXEC_CPUS * 1e9),
      tmpfsBytes: config.EXEC_TMP_MB * 1024 * 1024,
    },
  });
  try {
    await executor.reapOrphans();
  } catch (error) {
    // Docker may come up later; /readyz reports it and /execute answers 503 meanwhile.
    logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'could not reap orphaned containers');
  }

  const isolation = await chooseIsolation(config.EXEC_RUNTIME, docker, logger);
  tiers.available = () => isolation.available;
  // After the reaping above, so the pool's fresh sandboxes are not taken for orphans.
  const pool = new WarmPool({
    executor,
    runtimes: Object.keys(options.images),
    isolations: isolation.available,
    size: config.EXEC_POOL_SIZE,
    logger: logger.child({ component: 'pool' }),
  });
  pool.start();
  const admission = new Admission({
    maxConcurrent: config.EXEC_MAX_CONCURRENT,
    queueLimit: config.EXEC_QUEUE_LIMIT,
    queueTimeoutMs: config.EXEC_QUEUE_TIMEOUT_MS,
    perCallerMax: config.EXEC_MAX_CONCURRENT_PER_CALLER,
  });
  capacity.queueDepth = () => admission.queued;
  capacity.poolSize = () => sumOfCounts(pool.stats().ready);
  capacity.poolWaiting = () => sumOfCounts(pool.stats().waiting);
  const executionService = new ExecutionService({
    executor: pool,
    admission,
    defaultTimeoutMs: config.EXEC_TIMEOUT_MS,
    maxTimeoutMs: config.EXEC_MAX_TIMEOUT_MS,
    isolation,
    packageRegistries: { npm: config.NPM_REGISTRY_HOST[0] ?? 'registry.npmjs.org', pypi: config.PYPI_HOSTS[0] ?? 'pypi.org' },
    fileLimits: {
      maxInputFiles: config.EXEC_FILES_MAX_COUNT,
      maxInputBytes: config.EXEC_FILES_MAX_BYTES,
      maxOutputFiles: config.EXEC_OUTPUT_FILES_MAX_COUNT,
      maxOutputBytes: config.EXEC_OUTPUT_FILES_MAX_BYTES,
    },
  });
  // Every execution, finished or refused, goes to the audit trail (off the request path).
  const executions = audit === undefined ? executionService : audit.recorder.wrap(executionService);
  const app = createApp({
    config,
    logger,
    executions,
    docker,
    egress,
    images: options.images,
    isolation,
    metrics,
    drain,
    ...(audit === undefined ? {} : { readyDetails: () => ({ audit: audit.readiness() }) }),
    ...(config.RESPONSE_ENCRYPTION_KEY !== undefined ? { encryptor: new ResponseEncryptor(decodeResponseKey(config.RESPONSE_ENCRYPTION_KEY)!) } : {}),
    authenticate: identity.authenticate,
    policies,
    routers: [
      metrics.router(),
      openApiRouter(),
      ...(identity.development ? [developmentJwksRouter(identity.development)] : []),
      policyServiceRouter({ directory: config.POLICY_DIR, requireToken: identity.requireToken }),
      ...(config.ADMIN_TOKEN !== undefined
        ? [adminConsoleRouter(), adminRouter({ adminToken: config.ADMIN_TOKEN, policies, currentPolicy: adminPolicyLookup(config), ...(audit === undefined ? {} : { audit: audit.store }) })]
        : []),
    ],
  });

  const server = app.listen(config.PORT, config.HOST);
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', reject);
  });
  const { port } = server.address() as AddressInfo;
  const host = config.HOST.includes(':') ? `[${config.HOST}]` : config.HOST;
  const url = `http://${host}:${port}`;
  logger.info({ url }, 'listening');
  logger.info({ keys: identity.verifier.source.description, algorithms: identity.verifier.source.algorithms, policySource: policies.source.description }, 'verifying tokens');
  const announcement = await developmentAnnouncement(identity, url, config.DATA_DIR);
  if (announcement !== null) (options.announce ?? ((text) => process.stderr.write(text)))(announcement);

  return {
    url,
    port,
    logger,
    executor,
    pool,
    audit,
    async close() {
      // Refuse new executions (503, and 503 from /readyz so balancers look
      // elsewhere) while running ones get the grace period; the listener
      // stays open meanwhile so those refusals can be answered.
      drain.begin();
      if (!(await drain.settle(config.SHUTDOWN_GRACE_MS))) {
        logger.warn({ running: drain.inFlight, graceMs: config.SHUTDOWN_GRACE_MS }, 'grace period over: stopping running executions');
        drain.abort();
      }
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeIdleConnections();
      // Pooled sandboxes and removals still under way first, then anything else labelled ours
      // (which stops executions still running: their callers get a 503).
      await pool.close();
      await executor.reapOrphans().catch(() => undefined);
      await drain.settle(SHUTDOWN_ANSWER_MS);
      server.closeIdleConnections();
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, SHUTDOWN_ANSWER_MS).unref())]);
      server.closeAllConnections();
      await executor.reapOrphans().catch(() => undefined);
      await egress.close();
      await audit?.close();
    },
  };
}

/** The pool counts per runtime and tier, summed. */
function sumOfCounts(counts: Partial<Record<string, number>>): number {
  return Object.values(counts).reduce<number>((sum, n) => sum + (n ?? 0), 0);
}
