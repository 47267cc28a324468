// `deeplab lint-dataset`: a clean dataset gives no errors and exit 0; broken masks (values past the
// classes, another size than the image, 0/255 binaries, palette PNGs, a missing mask) are each
// found, named with a fix, and make the exit code 1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { openDataset } from '../../src/data/datasets/index.js';
import { lintSplit } from '../../src/data/lint.js';
import { writeCustom, writeMaskPng, TINY_HEIGHT, TINY_WIDTH } from '../helpers/tiny-datasets.js';
import { cliMain, tempDir } from '../helpers/paths.js';

const run = promisify(execFile);

function config(dir: string, root: string, extra: Record<string, unknown> = {}): string {
  const file = join(dir, 'lint.json');
  writeFileSync(
    file,
    JSON.stringify({
      name: 'lint',
      model: { preset: 'deeplabv3_r18-d8', numClasses: 3, outputStride: { train: 16, eval: 8 } },
      data: {
        dataset: { type: 'custom', root, ...extra },
        train: { scale: [64, 64], crop: [32, 32] },
        test: { scale: null },
      },
      train: { iters: 1, batchSize: 2, optimizer: { type: 'sgd', lr: 0.01 }, checkpointInterval: 1, evalInterval: 1 },
      workDir: join(dir, 'work'),
    }),
  );
  return file;
}

async function lint(file: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [cliMain, 'lint-dataset', file]).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

test('a clean dataset: histograms, no errors, exit 0', async () => {
  const dir = tempDir('lint-ok-');
  const root = await writeCustom(dir, { train: 3, val: 2 });
  const r = await lint(config(dir, root));
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /custom train: 3 masks, raw values \(share of pixels\): /);
  assert.match(r.stdout, /custom val: 2 masks/);
  assert.doesNotMatch(r.stdout, /error:/);
});

test('broken masks are each found and named, with the fix; exit 1', async () => {
  const dir = tempDir('lint-bad-');
  const root = await writeCustom(dir, { train: 4, val: 1 });
  const mask = (stem: string) => join(root, 'ann', `${stem}_mask.png`);
  const w = TINY_WIDTH,
    h = TINY_HEIGHT;
  writeMaskPng(mask('train_plant0'), new Uint8Array(w * h).fill(7), w, h);
  writeMaskPng(mask('train_plant1'), new Uint8Array(20 * 10), 20, 10);
  writeMaskPng(
    mask('train_plant2'),
    new Uint8Array(w * h).map((_, i) => (i % 2 ? 1 : 0)),
    w,
    h,
    [
      [0, 0, 0],
      [0, 200, 0],
    ],
  );
  rmSync(mask('train_plant3'));
  const r = await lint(config(dir, root));
  assert.equal(r.code, 1);
  assert.match(r.stdout, /error: 1 masks or images cannot be read\n\s+.*train_plant3_mask\.png \(no such file/);
  assert.match(
    r.stdout,
    /error: 1 masks differ in size from their image .*\n\s+.*train_plant1_mask\.png is 20x10, its image 60x40/,
  );
  assert.match(r.stdout, /error: 1 masks hold raw values 7 that are not classes 0\.\.2 or 255 \(ignore\)\. Fix: /);
  assert.match(r.stdout, /info: 1 of 4 masks are palette PNGs: read as their indices/);
  assert.match(r.stderr, /3 error\(s\)/);
});

test('0/255 binary masks and a reduceZeroLabel the values contradict are warned about', async () => {
  const dir = tempDir('lint-binary-');
  const root = await writeCustom(dir, { train: 2, val: 1 });
  const w = TINY_WIDTH,
    h = TINY_HEIGHT;
  for (const stem of ['train_plant0', 'train_plant1'])
    writeMaskPng(
      join(root, 'ann', `${stem}_mask.png`),
      new Uint8Array(w * h).map((_, i) => (i % 3 ? 0 : 255)),
      w,
      h,
    );
  const train = openDataset({ type: 'custom', root }, 'train');
  const binary = await lintSplit(train, 2);
  assert.ok(
    binary.findings.some(
      (f) =>
        f.level === 'warning' &&
        /every mask is 0\/255 binary.*Fix: labelMap \{255: 1\} with numClasses 2/.test(f.message),
    ),
  );
  assert.ok(binary.findings.some((f) => /classes never present in train: 1 leaf/.test(f.message)));
  // 1-based labels: values 0..3 for 3 classes, 0 unused as a class
  for (const stem of ['train_plant0', 'train_plant1'])
    writeMaskPng(
      join(root, 'ann', `${stem}_mask.png`),
      new Uint8Array(w * h).map((_, i) => i % 4),
      w,
      h,
    );
  const oneBased = await lintSplit(openDataset({ type: 'custom', root }, 'train'), 3);
  assert.ok(oneBased.findings.some((f) => /labels look 1-based.*Fix: reduceZeroLabel: true/.test(f.message)));
  assert.ok(oneBased.findings.some((f) => f.level === 'error'));
});
