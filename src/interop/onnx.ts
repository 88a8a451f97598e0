/**
 * ONNX export: a built Sequential as a serialized ONNX ModelProto (opset 17, IR version 8) for inference in
 * ONNX Runtime or any other ONNX backend. Written with our own protobuf writer (protobuf.ts).
 *
 * The graph, for x [B, T, F] batch-major as predict takes it:
 *
 *   x (B, T, F) ─Transpose[1,0,2]→ (T, B, F)
 *     ─LSTM→ Y (T, 1, B, H) ─Squeeze(1)→ (T, B, H)        every LSTM but the top one, and a per-step top one
 *     ─LSTM→ Y_h (1, B, H) ─Squeeze(0)→ (B, H)            the top LSTM of a last-step model
 *   per-step: (T, B, H) ─Transpose[1,0,2]→ (B, T, H)
 *   each Dense: ─MatMul kernel (In, D)→ ─Add bias (D)→ ─Sigmoid | Tanh | Relu→   (MatMul broadcasts over B[, T])
 *   → y (B, D), or (B, T, D) per step
 *
 * Facts from the ONNX operator spec used here (LSTM, opset 14+): inputs X (T, B, I) with layout 0,
 * W (dirs, 4H, I), R (dirs, 4H, H), optional B (dirs, 8H) = [Wb, Rb]; gate blocks in the order i, o, f, c;
 * each gate is act(X·Wᵀ + H·Rᵀ + Wb + Rb); `activations` lists f, g, h (default Sigmoid, Tanh, Tanh) and
 * HardSigmoid's defaults are alpha 0.2, beta 0.5, which is Keras' hardSigmoid. Squeeze takes its axes as an
 * int64 input since opset 13. Initializers are float32 raw_data, little-endian.
 *
 * Legend: B batch, T timesteps, F input features, I a layer's inputs, H units, D head units.
 */
import { Sequential } from "../model.js";
import { LSTM } from "../layers/lstm.js";
import type { Dense } from "../layers/dense.js";
import { StateError, ValueError, fmtValue } from "../errors.js";
import { ProtoWriter, float32LE, int64LE } from "./protobuf.js";

/** The default-domain operator set the graph is written for. */
export const ONNX_OPSET = 17;
/** The ONNX IR version of the ModelProto (8 goes with opsets up to 18). */
export const ONNX_IR_VERSION = 8;

// ---------------------------------------------------------------------------------------------
// Field numbers and enums of onnx.proto (only those written here)

const MODEL = { irVersion: 1, producerName: 2, docString: 6, graph: 7, opsetImport: 8 } as const;
const OPSET_ID = { domain: 1, version: 2 } as const;
const GRAPH = { node: 1, name: 2, initializer: 5, input: 11, output: 12 } as const;
const NODE = { input: 1, output: 2, name: 3, opType: 4, attribute: 5 } as const;
const ATTRIBUTE = { name: 1, i: 3, s: 4, ints: 8, strings: 9, type: 20 } as const;
const ATTRIBUTE_TYPE = { int: 2, string: 3, ints: 7, strings: 8 } as const;
const TENSOR = { dims: 1, dataType: 2, name: 8, rawData: 9 } as const;
const DATA_TYPE = { float: 1, int64: 7 } as const;
const VALUE_INFO = { name: 1, type: 2 } as const;
const TYPE = { tensorType: 1 } as const;
const TENSOR_TYPE = { elemType: 1, shape: 2 } as const;
const SHAPE = { dim: 1 } as const;
const DIMENSION = { dimValue: 1, dimParam: 2 } as const;

// ---------------------------------------------------------------------------------------------
// The graph in memory

type Attribute =
  | { name: string; type: "int"; value: number }
  | { name: string; type: "string"; value: string }
  | { name: string; type: "ints"; value: number[] }
  | { name: string; type: "strings"; value: string[] };

interface OnnxNode {
  name: string;
  opType: string;
  inputs: string[];  // "" for an omitted optional input
  outputs: string[]; // "" for an unused optional output
  attributes: Attribute[];
}

interface Initializer {
  name: string;
  dims: number[];
  dataType: "float" | "int64";
  data: ArrayLike<number>;
}

/** A graph input or output: float32 with named (symbolic) or fixed dimensions. */
interface ValueInfo {
  name: string;
  dims: (string | number)[];
}

class GraphBuilder {
  readonly nodes: OnnxNode[] = [];
  readonly initializers: Initializer[] = [];

