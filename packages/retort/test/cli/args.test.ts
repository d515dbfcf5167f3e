/** The CLI's option parser and top-level flags, as a user types them. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { type OptionSpec, parseOptions } from '../../src/cli/args.js';

const specs: OptionSpec[] = [
  { name: 'set', kind: 'list', help: '' },
  { name: 'runs', kind: 'string', help: '' },
  { name: 'epochs', kind: 'number', help: '' },
  { name: 'force', kind: 'flag', help: '' },
];

describe('parseOptions', () => {
  it('keeps everything after the first = of an inline value', () => {
    const o = parseOptions(['--set=epochs=1', '--set', 'lr=0.1', '--runs=a=b=c'], specs, 'train');
    assert.deepEqual(o['set'], ['epochs=1', 'lr=0.1']);
    assert.equal(o['runs'], 'a=b=c');
  });
  it('takes an empty inline value as given, and numbers inline or separate', () => {
    const o = parseOptions(['--runs=', '--epochs=3'], specs, 'train');
    assert.equal(o['runs'], '');
    assert.equal(o['epochs'], 3);
    assert.equal(parseOptions(['--epochs', '2'], specs, 'train')['epochs'], 2);
  });
  it('refuses a value given to a flag, unknown options and missing values, naming them', () => {
    assert.throws(() => parseOptions(['--force=no'], specs, 'train'), /--force is a flag and takes no value/);
    assert.throws(() => parseOptions(['--forse'], specs, 'train'), /unknown option --forse/);
    assert.throws(() => parseOptions(['--runs'], specs, 'train'), /--runs needs a value/);
    assert.throws(
      () => parseOptions(['--epochs=two'], specs, 'train'),
      /--epochs expects a number, got 'two'/,
    );
  });
});

describe('retort --version', () => {
  it("prints the package's version", () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
    const { version } = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };
    for (const flag of ['--version', '-V']) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), flag], {
        encoding: 'utf8',
      });
      assert.equal(out.trim(), version);
    }
  });
});
