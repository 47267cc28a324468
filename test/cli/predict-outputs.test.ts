// predict's outputs never overwrite each other (inputs of the same name from two folders, or with
// two extensions), an output folder that cannot be made is an error at once (not a hang), and a
// folder given as an image is reported as one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import sharp from 'sharp';
import { outputStems } from '../../src/cli/predict.js';
import { ensureDir } from '../../src/data/output-dir.js';
import { cliMain, tempDir } from '../helpers/paths.js';

const run = promisify(execFile);

async function predict(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return run(process.execPath, [cliMain, 'predict', '--model', 'deeplabv3_mobilenet_v3_large', ...args], {
    timeout: 120_000,
  }).then(
    (r) => ({ code: 0, ...r }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

test('outputStems: one name per input, later duplicates numbered in argument order', () => {
  assert.deepEqual(outputStems(['d1/x.png', 'd2/x.png', 'one.png', 'one.jpg']), ['x', 'x-2', 'one', 'one-2']);
  assert.deepEqual(
    outputStems(['a.png', 'b/a.png', 'a-2.png']),
    ['a', 'a-3', 'a-2'],
    'a name another input has is skipped',
  );
  assert.deepEqual(outputStems(['a.png', 'b.png']), ['a', 'b']);
});

test('ensureDir makes nested folders, and fails at once, naming the folder, where it cannot', () => {
  const dir = tempDir('outdir-');
  assert.equal(ensureDir(join(dir, 'a/b/c')), join(dir, 'a/b/c'));
  assert.ok(existsSync(join(dir, 'a/b/c')));
  writeFileSync(join(dir, 'file'), 'x');
  assert.throws(() => ensureDir(join(dir, 'file/sub')), /output folder .*file\/sub: .*file exists and is not a folder/);
  assert.throws(
    () => ensureDir('/proc/deeplab-test/out'),
    /output folder \/proc\/deeplab-test\/out: cannot create \/proc\/deeplab-test/,
  );
});

test('predict: four inputs with two names give four output sets and four logits files', async () => {
  const dir = tempDir('predict-names-');
  mkdirSync(join(dir, 'd1'));
  mkdirSync(join(dir, 'd2'));
  const img = (seed: number) => sharp(Buffer.alloc(24 * 16 * 3, seed), { raw: { width: 24, height: 16, channels: 3 } });
  await img(10).png().toFile(join(dir, 'd1/x.png'));
  await img(80).png().toFile(join(dir, 'd2/x.png'));
  await img(150).png().toFile(join(dir, 'one.png'));
  await img(220).jpeg().toFile(join(dir, 'one.jpg'));
  const out = join(dir, 'out');
  const inputs = ['d1/x.png', 'd2/x.png', 'one.png', 'one.jpg'].map((f) => join(dir, f));
  const r = await predict([...inputs, '--out', out, '--save-logits', join(out, 'logits.npy')]);
  assert.equal(r.code, 0, r.stderr);
  const files = readdirSync(out).sort();
  for (const stem of ['x', 'x-2', 'one', 'one-2']) {
    for (const f of [`${stem}_labels.png`, `${stem}_color.png`, `${stem}_overlay.jpg`, `logits.${stem}.npy`])
      assert.ok(files.includes(f), `missing ${f} in ${files.join(', ')}`);
  }
  assert.equal(files.length, 16);
});

test('predict: an output folder that cannot be made fails at once; a folder as an image is named as one', async () => {
  const dir = tempDir('predict-bad-');
  const png = join(dir, 'a.png');
  await sharp(Buffer.alloc(8 * 8 * 3, 100), { raw: { width: 8, height: 8, channels: 3 } })
    .png()
    .toFile(png);
  const proc = await predict([png, '--out', '/proc/deeplab-x']);
  assert.notEqual(proc.code, 0);
  assert.match(proc.stderr, /output folder \/proc\/deeplab-x: cannot create \/proc\/deeplab-x/);
  const folder = join(dir, 'images');
  mkdirSync(folder);
  const r = await predict([png, folder, '--out', join(dir, 'out')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, new RegExp(`${folder}: is a folder, not an image`));
  assert.ok(existsSync(join(dir, 'out', 'a_labels.png')), 'the good image was still written');
});
