// The restricted unpickler on plain Python data at protocols 2 and 5, and on a pickle that
// would run a shell command under Python's own pickle: ours only records it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { unpickle, PickledObject, UnpicklingError } from '../../src/torch/serialize/index.js';
import { checkpointFixture } from './fixtures.js';

for (const proto of [2, 5]) {
  test(`plain Python data, protocol ${proto}`, () => {
    const buf = readFileSync(checkpointFixture(`plain_p${proto}.pkl`));
    const { value, end } = unpickle(buf);
    assert.equal(end, buf.length);
    assert.ok(value instanceof Map);
    const v = value as Map<unknown, any>;
    assert.deepEqual(v.get('int'), [0, 255, 65535, -1, 2 ** 31 - 1, -(2 ** 31), 2 ** 40, -(2n ** 70n), 2n ** 64n]);
    assert.deepEqual(v.get('float'), [1.5, -0, 1e300]);
    assert.deepEqual(v.get('str'), ['', 'abc', 'é✓', 'x'.repeat(300)]);
    assert.deepEqual(v.get('bytes'), [new Uint8Array(0), new Uint8Array([0, 255]), new Uint8Array(300).fill(0x79)]);
    assert.equal(v.get('none'), null);
    assert.deepEqual(v.get('bools'), [true, false]);
    assert.deepEqual(v.get('tuples'), [[], [1], [1, 2], [1, 2, 3], [1, 2, 3, 4]]);
    assert.deepEqual(
      v.get('nested'),
      new Map<unknown, unknown>([
        ['list', [[1], new Map([['k', 'v']])]],
        [3, 'int key'],
      ]),
    );
    assert.deepEqual(v.get('set'), new Set([7]));
    assert.deepEqual(v.get('frozen'), new Set([8]));
    assert.deepEqual(
      [...v.get('od')],
      [
        ['z', 1],
        ['a', 2],
      ],
    );
    const ns = v.get('ns');
    assert.ok(ns instanceof PickledObject);
    assert.equal(ns.className, 'argparse.Namespace');
    assert.deepEqual(ns.state, new Map([['lr', 0.5]]));
    // The memo keeps shared references shared.
    const shared = v.get('shared');
    assert.deepEqual(shared, [
      [1, 2],
      [1, 2],
    ]);
    assert.equal(shared[0], shared[1]);
  });
}

test('a global outside the allow-list is recorded, never called', () => {
  const { value } = unpickle(readFileSync(checkpointFixture('evil.pkl')));
  const x = (value as Map<string, unknown>).get('x');
  assert.ok(x instanceof PickledObject);
  assert.equal(x.className, 'posix.system');
  assert.deepEqual(x.args, ['echo pwned > /tmp/deeplab-pwned']);
  assert.equal(existsSync('/tmp/deeplab-pwned'), false);
});

test('damaged pickles fail with UnpicklingError', () => {
  const buf = readFileSync(checkpointFixture('plain_p2.pkl'));
  assert.throws(
    () => unpickle(buf.subarray(0, 100)),
    (e: Error) => e instanceof UnpicklingError && /truncated/.test(e.message),
  );
  assert.throws(() => unpickle(Uint8Array.of(0x80, 0x02, 0xff)), /unsupported pickle opcode 0xff/);
  assert.throws(() => unpickle(Uint8Array.of(0x80, 0x02, 0x2e)), /stack underflow/);
  // A persistent id with no loader to resolve it.
  assert.throws(() => unpickle(Uint8Array.of(0x80, 0x02, 0x4b, 0x01, 0x51, 0x2e)), /persistent id/);
});

test('a LONG4 of a million bytes decodes to the exact value (byte-by-byte BigInt shifts were quadratic)', () => {
  const n = 1_000_000;
  const b = new Uint8Array(2 + 5 + n + 1);
  b.set([0x80, 0x02, 0x8b], 0);
  new DataView(b.buffer).setInt32(3, n, true);
  b.fill(0xab, 7, 7 + n - 1);
  b[7 + n - 1] = 0x7f; // top byte positive
  b[7 + n] = 0x2e;
  const v = unpickle(b).value as bigint;
  assert.equal(typeof v, 'bigint');
  assert.equal(v.toString(16).length, 2 * n);
  assert.equal(v >> BigInt(8 * (n - 1)), 0x7fn);
  assert.equal(v & 0xffffn, 0xababn);
  // Negative values: two's complement of the full width.
  assert.equal(unpickle(Uint8Array.of(0x80, 0x02, 0x8a, 0x02, 0x00, 0x80, 0x2e)).value, -32768);
  assert.equal(unpickle(Uint8Array.of(0x80, 0x02, 0x8a, 0x01, 0xff, 0x2e)).value, -1);
});
