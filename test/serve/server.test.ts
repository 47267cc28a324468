// `deeplab serve`'s server on a real model thread (MobileNetV3 DeepLabV3, seeded weights): the
// health and metadata routes, every output format against the library's own Segmenter on the
// same image, batching and the bounded queue (with a runner that holds batches, so no timing is
// involved), the per-request timeout, and the bad-input list with a memory check.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/paths.js';
import { decode as decodePng } from 'fast-png';
import { load, type Segmenter } from '../../src/index.js';
import { colorize, overlay } from '../../src/data/image.js';
import { ModelThread } from '../../src/serve/model-thread.js';
import {
  GatedRunner,
  MODEL,
  PRESET,
  metric,
  pngClaiming,
  post,
  startServer,
  testImage,
  waitFor,
  weights,
} from './helpers.js';

const W = 67,
  H = 45;
let thread: ModelThread;
let seg: Segmenter;
let server: Awaited<ReturnType<typeof startServer>>;
let image: Awaited<ReturnType<typeof testImage>>;
let reference: Awaited<ReturnType<Segmenter['segment']>>;

before(async () => {
  [thread, seg, image] = await Promise.all([
    ModelThread.start(PRESET, { weights: weights() }),
    load(PRESET, { weights: weights() }),
    testImage(W, H),
  ]);
  reference = await seg.segment(image.png);
  server = await startServer({
    runner: thread,
    model: MODEL,
    limits: { maxBodyBytes: 256 * 1024, maxPixels: 1_000_000, bodyTimeoutMs: 1000 },
  });
});

after(async () => {
  await server?.app.close();
  await thread?.close();
  seg?.dispose();
});

/** A PNG's samples as stored (fast-png: sharp would widen a gray PNG to RGB). */
async function labelsOf(png: ArrayBuffer): Promise<{ data: Uint8Array; channels: number; width: number }> {
  const d = decodePng(new Uint8Array(png));
  return { data: new Uint8Array(d.data), channels: d.channels, width: d.width };
}

test('health, readiness and metadata (Open Inference Protocol routes) name the model, its classes and precision', async () => {
  const u = server.url;
  for (const path of ['/v2/health/live', '/v2/health/ready', `/v2/models/${PRESET}/ready`]) {
    const r = await fetch(u + path);
    assert.equal(r.status, 200, path);
    assert.equal(await r.text(), '');
  }
  assert.deepEqual(await (await fetch(`${u}/v2`)).json(), { name: 'deeplab', version: '0.1.0', extensions: [] });
  const meta = (await (await fetch(`${u}/v2/models/${PRESET}`)).json()) as any;
  assert.equal(meta.name, PRESET);
  assert.deepEqual(meta.outputs, [{ name: 'labels', datatype: 'UINT8', shape: [-1, -1] }]);
  assert.equal(meta.parameters.precision, 'fp32');
  assert.equal(meta.parameters.classes[15], 'person');
  const health = (await (await fetch(`${u}/health`)).json()) as any;
  assert.equal(health.status, 'ready');
  assert.equal(health.model, PRESET);
  assert.equal(health.classes.length, 21);
  assert.deepEqual(health.classes[15], { id: 15, name: 'person', color: [192, 128, 128] });
  const wrong = await fetch(`${u}/v2/models/resnet/ready`);
  assert.equal(wrong.status, 404);
  assert.deepEqual(await wrong.json(), { error: `unknown model "resnet"; this server serves "${PRESET}"` });
});

test('--onnx: the file is handed out for the page; without it, a 404 that says so', async () => {
  const file = join(tempDir('deeplab-onnx-'), 'model.onnx');
  writeFileSync(file, Buffer.from([8, 7, 18, 4]));
  const s = await startServer({ runner: thread, model: MODEL, onnxFile: file });
  try {
    const health = (await (await fetch(`${s.url}/health`)).json()) as any;
    assert.equal(health.onnx, `/v2/models/${PRESET}/onnx`);
    const r = await fetch(s.url + health.onnx);
    assert.equal(r.status, 200);
    assert.deepEqual(new Uint8Array(await r.arrayBuffer()), Uint8Array.from([8, 7, 18, 4]));
    const none = await fetch(`${server.url}/v2/models/${PRESET}/onnx`);
    assert.equal(none.status, 404);
    assert.deepEqual(await none.json(), { error: 'this server was started without --onnx FILE' });
  } finally {
    await s.app.close();
  }
});

