/**
 * Reading the user's files with bounds: only regular files (not /dev/zero, a FIFO or a folder),
 * never more than a stated size, read in one piece whose length is known before any allocation.
 * Every failure is a RetortError naming the file.
 */
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { gunzipSync } from 'node:zlib';
import { messageOf, RetortError } from './errors.js';

const MiB = 1024 * 1024;

/** '512 MiB', '1.5 MiB' or '7856 bytes'. */
export function formatBytes(n: number): string {
  return n >= MiB ? `${Number((n / MiB).toFixed(1))} MiB` : `${n} bytes`;
}

/** Reads `path` whole if it is a regular file of at most `maxBytes`; `what` names it in errors. */
export function readFileBounded(path: string, maxBytes: number, what = 'file'): Buffer {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new RetortError(`${what} ${path}: cannot read (${messageOf(e)})`, { file: path, cause: e });
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new RetortError(`${what} ${path}: not a regular file`, { file: path });
    if (st.size > maxBytes)
      throw new RetortError(
        `${what} ${path}: ${formatBytes(st.size)}, over the ${formatBytes(maxBytes)} limit for ${what}s`,
        { file: path },
      );
    const buf = Buffer.allocUnsafe(st.size);
    let off = 0;
    while (off < st.size) {
      const n = readSync(fd, buf, off, st.size - off, off);
      if (n === 0) break;
      off += n;
    }
    if (off !== st.size)
      throw new RetortError(`${what} ${path}: changed while being read (${off} of ${st.size} bytes)`, {
        file: path,
      });
    return buf;
  } catch (e) {
    if (e instanceof RetortError) throw e;
    throw new RetortError(`${what} ${path}: cannot read (${messageOf(e)})`, { file: path, cause: e });
  } finally {
    closeSync(fd);
  }
}

/** gunzip with an output limit: a gzip bomb stops at `maxBytes` instead of filling memory. */
export function gunzipBounded(data: Uint8Array, maxBytes: number, path: string): Buffer {
  try {
    return gunzipSync(data, { maxOutputLength: maxBytes });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ERR_BUFFER_TOO_LARGE')
      throw new RetortError(
        `${path}: inflates past ${formatBytes(maxBytes)}, the size its header declares or the limit (corrupt or a gzip bomb)`,
        {
          file: path,
        },
      );
    throw new RetortError(`${path}: corrupt gzip data (${messageOf(e)})`, { file: path, cause: e });
  }
}
