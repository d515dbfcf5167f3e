/**
 * Tabular data from CSV: a header row, one label column (integers 0..K-1, or strings mapped to
 * sorted class names), every other column a numeric feature. Rows become "images" of shape
 * [1, 1, F] (float32), so normalisation, batching and the MLP models work unchanged; crops and
 * flips make no sense for them and buildData refuses them. Quoted fields with commas are supported;
 * embedded newlines are not.
 */
import { readFileSync } from 'node:fs';
import type { ImageDataset } from './dataset.js';

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
}

/** Reads a CSV file as a dataset of [1, 1, F] float32 rows. */
export function loadCsv(path: string, opts: CsvOptions): ImageDataset {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new Error(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1]!.trim() === '') lines.pop();
  if (lines.length < 2) throw new Error(`${path}: needs a header row and at least one data row`);
  const header = splitCsvLine(lines[0]!);
  const li = header.indexOf(opts.labelColumn);
  if (li < 0)
    throw new Error(
      `${path}: no label column '${opts.labelColumn}' (columns: ${header.join(', ')}); set data.labelColumn`,
    );
  const featureCols = header.map((_, i) => i).filter((i) => i !== li);
  if (featureCols.length === 0) throw new Error(`${path}: no feature columns besides '${opts.labelColumn}'`);
  const rows = lines.slice(1);
  const f = featureCols.length;
  const x = new Float32Array(rows.length * f);
  const raw: string[] = [];
  for (const [r, line] of rows.entries()) {
    const fields = splitCsvLine(line);
    const lineNo = r + 2;
    if (fields.length !== header.length)
      throw new Error(`${path}: line ${lineNo} has ${fields.length} fields, the header has ${header.length}`);
    for (const [k, c] of featureCols.entries()) {
      const v = Number(fields[c]);
      if (fields[c] === '' || !Number.isFinite(v))
        throw new Error(
          `${path}: line ${lineNo}, column '${header[c]}': '${fields[c]}' is not a finite number`,
        );
      x[r * f + k] = v;
    }
    raw.push(fields[li]!);
  }
  const numeric = raw.every((v) => /^\d+$/.test(v));
  let classNames: string[];
  let labels: Int32Array;
  if (opts.classNames) {
    classNames = [...opts.classNames];
    const index = new Map(classNames.map((c, i) => [c, i]));
    labels = Int32Array.from(raw, (v, r) => {
      const i = index.get(v);
      if (i === undefined)
        throw new Error(
          `${path}: line ${r + 2}: label '${v}' is not one of the training classes (${classNames.join(', ')})`,
        );
      return i;
    });
  } else if (numeric) {
    const max = raw.reduce((m, v) => Math.max(m, Number(v)), 0);
    classNames = Array.from({ length: max + 1 }, (_, i) => String(i));
    labels = Int32Array.from(raw, Number);
  } else {
    classNames = [...new Set(raw)].sort();
    const index = new Map(classNames.map((c, i) => [c, i]));
    labels = Int32Array.from(raw, (v) => index.get(v)!);
  }
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
  };
}
