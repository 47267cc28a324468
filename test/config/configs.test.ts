// configs/: every file parses, every seed row has exactly one config, the files are what
// scripts/make-configs.ts writes, every preset exists; loadConfig's errors name file and key.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { ConfigError, loadConfig, parseConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/schema.js';
import { PRESETS } from '../../src/models/zoo.js';
import {
  configText,
  generateConfigs,
  parseSeedText,
  readmeText,
  SEED_FILE,
  SEED_FIXTURE,
  SEED_ROWS,
  type SeedRow,
} from '../../scripts/make-configs.js';
import { repoRoot, tempDir } from '../helpers/paths.js';

const CONFIGS = join(repoRoot, 'configs');

function jsonFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return jsonFiles(p);
    return /\.(json|ya?ml)$/.test(e.name) ? [p] : [];
  });
}

const files = jsonFiles(CONFIGS);
const loaded = new Map<string, Config>(files.map((f) => [relative(CONFIGS, f), loadConfig(f)]));

/** The seed rows: parsed from the seed text when this checkout has it, else the committed copy. */
function seedRows(): { rows: SeedRow[]; from: string } {
  const seed = join(repoRoot, SEED_FILE);
  if (existsSync(seed)) return { rows: parseSeedText(readFileSync(seed, 'utf8')), from: SEED_FILE };
  return { rows: JSON.parse(readFileSync(join(repoRoot, SEED_FIXTURE), 'utf8')) as SeedRow[], from: SEED_FIXTURE };
}

// The seed tables' datasets as the config schema names them (independent of the generator's table).
const DATASET_TYPE: Record<string, string> = {
  cityscapes: 'cityscapes',
  ade20k: 'ade20k',
  voc12aug: 'voc-aug',
  'pascal-context': 'pascal-context',
  'pascal-context-59': 'pascal-context-59',
  'coco-stuff10k': 'coco-stuff10k',
  'coco-stuff164k': 'coco-stuff164k',
};

test('every file in configs/ parses', () => {
  assert.ok(files.length >= 41, `only ${files.length} config files`);
  for (const f of files) assert.doesNotThrow(() => parseConfig(JSON.parse(readFileSync(f, 'utf8')), f), f);
});

test('every config is named after its file and works in work_dirs/<name>', () => {
  for (const [path, c] of loaded) {
    assert.equal(`${c.name}.json`, path.split('/').pop(), path);
    assert.equal(c.workDir, `work_dirs/${c.name}`, path);
    assert.equal(c.train.checkpointInterval > 0 && c.train.evalInterval > 0, true);
  }
});

test("the seed rows: 41 rows in seven tables, the generator's table matches them", () => {
  const { rows, from } = seedRows();
  assert.equal(rows.length, 41, from);
  const counts = new Map<string, number>();
  for (const r of rows) counts.set(r.table, (counts.get(r.table) ?? 0) + 1);
  assert.deepEqual(Object.fromEntries(counts), {
    cityscapes: 19,
    ade20k: 4,
    voc12aug: 4,
    'pascal-context': 2,
    'pascal-context-59': 2,
    'coco-stuff10k': 4,
    'coco-stuff164k': 6,
  });
  assert.deepEqual(rows, SEED_ROWS, `scripts/make-configs.ts SEED_ROWS differs from ${from}`);
  // With the seed at hand, the committed copy must be what it says.
  if (from === SEED_FILE) {
    const fixture = JSON.parse(readFileSync(join(repoRoot, SEED_FIXTURE), 'utf8')) as SeedRow[];
    assert.deepEqual(fixture, rows, `${SEED_FIXTURE} is stale: run node dist/scripts/make-configs.js`);
  }
});

