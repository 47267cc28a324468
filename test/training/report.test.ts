// The training report: PNG charts that decode, and a summary that matches the log.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeReport } from '../../src/training/report.js';
import { tempDir } from '../helpers/paths.js';

test('report charts decode as PNGs and the summary matches the log', async () => {
  const dir = tempDir('report-');
  const lines = [];
  for (let i = 1; i <= 20; i++)
    lines.push({
      iter: i,
      lr: 0.01 * (1 - i / 20) ** 0.9,
      loss: 2 / i,
      decodeLoss: 1.5 / i,
      auxLoss: 1.25 / i,
      time: 0.2,
      dataTime: 0.002,
    });
  lines.push({ iter: 20, eval: { mIoU: 42.5, aAcc: 80, mAcc: 50, perClassIoU: [90, 10, NaN] } });
  writeFileSync(join(dir, 'log.jsonl'), lines.map((l) => JSON.stringify(l)).join('\n') + '\n');
  const r = await writeReport(dir, ['background', 'cat', 'dog']);
  assert.equal(r.charts.length, 4);
  for (const f of r.charts) {
    const m = await sharp(f).metadata();
    assert.equal(m.format, 'png');
    assert.equal(m.width, 720);
  }
  const s = JSON.parse(readFileSync(r.summary, 'utf8'));
  assert.equal(s.iterations, 20);
  assert.equal(s.finalLoss, 0.1);
  assert.ok(Math.abs(s.dataWaitShare - 0.01) < 1e-9);
  assert.equal(s.evaluations[0].eval.mIoU, 42.5);
});
