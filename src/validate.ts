/**
 * The argument checks every public call makes before the engine sees anything: inputs, labels, batch
 * sizes and the model's readiness, each failing with an error that names the argument, what was expected
 * and what was given. Shared by the Keras facade (model.ts) and the truncated-BPTT unroller.
 *
 * Legend: B batch, T timesteps, F input features, D head units.
 */
import { type StridedArray, assertFinite, fromData, isTensor, toTensor } from "./tensor/tensor.js";
import { assertFiniteIn } from "./tensor/layout.js";
import type { Engine, StateSet } from "./engine.js";
import { ShapeError, StateError, ValueError, checkKeys, fmtShape, fmtValue, toSize } from "./errors.js";

/** A checked input: an ndarray we can index with strides, plus its sizes. */
export interface Input {
  t: StridedArray;
  B: number;
  T: number;
  F: number;
}

/** Validates x [B, T, F] (F as the model was built for, when it is). Builds nothing. */
export function checkInput(e: Engine, name: string, x: unknown, features = e.inputDim): Input {
  let t: StridedArray;
  if (isTensor(x) && (x.data instanceof Float64Array || x.data instanceof Float32Array)) t = x as StridedArray;
  else t = toTensor(name, x, e.dtype);
  if (e.readsIds) return checkIds(e, name, t);
  const F = features;
  if (t.shape.length !== 3) {
    throw new ShapeError(`${name}: expected rank 3 [batch, timesteps, features]${F !== undefined ? ` = [B, T, ${F}]` : ""}, got rank ${t.shape.length} with shape ${fmtShape(t.shape)}`);
  }
  // Sizes as small integers, whatever the shape array held (see toSize): they index every hot loop.
  const [B, T, f] = (t.shape as number[]).map(toSize) as [number, number, number];
  if (B === 0) throw new ShapeError(`${name}: empty batch: shape ${fmtShape(t.shape)}`);
  if (T === 0) throw new ShapeError(`${name}: no timesteps: shape ${fmtShape(t.shape)}`);
  if (F !== undefined && f !== F) {
    throw new ShapeError(`${name}: expected shape [B, T, F] = [${B}, ${T}, ${F}], got ${fmtShape(t.shape)}: features (dimension 2) is ${f}, expected ${F}`);
  }
  assertFiniteIn(name, t);
  return { t, B, T, F: f };
}

/**
 * The ids of a model whose first layer is an Embedding: [B, T] integers in [0, V), refused with the position of the
 * first that is not ([B, T, 1] is taken too); returned as a [B, T, 1] view (one feature per step, the id), so the rest of the engine reads
 * them as it reads features.
 */
function checkIds(e: Engine, name: string, t: StridedArray): Input {
  const V = e.layers[0]!.inputDim!;
  if (t.shape.length !== 2 && !(t.shape.length === 3 && t.shape[2] === 1)) {
    throw new ShapeError(`${name}: the first layer is an Embedding, which reads integer ids: expected rank 2 [batch, timesteps] (or [batch, timesteps, 1]), got rank ${t.shape.length} with shape ${fmtShape(t.shape)}`);
  }
  const [B, T] = (t.shape as number[]).map(toSize) as [number, number];
  if (B === 0) throw new ShapeError(`${name}: empty batch: shape ${fmtShape(t.shape)}`);
  if (T === 0) throw new ShapeError(`${name}: no timesteps: shape ${fmtShape(t.shape)}`);
  const s0 = t.stride[0]!, s1 = t.stride[1]!;
  for (let b = 0; b < B; b++) {
    for (let s = 0; s < T; s++) {
      const v = t.data[t.offset + b * s0 + s * s1];
      if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= V) {
        throw new ValueError(`${name}[${b}][${s}]: expected an id, an integer in [0, ${V}) (the Embedding's inputDim), got ${fmtValue(v)}`);
      }
    }
  }
  return { t: { data: t.data, shape: [B, T, 1], stride: [s0, s1, 1], offset: t.offset }, B, T, F: 1 };
}

/**
 * Validates labels against the input and the head: [B, D], or [B, T, D] for a per-step head. For sparse
 * categorical cross-entropy, class indices: [B] or [B, 1], per step [B, T] or [B, T, 1], integers in [0, D),
 * returned as a [B, 1] or [B, T, 1] copy (one label value per head row).
 */
