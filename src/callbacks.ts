/**
 * Training callbacks and the History that `fit` returns. A callback is a plain object with any of the
 * hooks; each hook gets the model last, so resetting states, saving or stopping takes a line.
 *
 * The hooks are generic in the model they receive (`CallbackHooks<M>`): this file sits below the model
 * facade, which pins M to `Sequential` (model.ts's `Callback`). The callbacks made here ask of the model
 * only what they use.
 */
import { ValueError, checkKeys, fmtValue } from "./errors.js";
import type { Tensor, TensorLike } from "./tensor/tensor.js";

export interface Logs {
  loss?: number;
  accuracy?: number;
  /** Mean absolute and mean squared error (compiled with metrics: ["mae"], ["mse"]). */
  mae?: number;
  mse?: number;
  valLoss?: number;
  valAccuracy?: number;
  valMae?: number;
  valMse?: number;
  /** Samples in the batch (batch hooks). */
  size?: number;
}

/**
 * Hooks `fit` calls (and awaits) at each stage; every one is optional and gets the model last.
 *
 * @example
 * const logEpochs: Callback = { onEpochEnd(epoch, logs) { console.log(epoch, logs.loss, logs.valLoss); } };
 * await model.fit(x, y, { epochs: 5, validationData: [xv, yv], callbacks: [logEpochs] });
 */
export interface CallbackHooks<M> {
  onTrainBegin?(logs: Logs, model: M): void | Promise<void>;
  onTrainEnd?(logs: Logs, model: M): void | Promise<void>;
  onEpochBegin?(epoch: number, logs: Logs, model: M): void | Promise<void>;
  onEpochEnd?(epoch: number, logs: Logs, model: M): void | Promise<void>;
  onBatchBegin?(batch: number, logs: Logs, model: M): void | Promise<void>;
  onBatchEnd?(batch: number, logs: Logs, model: M): void | Promise<void>;
}

/** The figures an epoch's logs may hold, as History keeps them. */
export const EPOCH_KEYS = ["loss", "accuracy", "mae", "mse", "valLoss", "valAccuracy", "valMae", "valMse"] as const;

/** The hook names, in the order fit calls them within an epoch. */
export const HOOKS = ["onTrainBegin", "onTrainEnd", "onEpochBegin", "onEpochEnd", "onBatchBegin", "onBatchEnd"] as const;

/**
 * Per-epoch figures, as Keras's History: `history.history.loss[epoch]`. `accuracy`, `mae` and `mse` are there when
 * the model was compiled with those metrics, `valLoss` / `valAccuracy` / `valMae` / `valMse` when `fit` had
 * `validationData`.
 *
 * @example
 * const history = await model.fit(x, y, { epochs: 10, validationData: [xv, yv] });
 * history.epoch;                  // [0, 1, …, 9] (fewer if earlyStopping stopped it)
 * history.history.loss.at(-1);    // the last epoch's mean training loss
 * history.history.valLoss![0];    // the first epoch's validation loss
 */
export class History {
  readonly epoch: number[] = [];
  readonly history: {
    loss: number[]; accuracy?: number[]; mae?: number[]; mse?: number[];
    valLoss?: number[]; valAccuracy?: number[]; valMae?: number[]; valMse?: number[];
  } = { loss: [] };

  /** Appends one epoch's logs (called by `fit`). */
  record(epoch: number, logs: Logs): void {
    this.epoch.push(epoch);
    for (const key of EPOCH_KEYS) {
      const v = logs[key];
      if (v === undefined) continue;
      (this.history[key] ??= []).push(v);
    }
  }
}

/**
 * Resets the model's LSTM states before every n-th batch (counting across epochs), starting with the
 * first: the Keras tutorial's ResetStatesCallback, with n = windows per sequence.
 *
 * @example
 * await model.fit(xWindows, yWindows, { batchSize: 1, epochs: 5, callbacks: [resetStatesEvery(2)] });
 */
