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
 * With `states` (StateGraph), each recurrent layer's node also reads initial_h (and initial_c) and writes Y_h (and Y_c):
 *
 *   <layer>/h_in (B, H) ─Unsqueeze(0)→ (1, B, H) ─→ initial_h             a Bidirectional: h_in, hBackward_in ─Concat(0)→ (2, B, H)
 *   Y_h (D, B, H) ─Squeeze(0)→ <layer>/h_out (B, H)                       a Bidirectional: ─Gather(0|1, axis 0)→ h_out, hBackward_out
 *   (c likewise for an LSTM; masked: Where(len > 0, Y_h, initial_h), and NaN for a row not padded at the end)
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
 * (Where(kept[T − 1], Y_h, 0)). A backwards layer needs nothing: Keras reads the masked steps first (the state as it
 * started, the output zero), then kept steps len − 1 … 0, which is ONNX's reverse direction on [0, len), Y reversed
 * into reading order included; a forward zeroOutputForMask per-step one has ONNX's zeros already. A Bidirectional is
 * one node of both directions (each reads [0, len) of its row, the reverse one from len − 1 down, as Keras's backward
 * direction does once it has passed the masked steps at the end, which leave its state as it started and its output
 * zero) and needs nothing either: its zeroOutputForMask is its returnSequences (as Keras's wrapper forces it), zeros
 * at masked steps per step, each direction's last kept output for the last step.
 * With `states` a row with no kept step (len 0) needs one thing more, which a zero initial state made moot: Keras's
 * output there is zeros and its state the initial one, where the spec leaves Y_h open (ONNX Runtime 1.30 gives
 * zeros), so wherever y reads the top layer's Y_h it reads Where(len > 0, Y_h, 0), and the state outputs are
 * Where(len > 0, Y_h, initial_h).
 *
 * Facts from the ONNX operator spec used here (LSTM, opset 14+): inputs X (T, B, I) with layout 0,
 * W (dirs, 4H, I), R (dirs, 4H, H), optional B (dirs, 8H) = [Wb, Rb], optional sequence_lens (B) int32, optional
 * initial_h and initial_c (dirs, B, H) (zeros when omitted); outputs Y (T, dirs, B, H), Y_h and Y_c (dirs, B, H), each
 * optional ("" for one not wanted); gate blocks in the order i, o, f, c; each gate is act(X·Wᵀ + H·Rᵀ + Wb + Rb);
 * `activations` lists f, g, h (default Sigmoid, Tanh, Tanh) and HardSigmoid's defaults are alpha 0.2, beta 0.5,
 * which is Keras' hardSigmoid. Squeeze, Unsqueeze, Slice and ReduceSum take their axes as int64 inputs since opset
 * 13; ReduceMax still as an attribute (until opset 18). Gather takes int64 indices, a negative one counting from the
 * end. GRU (opset 14+): the same X, sequence_lens, initial_h, Y and Y_h; W (dirs, 3H, I), R (dirs, 3H, H), B (dirs,
 * 6H) = [Wb, Rb], gate blocks z, r, h (Keras's order); z, r = f(X·Wᵀ + H·Rᵀ + Wb + Rb), the candidate
 * g(X·Whᵀ + (r ⊙ H)·Rhᵀ + Rbh + Wbh) with linear_before_reset 0 (Keras's reset_after false) or
 * g(X·Whᵀ + r ⊙ (H·Rhᵀ + Rbh) + Wbh) with 1 (reset_after true), H' = (1 − z) ⊙ ĥ + z ⊙ H;
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
import { StateError, ValueError, checkKeys, fmtValue, fmtInstance } from "../errors.js";
import { type Attribute, DATA_TYPE, GraphBuilder, type ValueInfo, encodeModel } from "./onnx-graph.js";

export { ONNX_OPSET, ONNX_IR_VERSION } from "./onnx-graph.js";

/** What toOnnx takes besides the model. */
export interface OnnxOptions {
  /**
   * Default false. True: every recurrent layer's states become graph inputs `<layer>/<state>_in`, where the graph
   * starts from (instead of zeros), and outputs `<layer>/<state>_out`, its states after the chunk, each float32
   * [batch, H], `<layer>` as in weight names (layers counted per kind: `lstm_0`, `gru_0`, `bidirectional_0`),
   * `<state>` as getStates names them (`h`, and `c` for an LSTM; a Bidirectional's also `hBackward`, `cBackward`).
   * Inputs x, then the states, bottom layer first; outputs y, then the states, in the same order. Every state input
   * must be fed (zeros to start a sequence). Masked, a row's states are those after its last kept step (a row with
   * none keeps the ones it was given), as the masked model carries them; NaN for a row not padded at the end, as its y.
   */
  states?: boolean;
}

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
 * - By default the graph starts every call from a zero recurrent state: it computes what `predict` computes on a
 *   fresh (or reset) model, and carries nothing between runs. With `{ states: true }` each recurrent layer's states
 *   are graph inputs and outputs (OnnxOptions): feed a chunk with the states the previous one gave, and the graph
 *   streams as a stateful model does, chunk by chunk; `predict(x, { initialStates })` is the graph fed those states.
 *
 * Throws ValueError when `model` is not a Sequential, `options` are not OnnxOptions (an unknown key, a states that
 * is not a boolean) or a weight does not fit in float32, and StateError when the model is not built yet.
 *
 * @example
 * import * as ort from "onnxruntime-node";
 * const session = await ort.InferenceSession.create(toOnnx(model));
 * const { y } = await session.run({ x: new ort.Tensor("float32", xData, [B, T, F]) });
 * // an Embedding first: { x: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), [B, T]) }
 *
 * // streaming: one LSTM layer's states in, its final ones out, next chunk's in
 * const streaming = await ort.InferenceSession.create(toOnnx(model, { states: true }));
 * let h = new ort.Tensor("float32", new Float32Array(B * H), [B, H]), c = h;
 * for (const chunk of chunks) {
 *   const out = await streaming.run({ x: chunk, "lstm_0/h_in": h, "lstm_0/c_in": c });
 *   [h, c] = [out["lstm_0/h_out"]!, out["lstm_0/c_out"]!]; // out.y: this chunk's predictions
 * }
 */
export function toOnnx(model: Sequential, options: OnnxOptions = {}): Uint8Array {
  if (!(model instanceof Sequential)) {
    throw new ValueError(`toOnnx model: expected a Sequential, got ${fmtInstance(model, "Sequential")}`);
  }
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ValueError(`toOnnx options: expected an object like { states: true }, got ${fmtValue(options)}`);
  }
  checkKeys("toOnnx", options, ["states"]);
  if (options.states !== undefined && typeof options.states !== "boolean") {
    throw new ValueError(`toOnnx states: expected a boolean, got ${fmtValue(options.states)}`);
  }
  const withStates = options.states === true;
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
  const states = withStates ? new StateGraph(g) : null;

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
      // With states, the initial_h (and initial_c) inputs after sequence_lens: (D, B, H) each, from the graph's inputs.
      const io = states ? states.layer(layer, p, H) : null;
      inputs.push(mask ? mask.lens : "", ...(io ? io.initial : []));                // (B) int32, (D, B, H) …
      while (inputs[inputs.length - 1] === "") inputs.pop();
      // goBackwards: ONNX's "reverse" direction reads the steps last to first, as Keras does; its Y is indexed by input
      // step, where Keras returns the reading order, so a sequence output is reversed back (Slice with step −1).
      if (bidi) attributes.push({ name: "direction", type: "string", value: "bidirectional" });
      else if (cell.goBackwards) attributes.push({ name: "direction", type: "string", value: "reverse" });
      // Where Keras's masked output differs from ONNX's on post-padded rows (the header): only the top layer's matters
      // (a Bidirectional's never does: bidirectionalOutput).
      const forward = mask !== null && i === top && !layer.goBackwards;
      // Y_h as the top layer's output reads it: masked with states, zeros for a row with no kept step (Keras's output
      // there; the spec leaves Y_h open for len 0, ONNX Runtime 1.30 gives zeros, another backend may give initial_h).
      const asOutput = (yh: string): string => (mask && io ? mask.zerosWhereNoneKept(p, yh) : yh);
      if (bidi) cur = bidirectionalOutput(g, p, op, inputs, attributes, layer, io?.outputs ?? null, asOutput);
      else if (layer.returnSequences) {
        const repeat = forward && !cell.zeroOutputForMask;
        const [y, yh] = [`${p}/Y`, repeat ? `${p}/Y_h` : ""];
        g.node(op, p, inputs, io ? [y, ...io.outputs] : [y, yh], attributes);               // Y (T, 1, B, H), Y_h (1, B, H)[, Y_c]
        cur = g.op("Squeeze", `${p}/h_seq`, [y, g.int64s([1])]);                             // (T, B, H), by input step
        if (cell.goBackwards) cur = g.op("Slice", `${p}/reading_order`, [cur, g.int64s([-1]), g.int64s([-(2 ** 62)]), g.int64s([0]), g.int64s([-1])]);
        if (repeat) cur = g.op("Where", `${p}/masked_repeat`, [mask.keptSteps(), cur, asOutput(yh)]); // Keras: the last kept output again
      } else {
        const yh = asOutput(g.node(op, p, inputs, io ? ["", ...io.outputs] : ["", `${p}/Y_h`], attributes)); // (1, B, H)
        cur = g.op("Squeeze", `${p}/h_last`, [yh, g.int64s([0])]);                          // (B, H)
        if (forward && cell.zeroOutputForMask) cur = g.op("Where", `${p}/masked_zero`, [mask.lastStepKept(), cur, g.constant(`${p}/zero`, [], "float", [0])]);
      }
      io?.finish(mask);
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
  const nan = mask ? [mask.postPadded(model.perStep), g.constant("nan", [], "float", [NaN])] as const : null;
  if (nan) g.op("Where", "not_post_padded_nan", [nan[0], cur, nan[1]]);
  // The last node writes the graph output.
  g.nodes[g.nodes.length - 1]!.outputs[0] = "y";
  states?.writeOutputs(mask ? [mask.postPaddedRows(), nan![1]] : null);

  const input: ValueInfo = ids ? { name: "x", elemType: "int64", dims: ["batch", "time"] } : { name: "x", elemType: "float", dims: ["batch", "time", model.inputDim!] };
  const output: ValueInfo = { name: "y", elemType: "float", dims: model.perStep ? ["batch", "time", dim] : ["batch", dim] };
  const from = states
    ? "from the initial states given as inputs <layer>/<state>_in, its final states as outputs <layer>/<state>_out"
    : "from a zero initial recurrent state";
  const doc = `A longshort Sequential (${layers.map((l) => l.kind).join(", ")}), ${from}${mask ? "; masked rows must be padded at the end (others give NaN)" : ""}.`;
  return encodeModel(g, [input, ...(states?.inputs ?? [])], [output, ...(states?.outputs ?? [])], doc);
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
function bidirectionalOutput(
  g: GraphBuilder, p: string, op: string, inputs: string[], attributes: Attribute[], layer: Bidirectional,
  stateOutputs: string[] | null, lastOutput: (yh: string) => string,
): string {
  const seq = layer.returnSequences;
  // Y (T, 2, B, H), or Y_h (2, B, H); with states Y_h (and Y_c) always, for the state outputs.
  const outputs = stateOutputs ? [seq ? `${p}/Y` : "", ...stateOutputs] : seq ? [`${p}/Y`] : ["", `${p}/Y_h`];
  const first = g.node(op, p, inputs, outputs, attributes);
  const out = seq ? first : lastOutput(first);
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
 * toOnnx's `states`: for each recurrent layer (named as in weight names, layers counted per kind: lstm_0, gru_0,
 * bidirectional_0), a graph input `<layer>/<state>_in` and an output `<layer>/<state>_out` per state in getStates
 * order (h, c for an LSTM, h for a GRU, then hBackward, cBackward for a Bidirectional), each [batch, H]. Inside, ONNX's
 * initial_h / initial_c and Y_h / Y_c are (D, B, H), D = num_directions: an Unsqueeze on axis 0, or for a
 * Bidirectional the forward state and the backward one concatenated on it (ONNX's direction 0 reads forwards, 1
 * backwards, as the weights are stacked); out again through Squeeze or a Gather per direction.
 *
 * Masked, Y_h and Y_c are the state after step len − 1 (forward; after step 0 reading backwards, having started at
 * len − 1), which is Keras's masked state carry on a post-padded row (a masked step passes the state through), except
 * in a row with no kept step (len 0): Keras keeps the initial state, the ONNX spec leaves it open and ONNX Runtime
 * (1.30) gives zeros, so the graph takes the initial state there itself (Where(len > 0, Y_h, initial_h)). A row padded
 * anywhere else gets NaN states, as its y.
 */
class StateGraph {
  readonly inputs: ValueInfo[] = [];
  readonly outputs: ValueInfo[] = [];
  private readonly layers: { p: string; name: string; kinds: readonly string[]; bidi: boolean; finals: string[] }[] = [];
  private readonly count = new Map<string, number>();

  constructor(private readonly g: GraphBuilder) {}

  /**
   * A recurrent layer's graph inputs and outputs: `initial`, its node's initial_h (and initial_c), (D, B, H) each,
   * and `outputs`, the node's Y_h (and Y_c) names; `finish` makes the final states from them once the node is in.
   */
  layer(layer: LSTM | GRU | Bidirectional, p: string, H: number): { initial: string[]; outputs: string[]; finish(mask: MaskGraph | null): void } {
    const g = this.g;
    const k = this.count.get(layer.kind) ?? 0;
    this.count.set(layer.kind, k + 1);
    const name = `${layer.kind}_${k}`;
    for (const s of layer.stateNames) {
      this.inputs.push({ name: `${name}/${s}_in`, elemType: "float", dims: ["batch", H] });
      this.outputs.push({ name: `${name}/${s}_out`, elemType: "float", dims: ["batch", H] });
    }
    const bidi = layer instanceof Bidirectional;
    const kinds = (bidi ? layer.forwardLayer : layer).stateNames; // h (, c): ONNX's initial_h (, initial_c), Y_h (, Y_c)
    const initial = kinds.map((s) => {
      const unsqueezed = (state: string, as: string): string => g.op("Unsqueeze", `${p}/initial_${as}`, [`${name}/${state}_in`, g.int64s([0])]); // (1, B, H)
      if (!bidi) return unsqueezed(s, s);
      const both = [unsqueezed(s, `${s}_forward`), unsqueezed(`${s}Backward`, `${s}_backward`)];
      return g.op("Concat", `${p}/initial_${s}`, both, [{ name: "axis", type: "int", value: 0 }]);                          // (2, B, H)
    });
    const outputs = kinds.map((s) => `${p}/Y_${s}`);
    const entry = { p, name, kinds, bidi, finals: outputs };
    this.layers.push(entry);
    const finish = (mask: MaskGraph | null): void => {
      // A row with no kept step keeps its initial state (the class's comment).
      if (mask) entry.finals = outputs.map((y, j) => g.op("Where", `${p}/final_${kinds[j]}`, [mask.anyKeptRows(), y, initial[j]!]));
    };
    return { initial, outputs, finish };
  }

  /** The graph outputs `<layer>/<state>_out` [B, H], after y; masked, `nan` = [post-padded rows (B, 1), NaN]. */
  writeOutputs(nan: readonly [string, string] | null): void {
    const g = this.g;
    for (const { p, name, kinds, bidi, finals } of this.layers) {
      const index = bidi ? [g.constant(`${p}/state_forward_index`, [], "int64", [0]), g.constant(`${p}/state_backward_index`, [], "int64", [1])] : [];
      kinds.forEach((s, j) => {
        const v = nan ? g.op("Where", `${p}/final_${s}_nan`, [nan[0], finals[j]!, nan[1]]) : finals[j]!; // (D, B, H)
        const out = (state: string): string => `${name}/${state}_out`;
        if (!bidi) g.node("Squeeze", out(s), [v, g.int64s([0])], [out(s)]);
        else {
          const gather = (d: 0 | 1, state: string): string => g.node("Gather", out(state), [v, index[d]!], [out(state)], [{ name: "axis", type: "int", value: 0 }]);
          gather(0, s);
          gather(1, `${s}Backward`);
        }
      });
    }
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
  private post: string | null = null;
  private postState: string | null = null;
  private anyKept: string | null = null;

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
    return this.g.op("Unsqueeze", "mask/post_padded_y", [this.postPaddedB(), this.g.int64s(perStep ? [1, 2] : [1])]);
  }

  /** (B, 1) bool, for the states (D, B, H): true where no kept step follows a masked one in the row. */
  postPaddedRows(): string {
    return (this.postState ??= this.g.op("Unsqueeze", "mask/post_padded_state", [this.postPaddedB(), this.g.int64s([1])]));
  }

  /** `v` (D, B, H), or zeros in a row with no kept step. */
  zerosWhereNoneKept(p: string, v: string): string {
    return this.g.op("Where", `${p}/no_kept_step_zero`, [this.anyKeptRows(), v, this.g.constant(`${p}/no_kept_step_zero_value`, [], "float", [0])]);
  }

  /** (B, 1) bool: whether the row has a kept step (len > 0). */
  anyKeptRows(): string {
    const g = this.g;
    if (this.anyKept === null) {
      const some = g.op("Greater", "mask/some_kept", [this.lens, g.constant("mask/no_kept_steps", [], "int32", [0])]); // (B) bool
      this.anyKept = g.op("Unsqueeze", "mask/some_kept_2d", [some, g.int64s([1])]);                                      // (B, 1)
    }
    return this.anyKept;
  }

  /** (B) bool: no kept step after a masked one. */
  private postPaddedB(): string {
    if (this.post !== null) return this.post;
    const g = this.g;
    const later = g.op("Slice", "mask/later", [this.kept, g.int64s([1]), g.int64s([2 ** 62]), g.int64s([0])]);     // (T − 1, B): steps 1 …
    const earlier = g.op("Slice", "mask/earlier", [this.kept, g.int64s([0]), g.int64s([-1]), g.int64s([0])]);      // (T − 1, B): steps … T − 2
    const rises = g.op("Cast", "mask/rises", [g.op("Greater", "mask/kept_after_masked", [later, earlier])], [{ name: "to", type: "int", value: DATA_TYPE.int32 }]);
    const count = g.op("ReduceSum", "mask/rise_count", [rises, g.int64s([0])], [{ name: "keepdims", type: "int", value: 0 }]); // (B); 0 when T = 1
    return (this.post = g.op("Equal", "mask/post_padded", [count, g.constant("mask/zero_rises", [], "int32", [0])])); // (B) bool
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