export function checkLabels(e: Engine, name: string, y: unknown, B: number, T: number): StridedArray {
  let t: StridedArray;
  if (isTensor(y) && (y.data instanceof Float64Array || y.data instanceof Float32Array)) t = y as StridedArray;
  else t = toTensor(name, y, e.dtype);
  const D = e.outputDim;
  if (e.loss === "sparseCategoricalCrossentropy") return sparseLabels(e, name, t, B, T, D);
  const expected = e.perStep ? [B, T, D] : [B, D];
  const dims = e.perStep ? "[batch, timesteps, units]" : "[batch, units]";
  if (t.shape.length !== expected.length || t.shape.some((d, i) => d !== expected[i])) {
    const hint = e.perStep ? " (the top LSTM returns sequences, so labels are per step)" : "";
    throw new ShapeError(`${name}: expected shape ${dims} = ${fmtShape(expected)}${hint}, got ${fmtShape(t.shape)}`);
  }
  if (e.loss === "binaryCrossentropy") assertFiniteIn(name, t, 0, 1, "binaryCrossentropy expects labels in [0, 1]");
  else assertFiniteIn(name, t);
  return t;
}

/** Class-index labels, checked and copied into the engine's one-value-per-row layout. */
function sparseLabels(e: Engine, name: string, t: StridedArray, B: number, T: number, D: number): StridedArray {
  const rows = e.perStep ? [B, T] : [B];
  const s = t.shape;
  const ok = (s.length === rows.length || (s.length === rows.length + 1 && s[rows.length] === 1)) && rows.every((d, i) => s[i] === d);
  if (!ok) {
    const want = e.perStep ? `[B, T] or [B, T, 1] = [${B}, ${T}]` : `[B] or [B, 1] = [${B}]`;
    throw new ShapeError(`${name}: sparseCategoricalCrossentropy takes one class index per ${e.perStep ? "step" : "sequence"}: expected shape ${want}, got ${fmtShape(s)}`);
  }
  const n = rows.reduce((a, b) => a * b, 1);
  const out = new Float64Array(n);
  const stride = t.stride, nd = rows.length;
  const steps = nd === 1 ? 1 : T;
  for (let k = 0; k < n; k++) {
    const b = Math.floor(k / steps), s = k % steps;
    const v = t.data[t.offset + b * stride[0]! + (nd === 1 ? 0 : s * stride[1]!)];
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= D) {
      throw new ValueError(`${name}[${nd === 1 ? b : `${b}][${s}`}]: expected a class index, an integer in [0, ${D}), got ${fmtValue(v)}`);
    }
    out[k] = v;
  }
  return fromData(out, e.perStep ? [B, T, 1] : [B, 1]);
}

/**
 * States per recurrent layer, { h, c } of shape [B, H] each (B as given, or taken from the first when undefined),
 * checked whole before anything uses them: `what` names the argument ("resetStates states", "predict
 * initialStates"). Returns their values in the model's dtype and the row count.
 */
/** "an LSTM", "a GRU": a recurrent layer's kind as prose. */
function an(kind: string): string {
  const name = kind.toUpperCase();
  return `${/^[AEFHILMNORSX]/.test(name) ? "an" : "a"} ${name}`;
}

export function checkStates(e: Engine, what: string, states: unknown, B: number | undefined): { states: StateSet[]; B: number } {
  const n = e.rnns.length;
  const form = (i: number): string => `{ ${e.rnns[i]!.stateNames.join(", ")} }`;
  if (!Array.isArray(states) || states.length !== n) {
    const forms = e.rnns.map((_, i) => form(i)).join(", ");
    throw new ValueError(`${what}: expected ${n} state objects (one per recurrent layer: ${forms}), got ${Array.isArray(states) ? states.length : fmtValue(states)}`);
  }
  let rows = B;
  const parsed = states.map((s: unknown, i) => {
    const names = e.rnns[i]!.stateNames;
    if (typeof s !== "object" || s === null || names.some((nm) => !(nm in s))) {
      throw new ValueError(`${what}[${i}]: expected ${form(i)} (${an(e.rnns[i]!.kind)} layer's states), got ${fmtValue(s)}`);
    }
    const extra = Object.keys(s).find((k) => !names.includes(k));
    if (extra !== undefined) throw new ValueError(`${what}[${i}]: unknown state "${extra}" (${an(e.rnns[i]!.kind)} layer has ${form(i)})`);
    const H = e.rnns[i]!.stateUnits;
    return names.map((nm) => {
      const t = toTensor(`${what}[${i}].${nm}`, (s as Record<string, unknown>)[nm], e.dtype);
      if (t.shape.length !== 2 || t.shape[1] !== H || (rows !== undefined && t.shape[0] !== rows)) {
        throw new ShapeError(`${what}[${i}].${nm}: expected shape [B, H] = [${rows ?? "B"}, ${H}], got ${fmtShape(t.shape)}`);
      }
      assertFinite(`${what}[${i}].${nm}`, t.data, t.shape);
      rows = t.shape[0]!;
      return t.data;
    });
  });
  return { states: parsed, B: rows ?? 0 };
}

