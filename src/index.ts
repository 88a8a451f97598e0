// The public surface (see README.md), the same in every JavaScript runtime: nothing here, nor in anything
// it imports, uses Node. What needs Node is in node/index.ts ("longshort/node"). This file only re-exports.
export { tensor, zeros, toArray, type Tensor, type TensorLike, type DType } from "./tensor/tensor.js";
export { LSTM, type LSTMOptions, type RecurrentActivation } from "./layers/lstm.js";
export { GRU, type GRUOptions } from "./layers/gru.js";
export { Bidirectional, type BidirectionalOptions, type MergeMode } from "./layers/bidirectional.js";
export { Dense, type DenseOptions, type Activation } from "./layers/dense.js";
export { Masking, type MaskingOptions } from "./layers/masking.js";
export { Embedding, type EmbeddingOptions, type EmbeddingInitializer } from "./layers/embedding.js";
export {
  Sequential, type SequentialOptions, type RunOptions, type CompileOptions, type Gradients, type GradientRequest, type StepResult, type FitOptions,
  type LSTMState, type RecurrentState, type InitialStatesOption, type Callback, type Layer,
} from "./model.js";
export { Adam, SGD, type AdamOptions, type SGDOptions, type Optimizer, type OptimizerConfig, type OptimizerName } from "./optimizers.js";
export { RMSprop, AdamW, type RMSpropOptions, type AdamWOptions } from "./optimizers-extra.js";
export {
  ExponentialDecay, CosineDecay, type Schedule, type ScheduleName, type ScheduleConfig, type ScheduleJSON,
  type ExponentialDecayOptions, type CosineDecayOptions,
} from "./schedules.js";
export { type LossName, type LossAlias } from "./losses.js";
export {
  History, resetStatesEvery, earlyStopping, type CallbackHooks, type Logs, type EarlyStoppingOptions, type StoppableModel,
} from "./callbacks.js";
export {
  TruncatedBPTT, type TruncatedBPTTOptions, type TrainSequenceOptions, type SequenceResult, type WindowInfo,
} from "./tbptt.js";
export { prepareSequences } from "./data.js";
export { randomNormal, randomUniform, type RandomNormalOptions, type RandomUniformOptions } from "./random.js";
export { gradCheck, type GradCheckOptions, type GradCheckResult } from "./gradcheck.js";
export {
  encodeCheckpoint, decodeCheckpoint, checkpointToJSON, checkpointFromJSON, CHECKPOINT_VERSION, type CheckpointJSON, type LoadOptions,
} from "./checkpoint.js";
export { toSafetensors, fromSafetensors } from "./interop/safetensors.js";
export {
  toTfjs, fromTfjs, tfjsModelJSON, tfjsArtifactsFromModelJSON, TFJS_LAYERS_VERSION,
  type TfjsArtifacts, type TfjsArtifactsInput, type TfjsModelJSON, type TfjsWeightSpec, type FromTfjsOptions,
} from "./interop/tfjs.js";
export { toOnnx, ONNX_OPSET, ONNX_IR_VERSION, type OnnxOptions } from "./interop/onnx.js";
export {
  LongshortError, ShapeError, ValueError, StateError, NonFiniteError, CheckpointError, FormatError,
} from "./errors.js";
