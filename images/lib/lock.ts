import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Runs `work` holding an exclusive lock file, so `npm start` and `npm test`
 * started together on a fresh machine do not debootstrap into the same
 * directory. A lock whose owner process is gone is taken over.
 */
export async function withLock<T>(path: string, work: () => Promise<T>, onWait: () => void = () => {}): Promise<T> {
  await mkdir(dirname(path), { recursive: true });
  let announced = false;
  for (;;) {
    try {
      const handle = await open(path, 'wx');
      await handle.writeFile(String(process.pid));
      await handle.close();
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const owner = Number(await readFile(path, 'utf8').catch(() => ''));
      if (!alive(owner)) {
        await rm(path, { force: true });
        continue;
      }
      if (!announced) onWait();
      announced = true;
      await sleep(500);
    }
  }
  try {
    return await work();
  } finally {
    await rm(path, { force: true });
  }
}

function alive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
