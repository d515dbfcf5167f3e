/**
 * Tabular data from CSV: a header row, one label column (integers 0..K-1, or strings mapped to
 * sorted class names), every other column a numeric feature. Rows become "images" of shape
 * [1, 1, F] (float32), so normalisation, batching and the MLP models work unchanged; crops and
 * flips make no sense for them and buildData refuses them. Quoted fields with commas are supported;
 * embedded newlines are not.
 */

import { RetortError } from '../util/errors.js';
import { readFileBounded } from '../util/read.js';
import type { MemoryDataset } from './dataset.js';

/** Splits one CSV line into fields (RFC 4180 quoting, "" as an escaped quote). */
export function splitCsvLine(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const ch = line[i]!;
    if (quoted) {
      if (ch === '"' && line[i + 1] === '"') {
        cur += '"';
        i++;
      } else if (ch === '"') quoted = false;
      else cur += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((f) => f.trim());
}

export interface CsvOptions {
  labelColumn: string;
  /** Class names from another split (train), so that test labels map to the same indices. */
  classNames?: readonly string[] | undefined;
  /**
   * Feature columns of another split (train): this file must have the same ones, in any order; they
   * are taken in this order, so a reordered test.csv still lines up with the training features.
   */
  featureNames?: readonly string[] | undefined;
}

/** A CSV split: rows as [N, 1, 1, F] float32 "images", with the feature column names. */
export type CsvDataset = MemoryDataset & { featureNames: string[] };

/** Reads a CSV file as a dataset of [1, 1, F] float32 rows. Blank lines are skipped. */
/** Largest CSV file read (held as text, then as float32 features). */
export const CSV_MAX_BYTES = 512 * 1024 ** 2;

export function loadCsv(path: string, opts: CsvOptions): CsvDataset {
  const text = readFileBounded(path, CSV_MAX_BYTES, 'CSV file').toString('utf8');
  // Spreadsheet exports often start with a byte-order mark, which would stick to the first name.
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const headerAt = lines.findIndex((l) => l.trim() !== '');
  if (headerAt < 0) throw new RetortError(`${path}: empty file; expected a header row and data rows`);
  const header = splitCsvLine(lines[headerAt]!);
  const li = header.indexOf(opts.labelColumn);
  if (li < 0)
    throw new RetortError(
      `${path}: no label column '${opts.labelColumn}' (columns: ${header.join(', ')}); set data.labelColumn`,
    );
  const featureCols = featureColumns(path, header, li, opts.featureNames);
  // Line numbers as an editor shows them (1-based, blank lines counted).
  const rows: { line: string; lineNo: number }[] = [];
  for (let i = headerAt + 1; i < lines.length; i++)
    if (lines[i]!.trim() !== '') rows.push({ line: lines[i]!, lineNo: i + 1 });
  if (rows.length === 0) throw new RetortError(`${path}: a header row but no data rows`);
  const f = featureCols.length;
  const x = new Float32Array(rows.length * f);
  const raw: string[] = [];
  // Every bad value is counted before refusing, so that the message says how many there are.
  let badValues = 0;
  let firstBad = '';
  for (const [r, { line, lineNo }] of rows.entries()) {
    const fields = splitCsvLine(line);
    if (fields.length !== header.length)
      throw new RetortError(
        `${path}: line ${lineNo} has ${fields.length} fields, the header has ${header.length}`,
      );
    for (const [k, c] of featureCols.entries()) {
      const v = Number(fields[c]);
      // Features train as float32: 1e39 is a finite double but Infinity in float32.
      const why =
        fields[c] === '' || !Number.isFinite(v)
          ? 'is not a finite number'
          : !Number.isFinite(Math.fround(v))
            ? 'is outside the float32 range (|x| < 3.4e38)'
            : '';
      if (why !== '') {
        if (badValues++ === 0) firstBad = `line ${lineNo}, column '${header[c]}': '${fields[c]}' ${why}`;
        continue;
      }
      x[r * f + k] = v;
    }
    const label = fields[li]!;
    if (label === '')
      throw new RetortError(`${path}: line ${lineNo}: empty label in column '${opts.labelColumn}'`);
    raw.push(label);
  }
  if (badValues > 0)
    throw new RetortError(`${path}: ${badValues} feature value(s) refused; the first at ${firstBad}`, {
      file: path,
    });
  const { classNames, labels } = labelIndices(path, raw, rows, opts.classNames);
  return {
    name: path,
    images: x,
    labels,
    count: rows.length,
    height: 1,
    width: 1,
    channels: f,
    numClasses: classNames.length,
    classNames,
    featureNames: featureCols.map((c) => header[c]!),
  };
}

/** Header indices of the feature columns, in `expected` order when given (checked by name). */
function featureColumns(
  path: string,
  header: string[],
  labelIndex: number,
  expected: readonly string[] | undefined,
): number[] {
  const own = header.map((_, i) => i).filter((i) => i !== labelIndex);
  if (own.length === 0) throw new RetortError(`${path}: no feature columns besides '${header[labelIndex]}'`);
  for (const i of own)
    if (header.indexOf(header[i]!) !== i)
      throw new RetortError(`${path}: column '${header[i]}' appears twice`);
  if (expected === undefined) return own;
  const names = own.map((i) => header[i]!);
  const missing = expected.filter((n) => !names.includes(n));
  const extra = names.filter((n) => !expected.includes(n));
  if (missing.length > 0 || extra.length > 0)
    throw new RetortError(
      `${path}: feature columns differ from the training file's` +
        (missing.length > 0 ? `; missing: ${missing.join(', ')}` : '') +
        (extra.length > 0 ? `; not in training: ${extra.join(', ')}` : ''),
    );
  return expected.map((n) => header.indexOf(n));
}

/**
 * Class indices: through `known` names (test split), else integers 0..K-1 as they are, else sorted
 * unique strings.
 */
function labelIndices(
  path: string,
  raw: string[],
  rows: { lineNo: number }[],
  known: readonly string[] | undefined,
): { classNames: string[]; labels: Int32Array } {
  if (known) {
    const classNames = [...known];
    const index = new Map(classNames.map((c, i) => [c, i]));
    const labels = Int32Array.from(raw, (v, r) => {
      const i = index.get(v) ?? (/^\d+$/.test(v) ? index.get(String(Number(v))) : undefined);
      if (i === undefined)
        throw new RetortError(
          `${path}: line ${rows[r]!.lineNo}: label '${v}' is not one of the training classes (${classNames.join(', ')})`,
        );
      return i;
    });
    return { classNames, labels };
  }
  if (raw.every((v) => /^\d+$/.test(v))) {
    const max = raw.reduce((m, v) => Math.max(m, Number(v)), 0);
    // Integer labels are class indices; far more classes than rows means an id column, not labels.
    if (max >= Math.max(1000, 10 * raw.length))
      throw new RetortError(
        `${path}: integer label ${max} for ${raw.length} rows; labels must be class indices 0..K-1 (or class names)`,
      );
    // Canonical names ('7', not '007'), so the test split's labels look up the same way.
    return {
      classNames: Array.from({ length: max + 1 }, (_, i) => String(i)),
      labels: Int32Array.from(raw, Number),
    };
  }
  const classNames = [...new Set(raw)].sort();
  const index = new Map(classNames.map((c, i) => [c, i]));
  return { classNames, labels: Int32Array.from(raw, (v) => index.get(v)!) };
}
