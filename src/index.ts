// The public surface (see README.md). This file only re-exports.
export { tensor, zeros, toArray, type Tensor, type TensorLike, type DType } from "./tensor/tensor.js";
export { LSTM, type LSTMOptions } from "./layers/lstm.js";
export { Dense, type DenseOptions, type Activation } from "./layers/dense.js";
export {
  Sequential, type SequentialOptions, type CompileOptions, type Gradients, type StepResult, type FitOptions,
  type LSTMState,
} from "./model.js";
export { Adam, SGD, type AdamOptions, type SGDOptions, type Optimizer } from "./optimizers.js";
export { type LossName } from "./losses.js";
export { History, resetStatesEvery, earlyStopping, type Callback, type Logs, type EarlyStoppingOptions } from "./callbacks.js";
export {
  TruncatedBPTT, type TruncatedBPTTOptions, type TrainSequenceOptions, type SequenceResult, type WindowInfo,
} from "./tbptt.js";
export { prepareSequences } from "./data.js";
export { gradCheck, type GradCheckOptions, type GradCheckResult } from "./gradcheck.js";
export { saveCheckpoint, loadCheckpoint, saveCheckpointSync, loadCheckpointSync, encodeCheckpoint, decodeCheckpoint, checkpointToJSON, checkpointFromJSON, CHECKPOINT_VERSION, type CheckpointJSON } from "./io.js";
export {
  LongshortError, ShapeError, ValueError, StateError, NonFiniteError, CheckpointError,
} from "./errors.js";
