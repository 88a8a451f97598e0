/**
 * ONNX export: a built Sequential as a serialized ONNX ModelProto (opset 17, IR version 8) for inference in
 * ONNX Runtime or any other ONNX backend. The graph is built here; onnx-graph.ts holds it and writes the bytes.
 *
 * The graph, for x [B, T, F] batch-major as predict takes it, or ids [B, T] (int64) when an Embedding is first:
 *
 *   x (B, T, F) ─Transpose[1,0,2]→ (T, B, F)
 *   ids (B, T) ─Transpose[1,0]→ (T, B) ─Gather(E (V, D), axis 0)→ (T, B, D)              an Embedding first
 *     ─LSTM|GRU→ Y (T, 1, B, H) ─Squeeze(1)→ (T, B, H)    every recurrent layer but the top one, and a per-step top one
 *     ─LSTM|GRU→ Y_h (1, B, H) ─Squeeze(0)→ (B, H)        the top recurrent layer of a last-step model
 *     ─LSTM|GRU "bidirectional"→ Y (T, 2, B, H) ─Gather(0|1, axis 1)→ 2 × (T, B, H) ─Concat|Add|Mul|(Add, Mul 0.5)→
 *       (T, B, 2H) or (T, B, H)                           a Bidirectional (Y_h (2, B, H) ─Gather(0|1, axis 0)→ for a last step)
 *   per-step: (T, B, H) ─Transpose[1,0,2]→ (B, T, H)
 *   each Dense: ─MatMul kernel (In, D)→ ─Add bias (D)→ ─Sigmoid | Tanh | Relu | Softmax→   (MatMul broadcasts over B[, T])
 *   → y (B, D), or (B, T, D) per step
 *
 * Masking (a Masking layer first, or an Embedding with maskZero). ONNX's LSTM and GRU have no per-step mask, only a length
 * per row (`sequence_lens`): it reads steps [0, len), its Y is zero after them and its Y_h is the h after step
 * len − 1. That is Keras's masked RNN exactly for a row whose masked steps all come after its kept ones (padding at
 * the end, "post"), with len its count of kept steps, which the graph computes from the input, time-major:
 *
 *   kept (T, B) int32 = ReduceMax over F of Cast(Not(Equal(x, v)))      Masking(v): some feature ≠ v
 *                     = Cast(Not(Equal(ids, 0)))                          maskZero: id ≠ 0
 *   len (B) = ReduceSum(kept) over T: every LSTM's and GRU's sequence_lens (the mask reaches them all, all reading sequences)
 *   post (B) = ReduceSum(Greater(kept[1:], kept[:-1])) over T = 0: no kept step after a masked one
 *   y = Where(post, y, NaN): a row padded anywhere else (at the front, as Keras's pad_sequences does by default,
 *       or in the middle) would get a wrong number from the LSTM or GRU; it gets NaN instead, which shows.
 *
 * A GRU masks as an LSTM does (Keras's RNN: a masked step keeps the state and repeats the output), so everything
 * below holds for both, "recurrent layer" meaning either. On post-padded rows only the top recurrent layer's outputs
 * at masked steps can differ from Keras's (a layer above a lower one reads none of the lower one's masked steps: the
 * same mask hides them), and where they do the graph rebuilds Keras's: a forward per-step top layer repeats its last
 * kept output where Keras does (Where(kept, Y, Y_h); Y_h is zero for a row with no kept step, as Keras's output before
 * a first kept step); a forward last-step one with zeroOutputForMask gives zeros when step T − 1 is masked
 * (Where(kept[T − 1], Y_h, 0)). A backwards layer needs
 * nothing: Keras reads the masked steps first (state and output zero), then kept steps len − 1 … 0, which is ONNX's
 * reverse direction on [0, len), Y reversed into reading order included; a forward zeroOutputForMask per-step one
 * has ONNX's zeros already. A Bidirectional is one node of both directions (each reads [0, len) of its row, the
 * reverse one from len − 1 down, as Keras's backward direction does once it has passed the masked steps at the end,
 * which leave its state and output zero) and needs nothing either: its zeroOutputForMask is its returnSequences (as
 * Keras's wrapper forces it), zeros at masked steps per step, each direction's last kept output for the last step.
 *
 * Facts from the ONNX operator spec used here (LSTM, opset 14+): inputs X (T, B, I) with layout 0,
 * W (dirs, 4H, I), R (dirs, 4H, H), optional B (dirs, 8H) = [Wb, Rb], optional sequence_lens (B) int32; gate blocks
 * in the order i, o, f, c; each gate is act(X·Wᵀ + H·Rᵀ + Wb + Rb); `activations` lists f, g, h (default Sigmoid,
 * Tanh, Tanh) and HardSigmoid's defaults are alpha 0.2, beta 0.5, which is Keras' hardSigmoid. Squeeze,
 * Unsqueeze, Slice and ReduceSum take their axes as int64 inputs since opset 13; ReduceMax still as an attribute
 * (until opset 18). Gather takes int64 indices, a negative one counting from the end. GRU (opset 14+): the same X,
 * sequence_lens, Y and Y_h; W (dirs, 3H, I), R (dirs, 3H, H), B (dirs, 6H) = [Wb, Rb], gate blocks z, r, h (Keras's
 * order); z, r = f(X·Wᵀ + H·Rᵀ + Wb + Rb), the candidate g(X·Whᵀ + (r ⊙ H)·Rhᵀ + Rbh + Wbh) with linear_before_reset 0
 * (Keras's reset_after false) or g(X·Whᵀ + r ⊙ (H·Rhᵀ + Rbh) + Wbh) with 1 (reset_after true), H' = (1 − z) ⊙ ĥ + z ⊙ H;
 * `activations` lists f, g (default Sigmoid, Tanh).
 *
 * Legend: B batch, T timesteps, F input features, V vocabulary, I a layer's inputs, H units, D head units.
 */
