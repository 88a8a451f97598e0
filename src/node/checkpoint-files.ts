/**
 * Checkpoint files, for Node: `encodeCheckpoint`'s bytes written atomically and durably, and read back.
 *
 * A write goes to a temporary file in the same directory, which is fsynced, renamed over the target, and
 * the directory is fsynced, so a crash or kill at any moment leaves either the old checkpoint or the new
 * one, never a mix (a kill can leave the `.NAME.PID.HEX.tmp` file behind, which is safe to delete).
 * `saveCheckpoint` / `loadCheckpoint` return Promises; the Sync variants block. Saving takes the snapshot
 * synchronously when called, so training that continues while the file is being written does not leak
 * into it.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync,
} from "node:fs";
import { open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { Sequential } from "../model.js";
import { encodeCheckpoint, decodeCheckpoint } from "../checkpoint.js";
import { CheckpointError, ValueError, fmtValue } from "../errors.js";

function checkPath(what: string, path: unknown): string {
  if (typeof path !== "string" || path.length === 0) {
    throw new ValueError(`${what} path: expected a non-empty file path string, got ${fmtValue(path)}`);
  }
  return resolve(path);
}

function tempPath(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

function ioError(msg: string, cause: unknown): CheckpointError {
  const e = new CheckpointError(`${msg}: ${(cause as Error)?.message ?? String(cause)}`);
  (e as { cause?: unknown }).cause = cause;
  return e;
}

/** Some platforms (Windows) cannot open or fsync a directory; the rename is still atomic there. */
function ignorableDirSyncError(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  return code === "EISDIR" || code === "EINVAL" || code === "EPERM" || code === "EACCES" || code === "ENOTSUP";
}

/**
 * Writes a checkpoint atomically and durably, blocking until it is on disk.
 *
 * @example
 * saveCheckpointSync(model, "runs/epoch-5.ckpt");
 */
export function saveCheckpointSync(model: Sequential, path: string): void {
  const target = checkPath("save", path);
  const bytes = encodeCheckpoint(model);
  const tmp = tempPath(target);
  let fd = -1;
  try {
    fd = openSync(tmp, "wx", 0o644);
    for (let off = 0; off < bytes.length;) off += writeSync(fd, bytes, off, bytes.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, target);
  } catch (e) {
    if (fd >= 0) try { closeSync(fd); } catch { /* already failing */ }
    try { unlinkSync(tmp); } catch { /* never created, or already renamed */ }
    throw ioError(`save ${path}: cannot write the checkpoint`, e);
  }
  try {
    const dfd = openSync(dirname(target), "r");
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch (e) {
    if (!ignorableDirSyncError(e)) throw ioError(`save ${path}: written, but the directory could not be synced`, e);
  }
}

/**
 * Writes a checkpoint atomically and durably. The snapshot is taken when called.
 *
 * @example
 * await saveCheckpoint(model, "runs/epoch-5.ckpt");
 */
export async function saveCheckpoint(model: Sequential, path: string): Promise<void> {
  const target = checkPath("save", path);
  const bytes = encodeCheckpoint(model); // synchronous: the snapshot cannot see later training
  const tmp = tempPath(target);
  let fh: Awaited<ReturnType<typeof open>> | null = null;
  try {
    fh = await open(tmp, "wx", 0o644);
    await fh.writeFile(bytes);
    await fh.sync();
    await fh.close();
    fh = null;
    await rename(tmp, target);
  } catch (e) {
    if (fh) await fh.close().catch(() => undefined);
    await unlink(tmp).catch(() => undefined);
    throw ioError(`save ${path}: cannot write the checkpoint`, e);
  }
  try {
    const dh = await open(dirname(target), "r");
    try { await dh.sync(); } finally { await dh.close(); }
  } catch (e) {
    if (!ignorableDirSyncError(e)) throw ioError(`save ${path}: written, but the directory could not be synced`, e);
  }
}

/**
 * Reads a checkpoint file into a new model, blocking.
 *
 * @example
 * const model = loadCheckpointSync("runs/epoch-5.ckpt");
 */
export function loadCheckpointSync(path: string): Sequential {
  const file = checkPath("load", path);
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (e) {
    throw ioError(`load ${path}: cannot read the checkpoint`, e);
  }
  return decodeCheckpoint(bytes, `load ${path}`);
}

/**
 * Reads a checkpoint file into a new model.
 *
 * @example
 * const model = await loadCheckpoint("runs/epoch-5.ckpt");
 */
export async function loadCheckpoint(path: string): Promise<Sequential> {
  const file = checkPath("load", path);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (e) {
    throw ioError(`load ${path}: cannot read the checkpoint`, e);
  }
  return decodeCheckpoint(bytes, `load ${path}`);
}
