import { chmod, copyFile, cp, link, lstat, mkdir, readdir, readlink, rm, symlink, writeFile } from 'node:fs/promises';
import { dirname, join, posix, relative } from 'node:path';
import { run, withSbin } from './exec.ts';

/**
 * Copies absolute path `path` from the `tree` root into the `stage` root,
 * recreating every symbolic link met on the way (Debian's merged /usr makes
 * /lib64/ld-linux-x86-64.so.2 a path through two links), so the program's
 * loader finds its libraries exactly where it looks for them.
 */
export async function copyFromTree(tree: string, stage: string, path: string, depth = 0): Promise<void> {
  if (depth > 20) throw new Error(`too many symbolic links resolving ${path}`);
  const parts = path.split('/').filter(Boolean);
  let current = '/';
  for (const [i, part] of parts.entries()) {
    const next = posix.join(current, part);
    const info = await lstat(join(tree, next));
    if (info.isSymbolicLink()) {
      const target = await readlink(join(tree, next));
      await linkIn(stage, next, target);
      const resolved = posix.resolve(current, target, ...parts.slice(i + 1));
      await copyFromTree(tree, stage, resolved, depth + 1);
      return;
    }
    if (i === parts.length - 1) {
      await mkdir(join(stage, current), { recursive: true });
      await copyFile(join(tree, next), join(stage, next));
      await chmod(join(stage, next), info.mode & 0o7777);
    }
    current = next;
  }
}

async function linkIn(stage: string, path: string, target: string): Promise<void> {
  const at = join(stage, path);
  const existing = await lstat(at).catch(() => null);
  if (existing?.isSymbolicLink() && (await readlink(at)) === target) return;
  if (existing) throw new Error(`${path} exists in the image as something other than a link to ${target}`);
  await mkdir(dirname(at), { recursive: true });
  await symlink(target, at);
}

/**
 * The shared objects `hostProgram` loads,
 * as the tree's own loader resolves them: `ldd` run inside a chroot, so the
 * answer comes from the Debian libraries that will ship, not the host's.
 */
export async function sharedLibraries(tree: string, hostProgram: string): Promise<string[]> {
  // The program visits the tree only for the question; a hard link costs
  // nothing on the same file system, a copy is the fallback.
  const probeDir = '/tmp/.ldd-probe';
  const program = `${probeDir}/${process.pid}`;
  await mkdir(join(tree, probeDir), { recursive: true });
  await link(hostProgram, join(tree, program)).catch(() => copyFile(hostProgram, join(tree, program)));
  try {
    return parseLdd(await run('chroot', [tree, '/usr/bin/ldd', program], { env: withSbin({ PATH: '/usr/bin:/bin', LANG: 'C' }) }), program);
  } finally {
    await rm(join(tree, program), { force: true });
  }
}

function parseLdd(out: string, program: string): string[] {
  // A module that needs nothing (no DT_NEEDED at all) is reported this way.
  if (out.trim() === 'statically linked') return [];
  const libraries: string[] = [];
  for (const line of out.split('\n')) {
    if (line.includes('not found')) throw new Error(`${program} needs a library the tree lacks: ${line.trim()}`);
    const match = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)/.exec(line);
    if (match?.[1]) libraries.push(match[1]);
  }
  if (libraries.length === 0) throw new Error(`ldd found no libraries for ${program}:\n${out}`);
  return libraries;
}

export interface TextFile {
  path: string;
  content: string;
  mode?: number;
}

/** Writes small configuration files into the stage. */
export async function writeFiles(stage: string, files: readonly TextFile[]): Promise<void> {
  for (const file of files) {
    const at = join(stage, file.path);
    await mkdir(dirname(at), { recursive: true });
    await writeFile(at, file.content, { mode: file.mode ?? 0o644 });
    await chmod(at, file.mode ?? 0o644);
  }
}

/** Creates directories with exact modes (umask would otherwise loosen or tighten them). */
export async function makeDirs(stage: string, dirs: readonly { path: string; mode: number }[]): Promise<void> {
  for (const dir of dirs) {
    const at = join(stage, dir.path);
    await mkdir(at, { recursive: true });
    await chmod(at, dir.mode);
  }
}

/** Fresh, empty staging directory. */
export async function freshDir(dir: string): Promise<void> {
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o755);
}

/**
 * Makes `path` in the stage a symbolic link to `target`, first recreating
 * any links the tree has on the way there (merged /usr: /bin is `usr/bin`),
 * so the link lands where the tree's layout says it belongs.
 */
export async function placeLink(tree: string, stage: string, path: string, target: string): Promise<void> {
  const dir = await mirrorDir(tree, stage, posix.dirname(path), 0);
  await linkIn(stage, posix.join(dir, posix.basename(path)), target);
}

/** Recreates directory `dir` of the tree in the stage, links included; returns it with links resolved. */
async function mirrorDir(tree: string, stage: string, dir: string, depth: number): Promise<string> {
  if (depth > 20) throw new Error(`too many symbolic links resolving ${dir}`);
  const parts = dir.split('/').filter(Boolean);
  let current = '/';
  for (const [i, part] of parts.entries()) {
    const next = posix.join(current, part);
    const info = await lstat(join(tree, next)).catch(() => null);
    if (info?.isSymbolicLink()) {
      const target = await readlink(join(tree, next));
      await linkIn(stage, next, target);
      return mirrorDir(tree, stage, posix.resolve(current, target, ...parts.slice(i + 1)), depth + 1);
    }
    await mkdir(join(stage, next), { recursive: true });
    current = next;
  }
  return current;
}

/**
 * Copies directory `dir` of the tree into the stage. Regular files lose
 * their execute bits (a `#!` script in a library directory is still a way to
 * start a program); links are kept as they are.
 */
export async function copyDirFromTree(tree: string, stage: string, dir: string, skip: (relativePath: string) => boolean = () => false): Promise<void> {
  await cp(join(tree, dir), join(stage, dir), {
    recursive: true,
    verbatimSymlinks: true,
    filter: (source) => !skip(relative(join(tree, dir), source)),
  });
  await stripExecBits(join(stage, dir));
}

/** Regular files under `dir` become 0644 and directories 0755. */
export async function stripExecBits(dir: string): Promise<void> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const at = join(dir, entry.name);
    if (entry.isDirectory()) {
      await chmod(at, 0o755);
      await stripExecBits(at);
    } else if (entry.isFile()) {
      await chmod(at, 0o644);
    }
  }
}
