/** Where build progress goes; the CLI prints it, the server may log it. */
export type BuildLog = (line: string) => void;

/**
 * Runs named steps, logging each with its elapsed seconds, so a slow first
 * build shows where its minutes go.
 */
export function stepper(log: BuildLog, prefix: string) {
  const started = performance.now();
  return {
    step: async <T>(name: string, work: () => Promise<T>): Promise<T> => {
      const t0 = performance.now();
      log(`${prefix} ${name}…`);
      const result = await work();
      log(`${prefix} ${name}: done in ${seconds(performance.now() - t0)}`);
      return result;
    },
    total: (): string => seconds(performance.now() - started),
  };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