  /** Adds an initializer and returns its name. */
  constant(name: string, dims: number[], dataType: Initializer["dataType"], data: ArrayLike<number>): string {
    this.initializers.push({ name, dims, dataType, data });
    return name;
  }

  /** Adds a node and returns its first output's name. */
  node(opType: string, name: string, inputs: string[], outputs: string[], attributes: Attribute[] = []): string {
    this.nodes.push({ name, opType, inputs, outputs, attributes });
    return outputs.find((o) => o !== "")!;
  }
}

// ---------------------------------------------------------------------------------------------
// Export

/** ONNX block g (i, o, f, c) is Keras block KERAS_BLOCK[g] (Keras order i, f, c, o). */
const KERAS_BLOCK = [0, 3, 1, 2] as const;

/**
 * The model as a serialized ONNX ModelProto (opset 17), for inference in ONNX Runtime.
 *
 * - Input "x": float32 [batch, time, F], batch and time symbolic (any batch size and sequence length).
 * - Output "y": float32 [batch, D], or [batch, time, D] when the output is a sequence (`model.perStep`),
 *   the same values `model.predict(x)` returns (within float32 rounding).
 * - Every LSTM is one ONNX LSTM node (gates reordered from Keras' i, f, c, o to ONNX's i, o, f, c, kernels
 *   transposed); `recurrentActivation: "hardSigmoid"` becomes `activations: [HardSigmoid, Tanh, Tanh]` and a
 *   layer without bias omits the LSTM's optional B input. Each Dense is MatMul (+ Add) (+ its activation).
 * - The weights are stored as float32 initializers; a float64 model's weights are rounded to float32.
 * - The graph starts every call from a zero LSTM state: it computes what `predict` computes on a fresh (or
 *   reset) model. A stateful model's carried state is not exported and the graph carries no state between
 *   runs; run the whole sequence in one call (or export a stateless copy) to reproduce a stateful model.
 *
 * Throws ValueError when `model` is not a Sequential (or a weight does not fit in float32) and StateError
 * when the model is not built yet.
 *
 * @example
 * import * as ort from "onnxruntime-node";
 * const session = await ort.InferenceSession.create(toOnnx(model));
 * const { y } = await session.run({ x: new ort.Tensor("float32", xData, [B, T, F]) });
 */
