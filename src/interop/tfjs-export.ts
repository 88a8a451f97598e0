/**
 * The TensorFlow.js Layers format, export: `toTfjs` writes a Sequential as tf.io.ModelArtifacts, with the
 * Keras JSON topology as tfjs-layers itself saves it, a weight spec per weight ("<layer>/<slot>") and the
 * weights' bytes, little-endian float32, in the specs' order. The types of what it writes live here too, and
 * the slot names of each layer kind (Keras's weight names, in getWeights order), which the import side
 * (tfjs-topology.ts) expects by the same names. tfjs.ts re-exports all of it; import it from there.
 *
 * Legend: F input features (the last entry of `batch_input_shape`).
 */
import { Sequential } from "../model.js";
import type { Layer } from "../engine.js";
import { GRU } from "../layers/gru.js";
import { LSTM } from "../layers/lstm.js";
import { Embedding } from "../layers/embedding.js";
import { Bidirectional } from "../layers/bidirectional.js";
import type { Dense } from "../layers/dense.js";
import type { InitializerName } from "../init.js";
import { StateError, ValueError, fmtInstance } from "../errors.js";

/** The tfjs-layers version whose format `toTfjs` writes (the one the tests load it with). */
export const TFJS_LAYERS_VERSION = "4.22.0";

/** One entry of `weightSpecs` (tf.io.WeightsManifestEntry). */
export interface TfjsWeightSpec {
  name: string;
  shape: number[];
  dtype: string;
  /** "model" or "optimizer"; optimizer weights are skipped on import. */
  group?: string;
  /** Converter quantization (`--quantize_uint8` …): the bytes hold `dtype` uint8/uint16/float16 values. */
  quantization?: { dtype: string; min?: number; scale?: number; original_dtype?: string };
}

/** What `toTfjs` returns: tf.io.ModelArtifacts of a Layers model. */
export interface TfjsArtifacts {
  /** The Keras JSON config: { class_name: "Sequential", config: { name, layers }, keras_version, backend }. */
  modelTopology: Record<string, unknown>;
  weightSpecs: TfjsWeightSpec[];
  /** The weights, float32 little-endian, in weightSpecs order. */
  weightData: ArrayBuffer;
  format: "layers-model";
  generatedBy: string;
  convertedBy: string | null;
}

const ZEROS_INIT = { class_name: "Zeros", config: {} };

/** Keras's serialisation of longshort's initialisers (used only if someone re-initialises the model). */
function initializerConfig(name: InitializerName): object {
  switch (name) {
    case "glorotUniform": return { class_name: "GlorotUniform", config: { seed: null } };
    case "orthogonal": return { class_name: "Orthogonal", config: { gain: 1, seed: null } };
    case "zeros": return ZEROS_INIT;
  }
}

/**
 * Keras-style layer names: lstm, lstm_1, …, dense, dense_1, …; a Bidirectional's wrapped layer is named from the same
 * count as the model's own LSTMs or GRUs (tfjs prefixes it with forward_ and backward_ for its two directions).
 */
function layerNames(layers: readonly Layer[]): { names: string[]; inner: (string | null)[] } {
  const count = new Map<string, number>();
  const next = (kind: string): string => {
    const k = count.get(kind) ?? 0;
    count.set(kind, k + 1);
    return k === 0 ? kind : `${kind}_${k}`;
  };
  const names: string[] = [], inner: (string | null)[] = [];
  for (const l of layers) {
    names.push(next(l.kind));
    inner.push(l instanceof Bidirectional ? next(l.forwardLayer.kind) : null);
  }
  return { names, inner };
}

/** The LSTM or GRU that decides what a layer computes: itself, or a Bidirectional's forward direction. */
function cellOf(l: Layer): LSTM | GRU | null {
  if (l instanceof Bidirectional) return l.forwardLayer;
  return l instanceof LSTM || l instanceof GRU ? l : null;
}

/** How messages name a recurrent layer: "a GRU", "a Bidirectional over a GRU". */
function recurrentName(l: Layer): string {
  const name = cellOf(l) instanceof GRU ? "a GRU" : "an LSTM";
  return l instanceof Bidirectional ? `a Bidirectional over ${name}` : name;
}

/**
 * An LSTM's or a GRU's config as tfjs-layers 4.22 writes it (its getConfig): the LSTM with unit_forget_bias, the GRU
 * with reset_after false (a GRU with resetAfter true is refused before this is called). `head` is name and trainable,
 * and the input shape on a first layer.
 */
