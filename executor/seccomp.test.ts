import { describe, expect, it } from 'vitest';
import { sandboxContainerSpec, DEFAULT_LIMITS } from './container-spec.ts';
import { DENIED_SYSCALLS, sandboxSeccompProfile } from './seccomp.ts';

describe('the sandbox seccomp profile', () => {
  const profile = sandboxSeccompProfile();
  const allowed = new Set(profile.syscalls.filter((rule) => rule.action === 'SCMP_ACT_ALLOW' && rule.args === undefined).flatMap((rule) => rule.names));

  it('refuses what is not named, with EPERM', () => {
    expect(profile).toMatchObject({ defaultAction: 'SCMP_ACT_ERRNO', defaultErrnoRet: 1 });
  });

  it('allows none of the denied syscalls and refuses each explicitly with EPERM', () => {
    for (const name of ['io_uring_setup', 'io_uring_enter', 'io_uring_register', 'userfaultfd', 'perf_event_open', 'keyctl', 'add_key', 'request_key', 'bpf']) {
      expect(DENIED_SYSCALLS).toContain(name);
    }
    for (const name of DENIED_SYSCALLS) expect(allowed.has(name), name).toBe(false);
    const refusal = profile.syscalls.find((rule) => rule.names.includes('io_uring_setup'));
    expect(refusal).toMatchObject({ action: 'SCMP_ACT_ERRNO', errnoRet: 1 });
  });

  it('lets clone make threads and processes but never namespaces', () => {
    const clone = profile.syscalls.find((rule) => rule.names.includes('clone'));
    expect(clone?.args).toEqual([{ index: 0, value: 0x7e020000, valueTwo: 0, op: 'SCMP_CMP_MASKED_EQ' }]);
  });
});

describe('the container spec per tier', () => {
  const base = { image: 'img', sandboxId: 'abc', egressDir: '/d', labels: {}, masks: [], limits: DEFAULT_LIMITS };

  it('gives runc our seccomp profile and the pids cgroup as the limit, with no RLIMIT_NPROC', () => {
    const spec = sandboxContainerSpec({ ...base, isolation: 'runc' });
    expect(spec.ociRuntime).toBe('runc');
    expect(spec.securityOpt).toEqual([`seccomp=${JSON.stringify(sandboxSeccompProfile())}`]);
    expect(spec.pidsLimit).toBe(DEFAULT_LIMITS.pidsLimit);
    expect(spec.processLimit).toBeUndefined();
  });

  it('gives gVisor room for its own threads in the cgroup and holds the program with RLIMIT_NPROC', () => {
    const spec = sandboxContainerSpec({ ...base, isolation: 'gvisor' });
    expect(spec.ociRuntime).toBe('runsc');
    expect(spec.securityOpt).toEqual([]);
    expect(spec.processLimit).toBe(DEFAULT_LIMITS.pidsLimit);
    expect(spec.pidsLimit).toBeGreaterThan(DEFAULT_LIMITS.pidsLimit * 2);
  });
});
