/**
 * Atomic file writes: write a temp file in the same folder, fsync it, rename it over the target,
 * then fsync the folder so that the rename itself survives a power cut. A failure (ENOSPC, EIO,
 * a missing folder) leaves the target as it was, removes the temp file and is a RetortError
 * naming the target.
 */
import * as fs from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { messageOf, RetortError } from './errors.js';

/** The file operations used (tests substitute failing ones to check the error path). */
export type AtomicIo = Pick<
  typeof fs,
  'openSync' | 'writeSync' | 'fsyncSync' | 'closeSync' | 'renameSync' | 'rmSync'
>;

export function writeFileAtomic(path: string, data: Uint8Array | string, io: AtomicIo = fs): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  let fd: number | undefined;
  try {
    fd = io.openSync(tmp, 'w');
    const buf = typeof data === 'string' ? Buffer.from(data) : data;
    let off = 0;
    while (off < buf.length) off += io.writeSync(fd, buf, off, buf.length - off);
    io.fsyncSync(fd);
    io.closeSync(fd);
    fd = undefined;
    io.renameSync(tmp, path);
  } catch (e) {
    if (fd !== undefined) io.closeSync(fd);
    io.rmSync(tmp, { force: true });
    throw new RetortError(
      `${path}: cannot write (${messageOf(e)}); the previous file, if any, is unchanged`,
      {
        file: path,
        cause: e,
      },
    );
  }
  // The rename is durable once the folder's entry is on disk; not every filesystem allows this.
  try {
    const dfd = fs.openSync(dirname(path), 'r');
    try {
      fs.fsyncSync(dfd);
    } finally {
      fs.closeSync(dfd);
    }
  } catch {
    // best effort
  }
}