function recurrentConfig(l: LSTM | GRU, head: object): object {
  const lstm = l instanceof LSTM;
  return {
    class_name: lstm ? "LSTM" : "GRU",
    config: {
      ...head,
      units: l.units,
      activation: "tanh",
      recurrent_activation: l.recurrentActivation === "hardSigmoid" ? "hard_sigmoid" : "sigmoid",
      use_bias: l.useBias,
      kernel_initializer: initializerConfig(l.kernelInitializer),
      recurrent_initializer: initializerConfig(l.recurrentInitializer),
      bias_initializer: ZEROS_INIT,
      ...(lstm ? { unit_forget_bias: l.unitForgetBias } : {}),
      kernel_regularizer: null, recurrent_regularizer: null, bias_regularizer: null, activity_regularizer: null,
      kernel_constraint: null, recurrent_constraint: null, bias_constraint: null,
      dropout: l.dropout,
      recurrent_dropout: l.recurrentDropout,
      implementation: 2,
      ...(lstm ? {} : { reset_after: false }),
      return_sequences: l.returnSequences,
      return_state: false,
      go_backwards: l.goBackwards,
      stateful: l.stateful,
      unroll: false,
    },
  };
}

/**
 * The model as TensorFlow.js ModelArtifacts, which `tf.loadLayersModel(tf.io.fromMemory(artifacts))` loads
 * into a tf.Sequential that predicts what the model predicts. The topology follows what tfjs-layers itself
 * saves (snake_case Keras configs, `batch_input_shape` on the first layer: [batchSize of a stateful model or
 * null, null, F]); weights are named "<layer>/kernel", "<layer>/recurrent_kernel", "<layer>/bias" and stored
 * as little-endian float32 (a float64 model is rounded). A per-step model's Dense layers are plain Dense
 * layers: on a 3D input a Keras Dense applies to every step. A GRU goes as tfjs's GRU, which has Keras's
 * reset_after false form only: a GRU with `resetAfter: true` (longshort's and Keras 3's default) is refused by
 * name, as is `zeroOutputForMask` on the top recurrent layer of a masked model (tfjs's RNN repeats the previous output
 * at a masked step; a layer above reads none of those steps, so below the top it goes, and the file does not carry it).
 * A Bidirectional goes as tfjs-layers' Bidirectional wrapper: `merge_mode` and the wrapped LSTM's or GRU's config (its
 * forward direction; tfjs makes the backward one with go_backwards flipped), the same refusals as for the layer alone
 * (its zeroOutputForMask is its returnSequences: a sequence-returning one cannot be the top of a masked model), its
 * weights "<wrapper>/forward_<layer>/kernel", …, "<wrapper>/backward_<layer>/…", the forward direction's first.
 *
 * @example
 * const artifacts = toTfjs(model);
 * const tfModel = await tf.loadLayersModel(tf.io.fromMemory(artifacts));   // import * as tf from "@tensorflow/tfjs"
 * tfModel.predict(tf.tensor3d(x));                                           // what model.predict(x) gives
 */
