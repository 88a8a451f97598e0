/**
 * Checkpoint files, for Node: `encodeCheckpoint`'s bytes written atomically and durably (files.ts), and read
 * back.
 * `saveCheckpoint` / `loadCheckpoint` return Promises; the Sync variants block. Saving takes the snapshot
 * synchronously when called, so training that continues while the file is being written does not leak
 * into it.
 */
import type { Sequential, RunOptions } from "../model.js";
import { encodeCheckpoint, decodeCheckpoint, runOptions } from "../checkpoint.js";
import { CheckpointError } from "../errors.js";
import { type FileKind, checkPath, readFileBytes, readFileBytesSync, writeFileAtomic, writeFileAtomicSync } from "./files.js";

const CHECKPOINT: FileKind = { Err: CheckpointError, what: "checkpoint" };

/**
 * Writes a checkpoint atomically and durably, blocking until it is on disk.
 *
 * @example
 * saveCheckpointSync(model, "runs/epoch-5.ckpt");
 */
export function saveCheckpointSync(model: Sequential, path: string): void {
  const target = checkPath("save", path);
  writeFileAtomicSync(CHECKPOINT, target, path, encodeCheckpoint(model));
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
  await writeFileAtomic(CHECKPOINT, target, path, bytes);
}

/**
 * Reads a checkpoint file into a new model, blocking. `options`: as loadCheckpoint's.
 *
 * @example
 * const model = loadCheckpointSync("runs/epoch-5.ckpt");
 */
export function loadCheckpointSync(path: string, options?: RunOptions): Sequential {
  const file = checkPath("load", path), run = runOptions("loadCheckpointSync", options);
  return decodeCheckpoint(readFileBytesSync(CHECKPOINT, file, path), { source: `load ${path}`, ...run });
}

/**
 * Reads a checkpoint file into a new model. `options`: where it runs (RunOptions: `backend`, `fma`), which the
 * file does not hold.
 *
 * @example
 * const model = await loadCheckpoint("runs/epoch-5.ckpt");
 * const fused = await loadCheckpoint("runs/epoch-5.ckpt", { fma: true });   // Node 22+, or 20 with the flag
 */
export async function loadCheckpoint(path: string, options?: RunOptions): Promise<Sequential> {
  const file = checkPath("load", path), run = runOptions("loadCheckpoint", options);
  return decodeCheckpoint(await readFileBytes(CHECKPOINT, file, path), { source: `load ${path}`, ...run });
}
