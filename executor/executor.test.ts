/**
 * How runIn reads the agent's exit records, and how the warm pool treats a
 * sandbox that dies, against scripted containers: the engine here never
 * reports a container stopped unless told to, so a test that answers proves
 * the answer did not wait for it.
 */
import { Duplex } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { ContainerClient, type ContainerExit, type SandboxContainer } from './docker.ts';
import { DEFAULT_LIMITS, Executor, ReadySandbox, type ExecutionJob, type ExecutionResult } from './executor.ts';
import { WarmPool } from './pool.ts';

function frame(type: 1 | 2, payload: string): Buffer {
  const body = Buffer.from(payload, 'latin1');
  const header = Buffer.alloc(8);
  header.writeUInt8(type, 0);
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
}

class NoTools extends ContainerClient {
  override imageLabels(): Promise<Record<string, string>> {
    return Promise.resolve({});
  }
}

const silent = { info: () => undefined, warn: () => undefined };

/**
 * A container whose agent answers the job header with `script(token)`: the
 * frames it writes back. The engine's wait resolves only when `stop` is called.
 */
function scripted(script: (token: string) => Buffer[], engineExit: ContainerExit = { statusCode: 0, oomKilled: false }, id = 'scripted') {
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
  const calls: string[] = [];
  const stream = new Duplex({
    read() {},
    write(chunk: Buffer, _encoding, done) {
      input += chunk.toString();
      done();
    },
    final(done) {
      const header = JSON.parse(input.slice(0, input.indexOf('\n'))) as { token: string };
      for (const chunk of script(header.token)) this.push(chunk);
      done();
    },
  });
  const container: SandboxContainer = {
    id: 'scripted',
    attach: () => Promise.resolve(stream),
    start: () => Promise.resolve(),
    wait: () => stopped,
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
      return Promise.resolve();
    },
  };
  const sandbox = new ReadySandbox(id, 'node', container, '/nonexistent/sandbox-egress-test', stream, 1 << 20);
  sandbox.watchExit(container.wait());
  return { sandbox, calls, stop, stream };
}

const executorOptions = {
    client: new NoTools(),
    images: { node: 'node-image', python: 'python-image' },
    sandboxesDir: '/nonexistent',
    instanceId: 'test',
    limits: DEFAULT_LIMITS,
    logger: silent,
};

function executor(): Executor {
  return new Executor(executorOptions);
}

const helloAgent = (t: string) => [frame(2, record(t, 'started')), frame(1, 'hello\n'), frame(1, record(t, 'exit:0:')), frame(2, record(t, 'exit:0:'))];

/** Makes scripted sandboxes instead of containers; the cold path only counts. */
class ScriptedExecutor extends Executor {
  readonly made: Array<ReturnType<typeof scripted>> = [];
  readonly discarded: string[] = [];
  coldRuns = 0;

  constructor() {
    super(executorOptions);
  }

  override prepare(): Promise<ReadySandbox> {
    const made = scripted(helloAgent, undefined, `pooled-${this.made.length}`);
    this.made.push(made);
    return Promise.resolve(made.sandbox);
  }

  override discard(sandbox: ReadySandbox): void {
    this.discarded.push(sandbox.id);
    sandbox.stream.destroy();
  }

  override run(): Promise<ExecutionResult> {
    this.coldRuns += 1;
    return Promise.resolve({ stdout: 'cold\n', stderr: '', code: 0, signal: null, timedOut: false, oomKilled: false, truncated: { stdout: false, stderr: false }, durationMs: 1 });
  }
}

const job: ExecutionJob = { executionId: 'e1', runtime: 'node', code: '', args: [], env: {}, stdin: '', timeoutMs: 5_000 };
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
    const pool = new WarmPool({ executor: ex, runtimes: ['node'], size: 1, logger: silent });
    pool.start();
    await pool.whenFull();
    ex.made[0].stream.push(null);
    await expect.poll(() => ex.made.length).toBe(2);
    expect(ex.discarded).toEqual(['pooled-0']);
    expect(pool.stats().ready).toEqual({ node: 1 });

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