export function resetStatesEvery(n: number): CallbackHooks<{ resetStates(): void }> {
  if (!Number.isInteger(n) || n <= 0) throw new ValueError(`resetStatesEvery n: expected a positive integer, got ${fmtValue(n)}`);
  let counter = 0;
  return {
    onTrainBegin() { counter = 0; },
    onBatchBegin(_batch, _logs, model) {
      if (counter % n === 0) model.resetStates();
      counter++;
    },
  };
}

export interface EarlyStoppingOptions {
  /** "valLoss" (default when validation data is given, else "loss"), or another figure of the logs: "loss",
   * "accuracy", "mae", "mse", "valAccuracy", "valMae", "valMse". */
  monitor?: (typeof EPOCH_KEYS)[number];
  /** Epochs without improvement before stopping. Default 0. */
  patience?: number;
  /** Smallest change that counts as an improvement. Default 0. */
  minDelta?: number;
  /** Put back the weights of the best epoch when stopping. Default false. */
  restoreBestWeights?: boolean;
}

/** What earlyStopping asks of the model: the stop flag fit reads after each epoch, and the weights. */
export interface StoppableModel {
  stopTraining: boolean;
  getWeights(): Tensor[];
  setWeights(weights: TensorLike[]): void;
}

/**
 * Stops `fit` when the monitored figure stops improving (losses fall, accuracies rise).
 *
 * @example
 * await model.fit(x, y, { epochs: 100, validationData: [xv, yv], callbacks: [earlyStopping({ patience: 3 })] });
 */
export function earlyStopping(options: EarlyStoppingOptions = {}): CallbackHooks<StoppableModel> & { stoppedEpoch: number } {
  if (typeof options !== "object" || options === null) {
    throw new ValueError(`earlyStopping options: expected an object like { patience: 3 }, got ${fmtValue(options)}`);
  }
  checkKeys("earlyStopping", options, ["monitor", "patience", "minDelta", "restoreBestWeights"]);
  const patience = options.patience ?? 0;
  const minDelta = options.minDelta ?? 0;
  if (!Number.isInteger(patience) || patience < 0) throw new ValueError(`earlyStopping patience: expected a non-negative integer, got ${fmtValue(patience)}`);
  if (typeof minDelta !== "number" || !(minDelta >= 0)) throw new ValueError(`earlyStopping minDelta: expected a non-negative number, got ${fmtValue(minDelta)}`);
  if (options.restoreBestWeights !== undefined && typeof options.restoreBestWeights !== "boolean") {
    throw new ValueError(`earlyStopping restoreBestWeights: expected true or false, got ${fmtValue(options.restoreBestWeights)}`);
  }
  const monitors: readonly string[] = EPOCH_KEYS;
  if (options.monitor !== undefined && !monitors.includes(options.monitor)) {
    throw new ValueError(`earlyStopping monitor: expected one of ${monitors.join(", ")}, got ${fmtValue(options.monitor)}`);
  }
  let best = Infinity, wait = 0;
  let bestWeights: Tensor[] | null = null;
  const cb = {
    stoppedEpoch: -1,
    onTrainBegin() { best = Infinity; wait = 0; bestWeights = null; cb.stoppedEpoch = -1; },
    onEpochEnd(epoch: number, logs: Logs, model: StoppableModel) {
      const key = options.monitor ?? (logs.valLoss !== undefined ? "valLoss" : "loss");
      const raw = logs[key];
      if (raw === undefined) throw new ValueError(`earlyStopping monitor: "${key}" is not in the epoch's logs (${Object.keys(logs).join(", ")})`);
      const score = key.toLowerCase().includes("accuracy") ? -raw : raw; // lower is better
      if (score < best - minDelta) {
        best = score; wait = 0;
        if (options.restoreBestWeights) bestWeights = model.getWeights();
      } else if (++wait >= Math.max(patience, 1)) { // Keras: stop after `patience` epochs without improvement
        model.stopTraining = true;
        cb.stoppedEpoch = epoch;
        if (bestWeights) model.setWeights(bestWeights);
      }
    },
  };
  return cb;
}
