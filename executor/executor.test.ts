/**
 * How runIn reads the agent's exit records, and how the warm pool treats a
 * sandbox that dies, against scripted containers: the engine here never
 * reports a container stopped unless told to, so a test that answers proves
 * the answer did not wait for it.
 */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { defaultPolicyResult, type CompiledPolicy } from '../policies/index.ts';
import { DEFAULT_LIMITS } from './container-spec.ts';
import type { ContainerClient, ContainerExit, SandboxContainer } from './docker.ts';
import type { EgressPort, EgressSessionRequest, NetworkLog } from './egress.ts';
import { Executor, type ExecutionJob, type ExecutionResult, type ExecutorOptions } from './executor.ts';
import { WarmPool } from './pool.ts';
import { ReadySandbox } from './sandbox.ts';

function frame(type: 1 | 2, payload: string): Buffer {
  const body = Buffer.from(payload, 'latin1');
  const header = Buffer.alloc(8);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

/** An engine whose images have no hideable tools; nothing here creates containers. */
const noTools: ContainerClient = {
  ping: () => Promise.resolve(),
  hasImage: () => Promise.resolve(true),
  imageLabels: () => Promise.resolve({}),
  create: () => Promise.reject(new Error('no containers in unit tests')),
  listLabelled: () => Promise.resolve([]),
  removeLabelled: () => Promise.resolve(0),
  kill: () => Promise.resolve(),
  memoryUsage: () => Promise.resolve(undefined),
  ociRuntimes: () => Promise.resolve(['runc']),
  version: () => Promise.resolve({ server: 'fake', api: 'fake' }),
};

/**
 * An egress port that records what the executor asks of it in `events`
 * (shared with the scripted container, so the order is visible) and hands
 * back `log` when a session closes.
 */
class FakeEgress implements EgressPort {
  readonly opened: EgressSessionRequest[] = [];
  closed = 0;

  constructor(
    readonly events: string[] = [],
    readonly log: NetworkLog = { entries: [], capped: false },
    readonly failClose = false,
  ) {}

  caCertificate(): Promise<string> {
    return Promise.resolve('-----BEGIN CERTIFICATE-----\nfake\n-----END CERTIFICATE-----\n');
  }

  openSession(request: EgressSessionRequest): Promise<{ close(): Promise<NetworkLog> }> {
    this.opened.push(request);
    this.events.push('session open');
    return Promise.resolve({
      close: () => {
        this.closed += 1;
        this.events.push('session closed');
        return this.failClose ? Promise.reject(new Error('proxy gone')) : Promise.resolve(this.log);
      },
    });
  }
}

const silent = { info: () => undefined, warn: () => undefined };

/**
 * A container whose agent answers the job header with `script(token)`: the
 * frames it writes back. The engine's wait resolves only when `stop` is
 * called. Every engine call made on it lands in `calls`.
 */
function scriptedContainer(script: (token: string) => Buffer[], engineExit: ContainerExit = { statusCode: 0, oomKilled: false }, events: string[] = [], calls: string[] = []) {
  let engineStopped: () => void = () => undefined;
  const stopped = new Promise<void>((resolve) => {
    engineStopped = resolve;
  });
  // The container stops: the engine says so and the attach stream ends.
  const stop = () => {
    engineStopped();
    stream.push(null);
  };
  let input = '';
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      input += chunk.toString();
      done();
    },
    final(done) {
      events.push('job handed over');
      const header = JSON.parse(input.slice(0, input.indexOf('\n'))) as { token: string };
      for (const chunk of script(header.token)) this.push(chunk);
      done();
    },
  });
  const container: SandboxContainer = {
    id: 'scripted',
    attach: () => {
      calls.push('attach');
      return Promise.resolve(stream);
    },
    start: () => {
      calls.push('start');
      return Promise.resolve();
    },
    wait: () => {
      calls.push('wait');
      return stopped;
    },
    kill: () => {
      calls.push('kill');
      stop();
      return Promise.resolve();
    },
    inspectExit: () => {
      calls.push('inspect');
      return Promise.resolve(engineExit);
    },
    remove: () => {
      calls.push('remove');
      events.push('removed');
      return Promise.resolve();
    },
  };
  return { container, calls, stop, stream };
}

