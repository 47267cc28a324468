// Faults of a data-parallel job on loopback: a rank that dies or hangs stops the others within the
// timeout with a message naming it, and leaves no process behind; a rendezvous that cannot
// complete, a port in use, a bad environment, an unreachable master and configs or checkpoints
// that differ across ranks are clear errors on every rank, with nothing written.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import * as torch from '../../src/torch/index.js';
import { cliMain, repoRoot, tempDir } from '../helpers/paths.js';
import { writeCityscapes } from '../helpers/tiny-datasets.js';
import { closedPort, killAll, rankEnv, runNode, workerScript } from './spawn.js';
import { readDistEnv } from '../../src/distributed/env.js';

after(killAll);

const config = join(repoRoot, 'configs/deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.json');
const TIMEOUT = { TEST_DIST_TIMEOUT_MS: '2000' };

/** Processes whose command line contains `marker` (none may outlive a job). */
function processesWith(marker: string): string[] {
  const ps = execFileSync('ps', ['-eo', 'pid,stat,args'], { encoding: 'utf8' });
  return ps.split('\n').filter((l) => l.includes(marker) && !l.includes('ps -eo'));
}

/** A store served by the test, as torchrun's agent serves one; ranks connect as clients. */
function agentStore(): torch.distributed.Store {
  return torch.distributed.Store.create('127.0.0.1', 0, { isServer: true, worldSize: 2, timeoutMs: 20000 });
}

