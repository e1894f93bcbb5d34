/**
 * What a bench run on its own (`npx tsx bench/<name>.ts`) prints and keeps:
 * its rows as a table, and its result as JSON under bench/results/.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';

export type Row = readonly string[];

export function printTable(header: Row, rows: readonly Row[]): void {
  const widths = header.map((_, i) => Math.max(...[header, ...rows].map((row) => row[i]?.length ?? 0)));
  const line = (cells: Row) => cells.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join(' │ ');
  process.stdout.write(`\n${[line(header), widths.map((w) => '─'.repeat(w)).join('─┼─'), ...rows.map(line)].join('\n')}\n\n`);
}

/** Writes `{ startedAt, node, [key]: result }` to bench/results/<key-as-file>-<time>.json and says where. */
export async function writeStandaloneResult(fileName: string, key: string, startedAt: Date, result: unknown): Promise<void> {
  const dir = fileURLToPath(new URL('./results/', import.meta.url));
  await mkdir(dir, { recursive: true });
  const file = `${dir}${fileName}-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`;
  await writeFile(file, `${JSON.stringify({ startedAt: startedAt.toISOString(), node: process.version, [key]: result }, null, 2)}\n`);
  process.stdout.write(`results: ${file}\n`);
}