/** A started sandbox around a scripted container (see scriptedContainer). */
function scripted(script: (token: string) => Buffer[], engineExit?: ContainerExit, id = 'scripted', events: string[] = []) {
  const made = scriptedContainer(script, engineExit, events);
  const sandbox = new ReadySandbox(id, 'node', 'runc', made.container, '/nonexistent/sandbox-egress-test', made.stream, 1 << 20);
  return { sandbox, ...made };
}

function executorOptions(egress: EgressPort = new FakeEgress()): ExecutorOptions {
  return {
    client: noTools,
    egress,
    images: { node: 'node-image', python: 'python-image' },
    sandboxesDir: '/nonexistent',
    instanceId: 'test',
    limits: DEFAULT_LIMITS,
    logger: silent,
  };
}

function executor(egress?: EgressPort): Executor {
  return new Executor(executorOptions(egress));
}

const helloAgent = (t: string) => [frame(2, record(t, 'started')), frame(1, 'hello\n'), frame(1, record(t, 'exit:0:')), frame(2, record(t, 'exit:0:'))];

/** Makes scripted sandboxes instead of containers; the cold path only counts. */
class ScriptedExecutor extends Executor {
  readonly made: Array<ReturnType<typeof scripted>> = [];
  readonly discarded: string[] = [];
  coldRuns = 0;

  constructor(egress?: FakeEgress) {
    super(executorOptions(egress));
    this.events = egress?.events ?? [];
  }

  readonly events: string[];

  override prepare(): Promise<ReadySandbox> {
    const made = scripted(helloAgent, undefined, `pooled-${this.made.length}`, this.events);
    this.made.push(made);
    return Promise.resolve(made.sandbox);
  }

  override discard(sandbox: ReadySandbox): void {
    this.discarded.push(sandbox.id);
    sandbox.stream.destroy();
  }

  override run(): Promise<ExecutionResult> {
    this.coldRuns += 1;
    return Promise.resolve({ stdout: 'cold\n', stderr: '', code: 0, signal: null, timedOut: false, oomKilled: false, truncated: { stdout: false, stderr: false }, durationMs: 1, isolation: 'runc', networkLog: [], networkLogCapped: false });
  }
}

const policy: CompiledPolicy = defaultPolicyResult().compiled;
const job: ExecutionJob = { executionId: 'e1', runtime: 'node', isolation: 'runc', code: '', args: [], env: {}, stdin: '', timeoutMs: 5_000, policy };
const stripeLog: NetworkLog = {
  entries: [{ method: 'GET', url: 'https://api.stripe.com/v1/products', hostname: 'api.stripe.com', statusCode: 200, blocked: false, durationMs: 12 }],
  capped: true,
};
const record = (token: string, body: string) => `\0sandbox:${token}:${body}\n`;

