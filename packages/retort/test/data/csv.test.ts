/**
 * The CSV reader on small files written here: features as [1, 1, F] rows, integer and string
 * labels, the test split mapped through the training classes and columns, and errors that name the
 * file, line and column.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadCsv, splitCsvLine } from '../../src/data/csv.js';

// Every temporary folder of this file lives under one scratch root, removed after the tests.
const scratch = mkdtempSync(join(tmpdir(), 'retort-csv-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** Writes `text` to a new file `name` in a fresh folder and returns its path. */
function csv(name: string, text: string): string {
  const p = join(mkdtempSync(join(scratch, 'd-')), name);
  writeFileSync(p, text);
  return p;
}

const opts = { labelColumn: 'label' };

describe('CSV reader', () => {
  it('splits quoted fields', () => {
    assert.deepEqual(splitCsvLine('a,"b,c","""d"""'), ['a', 'b,c', '"d"']);
    assert.deepEqual(splitCsvLine(' 1 , 2,'), ['1', '2', '']);
  });

  it('numeric features as [1, 1, F] float32 rows; string labels mapped to sorted names', () => {
    const p = csv('train.csv', 'x1,species,x2\n1.5,setosa,2\n-3,virginica,4e-1\n"0",setosa,7\n');
    const d = loadCsv(p, { labelColumn: 'species' });
    assert.deepEqual([d.count, d.height, d.width, d.channels], [3, 1, 1, 2]);
    assert.ok(d.images instanceof Float32Array);
    assert.deepEqual(Array.from(d.images), [1.5, 2, -3, Math.fround(0.4), 0, 7]);
    assert.deepEqual(d.classNames, ['setosa', 'virginica']);
    assert.equal(d.numClasses, 2);
    assert.deepEqual(Array.from(d.labels), [0, 1, 0]);
    assert.deepEqual(d.featureNames, ['x1', 'x2']);
    assert.equal(d.name, p);
  });

  it('integer labels are class indices 0..K-1; test labels map through the training classes', () => {
    const d = loadCsv(csv('train.csv', 'f,label\n1,2\n2,0\n3,1\n4,2\n'), opts);
    assert.deepEqual(Array.from(d.labels), [2, 0, 1, 2]);
    assert.deepEqual(d.classNames, ['0', '1', '2']);
    const t = loadCsv(csv('test.csv', 'f,label\n5,02\n6,0\n'), { ...opts, classNames: d.classNames });
    assert.deepEqual(Array.from(t.labels), [2, 0]);
  });

  it('test columns in another order are taken in the training order', () => {
    const t = loadCsv(csv('test.csv', 'b,label,a\n1,x,2\n3,y,4\n'), {
      ...opts,
      classNames: ['x', 'y'],
      featureNames: ['a', 'b'],
    });
    assert.deepEqual(Array.from(t.images), [2, 1, 4, 3]);
    assert.deepEqual(t.featureNames, ['a', 'b']);
  });

  it('a byte-order mark, CRLF line ends and blank lines are tolerated', () => {
    const d = loadCsv(csv('bom.csv', '\uFEFFlabel,f\r\n1,0.5\r\n\r\n0,1.5\r\n\r\n'), opts);
    assert.deepEqual(Array.from(d.labels), [1, 0]);
    assert.deepEqual(Array.from(d.images), [0.5, 1.5]);
  });
});

describe('CSV errors', () => {
  it('wrong column count: file and line (blank lines counted)', () => {
    const p = csv('bad.csv', 'a,label\n1,0\n\n2\n');
    assert.throws(() => loadCsv(p, opts), /bad\.csv: line 4 has 1 fields, the header has 2/);
  });

  it('non-numeric or missing feature: file, line and column', () => {
    assert.throws(
      () => loadCsv(csv('bad.csv', 'a,label\n1,0\nx,1\n'), opts),
      /bad\.csv: 1 feature value\(s\) refused; the first at line 3, column 'a': 'x' is not a finite number/,
    );
    assert.throws(
      () => loadCsv(csv('nan.csv', 'label,a,b\n0,1,NaN\n'), opts),
      /nan\.csv: 1 feature value\(s\) refused; the first at line 2, column 'b': 'NaN' is not a finite number/,
    );
    assert.throws(
      () => loadCsv(csv('gap.csv', 'label,a,b\n0,,1\n'), opts),
      /gap\.csv: 1 feature value\(s\) refused; the first at line 2, column 'a': '' is not a finite number/,
    );
  });

  it('missing label column: lists the columns', () => {
    assert.throws(
      () => loadCsv(csv('t.csv', 'a,label\n1,0\n'), { labelColumn: 'target' }),
      /t\.csv: no label column 'target' \(columns: a, label\); set data\.labelColumn/,
    );
  });

  it('labels: empty, unknown to the training classes, or an id column', () => {
    assert.throws(() => loadCsv(csv('e.csv', 'a,label\n1,0\n2,\n'), opts), /e\.csv: line 3: empty label/);
    assert.throws(
      () => loadCsv(csv('z.csv', 'a,label\n1,zebra\n'), { ...opts, classNames: ['cat'] }),
      /z\.csv: line 2: label 'zebra' is not one of the training classes \(cat\)/,
    );
    assert.throws(
      () => loadCsv(csv('id.csv', 'a,label\n1,0\n2,123456\n'), opts),
      /id\.csv: integer label 123456 for 2 rows; labels must be class indices 0\.\.K-1/,
    );
  });

  it('feature columns unlike the training file: names the missing and extra ones', () => {
    assert.throws(
      () => loadCsv(csv('test.csv', 'a,label,c\n1,0,2\n'), { ...opts, featureNames: ['a', 'b'] }),
      /test\.csv: feature columns differ from the training file's; missing: b; not in training: c/,
    );
  });

  it('shape of the file: empty, header only, only a label, a repeated column, unreadable', () => {
    assert.throws(() => loadCsv(csv('0.csv', '\n\n'), opts), /0\.csv: empty file/);
    assert.throws(() => loadCsv(csv('h.csv', 'a,label\n'), opts), /h\.csv: a header row but no data rows/);
    assert.throws(
      () => loadCsv(csv('l.csv', 'label\n1\n'), opts),
      /l\.csv: no feature columns besides 'label'/,
    );
    assert.throws(
      () => loadCsv(csv('r.csv', 'a,label,a\n1,0,2\n'), opts),
      /r\.csv: column 'a' appears twice/,
    );
    assert.throws(() => loadCsv(join(scratch, 'none.csv'), opts), /none\.csv: cannot read \(ENOENT\)/);
  });
});
