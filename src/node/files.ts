/**
 * Files for Node, shared by every writer and reader of longshort/node (checkpoints, safetensors, ONNX,
 * TensorFlow.js folders): a write goes to a temporary file in the same directory, which is fsynced, renamed
 * over the target, and the directory is fsynced, so a crash or kill at any moment leaves either the old file
 * or the new one, never a mix (a kill can leave the `.NAME.PID.HEX.tmp` file behind, which is safe to delete).
 * Missing parent folders are created first (as tf.io's file saving does), and synced once the file is in place.
 */
import { randomBytes } from "node:crypto";
import {
  closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, unlinkSync, writeSync,
} from "node:fs";
import { mkdir, open, readFile, rename, unlink } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { type LongshortError, ValueError, fmtValue } from "../errors.js";

/** How a file's errors are reported: the error class, and what the file is ("checkpoint", "ONNX model"). */
export interface FileKind {
  Err: new (message: string) => LongshortError;
  what: string;
}

/** An absolute path, or a ValueError naming the argument (`what` is e.g. "saveOnnx"). */
export function checkPath(what: string, path: unknown): string {
  if (typeof path !== "string" || path.length === 0) {
    throw new ValueError(`${what} path: expected a non-empty file path string, got ${fmtValue(path)}`);
  }
  return resolve(path);
}

function tempPath(target: string): string {
  return join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString("hex")}.tmp`);
}

function ioError(kind: FileKind, msg: string, cause: unknown): LongshortError {
  const e = new kind.Err(`${msg}: ${(cause as Error)?.message ?? String(cause)}`);
  (e as { cause?: unknown }).cause = cause;
  return e;
}

/** Some platforms (Windows) cannot open or fsync a directory; the rename is still atomic there. */
function ignorableDirSyncError(e: unknown): boolean {
  const code = (e as { code?: string })?.code;
  return code === "EISDIR" || code === "EINVAL" || code === "EPERM" || code === "EACCES" || code === "ENOTSUP";
}

/**
 * The folders to sync after a write into `dir`: `dir` itself, and when `created` (the first folder mkdir made) is
 * set, the parent of every folder made, so that their entries are on disk too.
 */
function foldersToSync(dir: string, created: string | undefined): string[] {
  const out = [dir];
  if (created === undefined) return out;
  for (let d = dir; d !== dirname(d) && d.length >= created.length; d = dirname(d)) out.push(dirname(d));
  return out;
}

function folderError(kind: FileKind, path: string, dir: string, cause: unknown): LongshortError {
  return ioError(kind, `save ${path}: cannot create the folder ${dir} for the ${kind.what}`, cause);
}

/** Writes `bytes` to `target` atomically and durably, blocking. `path` is the name the caller gave, for messages. */
export function writeFileAtomicSync(kind: FileKind, target: string, path: string, bytes: Uint8Array): void {
  const dir = dirname(target);
  let created: string | undefined;
  try {
    created = mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw folderError(kind, path, dir, e);
  }
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
    throw ioError(kind, `save ${path}: cannot write the ${kind.what}`, e);
  }
  for (const d of foldersToSync(dir, created)) {
    try {
      const dfd = openSync(d, "r");
      try { fsyncSync(dfd); } finally { closeSync(dfd); }
    } catch (e) {
      if (!ignorableDirSyncError(e)) throw ioError(kind, `save ${path}: written, but the directory could not be synced`, e);
    }
  }
}

/** Writes `bytes` to `target` atomically and durably. */
export async function writeFileAtomic(kind: FileKind, target: string, path: string, bytes: Uint8Array): Promise<void> {
  const dir = dirname(target);
  let created: string | undefined;
  try {
    created = await mkdir(dir, { recursive: true });
  } catch (e) {
    throw folderError(kind, path, dir, e);
  }
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
    throw ioError(kind, `save ${path}: cannot write the ${kind.what}`, e);
  }
  for (const d of foldersToSync(dir, created)) {
    try {
      const dh = await open(d, "r");
      try { await dh.sync(); } finally { await dh.close(); }
    } catch (e) {
      if (!ignorableDirSyncError(e)) throw ioError(kind, `save ${path}: written, but the directory could not be synced`, e);
    }
  }
}

/** A file's bytes, blocking; a read failure is `kind`'s error naming the path. */
export function readFileBytesSync(kind: FileKind, file: string, path: string): Uint8Array {
  try {
    return readFileSync(file);
  } catch (e) {
    throw ioError(kind, `load ${path}: cannot read the ${kind.what}`, e);
  }
}

/** A file's bytes; a read failure is `kind`'s error naming the path. */
export async function readFileBytes(kind: FileKind, file: string, path: string): Promise<Uint8Array> {
  try {
    return await readFile(file);
  } catch (e) {
    throw ioError(kind, `load ${path}: cannot read the ${kind.what}`, e);
  }
}