test('every seed row has exactly one config with its dataset, preset, crop, iters and precision', () => {
  const { rows } = seedRows();
  const v3 = [...loaded].filter(([p]) => p.startsWith('deeplabv3/'));
  const used = new Set<string>();
  for (const row of rows) {
    const preset = `deeplabv3_${row.backbone.toLowerCase().replace(/^r-/, 'r')}`;
    const [h, w] = row.crop.split('x').map(Number);
    const precision = row.method.includes('FP16') ? 'bf16' : 'fp32';
    const hits = v3.filter(
      ([, c]) =>
        c.data.dataset.type === DATASET_TYPE[row.table] &&
        c.model.preset === preset &&
        c.data.train.crop[0] === h &&
        c.data.train.crop[1] === w &&
        c.train.iters === row.iters &&
        c.train.precision === precision,
    );
    const what = `${row.table} ${row.method} ${row.backbone} ${row.crop} ${row.iters}`;
    assert.equal(hits.length, 1, `${what}: ${hits.length} configs (${hits.map(([p]) => p).join(', ')})`);
    const [path, c] = hits[0];
    used.add(path);
    assert.equal(c.reference?.mIoU, row.mIoU, `${what}: reference mIoU`);
    assert.equal(c.reference?.mIoUmsFlip, row.mIoUmsFlip, `${what}: reference ms+flip`);
    const d = row.backbone.includes('D16') ? 16 : 8;
    assert.deepEqual(c.model.outputStride, { train: d, eval: d }, `${what}: output stride`);
    assert.equal(c.train.batchSize, row.table === 'cityscapes' ? 8 : 16, `${what}: batch`);
    assert.equal(c.train.checkpointInterval, row.iters / 10);
    assert.equal(c.train.evalInterval, row.iters / 10);
    assert.equal(c.train.loss.ohem !== undefined, row.backbone.includes('MG124'), `${what}: OHEM`);
    assert.ok(c.name.includes(`-${row.iters / 1000}k_`), `${what}: name ${c.name}`);
  }
  assert.deepEqual(
    v3.map(([p]) => p).filter((p) => !used.has(p)),
    [],
    'configs/deeplabv3/ files without a seed row',
  );
});

test('mmseg schedule and dataset values', () => {
  for (const [path, c] of loaded) {
    if (!path.startsWith('deeplabv3')) continue;
    const pc = c.data.dataset.type.startsWith('pascal-context');
    assert.deepEqual(
      c.train.optimizer,
      { type: 'sgd', lr: pc ? 0.004 : 0.01, momentum: 0.9, weightDecay: pc ? 1e-4 : 5e-4, nesterov: false },
      path,
    );
    assert.equal(c.train.schedule.minLr, 1e-4, path);
    assert.equal(c.train.loss.avgNonIgnore, false, path);
    assert.equal(c.train.loss.auxWeight, 0.4, path);
    assert.equal(c.train.accumulate, 1, path);
    assert.equal(c.evaluation.metric, 'mmseg', path);
    const slide = pc || c.data.train.crop[0] === 769;
    assert.equal(c.evaluation.mode, slide ? 'slide' : 'whole', path);
    if (pc)
      assert.deepEqual(
        [c.evaluation.crop, c.evaluation.stride],
        [
          [480, 480],
          [320, 320],
        ],
        path,
      );
    if (c.data.train.crop[0] === 769)
      assert.deepEqual(
        [c.evaluation.crop, c.evaluation.stride, c.data.train.scale],
        [
          [769, 769],
          [513, 513],
          [2049, 1025],
        ],
        path,
      );
    const classes: Record<string, number> = {
      cityscapes: 19,
      ade20k: 150,
      'voc-aug': 21,
      'pascal-context': 60,
      'pascal-context-59': 59,
      'coco-stuff10k': 171,
      'coco-stuff164k': 171,
    };
    assert.equal(c.model.numClasses, classes[c.data.dataset.type], path);
  }
});

test('the DeepLab-v2 and torchvision recipes', () => {
  const v2 = loaded.get('deeplabv2/deeplabv2_resnet101_voc12aug-321x321.json');
  assert.ok(v2);
  assert.deepEqual(v2.train.optimizer, { type: 'sgd', lr: 2.5e-4, momentum: 0.9, weightDecay: 5e-4, nesterov: false });
  assert.deepEqual(v2.train.lrMult, [{ prefix: 'layer5.', mult: 10 }]);
  assert.equal(v2.train.iters, 20000);
  assert.equal(v2.train.batchSize, 10);
  assert.deepEqual(v2.data.train.crop, [321, 321]);
  assert.equal(v2.train.schedule.minLr, 0);
  assert.equal(v2.model.batchNorm, 'frozen');
  assert.equal(v2.train.loss.avgNonIgnore, true);
  assert.equal(v2.evaluation.metric, 'v2');

  const tv = loaded.get('torchvision/deeplabv3_resnet50_voc12aug.json');
  assert.ok(tv);
  assert.deepEqual(tv.train.optimizer, { type: 'sgd', lr: 0.02, momentum: 0.9, weightDecay: 1e-4, nesterov: false });
  assert.equal(tv.train.batchSize, 32);
  assert.equal(tv.train.iters, 30 * Math.floor(10582 / 32));
  assert.equal(tv.train.loss.auxWeight, 0.5);
  assert.deepEqual(tv.train.lrMult, [{ prefix: 'aux_classifier.', mult: 10 }]);
  assert.equal(tv.train.schedule.minLr, 0);
  assert.equal(tv.evaluation.metric, 'torchvision');
});