describe('Executor.runIn with exit records', () => {
  it('answers from the records while the engine has not reported the container stopped', async () => {
    const { sandbox, calls } = scripted((t) => [
      frame(2, record(t, 'started')),
      frame(1, 'hello\n'),
      frame(2, 'warn\n'),
      frame(1, record(t, 'exit:3:')),
      frame(2, record(t, 'exit:3:')),
    ]);
    const ex = executor();
    const result = await ex.runIn(sandbox, job);
    expect(result).toMatchObject({ stdout: 'hello\n', stderr: 'warn\n', code: 3, signal: null, timedOut: false, oomKilled: false });
    await ex.settle();
    expect(calls).toEqual(['remove']);
  });

  it('waits for the stdout record even when stderr reported first', async () => {
    const { sandbox } = scripted((t) => [frame(2, record(t, 'started')), frame(2, record(t, 'exit:0:')), frame(1, 'late but before\n'), frame(1, record(t, 'exit:0:'))]);
    const result = await executor().runIn(sandbox, job);
    expect(result).toMatchObject({ stdout: 'late but before\n', code: 0 });
  });

  it('ignores records forged under another token', async () => {
    const forged = record('0'.repeat(32), 'exit:0:');
    const { sandbox } = scripted((t) => [
      frame(2, record(t, 'started')),
      frame(1, forged),
      frame(2, forged),
      frame(1, 'still running\n'),
      frame(1, record(t, 'exit:7:')),
      frame(2, record(t, 'exit:7:')),
    ]);
    const result = await executor().runIn(sandbox, job);
    expect(result).toMatchObject({ stdout: `${forged}still running\n`, stderr: forged, code: 7 });
  });

  it('asks the engine about a SIGKILL, which may be the OOM killer', async () => {
    const { sandbox, calls, stop } = scripted(
      (t) => {
        setImmediate(stop);
        return [frame(2, record(t, 'started')), frame(1, record(t, 'exit::SIGKILL')), frame(2, record(t, 'exit::SIGKILL'))];
      },
      { statusCode: 137, oomKilled: true },
    );
    const result = await executor().runIn(sandbox, job);
    expect(result).toMatchObject({ code: null, signal: 'SIGKILL', oomKilled: true, timedOut: false });
    expect(calls).toContain('inspect');
  });

  it('falls back to the engine when the agent reports nothing', async () => {
    const { sandbox, stop } = scripted(
      (t) => {
        setImmediate(stop);
        return [frame(2, record(t, 'started')), frame(2, 'sandbox-agent: broken\n')];
      },
      { statusCode: 125, oomKilled: false },
    );
    const result = await executor().runIn(sandbox, job);
    expect(result).toMatchObject({ stderr: 'sandbox-agent: broken\n', code: 125, signal: null });
  });
});

describe('a sandbox that dies before its job', () => {
  it('leaves the pool as soon as its stream closes, though the engine says nothing, and is replaced', async () => {
    const ex = new ScriptedExecutor();
    const pool = new WarmPool({ executor: ex, runtimes: ['node'], isolations: ['runc'], size: 1, logger: silent });
    pool.start();
    await pool.whenFull();
    ex.made[0].stream.push(null);
    await expect.poll(() => ex.made.length).toBe(2);
    expect(ex.discarded).toEqual(['pooled-0']);
    expect(pool.stats().ready).toEqual({ 'node/runc': 1 });

    const result = await pool.run(job);
    expect(result.stdout).toBe('hello\n');
    expect(pool.stats()).toMatchObject({ warmRuns: 1, coldRuns: 0 });
    expect(ex.coldRuns).toBe(0);
    await pool.close();
  });

  it('sends the job down the cold path when the container stopped before the agent took it', async () => {
    const ex = new ScriptedExecutor();
    const { sandbox, stop } = scripted(() => {
      setImmediate(stop);
      return [];
    }, { statusCode: 137, oomKilled: false });
    const result = await ex.runIn(sandbox, job);
    expect(result.stdout).toBe('cold\n');
    expect(ex.coldRuns).toBe(1);
    expect(ex.discarded).toEqual(['scripted']);
  });

  it('sends the job down the cold path when the sandbox is already known dead', async () => {
    const ex = new ScriptedExecutor();
    const { sandbox, stream } = scripted(helloAgent);
    stream.push(null);
    await sandbox.outputDone;
    const result = await ex.runIn(sandbox, job);
    expect(result.stdout).toBe('cold\n');
    expect(ex.coldRuns).toBe(1);
  });
});

