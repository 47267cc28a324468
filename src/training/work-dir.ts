// The files a training run keeps in its work dir, and how a run (fresh, resumed, or resumed after
// a crash, by another process or from a copied folder) puts them in order:
//  - last_checkpoint names the newest checkpoint relative to the work dir, so a moved or copied
//    work dir resumes from its own files;
//  - a write interrupted by a crash leaves a temp file (.NAME.PID.HEX.tmp, see writeSafetensors,
//    or last_checkpoint.tmp): removed when a run starts in the folder;
//  - only the two newest periodic checkpoints (iter_N.safetensors) are kept, whichever process
//    wrote them;
//  - log.jsonl keeps one line per iteration: a resumed run drops the lines past its checkpoint
//    before it writes those iterations again; a fresh run in a used folder first renames the old
//    log to log.<its time>.jsonl, so two runs' lines never mix and nothing is lost.
import { existsSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { readSafetensorsMetadata } from '../torch/index.js';
import { join } from 'node:path';

const TEMP = /^(\..+\.\d+\.[0-9a-f]{12}\.tmp|last_checkpoint\.tmp)$/;
const PERIODIC = /^iter_(\d+)\.safetensors$/;
export const POINTER = 'last_checkpoint';

/** Removes the temp files interrupted writes left; returns their names. */
export function removeStaleTemps(workDir: string): string[] {
  if (!existsSync(workDir)) return [];
  const stale = readdirSync(workDir).filter((f) => TEMP.test(f));
  for (const f of stale) unlinkSync(join(workDir, f));
  return stale;
}

/** The periodic checkpoints on disk, oldest first. */
export function periodicCheckpoints(workDir: string): { iter: number; file: string }[] {
  if (!existsSync(workDir)) return [];
  return readdirSync(workDir)
    .flatMap((f) => {
      const m = PERIODIC.exec(f);
      return m ? [{ iter: Number(m[1]), file: join(workDir, f) }] : [];
    })
    .sort((a, b) => a.iter - b.iter);
}

/** Deletes all but the `keep` newest periodic checkpoints (best_mIoU and final are not periodic). */
export function prunePeriodic(workDir: string, keep = 2): void {
  const all = periodicCheckpoints(workDir);
  for (const { file } of all.slice(0, Math.max(0, all.length - keep))) unlinkSync(file);
}

/** Points last_checkpoint at `file` (a file in the work dir), atomically. */
export function writePointer(workDir: string, file: string): void {
  const pointer = join(workDir, POINTER);
  writeFileSync(`${pointer}.tmp`, relativeName(workDir, file));
  renameSync(`${pointer}.tmp`, pointer);
}

function relativeName(workDir: string, file: string): string {
  const name = file.slice(file.lastIndexOf('/') + 1);
  if (join(workDir, name) !== join(file)) throw new Error(`checkpoint ${file} is not in the work dir ${workDir}`);
  return name;
}

/**
 * The checkpoint last_checkpoint names, in this work dir; null when there is none. A name with a
 * folder in it (written by an older version) is read by its file name, in this work dir.
 */
export function readPointer(workDir: string): string | null {
  const pointer = join(workDir, POINTER);
  const st = statSync(pointer, { throwIfNoEntry: false });
  if (!st) return null;
  if (!st.isFile())
    throw new Error(`${pointer}: expected a file naming the last checkpoint, found a folder or other non-file`);
  const named = readFileSync(pointer, 'utf8').trim();
  const file = join(workDir, named.slice(named.lastIndexOf('/') + 1));
  if (!named || !existsSync(file)) throw new Error(`${pointer} names "${named}", which is not a file in ${workDir}`);
  return file;
}

/**
 * A fresh run's start: an earlier run's log.jsonl becomes log.<its last write, UTC>.jsonl (with
 * -2, -3 ... if taken). Returns the new name, or null when there was no log or an empty one.
 */
export function setAsideLog(logFile: string): string | null {
  if (!existsSync(logFile) || statSync(logFile).size === 0) return null;
  const stamp = statSync(logFile).mtime.toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
  const base = logFile.replace(/\.jsonl$/, `.${stamp}`);
  let name = `${base}.jsonl`;
  for (let k = 2; existsSync(name); k++) name = `${base}-${k}.jsonl`;
  renameSync(logFile, name);
  return name;
}

/** Keeps the log lines of iterations up to `iter` (a resumed run writes the later ones again). */
export function truncateLog(logFile: string, iter: number): void {
  if (!existsSync(logFile)) return;
  const lines = readFileSync(logFile, 'utf8').split('\n').filter(Boolean);
  const kept = lines.filter((l) => {
    try {
      return (JSON.parse(l) as { iter?: number }).iter! <= iter;
    } catch {
      return false; // a line cut short by a crash
    }
  });
  if (kept.length !== lines.length) writeFileSync(logFile, kept.map((l) => l + '\n').join(''));
}

/**
 * The mIoU recorded in best_mIoU.safetensors' metadata (its header only), or null. Writes are
 * atomic, so an unreadable file was not written by a run: it takes no part in the comparison.
 */
export function bestMIoUOnDisk(workDir: string): number | null {
  const file = join(workDir, 'best_mIoU.safetensors');
  if (!existsSync(file)) return null;
  try {
    const v = Number(readSafetensorsMetadata(file).mIoU);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}
