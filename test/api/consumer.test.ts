// The package as another project sees it: its exports and type declarations, used from a
// separate TypeScript project that depends on it, type-checked strictly and run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { generatedFixture, repoRoot, tempDir } from '../helpers/paths.js';

test('a separate TypeScript project imports deeplab, type-checks and segments', () => {
  const dir = tempDir('deeplab-consumer-');
  mkdirSync(join(dir, 'node_modules'));
  symlinkSync(repoRoot, join(dir, 'node_modules', 'deeplab'), 'dir');
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({ name: 'consumer', type: 'module', dependencies: { deeplab: '*' } }),
  );
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        outDir: 'out',
        types: ['node'],
        typeRoots: [join(repoRoot, 'node_modules/@types')],
        lib: ['ES2022', 'ESNext.Disposable'],
      },
      files: ['main.ts'],
    }),
  );
  writeFileSync(
    join(dir, 'main.ts'),
    `import { load, PRESETS, type Segmentation, type LegendEntry } from 'deeplab';
import { torch } from 'deeplab';
const seg = await load('deeplabv3_mobilenet_v3_large', { weights: process.argv[2] });
const r: Segmentation = await seg.segment({ data: new Uint8Array(24 * 16 * 3), width: 24, height: 16, channels: 3 });
const top: LegendEntry = r.legend[0];
const t = torch.zeros([2, 2]);
console.log(JSON.stringify({ w: r.width, h: r.height, classes: r.numClasses, top: top.name, presets: PRESETS.length > 0, sum: t.sum().item() }));
t.dispose();
seg.dispose();
`,
  );
  execFileSync(process.execPath, [join(repoRoot, 'node_modules/typescript/bin/tsc'), '-p', dir], { stdio: 'pipe' });
  // A type error in the consumer must fail the compile: the declarations are really checked.
  writeFileSync(join(dir, 'bad.ts'), `import { load } from 'deeplab';\nconst n: number = load;\n`);
  assert.throws(
    () =>
      execFileSync(
        process.execPath,
        [
          join(repoRoot, 'node_modules/typescript/bin/tsc'),
          '--noEmit',
          '--strict',
          '--module',
          'NodeNext',
          '--moduleResolution',
          'NodeNext',
          '--typeRoots',
          join(repoRoot, 'node_modules/@types'),
          '--types',
          'node',
          join(dir, 'bad.ts'),
        ],
        { stdio: 'pipe' },
      ),
    (e: { stdout: Buffer }) => /TS2322/.test(String(e.stdout)),
  );
  const out = execFileSync(
    process.execPath,
    [join(dir, 'out/main.js'), generatedFixture('torchvision', 'deeplabv3_mobilenet_v3_large.pth')],
    { encoding: 'utf8' },
  );
  const r = JSON.parse(out.trim());
  assert.deepEqual(
    { w: r.w, h: r.h, classes: r.classes, presets: r.presets, sum: r.sum },
    { w: 24, h: 16, classes: 21, presets: true, sum: 0 },
  );
  assert.equal(typeof r.top, 'string');
});
