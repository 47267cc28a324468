// The memory budget: the most bytes one allocation may ask for. Under jemalloc (which bin/deeplab
// preloads) torch.empty([1e6, 1e6]) "succeeds" with terabytes of virtual memory and the process
// dies when the pages are written, so sizes are checked here, before LibTorch is asked.
// The default is the machine's physical memory: a single tensor larger than RAM can never be
// filled. DEEPLAB_MEMORY_BUDGET (bytes, or with a K/M/G/T suffix, powers of 1024) or
// setMemoryBudget() lower or raise it.
import { totalmem } from 'node:os';
import { type DType, elementSize } from './dtype.js';

export const MEMORY_BUDGET_ENV = 'DEEPLAB_MEMORY_BUDGET';

export class MemoryBudgetError extends RangeError {
  override name = 'MemoryBudgetError';
}

const UNITS: Record<string, number> = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };

/** Parses "123456", "512M", "8G", "1.5T" (binary units, optional "B"/"iB"); throws on anything else. */
export function parseBytes(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$/i.exec(text);
  if (!m) throw new RangeError(`expected a byte count such as 8000000000, 512M or 8G, got "${text}"`);
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2].toUpperCase()]);
  if (!Number.isSafeInteger(bytes) || bytes <= 0) throw new RangeError(`expected a positive byte count, got "${text}"`);
  return bytes;
}

function fromEnv(): number | undefined {
  const v = process.env[MEMORY_BUDGET_ENV];
  if (v === undefined || v === '') return undefined;
  try {
    return parseBytes(v);
  } catch (e) {
    throw new RangeError(`${MEMORY_BUDGET_ENV}: ${(e as Error).message}`);
  }
}

let budget: number | undefined;

/** The current budget in bytes (the env var, else physical memory, unless set). */
export function memoryBudget(): number {
  return (budget ??= fromEnv() ?? totalmem());
}

/** Sets the budget in bytes; null goes back to the default (env var or physical memory). Returns the previous one. */
export function setMemoryBudget(bytes: number | null): number {
  const prev = memoryBudget();
  if (bytes !== null && !(Number.isSafeInteger(bytes) && bytes > 0)) {
    throw new RangeError(`setMemoryBudget: expected a positive integer byte count, got ${bytes}`);
  }
  budget = bytes ?? undefined;
  return prev;
}

/** numel of a shape, as a float (so an absurd shape yields a huge number, not a wrapped one). */
export function shapeNumel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = n / 1024;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(v < 10 ? 2 : 1)} ${units[i]}`;
}

/** Throws a MemoryBudgetError when `bytes` exceed the budget; `what` says what was being made. */
export function checkBytes(bytes: number, what: string): void {
  const b = memoryBudget();
  if (bytes > b) {
    throw new MemoryBudgetError(
      `${what} needs ${formatBytes(bytes)}, more than the memory budget of ${formatBytes(b)} ` +
        `(physical memory by default; set ${MEMORY_BUDGET_ENV} or setMemoryBudget() to change it)`,
    );
  }
}

/** The same for a tensor of `shape` and `dtype`; the message names the shape. */
export function checkAllocation(shape: readonly number[], dtype: DType, what: string): void {
  const article = /^[aeiou]/.test(dtype) ? 'an' : 'a';
  checkBytes(
    shapeNumel(shape) * elementSize(dtype),
    `${what}: ${article} ${dtype} tensor of shape [${shape.join(', ')}]`,
  );
}