describe('the egress port', () => {
  it('opens the session for the job when it reaches its sandbox, closes it after the program, and answers with its log', async () => {
    const egress = new FakeEgress([], stripeLog);
    const { sandbox } = scripted(helloAgent, undefined, 'with-egress', egress.events);
    const ex = executor(egress);
    const result = await ex.runIn(sandbox, { ...job, executionId: 'e-egress' });
    expect(egress.opened).toEqual([{ executionId: 'e-egress', socketPath: '/nonexistent/sandbox-egress-test/proxy.sock', context: policy }]);
    expect(result).toMatchObject({ stdout: 'hello\n', networkLog: stripeLog.entries, networkLogCapped: true });
    await ex.settle();
    expect(egress.events).toEqual(['session open', 'job handed over', 'session closed', 'removed']);
  });

  it('gives a pooled sandbox no session until a job takes it, and one session per job', async () => {
    const egress = new FakeEgress([], stripeLog);
    const ex = new ScriptedExecutor(egress);
    const pool = new WarmPool({ executor: ex, runtimes: ['node'], isolations: ['runc'], size: 1, logger: silent });
    pool.start();
    await pool.whenFull();
    expect(egress.opened).toEqual([]);

    const result = await pool.run({ ...job, executionId: 'e-pooled' });
    expect(egress.opened.map((r) => r.executionId)).toEqual(['e-pooled']);
    expect(egress.closed).toBe(1);
    expect(result.networkLog).toEqual(stripeLog.entries);
    expect(pool.stats()).toMatchObject({ warmRuns: 1, coldRuns: 0 });
    await pool.close();
    expect(egress.opened).toHaveLength(1);
  });

  it('answers without a network log when the session fails to close', async () => {
    const egress = new FakeEgress([], stripeLog, true);
    const { sandbox } = scripted(helloAgent);
    const result = await executor(egress).runIn(sandbox, job);
    expect(result).toMatchObject({ stdout: 'hello\n', code: 0, networkLog: [], networkLogCapped: false });
  });

  it('closes the session it opened for a sandbox that died before its agent took the job', async () => {
    const egress = new FakeEgress();
    const ex = new ScriptedExecutor(egress);
    const { sandbox, stop } = scripted(() => {
      setImmediate(stop);
      return [];
    });
    await ex.runIn(sandbox, job);
    expect(egress.closed).toBe(egress.opened.length);
    expect(ex.coldRuns).toBe(1);
  });
});

describe('which jobs a pooled sandbox fits', () => {
  /** An image with one hideable tool, `jq`. */
  class WithJq extends ScriptedExecutor {
    override exposedToolsFor(_runtime: string, allowedBinaries: readonly string[]): Promise<string[]> {
      return Promise.resolve(allowedBinaries.filter((name) => name === 'jq'));
    }
  }

  it('is decided by the pool: a job whose policy shows a tool runs cold and leaves the pooled sandbox ready', async () => {
    const ex = new WithJq();
    const pool = new WarmPool({ executor: ex, runtimes: ['node'], isolations: ['runc'], size: 1, logger: silent });
    pool.start();
    await pool.whenFull();

    const result = await pool.run({ ...job, allowedBinaries: ['jq'] });
    expect(result.stdout).toBe('cold\n');
    expect(pool.stats()).toMatchObject({ warmRuns: 0, coldRuns: 1, ready: { 'node/runc': 1 } });
    expect(ex.discarded).toEqual([]);

    expect((await pool.run(job)).stdout).toBe('hello\n');
    expect(pool.stats()).toMatchObject({ warmRuns: 1, coldRuns: 1 });
    await pool.close();
  });
});

describe('the pool per isolation tier', () => {
  it('never hands a job a sandbox of another tier: it keeps one pool per runtime and tier', async () => {
    const ex = new ScriptedExecutor();
    const pool = new WarmPool({ executor: ex, runtimes: ['node'], isolations: ['runc'], size: 1, logger: silent });
    pool.start();
    await pool.whenFull();
    const result = await pool.run({ ...job, isolation: 'gvisor' });
    expect(result.stdout).toBe('cold\n');
    expect(pool.stats()).toMatchObject({ warmRuns: 0, coldRuns: 1, ready: { 'node/runc': 1 } });
    expect(ex.coldRuns).toBe(1);
    await pool.close();
  });
});

