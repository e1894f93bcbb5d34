/**
 * The Python image and its agent, driven the way the executor drives them:
 * a locked-down container, one JSON header line on stdin, then the program's
 * stdin; the exit status is the program's. The egress forwarder is checked
 * against a stand-in for the proxy socket.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureImage, imageInputsHash, INPUTS_LABEL } from '../images/index.ts';
import { DockerContainerClient } from '../executor/index.ts';
import { describeWithDocker, untilProgramWaits } from './support/docker.ts';
import { runLocked } from './support/locked-container.ts';

describeWithDocker('sandbox-python image', () => {
  // The image build and its metadata are images/'s business (dockerode); runs go through the executor's client.
  const docker = new Docker();
  const engine = new DockerContainerClient();
  let tag: string;

  beforeAll(async () => {
    ({ tag } = await ensureImage('python', { docker, log: (line) => console.error(line) }));
  });

  /** With `whenWaiting`, the job is sent only once the agent's program waits for it, as in a pooled sandbox. */
  const run = (input: string, egressDir?: string, whenWaiting = false) =>
    runLocked(engine, tag, input, { ...(egressDir === undefined ? {} : { egressDir }), ...(whenWaiting ? { beforeInput: untilProgramWaits } : {}) });
  const job = (code: string, extra: Record<string, unknown> = {}) => `${JSON.stringify({ v: 1, code, ...extra })}\n`;

  it('is configured to run the agent isolated, as uid 1000, with the tools named in a label', async () => {
    const info = await docker.getImage(tag).inspect();
    expect(info.Config.User).toBe('1000:1000');
    expect(info.Config.WorkingDir).toBe('/tmp');
    expect(info.Config.Entrypoint).toEqual(['/usr/local/bin/python3', '-I', '-S', '/opt/agent/agent.py']);
    expect(info.Config.Env).toEqual(['PATH=/usr/local/bin']);
    expect(info.Config.Labels?.[INPUTS_LABEL]).toBe(await imageInputsHash('python'));
    expect(info.Config.Labels?.['sandbox.image.tools']).toBe('jq,curl,sh');
  });

  it('passes args, env and the stdin after the header line, ignoring header fields it does not know', async () => {
    const code = 'import os, sys\nprint("Hello", sys.argv[1:], os.environ["FOO"])\nsys.stdout.write(sys.stdin.read())';
    const result = await run(job(code, { args: ['a'], env: { FOO: 'bar' }, later: { anything: true } }) + 'INPUT');
    expect(result).toEqual({ code: 0, stdout: "Hello ['a'] bar\nINPUT", stderr: '' });
  });

  it('gives the program the documented environment', async () => {
    const result = await run(job('import json, os\nprint(json.dumps(dict(os.environ)))', { env: { LANG: 'C', EXTRA: '1' } }));
    expect(JSON.parse(result.stdout)).toMatchObject({
      PATH: '/usr/local/bin',
      HOME: '/tmp',
      LANG: 'C',
      EXTRA: '1',
      HTTPS_PROXY: 'http://127.0.0.1:3128',
      SSL_CERT_FILE: '/run/egress/ca.pem',
      REQUESTS_CA_BUNDLE: '/run/egress/ca.pem',
      PIP_CERT: '/run/egress/ca.pem',
    });
  });

  /** Whether the program runs in the interpreter the agent started ahead (the one running its prelude), not a fresh one. */
  const STARTED_AHEAD = "started_ahead = any(arg.endswith(b'/prelude.py') for arg in open('/proc/self/cmdline', 'rb').read().split(b'\\0'))";

  it("starts the program's interpreter before its job arrives", async () => {
    const result = await run(job(`${STARTED_AHEAD}\nprint(started_ahead)`), undefined, true);
    expect(result).toEqual({ code: 0, stdout: 'True\n', stderr: '' });
  });

  it('runs the program in the interpreter started ahead as `python3 main.py args` would', async () => {
    const code = 'import sys, pickle\nclass A: pass\nprint(__name__, __file__, sys.argv, sys.path[0], len(pickle.dumps(A())) > 0)';
    const result = await run(job(code, { args: ['a', 'b'] }), undefined, true);
    expect(result).toEqual({ code: 0, stdout: "__main__ /tmp/.job/main.py ['/tmp/.job/main.py', 'a', 'b'] /tmp/.job True\n", stderr: '' });
  });

  it('reports an uncaught exception with only the program\'s frames, as the interpreter does', async () => {
    const raised = await run(job('def f():\n    raise ValueError("boom")\nf()'), undefined, true);
    expect(raised).toEqual({
      code: 1,
      stdout: '',
      stderr: [
        'Traceback (most recent call last):',
        '  File "/tmp/.job/main.py", line 3, in <module>',
        '    f()',
        '  File "/tmp/.job/main.py", line 2, in f',
        '    raise ValueError("boom")',
        'ValueError: boom',
        '',
      ].join('\n'),
    });
    const syntax = await run(job('def (:'), undefined, true);
    expect(syntax).toEqual({ code: 1, stdout: '', stderr: '  File "/tmp/.job/main.py", line 1\n    def (:\n        ^\nSyntaxError: invalid syntax\n' });
  });

  it('starts a fresh interpreter for a job whose env Python reads only at start-up', async () => {
    const result = await run(job(`import sys\n${STARTED_AHEAD}\nprint(sys.flags.dont_write_bytecode, started_ahead)`, { env: { PYTHONDONTWRITEBYTECODE: '1' } }), undefined, true);
    expect(result).toEqual({ code: 0, stdout: '1 False\n', stderr: '' });
  });

  it('exits with the program status, or 128 + signal', async () => {
    expect((await run(job('import sys\nsys.exit(3)'))).code).toBe(3);
    expect((await run(job('import os, signal\nos.kill(os.getpid(), signal.SIGKILL)'))).code).toBe(137);
  });

  it('takes a header without its newline when stdin ends right after it', async () => {
    const result = await run(JSON.stringify({ v: 1, code: 'import sys\nprint(repr(sys.stdin.read()))' }));
    expect(result).toEqual({ code: 0, stdout: "''\n", stderr: '' });
  });

  it.each([
    ['a bad version', '{"v":2,"code":""}\n', 'unsupported job header version 2'],
    ['no header', '', 'no job header on stdin'],
    ['a header that is not JSON', '{"v":1,\n', 'job header is not valid JSON'],
    ['args that are not strings', '{"v":1,"code":"","args":[1]}\n', 'job header: "args" must be an array of strings'],
  ])('fails with 125 and one sandbox-agent line on %s', async (_name, input, message) => {
    const result = await run(input);
    expect(result.code).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(new RegExp(`^sandbox-agent: ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*\\n$`));
  });

  describe('egress forwarder', () => {
    let dir: string;
    let proxy: net.Server;

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'sandbox-egress-'));
      await chmod(dir, 0o755);
      // Stands in for the proxy: reads a connection to its end, then answers
      // with what it got, so only a forwarder that passes the half-close on
      // (and keeps the other direction open) sees the answer.
      proxy = net.createServer({ allowHalfOpen: true }, (socket) => {
        const chunks: Buffer[] = [];
        socket.on('data', (chunk: Buffer) => chunks.push(chunk));
        socket.on('end', () => socket.end(`got ${Buffer.concat(chunks).length} bytes: ${Buffer.concat(chunks).subarray(0, 16).toString()}`));
      });
      await new Promise<void>((resolve) => proxy.listen(join(dir, 'proxy.sock'), resolve));
      await chmod(join(dir, 'proxy.sock'), 0o666);
    });

    afterAll(async () => {
      proxy?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('carries 127.0.0.1:3128 to the socket, half-close included, for many connections at once', async () => {
      const code = `
import concurrent.futures, socket
def exchange(i):
    s = socket.create_connection(("127.0.0.1", 3128))
    s.sendall(f"conn-{i:03d} ".encode() + b"x" * 200000)
    s.shutdown(socket.SHUT_WR)
    answer = b""
    while chunk := s.recv(65536):
        answer += chunk
    s.close()
    return answer.decode()
with concurrent.futures.ThreadPoolExecutor(32) as pool:
    answers = list(pool.map(exchange, range(64)))
print(answers[0])
print(all(a == f"got 200009 bytes: conn-{i:03d} xxxxxxx" for i, a in enumerate(answers)))`;
      const result = await run(job(code), dir);
      expect(result).toEqual({ code: 0, stdout: 'got 200009 bytes: conn-000 xxxxxxx\nTrue\n', stderr: '' });
    }, 60_000);

    it('drops the connection when there is no socket', async () => {
      const code = `
import urllib.request
try:
    urllib.request.urlopen("http://api.example.test/", timeout=5)
    print("answered")
except Exception as e:
    print(type(e).__name__)`;
      const result = await run(job(code));
      expect(result.stderr).toBe('');
      expect(result.stdout).toMatch(/^(URLError|RemoteDisconnected|ConnectionResetError)\n$/);
    });
  });
});
