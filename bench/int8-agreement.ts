// How far int8 (and bf16, for scale) moves the labels from fp32: argmax agreement and the logits'
// relative squared error, sum |x - fp32|^2 / sum |fp32|^2, picture by picture.
//   node dist/bench/int8-agreement.js [--models deeplabv3_resnet50,deeplabv3_resnet101,deeplabv3_mobilenet_v3_large]
//        [--size 512] [--calibrate 16] [--fallback-images 2] [--held-out 4] [--threads 2]
//        [--fixtures .cache/fixtures/torchvision] [--demo runs/demo/final.safetensors] [--demo-scenes 200]
//        [--out bench/results/int8-agreement.md]
// The torchvision presets run on the generated fixture weights (`bash scripts/fixtures.sh`: seeded
// init, batch norms with statistics, test/fixtures/gen/torchvision.py). The pictures are demo
// scenes (Fashion-MNIST items on textured backgrounds, src/data/fashion-scenes.ts) painted at
// --size: int8 is calibrated as `deeplab calibrate` does by default (ranges on the first 16, the
// fp32 fallback measured on the first 2 of them) and compared on --held-out others. With --demo, the
// trained demo model is compared too, on the validation scenes of .cache/fashion-scenes with the
// calibration beside its weights (`deeplab calibrate ... --os 32`).
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as torch from '../src/torch/index.js';
import { findPreset } from '../src/models/zoo.js';
import { loadForInference, type InferenceModel, type InferenceModelOptions } from '../src/inference/load.js';
import { forwardLogits } from '../src/inference/fast-path.js';
import { calibrate, rangeOutliers, saveCalibration } from '../src/inference/calibration.js';
import { keepSensitiveFp32 } from '../src/inference/int8-fallback.js';
import { makeScene, readFashionMnist } from '../src/data/fashion-scenes.js';
import { readImage } from '../src/data/image.js';
import { toInputTensor } from '../src/data/to-tensor.js';
import { benchArgs } from './args.js';
import { median } from './stats.js';

const opt = benchArgs({
  '--models': 'deeplabv3_resnet50,deeplabv3_resnet101,deeplabv3_mobilenet_v3_large',
  '--size': '512',
  '--calibrate': '16',
  '--fallback-images': '2',
  '--held-out': '4',
  '--threads': '2',
  '--fixtures': '.cache/fixtures/torchvision',
  '--demo': '',
  '--demo-scenes': '200',
  '--out': 'bench/results/int8-agreement.md',
});
torch.setNumThreads(Number(opt['--threads']));
const size = Number(opt['--size']);

interface Compared {
  agree: number;
  error: number;
}

/** Agreement and relative squared error of `m` against `ref` on each input. */
function compare(ref: InferenceModel, m: InferenceModel, inputs: torch.Tensor[]): Compared[] {
  return inputs.map((x) =>
    torch.scope(() =>
      torch.inferenceMode(() => {
        const a = forwardLogits(ref.model, x, ref.settings);
        const b = forwardLogits(m.model, x, m.settings);
        return {
          agree: a.argmax(1).eq(b.argmax(1)).to('float32').mean().item(),
          error: a.sub(b).pow(2).sum().item() / a.pow(2).sum().item(),
        };
      }),
    ),
  );
}

const pct = (v: number) => `${(100 * v).toFixed(2)}%`;
/** "median (min-max)" of the agreements, and the median error. */
function cell(r: Compared[]): string {
  const a = r.map((c) => c.agree);
  return `${pct(median(a))} (${pct(Math.min(...a))}-${pct(Math.max(...a))}), ${median(r.map((c) => c.error)).toExponential(1)}`;
}

const lines: string[] = [];
const say = (s: string) => {
  console.log(s);
  lines.push(s);
};
say(
  `| ${size}x${size}, agreement median (min-max) over pictures, median error | bf16 | int8, all | int8 with the fallback | FLOPs kept fp32; calibration outliers (rangeOutliers) |`,
);
say('|---|---|---|---|---|');

