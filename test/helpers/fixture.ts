// Loads the PyTorch reference fixtures written by test/fixtures/make_ops.py: a JSON manifest of
// cases and one binary blob of raw little-endian tensors (float32, int64, bool as one byte each).
import { readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { committedFixture } from './paths.js';

export interface TensorEntry {
  shape: number[];
  dtype: 'float32' | 'int64' | 'bool';
  offset: number;
  nbytes: number;
  /** Recorded for cases whose output layout matters (views, channels_last). */
  strides?: number[];
}

export type Params = Record<string, any>;

export interface FixtureCase {
  name: string;
  op: string;
  params: Params;
  inputs: Record<string, TensorEntry>;
  /** Inputs that take a gradient (requiresGrad_ before the op). */
  grad: string[];
  outputs: Record<string, TensorEntry>;
  /** The upstream gradient given to out.backward(). Absent when no gradient is checked. */
  upstream?: { out: TensorEntry };
  grads: Record<string, TensorEntry>;
}

export interface Manifest {
  generator: string;
  torch: string;
  data: string;
  cases: FixtureCase[];
}

/** The fixture folder test/fixtures/SUB, which must hold a manifest.json. */
export function fixtureDir(sub: string): string {
  const dir = committedFixture(sub);
  if (!existsSync(join(dir, 'manifest.json')))
    throw new Error(
      `fixture '${sub}' not found (no ${join(dir, 'manifest.json')}); run /usr/bin/python3 test/fixtures/make_ops.py`,
    );
  return dir;
}

export class Fixture {
  readonly manifest: Manifest;
  readonly #blob: Buffer;

  constructor(sub = 'ops') {
    const dir = fixtureDir(sub);
    this.manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    this.#blob = readFileSync(join(dir, this.manifest.data));
  }

  get cases(): FixtureCase[] {
    return this.manifest.cases;
  }

  case(name: string): FixtureCase {
    const c = this.manifest.cases.find((x) => x.name === name);
    if (!c) throw new Error(`no fixture case '${name}'`);
    return c;
  }

  /** A new tensor (owned by the caller, or by the enclosing scope) holding the entry's values. */
  tensor(e: TensorEntry): torch.Tensor {
    if (e.offset + e.nbytes > this.#blob.length)
      throw new RangeError(`fixture tensor at ${e.offset}+${e.nbytes} lies past the end of the data`);
    const bytes = new Uint8Array(this.#blob.buffer, this.#blob.byteOffset + e.offset, e.nbytes);
    return torch.tensor(bytes, { dtype: e.dtype, shape: e.shape });
  }

  /** Every tensor of a record of entries. */
  tensors(entries: Record<string, TensorEntry>): Record<string, torch.Tensor> {
    const out: Record<string, torch.Tensor> = {};
    for (const [k, e] of Object.entries(entries)) out[k] = this.tensor(e);
    return out;
  }
}
