/** The request's `language` comes from the runtime registry: one entry there is a runtime the API accepts. */
import { describe, expect, it } from 'vitest';
import { LANGUAGES, RUNTIMES, SANDBOX_RUNTIMES } from '../images/index.ts';
import { ExecuteRequestSchema } from './execute-request.ts';

const languageOf = (language: string) => ExecuteRequestSchema.safeParse({ code: '1', language });

describe('ExecuteRequestSchema language', () => {
  it.each(RUNTIMES.flatMap((runtime) => SANDBOX_RUNTIMES[runtime].languages.map((language) => [language, runtime] as const)))(
    'reads %s as the %s runtime, in any case',
    (language, runtime) => {
      expect(languageOf(language).data?.language).toBe(runtime);
      expect(languageOf(language.toUpperCase()).data?.language).toBe(runtime);
    },
  );

  it('defaults to javascript (node) and names every language of the registry when refusing one', () => {
    expect(ExecuteRequestSchema.parse({ code: '1' }).language).toBe('node');
    const refused = languageOf('cobol');
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]?.message).toBe(`unknown language; supported: ${LANGUAGES.join(', ')}`);
    expect(LANGUAGES).toEqual(['javascript', 'js', 'node', 'python', 'py']);
  });

  it('describes the choices from the registry', () => {
    expect(ExecuteRequestSchema.shape.language.description).toBe('runtime: javascript (aliases js, node) or python (alias py)');
  });
});
