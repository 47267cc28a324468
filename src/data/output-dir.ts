// Output folders, made one level at a time. Node 20's mkdirSync(dir, { recursive: true }) never
// returns for some paths under /proc (it retries a component the kernel refuses forever), and its
// errors name neither the folder asked for nor why: this names both, and fails at once.
import { mkdirSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

export function ensureDir(dir: string, what = 'output folder'): string {
  const abs = resolve(dir);
  const missing: string[] = [];
  let p = abs;
  for (;;) {
    let st;
    try {
      st = statSync(p, { throwIfNoEntry: false });
    } catch (e) {
      // ENOTDIR: a file stands somewhere above; the loop reaches it and says so.
      if ((e as NodeJS.ErrnoException).code !== 'ENOTDIR') throw e;
    }
    if (st) {
      if (!st.isDirectory()) throw new Error(`${what} ${dir}: ${p} exists and is not a folder`);
      break;
    }
    missing.unshift(p);
    const up = dirname(p);
    if (up === p) break;
    p = up;
  }
  for (const m of missing) {
    try {
      mkdirSync(m);
    } catch (e) {
      const err = e as NodeJS.ErrnoException;
      if (err.code === 'EEXIST' && statSync(m).isDirectory()) continue;
      throw new Error(`${what} ${dir}: cannot create ${m} (${err.code ?? err.message})`);
    }
  }
  return abs;
}
