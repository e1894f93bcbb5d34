'use strict';
// In-sandbox agent: PID 2 under docker's init, uid 1000, read-only root, no
// network but loopback. It turns one job header on stdin into one program run.
//
// Protocol (the executor depends on it exactly; images/python/agent/agent.py
// speaks the same one, keep the two in step):
//   stdin  = one JSON line {"v":1,"token":"…","code":"…","args":[…],"env":{…},"packages":[…]}
//            then the program's own stdin, streamed through until EOF;
//            `packages` (optional, npm specs the server has checked against
//            the policy) are installed from `registry` (a host, default
//            registry.npmjs.org) before the program starts;
//   stdout = the program's stdout, untouched, then the exit record;
//   stderr = the started record, the program's stderr, then the exit record;
//            or at most one `sandbox-agent: …` line when the agent itself
//            fails (exit status 125, no exit record); a failed package
//            install is such a failure, with npm's last output lines after it;
//   status = the program's exit code, or 128 + signal number.
// Records exist only when the header has a `token` (32 hex digits, fresh per
// job; the program never sees it, it is read before the program exists):
//   \0sandbox:<token>:started\n               once the header is read;
//   \0sandbox:<token>:exit:<code>:<signal>\n  after the program exits, on both
//            streams (the engine copies them over separate pipes, so each says
//            "everything before me has arrived"); code or signal is empty.
// With them the executor answers without waiting for the engine to see the
// container stop (executor/agent-records.ts strips them).
//
// It is on the hot path of every execution: built-in modules only, and as
// little work as possible between the header and the program. The program's
// node process is started while the agent waits for its job (prelude.js
// holds it before the main module loads), so node's own start-up is not on
// that path either.

const net = require('node:net');
const fs = require('node:fs');
const { spawn } = require('node:child_process');
const { constants } = require('node:os');

// Mirrors executor/egress.ts (the agent runs inside the image and cannot
// import TypeScript from the repository); keep the two in step.
const PROXY_SOCKET = '/run/egress/proxy.sock';
const CA_CERT = '/run/egress/ca.pem';
const PROXY_URL = 'http://127.0.0.1:3128';
const PROXY_PORT = 3128;
const PROXY_ENV = {
  HTTP_PROXY: PROXY_URL,
  HTTPS_PROXY: PROXY_URL,
  http_proxy: PROXY_URL,
  https_proxy: PROXY_URL,
  NO_PROXY: '',
  no_proxy: '',
  NODE_USE_ENV_PROXY: '1',
  NODE_EXTRA_CA_CERTS: CA_CERT,
  SSL_CERT_FILE: CA_CERT,
  REQUESTS_CA_BUNDLE: CA_CERT,
  CURL_CA_BUNDLE: CA_CERT,
  PIP_CERT: CA_CERT,
};

// npm ships in the image as scripts for node (images/node/recipe.ts NPM_CLI).
const NPM_CLI = '/usr/local/lib/node_modules/npm/bin/npm-cli.js';
const DEFAULT_NPM_REGISTRY_HOST = 'registry.npmjs.org';
// Packages land in /tmp/node_modules, which Node's resolution finds from the
// program at /tmp/.job/main.js, for require() and import alike.
const PACKAGES_PREFIX = '/tmp';
const NPM_CACHE = '/tmp/.npm';
const INSTALL_OUTPUT_TAIL = 4096;
// Registry specs only, as the server checks them (policies/packages.ts): a
// second lock so nothing reaches npm's command line as an option.
const PACKAGE_SPEC = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[A-Za-z0-9][A-Za-z0-9._~-]*(?:@[A-Za-z0-9.^~<>=|*+ -]*)?$/;
const JOB_DIR = '/tmp/.job';
const JOB_FILE = `${JOB_DIR}/main.js`;
const PRELUDE = `${__dirname}/prelude.js`;
// What node reads only while it starts: a job setting any of these gets a
// process started for it, not the one waiting in the prelude.
const STARTUP_ENV = /^(?:NODE_|UV_|OPENSSL_|SSL_|LC_)|^(?:LANG|LANGUAGE|ICU_DATA)$/;
const AGENT_FAILURE = 125;
// The server caps code at 1 MiB; JSON escaping can grow it several times over
// (\u00XX is six bytes per byte), so allow headroom but never unbounded memory.
const MAX_HEADER_BYTES = 8 * 1024 * 1024;
const TOKEN = /^[0-9a-f]{32}$/;

let child = null;
// The program's process, started ahead of its job: { process, env }.
let waiting = null;

