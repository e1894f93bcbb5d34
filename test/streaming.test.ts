/**
 * POST /execute with Accept: text/event-stream against the real engine,
 * image and proxy: output arrives while the program still runs (judged by
 * the program's own timestamps, not by wall-clock thresholds), the final
 * `result` is the plain call's body, network decisions arrive as events, a
 * closed connection removes the sandbox, and encrypt_messages is refused.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { DockerContainerClient, LABEL_EXECUTION, LABEL_INSTANCE, LABEL_MANAGED } from '../executor/index.ts';
import { ExecuteSuccessSchema } from '../server/execute-response.ts';
import { instanceIdFor } from '../server/service.ts';
import { describeWithDocker } from './support/docker.ts';
import { eventually } from './support/eventually.ts';
import { startSeedWorld, type SeedWorld } from './support/seed-world.ts';
import { allEvents, postForEvents, type ArrivedEvent } from './support/sse.ts';

const KEY_TEXT = 'ab'.repeat(32);

describeWithDocker('POST /execute, streamed', () => {
  let world: SeedWorld;
  const docker = new DockerContainerClient();

  beforeAll(async () => {
    // Every run cold, so each sandbox carries its execution's id as a label.
    world = await startSeedWorld({ EXEC_POOL_SIZE: '0', RESPONSE_ENCRYPTION_KEY: KEY_TEXT });
  });

  afterAll(async () => {
    await world?.close();
    const left = await docker.listLabelled({ [LABEL_MANAGED]: 'true', [LABEL_INSTANCE]: instanceIdFor(world.service.dataDir) });
    expect(left).toEqual([]);
  });

  const stream = (body: Record<string, unknown>, signal?: AbortSignal) =>
    postForEvents(`${world.service.url}/execute`, body, { authorization: `Bearer ${world.token}` }, signal);
  const textOf = (events: ArrivedEvent[], name: 'stdout' | 'stderr'): string =>
    events.filter((e) => e.event === name).map((e) => (JSON.parse(e.data) as { text: string }).text).join('');
  const resultOf = (events: ArrivedEvent[]) => {
    const last = events.at(-1);
    expect(last?.event).toBe('result');
    return JSON.parse(last?.data ?? 'null') as { success: boolean; data: Record<string, any> };
  };

  it('delivers the first line before the program writes its last one', async () => {
    // Ten lines, 200 ms apart, each with the time the program wrote it.
    const code = `let i = 0; const t = setInterval(() => { console.log(i + ' ' + Date.now()); if (++i === 10) clearInterval(t); }, 200);`;
    const response = await stream({ code });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const events = await allEvents(response);
    const stdout = textOf(events, 'stdout');
    const written = stdout.trim().split('\n').map((line) => Number(line.split(' ')[1]));
    expect(written).toHaveLength(10);
    const first = events.find((e) => e.event === 'stdout');
    // The client read the first line before the program wrote its last (one clock: the sandbox shares the host's).
    expect(first!.arrivedAt).toBeLessThan(written.at(-1)!);
    expect((JSON.parse(first!.data) as { text: string }).text.trim().split('\n').length).toBeLessThan(10);
    expect(events[0]?.event).toBe('start');
    expect(resultOf(events).data.stdout).toBe(stdout);
  }, 60_000);

  it('ends with exactly the body the plain call returns', async () => {
    const code = 'console.log("out"); console.error("err"); process.exit(3)';
    const events = await allEvents(await stream({ code }));
    const streamed = resultOf(events);
    const plain = await world.service.post('/execute', { code }, { authorization: `Bearer ${world.token}` });
    expect(plain.status).toBe(200);
    expect(ExecuteSuccessSchema.safeParse(streamed).error).toBeUndefined();
    expect(Object.keys(streamed).sort()).toEqual(Object.keys(plain.json).sort());
    expect(Object.keys(streamed.data).sort()).toEqual(Object.keys(plain.json.data).sort());
    const { executionId, durationMs: _ms, queuedMs: _queued, ...same } = streamed.data;
    const { executionId: _id, durationMs: _d, queuedMs: _q, ...plainSame } = plain.json.data;
    expect(same).toEqual(plainSame);
    expect(streamed.data).toMatchObject({ stdout: 'out\n', stderr: 'err\n', code: 3 });
    expect(JSON.parse(events[0]?.data ?? '{}')).toEqual({ executionId });
    expect(textOf(events, 'stdout')).toBe('out\n');
    expect(textOf(events, 'stderr')).toBe('err\n');
  }, 60_000);

  it('keeps a multi-byte character whole when the program writes its bytes apart', async () => {
    // The euro sign's three bytes in two writes, with a pause so they leave the sandbox apart.
    const code = 'process.stdout.write(Buffer.from([0xe2])); setTimeout(() => process.stdout.write(Buffer.from([0x82, 0xac, 0x0a])), 300);';
    const events = await allEvents(await stream({ code }));
    const pieces = events.filter((e) => e.event === 'stdout').map((e) => (JSON.parse(e.data) as { text: string }).text);
    expect(pieces.join('')).toBe('€\n');
    for (const piece of pieces) expect(piece).not.toContain('\uFFFD');
    expect(resultOf(events).data.stdout).toBe('€\n');
  }, 60_000);

  it('sends a network event for an allowed and for a blocked request, as in the network log', async () => {
    const code = `(async () => {
      console.log((await fetch('https://api.stripe.com/v1/products')).status);
      console.log((await fetch('https://api.github.com/users/github')).status);
    })();`;
    const events = await allEvents(await stream({ code }));
    const network = events.filter((e) => e.event === 'network').map((e) => JSON.parse(e.data) as Record<string, unknown>);
    expect(network).toEqual([
      expect.objectContaining({ method: 'GET', url: 'https://api.stripe.com/v1/products', statusCode: 200, blocked: false }),
      expect.objectContaining({ method: 'GET', url: 'https://api.github.com/users/github', statusCode: 403, blocked: true, reason: 'Domain api.github.com is not in allowed list' }),
    ]);
    const result = resultOf(events);
    expect(result.data.networkLog).toEqual(network);
    expect(events.findIndex((e) => e.event === 'network')).toBeLessThan(events.length - 1);
    expect(result.data.stdout).toBe('200\n403\n');
  }, 60_000);

  it('kills the program and removes its container when the client closes the connection', async () => {
    const client = new AbortController();
    const response = await stream({ code: 'console.log("started"); setInterval(() => {}, 1000);', timeoutMs: 60_000 }, client.signal);
    const start = await response.events.next();
    expect(start.value?.event).toBe('start');
    const { executionId } = JSON.parse(start.value?.data ?? '{}') as { executionId: string };
    const output = await response.events.next();
    expect(output.value?.event).toBe('stdout');
    const labels = { [LABEL_MANAGED]: 'true', [LABEL_EXECUTION]: executionId };
    expect(await docker.listLabelled(labels)).toHaveLength(1);

    client.abort();
    expect(await eventually(async () => (await docker.listLabelled(labels)).length === 0, { timeoutMs: 60_000, everyMs: 200 })).toBe(true);
    expect(await eventually(() => world.service.logLines.some((line) => line.msg === 'execution' && line.errorCode === 'CLIENT_CLOSED'))).toBe(true);
  }, 90_000);

  it('refuses encrypt_messages with a stream: a 400 naming the field', async () => {
    const response = await stream({ code: 'console.log(1)', encrypt_messages: true });
    expect(response.status).toBe(400);
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.json()).toMatchObject({ success: false, code: 'ENCRYPTION_NOT_STREAMABLE', details: [{ field: 'encrypt_messages' }] });
  });
});