export function toOnnx(model: Sequential): Uint8Array {
  if (!(model instanceof Sequential)) {
    throw new ValueError(`toOnnx model: expected a Sequential, got ${fmtValue(model)}`);
  }
  if (!model.engine.built) {
    throw new StateError(`toOnnx: the model is not built yet; give the first LSTM an inputDim, call build(inputDim), or pass data first`);
  }
  const ids = model.layers.findIndex((l) => l.kind === "embedding");
  if (ids >= 0) {
    throw new ValueError(`toOnnx model: layers[${ids}] is an Embedding, which this version does not export (its ids input needs a Gather graph with an int64 input); use toTfjs or toSafetensors for such a model`);
  }
  const gru = model.layers.findIndex((l) => l.kind === "gru");
  if (gru >= 0) throw new ValueError(`toOnnx model: layers[${gru}] is a GRU, which this version does not export to ONNX yet; use toSafetensors or a checkpoint`);
  if (model.masking) {
    throw new ValueError(`toOnnx model: a model with a Masking layer is not exported: ONNX's LSTM has no per-step mask (only sequence lengths), so the graph would not compute what predict does`);
  }
  const weights = model.getWeights();
  const names = model.weightNames();
  weights.forEach((w, k) => {
    // Finite in the model (setWeights checks), but a float64 weight beyond ±3.4e38 would become ±Infinity.
    if (w.data.some((v) => !Number.isFinite(Math.fround(v)))) {
      throw new ValueError(`toOnnx model: weight ${names[k]} holds values beyond the float32 range the ONNX graph stores its weights in`);
    }
  });

  const g = new GraphBuilder();
  const F = model.inputDim!;
  const transposeBT: Attribute[] = [{ name: "perm", type: "ints", value: [1, 0, 2] }];
  let cur = g.node("Transpose", "to_time_major", ["x"], ["x_time_major"], transposeBT); // (T, B, F)
  let dim = F;
  let w = 0; // index into weights
  let li = 0, di = 0;
  const squeezeAxes: [string | null, string | null] = [null, null];
  const axes = (a: 0 | 1): string => (squeezeAxes[a] ??= g.constant(`squeeze_axes_${a}`, [1], "int64", [a]));

  for (const layer of model.layers) {
    if (layer instanceof LSTM) {
      const p = `lstm_${li}`;
      const H = layer.units;
      const kernel = weights[w++]!.data;    // (I, 4H)
      const recurrent = weights[w++]!.data; // (H, 4H)
      const bias = layer.useBias ? weights[w++]!.data : null; // (4H)
      const inputs = [
        cur,
        g.constant(`${p}/W`, [1, 4 * H, dim], "float", onnxGateMatrix(kernel, dim, H)),    // (1, 4H, I)
        g.constant(`${p}/R`, [1, 4 * H, H], "float", onnxGateMatrix(recurrent, H, H)),     // (1, 4H, H)
      ];
      if (bias) inputs.push(g.constant(`${p}/B`, [1, 8 * H], "float", onnxGateBias(bias, H))); // (1, 8H)
      const attributes: Attribute[] = [{ name: "hidden_size", type: "int", value: H }];
      if (layer.recurrentActivation === "hardSigmoid") {
        // f = HardSigmoid on i, o, f (its defaults alpha 0.2, beta 0.5 are Keras' clip(0.2·x + 0.5, 0, 1));
        // g, h = Tanh on the candidate and the cell output, as in every longshort LSTM.
        attributes.push({ name: "activations", type: "strings", value: ["HardSigmoid", "Tanh", "Tanh"] });
      }
      // goBackwards: ONNX's "reverse" direction reads the steps last to first, as Keras does; its Y is indexed by input
      // step, where Keras returns the reading order, so a sequence output is reversed back (Slice with step −1).
      if (layer.goBackwards) attributes.push({ name: "direction", type: "string", value: "reverse" });
      // Sequences stay time-major between layers (a Dense's MatMul works on the last axis either way).
      if (layer.returnSequences && layer.goBackwards) {
        const y = g.node("LSTM", p, inputs, [`${p}/Y`], attributes);                         // (T, 1, B, H), by input step
        const seq = g.node("Squeeze", `${p}/squeeze`, [y, axes(1)], [`${p}/h_by_input`]);   // (T, B, H)
        const c = (name: string, v: number): string => g.constant(`${p}/${name}`, [1], "int64", [v]);
        cur = g.node("Slice", `${p}/reading_order`, [seq, c("start", -1), c("end", -(2 ** 62)), c("axis", 0), c("step", -1)], [`${p}/h_seq`]);
      } else if (layer.returnSequences) {
        const y = g.node("LSTM", p, inputs, [`${p}/Y`], attributes);                         // (T, 1, B, H)
        cur = g.node("Squeeze", `${p}/squeeze`, [y, axes(1)], [`${p}/h_seq`]);              // (T, B, H)
      } else {
        const yh = g.node("LSTM", p, inputs, ["", `${p}/Y_h`], attributes);                 // (1, B, H)
        cur = g.node("Squeeze", `${p}/squeeze`, [yh, axes(0)], [`${p}/h_last`]);            // (B, H)
      }
      dim = H;
      li++;
    } else {
      const dense = layer as Dense;
      const p = `dense_${di}`;
      const D = dense.units;
      const kernel = g.constant(`${p}/kernel`, [dim, D], "float", weights[w++]!.data);       // (In, D)
      cur = g.node("MatMul", `${p}/matmul`, [cur, kernel], [`${p}/matmul`]);                 // ([T, ]B, D)
      if (dense.useBias) {
        const bias = g.constant(`${p}/bias`, [D], "float", weights[w++]!.data);              // (D)
        cur = g.node("Add", `${p}/add`, [cur, bias], [`${p}/add`]);
      }
      // Softmax (opset 13+) normalises over one axis, by default the last: the units, per row and step.
      const op = ({ linear: null, sigmoid: "Sigmoid", tanh: "Tanh", relu: "Relu", softmax: "Softmax" } as const)[dense.activation];
      if (op) cur = g.node(op, `${p}/${dense.activation}`, [cur], [`${p}/${dense.activation}`]);
      dim = D;
      di++;
    }
  }
  if (w !== weights.length) throw new Error(`toOnnx: internal error, used ${w} of ${weights.length} weights`);
  if (model.perStep) g.node("Transpose", "to_batch_major", [cur], ["y_batch_major"], transposeBT); // (B, T, D)
  // The last node writes the graph output.
  const last = g.nodes[g.nodes.length - 1]!;
  last.outputs[0] = "y";

  const input: ValueInfo = { name: "x", dims: ["batch", "time", F] };
  const output: ValueInfo = { name: "y", dims: model.perStep ? ["batch", "time", dim] : ["batch", dim] };
  return encodeModel(g, input, output);
}

