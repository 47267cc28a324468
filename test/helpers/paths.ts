// Where things are, for tests compiled to dist/test as for their sources in test/: the repository
// root, the committed and generated fixtures, the CLI, and temporary folders.
import { existsSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
/** The repository root, from test/helpers or dist/test/helpers. */
export const repoRoot = [join(here, '../..'), join(here, '../../..')].find((r) => existsSync(join(r, 'package.json')))!;

/** The `deeplab` command of this checkout (it runs dist/src/cli/main.js). */
export const deeplabBin = join(repoRoot, 'bin/deeplab');

/**
 * The CLI compiled with these tests (dist/src/cli/main.js for dist/test, distN/… for distN/test),
 * to run as `node cliMain …`: the code under test, whichever output folder it was compiled to.
 */
export const cliMain = join(here, '../../src/cli/main.js');

/** A file or folder under test/fixtures (committed, written by test/fixtures/make_*.py). */
export function committedFixture(...parts: string[]): string {
  return join(repoRoot, 'test/fixtures', ...parts);
}

/**
 * A generated (uncommitted) fixture: .cache/fixtures/NAME, written by scripts/fixtures.sh from
 * test/fixtures/gen/NAME.py. A missing one is an error, not a skip.
 */
export function generatedFixture(name: string, file = ''): string {
  const dir = join(repoRoot, '.cache/fixtures', name);
  if (!existsSync(join(dir, '.done'))) {
    throw new Error(
      `generated fixture "${name}" is missing: run \`bash scripts/fixtures.sh\` (needs setup.sh --python)`,
    );
  }
  return join(dir, file);
}

/** A fresh folder under the test run's TMPDIR (scripts/test.sh removes it when the run ends). */
export function tempDir(prefix = 'deeplab-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}
