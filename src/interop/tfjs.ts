/**
 * The TensorFlow.js Layers format, in and out.
 *
 * A tf.io.ModelArtifacts object holds `modelTopology` (the Keras JSON config of the model), `weightSpecs`
 * (name, shape and dtype of every weight, in the order of the bytes) and `weightData` (the weights' bytes,
 * little-endian, one after the other). `tf.loadLayersModel(tf.io.fromMemory(artifacts))` loads what
 * `toTfjs` writes; `fromTfjs` reads what TensorFlow.js saves (`model.save(tf.io.withSaveHandler(…))`) and
 * what tensorflowjs_converter writes from a Keras model (a folder: model.json + weight files, which
 * `tfjsArtifactsFromModelJSON` turns into artifacts, and `tfjsModelJSON` writes).
 *
 * Layouts are Keras's, which are longshort's: LSTM kernel [F, 4H], recurrent_kernel [H, 4H], bias [4H] with
 * the gate blocks in the order i, f, c, o; GRU kernel [F, 3H], recurrent_kernel [H, 3H], bias [3H] (reset_after
 * false, the only form tfjs has) or [2, 3H] (reset_after true: input and recurrent rows) with the gate blocks in the
 * order z, r, h; Dense kernel [In, D], bias [D].
 *
 * Legend: F input features, H units, D head units.
 *
 * Everything read is untrusted: every field is checked, with sizes counted against the bytes actually
 * given, before anything sized by the file is allocated; a bad file fails with FormatError naming the field.
 *
 * This file is the module the rest of longshort imports: the types of what is read, `fromTfjs`, and the
 * folder format. The rest is by idea, each file importing only those listed before it:
 *   tfjs-export.ts    `toTfjs` and the types of what it writes (re-exported here);
 *   tfjs-topology.ts  the Keras JSON topology read into layer plans;
 *   tfjs-weights.ts   the weight specs checked against the bytes, matched to the plans by name, and decoded.
 */
import { type Sequential, type RunOptions, checkRunOptions } from "../model.js";
import { checkDType, type DType } from "../tensor/tensor.js";
import { assemble, type ImportedWeight } from "./build.js";
import { FormatError, ValueError, checkKeys, fmtValue } from "../errors.js";
import type { TfjsWeightSpec } from "./tfjs-export.js";
import { SRC, fail, isObject, parseTopology } from "./tfjs-topology.js";
import { decode, matchSpecs, parseSpecs, weightBytes } from "./tfjs-weights.js";

export { TFJS_LAYERS_VERSION, type TfjsArtifacts, type TfjsWeightSpec, toTfjs } from "./tfjs-export.js";

/**
 * What `fromTfjs` reads: any tf.io.ModelArtifacts of a Layers model (weightData may be split in parts).
 * The fields are optional in the type, as in tfjs's, and checked when read.
 */
export interface TfjsArtifactsInput {
  modelTopology?: object;
  weightSpecs?: readonly object[];
  weightData?: ArrayBuffer | ArrayBuffer[] | ArrayBufferView;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
}

/** The model.json of a folder: the topology and a manifest of weight files (groups of shards). */
export interface TfjsModelJSON {
  modelTopology: object;
  format?: string;
  generatedBy?: string;
  convertedBy?: string | null;
  weightsManifest: { paths: string[]; weights: TfjsWeightSpec[] }[];
}

/** `dtype` and `seed`, and where the model runs (RunOptions: `backend`, `fma`). */
export interface FromTfjsOptions extends RunOptions {
  /** The imported model's dtype. Default "float32", the dtype the weights are stored in. */
  dtype?: DType;
  /** The model's seed (shuffling, and initialisation if it is ever rebuilt). */
  seed?: number | string;
}


/**
 * A longshort model from TensorFlow.js ModelArtifacts of a Sequential Layers model: what tfjs saves
 * (`model.save(tf.io.withSaveHandler(async (a) => …))`) and what tensorflowjs_converter makes of a Keras 2
 * or Keras 3 model (read the folder with `tfjsArtifactsFromModelJSON`). The topology is LSTM and GRU layers
 * (activation tanh, recurrent_activation sigmoid or Keras 2/tfjs hard_sigmoid; go_backwards and zero_output_for_mask
 * read; a GRU's reset_after false or absent, as tfjs writes it, or true, as Keras writes it by default, with its
 * [2, 3H] bias: tfjs cannot run that one, longshort can) and Dense or TimeDistributed(Dense) layers (linear, sigmoid,
 * tanh, relu or softmax) in any order whose flows fit (README, "Layer orders"), with at least one LSTM or GRU; an
 * InputLayer, then a Masking layer or an Embedding (input_dim, output_dim, mask_zero; the model's x is then ids
 * [N, T]), may come first. A Bidirectional over an LSTM or a GRU (tfjs's and Keras's wrapper, merge_mode "concat",
 * "sum", "mul" or "ave") is longshort's Bidirectional; refused: merge_mode null, a wrapped layer with go_backwards
 * true, a backward_layer other than the wrapped layer mirrored, and a sequence-returning one on top of a masked model
 * that tfjs wrote (tfjs repeats the previous output at masked steps, Keras's wrapper and ours give zeros). Anything
 * else (SimpleRNN, Dropout, a Masking layer or an Embedding further up, an Embedding after a Masking layer, Keras 3's LoRA
 * lora_rank, return_state, Keras 3's hard_sigmoid, a functional model, other weight dtypes) is refused by name;
 * what only training reads (initializers, regularizers, constraints) is ignored, since predictions do not depend on it. A stateful LSTM or GRU takes its batch
 * size from batch_input_shape. Weights are matched to layers by name, and must be float32 (or quantized
 * float32: uint8/uint16 affine or float16, dequantized as tfjs does).
 *
 * Throws FormatError for a bad or unsupported file, ValueError for bad options.
 *
 * @example
 * await tfModel.save(tf.io.withSaveHandler(async (a) => { artifacts = a; return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: "JSON" } }; }));
 * const model = fromTfjs(artifacts);                      // a float32 Sequential
 * model.predict(x);                                       // what tfModel.predict(x) gives
 */
