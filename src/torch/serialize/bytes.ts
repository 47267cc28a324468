// Where a checkpoint's bytes come from: a buffer already in memory, or a file read piece by piece
// with positioned reads. Reading a file whole would hold all of it next to the tensors made from it
// (a 160 MB ResNet-50 checkpoint cost 160 MB more peak memory than PyTorch's torch.load).
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export interface ByteSource {
  readonly length: number;
  /** `length` bytes at `offset`: a view that stays valid (a new buffer for files). */
  read(offset: number, length: number): Uint8Array;
  /** the same, into `scratch` when it is large enough: valid until the next readInto with it */
  readInto(offset: number, length: number, scratch: { buf: Uint8Array }): Uint8Array;
  close(): void;
}

export function bufferSource(buf: Uint8Array): ByteSource {
  return {
    length: buf.length,
    read: (offset, length) => buf.subarray(offset, offset + length),
    readInto: (offset, length) => buf.subarray(offset, offset + length),
    close() {},
  };
}

/** Opens `path` for positioned reads; throws the fs error (ENOENT...) as is. */
export function fileSource(path: string): ByteSource {
  const fd = openSync(path, 'r');
  let length: number;
  try {
    length = fstatSync(fd).size;
  } catch (e) {
    closeSync(fd);
    throw e;
  }
  let open = true;
  const fill = (into: Uint8Array, offset: number, n: number) => {
    if (!open) throw new Error(`${path}: read after close`);
    for (let done = 0; done < n;) {
      const got = readSync(fd, into, done, n - done, offset + done);
      if (got === 0)
        throw new Error(
          `${path}: file ended at ${offset + done} while reading ${n} bytes at ${offset} (changed while reading?)`,
        );
      done += got;
    }
    return into;
  };
  return {
    length,
    read: (offset, n) => fill(new Uint8Array(n), offset, n),
    readInto(offset, n, scratch) {
      if (scratch.buf.length < n) scratch.buf = new Uint8Array(n);
      return fill(scratch.buf, offset, n).subarray(0, n);
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}
