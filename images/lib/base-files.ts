import { copyFromTree, makeDirs, writeFiles } from './rootfs.ts';

export interface SandboxUser {
  name: string;
  uid: number;
  gid: number;
}

/**
 * What every sandbox image has whatever its runtime: an unprivileged user the
 * C library can name, name-service files that keep look-ups local (there is
 * no network to ask), the CA bundle, mount points and a world-writable /tmp.
 * Nothing here is executable.
 */
export async function stageBaseFiles(tree: string, stage: string, user: SandboxUser): Promise<void> {
  await makeDirs(stage, [
    { path: '/etc', mode: 0o755 },
    { path: '/tmp', mode: 0o1777 },
    { path: '/dev', mode: 0o755 },
    { path: '/proc', mode: 0o755 },
    { path: '/sys', mode: 0o755 },
    // The egress directory is bind-mounted here per sandbox (executor/egress.ts).
    { path: '/run/egress', mode: 0o755 },
  ]);
  await writeFiles(stage, [
    {
      path: '/etc/passwd',
      content: `root:x:0:0:root:/root:/usr/sbin/nologin\n${user.name}:x:${user.uid}:${user.gid}:${user.name}:/tmp:/usr/sbin/nologin\n`,
    },
    { path: '/etc/group', content: `root:x:0:\n${user.name}:x:${user.gid}:\n` },
    { path: '/etc/nsswitch.conf', content: 'passwd: files\ngroup: files\nhosts: files dns\n' },
    { path: '/etc/hosts', content: '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' },
  ]);
  await copyFromTree(tree, stage, '/etc/ssl/certs/ca-certificates.crt');
}
