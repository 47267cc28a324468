// `deeplab serve`'s HTTP server (Fastify): the Open Inference Protocol's health and metadata
// routes, POST /v2/models/{model}/segment for images, Prometheus metrics, and the web page.
// The model runs on its own thread (model-thread.ts) behind a batcher; this thread only parses,
// checks, decodes (sharp, on libuv's pool) and encodes. The caller owns the runner: close() stops
// the server (in-flight requests finish, new ones get 503), not the model thread.
import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import type { Readable } from 'node:stream';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import { readImage, ImageError, encodeLabelPng, encodeRgb, colorize, overlay } from '../data/image.js';
import type { Palette } from '../data/palettes.js';
import type { Normalization } from '../models/segmentor.js';
import { legendOf } from '../inference/legend.js';
import type { BatchRunner } from './model-thread.js';
import { Batcher, QueueFullError } from './batcher.js';
import { ServeMetrics } from './metrics.js';
import { HttpError, type ErrorBody } from './errors.js';
import { DEFAULT_LIMITS, checkImageHeader, readBody, tooLarge, type Limits } from './limits.js';

export const FORMATS = ['labels', 'color', 'overlay', 'json'] as const;
export type OutputFormat = (typeof FORMATS)[number];

export interface ServerOptions {
  runner: BatchRunner;
  /** the name in the routes (the preset's), its classes and precision */
  model: { name: string; numClasses: number; precision: string; palette: Palette; normalization?: Normalization };
  maxBatch?: number;
  /** images allowed to wait for the model; more get 503 + Retry-After */
  maxQueue?: number;
  maxWaitMs?: number;
  limits?: Partial<Limits>;
  /** an ONNX export of the model, handed to the page's in-browser mode */
  onnxFile?: string;
  /** the bundled page (default dist/web next to this file's dist/src) */
  webDir?: string;
}

/** One JSON reply of a segmentation: the classes found, most pixels first. */
export interface SegmentJson {
  model: string;
  width: number;
  height: number;
  classes: { id: number; name: string; color: [number, number, number]; pixels: number; share: number }[];
}

const SEGMENT_ROUTE = '/v2/models/:model/segment';
const WEB_FILES: Record<string, string> = {
  '/': 'index.html',
  '/app.js': 'app.js',
  '/style.css': 'style.css',
};
const MIME: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

