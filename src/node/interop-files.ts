/**
 * The interop formats as files, for Node: safetensors and ONNX files, and TensorFlow.js's folder of
 * `model.json` + `weights.bin`. Everything is written atomically and durably (files.ts); reading checks the
 * bytes as the root entry's importers do.
 */
import type { Sequential } from "../model.js";
import { FormatError } from "../errors.js";
import { toSafetensors, fromSafetensors } from "../interop/safetensors.js";
import { toOnnx } from "../interop/onnx.js";
import { type FileKind, checkPath, readFileBytes, writeFileAtomic } from "./files.js";

const SAFETENSORS: FileKind = { Err: FormatError, what: "safetensors file" };
const ONNX: FileKind = { Err: FormatError, what: "ONNX model" };

/**
 * Writes `toSafetensors(model)` to a file (PyTorch reads it with safetensors.torch.load_file).
 *
 * @example
 * await saveSafetensors(model, "model.safetensors");
 */
export async function saveSafetensors(model: Sequential, path: string): Promise<void> {
  const target = checkPath("saveSafetensors", path);
  await writeFileAtomic(SAFETENSORS, target, path, toSafetensors(model));
}

/**
 * Reads a safetensors file: a new model from longshort's metadata, or, given `model`, a PyTorch-made file's
 * weights into it (see fromSafetensors).
 *
 * @example
 * const model = await loadSafetensors("model.safetensors");
 * await loadSafetensors("trained-in-pytorch.safetensors", model);
 */
export async function loadSafetensors(path: string, model?: Sequential): Promise<Sequential> {
  const file = checkPath("loadSafetensors", path);
  return fromSafetensors(await readFileBytes(SAFETENSORS, file, path), model, `load ${path}`);
}

/**
 * Writes `toOnnx(model)` to a file, for ONNX Runtime and anything else that reads ONNX.
 *
 * @example
 * await saveOnnx(model, "model.onnx");
 */
export async function saveOnnx(model: Sequential, path: string): Promise<void> {
  const target = checkPath("saveOnnx", path);
  await writeFileAtomic(ONNX, target, path, toOnnx(model));
}
