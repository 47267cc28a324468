// `deeplab serve` under load on loopback (autocannon: fixed clients, fixed duration, then it stops):
// throughput and p50/p99 latency at 1, 4 and 16 clients with batching (--max-batch 4) and without
// (--max-batch 1); 503s when the queue is full (--max-queue 2); the server's resident memory
// before and after 10,000 requests. The server runs as users run it (bin/deeplab, its own process).
//   node dist/bench/serve-load.js [--model P --weights W --size 64 --duration 10 --rounds 2
//                                  --amount 10000 --mem-size 32]
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
  '--mem-size': '32',
  '--rounds': '2',
});
const [H, W] = benchSize(opt['--size']);
const duration = Number(opt['--duration']);
const rounds = Number(opt['--rounds']);

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

async function testPng(size: string): Promise<Buffer> {
  const [h, w] = benchSize(size);
  const rgb = Buffer.alloc(w * h * 3);
  for (let i = 0; i < w * h; i++) rgb.set([(i * 7) % 256, (i * 13) % 256, (i * 29) % 256], i * 3);
  return sharp(rgb, { raw: { width: w, height: h, channels: 3 } })
    .png()
    .toBuffer();
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

async function main(): Promise<void> {
  const png = await testPng(opt['--size']);
  const run = async (s: Server, clients: number): Promise<Row> => {
    const before = await metrics(s.url);
    const r = await hammer(s.url, png, clients, { duration });
    const after = await metrics(s.url);
    const busy = r.statusCodeStats?.['503']?.count ?? 0;
    return {
      maxBatch: 0,
      clients,
      rps: r.requests.average,
      p50: r.latency.p50,
      p99: r.latency.p99,
      meanBatch: (after.images - before.images) / (after.batches - before.batches),
      ok: r['2xx'],
      busy,
      other: r.non2xx - busy + r.errors + r.timeouts,
    };
  };
  // Both servers up at once (an idle one costs nothing), rows interleaved round by round, so
  // a change in the machine's load hits both settings alike.
  const batches = [4, 1];
  const servers = await Promise.all(batches.map((b) => startServe(['--max-batch', String(b), '--max-queue', '64'])));
  for (const s of servers) await hammer(s.url, png, 4, { duration: 2 }); // warm-up: first forwards, allocator
  const rows: Row[] = [];
  for (const clients of [1, 4, 16]) {
    const got: Row[][] = batches.map(() => []);
    for (let round = 0; round < rounds; round++)
      for (let k = 0; k < batches.length; k++) got[k].push(await run(servers[k], clients));
    got.forEach((rs, k) => {
      const row: Row = {
        maxBatch: batches[k],
        clients,
        rps: mean(rs.map((r) => r.rps)),
        p50: mean(rs.map((r) => r.p50)),
        p99: mean(rs.map((r) => r.p99)),
        meanBatch: mean(rs.map((r) => r.meanBatch)),
        ok: rs.reduce((a, r) => a + r.ok, 0),
        busy: rs.reduce((a, r) => a + r.busy, 0),
        other: rs.reduce((a, r) => a + r.other, 0),
      };
      rows.push(row);
      console.error(`max batch ${row.maxBatch}, ${clients} clients: ${row.rps.toFixed(1)} req/s`);
    });
  }
  await Promise.all(servers.map(stop));

  // A queue of 2 against 16 clients: the surplus is refused with 503 + Retry-After.
  const tiny = await startServe(['--max-batch', '4', '--max-queue', '2']);
  await hammer(tiny.url, png, 4, { duration: 2 });
  const queueRow = await run(tiny, 16);
  await stop(tiny);

  // Resident memory before and after 10,000 requests.
  const memPng = await testPng(opt['--mem-size']);
  const s = await startServe(['--max-batch', '4']);
  await hammer(s.url, memPng, 4, { duration: 3 });
  const rss0 = (await metrics(s.url)).rss;
  const big = await hammer(s.url, memPng, 16, { amount: Number(opt['--amount']) });
  const rss1 = (await metrics(s.url)).rss;
  await stop(s);

  const cpu = cpus();
  console.log(
    `${opt['--model']}, ${W}x${H} PNG, ${rounds} x ${duration} s per row (interleaved), ${cpu.length} x ${cpu[0]?.model ?? '?'}, DEEPLAB_THREADS=${process.env.DEEPLAB_THREADS ?? '(cores)'}\n`,
  );
  console.log('| max batch | clients | req/s | p50 ms | p99 ms | images per forward | 2xx | 503 | errors |');
  console.log('|---|---|---|---|---|---|---|---|---|');
  const line = (label: string, r: Row) =>
    console.log(
      `| ${label} | ${r.clients} | ${r.rps.toFixed(1)} | ${r.p50.toFixed(0)} | ${r.p99.toFixed(0)} | ${r.meanBatch.toFixed(2)} | ${r.ok} | ${r.busy} | ${r.other} |`,
    );
  for (const r of rows) line(String(r.maxBatch), r);
  line('4, queue of 2', queueRow);
  const gain = (c: number) =>
    rows.find((r) => r.maxBatch === 4 && r.clients === c)!.rps /
    rows.find((r) => r.maxBatch === 1 && r.clients === c)!.rps;
  console.log(`\nbatching's gain over batch 1: ${gain(4).toFixed(2)}x at 4 clients, ${gain(16).toFixed(2)}x at 16`);
  console.log(
    `resident memory (${opt['--mem-size']} PNG, 16 clients): ${(rss0 / 2 ** 20).toFixed(0)} MiB after warm-up, ${(rss1 / 2 ** 20).toFixed(0)} MiB after ${big['2xx']} more requests (${big.non2xx + big.errors + big.timeouts} failed)`,
  );
}

await main();
