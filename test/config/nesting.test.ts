// A config nested thousands of levels deep (the YAML parser recursed on it for minutes) is refused
// before parsing, naming the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig, MAX_CONFIG_NESTING } from '../../src/config/load.js';
import { tempDir } from '../helpers/paths.js';

test('deeply nested config files are refused before parsing', () => {
  const dir = tempDir('config-nesting-');
  for (const [name, text] of [
    ['deep.yaml', 'model: ' + '['.repeat(110_000)],
    ['deep.json', '{"a":' + '['.repeat(5000) + ']'.repeat(5000) + '}'],
  ]) {
    const file = join(dir, name);
    writeFileSync(file, text);
    assert.throws(
      () => loadConfig(file),
      (e: Error) =>
        e.message.startsWith(file) &&
        new RegExp(`nested \\d+ levels deep; a config nests at most a few \\(limit ${MAX_CONFIG_NESTING}\\)`).test(
          e.message,
        ),
    );
  }
});