export function buildServer(o: ServerOptions): { app: FastifyInstance; batcher: Batcher; metrics: ServeMetrics } {
  const limits: Limits = { ...DEFAULT_LIMITS, ...o.limits };
  const maxBatch = o.maxBatch ?? 4;
  const model = o.model;
  let metrics: ServeMetrics | undefined = undefined;
  const batcher = new Batcher(o.runner, {
    maxBatch,
    maxQueue: o.maxQueue ?? 32,
    maxWaitMs: o.maxWaitMs ?? 5,
    onBatch: (size, ms) => {
      metrics!.batchSize.observe(size);
      metrics!.inference.observe(ms / 1000);
    },
  });
  metrics = new ServeMetrics(
    model.name,
    maxBatch,
    () => batcher.depth,
    () => o.runner.liveTensors,
  );
  const m = metrics;

  const app = Fastify({
    bodyLimit: limits.maxBodyBytes,
    // Node's own limit on receiving a request, behind readBody's (which answers in JSON).
    requestTimeout: limits.bodyTimeoutMs + 5000,
    // New requests while closing get our own 503 (below), in the JSON shape of every error.
    return503OnClosing: false,
  });

  // Only images are parsed: raw bodies here, multipart by @fastify/multipart. JSON or text on
  // the segment route is a 415 with a message that says what to send.
  app.removeAllContentTypeParsers();
  const raw = (req: FastifyRequest, payload: NodeJS.ReadableStream) =>
    readBody(payload as Readable, req.headers['content-length'], limits);
  app.addContentTypeParser('application/octet-stream', raw);
  app.addContentTypeParser(/^image\//, raw);
  void app.register(multipart, {
    limits: { fileSize: limits.maxBodyBytes, files: 1, fields: 8, parts: 9 },
  });

  app.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    let message = err.message;
    if (err instanceof HttpError) void reply.headers(err.headers);
    else if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE')
      message = `Content-Type ${req.headers['content-type'] ?? '(none)'} is not accepted: send the image as the raw body (image/* or application/octet-stream) or as a multipart/form-data file`;
    else if (err.code === 'FST_REQ_FILE_TOO_LARGE' || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      message = tooLarge(Number(req.headers['content-length'] ?? NaN), limits.maxBodyBytes).message;
    else if (status === 500) {
      console.error(`deeplab serve: ${req.method} ${req.url}:`, err);
      message = 'internal server error';
    }
    void reply.code(status).send({ error: message } satisfies ErrorBody);
  });
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ error: `no route ${req.method} ${req.url.split('?')[0]}` } satisfies ErrorBody);
  });

  // While closing, each reply ends its connection: a keep-alive client would otherwise hold
  // close() until its keep-alive timeout (72 s).
  let closing = false;
  app.addHook('preClose', async () => {
    closing = true;
  });
  app.addHook('onSend', async (_req, reply, payload) => {
    if (closing) void reply.header('Connection', 'close');
    // Cross-origin isolation (every resource of the page is our own), so the page's in-browser
    // mode gets SharedArrayBuffer and onnxruntime-web runs its WebAssembly on several threads.
    void reply.header('Cross-Origin-Opener-Policy', 'same-origin');
    void reply.header('Cross-Origin-Embedder-Policy', 'require-corp');
    return payload;
  });
  // A request that reaches us after close() began (on a keep-alive connection, before Fastify
  // closed the idle ones) gets a JSON 503, like every other error.
  app.addHook('onRequest', async () => {
    if (closing) throw new HttpError(503, 'the server is shutting down', { 'Retry-After': '1' });
  });

  // Metrics of the segment route, whatever its outcome (errors included).
  app.addHook('onResponse', async (req, reply) => {
    if (req.routeOptions.url !== SEGMENT_ROUTE) return;
    const format = requestedFormat(req as FastifyRequest<{ Querystring: { format?: string } }>) ?? 'invalid';
    m.requests.inc({ format, code: String(reply.statusCode) });
    m.latency.observe({ format }, reply.elapsedTime / 1000);
  });

  // ---- health and metadata (Open Inference Protocol v2) -------------------------------------
  const checkModel = (req: FastifyRequest<{ Params: { model: string } }>) => {
    if (req.params.model !== model.name)
      throw new HttpError(404, `unknown model "${req.params.model}"; this server serves "${model.name}"`);
  };
  app.get('/v2', async () => ({ name: 'deeplab', version: '0.1.0', extensions: [] }));
  app.get('/v2/health/live', async (_req, reply) => reply.code(200).send());
  // Ready while the model thread lives; a dead one leaves the process up for a supervisor to see.
  const ready = () => o.runner.alive !== false;
  app.get('/v2/health/ready', async (_req, reply) => reply.code(ready() ? 200 : 503).send());
  app.get<{ Params: { model: string } }>('/v2/models/:model/ready', async (req, reply) => {
    checkModel(req);
    return reply.code(ready() ? 200 : 503).send();
  });
  app.get<{ Params: { model: string } }>('/v2/models/:model', async (req) => {
    checkModel(req);
    return {
      name: model.name,
      platform: 'deeplab_libtorch',
      inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }],
      outputs: [{ name: 'labels', datatype: model.numClasses <= 256 ? 'UINT8' : 'UINT16', shape: [-1, -1] }],
      parameters: { precision: model.precision, max_batch: maxBatch, classes: model.palette.classes },
    };
  });
  /** What a person or the page wants to know at once: ready, which model, its classes and colours. */
  app.get('/health', async (_req, reply) => {
    if (!ready()) void reply.code(503);
    return {
      status: ready() ? 'ready' : 'the model thread has stopped',
      model: model.name,
      precision: model.precision,
      maxBatch,
      classes: model.palette.classes.map((name, id) => ({ id, name, color: model.palette.colors[id] })),
      onnx: o.onnxFile ? `/v2/models/${model.name}/onnx` : null,
      normalization: model.normalization ?? null,
    };
  });
  app.get('/metrics', async (_req, reply) =>
    reply.header('Content-Type', m.registry.contentType).send(await m.registry.metrics()),
  );

  // ---- segmentation ------------------------------------------------------------------------
  app.post<{ Params: { model: string }; Querystring: { format?: string } }>(SEGMENT_ROUTE, async (req, reply) => {
    checkModel(req);
    const format = requestedFormat(req);
    if (!format) throw new HttpError(400, `format must be one of ${FORMATS.join(', ')}; got "${req.query.format}"`);
    const bytes = await requestImage(req, limits);
    await checkImageHeader(bytes, limits.maxPixels);
    const img = await readImage(bytes, 'the uploaded image').catch((e: Error) => {
      throw e instanceof ImageError ? new HttpError(400, e.message) : e;
    });
    // The request's deadline, and the client going away, both abort its place in the queue.
    const gone = new AbortController();
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) gone.abort(new HttpError(499, 'the client closed the connection'));
    });
    const signal = AbortSignal.any([gone.signal, AbortSignal.timeout(limits.timeoutMs)]);
    const r = await batcher.submit(img, signal).catch((e: unknown) => {
      if (e instanceof QueueFullError) throw new HttpError(503, e.message, { 'Retry-After': '1' });
      if (e instanceof DOMException && e.name === 'TimeoutError')
        throw new HttpError(503, `no result within ${limits.timeoutMs} ms: the server is overloaded`, {
          'Retry-After': '1',
        });
      throw e;
    });
    m.queueWait.observe(r.queueMs / 1000);
    void reply.header('Server-Timing', `queue;dur=${r.queueMs.toFixed(1)}, infer;dur=${r.inferMs.toFixed(1)}`);
    void reply.header('X-Batch-Size', String(r.batchSize));
    const { width, height } = img;
    if (format === 'json') {
      const n = width * height;
      return {
        model: model.name,
        width,
        height,
        classes: legendOf(r.labels, model.numClasses, model.palette).map((l) => ({ ...l, share: l.pixels / n })),
      } satisfies SegmentJson;
    }
    void reply.type('image/png');
    if (format === 'labels') return encodeLabelPng(r.labels, width, height);
    const color = colorize(r.labels, model.palette.colors);
    return encodeRgb(format === 'color' ? color : overlay(img, color), width, height, 'png');
  });

  // ---- the page and the ONNX file of its in-browser mode ------------------------------------
  const webDir = o.webDir ?? fileURLToPath(new URL('../../web/', import.meta.url));
  for (const [route, file] of Object.entries(WEB_FILES)) {
    app.get(route, async (_req, reply) => {
      const path = join(webDir, file);
      if (!existsSync(path))
        throw new HttpError(404, `the web page is not built (${path} is missing): run \`bash scripts/setup.sh\``);
      return reply.type(MIME[file.split('.').pop()!]).send(readFileSync(path));
    });
  }
  // onnxruntime-web for the in-browser mode: the WebAssembly build (SIMD, threads) and the WebGPU
  // one (its asyncify WebAssembly carries the WebGPU provider), three files each.
  const ortDir = dirname(fileURLToPath(import.meta.resolve('onnxruntime-web')));
  const ORT_FILES: Record<string, string> = {
    'ort.wasm.min.mjs': 'text/javascript; charset=utf-8',
    'ort-wasm-simd-threaded.mjs': 'text/javascript; charset=utf-8',
    'ort-wasm-simd-threaded.wasm': 'application/wasm',
    'ort.webgpu.min.mjs': 'text/javascript; charset=utf-8',
    'ort-wasm-simd-threaded.asyncify.mjs': 'text/javascript; charset=utf-8',
    'ort-wasm-simd-threaded.asyncify.wasm': 'application/wasm',
  };
  app.get<{ Params: { file: string } }>('/ort/:file', async (req, reply) => {
    const type = ORT_FILES[req.params.file];
    if (!type) throw new HttpError(404, `no route GET /ort/${req.params.file}`);
    return reply.type(type).send(readFileSync(join(ortDir, req.params.file)));
  });
  app.get<{ Params: { model: string } }>('/v2/models/:model/onnx', async (req, reply) => {
    checkModel(req);
    if (!o.onnxFile) throw new HttpError(404, 'this server was started without --onnx FILE');
    return reply.type('application/octet-stream').send(readFileSync(o.onnxFile));
  });

  return { app, batcher, metrics: m };
}

