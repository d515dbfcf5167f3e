/**
 * Atomic writes: the new content or the old, never a mix; a failing write (a full disk) names the
 * file, keeps the old content and leaves no temp file behind.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { type AtomicIo, writeFileAtomic } from '../../src/util/atomic.js';
import { RetortError } from '../../src/util/errors.js';

const dir = fs.mkdtempSync(join(tmpdir(), 'retort-atomic-'));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

it('replaces the content; leaves nothing else in the folder', () => {
  const p = join(dir, 'a.json');
  writeFileAtomic(p, 'one');
  writeFileAtomic(p, Buffer.from('two'));
  assert.equal(fs.readFileSync(p, 'utf8'), 'two');
  assert.deepEqual(fs.readdirSync(dir), ['a.json']);
});

it('ENOSPC half-way: a RetortError naming the file, the old content kept, no temp file left', () => {
  const p = join(dir, 'last.ckpt');
  writeFileAtomic(p, 'old checkpoint');
  let writes = 0;
  const full: AtomicIo = {
    ...fs,
    writeSync: ((fd: number, buf: Uint8Array, off?: number, len?: number) => {
      if (writes++ > 0) throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
      return fs.writeSync(fd, buf, off, Math.min(len ?? buf.length, 4));
    }) as typeof fs.writeSync,
  };
  assert.throws(
    () => writeFileAtomic(p, Buffer.alloc(1000, 1), full),
    (e: unknown) =>
      e instanceof RetortError &&
      e.file === p &&
      /last\.ckpt: cannot write \(ENOSPC\); the previous file, if any, is unchanged/.test(e.message),
  );
  assert.equal(fs.readFileSync(p, 'utf8'), 'old checkpoint');
  assert.deepEqual(fs.readdirSync(dir).sort(), ['a.json', 'last.ckpt']);
  assert.throws(
    () => writeFileAtomic(join(dir, 'no', 'such', 'x'), 'y'),
    /no\/such\/x: cannot write \(ENOENT\)/,
  );
});