export function fromTfjs(artifacts: TfjsArtifactsInput, options: FromTfjsOptions = {}): Sequential {
  if (typeof options !== "object" || options === null) throw new ValueError(`fromTfjs options: expected an object, got ${fmtValue(options)}`);
  checkKeys("fromTfjs", options, ["dtype", "seed", "backend", "fma"]);
  const run = checkRunOptions("fromTfjs ", options.backend, options.fma);
  const dtype = checkDType("fromTfjs dtype", options.dtype ?? "float32");
  const seed = options.seed;
  if (seed !== undefined && (typeof seed !== "number" || !Number.isFinite(seed)) && typeof seed !== "string") {
    throw new ValueError(`fromTfjs seed: expected a finite number or a string, got ${fmtValue(seed)}`);
  }
  const a: unknown = artifacts;
  if (!isObject(a)) fail(`expected an object { modelTopology, weightSpecs, weightData }, got ${fmtValue(a)}`);
  const format = a["format"];
  if (format !== undefined && format !== null && format !== "layers-model") {
    fail(`format: expected "layers-model", got ${fmtValue(format)}${format === "graph-model" ? " (a graph model has no Keras layers to import)" : ""}`);
  }
  const { plans, inputDim, masking } = parseTopology(a["modelTopology"], a["generatedBy"]);
  if (a["weightData"] === undefined || a["weightData"] === null) fail(`weightData: missing (a topology without weights cannot be imported)`);
  const bytes = weightBytes(a["weightData"]);
  const specs = parseSpecs(SRC, "weightSpecs", a["weightSpecs"], bytes.byteLength, "the weightData");
  const matched = matchSpecs(plans, specs);
  const weights: ImportedWeight[] = [];
  matched.forEach((row) => row.forEach((s) => weights.push({ name: s.name, shape: s.shape, data: decode(s, bytes) })));
  return assemble(SRC, plans.map((p) => p.layer), inputDim, dtype, weights, seed, masking, run);
}

// -------------------------------------------------------------------------------------------------
// The folder format: model.json + weight files

/**
 * The model.json object of a TensorFlow.js folder for `artifacts`, whose weights go in one file
 * `weightsPath` (write `artifacts.weightData` there). tf.loadLayersModel("file://…/model.json") and
 * `tfjsArtifactsFromModelJSON` read the pair back.
 *
 * @example
 * const artifacts = toTfjs(model);
 * const json = tfjsModelJSON(artifacts);                          // weights in "weights.bin"
 * // writeFileSync("model/model.json", JSON.stringify(json)); writeFileSync("model/weights.bin", new Uint8Array(artifacts.weightData));
 */
export function tfjsModelJSON(
  artifacts: { modelTopology: object; weightSpecs: TfjsWeightSpec[]; format?: string; generatedBy?: string; convertedBy?: string | null },
  weightsPath = "weights.bin",
): TfjsModelJSON {
  if (!isObject(artifacts) || !isObject(artifacts.modelTopology) || !Array.isArray(artifacts.weightSpecs)) {
    throw new ValueError(`tfjsModelJSON artifacts: expected { modelTopology, weightSpecs, … } (as toTfjs returns), got ${fmtValue(artifacts)}`);
  }
  checkWeightsPath((m) => new ValueError(`tfjsModelJSON weightsPath: ${m}`), weightsPath);
  return {
    modelTopology: artifacts.modelTopology,
    format: artifacts.format ?? "layers-model",
    generatedBy: artifacts.generatedBy ?? "longshort",
    convertedBy: artifacts.convertedBy ?? null,
    weightsManifest: [{ paths: [weightsPath], weights: artifacts.weightSpecs }],
  };
}

/**
 * A path of a weights manifest must stay inside the model's folder: relative, no "..", no drive or scheme,
 * no backslash or NUL (the manifest is untrusted, and a caller maps paths to files).
 */