export function toTfjs(model: Sequential): TfjsArtifacts {
  if (!(model instanceof Sequential)) {
    throw new ValueError(`toTfjs model: expected a Sequential, got ${fmtInstance(model, "Sequential")}`);
  }
  const F = model.inputDim;
  if (F === undefined) {
    throw new StateError(`toTfjs: the model is not built (its input features are unknown); call model.build(inputDim) or run it on data first`);
  }
  if (model.stateful && model.batchSize === undefined) {
    throw new StateError(`toTfjs: a stateful model needs its batch size in the topology (Keras batch_input_shape); call model.setBatchSize(n) first`);
  }
  const layers = model.layers;
  // Masked by a Masking layer (layers[0] of the Sequential's list, so the LSTM's index is one more) or by maskZero.
  const at = (i: number): number => i + (model.masking ? 1 : 0);
  // zeroOutputForMask changes what a masked model predicts only on its top recurrent layer: a recurrent layer above
  // reads none of a lower one's masked steps (the same mask hides them), in tfjs as here.
  let top = -1;
  layers.forEach((l, i) => { if (cellOf(l)) top = i; });
  if (model.engine.maskValue !== null && top >= 0 && cellOf(layers[top]!)!.zeroOutputForMask) {
    const l = layers[top]!;
    throw new ValueError(l instanceof Bidirectional
      ? `toTfjs model: layers[${at(top)}] is a Bidirectional returning sequences, the top recurrent layer of a masked model: it gives zeros at ` +
        `masked steps (its zeroOutputForMask is its returnSequences, as Keras's wrapper forces it), where TensorFlow.js's RNN repeats the ` +
        `previous output, so tfjs would not predict what this model does; an LSTM, GRU or Bidirectional above it would read none of those steps`
      : `toTfjs model: layers[${at(top)}] has zeroOutputForMask, which TensorFlow.js's RNN does not have (it repeats the previous output at a ` +
        `masked step), so tfjs would not predict what this model does`);
  }
  // TensorFlow.js's GRU has only Keras's reset_after false form (tfjs-layers: "GRUCell does not support reset_after
  // parameter set to true").
  const after = layers.findIndex((l) => { const c = cellOf(l); return c instanceof GRU && c.resetAfter; });
  if (after >= 0) {
    throw new ValueError(`toTfjs model: layers[${at(after)}] is ${recurrentName(layers[after]!)} with resetAfter true (the reset gate after the recurrent ` +
      `product, two bias rows), which TensorFlow.js's GRU does not compute (it has reset_after false only: "GRUCell does not support ` +
      `reset_after parameter set to true"); build the GRU with resetAfter: false for TensorFlow.js, or use toOnnx, toSafetensors or a checkpoint`);
  }
  const { names, inner } = layerNames(layers);
  const batch = model.stateful ? model.batchSize! : null;
  const masking = model.masking;
  const configs: object[] = layers.map((l, i) => {
    const name = names[i]!;
    // As tfjs writes it: the input shape and dtype on the first layer only (the Masking layer, when there is one).
    const head = i === 0 && !masking ? { name, trainable: true, batch_input_shape: [batch, null, F], dtype: "float32" } : { name, trainable: true };
    if (l instanceof LSTM || l instanceof GRU) return recurrentConfig(l, head);
    if (l instanceof Bidirectional) {
      // tfjs-layers' Bidirectional (Keras's wrapper): the layer given (its forward direction), the merge mode, and the
      // wrapper's own name and input shape; tfjs builds the backward direction itself, with go_backwards flipped.
      return {
        class_name: "Bidirectional",
        config: { merge_mode: l.mergeMode, layer: recurrentConfig(l.forwardLayer, { name: inner[i]!, trainable: true }), ...head },
      };
    }
    if (l instanceof Embedding) {
      // Its input is the ids, [batch, time]: the input shape is 2-D here.
      const idsHead = i === 0 ? { name, trainable: true, batch_input_shape: [batch, null], dtype: "float32" } : head;
      return {
        class_name: "Embedding",
        config: {
          ...idsHead,
          input_dim: l.inputDim,
          output_dim: l.units,
          embeddings_initializer: { class_name: "RandomUniform", config: { minval: -0.05, maxval: 0.05, seed: null } },
          embeddings_regularizer: null, activity_regularizer: null, embeddings_constraint: null,
          mask_zero: l.maskZero,
          input_length: null,
        },
      };
    }
    const dense = l as Dense;
    return {
      class_name: "Dense",
      config: {
        units: dense.units,
        activation: dense.activation,
        use_bias: dense.useBias,
        kernel_initializer: initializerConfig("glorotUniform"),
        bias_initializer: ZEROS_INIT,
        kernel_regularizer: null, bias_regularizer: null, activity_regularizer: null,
        kernel_constraint: null, bias_constraint: null,
        ...head,
      },
    };
  });

  if (masking) {
    configs.unshift({
      class_name: "Masking",
      config: { name: "masking", trainable: true, batch_input_shape: [batch, null, F], dtype: "float32", mask_value: masking.maskValue },
    });
  }
  // Weights: getWeights order, which is Keras's per layer (kernel, recurrent_kernel, bias).
  const weights = model.getWeights();
  // A Bidirectional's as tfjs names them: "<wrapper>/forward_<layer>/kernel", …, then "<wrapper>/backward_<layer>/…"
  // (its build runs each direction under a name scope of its own name; getWeights gives the forward direction's first).
  const specNames = layers.flatMap((l, i) => {
    if (l instanceof Bidirectional) {
      const slots = recurrentSlots(l.forwardLayer.useBias);
      return ["forward", "backward"].flatMap((d) => slots.map((s) => `${names[i]}/${d}_${inner[i]}/${s}`));
    }
    const slots = l instanceof Embedding ? EMBEDDING_SLOTS : l instanceof LSTM || l instanceof GRU ? recurrentSlots(l.useBias) : denseSlots((l as Dense).useBias);
    return slots.map((s) => `${names[i]}/${s}`);
  });
  const weightSpecs: TfjsWeightSpec[] = weights.map((w, k) => ({ name: specNames[k]!, shape: w.shape.slice(), dtype: "float32" }));
  const total = weights.reduce((s, w) => s + w.data.length, 0);
  const weightData = new ArrayBuffer(total * 4);
  const view = new DataView(weightData);
  let off = 0;
  for (const w of weights) {
    for (let k = 0; k < w.data.length; k++, off += 4) view.setFloat32(off, w.data[k]!, true);
  }
  return {
    modelTopology: {
      class_name: "Sequential",
      config: { name: "sequential", layers: configs },
      keras_version: `tfjs-layers ${TFJS_LAYERS_VERSION}`,
      backend: "tensor_flow.js",
    },
    weightSpecs,
    weightData,
    format: "layers-model",
    generatedBy: "longshort",
    convertedBy: null,
  };
}

/** The Embedding's one weight, its table (V, D). */
export const EMBEDDING_SLOTS: readonly string[] = ["embeddings"];

/** An LSTM's or a GRU's weights, Keras's names for both (a GRU's bias is [3H], or [2, 3H] with reset_after true). */
export function recurrentSlots(useBias: boolean): string[] {
  return useBias ? ["kernel", "recurrent_kernel", "bias"] : ["kernel", "recurrent_kernel"];
}

export function denseSlots(useBias: boolean): string[] {
  return useBias ? ["kernel", "bias"] : ["kernel"];
}