test('a dead model thread: readiness 503; a failing forward pass: 500 without its internals', async () => {
  const dead = await startServer({
    runner: { alive: false, run: () => Promise.reject(new Error('the model thread exited (code 1)')) },
    model: MODEL,
  });
  try {
    assert.equal((await fetch(`${dead.url}/v2/health/live`)).status, 200);
    assert.equal((await fetch(`${dead.url}/v2/health/ready`)).status, 503);
    assert.equal((await fetch(`${dead.url}/v2/models/${PRESET}/ready`)).status, 503);
    const h = await fetch(`${dead.url}/health`);
    assert.equal(h.status, 503);
    assert.equal(((await h.json()) as any).status, 'the model thread has stopped');
    const r = await post(dead.url, image.png);
    assert.equal(r.status, 500);
    assert.deepEqual(await r.json(), { error: 'internal server error' });
  } finally {
    await dead.app.close();
  }
});

test('each output format equals the library: label PNG, colour mask, overlay, JSON shares', async () => {
  const labels = await post(server.url, image.png);
  assert.equal(labels.status, 200);
  assert.equal(labels.headers.get('content-type'), 'image/png');
  assert.match(labels.headers.get('server-timing')!, /^queue;dur=[\d.]+, infer;dur=[\d.]+$/);
  const l = await labelsOf(await labels.arrayBuffer());
  const tensors = thread.liveTensors; // after one batch: the model's weights
  assert.equal(l.channels, 1);
  assert.deepEqual(l.data, reference.labels);

  const color = colorize(reference.labels, MODEL.palette.colors);
  const c = await labelsOf(await (await post(server.url, image.png, 'image/png', '?format=color')).arrayBuffer());
  assert.deepEqual(c.data, color);
  const o = await labelsOf(await (await post(server.url, image.png, 'image/png', '?format=overlay')).arrayBuffer());
  assert.deepEqual(o.data, overlay({ width: W, height: H, data: image.rgb }, color));

  // JSON by Accept, and the same by ?format=json
  const j = (await (
    await fetch(`${server.url}/v2/models/${PRESET}/segment`, {
      method: 'POST',
      body: image.png,
      headers: { 'Content-Type': 'image/png', Accept: 'application/json' },
    })
  ).json()) as any;
  assert.equal(j.model, PRESET);
  assert.deepEqual([j.width, j.height], [W, H]);
  assert.deepEqual(
    j.classes.map((k: any) => [k.id, k.name, k.pixels]),
    reference.legend.map((k) => [k.id, k.name, k.pixels]),
  );
  const sum = j.classes.reduce((s: number, k: any) => s + k.share, 0);
  assert.ok(Math.abs(sum - 1) < 1e-12, `shares sum to ${sum}`);
  assert.ok(j.classes.every((k: any) => k.share === k.pixels / (W * H)));
  const byParam = await (await post(server.url, image.png, 'image/png', '?format=json')).json();
  assert.deepEqual(byParam, j);

  // multipart/form-data, as a browser form or `curl -F` sends it
  const form = new FormData();
  form.append('image', new Blob([image.png], { type: 'image/png' }), 'x.png');
  const mp = await fetch(`${server.url}/v2/models/${PRESET}/segment`, { method: 'POST', body: form });
  assert.equal(mp.status, 200);
  assert.deepEqual((await labelsOf(await mp.arrayBuffer())).data, reference.labels);
  assert.equal(thread.liveTensors, tensors); // every batch's tensors freed on the model thread
});

