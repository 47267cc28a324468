// What a public endpoint must bound: body bytes, body arrival time (a slow client holds a
// connection and its buffers), image pixels (a small PNG can declare 100 megapixels, and decoding
// would allocate them all), queue length (metrics.ts, batcher.ts), time per request.
import type { Readable } from 'node:stream';
import sharp from 'sharp';
import { HttpError } from './errors.js';

export interface Limits {
  /** request body (raw or multipart file) */
  maxBodyBytes: number;
  /** decoded image width x height */
  maxPixels: number;
  /** how long the whole body may take to arrive */
  bodyTimeoutMs: number;
  /** queue + forward pass + encoding, per request */
  timeoutMs: number;
}

export const DEFAULT_LIMITS: Limits = {
  maxBodyBytes: 20 * 1024 * 1024,
  maxPixels: 2048 * 2048,
  bodyTimeoutMs: 10_000,
  timeoutMs: 30_000,
};

/** Reads a request body into memory, refusing it once it passes maxBytes or takes longer than timeoutMs. */
export function readBody(
  stream: Readable,
  declaredLength: string | undefined,
  o: Pick<Limits, 'maxBodyBytes' | 'bodyTimeoutMs'>,
): Promise<Buffer> {
  // Content-Length says so before a byte is read. Connection: close, so the rest is never read.
  if (declaredLength !== undefined && Number(declaredLength) > o.maxBodyBytes)
    return Promise.reject(tooLarge(Number(declaredLength), o.maxBodyBytes));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (e: Error | null) => {
      clearTimeout(timer);
      stream.off('data', onData);
      stream.off('end', onEnd);
      stream.off('error', onError);
      stream.off('aborted', onAborted);
      if (e) {
        stream.resume(); // whatever still arrives is dropped, not buffered
        reject(e);
      } else resolve(Buffer.concat(chunks, size));
    };
    const onData = (c: Buffer) => {
      size += c.length;
      if (size > o.maxBodyBytes) finish(tooLarge(size, o.maxBodyBytes));
      else chunks.push(c);
    };
    const onEnd = () => finish(null);
    const onError = (e: Error) => finish(new HttpError(400, `the upload failed: ${e.message}`));
    const onAborted = () => finish(new HttpError(400, 'the client closed the connection during the upload'));
    const timer = setTimeout(
      () =>
        finish(
          new HttpError(408, `the request body did not arrive within ${o.bodyTimeoutMs} ms`, { Connection: 'close' }),
        ),
      o.bodyTimeoutMs,
    );
    stream.on('data', onData);
    stream.on('end', onEnd);
    stream.on('error', onError);
    stream.on('aborted', onAborted);
  });
}

export function tooLarge(bytes: number, max: number): HttpError {
  return new HttpError(413, `the body (${bytes} bytes) is larger than this server's limit of ${max} bytes`, {
    Connection: 'close',
  });
}

/**
 * Checks the image's header before anything is decoded: a readable format and at most maxPixels.
 * Decoding errors of a truncated or corrupt file come later, from readImage.
 */
export async function checkImageHeader(bytes: Buffer, maxPixels: number): Promise<{ width: number; height: number }> {
  let width: number | undefined, height: number | undefined;
  try {
    ({ width, height } = await sharp(bytes).metadata());
  } catch {
    throw new HttpError(415, 'the body is not an image this server reads (JPEG, PNG, WebP, TIFF or GIF)');
  }
  if (!width || !height) throw new HttpError(415, 'the image header gives no width and height');
  if (width * height > maxPixels)
    throw new HttpError(
      413,
      `the image is ${width}x${height} (${megapixels(width * height)} megapixels); this server takes at most ${megapixels(maxPixels)} megapixels`,
    );
  return { width, height };
}

function megapixels(n: number): string {
  return (n / 1e6).toFixed(n < 1e6 ? 2 : 1);
}
