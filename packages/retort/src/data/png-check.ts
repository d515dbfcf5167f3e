/**
 * A PNG checked before pngjs decodes it. pngjs sizes its buffers from the header's width and
 * height (a 74-byte file claiming 2^31 pixels aborted the process) and, when the compressed pixel
 * stream inflates to fewer bytes than the image needs, reads the rest of an uninitialised buffer:
 * the same damaged file then decoded to different pixels from run to run (seen by the fuzz
 * harness). So here: the signature, IHDR (size within the limits, a valid depth and colour type),
 * every chunk's length and CRC, and the IDAT stream inflated (bounded) to exactly the number of
 * bytes the image's rows need (per Adam7 pass when interlaced), before pngjs sees the file.
 */
import { inflateSync, constants as zlibConstants } from 'node:zlib';
import { messageOf, RetortError } from '../util/errors.js';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
/** Bit depths allowed per colour type (PNG spec, table 11.1) and the channels of each type. */
const DEPTHS: Record<number, number[]> = {
  0: [1, 2, 4, 8, 16],
  2: [8, 16],
  3: [1, 2, 4, 8],
  4: [8, 16],
  6: [8, 16],
};
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Adam7 passes: x start, y start, x step, y step. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
] as const;

const CRC_TABLE = Int32Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c;
});

/** CRC-32 (ISO-HDLC, PNG's chunk checksum) of `b`. */
export function crc32(b: Uint8Array): number {
  let c = -1;
  for (const x of b) c = CRC_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ -1) >>> 0;
}

/** Filtered bytes the image's rows take: 1 filter byte + packed pixels per row, per pass. */
export function pngDataBytes(
  width: number,
  height: number,
  bitsPerPixel: number,
  interlaced: boolean,
): number {
  const rows = (w: number, h: number) =>
    w === 0 || h === 0 ? 0 : h * (1 + Math.ceil((w * bitsPerPixel) / 8));
  if (!interlaced) return rows(width, height);
  let total = 0;
  for (const [xs, ys, dx, dy] of ADAM7)
    total += rows(Math.ceil((width - xs) / dx), Math.ceil((height - ys) / dy));
  return total;
}

/** Throws a RetortError naming `path` unless `buf` is a PNG pngjs can decode exactly. */
export function checkPng(buf: Buffer, path: string, limits: { maxSide: number; maxPixels: number }): void {
  const bad = (why: string) => new RetortError(`${path}: not a valid PNG (${why})`, { file: path });
  if (buf.length < 33 || !buf.subarray(0, 8).equals(SIGNATURE)) throw bad('no PNG signature');
  if (buf.readUInt32BE(8) !== 13 || buf.toString('latin1', 12, 16) !== 'IHDR')
    throw bad('IHDR is not the first chunk');
  const width = buf.readUInt32BE(16);
  const height = buf.readUInt32BE(20);
  const [depth, colour, compression, filter, interlace] = [buf[24]!, buf[25]!, buf[26]!, buf[27]!, buf[28]!];
  if (width === 0 || height === 0) throw bad(`size ${width}x${height}`);
  if (width > limits.maxSide || height > limits.maxSide || width * height > limits.maxPixels)
    throw new RetortError(
      `${path}: ${width}x${height} pixels, over the image limits (${limits.maxSide} per side, ${limits.maxPixels} in all)`,
      { file: path },
    );
  if (!DEPTHS[colour]?.includes(depth)) throw bad(`colour type ${colour} with bit depth ${depth}`);
  if (compression !== 0 || filter !== 0 || interlace > 1)
    throw bad('unknown compression, filter or interlace method');
  // Every chunk: length within the file, CRC right; the IDAT parts collected in order.
  const idat: Buffer[] = [];
  let at = 8;
  let ended = false;
  while (at < buf.length) {
    if (at + 12 > buf.length) throw bad(`truncated chunk at byte ${at}`);
    const len = buf.readUInt32BE(at);
    if (len > buf.length - at - 12)
      throw bad(`chunk at byte ${at} claims ${len} bytes past the end of the file`);
    const type = buf.toString('latin1', at + 4, at + 8);
    if (crc32(buf.subarray(at + 4, at + 8 + len)) !== buf.readUInt32BE(at + 8 + len))
      throw bad(`CRC mismatch in chunk '${type.replace(/[^\x20-\x7e]/g, '?')}' at byte ${at}`);
    if (type === 'IDAT') idat.push(buf.subarray(at + 8, at + 8 + len));
    at += 12 + len;
    if (type === 'IEND') {
      ended = true;
      break;
    }
  }
  if (!ended) throw bad('no IEND chunk');
  if (idat.length === 0) throw bad('no IDAT chunk');
  const want = pngDataBytes(width, height, depth * CHANNELS[colour]!, interlace === 1);
  let got: Buffer;
  try {
    got = inflateSync(Buffer.concat(idat), {
      maxOutputLength: want + 1,
      finishFlush: zlibConstants.Z_SYNC_FLUSH,
    });
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
      throw bad(`pixel data inflates to more than the ${want} bytes the ${width}x${height} image needs`);
    throw bad(`pixel data does not inflate (${messageOf(e)})`);
  }
  if (got.length !== want)
    throw bad(`pixel data inflates to ${got.length} bytes, the ${width}x${height} image needs ${want}`);
}