import { Sequential } from "../model.js";
import { LSTM } from "../layers/lstm.js";
import { GRU } from "../layers/gru.js";
import type { Dense } from "../layers/dense.js";
import { Embedding } from "../layers/embedding.js";
import { Bidirectional } from "../layers/bidirectional.js";
import { StateError, ValueError, fmtValue } from "../errors.js";
import { type Attribute, DATA_TYPE, GraphBuilder, type ValueInfo, encodeModel } from "./onnx-graph.js";

export { ONNX_OPSET, ONNX_IR_VERSION } from "./onnx-graph.js";

/** ONNX block g (i, o, f, c) is Keras block KERAS_BLOCK[g] (Keras order i, f, c, o). */
const KERAS_BLOCK = [0, 3, 1, 2] as const;

/**
 * The model as a serialized ONNX ModelProto (opset 17), for inference in ONNX Runtime.
 *
 * - Input "x": float32 [batch, time, F], batch and time symbolic (any batch size and sequence length); with an
 *   Embedding first, int64 ids [batch, time] (ONNX's Gather reads an id below 0 from the end of the table, where
 *   `predict` refuses it; ONNX Runtime refuses one ≥ V).
 * - Output "y": float32 [batch, D], or [batch, time, D] when the output is a sequence (`model.perStep`),
 *   the same values `model.predict(x)` returns (within float32 rounding).
 * - Every LSTM is one ONNX LSTM node (gates reordered from Keras' i, f, c, o to ONNX's i, o, f, c, kernels
 *   transposed); `recurrentActivation: "hardSigmoid"` becomes `activations: [HardSigmoid, Tanh, Tanh]` and a
 *   layer without bias omits the LSTM's optional B input. Every GRU is one ONNX GRU node (gate blocks z, r, h as
 *   Keras's, kernels transposed; `linear_before_reset` 1 for `resetAfter: true` with B = [input bias row, recurrent
 *   bias row], 0 for false with B = [bias, zeros]; `activations: [HardSigmoid, Tanh]` for hardSigmoid). Each Dense is
 *   MatMul (+ Add) (+ its activation); an Embedding is a Gather on its table; `goBackwards` is the "reverse" direction.
 * - A Bidirectional is one ONNX LSTM or GRU node with direction "bidirectional" (W (2, 4H, I) or (2, 3H, I): the
 *   forward direction's weights, then the backward one's; `activations` listed for each direction), its Y or Y_h split
 *   by direction and merged as its mergeMode says ("ave": Add, then Mul 0.5).
 * - A masked model (Masking, or an Embedding with maskZero) gives each LSTM and GRU its rows' kept-step counts as
 *   `sequence_lens`, which is `predict` for rows padded at the end only; any other row's y is NaN (see the file's
 *   header and the README).
 * - The weights are stored as float32 initializers; a float64 model's weights are rounded to float32 (ONNX
 *   Runtime's LSTM and GRU have no double kernel: "LSTM operator does not support double yet", "GRU operator does not
 *   support double yet", 1.30).
 * - The graph starts every call from a zero recurrent state: it computes what `predict` computes on a fresh (or
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
 * // an Embedding first: { x: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [B, T]) }
 */