describe('the engine calls of one execution', () => {
  /**
   * An executor whose engine makes scripted containers, every call on them
   * (create included) in `calls`; with `stops`, the container stops once
   * its agent has written its frames.
   */
  async function countingExecutor(script: (token: string) => Buffer[], options: { engineExit?: ContainerExit; stops?: boolean } = {}) {
    const calls: string[] = [];
    const sandboxesDir = await mkdtemp(join(tmpdir(), 'executor-calls-'));
    const client: ContainerClient = {
      ...noTools,
      create: () => {
        calls.push('create');
        const made = scriptedContainer(
          (token) => {
            if (options.stops) setImmediate(() => made.stop());
            return script(token);
          },
          options.engineExit,
          [],
          calls,
        );
        return Promise.resolve(made.container);
      },
    };
    const ex = new Executor({ ...executorOptions(), client, sandboxesDir });
    return { ex, calls, sandboxesDir, [Symbol.asyncDispose]: () => rm(sandboxesDir, { recursive: true, force: true }) };
  }

  it('are create, attach, start and remove: no wait, inspect or kill when the agent reported a clean exit', async () => {
    await using counting = await countingExecutor(helloAgent);
    const result = await counting.ex.run(job);
    expect(result).toMatchObject({ stdout: 'hello\n', code: 0 });
    await counting.ex.settle();
    expect(counting.calls).toEqual(['create', 'attach', 'start', 'remove']);
    expect(await readdir(counting.sandboxesDir)).toEqual([]);
  });

  it('add the engine wait and inspect only when the agent reported no exit', async () => {
    await using counting = await countingExecutor((t) => [frame(2, record(t, 'started')), frame(2, 'sandbox-agent: broken\n')], { engineExit: { statusCode: 125, oomKilled: false }, stops: true });
    const result = await counting.ex.run(job);
    expect(result).toMatchObject({ stderr: 'sandbox-agent: broken\n', code: 125 });
    await counting.ex.settle();
    expect(counting.calls).toEqual(['create', 'attach', 'start', 'wait', 'inspect', 'remove']);
  });

  it('add a kill when the program outlives its timeout', async () => {
    await using counting = await countingExecutor((t) => [frame(2, record(t, 'started'))]);
    const result = await counting.ex.run({ ...job, timeoutMs: 50 });
    expect(result).toMatchObject({ timedOut: true, signal: 'SIGKILL' });
    await counting.ex.settle();
    expect(counting.calls).toEqual(['create', 'attach', 'start', 'kill', 'wait', 'inspect', 'remove']);
  });
});

describe('removing used sandboxes', () => {
  /** A sandbox whose removal finishes only when `finish` is called. */
  function slowToRemove(id: string, removing: string[]) {
    let finish: () => void = () => undefined;
    const made = scripted(helloAgent, undefined, id);
    made.container.remove = () => {
      removing.push(id);
      return new Promise<void>((resolve) => {
        finish = resolve;
      });
    };
    return { sandbox: made.sandbox, finish: () => finish() };
  }

  it('happens a few at a time, after the answer, and settle() waits for every one queued', async () => {
    const ex = executor();
    const removing: string[] = [];
    const sandboxes = ['a', 'b', 'c'].map((id) => slowToRemove(id, removing));
    for (const { sandbox } of sandboxes) ex.discard(sandbox);
    expect(removing).toEqual(['a', 'b']);
    expect(ex.removing).toBe(3);

    let settled = false;
    const settling = ex.settle().then(() => {
      settled = true;
    });
    sandboxes[0]?.finish();
    await expect.poll(() => removing).toEqual(['a', 'b', 'c']);
    sandboxes[1]?.finish();
    await new Promise((resolve) => setImmediate(resolve));
    expect(settled).toBe(false);
    sandboxes[2]?.finish();
    await settling;
    expect(ex.removing).toBe(0);
  });

  it('is drained by the pool on close, so no container outlives a shutdown', async () => {
    const removed: string[] = [];
    class Recording extends ScriptedExecutor {
      override discard(sandbox: ReadySandbox): void {
        Executor.prototype.discard.call(this, sandbox);
      }
    }
    const ex = new Recording();
    const pool = new WarmPool({ executor: ex, runtimes: ['node'], isolations: ['runc'], size: 3, logger: silent });
    pool.start();
    await pool.whenFull();
    for (const made of ex.made) {
      made.container.remove = () =>
        new Promise<void>((resolve) =>
          setTimeout(() => {
            removed.push(made.sandbox.id);
            resolve();
          }, 5),
        );
    }
    await pool.close();
    expect(removed.sort()).toEqual(['pooled-0', 'pooled-1', 'pooled-2']);
  });
});

