// `deeplab serve` as a process: it listens on 127.0.0.1 by default, and SIGTERM lets a request
// that is in flight finish while new connections are refused, then exits 0. Bad weights fail
// before listening, naming the file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { connect } from 'node:net';
import { promisify } from 'node:util';
import { decode as decodePng } from 'fast-png';
import { cliMain } from '../helpers/paths.js';
import { PRESET, testImage, waitFor, weights } from './helpers.js';

test('SIGTERM: the in-flight upload finishes with its result, new connections are refused, exit 0', async () => {
  const child = spawn(process.execPath, [cliMain, 'serve', '-m', PRESET, '-w', weights(), '--port', '0'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    await waitFor(() => / on http:\/\/127\.0\.0\.1:\d+\n/.test(out), 'the server to listen', 60_000);
    const port = Number(/ on http:\/\/127\.0\.0\.1:(\d+)/.exec(out)![1]);
    const { png } = await testImage(40, 30);

    // Half the upload, then SIGTERM, then the other half.
    const sock = connect(port, '127.0.0.1');
    let reply = Buffer.alloc(0);
    sock.on('data', (d: Buffer) => (reply = Buffer.concat([reply, d])));
    const closed = new Promise((r) => sock.on('close', r));
    await new Promise((r) => sock.on('connect', r));
    sock.write(
      `POST /v2/models/${PRESET}/segment HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: ${png.length}\r\n\r\n`,
    );
    sock.write(png.subarray(0, 50));
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGTERM');
    await waitFor(() => out.includes('SIGTERM: finishing in-flight requests'), 'the server to start closing');
    // the listening socket is closed: a new connection is refused
    const refused = await new Promise<string>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? ''));
      s.on('connect', () => {
        s.destroy();
        resolve('connected');
      });
    });
    assert.equal(refused, 'ECONNREFUSED');
    sock.write(png.subarray(50)); // not end(): a half-closed request is aborted by Node
    await closed;
    const text = reply.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 200 /, out);
    const body = reply.subarray(reply.indexOf('\r\n\r\n') + 4);
    const labels = decodePng(body);
    assert.deepEqual([labels.width, labels.height, labels.channels], [40, 30, 1]);
    assert.equal(await exited, 0);
    assert.match(out, /deeplab serve: stopped\n$/);
  } finally {
    child.kill('SIGKILL');
  }
});

test('a weights file that does not exist fails before listening, naming it', async () => {
  const run = promisify(execFile);
  await assert.rejects(
    run(process.execPath, [cliMain, 'serve', '-m', PRESET, '-w', '/nonexistent/w.pth', '--port', '0']),
    (e: any) => {
      assert.equal(e.code, 1);
      assert.match(e.stderr, /\/nonexistent\/w\.pth/);
      return true;
    },
  );
});
