/**
 * `retort search` end to end on configs/fashion-mnist/search/tiny.yaml (plain CNNs of 9 candidates,
 * labels only, 1 proxy epoch on 256 images, population 3 + 2 cycles, two local workers): through
 * the library, stopped after its first batch and resumed; once through the CLI, uninterrupted, whose
 * history the resumed one must equal. The latency table is filled by a fake measuring function (no
 * kernel is timed): the library gets it injected, the CLI finds it already in the table file at
 * this machine's fingerprint. Also: a dry run, an unknown key, constraints nothing meets.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import 'retort-kd-native';
import * as tf from '@tensorflow/tfjs-core';
import { experimentSchema } from '../../src/config/experiment.js';
import { loadExperiment, readConfigFile } from '../../src/config/load.js';
import { buildConfiguredModel } from '../../src/models/configured.js';
import { runExperiment } from '../../src/run/experiment.js';
import { search } from '../../src/run/search.js';
import { LatencyTable, machineFingerprint } from '../../src/search/latency-table.js';
import type { HistoryEntry } from '../../src/search/search-history.js';
import { searchSpace } from '../../src/search/space-config.js';
import { bin, FP, fakeMeasure, TINY } from './search-fixtures.js';

const scratch = mkdtempSync(join(tmpdir(), 'retort-search-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** What a history must agree on between two runs of the same search. */
const essence = (h: readonly HistoryEntry[]) =>
  h.map((e) => ({ key: e.key, cost: e.cost, accuracy: e.accuracy, rung: e.rung, parent: e.parent }));

before(async () => {
  await tf.setBackend('native');
});

