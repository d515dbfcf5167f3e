/**
 * IDX files (MNIST, Fashion-MNIST): a big-endian header (two zero bytes, a type code, the number
 * of dimensions, then each dimension as uint32) followed by the data. Files may be gzip-compressed.
 */

import { gunzipSync, constants as zlibConstants } from 'node:zlib';
import { RetortError } from '../util/errors.js';
import { gunzipBounded, readFileBounded } from '../util/read.js';

/**
 * Largest IDX file (and largest inflated .gz) read: MNIST-sized sets are 8-50 MB, EMNIST's largest
 * split about 640 MB. A gzip bomb stops here instead of filling memory.
 */
export const IDX_MAX_BYTES = 1024 ** 3;

export interface IdxArray {
  /** Dimensions from the header, e.g. [60000, 28, 28]. */
  dims: number[];
  /** The payload as unsigned bytes (the only element type these datasets use). */
  data: Uint8Array;
}

/** Reads an IDX file of unsigned bytes (type code 0x08); gzip is detected from the content. */
export function readIdx(path: string): IdxArray {
  let buf: Buffer = readFileBounded(path, IDX_MAX_BYTES, 'IDX file');
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b)
    buf = gunzipBounded(buf, inflatedSize(buf, path), path);
  return parseIdx(buf, path);
}

/**
 * How many bytes a gzipped IDX file may inflate to: the size its own header declares (read from
 * the first inflated bytes), so a gzip bomb stops right after the data it claims instead of at the
 * general limit.
 */
function inflatedSize(gz: Buffer, path: string): number {
  let head: Buffer;
  try {
    // The start of the stream only: its first kilobyte inflates to at most about a megabyte.
    head = gunzipSync(gz.subarray(0, 1024), { finishFlush: zlibConstants.Z_SYNC_FLUSH });
  } catch {
    return IDX_MAX_BYTES; // the full inflate reports what is wrong
  }
  if (head.length < 4) return IDX_MAX_BYTES;
  const rank = head[3]!;
  if (rank < 1 || rank > 4 || head.length < 4 + 4 * rank) return IDX_MAX_BYTES;
  let count = 1;
  for (let i = 0; i < rank; i++) count *= head.readUInt32BE(4 + 4 * i);
  const total = 4 + 4 * rank + count;
  if (total > IDX_MAX_BYTES)
    throw new RetortError(
      `${path}: the header declares ${count} bytes of data, over the ${IDX_MAX_BYTES / 1024 ** 2} MiB IDX limit`,
      { file: path },
    );
  return total;
}

/** Parses an in-memory IDX image; `name` is used in error messages. */
export function parseIdx(buf: Uint8Array, name: string): IdxArray {
  if (buf.length < 4) throw new RetortError(`${name}: too short for an IDX header (${buf.length} bytes)`);
  if (buf[0] !== 0 || buf[1] !== 0) {
    throw new RetortError(
      `${name}: wrong magic number (expected 0x0000 then type and rank, found 0x${hex(buf, 0, 4)})`,
    );
  }
  if (buf[2] !== 0x08)
    throw new RetortError(`${name}: element type 0x${hex(buf, 2, 1)} is not unsigned byte (0x08)`);
  const rank = buf[3]!;
  if (rank < 1 || rank > 4) throw new RetortError(`${name}: rank ${rank} is not between 1 and 4`);
  const headerBytes = 4 + 4 * rank;
  if (buf.length < headerBytes) throw new RetortError(`${name}: truncated header (${buf.length} bytes)`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < rank; i++) {
    const d = view.getUint32(4 + 4 * i, false);
    dims.push(d);
    count *= d;
  }
  const have = buf.length - headerBytes;
  if (have < count) {
    throw new RetortError(
      `${name}: truncated: header [${dims.join(', ')}] needs ${count} bytes of data, file has ${have}`,
    );
  }
  if (have > count)
    throw new RetortError(`${name}: ${have - count} bytes of trailing data after [${dims.join(', ')}]`);
  return { dims, data: buf.subarray(headerBytes, headerBytes + count) };
}

function hex(buf: Uint8Array, start: number, n: number): string {
  return Array.from(buf.subarray(start, start + n), (b) => b.toString(16).padStart(2, '0')).join('');
}