export function toOnnx(model: Sequential): Uint8Array {
  if (!(model instanceof Sequential)) {
    throw new ValueError(`toOnnx model: expected a Sequential, got ${fmtValue(model)}`);
  }
  if (!model.engine.built) {
    throw new StateError(`toOnnx: the model is not built yet; give the first layer an inputDim, call build(inputDim), or pass data first`);
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
  const layers = model.layers;
  const ids = layers[0] instanceof Embedding;
  // Sequences are time-major inside the graph (ONNX's LSTM layout 0); a Dense's MatMul works on the last axis either way.
  let cur = ids
    ? g.node("Transpose", "to_time_major", ["x"], ["ids_time_major"], [{ name: "perm", type: "ints", value: [1, 0] }]) // (T, B)
    : g.node("Transpose", "to_time_major", ["x"], ["x_time_major"], [{ name: "perm", type: "ints", value: [1, 0, 2] }]); // (T, B, F)
  const mask = model.engine.maskValue === null ? null : new MaskGraph(g, cur, ids, model.engine.maskValue);
  let top = -1; // the top recurrent layer (LSTM or GRU): the only one whose outputs at masked steps reach y
  layers.forEach((l, i) => { if (l instanceof LSTM || l instanceof GRU || l instanceof Bidirectional) top = i; });
  let dim = model.inputDim!;
  let w = 0; // index into weights
  let li = 0, gi = 0, di = 0;

  layers.forEach((layer, i) => {
    if (layer instanceof Embedding) {
      const table = g.constant("embedding_0/embeddings", [layer.inputDim, layer.units], "float", weights[w++]!.data); // (V, D)
      cur = g.op("Gather", "embedding_0/gather", [table, cur], [{ name: "axis", type: "int", value: 0 }]);     // (T, B, D)
      dim = layer.units;
    } else if (layer instanceof LSTM || layer instanceof GRU || layer instanceof Bidirectional) {
      const bidi = layer instanceof Bidirectional;
      const cell = bidi ? layer.forwardLayer : layer;
      const H = cell.units;
      // Each direction's kernel (I, 4H) or (I, 3H), recurrent kernel (H, 4H) or (H, 3H) and bias (4H; a GRU's (3H), or
      // (2, 3H) with resetAfter), in getWeights order, which is ONNX's for "bidirectional" (direction 0 reads forwards,
      // 1 backwards): a Bidirectional's forward direction, then its backward one.
      const dirs = (bidi ? [layer.forwardLayer, layer.backwardLayer] : [cell]).map(() => ({
        kernel: weights[w++]!.data, recurrent: weights[w++]!.data, bias: cell.useBias ? weights[w++]!.data : null,
      }));
      const D = dirs.length;
      const stack = (f: (d: (typeof dirs)[number]) => Float64Array): Float64Array => {
        const parts = dirs.map(f), out = new Float64Array(parts.reduce((n, a) => n + a.length, 0));
        let o = 0;
        for (const a of parts) { out.set(a, o); o += a.length; }
        return out;
      };
      let p: string;
      let op: "LSTM" | "GRU";
      let inputs: string[];
      const attributes: Attribute[] = [{ name: "hidden_size", type: "int", value: H }];
      const activations = (a: string[]): void => {
        if (cell.recurrentActivation === "hardSigmoid") attributes.push({ name: "activations", type: "strings", value: D === 2 ? [...a, ...a] : a });
      };
      if (cell instanceof LSTM) {
        p = `lstm_${li++}`;
        op = "LSTM";
        inputs = [
          cur,
          g.constant(`${p}/W`, [D, 4 * H, dim], "float", stack((d) => onnxGateMatrix(d.kernel, dim, H))),  // (D, 4H, I)
          g.constant(`${p}/R`, [D, 4 * H, H], "float", stack((d) => onnxGateMatrix(d.recurrent, H, H))),   // (D, 4H, H)
          cell.useBias ? g.constant(`${p}/B`, [D, 8 * H], "float", stack((d) => onnxGateBias(d.bias!, H))) : "", // (D, 8H), or omitted
        ];
        // f = HardSigmoid on i, o, f (its defaults alpha 0.2, beta 0.5 are Keras' clip(0.2·x + 0.5, 0, 1));
        // g, h = Tanh on the candidate and the cell output, as in every longshort LSTM (listed per direction).
        activations(["HardSigmoid", "Tanh", "Tanh"]);
      } else {
        // ONNX's gate blocks z, r, h are Keras's: each matrix is only transposed. resetAfter is linear_before_reset 1,
        // Rb the recurrent bias row (inside r ⊙ (h·Rhᵀ + Rbh)); resetAfter false is 0, Keras's one bias in Wb, Rb zero.
        p = `gru_${gi++}`;
        op = "GRU";
        const b6 = (bias: ArrayLike<number>): Float64Array => {
          const B6 = new Float64Array(6 * H);
          B6.set(Array.from(bias)); // (2, 3H) rows b_x, b_h, or (3H) then zeros
          return B6;
        };
        inputs = [
          cur,
          g.constant(`${p}/W`, [D, 3 * H, dim], "float", stack((d) => transposed(d.kernel, dim, 3 * H))),  // (D, 3H, I)
          g.constant(`${p}/R`, [D, 3 * H, H], "float", stack((d) => transposed(d.recurrent, H, 3 * H))),   // (D, 3H, H)
          cell.useBias ? g.constant(`${p}/B`, [D, 6 * H], "float", stack((d) => b6(d.bias!))) : "",          // (D, 6H), or omitted
        ];
        attributes.push({ name: "linear_before_reset", type: "int", value: cell.resetAfter ? 1 : 0 });
        // f = σ on z and r (HardSigmoid's defaults alpha 0.2, beta 0.5, as for the LSTM), g = Tanh on the candidate.
        activations(["HardSigmoid", "Tanh"]);
      }
      if (mask) inputs.push(mask.lens);                                              // (B) int32
      while (inputs[inputs.length - 1] === "") inputs.pop();
      // goBackwards: ONNX's "reverse" direction reads the steps last to first, as Keras does; its Y is indexed by input
      // step, where Keras returns the reading order, so a sequence output is reversed back (Slice with step −1).
      if (bidi) attributes.push({ name: "direction", type: "string", value: "bidirectional" });
      else if (cell.goBackwards) attributes.push({ name: "direction", type: "string", value: "reverse" });
      // Where Keras's masked output differs from ONNX's on post-padded rows (the header): only the top layer's matters
      // (a Bidirectional's never does: bidirectionalOutput).
      const forward = mask !== null && i === top && !layer.goBackwards;
      if (bidi) cur = bidirectionalOutput(g, p, op, inputs, attributes, layer);
      else if (layer.returnSequences) {
        const repeat = forward && !cell.zeroOutputForMask;
        const [y, yh] = [`${p}/Y`, repeat ? `${p}/Y_h` : ""];
        g.node(op, p, inputs, [y, yh], attributes);                                           // Y (T, 1, B, H), Y_h (1, B, H)
        cur = g.op("Squeeze", `${p}/h_seq`, [y, g.int64s([1])]);                             // (T, B, H), by input step
        if (cell.goBackwards) cur = g.op("Slice", `${p}/reading_order`, [cur, g.int64s([-1]), g.int64s([-(2 ** 62)]), g.int64s([0]), g.int64s([-1])]);
        if (repeat) cur = g.op("Where", `${p}/masked_repeat`, [mask.keptSteps(), cur, yh]); // Keras: the last kept output again
      } else {
        const yh = g.node(op, p, inputs, ["", `${p}/Y_h`], attributes);                    // (1, B, H)
        cur = g.op("Squeeze", `${p}/h_last`, [yh, g.int64s([0])]);                          // (B, H)
        if (forward && cell.zeroOutputForMask) cur = g.op("Where", `${p}/masked_zero`, [mask.lastStepKept(), cur, g.constant(`${p}/zero`, [], "float", [0])]);
      }
      dim = layer.units;
    } else {
      const dense = layer as Dense;
      const p = `dense_${di}`;
      const D = dense.units;
      const kernel = g.constant(`${p}/kernel`, [dim, D], "float", weights[w++]!.data);            // (In, D)
      cur = g.op("MatMul", `${p}/matmul`, [cur, kernel]);                                     // ([T, ]B, D)
      if (dense.useBias) cur = g.op("Add", `${p}/add`, [cur, g.constant(`${p}/bias`, [D], "float", weights[w++]!.data)]); // + (D)
      // Softmax (opset 13+) normalises over one axis, by default the last: the units, per row and step.
      const op = ({ linear: null, sigmoid: "Sigmoid", tanh: "Tanh", relu: "Relu", softmax: "Softmax" } as const)[dense.activation];
      if (op) cur = g.op(op, `${p}/${dense.activation}`, [cur]);
      dim = D;
      di++;
    }
  });
  if (w !== weights.length) throw new Error(`toOnnx: internal error, used ${w} of ${weights.length} weights`);
  if (model.perStep) cur = g.op("Transpose", "to_batch_major", [cur], [{ name: "perm", type: "ints", value: [1, 0, 2] }]); // (B, T, D)
  if (mask) g.op("Where", "not_post_padded_nan", [mask.postPadded(model.perStep), cur, g.constant("nan", [], "float", [NaN])]);
  // The last node writes the graph output.
  g.nodes[g.nodes.length - 1]!.outputs[0] = "y";

  const input: ValueInfo = ids ? { name: "x", elemType: "int64", dims: ["batch", "time"] } : { name: "x", elemType: "float", dims: ["batch", "time", model.inputDim!] };
  const output: ValueInfo = { name: "y", elemType: "float", dims: model.perStep ? ["batch", "time", dim] : ["batch", dim] };
  const doc = `A longshort Sequential (${layers.map((l) => l.kind).join(", ")}), from a zero initial recurrent state${mask ? "; masked rows must be padded at the end (others give NaN)" : ""}.`;
  return encodeModel(g, [input], [output], doc);
}

/**
 * A Bidirectional's one ONNX node (direction "bidirectional") and its merged output: Y (T, 2, B, H) gives each ONNX
 * direction's outputs by input step, Y_h (2, B, H) each one's last state (the reverse one's after reading step 0, which
 * is Keras's backward last output). Per step, Keras's output at step t merges the forward direction's at t with the
 * backward one's flipped back into time order, which is ONNX's reverse direction's at t. Masked (post-padded rows),
 * nothing needs rebuilding: a Bidirectional sets zeroOutputForMask to returnSequences on both directions (as Keras's
 * wrapper does), so per step it gives zeros at the masked steps, as ONNX does, and for the last step each direction's
 * last kept output, which is ONNX's Y_h.
 */
function bidirectionalOutput(g: GraphBuilder, p: string, op: string, inputs: string[], attributes: Attribute[], layer: Bidirectional): string {
  const seq = layer.returnSequences;
  const out = g.node(op, p, inputs, seq ? [`${p}/Y`] : ["", `${p}/Y_h`], attributes);  // Y (T, 2, B, H), or Y_h (2, B, H)
  // The forward direction's (ONNX's 0) and the backward one's (1): (T, B, H) by input step, or (B, H).
  const direction = (d: 0 | 1, name: string): string =>
    g.op("Gather", `${p}/${name}`, [out, g.constant(`${p}/${name}_index`, [], "int64", [d])], [{ name: "axis", type: "int", value: seq ? 1 : 0 }]);
  const f = direction(0, "forward"), b = direction(1, "backward");
  switch (layer.mergeMode) {
    case "concat": return g.op("Concat", `${p}/concat`, [f, b], [{ name: "axis", type: "int", value: -1 }]); // (…, B, 2H)
    case "sum": return g.op("Add", `${p}/sum`, [f, b]);
    case "mul": return g.op("Mul", `${p}/mul`, [f, b]);
    case "ave": return g.op("Mul", `${p}/ave`, [g.op("Add", `${p}/ave_sum`, [f, b]), g.constant(`${p}/half`, [], "float", [0.5])]);
  }
}

/**
 * The mask's pieces in the graph (the header's formulas), each built on first use: `lens`, the LSTMs' sequence_lens,
 * is always used.
 */
class MaskGraph {
  /** (T, B) int32: 1 where a step is kept. */
  readonly kept: string;
  /** (B) int32: each row's count of kept steps. */
  readonly lens: string;
  private steps: string | null = null;
  private last: string | null = null;

  constructor(private readonly g: GraphBuilder, input: string, ids: boolean, maskValue: number) {
    const toInt32: Attribute[] = [{ name: "to", type: "int", value: DATA_TYPE.int32 }];
    if (ids) {
      const same = g.op("Equal", "mask/is_zero_id", [input, g.constant("mask/zero_id", [], "int64", [0])]);       // (T, B) bool
      this.kept = g.op("Cast", "mask/kept", [g.op("Not", "mask/not_zero_id", [same])], toInt32);                 // (T, B)
    } else {
      const same = g.op("Equal", "mask/is_mask_value", [input, g.constant("mask/mask_value", [], "float", [maskValue])]); // (T, B, F) bool
      const differs = g.op("Cast", "mask/differs", [g.op("Not", "mask/not_mask_value", [same])], toInt32);        // (T, B, F)
      this.kept = g.op("ReduceMax", "mask/kept", [differs], [{ name: "axes", type: "ints", value: [2] }, { name: "keepdims", type: "int", value: 0 }]); // (T, B)
    }
    this.lens = g.op("ReduceSum", "mask/lens", [this.kept, g.int64s([0])], [{ name: "keepdims", type: "int", value: 0 }]); // (B)
  }

  /** (T, B, 1) bool: kept, to select per step. */
  keptSteps(): string {
    const toBool: Attribute[] = [{ name: "to", type: "int", value: DATA_TYPE.bool }];
    return (this.steps ??= this.g.op("Cast", "mask/kept_steps", [this.g.op("Unsqueeze", "mask/kept_3d", [this.kept, this.g.int64s([2])])], toBool));
  }

  /** (B, 1) bool: whether step T − 1 is kept. */
  lastStepKept(): string {
    const g = this.g;
    if (this.last === null) {
      const k = g.op("Gather", "mask/last_step", [this.kept, g.constant("mask/last_index", [], "int64", [-1])], [{ name: "axis", type: "int", value: 0 }]); // (B)
      const u = g.op("Unsqueeze", "mask/last_step_2d", [k, g.int64s([1])]);                                                                              // (B, 1)
      this.last = g.op("Cast", "mask/last_step_kept", [u], [{ name: "to", type: "int", value: DATA_TYPE.bool }]);
    }
    return this.last;
  }

  /** (B, 1) or (B, 1, 1) bool for a per-step y: true where no kept step follows a masked one in the row. */
  postPadded(perStep: boolean): string {
    const g = this.g;
    const later = g.op("Slice", "mask/later", [this.kept, g.int64s([1]), g.int64s([2 ** 62]), g.int64s([0])]);     // (T − 1, B): steps 1 …
    const earlier = g.op("Slice", "mask/earlier", [this.kept, g.int64s([0]), g.int64s([-1]), g.int64s([0])]);      // (T − 1, B): steps … T − 2
    const rises = g.op("Cast", "mask/rises", [g.op("Greater", "mask/kept_after_masked", [later, earlier])], [{ name: "to", type: "int", value: DATA_TYPE.int32 }]);
    const count = g.op("ReduceSum", "mask/rise_count", [rises, g.int64s([0])], [{ name: "keepdims", type: "int", value: 0 }]); // (B); 0 when T = 1
    const post = g.op("Equal", "mask/post_padded", [count, g.constant("mask/zero_rises", [], "int32", [0])]);      // (B) bool
    return g.op("Unsqueeze", "mask/post_padded_y", [post, g.int64s(perStep ? [1, 2] : [1])]);
  }
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

/** A (rows, cols) matrix as (cols, rows): a Keras GRU kernel (rows, 3H) as ONNX's (1, 3H, rows), whose blocks z, r, h are Keras's. */
function transposed(m: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) out[c * rows + r] = m[r * cols + c]!;
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
