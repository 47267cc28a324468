// Weights no trained network has (NaN/Inf, a negative BatchNorm variance) load with a report that
// names the tensors, and are refused under strictFinite (`--strict-finite`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { findPreset } from '../../src/models/zoo.js';
import { loadForInference } from '../../src/inference/load.js';
import { tempDir } from '../helpers/paths.js';

test('NaN weights and a negative running_var are reported by name, and refused with strictFinite', () => {
  const dir = tempDir('weights-values-');
  torch.manualSeed(0);
  const model = findPreset('deeplabv3_mobilenet_v3_large').build({ aux: false });
  const sd = model.stateDict();
  torch.noGrad(() => {
    sd.get('classifier.4.weight')!.view(-1).slice(0, 0, 3).fill_(NaN);
    sd.get('backbone.0.1.running_var')!.view(-1).slice(0, 0, 1).fill_(-2);
  });
  const file = join(dir, 'diverged.safetensors');
  torch.writeSafetensors(file, sd);
  model.dispose();

  const loaded = loadForInference('deeplabv3_mobilenet_v3_large', { weights: file, fast: false });
  assert.equal(loaded.weights!.suspicious.length, 2);
  assert.match(
    loaded.weights!.suspicious[0],
    /1 tensors hold NaN or Inf values \(3 NaN, 0 Inf\): classifier\.4\.weight/,
  );
  assert.match(
    loaded.weights!.suspicious[1],
    /1 BatchNorm running_var tensors hold negative variances \(min -2\): backbone\.0\.1\.running_var/,
  );
  loaded.model.dispose();

  const before = torch.liveTensors();
  assert.throws(
    () => loadForInference('deeplabv3_mobilenet_v3_large', { weights: file, strictFinite: true }),
    (e: Error) => e.message.startsWith(file) && /classifier\.4\.weight.*refused: --strict-finite/.test(e.message),
  );
  assert.equal(torch.liveTensors(), before, 'a refused load leaks nothing');
});