describe('retort search', () => {
  const libRuns = join(scratch, 'lib-runs');
  let resumed: readonly HistoryEntry[] = [];

  it('stops after a batch, resumes to the end; writes state, the Pareto files and a feasible best.yaml', async () => {
    const stop = new AbortController();
    const lines: string[] = [];
    const common = { runsRoot: libRuns, local: 2, measure: fakeMeasure, fingerprint: FP };
    const first = await search(TINY, {
      ...common,
      signal: stop.signal,
      log: (l) => {
        lines.push(l);
        if (/^search: candidate 3 of 5 /.test(l)) stop.abort();
      },
    });
    assert.equal(first.done, false, lines.join('\n'));
    assert.equal(first.history.length, 2, 'the batch cut short is not in the result');
    const dir = join(libRuns, 'fmnist-search-tiny', 'search');
    const saved = JSON.parse(readFileSync(join(dir, 'state.json'), 'utf8')) as { history: unknown[] };
    assert.equal(saved.history.length, 2, 'the state of the last whole batch');
    await assert.rejects(search(TINY, common), /state\.json exists: --resume continues/);
    const more: string[] = [];
    const r = await search(TINY, { ...common, resume: true, log: (l) => more.push(l) });
    assert.equal(r.done, true, more.join('\n'));
    assert.equal(r.history.length, 5);
    assert.match(
      more.join('\n'),
      /search: candidate 5 of 5 plain-cnn-c\d+_\d+: [\d.]+ ms, [\d,]+ params, [\d,]+ MACs; test top-1 [\d.]+%; elapsed/,
    );
    resumed = r.history;
    for (const f of ['state.json', 'pareto.md', 'pareto.json', 'pareto.svg', 'best.yaml'])
      assert.ok(existsSync(join(dir, f)), f);
    const md = readFileSync(join(dir, 'pareto.md'), 'utf8');
    assert.match(
      md,
      /\| key \| accuracy \(%\) \| latency \(ms\) \| params \| MACs \| feasible \| on the front \|/,
    );
    assert.match(md, /search cost: \d+ s wall time, 5 evaluations/);
    assert.match(readFileSync(join(dir, 'pareto.svg'), 'utf8'), /^<svg/);
    const json = JSON.parse(readFileSync(join(dir, 'pareto.json'), 'utf8')) as {
      front: string[];
      rows: unknown[];
    };
    assert.equal(json.rows.length, 5);
    assert.ok(json.front.length >= 1);
    // best.yaml: the recipe with the best candidate, ready for retort distill.
    assert.match(
      readFileSync(join(dir, 'best.yaml'), 'utf8'),
      /^# .*retort train <this file>/m,
      'no teacher: train',
    );
    const exp = loadExperiment(join(dir, 'best.yaml'));
    assert.equal(exp.search, undefined);
    assert.equal(exp.model.space, 'plain-cnn');
    assert.deepEqual(exp.model.candidate, r.best!.candidate);
    assert.equal(exp.name, `fmnist-search-tiny-${r.best!.key}`);
    assert.equal(exp.epochs, 2, "the recipe's epochs, not the proxy's");
    assert.equal(exp.data.trainLimit, undefined, "the recipe's data, not the proxy's");
    const model = await buildConfiguredModel(exp.model, { inputShape: [28, 28, 1], numClasses: 10 });
    assert.equal(model.countParams(), r.best!.cost.params);
    assert.ok(model.countParams() <= 1200, 'feasible');
    model.dispose();
  });

  it('the CLI, uninterrupted, finds the same history; its latency table was filled before (reused)', async () => {
    const runs = join(scratch, 'cli-runs');
    // This machine's table, filled with the fake timings for every candidate of the space.
    const table = await LatencyTable.open(join(runs, '.cache', 'search', 'latency-table.json'), {
      fingerprint: await machineFingerprint(),
    });
    const space = searchSpace({
      name: 'plain-cnn',
      stages: 2,
      layers: { min: 1, max: 1 },
      channels: [4, 8, 12],
    });
    const models = [4, 8, 12].flatMap((a) =>
      [4, 8, 12].map((b) =>
        space.build({ channels: [[a], [b]] }, { inputShape: [28, 28, 1], numClasses: 10 }),
      ),
    );
    await table.ensure(models, [{ runtime: 'native', batch: 1 }], fakeMeasure);
    for (const m of models) m.dispose();
    const cli = (...args: string[]) =>
      spawnSync(process.execPath, [bin, 'search', TINY, '--runs', runs, ...args], {
        encoding: 'utf8',
        env: { ...process.env, RETORT_QUIET: '1' },
      });
    const dry = cli('--dry-run');
    assert.equal(dry.status, 0, dry.stderr);
    assert.match(dry.stdout, /^space: 9 candidates; latency native batch 1$/m);
    assert.match(dry.stdout, /^constraints: params <= 1,200$/m);
    assert.equal(dry.stdout.match(/^\| plain-cnn-c/gm)?.length, 3, dry.stdout);
    assert.ok(!existsSync(join(runs, 'fmnist-search-tiny')), 'a dry run trains nothing and keeps no state');
    const r = cli('--local', '2');
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /unit timings measured/, 'the table had every unit');
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { done: boolean; evaluations: number };
    assert.equal(out.done, true);
    assert.equal(out.evaluations, 5);
    const state = JSON.parse(
      readFileSync(join(runs, 'fmnist-search-tiny', 'search', 'state.json'), 'utf8'),
    ) as { history: HistoryEntry[] };
    assert.deepEqual(essence(state.history), essence(resumed));
    const again = cli('--local', '2');
    assert.equal(again.status, 1);
    assert.match(again.stderr, /state\.json exists: --resume continues that search, --force starts it again/);
  });

  it('a resumed search keeps the latency bound it started with when the table changed in between', async () => {
    const runs = join(scratch, 'bound-runs');
    const raw = loadRaw();
    const cfg = {
      ...raw,
      name: 'kept-bound',
      search: { ...(raw['search'] as object), constraints: { params: 1200, latencyOf: 'resnet8' } },
    };
    const stop = new AbortController();
    const common = { runsRoot: runs, local: 2, fingerprint: FP };
    const first = await search(cfg, {
      ...common,
      measure: fakeMeasure,
      signal: stop.signal,
      log: (l) => {
        if (/^search: candidate 3 of 5 /.test(l)) stop.abort();
      },
    });
    assert.equal(first.done, false);
    const bound = first.constraints.maxLatencyMs!;
    assert.ok(bound > 0);
    const statePath = join(runs, 'kept-bound', 'search', 'state.json');
    const saved = JSON.parse(readFileSync(statePath, 'utf8')) as { retort: { constraints: unknown } };
    assert.deepEqual(saved.retort.constraints, { maxLatencyMs: bound, maxParams: 1200 });
    // The table is timed again, twice as slow: resnet8's prediction, the bound, doubles.
    rmSync(join(runs, '.cache', 'search', 'latency-table.json'));
    const slower: typeof fakeMeasure = async (a) => 2 * (await fakeMeasure(a));
    const lines: string[] = [];
    const r = await search(cfg, { ...common, measure: slower, resume: true, log: (l) => lines.push(l) });
    assert.equal(r.done, true, lines.join('\n'));
    assert.equal(r.constraints.maxLatencyMs, bound, 'the bound of the first invocation');
    assert.equal(r.reference?.predictedMs, bound);
    assert.match(
      lines.join('\n'),
      /the bounds are now latency <= [\d.]+ ms, params <= 1,200; the resumed search keeps those it started with .*latency <= [\d.]+ ms/,
    );
    const after = JSON.parse(readFileSync(statePath, 'utf8')) as { retort: { constraints: unknown } };
    assert.deepEqual(after.retort.constraints, { maxLatencyMs: bound, maxParams: 1200 });
  });

  it('refuses an unknown key of the search section, and constraints no candidate meets', async () => {
    const base = loadRaw();
    // Training the search file itself would share <runs>/<name>/ with the search's files.
    await assert.rejects(
      runExperiment(experimentSchema.parse({ ...base, model: { name: 'lightnn' } }), 'tiny.yaml', {
        runsRoot: libRuns,
        log: () => {},
      }),
      /tiny\.yaml: has a search section, so it is for retort search/,
    );
    assert.equal(existsSync(join(libRuns, String(base['name']), 'config.json')), false);
    await assert.rejects(
      search(
        { ...base, search: { ...(base['search'] as object), bogus: 1 } },
        { runsRoot: libRuns, log: () => {} },
      ),
      /unknown key 'bogus' at search \(valid keys: space, strategy, constraints, latency, proxy\)/,
    );
    await assert.rejects(
      search(
        {
          ...base,
          name: 'impossible',
          search: { ...(base['search'] as object), constraints: { params: 100 } },
        },
        { runsRoot: libRuns, measure: fakeMeasure, fingerprint: FP, log: () => {} },
      ),
      /no candidate of space 'plain-cnn' met the constraints in 1000 draws: maxParams = 100 rejected \d+ \(lowest params seen: 262\)/,
    );
  });
});

function loadRaw(): Record<string, unknown> {
  return readConfigFile(TINY) as Record<string, unknown>;
}