// Blocking, whole writes: a record must not interleave with or be cut by
// anything else on the stream.
function writeRecord(fd, text) {
  const bytes = Buffer.from(text, 'latin1');
  let written = 0;
  while (written < bytes.length) {
    try {
      written += fs.writeSync(fd, bytes, written);
    } catch (err) {
      if (err.code !== 'EAGAIN') return;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
  }
}

function fail(message) {
  process.stderr.write(`sandbox-agent: ${message}\n`);
  process.exit(AGENT_FAILURE);
}

function parseHeader(line) {
  let job;
  try {
    job = JSON.parse(line);
  } catch (err) {
    fail(`job header is not valid JSON (${err.message})`);
  }
  if (job === null || typeof job !== 'object' || Array.isArray(job)) fail('job header must be a JSON object');
  if (job.v !== 1) fail(`unsupported job header version ${JSON.stringify(job.v)}`);
  if (typeof job.code !== 'string') fail('job header: "code" must be a string');
  const args = job.args ?? [];
  if (!Array.isArray(args) || !args.every((a) => typeof a === 'string')) fail('job header: "args" must be an array of strings');
  const env = job.env ?? {};
  if (env === null || typeof env !== 'object' || Array.isArray(env)) fail('job header: "env" must be an object');
  for (const [key, value] of Object.entries(env)) {
    if (typeof value !== 'string') fail(`job header: env ${JSON.stringify(key)} must be a string`);
  }
  const packages = job.packages ?? [];
  if (!Array.isArray(packages) || !packages.every((p) => typeof p === 'string' && PACKAGE_SPEC.test(p))) {
    fail('job header: "packages" must be an array of npm registry specs');
  }
  const registry = job.registry ?? DEFAULT_NPM_REGISTRY_HOST;
  if (typeof registry !== 'string' || !/^[a-z0-9.-]+(?::[0-9]+)?$/.test(registry)) fail('job header: "registry" must be a host name');
  const token = job.token ?? null;
  if (token !== null && (typeof token !== 'string' || !TOKEN.test(token))) fail('job header: "token" must be 32 hex digits');
  return { code: job.code, args, env, packages, registry, token };
}

// 127.0.0.1:3128 → the per-sandbox Unix socket. The socket is the sandbox's
// identity at the proxy; when it is absent (no egress session yet, or none at
// all) the connection is simply dropped, which clients see as a refused proxy.
function startForwarder() {
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ path: PROXY_SOCKET, allowHalfOpen: true });
    // Half-open both ways so a client that shuts down its sending side still
    // receives the whole response; each side ends only when its source did.
    client.pipe(upstream);
    upstream.pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', drop);
    upstream.on('close', drop);
  });
  return new Promise((resolve) => {
    server.on('error', (err) => fail(`egress forwarder: ${err.message}`));
    server.listen(PROXY_PORT, '127.0.0.1', resolve);
  });
}

// Installs the job's packages through the egress proxy, whose package rules
// decide what may be fetched. Lifecycle scripts never run, and the program's
// own env is not passed on: it must not be able to reconfigure npm.
function installPackages(packages, registry, baseEnv) {
  return new Promise((resolve) => {
    const args = [
      NPM_CLI, 'install', '--ignore-scripts', '--no-audit', '--no-fund', '--no-save', '--no-package-lock',
      '--no-bin-links', '--no-update-notifier', '--loglevel=error', '--prefix', PACKAGES_PREFIX,
      '--cache', NPM_CACHE, '--registry', `https://${registry}/`, '--', ...packages,
    ];
    const npm = spawn(process.execPath, args, { cwd: PACKAGES_PREFIX, env: baseEnv, stdio: ['ignore', 'pipe', 'pipe'] });
    let tail = '';
    const keep = (chunk) => {
      tail = (tail + chunk.toString('utf8')).slice(-INSTALL_OUTPUT_TAIL);
    };
    npm.stdout.on('data', keep);
    npm.stderr.on('data', keep);
    npm.on('error', (err) => resolve({ ok: false, detail: `cannot start npm (${err.message})` }));
    npm.on('close', (code, signal) => {
      fs.rmSync(NPM_CACHE, { recursive: true, force: true });
      if (code === 0) resolve({ ok: true });
      else resolve({ ok: false, detail: `npm ${signal ? `was killed by ${signal}` : `exited ${code}`}\n${tail.trimEnd()}` });
    });
  });
}

function exitLike(code, signal) {
  if (signal) process.exit(128 + (constants.signals[signal] ?? 0));
  process.exit(code ?? AGENT_FAILURE);
}

function programEnv() {
  const env = { PATH: '/usr/local/bin', HOME: '/tmp', LANG: 'C.UTF-8', ...PROXY_ENV };
  // Node warns on stderr about a missing NODE_EXTRA_CA_CERTS file on every
  // start; without an egress session there is no CA (and no route out), so
  // leave the variable out rather than pollute the program's stderr.
  if (!fs.existsSync(CA_CERT)) delete env.NODE_EXTRA_CA_CERTS;
  return env;
}

