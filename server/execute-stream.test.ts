/**
 * POST /execute with Accept: text/event-stream, the execution faked: the
 * events follow what the execution service reports, a failure before the
 * stream opens is the usual JSON error, one after is an `error` event, and
 * encrypt_messages cannot be streamed.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultPolicyResult } from '../policies/index.ts';
import { allEvents, postForEvents } from '../test/support/sse.ts';
import { ApiError, errorHandler } from './errors.ts';
import { StreamErrorEventSchema, StreamOutputEventSchema, StreamStartEventSchema } from './execute-events.ts';
import { executeRouter, type ExecuteRouteDependencies } from './execute-route.ts';
import type { ExecuteResponseData } from './execution-service.ts';
import { createLogger } from './logger.ts';
import type { ServiceMetrics } from './metrics.ts';
import { Drain } from './shutdown.ts';

const servers: { close(): void }[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

const DATA = { stdout: 'hi\n', stderr: '', code: 0, networkLog: [], durationMs: 1 } as unknown as ExecuteResponseData;
const ENTRY = { method: 'GET', url: 'https://api.stripe.com/v1/products', hostname: 'api.stripe.com', statusCode: 200, blocked: false, durationMs: 3 };

async function start(execute: ExecuteRouteDependencies['executions']['execute']): Promise<string> {
  const deps: ExecuteRouteDependencies = {
    config: { EXEC_MAX_CODE_BYTES: 1024, EXEC_FILES_MAX_BYTES: 1024, EXEC_FILES_MAX_COUNT: 4, RATE_LIMIT_WINDOW_MS: 60_000, RATE_LIMIT_SUBJECT_MAX: 100, RATE_LIMIT_IP_MAX: 100, EXEC_STREAM_HEARTBEAT_MS: 60_000 },
    logger: createLogger('silent'),
    metrics: { execution: () => undefined } as unknown as ServiceMetrics,
    drain: new Drain(),
    authenticate: () => Promise.resolve(null),
    policies: { fetchPolicy: () => Promise.resolve(defaultPolicyResult()) },
    executions: { execute },
  };
  const app = express();
  app.use(executeRouter(deps));
  app.use(errorHandler);
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((resolve) => server.once('listening', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/execute`;
}

describe('POST /execute as an event stream', () => {
  it('sends start, output and network events as reported, then the JSON body as `result`', async () => {
    const url = await start((_request, _caller, options) => {
      options?.live?.started('exec-1');
      options?.live?.output('stdout', 'h');
      options?.live?.network(ENTRY);
      options?.live?.output('stderr', 'warn\n');
      options?.live?.output('stdout', 'i\n');
      return Promise.resolve(DATA);
    });
    const response = await postForEvents(url, { code: 'x' });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('text/event-stream; charset=utf-8');
    const events = (await allEvents(response)).map(({ event, data }) => [event, JSON.parse(data)]);
    expect(events).toEqual([
      ['start', { executionId: 'exec-1' }],
      ['stdout', { text: 'h' }],
      ['network', ENTRY],
      ['stderr', { text: 'warn\n' }],
      ['stdout', { text: 'i\n' }],
      ['result', { success: true, data: DATA }],
    ]);
  });

  it('gives no live listeners, and a JSON body, to a caller that does not ask for events', async () => {
    let live: unknown = 'unset';
    const url = await start((_request, _caller, options) => {
      live = options?.live;
      return Promise.resolve(DATA);
    });
    const response = await fetch(url, { method: 'POST', body: '{"code":"x"}', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream;q=0.5' } });
    expect(response.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await response.json()).toEqual({ success: true, data: DATA });
    expect(live).toBeUndefined();
  });

  it('answers a failure before the execution starts with the usual JSON error and status', async () => {
    const url = await start(() => Promise.reject(new ApiError(503, 'QUEUE_FULL', 'busy', undefined, { 'Retry-After': '3' })));
    const response = await postForEvents(url, { code: 'x' });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('3');
    expect(await response.json()).toEqual({ success: false, error: 'busy', code: 'QUEUE_FULL' });
  });

  it('reports a failure after the stream opened as an `error` event with the status it would have had', async () => {
    const url = await start((_request, _caller, options) => {
      options?.live?.started('exec-2');
      options?.live?.output('stdout', 'partial');
      return Promise.reject(new ApiError(503, 'DOCKER_UNAVAILABLE', 'engine gone'));
    });
    const response = await postForEvents(url, { code: 'x' });
    expect(response.status).toBe(200);
    const events = (await allEvents(response)).map(({ event, data }) => [event, JSON.parse(data)]);
    expect(events.at(-1)).toEqual(['error', { success: false, error: 'engine gone', code: 'DOCKER_UNAVAILABLE', status: 503 }]);
    expect(events.map(([event]) => event)).toEqual(['start', 'stdout', 'error']);
    expect(StreamStartEventSchema.safeParse(events[0]?.[1]).success).toBe(true);
    expect(StreamOutputEventSchema.safeParse(events[1]?.[1]).success).toBe(true);
    expect(StreamErrorEventSchema.safeParse(events[2]?.[1]).success).toBe(true);
  });

  it('hides an unexpected failure after the stream opened behind a plain internal error', async () => {
    const url = await start((_request, _caller, options) => {
      options?.live?.started('exec-3');
      return Promise.reject(new Error('/var/run/docker.sock: secret path'));
    });
    const events = await allEvents(await postForEvents(url, { code: 'x' }));
    expect(JSON.parse(events.at(-1)!.data)).toEqual({ success: false, error: 'Internal error', code: 'INTERNAL', status: 500 });
  });

  it('refuses encrypt_messages with a stream: 400 naming the field, before anything runs', async () => {
    let executions = 0;
    const url = await start(() => {
      executions += 1;
      return Promise.resolve(DATA);
    });
    const response = await postForEvents(url, { code: 'x', encrypt_messages: true });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ code: 'ENCRYPTION_NOT_STREAMABLE', details: [{ field: 'encrypt_messages' }] });
    expect(executions).toBe(0);
  });

  it('aborts the execution signal when the client closes the stream', async () => {
    let signal: AbortSignal | undefined;
    let release: () => void = () => undefined;
    const url = await start((_request, _caller, options) => {
      signal = options?.signal;
      options?.live?.started('exec-4');
      return new Promise((resolve) => {
        release = () => resolve(DATA);
        options?.signal?.addEventListener('abort', release);
      });
    });
    const client = new AbortController();
    const response = await postForEvents(url, { code: 'x' }, {}, client.signal);
    const first = await response.events.next();
    expect(first.value?.event).toBe('start');
    client.abort();
    await expect.poll(() => signal?.aborted, { timeout: 20_000 }).toBe(true);
    release();
  });
});