test('same-size requests that wait together run as one batch (metrics), with the library result each', async () => {
  const gated = new GatedRunner(thread);
  const s = await startServer({ runner: gated, model: MODEL, maxBatch: 4, maxWaitMs: 0 });
  try {
    const imgs = await Promise.all([1, 2, 3, 4, 5].map((k) => testImage(W, H, k)));
    const replies = imgs.map((i) => post(s.url, i.png, 'image/png', '?format=labels'));
    await waitFor(() => gated.sizes.length === 1 && s.batcher.depth === 4, 'one running and four waiting');
    gated.release();
    const got = await Promise.all(replies);
    assert.deepEqual(gated.sizes, [1, 4]);
    // One request ran alone and four together; which one came first is the uploads' race.
    assert.deepEqual(got.map((r) => r.headers.get('x-batch-size')).sort(), ['1', '4', '4', '4', '4']);
    for (let k = 0; k < imgs.length; k++) {
      const want = (await seg.segment(imgs[k].png)).labels;
      const have = (await labelsOf(await got[k].arrayBuffer())).data;
      let same = 0;
      for (let i = 0; i < want.length; i++) same += Number(want[i] === have[i]);
      // a batch of 4 may take other oneDNN kernels than a batch of 1: ties may flip, nothing more
      assert.ok(same / want.length >= 0.999, `image ${k}: ${same} of ${want.length} labels agree`);
    }
    const text = await (await fetch(`${s.url}/metrics`)).text();
    assert.equal(metric(text, 'deeplab_batch_size_count'), 2);
    assert.equal(metric(text, 'deeplab_batch_size_sum'), 5);
    assert.equal(metric(text, 'deeplab_batch_size_bucket', { le: '1' }), 1);
    assert.equal(metric(text, 'deeplab_requests_total', { format: 'labels', code: '200' }), 5);
    assert.equal(metric(text, 'deeplab_request_duration_seconds_count', { format: 'labels' }), 5);
    assert.equal(metric(text, 'deeplab_queue_depth'), 0);
    assert.equal(metric(text, 'deeplab_model_live_tensors'), thread.liveTensors);
    assert.ok(thread.liveTensors > 0); // the model's weights
    assert.ok(metric(text, 'process_resident_memory_bytes') > 0);
  } finally {
    await s.app.close();
  }
});

test('a full queue answers 503 with Retry-After at once; the waiting requests still succeed', async () => {
  const gated = new GatedRunner(thread);
  const s = await startServer({ runner: gated, model: MODEL, maxBatch: 1, maxQueue: 1, maxWaitMs: 0 });
  try {
    const running = post(s.url, image.png);
    await waitFor(() => gated.sizes.length === 1, 'the first request to run');
    const waiting = post(s.url, image.png);
    await waitFor(() => s.batcher.depth === 1, 'the second request to wait');
    const refused = await post(s.url, image.png);
    assert.equal(refused.status, 503);
    assert.equal(refused.headers.get('retry-after'), '1');
    assert.deepEqual(await refused.json(), {
      error: 'the server is busy: 1 images already wait for the model; retry later',
    });
    gated.release();
    assert.deepEqual(
      (await Promise.all([running, waiting])).map((r) => r.status),
      [200, 200],
    );
    const text = await (await fetch(`${s.url}/metrics`)).text();
    assert.equal(metric(text, 'deeplab_requests_total', { format: 'labels', code: '503' }), 1);
  } finally {
    await s.app.close();
  }
});

test('the per-request timeout answers 503 and takes the image out of the queue', async () => {
  const gated = new GatedRunner(thread);
  const s = await startServer({ runner: gated, model: MODEL, maxBatch: 1, maxWaitMs: 0, limits: { timeoutMs: 300 } });
  try {
    const running = post(s.url, image.png);
    await waitFor(() => gated.sizes.length === 1, 'the first request to run');
    const late = await post(s.url, image.png);
    assert.equal(late.status, 503);
    assert.deepEqual(await late.json(), { error: 'no result within 300 ms: the server is overloaded' });
    assert.equal(s.batcher.depth, 0);
    gated.release();
    assert.equal((await running).status, 503); // it waited past its deadline too, inside the model
  } finally {
    await s.app.close();
  }
});

/** Sends raw bytes on a fresh connection; resolves with the response text (or '' if the server closed). */
function rawRequest(
  url: string,
  head: string,
  parts: { bytes: Buffer | string; afterMs?: number }[],
  o: { destroyAfter?: boolean } = {},
): Promise<string> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const sock = connect(Number(port), '127.0.0.1');
    let text = '';
    sock.on('data', (d) => (text += d.toString('latin1')));
    sock.on('error', reject);
    sock.on('close', () => resolve(text));
    sock.on('connect', () => {
      void (async () => {
        sock.write(head);
        for (const p of parts) {
          if (p.afterMs) await new Promise((r) => setTimeout(r, p.afterMs));
          sock.write(p.bytes);
        }
        if (o.destroyAfter) sock.destroy();
      })();
    });
  });
}

