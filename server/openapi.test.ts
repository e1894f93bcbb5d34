import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { openApiDocument } from './openapi.ts';

describe('openApiDocument', () => {
  const document = openApiDocument('0.0.0-test') as any;

  it('validates as OpenAPI 3.1', async () => {
    const validator = new Validator();
    const result = await validator.validate(structuredClone(document));
    expect(result.errors, JSON.stringify(result.errors, null, 2)).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('documents /execute: its body from the request schema, its answers from the response schemas', () => {
    const execute = document.paths['/execute'].post;
    expect(execute.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ExecuteRequest' });
    const request = document.components.schemas.ExecuteRequest;
    expect(request.required).toEqual(['code']);
    expect(Object.keys(request.properties)).toEqual(
      expect.arrayContaining(['code', 'language', 'stdin', 'args', 'env', 'timeoutMs', 'packages', 'encrypt_messages', 'secrets']),
    );
    expect(JSON.stringify(request.properties.secrets)).not.toMatch(/sk_(test|live)_/);
    expect(Object.keys(execute.responses)).toEqual(expect.arrayContaining(['200', '400', '401', '403', '413', '415', '429', '503']));
    const data = document.components.schemas.ExecuteSuccess.properties.data;
    expect(Object.keys(data.properties)).toEqual(
      expect.arrayContaining(['stdout', 'stderr', 'code', 'signal', 'timedOut', 'oomKilled', 'truncated', 'durationMs', 'executionId', 'networkLog', 'policyInfo']),
    );
    expect(execute.responses['429'].headers).toHaveProperty('Retry-After');
  });

  it('documents files in (path, base64 content) and out (globs; path, size, content and a truncated flag)', () => {
    const request = document.components.schemas.ExecuteRequest.properties;
    expect(request.files.items.required).toEqual(['path', 'content']);
    expect(request.files.description).toMatch(/EXEC_FILES_MAX_COUNT.*EXEC_FILES_MAX_BYTES/);
    expect(request.outputFiles.items.type).toBe('string');
    expect(request.outputFiles.description).toMatch(/EXEC_OUTPUT_FILES_MAX_COUNT.*EXEC_OUTPUT_FILES_MAX_BYTES/);
    const data = document.components.schemas.ExecuteSuccess.properties.data.properties;
    expect(Object.keys(data.files.items.properties)).toEqual(['path', 'size', 'content']);
    expect(data.truncated.properties).toHaveProperty('files');
  });

  it('documents the streamed answer of /execute: each event\'s data by its schema', () => {
    const ok = document.paths['/execute'].post.responses['200'];
    const stream = ok.content['text/event-stream'];
    expect(stream).toBeDefined();
    expect(stream['x-events']).toEqual({
      start: { $ref: '#/components/schemas/StreamStartEvent' },
      stdout: { $ref: '#/components/schemas/StreamOutputEvent' },
      stderr: { $ref: '#/components/schemas/StreamOutputEvent' },
      network: { $ref: '#/components/schemas/NetworkLogEntry' },
      result: { $ref: '#/components/schemas/ExecuteSuccess' },
      error: { $ref: '#/components/schemas/StreamErrorEvent' },
    });
    for (const ref of Object.values<{ $ref: string }>(stream['x-events'])) {
      expect(document.components.schemas[ref.$ref.split('/').at(-1) ?? '']).toBeDefined();
    }
    expect(document.components.schemas.StreamOutputEvent.required).toEqual(['text']);
    expect(document.components.schemas.StreamErrorEvent.required).toEqual(expect.arrayContaining(['success', 'error', 'code', 'status']));
    expect(document.paths['/execute'].post.description).toMatch(/ENCRYPTION_NOT_STREAMABLE/);
  });

  it('documents /mcp, its tools and their inputs cut from the request schemas', () => {
    const mcp = document.paths['/mcp'].post;
    expect(mcp.description).toMatch(/`execute`, `check_egress`, `describe_policy`/);
    expect(mcp.security).toEqual([{}, { bearer: [] }]);
    expect(mcp.responses['401'].headers).toHaveProperty('WWW-Authenticate');
    expect(Object.keys(document.components.schemas.McpExecuteInput.properties).sort()).toEqual(['args', 'code', 'files', 'language', 'outputFiles', 'packages', 'stdin', 'timeoutMs']);
    expect(document.components.schemas.McpExecuteInput.properties.files).toEqual(document.components.schemas.ExecuteRequest.properties.files);
    expect(document.components.schemas.McpExecuteInput.properties.code).toEqual(document.components.schemas.ExecuteRequest.properties.code);
    expect(document.components.schemas.McpCheckEgressInput.required).toEqual(['method', 'url']);
  });

  it('documents the audit endpoints behind the administrator token, with their query parameters', () => {
    const list = document.paths['/admin/executions'].get;
    expect(list.security).toEqual([{ admin: [] }]);
    expect(list.parameters.map((p: { name: string }) => p.name)).toEqual(['subject', 'outcome', 'since', 'until', 'blocked', 'limit', 'cursor']);
    expect(document.paths['/admin/executions/{id}'].get.responses).toHaveProperty('404');
    expect(document.paths['/admin/egress/summary'].get.parameters.map((p: { name: string }) => p.name)).toEqual(['subject', 'since', 'until']);
    expect(Object.keys(document.components.schemas.AuditDecision.properties)).toEqual(expect.arrayContaining(['method', 'host', 'path', 'allowed', 'wouldBlock', 'reason', 'rule']));
    expect(document.components.schemas.AuditExecution.properties).toHaveProperty('policyHash');
    const suggestion = document.paths['/admin/policies/{subject}/suggestion'].get;
    expect(suggestion.parameters.map((p: { name: string }) => p.name)).toEqual(['subject', 'since', 'until', 'blockedOnly']);
  });
});
