import type { Linter } from 'eslint';

export const FRONT_DOOR_FOLDERS: readonly string[];
export const PRODUCTION_FOLDERS: readonly string[];
export function importGuards(options: { root: string; frontDoorFolders?: readonly string[]; productionFolders?: readonly string[] }): Linter.Config[];
