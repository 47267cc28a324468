// NumPy .npy files (format 1.0): what Python users load with np.load.
import { writeFileSync, renameSync } from 'node:fs';

export function encodeNpy(data: Float32Array | Uint8Array | Int32Array, shape: readonly number[]): Buffer {
  const descr = data instanceof Float32Array ? '<f4' : data instanceof Int32Array ? '<i4' : '|u1';
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  // Magic (6) + version (2) + length (2) + header + '\n' must be a multiple of 64.
  const total = Math.ceil((10 + header.length + 1) / 64) * 64;
  header = header.padEnd(total - 10 - 1, ' ') + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  return Buffer.concat([
    head,
    Buffer.from(header, 'latin1'),
    Buffer.from(data.buffer, data.byteOffset, data.byteLength),
  ]);
}

/** Writes atomically: a killed process leaves the old file or none, never half of one. */
export function writeNpy(file: string, data: Float32Array | Uint8Array | Int32Array, shape: readonly number[]): void {
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, encodeNpy(data, shape));
  renameSync(tmp, file);
}
