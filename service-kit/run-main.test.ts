/** runMain: start, hold a signal that comes during start, stop on the first signal, exit at once on a second. */
import { EventEmitter } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { ConfigError, runMain, type MainProcess } from './index.ts';

class FakeProcess extends EventEmitter implements MainProcess {
  readonly exits: number[] = [];
  exit(code: number): void {
    this.exits.push(code);
  }
  signal(name: NodeJS.Signals): void {
    this.emit(name, name);
  }
}

const quietLogger = { info: () => undefined, error: () => undefined };

describe('runMain', () => {
  it('reports a ConfigError with every problem and exits 1', async () => {
    const proc = new FakeProcess();
    const reported: string[] = [];
    await runMain(() => Promise.reject(new ConfigError(['PORT: bad', 'HOST: bad'])), { process: proc, report: (t) => reported.push(t) });
    expect(reported).toEqual(['Invalid configuration:\n  PORT: bad\n  HOST: bad']);
    expect(proc.exits).toEqual([1]);
    expect(proc.listenerCount('SIGTERM')).toBe(0);
  });

  it('holds a signal that arrives during start, then closes the service and exits 0', async () => {
    const proc = new FakeProcess();
    const close = vi.fn(() => Promise.resolve());
    await runMain(
      () => {
        proc.signal('SIGTERM');
        expect(close).not.toHaveBeenCalled();
        return Promise.resolve({ service: { close }, logger: quietLogger });
      },
      { process: proc },
    );
    expect(close).toHaveBeenCalledTimes(1);
    await vi.waitFor(() => expect(proc.exits).toEqual([0]));
  });

  it('closes on SIGINT; a second signal exits 1 at once', async () => {
    const proc = new FakeProcess();
    let finish: () => void = () => undefined;
    const close = vi.fn(() => new Promise<void>((resolve) => (finish = resolve)));
    await runMain(() => Promise.resolve({ service: { close }, logger: quietLogger, graceMs: 60_000 }), { process: proc });
    expect(close).not.toHaveBeenCalled();
    proc.signal('SIGINT');
    expect(close).toHaveBeenCalledTimes(1);
    proc.signal('SIGTERM');
    expect(proc.exits).toEqual([1]);
    finish();
    await vi.waitFor(() => expect(proc.exits).toEqual([1, 0]));
  });
});
