/**
 * The recurrent layers' states as the facade hands them out and takes them in: getStates, resetStates and
 * setBatchSize of `Sequential` (model.ts), each validating everything before it changes anything.
 */
import type { Engine } from "./engine.js";
import type { RecurrentState, StatesLike } from "./engine-api.js";
import { allocate } from "./tensor/tensor.js";
import { checkStates, requireBuilt } from "./validate.js";
import { StateError, ValueError, checkKeys, fmtValue, toSize } from "./errors.js";

/** `model.getStates()`. */
export function getStatesOf(e: Engine): RecurrentState[] {
  requireBuilt(e, "getStates");
  return e.rnns.map((l, i) => {
    const s = e.state[i];
    if (s) return e.namedStates(i, s, 0, e.stateRows(i));
    const B = l.stateful && e.batchSize !== undefined ? e.batchSize : 0;
    return e.namedStates(i, l.stateNames.map(() => allocate(e.dtype, B * l.stateUnits)), 0, B);
  });
}

/** `model.resetStates(states?)`. */
export function resetStatesOf(e: Engine, states?: StatesLike[] | { rows: number[] }): void {
  requireBuilt(e, "resetStates");
  if (states === undefined) {
    e.zeroStates();
    return;
  }
  if (!Array.isArray(states) && typeof states === "object" && states !== null) {
    checkKeys("resetStates", states, ["rows"]);
    const rows = states.rows;
    const B = e.batchSize ?? e.stateRows(0);
    if (!Array.isArray(rows) || rows.some((r) => !Number.isInteger(r) || r < 0 || r >= B)) {
      throw new ValueError(`resetStates rows: expected batch row indices in [0, ${B}), got ${JSON.stringify(rows)}`);
    }
    e.rnns.forEach((l, i) => {
      const H = l.stateUnits;
      for (const r of rows) for (const s of e.state[i] ?? []) s.fill(0, r * H, (r + 1) * H);
    });
    return;
  }
  if (!e.stateful) {
    throw new StateError(
      "resetStates states: the model is stateless, so every call starts from zeros and set states would be ignored; " +
      "give them to the call instead: model.predict(x, { initialStates: [{ h, c }] }) (trainOnBatch, testOnBatch and computeGradients take it too)",
    );
  }
  // Validate everything first: a bad entry must not leave some layers changed.
  const { states: parsed, B } = checkStates(e, "resetStates states", states, e.batchSize);
  parsed.forEach((p, i) => {
    const slots = e.allocState(i, B);
    p.forEach((buf, s) => slots[s]!.set(buf));
  });
  if (e.stateful && e.batchSize === undefined) e.fixBatch(B);
}

/** `model.setBatchSize(size)`. */
export function setBatchSizeOf(e: Engine, size: number): void {
    if (!Number.isInteger(size) || size <= 0) {
    throw new ValueError(`setBatchSize batchSize: expected a positive integer, got ${fmtValue(size)}`);
  }
  const batchSize = toSize(size);
  if (!e.stateful) {
    throw new StateError(`setBatchSize: the model is stateless and takes any batch size; setBatchSize is for stateful models`);
  }
  // The new states first: a size too large to allocate fails here, with the batch size and states as they were.
  let fresh: ReturnType<typeof e.freshStates> | null = null;
  try {
    fresh = e.built ? e.freshStates(batchSize) : null;
  } catch (err) {
    throw new ValueError(`setBatchSize batchSize: cannot hold the states of ${batchSize} rows (${(err as Error).message}); the batch size and the states are as they were`);
  }
  e.fixBatch(batchSize);
  if (fresh) fresh.forEach((s, i) => { e.state[i] = s; });
}