// The tests mostly wait (for timeouts, for processes to start): two at a time.
describe('faults', { concurrency: 2 }, () => {
  for (const how of ['die', 'hang'] as const) {
    test(`launcher: rank 1 that ${how}s stops the job, named, non-zero, no process left`, async () => {
      const out = tempDir(`ddp-${how}-`);
      // `out` is on every command line of the job: no process may carry it once the launcher exits.
      const r = await runNode([workerScript, 'launch', '2', '--', 'fault', how, '1', out], {
        env: TIMEOUT,
        timeoutMs: 120000,
      });
      assert.equal(r.signal, null, `the launcher itself hung: ${r.out}`);
      assert.equal(r.code, 1, r.out);
      if (how === 'die') assert.match(r.out, /stopped: rank 1 \(local rank 1, pid \d+\) exited with code 3/);
      else {
        // rank 0's collective timed out; it names rank 1, and the launcher reports rank 0's account
        assert.match(r.out, /rank 0: a collective failed: rank 1 stopped responding \(died or hangs\)/);
        assert.match(
          r.out,
          /stopped: rank 0 \(local rank 0, pid \d+\) exited with code 1: a collective failed: rank 1 stopped/,
        );
      }
      assert.deepEqual(readdirSync(out), [], 'no rank finished');
      assert.deepEqual(processesWith(out), []);
    });
  }

  test('two launchers as two nodes (--nnodes 2) meet at node 0 and run the job', async () => {
    const out = tempDir('ddp-nodes-');
    // Node 0 serves on a port both must know in advance; another process may take it between
    // closedPort() and the bind, which node 0 reports as "in use": then try another.
    for (let attempt = 0; ; attempt++) {
      const port = String(await closedPort());
      const node = (rank: number) =>
        runNode([workerScript, 'launch', '1', '--', 'fault', 'ok', '-1', out], {
          env: { TEST_NNODES: '2', TEST_NODE_RANK: String(rank), TEST_MASTER_PORT: port },
        });
      const [n0, n1] = await Promise.all([node(0), node(1)]);
      if (attempt < 3 && /the port is in use/.test(n0.out)) continue;
      assert.equal(n0.code, 0, n0.out);
      assert.equal(n1.code, 0, n1.out);
      assert.match(n0.out, /starting 1 worker \(ranks 0-0 of 2\)/);
      assert.match(n1.out, /starting 1 worker \(ranks 1-1 of 2\)/);
      assert.deepEqual(readdirSync(out).sort(), ['done-0', 'done-1']);
      return;
    }
  });

  test('outside launcher: the surviving rank names the rank that died, within the timeout', async () => {
    const store = agentStore();
    try {
      const out = tempDir('ddp-ext-');
      const env = (rank: number) => ({ ...rankEnv(rank, 2, store.port), ...TIMEOUT });
      const [r0, r1] = await Promise.all(
        [0, 1].map((k) => runNode([workerScript, 'fault', 'die', '1', out], { env: env(k) })),
      );
      assert.equal(r1.code, 3);
      assert.equal(r0.code, 1, r0.out);
      assert.match(r0.out, /rank 0: a collective failed: rank 1 stopped responding \(died or hangs\)/);
    } finally {
      store.close();
    }
  });

  test('a rendezvous that cannot complete times out naming the missing rank', async () => {
    const store = agentStore();
    try {
      const r = await runNode([workerScript, 'fault', 'ok', '-1'], {
        env: { ...rankEnv(0, 2, store.port), TEST_RDZV_TIMEOUT_MS: '2000' },
      });
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, /rank 0: rendezvous timed out after 2 s: rank 1 of WORLD_SIZE=2 never joined/);
    } finally {
      store.close();
    }
  });

  test('--master-port in use: a clear error before any worker starts', async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, r));
    try {
      const port = (server.address() as { port: number }).port;
      const r = await runNode([cliMain, 'train', config, '--nproc-per-node', '2', '--master-port', String(port)]);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, new RegExp(`--master-port ${port}: the port is in use`));
      assert.doesNotMatch(r.out, /starting 2 workers/);
    } finally {
      server.close();
    }
  });

  test('bad environments: WORLD_SIZE without RANK, an unreachable master (the CLI, nothing written)', async () => {
    const wd = tempDir('ddp-badenv-');
    const train = [cliMain, 'train', config, '--set', `workDir=${wd}`, '--rdzv-timeout', '2'];
    const cases: [NodeJS.ProcessEnv, RegExp][] = [
      [{ WORLD_SIZE: '2' }, /deeplab: WORLD_SIZE=2 is set but RANK is not/],
      [
        { ...rankEnv(1, 2, await closedPort()) },
        /rank 1: rendezvous failed: could not reach the store at 127\.0\.0\.1:\d+ within 2 s/,
      ],
    ];
    const runs = await Promise.all(cases.map(([env]) => runNode(train, { env })));
    for (const [i, r] of runs.entries()) {
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, cases[i][1]);
    }
    assert.deepEqual(readdirSync(wd), [], 'nothing written');
  });

  test('readDistEnv: what torchrun sets, and each bad variable named', () => {
    assert.equal(readDistEnv({}), null);
    assert.deepEqual(readDistEnv({ ...rankEnv(1, 2, 29500), DEEPLAB_AGENT_STORE: undefined }), {
      rank: 1,
      worldSize: 2,
      localRank: 1,
      localWorldSize: 2,
      masterAddr: '127.0.0.1',
      masterPort: 29500,
      agentStore: false,
    });
    assert.equal(
      readDistEnv({ ...rankEnv(0, 2, 1), DEEPLAB_AGENT_STORE: undefined, TORCHELASTIC_USE_AGENT_STORE: 'True' })!
        .agentStore,
      true,
    );
    const bad: [NodeJS.ProcessEnv, RegExp][] = [
      [{ RANK: '0' }, /RANK is set but WORLD_SIZE is not/],
      [{ WORLD_SIZE: '2', RANK: '2', MASTER_ADDR: 'h', MASTER_PORT: '1' }, /RANK="2": expected an integer in \[0, 1\]/],
      [{ WORLD_SIZE: '0', RANK: '0' }, /WORLD_SIZE="0": expected an integer >= 1/],
      [{ WORLD_SIZE: '2', RANK: '1' }, /WORLD_SIZE=2: MASTER_ADDR is not set/],
      [
        { WORLD_SIZE: '2', RANK: '1', MASTER_ADDR: 'h', MASTER_PORT: '70000' },
        /MASTER_PORT="70000": expected an integer in \[0, 65535\]/,
      ],
      [{ ...rankEnv(0, 2, 1), LOCAL_RANK: '2' }, /LOCAL_RANK="2": expected an integer in \[0, 1\]/],
    ];
    for (const [env, msg] of bad) assert.throws(() => readDistEnv(env), msg);
  });

  test('configs that differ across ranks: an error on every rank, nothing written', async () => {
    const store = agentStore();
    try {
      const wd = tempDir('ddp-mismatch-');
      const args = (iters: number) => [
        cliMain,
        'train',
        config,
        '--set',
        `workDir=${wd}`,
        '--set',
        `train.iters=${iters}`,
      ];
      const rs = await Promise.all(
        [0, 1].map((k) => runNode(args(10 + k), { env: rankEnv(k, 2, store.port), timeoutMs: 120000 })),
      );
      for (const [k, r] of rs.entries()) {
        assert.equal(r.code, 1, r.out);
        assert.match(
          r.out,
          new RegExp(`rank ${k}: the config differs across ranks: rank 1 has [0-9a-f]{12}, rank 0 has`),
        );
      }
      assert.equal(existsSync(join(wd, 'config.json')), false);
      assert.deepEqual(readdirSync(wd), []);
    } finally {
      store.close();
    }
  });

  test('checkpoints that differ across ranks: an error on every rank before anything is restored', async () => {
    const store = agentStore();
    try {
      const root = await writeCityscapes(tempDir('ddp-ckpt-data-'));
      const wd = tempDir('ddp-ckpt-');
      const files = [0, 1].map((k) => join(wd, `resume-${k}.safetensors`));
      files.forEach((f, k) => writeFileSync(f, `not the same bytes ${k}`));
      const args = (k: number) => [
        cliMain,
        'train',
        config,
        '--set',
        `workDir=${wd}`,
        '--set',
        `data.dataset.root=${root}`,
        '--resume',
        files[k],
      ];
      const rs = await Promise.all(
        [0, 1].map((k) => runNode(args(k), { env: rankEnv(k, 2, store.port), timeoutMs: 120000 })),
      );
      for (const [k, r] of rs.entries()) {
        assert.equal(r.code, 1, r.out);
        assert.match(r.out, new RegExp(`rank ${k}: the checkpoint to resume differs across ranks: rank 1 has 20:`));
      }
      // only what the test put there, and rank 0's resolved config
      assert.deepEqual(readdirSync(wd).sort(), ['config.json', 'resume-0.safetensors', 'resume-1.safetensors']);
    } finally {
      store.close();
    }
  });
});
