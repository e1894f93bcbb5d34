/**
 * The sandbox image and its agent, driven the way the executor drives them:
 * a locked-down container, one JSON header line on stdin, then the program's
 * stdin; the exit status is the program's.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import http from 'node:http';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Docker from 'dockerode';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureImage, imageInputsHash, INPUTS_LABEL } from '../images/index.ts';
import { pruneSuperseded } from '../images/lib/build-image.ts';
import { DockerContainerClient } from '../executor/index.ts';
import { describeWithDocker, untilProgramWaits } from './support/docker.ts';
import { runLocked, type LockedRun } from './support/locked-container.ts';

describeWithDocker('sandbox-node image', () => {
  // The image build and its metadata are images/'s business (dockerode); runs go through the executor's client.
  const docker = new Docker();
  const engine = new DockerContainerClient();
  let tag: string;

  beforeAll(async () => {
    ({ tag } = await ensureImage('node', { docker, log: (line) => console.error(line) }));
  });

  /** One execution with the executor's lockdown (every tool hidden); `input` is written to stdin verbatim. */
  /** With `whenWaiting`, the job is sent only once the agent's program waits for it, as in a pooled sandbox. */
  const run = (input: string, egressDir?: string, whenWaiting = false): Promise<LockedRun> =>
    runLocked(engine, tag, input, { ...(egressDir === undefined ? {} : { egressDir }), ...(whenWaiting ? { beforeInput: untilProgramWaits } : {}) });
  /** Whether the program runs in the node the agent started ahead (the one that required its prelude), not a fresh one. */
  const STARTED_AHEAD = "require('node:fs').readFileSync('/proc/self/cmdline', 'utf8').split('\\0').some((arg) => arg.endsWith('/prelude.js'))";

  const job = (code: string, extra: Record<string, unknown> = {}) => `${JSON.stringify({ v: 1, code, ...extra })}\n`;

  it('removes superseded tags of a repository after a build, keeping the newest few and the current one', async () => {
    const repo = 'sandbox-prune-test';
    const tags = ['aaa', 'bbb', 'ccc', 'current'];
    for (const t of tags) await docker.getImage(tag).tag({ repo, tag: t });
    try {
      const removed = await pruneSuperseded(docker, repo, `${repo}:current`, 1, () => {});
      expect(removed.sort()).toEqual([`${repo}:aaa`, `${repo}:bbb`]);
      const left = await docker.listImages({ filters: { reference: [repo] } });
      expect(left.flatMap((image) => image.RepoTags ?? []).sort()).toEqual([`${repo}:ccc`, `${repo}:current`]);
      // The image itself is untouched: it still has its own tag.
      expect((await docker.getImage(tag).inspect()).RepoTags).toContain(tag);
    } finally {
      for (const t of tags) await docker.getImage(`${repo}:${t}`).remove().catch(() => undefined);
    }
  });

  it('is configured to run the agent as uid 1000 with nothing on PATH but node', async () => {
    const info = await docker.getImage(tag).inspect();
    expect(info.Config.User).toBe('1000:1000');
    expect(info.Config.WorkingDir).toBe('/tmp');
    expect(info.Config.Entrypoint).toEqual(['/usr/local/bin/node', '/opt/agent/agent.js']);
    expect(info.Config.Env).toEqual(['PATH=/usr/local/bin']);
    expect(info.Config.Labels?.[INPUTS_LABEL]).toBe(await imageInputsHash('node'));
  });

  it('passes args, env and the stdin after the header line', async () => {
    const result = await run(
      job('console.log("Hello", process.argv.slice(2), process.env.FOO); process.stdin.pipe(process.stdout)', { args: ['a'], env: { FOO: 'bar' } }) + 'INPUT',
    );
    expect(result).toEqual({ code: 0, stdout: "Hello [ 'a' ] bar\nINPUT", stderr: '' });
  });

  it('gives the program exactly the documented environment', async () => {
    const result = await run(job('console.log(JSON.stringify(process.env))', { env: { LANG: 'C', EXTRA: '1' } }));
    const env = JSON.parse(result.stdout) as Record<string, string>;
    expect(env).toMatchObject({ PATH: '/usr/local/bin', HOME: '/tmp', LANG: 'C', EXTRA: '1', HTTPS_PROXY: 'http://127.0.0.1:3128', NODE_USE_ENV_PROXY: '1' });
    // No egress session mounted, so no CA file: Node must not be told to load one.
    expect(env.NODE_EXTRA_CA_CERTS).toBeUndefined();
  });

  it("starts the program's node before its job arrives", async () => {
    const result = await run(job(`console.log(${STARTED_AHEAD})`), undefined, true);
    expect(result).toEqual({ code: 0, stdout: 'true\n', stderr: '' });
  });

  it('gives a program in the node started ahead what a fresh `node main.js args` would give it', async () => {
    const code = `
      const { fork } = require('node:child_process');
      if (process.argv[2] === 'child') {
        console.log(JSON.stringify({ child: process.execArgv }));
      } else {
        console.log(JSON.stringify({ argv: process.argv.slice(1), execArgv: process.execArgv, main: require.main === module, file: __filename, modules: Object.keys(require.cache), foo: process.env.FOO }));
        fork(__filename, ['child']);
      }`;
    const result = await run(job(code, { args: ['a', 'b'], env: { FOO: 'bar' } }), undefined, true);
    expect(result.code).toBe(0);
    expect(result.stderr).toBe('');
    expect(result.stdout.trim().split('\n').map((line) => JSON.parse(line) as unknown)).toEqual([
      { argv: ['/tmp/.job/main.js', 'a', 'b'], execArgv: [], main: true, file: '/tmp/.job/main.js', modules: ['/tmp/.job/main.js'], foo: 'bar' },
      { child: [] },
    ]);
  });

  it('hands the node started ahead args of any size the server accepts', async () => {
    // 20 × 64 KiB: more than a pipe buffer many times over, as one line on fd 3.
    const args = Array.from({ length: 20 }, (_, i) => String.fromCharCode(97 + i).repeat(64 * 1024));
    const result = await run(job('console.log(process.argv.slice(2).map((a) => a.length + a[0]).join())', { args }), undefined, true);
    expect(result).toEqual({ code: 0, stdout: `${args.map((a) => `${a.length}${a[0]}`).join()}\n`, stderr: '' });
  });

  it('runs ES module code in the node started ahead', async () => {
    const result = await run(job('import os from "node:os"; console.log(typeof os.cpus, import.meta.url)'), undefined, true);
    expect(result).toEqual({ code: 0, stdout: 'function file:///tmp/.job/main.js\n', stderr: '' });
  });

  it('starts a fresh node for a job whose env node reads only at start-up', async () => {
    // Node takes its default locale from LANG as it starts; set later, it would be too late.
    const result = await run(job(`console.log((1234.5).toLocaleString(), ${STARTED_AHEAD})`, { env: { LANG: 'de_DE.UTF-8' } }), undefined, true);
    expect(result).toEqual({ code: 0, stdout: '1.234,5 false\n', stderr: '' });
  });

  it('exits with the program status, or 128 + signal', async () => {
    expect((await run(job('process.exit(3)'))).code).toBe(3);
    expect((await run(job('process.kill(process.pid, "SIGKILL")'))).code).toBe(137);
  });

  it('fails with 125 and one sandbox-agent line on a bad header', async () => {
    const result = await run('{"v":2,"code":""}\n');
    expect(result.code).toBe(125);
    expect(result.stdout).toBe('');
    expect(result.stderr).toMatch(/^sandbox-agent: unsupported job header version 2\n$/);
  });

  it('runs Node.js 24 as uid 1000 with no shell to reach', async () => {
    const code = `
      const { spawnSync } = require('node:child_process');
      const sh = spawnSync('/bin/sh', ['-c', 'id']);
      console.log(JSON.stringify({ major: process.versions.node.split('.')[0], uid: process.getuid(), user: require('node:os').userInfo().username, sh: sh.error?.code }));`;
    const result = await run(job(code));
    expect(JSON.parse(result.stdout)).toEqual({ major: '24', uid: 1000, user: 'sandbox', sh: 'ENOENT' });
  });

  describe('egress forwarder', () => {
    let dir: string;
    let proxy: http.Server;
    const seen: string[] = [];

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'sandbox-egress-'));
      await chmod(dir, 0o755);
      // Stands in for the egress proxy: answers plain requests and CONNECT tunnels on the socket.
      proxy = http.createServer((req, res) => {
        seen.push(`${req.method} ${req.headers.host}${req.url}`);
        res.end('from the proxy socket');
      });
      proxy.on('connect', (req: http.IncomingMessage, socket: Socket) => {
        seen.push(`CONNECT ${req.url}`);
        socket.write('HTTP/1.1 200 Connection established\r\n\r\n');
        proxy.emit('connection', socket);
      });
      await new Promise<void>((resolve) => proxy.listen(join(dir, 'proxy.sock'), resolve));
      await chmod(join(dir, 'proxy.sock'), 0o666);
    });

    afterAll(async () => {
      proxy?.close();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('carries 127.0.0.1:3128 to the mounted socket', async () => {
      const result = await run(job('fetch("http://api.example.test/v1/x").then(async (r) => console.log(r.status, await r.text()))'), dir);
      expect(result).toMatchObject({ code: 0, stdout: '200 from the proxy socket\n' });
      expect(seen).toContain('CONNECT api.example.test:80');
    });

    it('drops the connection when there is no socket', async () => {
      const result = await run(job('fetch("http://api.example.test/").then(() => process.exit(0), () => process.exit(7))'));
      expect(result.code).toBe(7);
    });
  });
});