/** Builds the model for F input features, once a call's every check has passed. */
export function buildFor(e: Engine, F: number): void {
  if (!e.built) e.build(F);
}

/** The batch size a call must use: the fixed one of a stateful model, fixing it at the first call. */
export function checkStatefulBatch(e: Engine, name: string, B: number, start = -1): void {
  if (!e.stateful) return;
  if (e.batchSize === undefined) e.fixBatch(B);
  else if (B !== e.batchSize) {
    // `start`: the batch's first row of x, named only when the call fails (a stream's step is a few µs).
    if (start >= 0) name = `${name} (rows ${start}…${start + B - 1})`;
    throw new ShapeError(
      `${name}: this stateful model has a fixed batch size of ${e.batchSize} (row r continues row r of the last call), got a batch of ${B}; ` +
      `use batches of ${e.batchSize}, or call model.setBatchSize(${B}) to change it (states are reset)`,
    );
  }
}

/** The batch size of predict, evaluate or fit: the option, else the stateful one, else a default. */
export function batchOption(e: Engine, what: string, options: unknown, N: number, known: readonly string[] = ["batchSize"]): number {
  if (typeof options !== "object" || options === null) {
    throw new ValueError(`${what} options: expected an object, got ${fmtValue(options)}`);
  }
  checkKeys(what, options, known);
  const bs = (options as { batchSize?: unknown }).batchSize ?? e.batchSize ?? (what === "fit" ? 32 : N);
  if (typeof bs !== "number" || !Number.isInteger(bs) || bs <= 0) {
    throw new ValueError(`${what} batchSize: expected a positive integer, got ${fmtValue(bs)}`);
  }
  if (e.stateful) {
    if (e.batchSize !== undefined && bs !== e.batchSize) {
      throw new ValueError(`${what} batchSize: this stateful model has a fixed batch size of ${e.batchSize}, got ${bs}; call model.setBatchSize(${bs}) to change it`);
    }
    if (N % bs !== 0) {
      throw new ShapeError(`${what} x: a stateful model needs a sample count divisible by the batch size ${bs}, got ${N} samples`);
    }
  }
  return toSize(bs);
}

export function requireCompiled(e: Engine, what: string): void {
  if (!e.optimizer || !e.loss) {
    throw new StateError(`${what}: the model is not compiled; call model.compile({ optimizer, loss }) first`);
  }
}

export function requireBuilt(e: Engine, what: string): void {
  if (!e.built) {
    throw new StateError(`${what}: the model is not built yet; give the first LSTM an inputDim, call build(inputDim), or pass data first`);
  }
}

/** One batch (x, labels, a stateful model's batch size) checked for `what`; builds the model on success. */
export function checkBatch(
  e: Engine, what: string, x: unknown, y: unknown, more?: (B: number) => void, // more: the call's other checks, given B
): { xt: StridedArray; yt: StridedArray; B: number; T: number } {
  requireCompiled(e, what);
  const { t: xt, B, T, F } = checkInput(e, `${what} x`, x);
  const yt = checkLabels(e, `${what} y`, y, B, T);
  more?.(B);
  // Only once every check has passed: a failed call must neither build the model nor fix the batch size.
  buildFor(e, F);
  checkStatefulBatch(e, `${what} x`, B);
  return { xt, yt, B, T };
}
