import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { run } from './exec.ts';
import { copyFromTree, makeDirs, placeLink, sharedLibraries, writeFiles } from './rootfs.ts';

/**
 * Executables an image carries beside its language runtime. Each lives alone
 * in `/opt/tools/<name>/`: the program in `bin/`, the shared objects only it
 * needs in `lib/`. The executor hides a tool by mounting an empty read-only
 * tmpfs over that one directory when the caller's policy does not name it
 * in `allowedBinaries`, so a hidden tool is absent from the sandbox's view,
 * not merely off PATH: no absolute path, link, loader or copy reaches it.
 */
export interface Tool {
  /** The name `allowedBinaries` uses, and the command on PATH. */
  name: string;
  /** The program in the Debian tree. */
  program: string;
  /** Further paths that lead to the tool, e.g. `/bin/sh`. */
  aliases?: readonly string[];
}

export const TOOLS_DIR = '/opt/tools';
/** Image labels the executor reads to know what it may have to hide (mirrored in executor/tools.ts). */
export const TOOLS_LABEL = 'sandbox.image.tools';
export const TOOLS_DIR_LABEL = 'sandbox.image.tools-dir';
const PATH_DIR = '/usr/local/bin';

/** Small real tools every image carries; the shell is one of them, never part of the base. */
export const STANDARD_TOOLS: readonly Tool[] = [
  { name: 'jq', program: '/usr/bin/jq' },
  { name: 'curl', program: '/usr/bin/curl' },
  { name: 'sh', program: '/usr/bin/dash', aliases: ['/bin/sh'] },
];

/** Debian packages the standard tools come from (dash is already in minbase). */
export const STANDARD_TOOL_PACKAGES: readonly string[] = ['jq', 'curl'];

/** The Dockerfile-style instruction that publishes the tools to the executor. */
export function toolsLabel(tools: readonly Tool[]): string {
  return `LABEL ${TOOLS_LABEL}=${tools.map((t) => t.name).join(',')} ${TOOLS_DIR_LABEL}=${TOOLS_DIR}`;
}

/**
 * Stages the tools after the runtime, so a library the runtime already
 * ships stays where it is and only the rest moves into the tool's directory.
 * A library two tools share (and the runtime does not) stays in the common
 * directories: the loader's cache names one path per library, and a tool
 * must not lose it because another tool is hidden.
 */
export async function stageTools(tree: string, stage: string, tools: readonly Tool[]): Promise<void> {
  const privateLibraries = new Map<string, string[]>();
  const users = new Map<string, number>();
  for (const tool of tools) {
    const needed = (await sharedLibraries(tree, join(tree, tool.program))).filter((library) => !existsSync(join(stage, library)));
    privateLibraries.set(tool.name, needed);
    for (const library of needed) users.set(library, (users.get(library) ?? 0) + 1);
  }
  const libraryDirs: string[] = [];
  for (const tool of tools) {
    const home = posix.join(TOOLS_DIR, tool.name);
    const bin = posix.join(home, 'bin', tool.name);
    await makeDirs(stage, [
      { path: TOOLS_DIR, mode: 0o755 },
      { path: home, mode: 0o755 },
      { path: posix.dirname(bin), mode: 0o755 },
    ]);
    await copyFile(join(tree, tool.program), join(stage, bin));
    await chmod(join(stage, bin), 0o755);
    const own = (privateLibraries.get(tool.name) ?? []).filter((library) => users.get(library) === 1);
    if (own.length > 0) {
      const lib = posix.join(home, 'lib');
      await mkdir(join(stage, lib), { recursive: true });
      for (const library of own) {
        // copyFile follows the tree's soname link to the real file.
        await copyFile(join(tree, library), join(stage, lib, posix.basename(library)));
        await chmod(join(stage, lib, posix.basename(library)), 0o644);
      }
      libraryDirs.push(lib);
    }
    for (const library of privateLibraries.get(tool.name) ?? []) {
      if ((users.get(library) ?? 0) > 1 && !existsSync(join(stage, library))) await copyFromTree(tree, stage, library);
    }
    for (const alias of [posix.join(PATH_DIR, tool.name), ...(tool.aliases ?? [])]) await placeLink(tree, stage, alias, bin);
  }
  await loaderCache(tree, stage, libraryDirs);
}

/**
 * The tools' programs are Debian's, built without a run path, so the loader
 * finds their private libraries through its cache. The tree's ldconfig is
 * static, so it runs here as is, chrooted into the stage.
 */
async function loaderCache(tree: string, stage: string, libraryDirs: readonly string[]): Promise<void> {
  await writeFiles(stage, [{ path: '/etc/ld.so.conf', content: libraryDirs.map((d) => `${d}\n`).join('') }]);
  await run(join(tree, 'usr/sbin/ldconfig'), ['-X', '-r', stage]);
}
