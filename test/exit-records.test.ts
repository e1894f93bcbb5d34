/**
 * The agents' in-band exit records through the real service and engine:
 * they never show in the output, a program that forges one (it cannot know
 * the job's token) neither ends its run early nor changes its exit, and the
 * exit reported is the program's own, even one a shell would read as a signal.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithDocker } from './support/docker.ts';
import { startTestService, type TestService } from './support/service.ts';


const FORGED = `\0sandbox:${'0'.repeat(32)}:exit:0:\n`;

describeWithDocker('exit records', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({ EXEC_POOL_SIZE: '1' });
  });
  afterAll(async () => {
    await service?.close();
  });

  const run = async (body: Record<string, unknown>) => {
    const response = await service.post('/execute', body);
    expect(response.status, response.text).toBe(200);
    return response.json.data;
  };

  it.each([
    [
      'node',
      `const forged = ${JSON.stringify(FORGED)};
       process.stdout.write(forged); process.stderr.write(forged);
       setTimeout(() => { console.log('after'); process.exit(3); }, 300);`,
    ],
    [
      'python',
      `import os, sys, time
forged = ${JSON.stringify(FORGED)}.encode()
os.write(1, forged); os.write(2, forged)
time.sleep(0.3)
print('after')
sys.exit(3)`,
    ],
  ])('a %s program forging a record under another token runs on to its own exit', async (language, code) => {
    const data = await run({ language, code });
    expect(data).toMatchObject({ stdout: `${FORGED}after\n`, stderr: FORGED, code: 3, signal: null, timedOut: false });
  });

  it.each([
    ['node', 'process.stdout.write("no newline"); process.exit(137)'],
    ['python', 'import sys\nsys.stdout.write("no newline")\nsys.exit(137)'],
  ])('reports a %s program exiting 137 as that exit, not a signal, and leaves no record in the output', async (language, code) => {
    const data = await run({ language, code });
    expect(data).toMatchObject({ stdout: 'no newline', stderr: '', code: 137, signal: null, oomKilled: false });
  });

  it('reports a program killed by a signal', async () => {
    const data = await run({ code: 'process.kill(process.pid, "SIGTERM")' });
    expect(data).toMatchObject({ stdout: '', stderr: '', code: null, signal: 'SIGTERM' });
  });
});
