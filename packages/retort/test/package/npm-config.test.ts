/** npm commands in the repository print no warning about the project's own npm settings. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', '..');

it('an npm command in the repo warns about no unknown project config', () => {
  const r = spawnSync('npm', ['pkg', 'get', 'name'], { cwd: repo, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), '"retort-monorepo"');
  // An .npmrc key npm does not know (such as onnxruntime-node-install) is warned about on every
  // command; the set-up passes that setting as an environment variable instead.
  assert.doesNotMatch(r.stderr, /Unknown (project|user|global|env) config/);
});