describe('the pool under load', () => {
  /** Sandboxes come ready only when the test says so: `pending` holds each prepare() under way. */
  class GatedExecutor extends ScriptedExecutor {
    readonly pending: Array<{ ready: () => void; fail: (error: Error) => void }> = [];
    mostAtOnce = 0;

    override prepare(): Promise<ReadySandbox> {
      return new Promise((resolve, reject) => {
        const entry = {
          ready: () => {
            this.pending.splice(this.pending.indexOf(entry), 1);
            resolve(super.prepare());
          },
          fail: (error: Error) => {
            this.pending.splice(this.pending.indexOf(entry), 1);
            reject(error);
          },
        };
        this.pending.push(entry);
        this.mostAtOnce = Math.max(this.mostAtOnce, this.pending.length);
      });
    }
  }

  const pooled = (ex: Executor, size: number) => new WarmPool({ executor: ex, runtimes: ['node'], isolations: ['runc'], size, logger: silent, retryMs: { min: 60_000, max: 60_000 } });

  it('refills one sandbox at a time while no job waits', async () => {
    const ex = new GatedExecutor();
    const pool = pooled(ex, 3);
    pool.start();
    for (let i = 0; i < 3; i++) {
      await expect.poll(() => ex.pending.length).toBe(1);
      ex.pending[0]?.ready();
    }
    await pool.whenFull();
    expect(ex.mostAtOnce).toBe(1);
    await pool.close();
  });

  it('gives a job that finds the pool empty the sandbox already being made, not a container of its own', async () => {
    const ex = new GatedExecutor();
    const pool = pooled(ex, 1);
    pool.start();
    await expect.poll(() => ex.pending.length).toBe(1);
    const running = pool.run(job);
    await expect.poll(() => pool.stats().waiting).toEqual({ 'node/runc': 1 });
    expect(ex.pending).toHaveLength(1);
    ex.pending[0]?.ready();
    expect((await running).stdout).toBe('hello\n');
    expect(pool.stats()).toMatchObject({ warmRuns: 1, waitedRuns: 1, coldRuns: 0 });
    expect(ex.coldRuns).toBe(0);
    await expect.poll(() => ex.pending.length).toBe(1);
    ex.pending[0]?.ready();
    await pool.close();
  });

  it('makes one sandbox per waiting job at once, no more', async () => {
    const ex = new GatedExecutor();
    const pool = pooled(ex, 1);
    pool.start();
    await expect.poll(() => ex.pending.length).toBe(1);
    const runs = [pool.run(job), pool.run(job), pool.run(job)];
    await expect.poll(() => ex.pending.length).toBe(3);
    while (ex.pending.length > 0) ex.pending[0]?.ready();
    for (const run of runs) expect((await run).stdout).toBe('hello\n');
    expect(ex.mostAtOnce).toBe(3);
    expect(pool.stats()).toMatchObject({ warmRuns: 3, waitedRuns: 3, coldRuns: 0 });
    await expect.poll(() => ex.pending.length).toBe(1);
    ex.pending[0]?.ready();
    await pool.close();
  });

  it('sends waiting jobs down the cold path when the refill fails', async () => {
    const ex = new GatedExecutor();
    const pool = pooled(ex, 1);
    pool.start();
    await expect.poll(() => ex.pending.length).toBe(1);
    const running = pool.run(job);
    await expect.poll(() => pool.stats().waiting).toEqual({ 'node/runc': 1 });
    ex.pending[0]?.fail(new Error('engine down'));
    expect((await running).stdout).toBe('cold\n');
    expect(pool.stats()).toMatchObject({ warmRuns: 0, coldRuns: 1 });
    await pool.close();
  });

  it('sends waiting jobs down the cold path when it closes', async () => {
    const ex = new GatedExecutor();
    const pool = pooled(ex, 1);
    pool.start();
    await expect.poll(() => ex.pending.length).toBe(1);
    const running = pool.run(job);
    await expect.poll(() => pool.stats().waiting).toEqual({ 'node/runc': 1 });
    const closing = pool.close();
    expect((await running).stdout).toBe('cold\n');
    ex.pending[0]?.ready();
    await closing;
    expect(ex.discarded).toEqual(['pooled-0']);
  });
});
