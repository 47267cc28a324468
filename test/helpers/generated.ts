// Where the generated (uncommitted) fixtures live: .cache/fixtures/NAME, written by
// scripts/fixtures.sh from test/fixtures/gen/NAME.py. A missing one is an error, not a skip.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// From test/helpers or dist/test/helpers up to the repository root.
const root = [join(here, '../..'), join(here, '../../..')].find((r) => existsSync(join(r, 'package.json')))!;

export function generatedFixture(name: string, file = ''): string {
  const dir = join(root, '.cache/fixtures', name);
  if (!existsSync(join(dir, '.done'))) {
    throw new Error(`generated fixture "${name}" is missing: run \`bash scripts/fixtures.sh\` (needs setup.sh --python)`);
  }
  return join(dir, file);
}

export function committedFixture(...parts: string[]): string {
  return join(root, 'test/fixtures', ...parts);
}