const segmentHead = (length: number, extra = '') =>
  `POST /v2/models/${PRESET}/segment HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: ${length}\r\nConnection: close\r\n${extra}\r\n`;

test('bad input: a 4xx with a clear JSON error for each, and the server keeps serving', async () => {
  const u = server.url;
  const expect = async (r: Response, status: number, error: RegExp) => {
    assert.equal(r.status, status);
    const body = (await r.json()) as Record<string, string>;
    assert.deepEqual(Object.keys(body), ['error']); // no stack, no internals
    assert.match(body.error, error);
  };
  await expect(
    await post(u, 'hello, not an image'),
    415,
    /^the body is not an image this server reads \(JPEG, PNG, WebP, TIFF or GIF\)$/,
  );
  await expect(
    await post(u, image.png.subarray(0, image.png.length >> 1)),
    400,
    /^the uploaded image: cannot decode image/,
  );
  await expect(
    await post(u, pngClaiming(image.png, 10_000, 10_000)),
    413,
    /^the image is 10000x10000 \(100\.0 megapixels\); this server takes at most 1\.0 megapixels$/,
  );
  await expect(
    await post(u, '{"image": 1}', 'application/json'),
    415,
    /^Content-Type application\/json is not accepted/,
  );
  await expect(await post(u, Buffer.alloc(0)), 400, /^the body is empty/);
  await expect(await post(u, Buffer.alloc(300 * 1024, 1)), 413, /larger than this server's limit of 262144 bytes/);
  await expect(
    await post(u, image.png, 'image/png', '?format=svg'),
    400,
    /^format must be one of labels, color, overlay, json; got "svg"$/,
  );
  await expect(await fetch(`${u}/v2/models/nope/segment`, { method: 'POST' }), 404, /unknown model "nope"/);
  const form = (blob: Blob | string) => {
    const f = new FormData();
    f.append('image', blob);
    return fetch(`${u}/v2/models/${PRESET}/segment`, { method: 'POST', body: f });
  };
  await expect(
    await form(new Blob([Buffer.alloc(300 * 1024, 1)])),
    413,
    /larger than this server's limit of 262144 bytes/,
  );
  await expect(await form('just a text field'), 400, /^the multipart form has no file/);

  // A slow client: the body does not arrive within the server's bodyTimeoutMs (1 s here).
  const slow = await rawRequest(u, segmentHead(image.png.length), [
    { bytes: image.png.subarray(0, 10) },
    { bytes: image.png.subarray(10, 20), afterMs: 300 },
  ]);
  assert.match(slow, /^HTTP\/1\.1 408 /);
  assert.match(slow, /\{"error":"the request body did not arrive within 1000 ms"\}$/);

  // A client that disconnects mid-upload gets nothing; the server goes on.
  const gone = await rawRequest(u, segmentHead(image.png.length), [{ bytes: image.png.subarray(0, 100) }], {
    destroyAfter: true,
  });
  assert.equal(gone, '');
  const next = await post(u, image.png);
  assert.equal(next.status, 200);
  assert.deepEqual((await labelsOf(await next.arrayBuffer())).data, reference.labels);
});

test('bad input does not grow memory: 200 bad requests after a warm-up', async () => {
  const u = server.url;
  const bad = [
    () => post(u, 'hello'),
    () => post(u, image.png.subarray(0, 200)),
    () => post(u, pngClaiming(image.png, 10_000, 10_000)),
    () => post(u, 'x', 'text/plain'),
    () => post(u, Buffer.alloc(0)),
    () => rawRequest(u, segmentHead(5000), [{ bytes: image.png.subarray(0, 100) }], { destroyAfter: true }),
  ];
  const round = async (n: number) => {
    for (let i = 0; i < n; i++) {
      const r = await bad[i % bad.length]();
      if (r instanceof Response) await r.arrayBuffer();
    }
  };
  await round(40);
  const before = process.memoryUsage().rss;
  await round(200);
  const grown = (process.memoryUsage().rss - before) / 2 ** 20;
  // generous: what matters is no per-request growth (200 leaked images would be far more)
  assert.ok(grown < 48, `RSS grew ${grown.toFixed(1)} MiB over 200 bad requests`);
  assert.equal((await post(u, image.png)).status, 200);
});
