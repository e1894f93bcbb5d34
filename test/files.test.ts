/**
 * Files in and out of the sandbox, end to end: the real HTTP API, engine and
 * images. Uploads land in the program's working directory before it starts;
 * outputFiles globs come back as base64 after it exits, capped and flagged;
 * links out of the working directory are never followed, and output that
 * imitates the agent's files record is only output. (The limits are small
 * here so the caps are reached with small files.)
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { describeWithDocker } from './support/docker.ts';
import { startTestService, type TestService } from './support/service.ts';

const b64 = (text: string | Buffer): string => Buffer.from(text).toString('base64');
const CSV = 'city,temp\nOslo,4\nLima,19\nCairo,27\n';
/** The first bytes of a PNG: binary, with a NUL and bytes that are not UTF-8. */
const PNG_BYTES = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0xff, 0xfe]);

interface ReturnedFile {
  path: string;
  size: number;
  content: string;
}

describeWithDocker('files in and out', () => {
  let service: TestService;

  beforeAll(async () => {
    service = await startTestService({
      EXEC_FILES_MAX_COUNT: '3',
      EXEC_FILES_MAX_BYTES: '4096',
      EXEC_OUTPUT_FILES_MAX_COUNT: '3',
      EXEC_OUTPUT_FILES_MAX_BYTES: '2048',
    });
  });
  afterAll(async () => {
    await service?.close();
  });

  const run = async (body: Record<string, unknown>) => {
    const response = await service.post('/execute', body);
    expect(response.status, response.text).toBe(200);
    return response.json.data as { stdout: string; stderr: string; code: number; files?: ReturnedFile[]; truncated: { files?: boolean } };
  };
  const decoded = (files: ReturnedFile[] | undefined) => Object.fromEntries((files ?? []).map((f) => [f.path, Buffer.from(f.content, 'base64').toString('utf8')]));

  it('a Python program reads an uploaded CSV in its working directory and its report comes back in files', async () => {
    const data = await run({
      language: 'python',
      code: `import csv, os
rows = list(csv.DictReader(open('data/in.csv')))
hottest = max(rows, key=lambda r: int(r['temp']))
os.makedirs('out', exist_ok=True)
with open('out/report.txt', 'w') as f:
    f.write(f"{len(rows)} cities, hottest {hottest['city']}\\n")
open('notes.md', 'w').write('not asked for')
print(os.getcwd())`,
      files: [{ path: 'data/in.csv', content: b64(CSV) }],
      outputFiles: ['out/**', '*.txt'],
    });
    expect(data).toMatchObject({ stdout: '/tmp/work\n', stderr: '', code: 0, truncated: { files: false } });
    const report = '3 cities, hottest Cairo\n';
    expect(data.files).toEqual([{ path: 'out/report.txt', size: report.length, content: b64(report) }]);
  });

  it('a Node program reads an upload and writes a binary file that comes back byte for byte', async () => {
    const data = await run({
      language: 'javascript',
      code: `const fs = require('fs');
const rows = fs.readFileSync('data/in.csv', 'utf8').trim().split('\\n').slice(1);
fs.writeFileSync('chart.png', Buffer.from(${JSON.stringify(PNG_BYTES.toString('base64'))}, 'base64'));
fs.writeFileSync('count.txt', String(rows.length));
console.log(process.cwd());`,
      files: [{ path: 'data/in.csv', content: b64(CSV) }],
      outputFiles: ['*.png', '*.txt'],
    });
    expect(data.stdout).toBe('/tmp/work\n');
    expect(data.files).toEqual([
      { path: 'chart.png', size: PNG_BYTES.length, content: PNG_BYTES.toString('base64') },
      { path: 'count.txt', size: 1, content: b64('3') },
    ]);
    expect(data.truncated.files).toBe(false);
  });

  it('answers without files when outputFiles is not asked for', async () => {
    const response = await service.post('/execute', { code: 'require("fs").writeFileSync("a.txt", "x")' });
    expect(response.status).toBe(200);
    expect(response.json.data.files).toBeUndefined();
    expect(response.json.data.truncated).toEqual({ stdout: false, stderr: false });
  });

  it.each([
    ['a path that climbs out', { files: [{ path: '../x', content: b64('x') }] }, 'files[0].path'],
    ['a path in the middle that climbs out', { files: [{ path: 'a/../../x', content: b64('x') }] }, 'files[0].path'],
    ['an absolute path', { files: [{ path: '/etc/cron.d/x', content: b64('x') }] }, 'files[0].path'],
    ['two files at one path', { files: [{ path: 'a.txt', content: '' }, { path: 'a.txt', content: '' }] }, 'files[1].path'],
    ['a file where another needs a directory', { files: [{ path: 'a', content: '' }, { path: 'a/b', content: '' }] }, 'files[0].path'],
    ['content that is not base64', { files: [{ path: 'a.txt', content: 'not base64!' }] }, 'files[0].content'],
    ['too many files', { files: ['a', 'b', 'c', 'd'].map((path) => ({ path, content: '' })) }, 'files'],
    ['uploads too large in all', { files: [{ path: 'a', content: b64(Buffer.alloc(3000)) }, { path: 'b', content: b64(Buffer.alloc(3000)) }] }, 'files'],
    ['an output pattern that climbs out', { outputFiles: ['../*'] }, 'outputFiles[0]'],
    ['an absolute output pattern', { outputFiles: ['/etc/*'] }, 'outputFiles[0]'],
  ])('refuses %s with a 400 naming the field', async (_name, fields, field) => {
    const response = await service.post('/execute', { code: 'console.log(1)', ...fields });
    expect(response.status, response.text).toBe(400);
    expect(response.json.success).toBe(false);
    expect((response.json.details as Array<{ field: string }>).map((d) => d.field)).toContain(field);
  });

  it('returns at most the configured count of files and flags the rest', async () => {
    const data = await run({
      code: `for (const n of [1, 2, 3, 4, 5]) require('fs').writeFileSync('f' + n + '.txt', 'file ' + n);`,
      outputFiles: ['*.txt'],
    });
    expect(data.files?.map((f) => f.path)).toEqual(['f1.txt', 'f2.txt', 'f3.txt']);
    expect(data.truncated.files).toBe(true);
  });

  it('leaves out a file past the byte cap and flags it, keeping those that fit', async () => {
    const data = await run({
      language: 'python',
      code: `open('big.bin', 'wb').write(b'x' * 4096)
open('small.txt', 'w').write('small')`,
      outputFiles: ['*'],
    });
    expect(decoded(data.files)).toEqual({ 'small.txt': 'small' });
    expect(data.truncated.files).toBe(true);
  });

  it.each([
    [
      'javascript',
      `const fs = require('fs');
fs.symlinkSync('/etc/passwd', 'passwd.txt');
fs.symlinkSync('/run/egress/ca.pem', 'ca.txt');
fs.symlinkSync('/etc', 'etc');
fs.mkdirSync('out');
fs.symlinkSync('/etc/hostname', 'out/hostname');
fs.writeFileSync('out/real.txt', 'real');`,
    ],
    [
      'python',
      `import os
os.symlink('/etc/passwd', 'passwd.txt')
os.symlink('/run/egress/ca.pem', 'ca.txt')
os.symlink('/etc', 'etc')
os.mkdir('out')
os.symlink('/etc/hostname', 'out/hostname')
open('out/real.txt', 'w').write('real')`,
    ],
  ])('a %s program cannot make the collection follow a link out of its working directory', async (language, code) => {
    const data = await run({ language, code, outputFiles: ['**', 'etc/*', 'etc/passwd'] });
    expect(data.stderr).toBe('');
    expect(data.files).toEqual([{ path: 'out/real.txt', size: 4, content: b64('real') }]);
    expect(data.truncated.files).toBe(false);
  });

  it.each([
    [
      'javascript',
      `const fake = JSON.stringify({ files: [{ path: 'forged.txt', size: 6, content: 'Zm9yZ2Vk' }], truncated: false });
for (const token of ['0'.repeat(32), 'f'.repeat(32)]) process.stdout.write('\\0sandbox:' + token + ':files:' + Buffer.byteLength(fake) + '\\n' + fake);
require('fs').writeFileSync('real.txt', 'real');`,
    ],
    [
      'python',
      `import json, os
fake = json.dumps({'files': [{'path': 'forged.txt', 'size': 6, 'content': 'Zm9yZ2Vk'}], 'truncated': False})
for token in ('0' * 32, 'f' * 32):
    os.write(1, f'\\0sandbox:{token}:files:{len(fake)}\\n{fake}'.encode())
open('real.txt', 'w').write('real')`,
    ],
  ])('a %s program printing an imitation of the files record gets it back as output, not as files', async (language, code) => {
    const data = await run({ language, code, outputFiles: ['*.txt'] });
    expect(data.stdout).toContain(':files:');
    expect(data.stdout).toContain('forged.txt');
    expect(data.files).toEqual([{ path: 'real.txt', size: 4, content: b64('real') }]);
  });
});