test('every preset named in configs/ exists in the zoo', () => {
  const names = new Set(PRESETS.map((p) => p.name));
  for (const [path, c] of loaded) assert.ok(names.has(c.model.preset), `${path}: unknown preset ${c.model.preset}`);
});

test('the committed files and README are what scripts/make-configs.ts writes', () => {
  const all = generateConfigs();
  assert.deepEqual(
    all.map((g) => g.path).sort(),
    [...loaded.keys()].sort(),
    'configs/ differs from the generator: run node dist/scripts/make-configs.js',
  );
  for (const g of all)
    assert.equal(readFileSync(join(CONFIGS, g.path), 'utf8'), configText(g.config), `${g.path} is stale`);
  assert.equal(readFileSync(join(CONFIGS, 'README.md'), 'utf8'), readmeText(all), 'configs/README.md is stale');
});

// --- loadConfig errors and --set ----------------------------------------------------------------

const BASE = join(CONFIGS, 'deeplabv3', 'deeplabv3_r50-d8_4xb2-40k_cityscapes-512x1024.json');

function withTemp(edit: (raw: Record<string, any>) => void, run: (file: string) => void): void {
  const dir = tempDir('deeplab-config-');
  try {
    const raw = JSON.parse(readFileSync(BASE, 'utf8')) as Record<string, any>;
    edit(raw);
    const file = join(dir, 'edited.json');
    writeFileSync(file, JSON.stringify(raw));
    run(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    return e;
  }
  assert.fail('expected a ConfigError');
}

test('a mistyped key is an error naming the file and the key', () => {
  withTemp(
    (raw) => {
      raw.train.optimiser = raw.train.optimizer;
      delete raw.train.optimizer;
    },
    (file) => {
      const e = configError(() => loadConfig(file));
      assert.equal(e.file, file);
      assert.match(e.message, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:`));
      assert.match(e.message, /unknown key "train\.optimiser"/);
    },
  );
});

test('a wrong type is an error naming the file and the key', () => {
  withTemp(
    (raw) => {
      raw.train.iters = '40k';
    },
    (file) => {
      const e = configError(() => loadConfig(file));
      assert.equal(e.file, file);
      assert.ok(
        e.problems.some((p) => p.startsWith('train.iters:')),
        e.message,
      );
    },
  );
});

test('a bad --set path is an error naming the file and the key', () => {
  // a key the schema does not have
  let e = configError(() => loadConfig(BASE, ['train.optimizer.lrr=0.1']));
  assert.equal(e.file, BASE);
  assert.match(e.message, /train\.optimizer\.lrr/);
  e = configError(() => loadConfig(BASE, ['train.optimiser.lr=0.1']));
  assert.match(e.message, /unknown key "train\.optimiser"/);
  // a path through a value that is not an object
  e = configError(() => loadConfig(BASE, ['train.iters.max=5']));
  assert.equal(e.file, BASE);
  assert.match(e.message, /train\.iters/);
  // a value of the wrong type through --set
  e = configError(() => loadConfig(BASE, ['train.iters="40k"']));
  assert.ok(
    e.problems.some((p) => p.startsWith('train.iters:')),
    e.message,
  );
  // not key=value
  e = configError(() => loadConfig(BASE, ['train.iters']));
  assert.match(e.message, /key=value/);
});

test('--set overrides apply', () => {
  const base = loadConfig(BASE);
  const c = loadConfig(BASE, [
    'train.optimizer.lr=0.02',
    'data.train.crop=[256,256]',
    'data.dataset.root=/datasets/cityscapes',
    'train.batchSize=2',
    'train.accumulate=4',
  ]);
  assert.equal(c.train.optimizer.lr, 0.02);
  assert.deepEqual(c.data.train.crop, [256, 256]);
  assert.equal(c.data.dataset.root, '/datasets/cityscapes');
  assert.equal(c.train.batchSize, 2);
  assert.equal(c.train.accumulate, 4);
  // nothing else moved
  assert.deepEqual(c.model, base.model);
  assert.deepEqual(c.evaluation, base.evaluation);
  assert.deepEqual({ ...c.train.optimizer, lr: base.train.optimizer.lr }, base.train.optimizer);
  assert.deepEqual({ ...c.data.train, crop: base.data.train.crop }, base.data.train);
  assert.equal(c.train.iters, base.train.iters);
  assert.equal(loadConfig(BASE, ['data.train.crop[1]=640']).data.train.crop[1], 640);
});
