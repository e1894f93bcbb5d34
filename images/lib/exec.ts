import { spawn } from 'node:child_process';

export interface RunOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
}

/**
 * Runs a command to completion and returns its stdout. On failure the error
 * carries the tail of stderr, because that is where debootstrap, npm and tar
 * say what went wrong.
 */
export function run(command: string, args: readonly string[], options: RunOptions = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => err.push(chunk));
    child.on('error', (error: NodeJS.ErrnoException) =>
      reject(new Error(error.code === 'ENOENT' ? `${command} is not installed (or not on PATH); scripts/setup.sh installs it on Debian` : `${command}: ${error.message}`)),
    );
    child.on('close', (code, signal) => {
      if (code === 0) {
        resolve(Buffer.concat(out).toString('utf8'));
        return;
      }
      const stderr = Buffer.concat(err).toString('utf8').trim().split('\n').slice(-15).join('\n');
      const status = signal ? `signal ${signal}` : `exit status ${String(code)}`;
      reject(new Error(`${command} ${args.join(' ')} failed (${status})${stderr ? `:\n${stderr}` : ''}`));
    });
  });
}

/** debootstrap and chroot live in sbin, which a non-login shell may leave off PATH. */
export function withSbin(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return { ...env, PATH: `${env.PATH ?? '/usr/bin:/bin'}:/usr/sbin:/sbin` };
}
