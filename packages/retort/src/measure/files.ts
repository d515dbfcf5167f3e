/**
 * What an export costs on disk: each file's size, its gzip size (what a web server sends, and a
 * fair measure of how much structure a format leaves unexploited: a dense fp32 file of a pruned
 * model gzips well, a sparse bundle of it much less), and which runtimes can load it.
 */
import { readFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

/** A runtime that reads a format: tfjs (browser or Node), onnxruntime, or Retort's loadBundle. */
export type Runtime = 'tfjs' | 'onnxruntime' | 'retort';

export interface FileSize {
  /** Path as written (relative to the run folder where the caller gives it so). */
  path: string;
  /** Format name of the export that wrote it. */
  format: string;
  bytes: number;
  /** gzip -9 of the file's bytes. */
  gzipBytes: number;
  loadableBy: Runtime[];
}

/** Sizes of the files one export wrote (a tfjs export: model.json and its weight shard). */
export function measureFiles(
  format: string,
  files: readonly { path: string; shown: string }[],
  loadableBy: Runtime[],
): FileSize[] {
  return files.map((f) => {
    const bytes = readFileSync(f.path);
    return {
      path: f.shown,
      format,
      bytes: statSync(f.path).size,
      gzipBytes: gzipSync(bytes, { level: 9 }).length,
      loadableBy,
    };
  });
}

/** One line per file: path, size, gzip size, runtimes. */
export function filesTable(files: readonly FileSize[]): string {
  const rows = files.map(
    (f) =>
      `| ${f.path} | ${f.format} | ${f.bytes} | ${f.gzipBytes} | ${(f.gzipBytes / f.bytes).toFixed(2)} | ${f.loadableBy.join(', ')} |`,
  );
  return [
    '| file | format | bytes | gzip bytes | gzip ratio | loads in |',
    '| --- | --- | ---: | ---: | ---: | --- |',
    ...rows,
  ].join('\n');
}
