// `deeplab serve` under load on loopback (autocannon: fixed clients, fixed duration, then it stops):
// throughput and p50/p99 latency at 1, 4 and 16 clients with batching (--max-batch 4) and without
// (--max-batch 1); 503s when the queue is full (--max-queue 2); the server's resident memory
// before and after 10,000 requests. The server runs as users run it (bin/deeplab, its own process).
//   node dist/bench/serve-load.js [--model P --weights W --size 64 --duration 10 --amount 10000]
import { spawn, type ChildProcess } from 'node:child_process';
import { cpus } from 'node:os';
import autocannon from 'autocannon';
import sharp from 'sharp';
import { benchArgs, benchSize } from './args.js';

const opt = benchArgs({
  '--model': 'deeplabv3_mobilenet_v3_large',
  '--weights': '.cache/fixtures/torchvision/deeplabv3_mobilenet_v3_large.pth',
  '--size': '64',
  '--duration': '10',
  '--amount': '10000',
});
const [H, W] = benchSize(opt['--size']);
const duration = Number(opt['--duration']);

interface Server {
  url: string;
  child: ChildProcess;
}

async function startServe(extra: string[]): Promise<Server> {
  const child = spawn('bin/deeplab', ['serve', '-m', opt['--model'], '-w', opt['--weights'], '--port', '0', ...extra], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = / on (http:\/\/[\d.]+:\d+)\n/.exec(out);
      if (m) resolve(m[1]);
    });
    child.on('exit', (code) => reject(new Error(`deeplab serve exited (${code}): ${out}`)));
  });
  return { url, child };
}

async function stop(s: Server): Promise<void> {
  const exited = new Promise((r) => s.child.on('exit', r));
  s.child.kill('SIGTERM');
  await exited;
}

async function metrics(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const get = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    rss: get('process_resident_memory_bytes'),
    batches: get('deeplab_batch_size_count'),
    images: get('deeplab_batch_size_sum'),
  };
}

function hammer(url: string, png: Buffer, connections: number, o: { duration?: number; amount?: number }) {
  return autocannon({
    url: `${url}/v2/models/${opt['--model']}/segment`,
    method: 'POST',
    headers: { 'content-type': 'image/png' },
    body: png,
    connections,
    timeout: 120, // seconds: on a loaded machine 16 clients wait long, which is latency, not an error
    ...o,
  });
}

interface Row {
  maxBatch: number;
  clients: number;
  rps: number;
  p50: number;
  p99: number;
  meanBatch: number;
  ok: number;
  busy: number;
  other: number;
}

async function main(): Promise<void> {
  const rgb = Buffer.alloc(W * H * 3);
  for (let i = 0; i < W * H; i++) rgb.set([(i * 7) % 256, (i * 13) % 256, (i * 29) % 256], i * 3);
  const png = await sharp(rgb, { raw: { width: W, height: H, channels: 3 } })
    .png()
    .toBuffer();
  const rows: Row[] = [];
  const run = async (s: Server, maxBatch: number, clients: number) => {
    const before = await metrics(s.url);
    const r = await hammer(s.url, png, clients, { duration });
    const after = await metrics(s.url);
    const codes = r.statusCodeStats ?? {};
    const busy = codes['503']?.count ?? 0;
    rows.push({
      maxBatch,
      clients,
      rps: r.requests.average,
      p50: r.latency.p50,
      p99: r.latency.p99,
      meanBatch: (after.images - before.images) / (after.batches - before.batches),
      ok: r['2xx'],
      busy,
      other: r.non2xx - busy + r.errors + r.timeouts,
    });
    console.error(`max batch ${maxBatch}, ${clients} clients: ${r.requests.average} req/s`);
  };
  for (const maxBatch of [4, 1]) {
    const s = await startServe(['--max-batch', String(maxBatch), '--max-queue', '64']);
    await hammer(s.url, png, 4, { duration: 2 }); // warm-up: first forwards, allocator
    for (const clients of [1, 4, 16]) await run(s, maxBatch, clients);
    await stop(s);
  }
  // A queue of 2 against 16 clients: the surplus is refused with 503 + Retry-After.
  const tiny = await startServe(['--max-batch', '4', '--max-queue', '2']);
  await hammer(tiny.url, png, 4, { duration: 2 });
  await run(tiny, 4, 16);
  await stop(tiny);
  const queueRow = rows.pop()!;

  // Resident memory before and after 10,000 requests.
  const s = await startServe(['--max-batch', '4']);
  await hammer(s.url, png, 4, { duration: 3 });
  const rss0 = (await metrics(s.url)).rss;
  const big = await hammer(s.url, png, 16, { amount: Number(opt['--amount']) });
  const rss1 = (await metrics(s.url)).rss;
  await stop(s);

  const cpu = cpus();
  console.log(`${opt['--model']}, ${W}x${H} PNG, ${duration} s per row, ${cpu.length} x ${cpu[0]?.model ?? '?'}\n`);
  console.log('| max batch | clients | req/s | p50 ms | p99 ms | images per forward | 2xx | 503 | errors |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  for (const r of [...rows, { ...queueRow, maxBatch: Number.NaN }])
    console.log(
      `| ${Number.isNaN(r.maxBatch) ? '4, queue 2' : r.maxBatch} | ${r.clients} | ${r.rps.toFixed(1)} | ${r.p50} | ${r.p99} | ${r.meanBatch.toFixed(2)} | ${r.ok} | ${r.busy} | ${r.other} |`,
    );
  const gain = (c: number) =>
    rows.find((r) => r.maxBatch === 4 && r.clients === c)!.rps /
    rows.find((r) => r.maxBatch === 1 && r.clients === c)!.rps;
  console.log(`\nbatching's gain over batch 1: ${gain(4).toFixed(2)}x at 4 clients, ${gain(16).toFixed(2)}x at 16`);
  console.log(
    `resident memory: ${(rss0 / 2 ** 20).toFixed(0)} MiB after warm-up, ${(rss1 / 2 ** 20).toFixed(0)} MiB after ${big['2xx']} more requests (${big.non2xx + big.errors} failed)`,
  );
}

await main();
