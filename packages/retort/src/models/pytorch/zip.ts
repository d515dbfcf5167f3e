/**
 * The stored (uncompressed) zip archives `torch.save` writes since PyTorch 1.6: entries are found
 * through the central directory at the end; compressed entries and ZIP64 are refused (torch.save
 * never writes them for files under 4 GiB). Every offset and length is checked against the file.
 */
import { RetortError } from '../../util/errors.js';

export interface ZipEntry {
  name: string;
  /** The entry's bytes (a view into the archive). */
  data: Uint8Array;
}

const EOCD = 0x06054b50;
const CENTRAL = 0x02014b50;
const LOCAL = 0x04034b50;

/** Entries of a stored zip archive, by name. */
export function readStoredZip(bytes: Uint8Array, file: string): Map<string, ZipEntry> {
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const bad = (why: string) => new RetortError(`${file}: not a PyTorch zip archive (${why})`, { file });
  // The end-of-central-directory record: the last 22 bytes plus at most 64 KiB of comment.
  let eocd = -1;
  for (let p = bytes.length - 22; p >= Math.max(0, bytes.length - 22 - 65535); p--) {
    if (v.getUint32(p, true) === EOCD) {
      eocd = p;
      break;
    }
  }
  if (eocd < 0) throw bad('no end of central directory');
  const count = v.getUint16(eocd + 10, true);
  const cdSize = v.getUint32(eocd + 12, true);
  const cdOffset = v.getUint32(eocd + 16, true);
  if (count === 0xffff || cdOffset === 0xffffffff) throw bad('ZIP64 archives are not read');
  if (cdOffset + cdSize > eocd) throw bad('central directory out of bounds');
  const out = new Map<string, ZipEntry>();
  let p = cdOffset;
  const decoder = new TextDecoder('utf-8', { fatal: true });
  for (let i = 0; i < count; i++) {
    if (p + 46 > eocd || v.getUint32(p, true) !== CENTRAL) throw bad(`central entry ${i} damaged`);
    const method = v.getUint16(p + 10, true);
    const size = v.getUint32(p + 20, true);
    const usize = v.getUint32(p + 24, true);
    const nameLen = v.getUint16(p + 28, true);
    const extraLen = v.getUint16(p + 30, true);
    const commentLen = v.getUint16(p + 32, true);
    const local = v.getUint32(p + 42, true);
    if (p + 46 + nameLen > eocd) throw bad(`central entry ${i} name out of bounds`);
    let name: string;
    try {
      name = decoder.decode(bytes.subarray(p + 46, p + 46 + nameLen));
    } catch {
      throw bad(`entry ${i} has a name that is not UTF-8`);
    }
    if (method !== 0) throw bad(`entry ${name} is compressed (method ${method}); torch.save stores entries`);
    if (size !== usize) throw bad(`entry ${name}: stored sizes differ`);
    if (local + 30 > bytes.length || v.getUint32(local, true) !== LOCAL)
      throw bad(`entry ${name}: local header damaged`);
    const start = local + 30 + v.getUint16(local + 26, true) + v.getUint16(local + 28, true);
    if (start + size > bytes.length) throw bad(`entry ${name} runs past the end of the file`);
    out.set(name, { name, data: bytes.subarray(start, start + size) });
    p += 46 + nameLen + extraLen + commentLen;
  }
  return out;
}
