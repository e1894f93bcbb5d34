/**
 * The executables an image carries beside its runtime, and which of them a
 * container must hide. An image names its tools in labels (images/lib/tools.ts
 * writes them; the executor cannot import images/, so the names are mirrored
 * here); each tool lives alone in `<dir>/<name>/`, and a tool the caller's
 * `allowedBinaries` does not name gets an empty read-only tmpfs over that
 * directory when the container is created, so nothing in the sandbox can
 * reach it by any path.
 */

export const TOOLS_LABEL = 'sandbox.image.tools';
export const TOOLS_DIR_LABEL = 'sandbox.image.tools-dir';

export interface ImageTools {
  /** Absolute directory holding one sub-directory per tool. */
  dir: string;
  names: readonly string[];
}

export const NO_TOOLS: ImageTools = { dir: '/opt/tools', names: [] };

const TOOL_NAME = /^[A-Za-z0-9_][A-Za-z0-9._+-]*$/;
const ABSOLUTE_DIR = /^(\/[A-Za-z0-9._+-]+)+$/;

/**
 * Reads the tool labels of an image. An image without them carries no
 * tools; labels that do not parse are refused rather than guessed at, since
 * a misread name would leave a tool visible.
 */
export function toolsFromLabels(image: string, labels: Readonly<Record<string, string>> | null | undefined): ImageTools {
  const list = labels?.[TOOLS_LABEL];
  if (list === undefined || list === '') return NO_TOOLS;
  const dir = labels?.[TOOLS_DIR_LABEL] ?? '';
  const names = list.split(',');
  if (!ABSOLUTE_DIR.test(dir) || dir.split('/').includes('..')) throw new Error(`image ${image}: label ${TOOLS_DIR_LABEL}=${JSON.stringify(dir)} is not an absolute directory`);
  const bad = names.filter((n) => !TOOL_NAME.test(n) || n === '.' || n === '..');
  if (bad.length > 0) throw new Error(`image ${image}: label ${TOOLS_LABEL} names invalid tools ${JSON.stringify(bad)}`);
  return { dir, names: [...new Set(names)].sort() };
}

/** The tools of the image that `allowedBinaries` names: the only ones its container shows. */
export function exposedTools(tools: ImageTools, allowedBinaries: readonly string[]): string[] {
  const allowed = new Set(allowedBinaries);
  return tools.names.filter((name) => allowed.has(name));
}

/** Directories to hide: every tool of the image that `allowedBinaries` does not name. */
export function toolMasks(tools: ImageTools, allowedBinaries: readonly string[]): string[] {
  const allowed = new Set(allowedBinaries);
  return tools.names.filter((name) => !allowed.has(name)).map((name) => `${tools.dir}/${name}`);
}