const items = readFashionMnist('t10k');
const calibrateCount = Number(opt['--calibrate']);
const heldOut = Number(opt['--held-out']);
const dir = mkdtempSync(join(tmpdir(), 'deeplab-int8-agreement-'));
for (const name of opt['--models'].split(',')) {
  const weights = join(opt['--fixtures'], `${name}.pth`);
  if (!existsSync(weights)) throw new Error(`${weights} does not exist: run \`bash scripts/fixtures.sh\` first`);
  const norm = findPreset(name).normalization;
  const pictures = Array.from({ length: calibrateCount + heldOut }, (_, i) => {
    const s = makeScene(items, size, 9000 + i, [3, 8]);
    return toInputTensor({ width: size, height: size, data: s.rgb }, norm, 'channels_last');
  });
  const calib = pictures.slice(0, calibrateCount);
  const held = pictures.slice(calibrateCount);
  const ref = loadForInference(name, { weights });
  const run = (x: torch.Tensor) => forwardLogits(ref.model, x, ref.settings);
  const compareTo = (o: InferenceModelOptions) => {
    const m = loadForInference(name, { weights, ...o });
    try {
      return compare(ref, m, held);
    } finally {
      m.model.dispose();
    }
  };
  const bf16 = compareTo({ precision: 'bf16' });
  /** int8 calibrated on `on` (all, and with the fallback measured on the first few): a row. */
  const int8Row = (on: torch.Tensor[], what: string) => {
    const t0 = Date.now();
    const peaks = new Map<string, number[]>();
    const ranges = calibrate(ref.model, name, on, run, peaks);
    const outliers = rangeOutliers(peaks, ranges);
    const fallback = keepSensitiveFp32(ref.model, ranges, on.slice(0, Number(opt['--fallback-images'])), run);
    const seconds = (Date.now() - t0) / 1000;
    const files = [ranges, fallback.calibration].map((c, i) => {
      const file = join(dir, `${name}.${i}.json`);
      saveCalibration(file, c);
      return file;
    });
    const int8 = files.map((calibration) => compareTo({ precision: 'int8', calibration }));
    const flagged = outliers.map((o) => `scene ${o.index} ${o.worst.ratio.toFixed(0)}x in ${o.convs} convs`);
    say(
      `| \`${name}\` (seeded fixture)${what} | ${[bf16, ...int8].map(cell).join(' | ')} | ${(100 * fallback.flopShare).toFixed(1)}% (${fallback.kept.length} convs; calibration ${seconds.toFixed(0)} s); ${flagged.join(', ') || 'none'} |`,
    );
    return outliers.map((o) => o.index);
  };
  const flagged = int8Row(calib, '');
  // What `deeplab calibrate`'s warning advises: the same without the scenes it names.
  if (flagged.length)
    int8Row(
      calib.filter((_, i) => !flagged.includes(i)),
      `, calibrated without the ${flagged.length} flagged`,
    );
  ref.model.dispose();
  pictures.forEach((t) => t.dispose());
}

if (opt['--demo']) {
  // The trained demo model (DeepLabV3+ R-18-D8, 11 classes, trained and evaluated at OS32) on its
  // validation scenes.
  const weights = opt['--demo'];
  const root = '.cache/fashion-scenes';
  const ids = readFileSync(join(root, 'val.txt'), 'utf8')
    .split('\n')
    .filter(Boolean)
    .slice(0, Number(opt['--demo-scenes']));
  const name = 'deeplabv3plus_r18-d8';
  const common = { weights, numClasses: 11, outputStride: 32 as const };
  const ref = loadForInference(name, common);
  const norm = ref.preset.normalization;
  const scenes = await Promise.all(
    ids.map(async (id) => toInputTensor(await readImage(join(root, 'images', `${id}.png`)), norm, 'channels_last')),
  );
  const results = (['bf16', 'int8'] as const).map((precision) => {
    const m = loadForInference(name, { ...common, precision });
    try {
      return compare(ref, m, scenes);
    } finally {
      m.model.dispose();
    }
  });
  // pixels, not pictures: every scene has the same size
  const overall = (r: Compared[]) => pct(r.reduce((s, c) => s + c.agree, 0) / r.length);
  say(
    `| the trained demo model, ${ids.length} validation scenes (128x128; all pixels: bf16 ${overall(results[0])}, int8 ${overall(results[1])}) | ${cell(results[0])} | ${cell(results[1])} (its calibration file) | | |`,
  );
  ref.model.dispose();
  scenes.forEach((t) => t.dispose());
}
const header = [
  '# bf16 and int8 against fp32: label agreement (bench/int8-agreement.ts)',
  '',
  `\`node dist/bench/int8-agreement.js ${process.argv.slice(2).join(' ')}\`, ${new Date().toISOString()}, ` +
    `${torch.getNumThreads()} threads, ${cpus()[0]?.model ?? 'unknown CPU'}, int8 on VNNI: ${torch.int8UsesVnni() ? 'yes' : 'no (7-bit weights)'}.`,
  '',
];
rmSync(dir, { recursive: true, force: true });
writeFileSync(opt['--out'], [...header, ...lines, ''].join('\n'));
console.log(`wrote ${opt['--out']}`);
