// The README's command lines, run as written: every line of its ```sh blocks and every `$ ` line of
// its ```text blocks, read from README.md itself so the two cannot drift apart. They run in a
// fresh folder holding what the README's set-up leaves behind: the repository's configs and a
// demo run (bash scripts/demo.sh, shortened, writing where the full one writes). `deeplab` is
// the command on the PATH, which scripts/setup.sh links to this clone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, realpathSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { deeplabBin, repoRoot, tempDir } from '../helpers/paths.js';

/** The commands of the README's shell blocks, continuation lines joined, comments removed. */
export function readmeCommands(markdown: string): string[] {
  const out: string[] = [];
  const blocks = markdown.matchAll(/^```(sh|text)\n([\s\S]*?)^```/gm);
  for (const [, lang, body] of blocks) {
    const lines = body.split('\n');
    for (let i = 0; i < lines.length; i++) {
      let line = lines[i];
      if (lang === 'text') {
        if (!line.startsWith('$ ')) continue;
        line = line.slice(2);
      } else if (!line.trim() || line.trimStart().startsWith('#')) {
        continue;
      }
      while (line.endsWith('\\') && i + 1 < lines.length) line = line.slice(0, -1) + ' ' + lines[++i].trim();
      out.push(line.replace(/\s+#.*$/, '').trim());
    }
  }
  return out;
}

const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');
const commands = readmeCommands(readme);

/** The set-up commands themselves: the test command is what runs this test. */
const SETUP = ['bash scripts/test.sh', 'bash scripts/demo.sh'];
/** Lines the README shows failing on purpose, with the exit code it says they give. */
const EXPECTED_EXIT: [RegExp, number][] = [[/^deeplab predict .*broken\.jpg/, 1]];

test('the README has the two set-up commands and a tour of command lines', () => {
  for (const c of SETUP) assert.ok(commands.includes(c), `README lacks \`${c}\``);
  assert.ok(
    commands.filter((c) => c.startsWith('deeplab ')).length >= 5,
    `too few deeplab command lines: ${commands.join(' | ')}`,
  );
});

test("`deeplab` on the PATH is this clone's bin/deeplab (linked by scripts/setup.sh)", () => {
  const r = spawnSync('bash', ['-c', 'command -v deeplab'], { encoding: 'utf8' });
  assert.equal(r.status, 0, 'deeplab is not on the PATH: run bash scripts/setup.sh');
  assert.equal(realpathSync(r.stdout.trim()), realpathSync(deeplabBin));
});

test('every README command line runs as written after the set-up', { timeout: 600_000 }, () => {
  const dir = tempDir('deeplab-readme-');
  symlinkSync(join(repoRoot, 'configs'), join(dir, 'configs'));
  const sh = (cmd: string, expect = 0) => {
    const r = spawnSync('bash', ['-c', cmd], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, DEEPLAB_THREADS: '1' },
    });
    assert.equal(
      r.status,
      expect,
      `\`${cmd}\` exited ${r.status}:\n${r.stdout.slice(-2000)}\n${r.stderr.slice(-2000)}`,
    );
    return r.stdout;
  };
  // The main job, shortened: a few iterations on a few scenes, into the folders the full one uses.
  sh(
    `bash ${join(repoRoot, 'scripts/demo.sh')} --iters 12 --pretrain-steps 2 --train-scenes 24 --val-scenes 12 --data ${dir}/.cache/fashion-scenes --out ${dir}/runs/demo`,
  );
  assert.ok(existsSync(join(dir, 'runs/demo/final.safetensors')), 'the demo wrote no final weights');
  const run = commands.filter((c) => !SETUP.includes(c));
  for (const cmd of run) sh(cmd, EXPECTED_EXIT.find(([re]) => re.test(cmd))?.[1] ?? 0);
});