/** ?format= wins; otherwise Accept: application/json gives JSON, anything else the label PNG. */
function requestedFormat(req: FastifyRequest<{ Querystring: { format?: string } }>): OutputFormat | undefined {
  const param = req.query.format;
  if (param !== undefined) return (FORMATS as readonly string[]).includes(param) ? (param as OutputFormat) : undefined;
  return req.headers.accept?.includes('application/json') ? 'json' : 'labels';
}

/** The image's bytes: the raw body, or the (one) file of a multipart form. */
async function requestImage(req: FastifyRequest, limits: Limits): Promise<Buffer> {
  let bytes: Buffer | undefined;
  if (req.isMultipart()) {
    const file = await req.file();
    if (!file) throw new HttpError(400, 'the multipart form has no file: send the image as a file field');
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new HttpError(408, `the request body did not arrive within ${limits.bodyTimeoutMs} ms`, {
            Connection: 'close',
          }),
        );
        file.file.destroy();
      }, limits.bodyTimeoutMs);
    });
    try {
      bytes = await Promise.race([file.toBuffer(), late]);
    } finally {
      clearTimeout(timer);
    }
  } else {
    bytes = req.body as Buffer | undefined;
  }
  if (!bytes || bytes.length === 0)
    throw new HttpError(400, 'the body is empty: send an image (raw body, or a multipart/form-data file)');
  return bytes;
}

export type { FastifyInstance, FastifyReply };
