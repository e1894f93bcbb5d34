/**
 * The entry point of a service process: start it, and stop it cleanly on
 * SIGTERM/SIGINT. A signal that arrives while the service starts is held and
 * acted on once there is a service to stop (the default action would skip
 * cleanup). Should closing hang past the grace period and `hardStopMs` more,
 * the process exits anyway; a second signal exits at once.
 */
export interface Stoppable {
  close(): Promise<void>;
}

export interface MainLogger {
  info(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface Started {
  service: Stoppable;
  logger: MainLogger;
  /** How long closing may take before the process exits anyway (plus hardStopMs). */
  graceMs?: number;
}

/** The parts of `process` used here; tests hand in their own. */
export interface MainProcess {
  on(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  off(signal: NodeJS.Signals, listener: (signal: NodeJS.Signals) => void): unknown;
  exit(code: number): void;
}

export interface RunMainOptions {
  hardStopMs?: number;
  process?: MainProcess;
  /** Where a failed start is reported (default: stderr); a ConfigError prints its list of problems. */
  report?: (text: string) => void;
}

const SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT'];

/** Starts the service; resolves once it runs with its signal handlers installed (or the process was told to exit). */
export async function runMain(start: () => Promise<Started>, options: RunMainOptions = {}): Promise<void> {
  const proc: MainProcess = options.process ?? process;
  const report = options.report ?? ((text: string) => console.error(text));
  const hardStopMs = options.hardStopMs ?? 15_000;

  let held: NodeJS.Signals | undefined;
  const hold = (signal: NodeJS.Signals) => {
    held ??= signal;
  };
  for (const signal of SIGNALS) proc.on(signal, hold);
  let started: Started;
  try {
    started = await start();
  } catch (error) {
    // A ConfigError's message is its list of problems; anything else is one line, no stack.
    report(error instanceof Error ? error.message : String(error));
    proc.exit(1);
    return;
  } finally {
    for (const signal of SIGNALS) proc.off(signal, hold);
  }

  const { service, logger, graceMs = 0 } = started;
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.error({ signal }, 'second signal during shutdown: exiting now');
      proc.exit(1);
      return;
    }
    stopping = true;
    logger.info({ signal, graceMs }, 'shutting down');
    setTimeout(() => {
      logger.error({ signal }, 'shutdown did not finish in time: exiting');
      proc.exit(1);
    }, graceMs + hardStopMs).unref();
    service.close().then(
      () => {
        logger.info({}, 'shut down');
        proc.exit(0);
      },
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        proc.exit(1);
      },
    );
  };
  for (const signal of SIGNALS) proc.on(signal, stop);
  if (held !== undefined) stop(held);
}