function startWaitingProgram() {
  const env = programEnv();
  const program = spawn(process.execPath, ['--require', PRELUDE, JOB_FILE], {
    cwd: '/tmp',
    env,
    stdio: ['pipe', 'inherit', 'inherit', 'pipe'],
  });
  waiting = { process: program, env };
  const forget = () => {
    if (waiting?.process === program) waiting = null;
  };
  program.on('error', forget);
  program.on('exit', forget);
  program.stdio[3].on('error', () => {});
}

// The waiting process serves the job when it is still there and was started
// with what the job needs (the CA may have arrived since); otherwise a fresh one.
function programFor(job, env) {
  const ready = waiting;
  waiting = null;
  const fits =
    ready !== null &&
    ready.process.exitCode === null &&
    ready.process.signalCode === null &&
    ready.env.NODE_EXTRA_CA_CERTS === env.NODE_EXTRA_CA_CERTS &&
    !Object.keys(job.env).some((name) => STARTUP_ENV.test(name));
  if (fits) {
    ready.process.stdio[3].end(`${JSON.stringify({ env: job.env, args: job.args })}\n`);
    return ready.process;
  }
  ready?.process.kill('SIGKILL');
  return spawn(process.execPath, [JOB_FILE, ...job.args], {
    cwd: '/tmp',
    env: { ...env, ...job.env },
    stdio: ['pipe', 'inherit', 'inherit'],
  });
}

async function run(job, rest, forwarding) {
  if (job.token !== null) writeRecord(2, `\0sandbox:${job.token}:started\n`);
  await forwarding;
  try {
    fs.mkdirSync(JOB_DIR, { recursive: true, mode: 0o700 });
    fs.writeFileSync(JOB_FILE, job.code);
  } catch (err) {
    fail(`cannot write the program to ${JOB_FILE} (${err.code ?? err.message})`);
  }
  const env = programEnv();
  if (job.packages.length > 0) {
    const installed = await installPackages(job.packages, job.registry, { ...env });
    if (!installed.ok) fail(`package install failed: ${installed.detail}`);
  }
  child = programFor(job, env);
  child.on('error', (err) => fail(`cannot start the program (${err.message})`));
  child.on('exit', (code, signal) => {
    if (job.token !== null) {
      const record = `\0sandbox:${job.token}:exit:${code ?? ''}:${signal ?? ''}\n`;
      writeRecord(1, record);
      writeRecord(2, record);
    }
    exitLike(code, signal);
  });
  // A program that never reads stdin may exit before we finish writing it;
  // that EPIPE is the program's business, not an agent failure.
  child.stdin.on('error', () => {});
  if (rest.length > 0) child.stdin.write(rest);
  if (process.stdin.readableEnded) child.stdin.end();
  else process.stdin.pipe(child.stdin);
}

// Anything unexpected is the agent's failure, never the program's exit status.
process.on('uncaughtException', (err) => fail(err.message));

// docker stop → tini → us: pass the signal on and report the program's fate.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT']) {
  process.on(signal, () => {
    if (child?.exitCode === null) child.kill(signal);
    else process.exit(128 + constants.signals[signal]);
  });
}

function readHeader(forwarding) {
  const chunks = [];
  let size = 0;
  const onData = (chunk) => {
    const newline = chunk.indexOf(10);
    if (newline === -1) {
      chunks.push(chunk);
      size += chunk.length;
      if (size > MAX_HEADER_BYTES) fail(`job header exceeds ${MAX_HEADER_BYTES} bytes`);
      return;
    }
    chunks.push(chunk.subarray(0, newline));
    stop();
    process.stdin.pause();
    run(parseHeader(Buffer.concat(chunks).toString('utf8')), chunk.subarray(newline + 1), forwarding).catch((err) => fail(err.message));
  };
  // Tolerate a header without its newline when stdin ends right after it:
  // the program then simply gets an empty stdin.
  const onEnd = () => {
    stop();
    if (size === 0) fail('no job header on stdin');
    run(parseHeader(Buffer.concat(chunks).toString('utf8')), Buffer.alloc(0), forwarding).catch((err) => fail(err.message));
  };
  const stop = () => {
    process.stdin.off('data', onData);
    process.stdin.off('end', onEnd);
  };
  process.stdin.on('data', onData);
  process.stdin.on('end', onEnd);
}

// Both ahead of the job: the forwarder only dials the socket per connection,
// so it may listen before the egress session exists.
const forwarding = startForwarder();
startWaitingProgram();
readHeader(forwarding);
