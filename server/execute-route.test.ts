/**
 * The /execute pipeline's order, with the execution itself faked: identity
 * first (and answered at once), sealing decided from the body, the rate
 * limit keyed by the verified subject, and the policy looked up only for a
 * valid request, once.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { compactDecrypt } from 'jose';
import { afterEach, describe, expect, it } from 'vitest';
import { defaultPolicyResult, type PolicyResult } from '../policies/index.ts';
import { ResponseEncryptor } from './encryption.ts';
import { errorHandler } from './errors.ts';
import { executeRouter, type ExecuteRouteDependencies } from './execute-route.ts';
import type { ExecuteResponseData } from './execution-service.ts';
import { TokenError, type VerifiedToken } from './identity/index.ts';
import { createLogger } from './logger.ts';
import type { ServiceMetrics } from './metrics.ts';
import { Drain } from './shutdown.ts';

const KEY = new Uint8Array(32).fill(7);
const servers: { close(): void }[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

interface Calls {
  policies: string[];
  executions: number;
}

async function start(overrides: Partial<ExecuteRouteDependencies> = {}) {
  const calls: Calls = { policies: [], executions: 0 };
  const policy = defaultPolicyResult();
  const deps: ExecuteRouteDependencies = {
    config: { EXEC_MAX_CODE_BYTES: 1024, EXEC_FILES_MAX_BYTES: 1024, EXEC_FILES_MAX_COUNT: 4, RATE_LIMIT_WINDOW_MS: 60_000, RATE_LIMIT_SUBJECT_MAX: 2, RATE_LIMIT_IP_MAX: 100 },
    logger: createLogger('silent'),
    metrics: { execution: () => undefined } as unknown as ServiceMetrics,
    drain: new Drain(),
    authenticate: (authorization) => {
      if (authorization === undefined) return Promise.resolve(null);
      if (authorization === 'Bearer bad') return Promise.reject(new TokenError('TOKEN_INVALID', 'The token could not be verified'));
      const subject = authorization.slice('Bearer '.length);
      return Promise.resolve({ token: `token-of-${subject}`, subject, expiresAt: Math.floor(Date.now() / 1000) + 3600, claims: {} } satisfies VerifiedToken);
    },
    policies: {
      fetchPolicy: (token): Promise<PolicyResult> => {
        calls.policies.push(token);
        return Promise.resolve(policy);
      },
    },
    executions: {
      execute: (request, caller) => {
        calls.executions += 1;
        return Promise.resolve({ stdout: request.code, subject: caller.subject, networkLog: [], code: 0, durationMs: 1 } as unknown as ExecuteResponseData);
      },
    },
    ...overrides,
  };
  const app = express();
  app.use(executeRouter(deps));
  app.use(errorHandler);
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await new Promise((resolve) => server.once('listening', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/execute`;
  const post = async (body: string, authorization?: string) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...(authorization === undefined ? {} : { authorization }) };
    const response = await fetch(url, { method: 'POST', body, headers });
    return { status: response.status, headers: response.headers, json: (await response.json()) as Record<string, unknown> };
  };
  const postAs = async (contentType: string | undefined, body: string) => {
    const response = await fetch(url, { method: 'POST', body, headers: contentType === undefined ? {} : { 'content-type': contentType } });
    return { status: response.status, json: (await response.json()) as Record<string, unknown> };
  };
  return { post, postAs, calls };
}

describe('POST /execute pipeline', () => {
  it.each([
    ['text/plain (a cross-site form or fetch needs no preflight for it)', 'text/plain'],
    ['a urlencoded form', 'application/x-www-form-urlencoded'],
    ['no Content-Type at all', undefined],
  ])('refuses %s with 415 naming the header, before any work', async (_name, contentType) => {
    const { postAs, calls } = await start();
    const response = await postAs(contentType, '{"code":"console.log(1)"}');
    expect(response.status).toBe(415);
    expect(response.json).toMatchObject({ success: false, code: 'UNSUPPORTED_MEDIA_TYPE', details: [{ field: 'header content-type' }] });
    expect(response.json.error).toMatch(/Content-Type must be application\/json/);
    expect(calls).toEqual({ policies: [], executions: 0 });
  });

  it('accepts application/json with a charset', async () => {
    const { postAs } = await start();
    expect((await postAs('Application/JSON; charset=utf-8', '{"code":"hi"}')).status).toBe(200);
  });

  it('answers a bad token first, even with a broken body, and reads no policy', async () => {
    const { post, calls } = await start();
    const response = await post('{"code": ', 'Bearer bad');
    expect(response.status).toBe(401);
    expect(response.json).toMatchObject({ success: false, code: 'TOKEN_INVALID' });
    expect(response.headers.get('www-authenticate')).toMatch(/invalid_token/);
    expect(calls).toEqual({ policies: [], executions: 0 });
  });

  it('seals the refusal of a bad token when the body asks; plain when no key is configured', async () => {
    const sealed = await (await start({ encryptor: new ResponseEncryptor(KEY) })).post('{"code":"1","encrypt_messages":true}', 'Bearer bad');
    expect(sealed.status).toBe(401);
    expect(sealed.json.encrypted).toBe(true);
    const plain = JSON.parse(new TextDecoder().decode((await compactDecrypt(sealed.json.data as string, KEY)).plaintext));
    expect(plain).toMatchObject({ success: false, code: 'TOKEN_INVALID' });

    const unkeyed = await (await start()).post('{"code":"1","encrypt_messages":true}', 'Bearer bad');
    expect(unkeyed.status).toBe(401);
    expect(unkeyed.json).toMatchObject({ success: false, code: 'TOKEN_INVALID' });
  });

  it('looks the policy up once, after validation: an invalid request costs no lookup', async () => {
    const { post, calls } = await start();
    expect((await post('{"code": 42}', 'Bearer alice')).status).toBe(400);
    expect(calls.policies).toEqual([]);
    const ok = await post('{"code":"hi"}', 'Bearer alice');
    expect(ok).toMatchObject({ status: 200, json: { success: true, data: { stdout: 'hi', subject: 'alice' } } });
    expect(calls).toEqual({ policies: ['token-of-alice'], executions: 1 });
  });

  it('rate-limits by the verified subject, before validation', async () => {
    const { post } = await start();
    expect((await post('{"code": 1}', 'Bearer bob')).status).toBe(400);
    expect((await post('{"code": 1}', 'Bearer bob')).status).toBe(400);
    const limited = await post('{"code": 1}', 'Bearer bob');
    expect(limited.status).toBe(429);
    expect(limited.json.code).toBe('RATE_LIMITED');
    expect((await post('{"code": 1}', 'Bearer carol')).status).toBe(400);
  });

  it('answers 400 ENCRYPTION_UNAVAILABLE for a valid caller asking for encryption on a server without a key', async () => {
    const response = await (await start()).post('{"code":"1","encrypt_messages":true}');
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ code: 'ENCRYPTION_UNAVAILABLE', details: [{ field: 'encrypt_messages' }] });
  });
});