function checkWeightsPath(err: (m: string) => Error, p: unknown): void {
  if (typeof p !== "string" || p === "") throw err(`expected a non-empty relative path, got ${fmtValue(p)}`);
  if (p.startsWith("/") || /[\\:\0]/.test(p) || p.split("/").some((seg) => seg === ".." || seg === "")) {
    throw err(`${JSON.stringify(p)} is not a plain relative path inside the model's folder`);
  }
}

const JSON_SRC = "tfjs model.json";

function bad(msg: string): never {
  throw new FormatError(`${JSON_SRC}: ${msg}`);
}

/**
 * ModelArtifacts from a model.json (object or text) and its weight files: `weightFiles` maps each path
 * of the manifest (as written there, e.g. "group1-shard1of1.bin") to the file's bytes. The groups' files
 * are concatenated in manifest order, each group's size checked against its weight specs, so the result's
 * weightSpecs and weightData line up; `fromTfjs` takes it from there.
 *
 * @example
 * const json = JSON.parse(readFileSync("model/model.json", "utf8"));
 * const artifacts = tfjsArtifactsFromModelJSON(json, (p) => readFileSync(`model/${p}`));
 * const model = fromTfjs(artifacts);
 */
export function tfjsArtifactsFromModelJSON(
  json: TfjsModelJSON | object | string,
  weightFiles: Map<string, Uint8Array | ArrayBuffer> | ((path: string) => Uint8Array | ArrayBuffer),
): TfjsArtifactsInput {
  if (!(weightFiles instanceof Map) && typeof weightFiles !== "function") {
    throw new ValueError(`tfjsArtifactsFromModelJSON weightFiles: expected a Map from path to bytes or a function (path) => bytes, got ${fmtValue(weightFiles)}`);
  }
  let j: unknown = json;
  if (typeof j === "string") {
    try {
      j = JSON.parse(j);
    } catch (e) {
      bad(`not valid JSON (${(e as Error).message})`);
    }
  }
  if (!isObject(j)) bad(`expected an object { modelTopology, weightsManifest }, got ${fmtValue(j)}`);
  if (!isObject(j["modelTopology"])) bad(`modelTopology: expected an object, got ${fmtValue(j["modelTopology"])}`);
  const manifest = j["weightsManifest"];
  if (!Array.isArray(manifest)) bad(`weightsManifest: expected an array of { paths, weights }, got ${fmtValue(manifest)}`);
  // Check the whole manifest before asking for any file.
  const groups = (manifest as unknown[]).map((g, gi) => {
    const at = `weightsManifest[${gi}]`;
    if (!isObject(g)) bad(`${at}: expected { paths, weights }, got ${fmtValue(g)}`);
    const paths = g["paths"], weights = g["weights"];
    if (!Array.isArray(paths) || paths.length === 0) bad(`${at}.paths: expected a non-empty array of file names, got ${fmtValue(paths)}`);
    (paths as unknown[]).forEach((p, k) => checkWeightsPath((m) => new FormatError(`${JSON_SRC}: ${at}.paths[${k}]: ${m}`), p));
    if (!Array.isArray(weights)) bad(`${at}.weights: expected an array of weight specs, got ${fmtValue(weights)}`);
    return { at, paths: paths as string[], weights: weights as unknown[] };
  });
  const parts: Uint8Array[] = [];
  const specs: TfjsWeightSpec[] = [];
  for (const g of groups) {
    let groupBytes = 0;
    const files = g.paths.map((p, k) => {
      let f: unknown;
      try {
        f = weightFiles instanceof Map ? weightFiles.get(p) : weightFiles(p);
      } catch (e) {
        bad(`${g.at}.paths[${k}] ${JSON.stringify(p)}: cannot be read (${(e as Error)?.message ?? String(e)})`);
      }
      if (f === undefined) bad(`${g.at}.paths[${k}] ${JSON.stringify(p)}: no such weight file`);
      const u = f instanceof ArrayBuffer ? new Uint8Array(f) : f instanceof Uint8Array ? f : bad(`${g.at}.paths[${k}] ${JSON.stringify(p)}: expected the file's bytes (Uint8Array), got ${fmtValue(f)}`);
      groupBytes += u.byteLength;
      return u;
    });
    // The group's specs must describe exactly its files' bytes (parseSpecs checks fields and sizes).
    parseSpecs(JSON_SRC, `${g.at}.weights`, g.weights, groupBytes, `the files of ${g.at}.paths`);
    parts.push(...files);
    specs.push(...(g.weights as TfjsWeightSpec[]));
  }
  const total = parts.reduce((s, p) => s + p.byteLength, 0);
  const data = new Uint8Array(total); // the sum of files that already exist
  let off = 0;
  for (const p of parts) {
    data.set(p, off);
    off += p.byteLength;
  }
  const out: TfjsArtifactsInput = { modelTopology: j["modelTopology"], weightSpecs: specs, weightData: data.buffer };
  if (typeof j["format"] === "string") out.format = j["format"];
  if (typeof j["generatedBy"] === "string") out.generatedBy = j["generatedBy"];
  if (typeof j["convertedBy"] === "string" || j["convertedBy"] === null) out.convertedBy = j["convertedBy"] as string | null;
  return out;
}
