// The fuzz child: runs one target's reader on input files the supervisor (run.ts) sends, one at
// a time, and answers with the outcome. A crash, a hang or runaway memory takes down only this
// process; the supervisor sees it, records the input and starts a new child.
import { readCheckpoint, readSafetensors, liveTensors } from '../../src/torch/index.js';
import { readMask } from '../../src/data/masks.js';
import { readImage } from '../../src/data/image.js';
import { loadConfig } from '../../src/config/load.js';

export interface Request {
  id: number;
  path: string;
}
export type Reply =
  | { id: number; ok: true; leaked: number }
  | { id: number; ok: false; name: string; message: string; leaked: number }
  | { id: number; uncaught: true; name: string; message: string };

const target = process.argv[2];

async function run(path: string): Promise<void> {
  switch (target) {
    case 'pth': {
      const c = readCheckpoint(path);
      for (const t of c.tensors.values()) t.dispose();
      return;
    }
    case 'safetensors': {
      const m = readSafetensors(path);
      for (const t of m.values()) t.dispose();
      return;
    }
    case 'mask':
      await readMask(path);
      return;
    case 'image':
      await readImage(path);
      return;
    case 'config':
      loadConfig(path);
      return;
    default:
      throw new Error(`unknown target ${target}`);
  }
}

let current = -1;
const send = (r: Reply | { ready: true }) => process.send!(r);

// An exception that escapes the reader's promise is a bug in the reader, not a refusal.
for (const ev of ['uncaughtException', 'unhandledRejection'] as const) {
  process.on(ev, (e: unknown) => {
    const err = e instanceof Error ? e : new Error(String(e));
    send({ id: current, uncaught: true, name: err.name, message: err.message });
    process.exitCode = 70;
    setImmediate(() => process.exit(70));
  });
}

process.on('message', (req: Request) => void handle(req));

async function handle(req: Request): Promise<void> {
  current = req.id;
  const before = liveTensors();
  try {
    await run(req.path);
    send({ id: req.id, ok: true, leaked: liveTensors() - before });
  } catch (e) {
    const err = e instanceof Error ? e : new Error(String(e));
    send({ id: req.id, ok: false, name: err.name, message: err.message, leaked: liveTensors() - before });
  }
}
send({ ready: true });
