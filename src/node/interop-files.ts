/**
 * The interop formats as files, for Node: safetensors and ONNX files, and TensorFlow.js's folder of
 * `model.json` + `weights.bin`. Everything is written atomically and durably (files.ts); reading checks the
 * bytes as the root entry's importers do.
 */
import { dirname, join } from "node:path";
import type { Sequential, RunOptions } from "../model.js";
import { runOptions } from "../checkpoint.js";
import { FormatError, ValueError } from "../errors.js";
import { toSafetensors, fromSafetensors } from "../interop/safetensors.js";
import { toOnnx, type OnnxOptions } from "../interop/onnx.js";
import { toTfjs, fromTfjs, tfjsModelJSON, tfjsArtifactsFromModelJSON, type FromTfjsOptions } from "../interop/tfjs.js";
import { utf8Decode, utf8Encode } from "../bytes.js";
import { type FileKind, checkPath, readFileBytes, readFileBytesSync, writeFileAtomic } from "./files.js";

const SAFETENSORS: FileKind = { Err: FormatError, what: "safetensors file" };
const ONNX: FileKind = { Err: FormatError, what: "ONNX model" };
const TFJS: FileKind = { Err: FormatError, what: "TensorFlow.js model" };

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
 * `options`: where a new model runs (RunOptions: `backend`, `fma`).
 *
 * @example
 * const model = await loadSafetensors("model.safetensors");
 * await loadSafetensors("trained-in-pytorch.safetensors", model);
 */
export async function loadSafetensors(path: string, model?: Sequential, options?: RunOptions): Promise<Sequential> {
  const file = checkPath("loadSafetensors", path);
  if (options !== undefined) {
    runOptions("loadSafetensors", options);
    if (model !== undefined && (options.backend !== undefined || options.fma !== undefined)) {
      throw new ValueError("loadSafetensors options: backend and fma choose how a new model runs; the model given keeps its own");
    }
  }
  return fromSafetensors(await readFileBytes(SAFETENSORS, file, path), model, { source: `load ${path}`, ...options });
}

/**
 * Writes `toOnnx(model, options)` to a file, for ONNX Runtime and anything else that reads ONNX.
 *
 * @example
 * await saveOnnx(model, "model.onnx");
 * await saveOnnx(model, "streaming.onnx", { states: true }); // states in and out, to stream chunk by chunk
 */
export async function saveOnnx(model: Sequential, path: string, options?: OnnxOptions): Promise<void> {
  const target = checkPath("saveOnnx", path);
  await writeFileAtomic(ONNX, target, path, toOnnx(model, options));
}

/**
 * Writes a TensorFlow.js folder: `dir/model.json` and `dir/weights.bin` (the folder is created when missing), which
 * `tf.loadLayersModel("file://dir/model.json")` (tfjs-node) or an http URL of the folder loads. The weights
 * are written first, so a model.json on disk always has its weights.
 *
 * @example
 * await saveTfjs(model, "web/model");   // then in a page: await tf.loadLayersModel("/model/model.json")
 */
export async function saveTfjs(model: Sequential, dir: string): Promise<void> {
  const folder = checkPath("saveTfjs", dir);
  const artifacts = toTfjs(model);
  await writeFileAtomic(TFJS, join(folder, "weights.bin"), join(dir, "weights.bin"), new Uint8Array(artifacts.weightData));
  await writeFileAtomic(TFJS, join(folder, "model.json"), join(dir, "model.json"), utf8Encode(JSON.stringify(tfjsModelJSON(artifacts, "weights.bin"))));
}

/**
 * Reads a TensorFlow.js folder (`dir/model.json` and the weight files its manifest names, as tfjs and
 * tensorflowjs_converter write them) into a new model; `dir` may also be the path of the model.json itself.
 * Weight paths are read only inside the folder.
 *
 * @example
 * const model = await loadTfjs("converted/");   // tensorflowjs_converter --input_format keras model.h5 converted/
 */
export async function loadTfjs(dir: string, options?: FromTfjsOptions): Promise<Sequential> {
  const given = checkPath("loadTfjs", dir);
  const jsonPath = given.endsWith(".json") ? given : join(given, "model.json");
  const folder = dirname(jsonPath);
  const text = utf8Decode(await readFileBytes(TFJS, jsonPath, jsonPath));
  if (text === null) throw new FormatError(`load ${jsonPath}: not UTF-8 text`);
  // The whole manifest is checked (paths stay inside the folder) before the first weight file is read.
  const artifacts = tfjsArtifactsFromModelJSON(text, (p) => readFileBytesSync(TFJS, join(folder, p), join(folder, p)));
  return fromTfjs(artifacts, options);
}
