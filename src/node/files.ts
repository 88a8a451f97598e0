/**
 * Files for Node, shared by every writer and reader of longshort/node (checkpoints, safetensors, ONNX,
 * TensorFlow.js folders): a write goes to a temporary file in the same directory, which is fsynced, renamed
 * over the target, and the directory is fsynced, so a crash or kill at any moment leaves either the old file
 * or the new one, never a mix (a kill can leave the `.NAME.PID.HEX.tmp` file behind, which is safe to delete).
 */
import { randomBytes } from "node:crypto";
import {
  closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync,
} from "node:fs";
import { open, readFile, rename, unlink } from "node:fs/promises";
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

/** Writes `bytes` to `target` atomically and durably, blocking. `path` is the name the caller gave, for messages. */
export function writeFileAtomicSync(kind: FileKind, target: string, path: string, bytes: Uint8Array): void {
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
  try {
    const dfd = openSync(dirname(target), "r");
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  } catch (e) {
    if (!ignorableDirSyncError(e)) throw ioError(kind, `save ${path}: written, but the directory could not be synced`, e);
  }
}

/** Writes `bytes` to `target` atomically and durably. */
export async function writeFileAtomic(kind: FileKind, target: string, path: string, bytes: Uint8Array): Promise<void> {
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
  try {
    const dh = await open(dirname(target), "r");
    try { await dh.sync(); } finally { await dh.close(); }
  } catch (e) {
    if (!ignorableDirSyncError(e)) throw ioError(kind, `save ${path}: written, but the directory could not be synced`, e);
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
