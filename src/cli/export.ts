// `deeplab export --format onnx`: a preset with its weights as an ONNX model (src/export).
import { Command, Option } from 'commander';
import { existsSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import * as torch from '../torch/index.js';
import {
  exportPresetOnnx,
  writeOnnxFile,
  DYNAMIC_TRACE_SIZES,
  DEFAULT_SIZE,
  INPUT_NAME,
  OUTPUT_NAME,
} from '../export/export.js';
import { OPSET, type OnnxPrecision } from '../export/onnx-model.js';
import { parseIntOption, parseOutputStride, parseSizeOption } from './options.js';
import type { OutputStride } from '../models/backbone.js';

interface ExportOptions {
  format: 'onnx';
  model: string;
  weights?: string;
  randomWeights?: boolean;
  out: string;
  size?: [number, number];
  dynamic?: boolean;
  precision: OnnxPrecision;
  numClasses?: number;
  os?: OutputStride;
  alignCorners?: boolean;
}

export function exportCommand(): Command {
  return new Command('export')
    .description('export a preset with its weights as an ONNX model (opset 17, batch norms folded)')
    .addOption(new Option('--format <format>', 'model format').choices(['onnx']).default('onnx'))
    .requiredOption('-m, --model <preset>', 'model preset (see `deeplab models`)')
    .option('-w, --weights <file>', ".pth or .safetensors checkpoint in the preset's key layout")
    .option('--random-weights', 'no checkpoint: seeded random weights (a smoke test, not a model)')
    .requiredOption('-o, --out <file.onnx>', 'the ONNX file to write')
    .option('--size <HxW>', `fixed input size (default ${DEFAULT_SIZE.join('x')}; batch 1)`, parseSizeOption)
    .option('--dynamic', 'batch, height and width symbolic')
    .addOption(
      new Option('--precision <p>', 'fp16: float16 weights and activations, float32 input and output')
        .choices(['fp32', 'fp16'])
        .default('fp32'),
    )
    .option('--num-classes <n>', "classes (default: the preset's)", parseIntOption)
    .option('--os <stride>', "output stride 8, 16 or 32 (default: the preset's)", parseOutputStride)
    .option('--align-corners', "the heads' and logits' resizes with align_corners (mmseg's 769x769 configs)")
    .action((o: ExportOptions) => {
      if (o.size && o.dynamic) throw new Error('export: give --size or --dynamic, not both');
      if (!o.weights && !o.randomWeights)
        throw new Error(
          'export: --weights FILE is required (or --random-weights for a smoke test with seeded random weights)',
        );
      if (o.weights && o.randomWeights) throw new Error('export: give --weights or --random-weights, not both');
      const out = resolve(o.out);
      if (existsSync(out) && statSync(out).isDirectory())
        throw new Error(`export: --out ${o.out} is a folder; name the .onnx file`);
      if (!existsSync(dirname(out))) throw new Error(`export: the folder of --out ${o.out} does not exist`);
      if (o.randomWeights) {
        console.error(
          'deeplab export: WARNING: --random-weights: the model has seeded random weights, its output means nothing',
        );
        torch.manualSeed(0);
      }
      const e = exportPresetOnnx(o.model, {
        weights: o.weights,
        size: o.size,
        dynamic: o.dynamic,
        precision: o.precision,
        numClasses: o.numClasses,
        outputStride: o.os,
        alignCorners: o.alignCorners,
      });
      try {
        writeOnnxFile(out, e.bytes);
        const [n, c, h, w] = e.dynamic ? ['batch', e.logitsShape[1], 'height', 'width'] : e.logitsShape;
        console.log(
          `wrote ${o.out}: ${o.model}, ${(e.bytes.length / 1e6).toFixed(1)} MB, opset ${OPSET}, ${o.precision}, ${e.nodes} nodes, ${e.foldedBatchNorms} batch norms folded`,
        );
        console.log(`  ${INPUT_NAME}: float32 [${n}, 3, ${h}, ${w}]  ${OUTPUT_NAME}: float32 [${n}, ${c}, ${h}, ${w}]`);
        if (o.dynamic) console.log(`  traced at ${DYNAMIC_TRACE_SIZES.map((s) => s.join('x')).join(', ')}`);
      } finally {
        e.logits.dispose();
        e.input.dispose();
      }
    });
}
