/**
 * Retort as a user gets it: both workspace packages packed (`npm pack`, which compiles them), the
 * tarballs installed into a fresh project (their dependencies from the npm registry, here mostly
 * from npm's cache; the addon built by the install step), then a plain-`node` script there that
 * trains a teacher and distils a student through the public API on the native backend, and the
 * `retort` command run from the install.
 *
 * The install builds the addon for this CPU's x86-64 level only (RETORT_ISAS): the three-level
 * default build is the same Makefile run three times and would add two minutes to the suite.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { nativeIsa } from 'retort-kd-native';

const here = dirname(fileURLToPath(import.meta.url));
const repo = join(here, '..', '..', '..', '..');
const tmp = mkdtempSync(join(tmpdir(), 'retort-pack-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// The consumer sees none of the workspace: no source condition, no tsx, its own folder.
const env: NodeJS.ProcessEnv = { ...process.env, RETORT_QUIET: '0' };
delete env['NODE_OPTIONS'];
if (nativeIsa !== null && nativeIsa !== 'generic') env['RETORT_ISAS'] = nativeIsa;

function npm(args: string[], cwd: string): string {
  const r = spawnSync('npm', args, { cwd, env, encoding: 'utf8', maxBuffer: 64 * 1024 ** 2 });
  assert.equal(r.status, 0, `npm ${args.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  return `${r.stdout}${r.stderr}`;
}

describe('packed packages installed into a fresh project', { timeout: 600_000 }, () => {
  const packs = join(tmp, 'packs');
  const project = join(tmp, 'project');

  it('packs both packages with compiled JavaScript, types and licence, without sources', () => {
    execFileSync('mkdir', ['-p', packs, project]);
    npm(['pack', '-w', 'retort-kd-native', '-w', 'retort-kd', '--pack-destination', packs, '--silent'], repo);
    const tarballs = readdirSync(packs).sort();
    assert.deepEqual(tarballs, ['retort-kd-0.1.0.tgz', 'retort-kd-native-0.1.0.tgz']);
    const list = (t: string) =>
      execFileSync('tar', ['-tzf', join(packs, t)], { encoding: 'utf8' }).split('\n');
    const kd = list('retort-kd-0.1.0.tgz');
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'dist/cli/main.js', 'bin/retort.js', 'LICENSE'])
      assert.ok(kd.includes(`package/${f}`), `retort-kd tarball lacks ${f}`);
    assert.ok(
      !kd.some((f) => f.endsWith('.ts') && !f.endsWith('.d.ts')),
      'retort-kd ships TypeScript sources',
    );
    const nat = list('retort-kd-native-0.1.0.tgz');
    for (const f of ['dist/index.js', 'dist/index.d.ts', 'Makefile', 'scripts/install.mjs', 'LICENSE'])
      assert.ok(nat.includes(`package/${f}`), `retort-kd-native tarball lacks ${f}`);
    assert.ok(!nat.some((f) => f.includes('/build/')), 'retort-kd-native ships a prebuilt addon');
    // npm pack's postpack step removes the compiled output again: the checkout keeps no dist/.
    assert.ok(!existsSync(join(repo, 'packages', 'retort', 'dist')));
  });

  it('installs from the tarballs, building the addon, and runs the consumer script with plain node', () => {
    writeFileSync(
      join(project, 'package.json'),
      `${JSON.stringify({ name: 'consumer', private: true, type: 'module', allowScripts: { 'retort-kd-native': true } }, null, 2)}\n`,
    );
    const out = npm(
      [
        'install',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--foreground-scripts',
        join(packs, 'retort-kd-native-0.1.0.tgz'),
        join(packs, 'retort-kd-0.1.0.tgz'),
      ],
      project,
    );
    assert.match(out, /retort-kd-native: addon built in \d+ s/);
    assert.ok(!existsSync(join(project, 'node_modules', 'tsx')), 'tsx was installed for the consumer');
    assert.ok(
      !existsSync(join(project, 'node_modules', 'onnxruntime-node')),
      'onnxruntime-node was installed',
    );
    copyFileSync(join(here, 'consumer.mjs'), join(project, 'consumer.mjs'));
    const r = spawnSync(process.execPath, ['consumer.mjs', join(project, 'runs')], {
      cwd: project,
      env,
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `consumer.mjs failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^native backend: addon x86-64-v\d|^native backend: addon generic/m);
    const top1 = (who: string) =>
      Number(new RegExp(`^${who} \\S+: \\d+ params, test top-1 ([\\d.]+)%`, 'm').exec(r.stdout)?.[1]);
    // 10 classes (chance 10%); 3 epochs on 512 images reach well above that.
    assert.ok(top1('teacher') > 40, r.stdout);
    assert.ok(top1('student') > 40, r.stdout);
    assert.match(r.stdout, /^reloaded student: test top-1/m);
    if (process.env['RETORT_SHOW_CONSUMER'] === '1') process.stderr.write(r.stdout);
  });

  it('runs the retort command of the install with plain node', () => {
    const bin = join(project, 'node_modules', '.bin', 'retort');
    const version = execFileSync(bin, ['--version'], { cwd: project, env, encoding: 'utf8' });
    assert.equal(version.trim(), '0.1.0');
    const help = execFileSync(bin, ['--help'], { cwd: project, env, encoding: 'utf8' });
    assert.match(help, /^usage: retort <command>/);
  });
});
