/**
 * Validation at every public entry: each bad input below must raise the library's error class (never a
 * bare TypeError or RangeError), with a message that names the argument and says what was expected and
 * what was given, and must leave every model exactly as it was (weights, optimizer state and step count,
 * LSTM states, fixed batch size, shuffling RNG, compile settings).
 *
 * The last test counts the distinct bad inputs tried and checks that the models still train exactly
 * like twins that never saw them.
 */
import { describe, expect, it } from "vitest";
import ndarray from "ndarray";
import {
  Sequential, LSTM, Dense, Masking, Adam, SGD, TruncatedBPTT, prepareSequences, gradCheck, tensor, zeros, toArray, earlyStopping,
  LongshortError, ShapeError, ValueError, StateError, type Tensor,
} from "../src/index.js";
import { Rng } from "../src/init.js";
import { snapshot, expectSame, randomSeq, randomLabels, type Snapshot } from "./helpers/rel-snapshot.js";

// Fixture models, each put into a non-trivial state by a few good steps.
//   A: stateless, LSTM(4) over 2 features, sigmoid head with 1 unit, binary cross-entropy + accuracy.
//   B: stateful (batch 2), per-step head with 2 units, MSE, SGD with momentum.
//   C: built but never compiled.   D: neither built nor compiled.   E (below): stateful, batch size not yet fixed.
function makeA(): Sequential {
  const m = new Sequential([new LSTM({ units: 4, inputDim: 2 }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 11 });
  m.compile({ optimizer: new Adam({ learningRate: 0.01 }), loss: "binaryCrossentropy", metrics: ["accuracy"] });
  return m;
}
function makeB(): Sequential {
  const m = new Sequential([new LSTM({ units: 4, inputDim: 2, returnSequences: true, stateful: true, batchSize: 2 }), new Dense({ units: 2 })], { seed: 12 });
  m.compile({ optimizer: new SGD({ learningRate: 0.05, momentum: 0.9 }), loss: "meanSquaredError" });
  return m;
}
const rng = new Rng("validation");
const X = randomSeq(rng, 2, 3, 2);                            // [2, 3, 2]
const YA = randomLabels(rng, 2, 1, true) as number[][];       // [2, 1] in {0, 1}
const YB = randomLabels(rng, 2, 2, false, 3) as number[][][]; // [2, 3, 2]
const warm = (a: Sequential, b: Sequential): void => {
  for (let s = 0; s < 2; s++) { a.trainOnBatch(X, YA); b.trainOnBatch(X, YB); }
};
const A = makeA(), B = makeB();
warm(A, B);
const C = new Sequential([new LSTM({ units: 3, inputDim: 2 }), new Dense({ units: 1 })], { seed: 13 });
const D = new Sequential([new LSTM({ units: 3 }), new Dense({ units: 1 })], { seed: 14 });
// E: stateful with no batch size yet (the first good call fixes it; a failed call must not).
const E = new Sequential([new LSTM({ units: 2, inputDim: 2, stateful: true }), new Dense({ units: 1, activation: "sigmoid" })], { seed: 15 });
E.compile({ optimizer: "adam", loss: "binaryCrossentropy" });
const MODELS = { A, B, C, D, E };
const TB = new TruncatedBPTT(A, { windowLength: 2 });

/** A copy of X with one entry replaced. */
function withX(b: number, t: number, f: number, v: unknown): any {
  const x: any = X.map((r) => r.map((s) => s.slice()));
  x[b][t][f] = v;
  return x;
}
const ragged = (): any => [X[0], X[1]!.slice(0, 2)];
const raggedFeatures = (): any => [X[0], [X[1]![0], [0.5], X[1]![2]]];
const circular = (): any => { const a: any[] = []; a.push(a); return a; };
const nanView = (): Tensor => {
  // A transposed (non-contiguous) view [2, 3, 2] over float64 data with a NaN: the strided path.
  const data = new Float64Array(12).fill(0.25);
  data[7] = NaN;
  return ndarray(data, [2, 3, 2], [1, 4, 2]) as Tensor;
};

type Case = [name: string, call: () => unknown, error: typeof LongshortError, message: RegExp];

const CASES: Case[] = [
  // Unknown option keys, everywhere: a typo or a Python habit must not be ignored (it would train on defaults).
  ["LSTM returnSequence (typo)", () => new LSTM({ units: 4, returnSequence: true } as any), ValueError, /LSTM options: unknown option "returnSequence" \(did you mean "returnSequences"\?\)/],
  ["Dense activaton (typo)", () => new Dense({ units: 1, activaton: "sigmoid" } as any), ValueError, /Dense options: unknown option "activaton" \(did you mean "activation"\?\)/],
  ["Adam learning_rate (snake_case)", () => new Adam({ learning_rate: 0.1 } as any), ValueError, /Adam options: unknown option "learning_rate" \(did you mean "learningRate"\?\); the options are "learningRate", "beta1"/],
  ["SGD lr (no near key)", () => new SGD({ lr: 0.1 } as any), ValueError, /SGD options: unknown option "lr"; the options are "learningRate", "momentum", "clipNorm", "clipValue"/],
  ["Sequential dtpye", () => new Sequential([new LSTM({ units: 2 }), new Dense({ units: 1 })], { dtpye: "float32" } as any), ValueError, /Sequential options: unknown option "dtpye" \(did you mean "dtype"\?\)/],
  ["compile metric (singular)", () => A.compile({ loss: "binaryCrossentropy", metric: ["accuracy"] } as any), ValueError, /compile options: unknown option "metric" \(did you mean "metrics"\?\)/],
  ["fit epoch (singular)", () => A.fit(X, YA, { epoch: 5, verbose: 0 } as any), ValueError, /fit options: unknown option "epoch" \(did you mean "epochs"\?\)/],
  ["fit batch_size", () => A.fit(X, YA, { batch_size: 2, verbose: 0 } as any), ValueError, /fit options: unknown option "batch_size" \(did you mean "batchSize"\?\)/],
  ["fit callback hook misspelt", () => A.fit(X, YA, { verbose: 0, callbacks: [{ onEpochEnds: () => undefined }] } as any), ValueError, /fit callbacks\[0\] options: unknown option "onEpochEnds" \(did you mean "onEpochEnd"\?\)/],
  ["predict batchsize", () => A.predict(X, { batchsize: 1 } as any), ValueError, /predict options: unknown option "batchsize" \(did you mean "batchSize"\?\)/],
  ["evaluate verbose (Keras has it, we do not)", () => A.evaluate(X, YA, { verbose: 0 } as any), ValueError, /evaluate options: unknown option "verbose"; the options are "batchSize"/],
  ["computeGradients hiddenGradNorm", () => A.computeGradients(X, YA, { hiddenGradNorm: true } as any), ValueError, /computeGradients options: unknown option "hiddenGradNorm" \(did you mean "hiddenGradNorms"\?\)/],
  ["TruncatedBPTT k1", () => new TruncatedBPTT(A, { windowLength: 2, k2: 4 } as any), ValueError, /TruncatedBPTT options: unknown option "k2"; the options are "windowLength", "backpropLength"/],
  ["trainSequence endOfSequences", () => TB.trainSequence(X, YA, { endOfSequences: false } as any), ValueError, /trainSequence options: unknown option "endOfSequences" \(did you mean "endOfSequence"\?\)/],
  ["gradCheck eps", () => gradCheck(A, X, YA, { eps: 1e-4 } as any), ValueError, /gradCheck options: unknown option "eps"/],
  ["earlyStopping min_delta", () => earlyStopping({ min_delta: 0.1 } as any), ValueError, /earlyStopping options: unknown option "min_delta" \(did you mean "minDelta"\?\)/],
  ["resetStates row", () => B.resetStates({ row: [0] } as any), ValueError, /resetStates options: unknown option "row" \(did you mean "rows"\?\)/],
  // Layer, model and optimizer constructors
  ["LSTM options missing", () => new LSTM(undefined as any), ValueError, /LSTM options: expected an object like \{ units: 10 \}, got undefined/],
  ["LSTM units 0", () => new LSTM({ units: 0 }), ValueError, /LSTM units: expected a positive integer, got 0/],
  ["LSTM units fractional", () => new LSTM({ units: 2.5 }), ValueError, /LSTM units: expected a positive integer, got 2\.5/],
  ["LSTM units a string", () => new LSTM({ units: "3" as any }), ValueError, /LSTM units: expected a positive integer, got "3"/],
  ["LSTM units NaN", () => new LSTM({ units: NaN }), ValueError, /LSTM units: expected a positive integer, got NaN/],
  ["LSTM inputDim negative", () => new LSTM({ units: 2, inputDim: -1 }), ValueError, /LSTM inputDim: expected a positive integer, got -1/],
  ["LSTM returnSequences not boolean", () => new LSTM({ units: 2, returnSequences: "yes" as any }), ValueError, /LSTM returnSequences: expected true or false, got "yes"/],
  ["LSTM stateful not boolean", () => new LSTM({ units: 2, stateful: 1 as any }), ValueError, /LSTM stateful: expected true or false, got 1/],
  ["LSTM batchSize 0", () => new LSTM({ units: 2, stateful: true, batchSize: 0 }), ValueError, /LSTM batchSize: expected a positive integer, got 0/],
  ["LSTM unitForgetBias null", () => new LSTM({ units: 2, unitForgetBias: null as any }), ValueError, /LSTM unitForgetBias: expected true or false, got null/],
  ["unknown kernel initializer", () => new LSTM({ units: 2, kernelInitializer: "he" as any }), ValueError, /LSTM kernelInitializer: expected one of "glorotUniform", "orthogonal", "zeros", got "he"/],
  ["unknown recurrent initializer", () => new LSTM({ units: 2, recurrentInitializer: "random" as any }), ValueError, /LSTM recurrentInitializer: expected one of .*got "random"/],
  ["Dense options null", () => new Dense(null as any), ValueError, /Dense options: expected an object/],
  ["Dense units 0", () => new Dense({ units: 0 }), ValueError, /Dense units: expected a positive integer, got 0/],
  ["unknown activation", () => new Dense({ units: 1, activation: "softplus" as any }), ValueError, /Dense activation: expected one of "linear", "sigmoid", "tanh", "relu", "softmax", got "softplus"/],
  ["Sequential with no layers", () => new Sequential([]), ValueError, /Sequential layers: expected a non-empty array/],
  ["Sequential layers not an array", () => new Sequential("lstm" as any), ValueError, /Sequential layers: expected a non-empty array.*got "lstm"/],
  ["Sequential layer not a layer", () => new Sequential([new LSTM({ units: 1 }), {} as any]), ValueError, /Sequential layers\[1\]: expected an LSTM, a GRU, a Bidirectional, a Dense or an Embedding, got an object/],
  ["Sequential of Dense layers only", () => new Sequential([new Dense({ units: 2 }), new Dense({ units: 1 })]), ValueError, /Sequential layers: a model needs at least one recurrent layer \(an LSTM\); got \[dense, dense\]/],
  ["stacked LSTM without returnSequences", () => new Sequential([new LSTM({ units: 2 }), new LSTM({ units: 2 }), new Dense({ units: 1 })]), ValueError, /Sequential layers\[1\]: an LSTM reads a sequence \[batch, timesteps, features\], and the layer below gives one vector per row \(an LSTM below it needs returnSequences: true\); got \[lstm, lstm, dense\]/],
  ["LSTM on a Dense on vectors", () => new Sequential([new Masking(), new LSTM({ units: 2 }), new Dense({ units: 2 }), new LSTM({ units: 1 })]), ValueError, /Sequential layers\[3\]: an LSTM reads a sequence .*got \[masking, lstm, dense, lstm\]/],
  ["unknown dtype", () => new Sequential([new LSTM({ units: 1 }), new Dense({ units: 1 })], { dtype: "float16" as any }), ValueError, /Sequential dtype: expected "float32" or "float64", got "float16"/],
  ["seed NaN", () => new Sequential([new LSTM({ units: 1 }), new Dense({ units: 1 })], { seed: NaN }), ValueError, /Sequential seed: expected a finite number or a string, got NaN/],
  ["seed an object", () => new Sequential([new LSTM({ units: 1 }), new Dense({ units: 1 })], { seed: {} as any }), ValueError, /Sequential seed: expected a finite number or a string/],
  ["Sequential options null", () => new Sequential([new LSTM({ units: 1 }), new Dense({ units: 1 })], null as any), ValueError, /Sequential options: expected an object, got null/],
  ["stateful layers disagree on batch size", () => new Sequential([new LSTM({ units: 1, stateful: true, batchSize: 2, returnSequences: true }), new LSTM({ units: 1, stateful: true, batchSize: 3 }), new Dense({ units: 1 })]), ValueError, /stateful recurrent layers disagree on batchSize: 2 vs 3/],
  ["layers inconsistent inputDim", () => new Sequential([new LSTM({ units: 2, inputDim: 3, returnSequences: true }), new LSTM({ units: 2, inputDim: 5 }), new Dense({ units: 1 })]), ShapeError, /lstm inputDim: expected 2 \(the output of the layer below\), got 5/],
  ["a model too large to allocate", () => new Sequential([new LSTM({ units: 1_000_000, inputDim: 1_000_000 }), new Dense({ units: 1 })]), ValueError, /buffer size: cannot allocate \d+ float64 values/],
  ["Adam learningRate 0", () => new Adam({ learningRate: 0 }), ValueError, /Adam learningRate: expected a positive finite number, got 0/],
  ["Adam learningRate NaN", () => new Adam({ learningRate: NaN }), ValueError, /Adam learningRate: expected a positive finite number, got NaN/],
  ["Adam beta1 1", () => new Adam({ beta1: 1 }), ValueError, /Adam beta1: expected a number in \[0, 1\), got 1/],
  ["Adam epsilon negative", () => new Adam({ epsilon: -1e-7 }), ValueError, /Adam epsilon: expected a positive finite number, got -1e-7/],
  ["Adam clipNorm 0", () => new Adam({ clipNorm: 0 }), ValueError, /Adam clipNorm: expected a positive finite number, got 0/],
  ["SGD momentum 1.5", () => new SGD({ momentum: 1.5 }), ValueError, /SGD momentum: expected a number in \[0, 1\), got 1\.5/],
  ["SGD learningRate Infinity", () => new SGD({ learningRate: Infinity }), ValueError, /SGD learningRate: expected a positive finite number, got Infinity/],
  ["SGD options a string", () => new SGD("fast" as any), ValueError, /SGD options: expected an object, got "fast"/],

  // compile: an unknown name leaves the previous settings
  ["compile options null", () => A.compile(null as any), ValueError, /compile options: expected \{ optimizer, loss, metrics\? \}, got null/],
  ["unknown loss", () => A.compile({ loss: "hinge" as any }), ValueError, /compile loss: expected one of "binaryCrossentropy", "meanSquaredError", "meanAbsoluteError", "huber", "categoricalCrossentropy", "sparseCategoricalCrossentropy" \(or a Keras alias: "binary_crossentropy", "bce", .*\), got "hinge"/],
  ["categorical loss on a sigmoid head", () => A.compile({ loss: "sparseCategoricalCrossentropy" }), ValueError, /compile loss: sparseCategoricalCrossentropy compares class probabilities; the top layer must be new Dense\(\{ units, activation: "softmax" \}\), got activation "sigmoid"/],
  ["loss missing", () => A.compile({} as any), ValueError, /compile loss: expected one of .*got undefined/],
  ["unknown optimizer name", () => A.compile({ optimizer: "adagrad" as any, loss: "binaryCrossentropy" }), ValueError, /optimizer: expected "adam", "sgd", "rmsprop", "adamw", an Adam, an SGD, an RMSprop or an AdamW, got "adagrad"/],
  ["optimizer a plain object", () => A.compile({ optimizer: {} as any, loss: "binaryCrossentropy" }), ValueError, /optimizer: expected "adam", "sgd", "rmsprop", "adamw", an Adam, an SGD, an RMSprop or an AdamW, got an object/],
  ["unknown metric", () => A.compile({ loss: "binaryCrossentropy", metrics: ["auc" as any] }), ValueError, /compile metrics\[0\]: expected one of "accuracy", "mae", "mse" .*got "auc"/],
  ["metrics not an array", () => A.compile({ loss: "binaryCrossentropy", metrics: "accuracy" as any }), ValueError, /compile metrics: expected an array of "accuracy", "mae", "mse", got "accuracy"/],
  ["unknown onNonFinite", () => A.compile({ loss: "binaryCrossentropy", onNonFinite: "ignore" as any }), ValueError, /compile onNonFinite: expected "throw" or "skip", got "ignore"/],

  // training before compile, weights of an unbuilt model
  ["trainOnBatch before compile", () => C.trainOnBatch(X, YA), StateError, /trainOnBatch: the model is not compiled; call model\.compile/],
  ["testOnBatch before compile", () => C.testOnBatch(X, YA), StateError, /testOnBatch: the model is not compiled/],
  ["fit before compile", () => C.fit(X, YA, { verbose: 0 }), StateError, /fit: the model is not compiled/],
  ["evaluate before compile", () => C.evaluate(X, YA), StateError, /evaluate: the model is not compiled/],
  ["computeGradients before compile", () => C.computeGradients(X, YA), StateError, /computeGradients: the model is not compiled/],
  ["TruncatedBPTT before compile", () => new TruncatedBPTT(C, { windowLength: 2 }).trainSequence(X, YA), StateError, /trainSequence: the model is not compiled/],
  ["getWeights before build", () => D.getWeights(), StateError, /getWeights: the model is not built yet/],
  ["setWeights before build", () => D.setWeights([]), StateError, /setWeights: the model is not built yet/],
  ["resetStates before build", () => D.resetStates(), StateError, /resetStates: the model is not built yet/],
  ["getStates before build", () => D.getStates(), StateError, /getStates: the model is not built yet/],
  ["countParams before build", () => D.countParams(), StateError, /countParams: the model is not built yet/],
  ["build with 0 features", () => D.build(0), ValueError, /build inputDim: expected a positive integer, got 0/],

  // x: rank, each dimension, values, raggedness
  ["x missing", () => A.trainOnBatch(undefined as any, YA), ShapeError, /trainOnBatch x: expected a tensor or nested number arrays, got undefined/],
  ["x a bare number", () => A.trainOnBatch(5 as any, YA), ShapeError, /trainOnBatch x: expected an array or tensor, got a bare number/],
  ["x a string", () => A.trainOnBatch("abc" as any, YA), ShapeError, /trainOnBatch x: expected a tensor or nested number arrays, got "abc"/],
  ["x an object", () => A.trainOnBatch({ a: 1 } as any, YA), ShapeError, /trainOnBatch x: expected a tensor or nested number arrays, got an object/],
  ["x a flat Float64Array", () => A.trainOnBatch(new Float64Array(12) as any, YA), ShapeError, /trainOnBatch x: expected rank 3 \[batch, timesteps, features\] = \[B, T, 2\], got rank 1 with shape \[12\]/],
  ["x rank 2", () => A.trainOnBatch([[1, 2]] as any, YA), ShapeError, /trainOnBatch x: expected rank 3 .* got rank 2 with shape \[1, 2\]/],
  ["x rank 4", () => A.trainOnBatch([X] as any, YA), ShapeError, /trainOnBatch x: expected rank 3 .* got rank 4 with shape \[1, 2, 3, 2\]/],
  ["x wrong feature count", () => A.trainOnBatch(zeros([2, 3, 3]), YA), ShapeError, /trainOnBatch x: expected shape \[B, T, F\] = \[2, 3, 2\], got \[2, 3, 3\]: features \(dimension 2\) is 3, expected 2/],
  ["x empty batch", () => A.trainOnBatch(zeros([0, 3, 2]), []), ShapeError, /trainOnBatch x: empty batch: shape \[0, 3, 2\]/],
  ["x no timesteps", () => A.trainOnBatch(zeros([2, 0, 2]), YA), ShapeError, /trainOnBatch x: no timesteps: shape \[2, 0, 2\]/],
  ["x ragged in time", () => A.trainOnBatch(ragged(), YA), ShapeError, /trainOnBatch x\[1\]: ragged nested array: expected length 3 at depth 1, got 2/],
  ["x ragged in features", () => A.trainOnBatch(raggedFeatures(), YA), ShapeError, /trainOnBatch x\[1\]\[1\]: ragged nested array: expected length 2 at depth 2, got 1/],
  ["x NaN", () => A.trainOnBatch(withX(1, 2, 0, NaN), YA), ValueError, /trainOnBatch x: expected finite values, got NaN at index \[1, 2, 0\]/],
  ["x Infinity", () => A.trainOnBatch(withX(0, 1, 1, Infinity), YA), ValueError, /trainOnBatch x: expected finite values, got Infinity at index \[0, 1, 1\]/],
  ["x -Infinity", () => A.trainOnBatch(withX(0, 0, 0, -Infinity), YA), ValueError, /trainOnBatch x: expected finite values, got -Infinity at index \[0, 0, 0\]/],
  ["x a string entry", () => A.trainOnBatch(withX(1, 0, 1, "1"), YA), ShapeError, /trainOnBatch x\[1\]\[0\]\[1\]: expected a number at depth 3 \(shape \[2, 3, 2\]\), got "1"/],
  ["x a null entry", () => A.trainOnBatch(withX(0, 2, 1, null), YA), ShapeError, /trainOnBatch x\[0\]\[2\]\[1\]: expected a number at depth 3 .* got null/],
  ["x a tensor with NaN", () => A.trainOnBatch(tensor(withX(1, 1, 1, NaN)), YA), ValueError, /trainOnBatch x: expected finite values, got NaN at index \[1, 1, 1\]/],
  ["x a strided view with NaN", () => A.trainOnBatch(nanView(), YA), ValueError, /trainOnBatch x: expected finite values, got NaN at index \[1, 1, 1\]/],
  ["x a malformed ndarray (reaches outside its data)", () => A.trainOnBatch({ data: new Float64Array(4), shape: [2, 3, 2], stride: [6, 2, 1], offset: 0 } as any, YA), ShapeError, /trainOnBatch x: a malformed ndarray: its shape, stride and offset reach outside its data/],
  ["x a malformed ndarray (shape not a list)", () => A.trainOnBatch({ data: new Float64Array(12), shape: 12, stride: [1], offset: 0 } as any, YA), ShapeError, /trainOnBatch x: a malformed ndarray: its shape is not a list of non-negative integers/],
  ["x a malformed ndarray (stride too short)", () => A.trainOnBatch({ data: new Float64Array(12), shape: [2, 3, 2], stride: [6, 2], offset: 0 } as any, YA), ShapeError, /trainOnBatch x: a malformed ndarray: its stride is not a list of 3 integers/],
  ["x an ndarray over BigInt64Array", () => A.trainOnBatch({ data: new BigInt64Array(12), shape: [2, 3, 2], stride: [6, 2, 1], offset: 0 } as any, YA), ShapeError, /trainOnBatch x: a malformed ndarray: its data is not an array or a numeric typed array/],
  ["x an ndarray of symbols", () => A.trainOnBatch(ndarray(new Array(12).fill(Symbol("s")), [2, 3, 2]) as any, YA), ShapeError, /trainOnBatch x: expected an ndarray of numbers, got symbol at data index 0/],
  ["zeros with an object that cannot become a string", () => zeros([Object.create(null)]), ShapeError, /shape: expected an array of non-negative integers, got \[an object \(Object\)\]/],
  ["x nested in itself", () => A.trainOnBatch(circular(), YA), ShapeError, /trainOnBatch x: nested more than 32 levels deep/],
  ["predict x NaN", () => A.predict(withX(0, 0, 1, NaN)), ValueError, /predict x: expected finite values, got NaN at index \[0, 0, 1\]/],
  ["evaluate x wrong features", () => A.evaluate(zeros([2, 3, 1]), YA), ShapeError, /evaluate x: expected shape \[B, T, F\] = \[2, 3, 2\], got \[2, 3, 1\]/],
  ["computeGradients x rank 2", () => A.computeGradients([[0.1, 0.2]] as any, YA), ShapeError, /computeGradients x: expected rank 3/],
  ["testOnBatch x Infinity", () => A.testOnBatch(withX(1, 1, 0, Infinity), YA), ValueError, /testOnBatch x: expected finite values, got Infinity/],

  // y: shape, values, BCE range
  ["y missing", () => A.trainOnBatch(X, undefined as any), ShapeError, /trainOnBatch y: expected a tensor or nested number arrays, got undefined/],
  ["y wrong batch", () => A.trainOnBatch(X, [[1]]), ShapeError, /trainOnBatch y: expected shape \[batch, units\] = \[2, 1\], got \[1, 1\]/],
  ["y wrong units", () => A.trainOnBatch(X, [[1, 0], [0, 1]]), ShapeError, /trainOnBatch y: expected shape \[batch, units\] = \[2, 1\], got \[2, 2\]/],
  ["y per step on a last-step head", () => A.trainOnBatch(X, [[[1], [0], [1]], [[0], [0], [1]]]), ShapeError, /trainOnBatch y: expected shape \[batch, units\] = \[2, 1\], got \[2, 3, 1\]/],
  ["y NaN", () => A.trainOnBatch(X, [[NaN], [1]]), ValueError, /trainOnBatch y: expected finite values, got NaN at index \[0, 0\]/],
  ["BCE label 1.5", () => A.trainOnBatch(X, [[0], [1.5]]), ValueError, /trainOnBatch y: binaryCrossentropy expects labels in \[0, 1\], got 1\.5 at index \[1, 0\]/],
  ["BCE label -0.1", () => A.trainOnBatch(X, [[-0.1], [1]]), ValueError, /trainOnBatch y: binaryCrossentropy expects labels in \[0, 1\], got -0\.1 at index \[0, 0\]/],
  ["BCE label 2 in evaluate", () => A.evaluate(X, [[2], [1]]), ValueError, /evaluate y: binaryCrossentropy expects labels in \[0, 1\], got 2/],
  ["BCE label out of range in computeGradients", () => A.computeGradients(X, [[1], [-3]]), ValueError, /computeGradients y: binaryCrossentropy expects labels in \[0, 1\], got -3/],
  ["y ragged", () => A.trainOnBatch(X, [[1], []] as any), ShapeError, /trainOnBatch y\[1\]: ragged nested array: expected length 1 at depth 1, got 0/],

  // stateful: the fixed batch size, per-step labels, states
  ["bad labels do not fix a stateful batch size (trainOnBatch)", () => E.trainOnBatch(X, [[0], [3]]), ValueError, /trainOnBatch y: binaryCrossentropy expects labels in \[0, 1\], got 3/],
  ["bad labels do not fix a stateful batch size (testOnBatch)", () => E.testOnBatch(X, [[1]]), ShapeError, /testOnBatch y: expected shape \[batch, units\] = \[2, 1\], got \[1, 1\]/],
  ["bad labels do not fix a stateful batch size (computeGradients)", () => E.computeGradients(X, [[NaN], [1]]), ValueError, /computeGradients y: expected finite values, got NaN/],
  ["stateful batch of 3", () => B.trainOnBatch(randomSeq(new Rng(1), 3, 3, 2), randomLabels(new Rng(2), 3, 2, false, 3)), ShapeError, /trainOnBatch x: this stateful model has a fixed batch size of 2 .* got a batch of 3/],
  ["stateful batch of 1 in testOnBatch", () => B.testOnBatch([X[0]!], [YB[0]!]), ShapeError, /testOnBatch x: this stateful model has a fixed batch size of 2/],
  ["stateful batch of 1 in computeGradients", () => B.computeGradients([X[0]!], [YB[0]!]), ShapeError, /computeGradients x: this stateful model has a fixed batch size of 2/],
  ["stateful predict batchSize 3", () => B.predict(zeros([6, 3, 2]), { batchSize: 3 }), ValueError, /predict batchSize: this stateful model has a fixed batch size of 2, got 3/],
  ["stateful predict 3 samples", () => B.predict(zeros([3, 3, 2])), ShapeError, /predict x: a stateful model needs a sample count divisible by the batch size 2, got 3 samples/],
  ["stateful fit 3 samples", () => B.fit(zeros([3, 3, 2]), zeros([3, 3, 2]), { verbose: 0 }), ShapeError, /fit x: a stateful model needs a sample count divisible by the batch size 2, got 3 samples/],
  ["stateful evaluate batchSize 4", () => B.evaluate(zeros([4, 3, 2]), zeros([4, 3, 2]), { batchSize: 4 }), ValueError, /evaluate batchSize: this stateful model has a fixed batch size of 2, got 4/],
  ["per-step labels given per sequence", () => B.trainOnBatch(X, [[1, 0], [0, 1]]), ShapeError, /trainOnBatch y: expected shape \[batch, timesteps, units\] = \[2, 3, 2\] \(the top LSTM returns sequences, so labels are per step\), got \[2, 2\]/],
  ["per-step labels with the wrong steps", () => B.trainOnBatch(X, zeros([2, 4, 2])), ShapeError, /trainOnBatch y: expected shape \[batch, timesteps, units\] = \[2, 3, 2\].* got \[2, 4, 2\]/],
  ["resetStates(states) on a stateless model (ignored by every call)", () => A.resetStates([{ h: zeros([2, 4]), c: zeros([2, 4]) }]), StateError, /resetStates states: the model is stateless, so every call starts from zeros and set states would be ignored; give them to the call instead: model\.predict\(x, \{ initialStates: \[\{ h, c \}\] \}\)/],
  ["resetStates row out of range", () => B.resetStates({ rows: [5] }), ValueError, /resetStates rows: expected batch row indices in \[0, 2\), got \[5\]/],
  ["resetStates fractional row", () => B.resetStates({ rows: [0.5] }), ValueError, /resetStates rows: expected batch row indices in \[0, 2\), got \[0\.5\]/],
  ["resetStates wrong count", () => B.resetStates([]), ValueError, /resetStates states: expected 1 state objects \(one per recurrent layer: \{ h, c \}\), got 0/],
  ["resetStates not a list", () => B.resetStates(null as any), ValueError, /resetStates states: expected 1 state objects .* got null/],
  ["resetStates entry not {h, c}", () => B.resetStates([5 as any]), ValueError, /resetStates states\[0\]: expected \{ h, c \} \(an LSTM layer's states\), got 5/],
  ["resetStates entry with an unknown state", () => B.resetStates([{ h: zeros([2, 4]), c: zeros([2, 4]), n: zeros([2, 4]) } as any]), ValueError, /resetStates states\[0\]: unknown state "n" \(an LSTM layer has \{ h, c \}\)/],
  ["resetStates h wrong shape", () => B.resetStates([{ h: zeros([3, 4]), c: zeros([3, 4]) }]), ShapeError, /resetStates states\[0\]\.h: expected shape \[B, H\] = \[2, 4\], got \[3, 4\]/],
  ["resetStates c wrong units", () => B.resetStates([{ h: zeros([2, 4]), c: zeros([2, 5]) }]), ShapeError, /resetStates states\[0\]\.c: expected shape \[B, H\] = \[2, 4\], got \[2, 5\]/],
  ["resetStates h NaN", () => B.resetStates([{ h: [[0, 0, NaN, 0], [0, 0, 0, 0]], c: zeros([2, 4]) }]), ValueError, /resetStates states\[0\]\.h: expected finite values, got NaN at index \[0, 2\]/],
  ["resetStates c Infinity", () => B.resetStates([{ h: zeros([2, 4]), c: [[0, 0, 0, 0], [0, Infinity, 0, 0]] }]), ValueError, /resetStates states\[0\]\.c: expected finite values, got Infinity at index \[1, 1\]/],
  ["setBatchSize 0", () => B.setBatchSize(0), ValueError, /setBatchSize batchSize: expected a positive integer, got 0/],
  ["setBatchSize fractional", () => B.setBatchSize(2.5), ValueError, /setBatchSize batchSize: expected a positive integer, got 2\.5/],
  ["setBatchSize on a stateless model", () => A.setBatchSize(4), StateError, /setBatchSize: the model is stateless/],

  // setWeights: count, shapes, values
  ["setWeights wrong count", () => A.setWeights(A.getWeights().slice(0, 4)), ValueError, /setWeights weights: expected 5 arrays \(lstm_0\/kernel, lstm_0\/recurrentKernel, lstm_0\/bias, dense_0\/kernel, dense_0\/bias\), got 4/],
  ["setWeights not a list", () => A.setWeights(null as any), ValueError, /setWeights weights: expected 5 arrays .* got null/],
  ["setWeights kernel shape", () => { const w = A.getWeights(); w[0] = zeros([3, 16]); A.setWeights(w); }, ShapeError, /setWeights weights\[0\] \(lstm_0\/kernel\): expected shape \[2, 16\], got \[3, 16\]/],
  ["setWeights bias rank", () => { const w = A.getWeights(); w[2] = zeros([1, 16]); A.setWeights(w); }, ShapeError, /setWeights weights\[2\] \(lstm_0\/bias\): expected shape \[16\], got \[1, 16\]/],
  ["setWeights NaN in the last array", () => { const w = A.getWeights(); w[4] = [NaN] as any; A.setWeights(w); }, ValueError, /setWeights weights\[4\] \(dense_0\/bias\): expected finite values, got NaN at index \[0\]/],
  ["setWeights ragged", () => { const w: any[] = A.getWeights(); w[3] = [[1], [2], [3, 4], [5]]; A.setWeights(w); }, ShapeError, /setWeights weights\[3\] \(dense_0\/kernel\)\[2\]: ragged nested array/],
  ["setWeights a string", () => { const w: any[] = A.getWeights(); w[1] = "weights"; A.setWeights(w); }, ShapeError, /setWeights weights\[1\] \(lstm_0\/recurrentKernel\): expected a tensor or nested number arrays, got "weights"/],

  // options of predict, evaluate, fit, computeGradients
  ["predict options null", () => A.predict(X, null as any), ValueError, /predict options: expected an object, got null/],
  ["predict batchSize 0", () => A.predict(X, { batchSize: 0 }), ValueError, /predict batchSize: expected a positive integer, got 0/],
  ["predict batchSize fractional", () => A.predict(X, { batchSize: 1.5 }), ValueError, /predict batchSize: expected a positive integer, got 1\.5/],
  ["evaluate batchSize negative", () => A.evaluate(X, YA, { batchSize: -1 }), ValueError, /evaluate batchSize: expected a positive integer, got -1/],
  ["fit options null", () => A.fit(X, YA, null as any), ValueError, /fit options: expected an object, got null/],
  ["fit batchSize 0", () => A.fit(X, YA, { batchSize: 0, verbose: 0 }), ValueError, /fit batchSize: expected a positive integer, got 0/],
  ["fit epochs negative", () => A.fit(X, YA, { epochs: -1, verbose: 0 }), ValueError, /fit epochs: expected a non-negative integer, got -1/],
  ["fit epochs fractional", () => A.fit(X, YA, { epochs: 1.5, verbose: 0 }), ValueError, /fit epochs: expected a non-negative integer, got 1\.5/],
  ["fit shuffle not boolean", () => A.fit(X, YA, { shuffle: "yes" as any, verbose: 0 }), ValueError, /fit shuffle: expected true or false, got "yes"/],
  ["fit verbose 2", () => A.fit(X, YA, { verbose: 2 as any }), ValueError, /fit verbose: expected 0 or 1, got 2/],
  ["fit callbacks not a list", () => A.fit(X, YA, { callbacks: "cb" as any, verbose: 0 }), ValueError, /fit callbacks: expected an array, got "cb"/],
  ["fit callback null", () => A.fit(X, YA, { callbacks: [null as any], verbose: 0 }), ValueError, /fit callbacks\[0\]: expected an object with hooks .* got null/],
  ["fit callback hook not a function", () => A.fit(X, YA, { callbacks: [{ onEpochEnd: 5 as any }], verbose: 0 }), ValueError, /fit callbacks\[0\]\.onEpochEnd: expected a function, got 5/],
  ["fit validationData one element", () => A.fit(X, YA, { validationData: [X] as any, verbose: 0 }), ValueError, /fit validationData: expected \[x, y\], got an array of length 1/],
  ["fit validationData wrong features", () => A.fit(X, YA, { validationData: [zeros([2, 3, 5]), YA], verbose: 0 }), ShapeError, /fit validationData\[0\]: expected shape \[B, T, F\] = \[2, 3, 2\], got \[2, 3, 5\]/],
  ["fit validationData label out of range", () => A.fit(X, YA, { validationData: [X, [[0], [7]]], verbose: 0 }), ValueError, /fit validationData\[1\]: binaryCrossentropy expects labels in \[0, 1\], got 7/],
  ["fit y NaN", () => A.fit(X, [[1], [NaN]], { verbose: 0 }), ValueError, /fit y: expected finite values, got NaN at index \[1, 0\]/],
  ["computeGradients options null", () => A.computeGradients(X, YA, null as any), ValueError, /computeGradients options: expected an object, got null/],

  // truncated BPTT and data preparation: windows and increments ≤ 0 or fractional
  ["TBPTT options null", () => new TruncatedBPTT(A, null as any), ValueError, /TruncatedBPTT options: expected \{ windowLength, backpropLength\? \}, got null/],
  ["TBPTT windowLength 0", () => new TruncatedBPTT(A, { windowLength: 0 }), ValueError, /TruncatedBPTT windowLength: expected a positive integer, got 0/],
  ["TBPTT windowLength negative", () => new TruncatedBPTT(A, { windowLength: -3 }), ValueError, /TruncatedBPTT windowLength: expected a positive integer, got -3/],
  ["TBPTT windowLength fractional", () => new TruncatedBPTT(A, { windowLength: 2.5 }), ValueError, /TruncatedBPTT windowLength: expected a positive integer, got 2\.5/],
  ["TBPTT backpropLength 0", () => new TruncatedBPTT(A, { windowLength: 2, backpropLength: 0 }), ValueError, /TruncatedBPTT backpropLength: expected a positive integer, got 0/],
  ["TBPTT backpropLength fractional", () => new TruncatedBPTT(A, { windowLength: 2, backpropLength: 1.5 }), ValueError, /TruncatedBPTT backpropLength: expected a positive integer, got 1\.5/],
  ["TBPTT x NaN", () => TB.trainSequence(withX(0, 1, 0, NaN), YA), ValueError, /trainSequence x: expected finite values, got NaN at index \[0, 1, 0\]/],
  ["TBPTT label out of range", () => TB.trainSequence(X, [[0], [4]]), ValueError, /trainSequence y: binaryCrossentropy expects labels in \[0, 1\], got 4/],
  ["trainSequence options null", () => TB.trainSequence(X, YA, null as any), ValueError, /trainSequence options: expected an object, got null/],
  ["prepareSequences windowLength 0", () => prepareSequences([[1, 2, 3, 4]], [1], 0, 1), ValueError, /prepareSequences windowLength: expected a positive integer, got 0/],
  ["prepareSequences windowLength negative", () => prepareSequences([[1, 2, 3, 4]], [1], -2, 1), ValueError, /prepareSequences windowLength: expected a positive integer, got -2/],
  ["prepareSequences windowLength fractional", () => prepareSequences([[1, 2, 3, 4]], [1], 1.5, 1), ValueError, /prepareSequences windowLength: expected a positive integer, got 1\.5/],
  ["prepareSequences increment 0", () => prepareSequences([[1, 2, 3, 4]], [1], 2, 0), ValueError, /prepareSequences increment: expected a positive integer, got 0/],
  ["prepareSequences increment negative", () => prepareSequences([[1, 2, 3, 4]], [1], 2, -1), ValueError, /prepareSequences increment: expected a positive integer, got -1/],
  ["prepareSequences increment fractional", () => prepareSequences([[1, 2, 3, 4]], [1], 2, 0.5), ValueError, /prepareSequences increment: expected a positive integer, got 0\.5/],
  ["prepareSequences window longer than the sequence", () => prepareSequences([[1, 2, 3, 4]], [1], 5, 1), ValueError, /prepareSequences windowLength: expected at most the sequence length 4, got 5/],
  ["prepareSequences x NaN", () => prepareSequences([[1, NaN, 3, 4]], [1], 2, 2), ValueError, /prepareSequences x: expected finite values, got NaN/],
  ["prepareSequences y for another N", () => prepareSequences([[1, 2, 3, 4]], [1, 0], 2, 2), ShapeError, /prepareSequences y: expected \[N\] or \[N, D\] or \[N, T, D\] with N = 1, T = 4, got \[2, 1\]/],

  // tensor core and gradCheck
  ["tensor unknown dtype", () => tensor([1, 2], "int32" as any), ValueError, /dtype: expected "float32" or "float64", got "int32"/],
  ["tensor ragged", () => tensor([[1, 2], [3]]), ShapeError, /values\[1\]: ragged nested array: expected length 2 at depth 1, got 1/],
  ["zeros negative dimension", () => zeros([2, -1]), ShapeError, /shape: expected an array of non-negative integers, got \[2, -1\]/],
  ["zeros fractional dimension", () => zeros([2.5]), ShapeError, /shape: expected an array of non-negative integers, got \[2\.5\]/],
  ["zeros too large to allocate", () => zeros([1e6, 1e6, 1e6]), ValueError, /buffer size: cannot allocate 1000000000000000000 float64 values/],
  ["toArray of a number", () => toArray(5 as any), ShapeError, /t: expected a tensor, got 5/],
  ["gradCheck of a float32 model", () => gradCheck(new Sequential([new LSTM({ units: 1, inputDim: 1 }), new Dense({ units: 1 })], { dtype: "float32" }), [[[1]]], [[1]]), ValueError, /gradCheck model: expected a float64 model/],
  ["gradCheck epsilon 0", () => gradCheck(A, X, YA, { epsilon: 0 }), ValueError, /gradCheck epsilon: expected a positive number, got 0/],
];

/** Runs a case: it must throw (or reject with) the expected library error. */
async function run([name, call, cls, pattern]: Case): Promise<void> {
  let err: unknown;
  try {
    await call();
  } catch (e) {
    err = e;
  }
  expect(err, `${name}: should have thrown`).toBeDefined();
  expect(err instanceof TypeError || err instanceof RangeError, `${name}: a bare ${(err as Error).name}: ${(err as Error).message}`).toBe(false);
  expect(err, `${name}: ${(err as Error).name}: ${(err as Error).message}`).toBeInstanceOf(LongshortError);
  expect(err, `${name}: ${(err as Error).message}`).toBeInstanceOf(cls);
  expect((err as Error).message, name).toMatch(pattern);
}

function snapshots(): Record<string, Snapshot> {
  return Object.fromEntries(Object.entries(MODELS).map(([k, m]) => [k, snapshot(m)]));
}

describe("validation at every public entry", () => {
  it("every distinct bad input raises the library's error naming the argument, and changes no model", async () => {
    const names = new Set(CASES.map((c) => c[0]));
    expect(names.size, "case names are distinct").toBe(CASES.length);
    const usesModel = CASES.filter(([, call]) => /\b[ABCDE]\.|TB\./.test(call.toString())).length;
    const failures: string[] = [];
    for (const c of CASES) {
      try {
        const before = snapshots();
        await run(c);
        const after = snapshots();
        for (const k of Object.keys(before)) expectSame(`${c[0]}: model ${k}`, before[k]!, after[k]!);
      } catch (e) {
        failures.push((e as Error).message.split("\n")[0]!);
      }
    }
    expect(failures, failures.join("\n")).toEqual([]);
    console.log(`validation: ${CASES.length} distinct bad inputs tried (${usesModel} of them against an existing model whose state is compared), all caught with the library's errors and every model unchanged`);
    expect(CASES.length).toBeGreaterThanOrEqual(150);
  });

  it("after every bad input, the models train exactly like twins that never saw one", () => {
    const a = makeA(), b = makeB();
    warm(a, b);
    for (let s = 0; s < 3; s++) {
      expect(A.trainOnBatch(X, YA)).toEqual(a.trainOnBatch(X, YA));
      expect(B.trainOnBatch(X, YB)).toEqual(b.trainOnBatch(X, YB));
    }
    expectSame("A", snapshot(a), snapshot(A));
    expectSame("B", snapshot(b), snapshot(B));
  });
});

describe("the input scan", () => {
  it("finds the first value that is not finite anywhere in float32 and float64 data: in an eight-value block, in the tail, the first of two", () => {
    // x [3, 5, 7]: 105 values, thirteen blocks of eight and a tail of one; the scan tests a block at a time.
    const m = new Sequential([new LSTM({ units: 2, inputDim: 7 }), new Dense({ units: 1 })], { seed: 3 });
    m.compile({ optimizer: "adam", loss: "mse" });
    const y = zeros([3, 1]);
    const idx = (k: number): string => `\\[${Math.floor(k / 35)}, ${Math.floor(k / 7) % 5}, ${k % 7}\\]`;
    let tried = 0;
    for (const dtype of ["float32", "float64"] as const) {
      for (const [k, v] of [[0, NaN], [5, Infinity], [8, -Infinity], [63, NaN], [100, NaN], [103, Infinity], [104, NaN]] as const) {
        const x = zeros([3, 5, 7], dtype);
        x.data[k] = v;
        if (k + 3 < 105) x.data[k + 3] = NaN; // a later one, in the same block or the next: the first is named
        expect(() => m.trainOnBatch(x, y)).toThrow(new RegExp(`trainOnBatch x: expected finite values, got ${v} at index ${idx(k)}`));
        tried++;
      }
      const ok = zeros([3, 5, 7], dtype);
      ok.data.fill(-3.4e38);
      expect(() => m.testOnBatch(ok, y)).not.toThrow(); // large but finite, negative: v·0 is -0, which passes
    }
    expect(tried).toBe(14);
  });
});