/**
 * A Keras gate matrix (rows, 4H), blocks i, f, c, o along the columns, as ONNX's (1, 4H, rows): blocks i, o, f, c
 * along the rows, each block transposed (ONNX computes X·Wᵀ).
 */
function onnxGateMatrix(keras: ArrayLike<number>, rows: number, H: number): Float64Array {
  const G = 4 * H;
  const out = new Float64Array(G * rows);
  for (let g = 0; g < 4; g++) {
    const src = KERAS_BLOCK[g]! * H;
    for (let j = 0; j < H; j++) {
      for (let r = 0; r < rows; r++) out[(g * H + j) * rows + r] = keras[r * G + src + j]!;
    }
  }
  return out;
}

/** A Keras bias (4H), blocks i, f, c, o, as ONNX's (1, 8H): Wb in blocks i, o, f, c, then Rb = 0. */
function onnxGateBias(keras: ArrayLike<number>, H: number): Float64Array {
  const out = new Float64Array(8 * H);
  for (let g = 0; g < 4; g++) {
    const src = KERAS_BLOCK[g]! * H;
    for (let j = 0; j < H; j++) out[g * H + j] = keras[src + j]!;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Encoding

function encodeModel(g: GraphBuilder, input: ValueInfo, output: ValueInfo): Uint8Array {
  const w = new ProtoWriter();
  w.int(MODEL.irVersion, ONNX_IR_VERSION);
  w.string(MODEL.producerName, "longshort");
  w.string(MODEL.docString, "A longshort Sequential (LSTM layers and a Dense head), from a zero initial LSTM state.");
  w.message(MODEL.graph, (gw) => {
    for (const n of g.nodes) gw.message(GRAPH.node, (nw) => encodeNode(nw, n));
    gw.string(GRAPH.name, "longshort");
    for (const t of g.initializers) gw.message(GRAPH.initializer, (tw) => encodeTensor(tw, t));
    gw.message(GRAPH.input, (vw) => encodeValueInfo(vw, input));
    gw.message(GRAPH.output, (vw) => encodeValueInfo(vw, output));
  });
  w.message(MODEL.opsetImport, (ow) => ow.string(OPSET_ID.domain, "").int(OPSET_ID.version, ONNX_OPSET));
  return w.finish();
}

function encodeNode(w: ProtoWriter, n: OnnxNode): void {
  w.strings(NODE.input, n.inputs);
  w.strings(NODE.output, n.outputs);
  w.string(NODE.name, n.name);
  w.string(NODE.opType, n.opType);
  for (const a of n.attributes) w.message(NODE.attribute, (aw) => encodeAttribute(aw, a));
}

function encodeAttribute(w: ProtoWriter, a: Attribute): void {
  w.string(ATTRIBUTE.name, a.name);
  w.int(ATTRIBUTE.type, ATTRIBUTE_TYPE[a.type]);
  switch (a.type) {
    case "int": w.int(ATTRIBUTE.i, a.value); break;
    case "string": w.string(ATTRIBUTE.s, a.value); break;
    case "ints": w.ints(ATTRIBUTE.ints, a.value); break;
    case "strings": w.strings(ATTRIBUTE.strings, a.value); break;
  }
}

function encodeTensor(w: ProtoWriter, t: Initializer): void {
  w.ints(TENSOR.dims, t.dims);
  w.int(TENSOR.dataType, DATA_TYPE[t.dataType]);
  w.string(TENSOR.name, t.name);
  w.bytes(TENSOR.rawData, t.dataType === "float" ? float32LE(t.data) : int64LE(Array.from(t.data)));
}

function encodeValueInfo(w: ProtoWriter, v: ValueInfo): void {
  w.string(VALUE_INFO.name, v.name);
  w.message(VALUE_INFO.type, (tw) => tw.message(TYPE.tensorType, (ttw) => {
    ttw.int(TENSOR_TYPE.elemType, DATA_TYPE.float);
    ttw.message(TENSOR_TYPE.shape, (sw) => {
      for (const d of v.dims) {
        sw.message(SHAPE.dim, (dw) => (typeof d === "number" ? dw.int(DIMENSION.dimValue, d) : dw.string(DIMENSION.dimParam, d)));
      }
    });
  }));
}
