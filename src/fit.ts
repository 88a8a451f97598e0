/**
 * The training loop behind `model.fit`: epochs of mini-batches in a seeded shuffled order, validation,
 * callbacks, progress and the History. It receives checked data (model.ts validates) and runs the engine's
 * whole-batch calls, so it is the same loop on one thread or many.
 *
 * The loop is generic in the model object the callbacks receive (the facade passes itself), so that
 * this file needs nothing above the engine.
 *
 * Legend: N samples, T timesteps, bs batch size.
 */
import type { StridedArray } from "./tensor/tensor.js";
import type { Engine } from "./engine.js";
import { type CallbackHooks, type Logs, History } from "./callbacks.js";
import { type ProgressSink, ProgressBar } from "./progress.js";

/** What fit does, every argument checked. */
export interface FitPlan {
  x: StridedArray;      // [N, T, F]
  y: StridedArray;      // [N, D] or [N, T, D]
  N: number;
  T: number;
  batchSize: number;
  epochs: number;
  shuffle: boolean;
  validation: { x: StridedArray; y: StridedArray; N: number; T: number } | null;
  progress: ProgressSink | null;
}

/** Lets other tasks run between epochs (a page stays responsive, timers fire) in any JavaScript runtime. */
function yieldToEventLoop(): Promise<void> {
  return new Promise<void>((resolve) => setTimeout(resolve, 0));
}

/**
 * Runs the plan on the engine; `model` is what the callbacks receive and whose `stopTraining` ends the
 * loop after the current epoch.
 */
export async function fitLoop<M extends { stopTraining: boolean }>(
  e: Engine, model: M, plan: FitPlan, callbacks: readonly CallbackHooks<M>[],
): Promise<History> {
  const { x, y, N, T, batchSize: bs, epochs, shuffle, validation: val } = plan;
  // A stateful model validates from zero states, and training then carries on from where it was.
  const saved = val && e.stateful ? e.rnns.map((l) => l.stateNames.map(() => new Float64Array(bs * l.stateUnits))) : null;
  const history = new History();
  const progress = plan.progress ? new ProgressBar(plan.progress, epochs, Math.ceil(N / bs), e.accuracy) : null;
  const order = new Int32Array(N);
  for (let i = 0; i < N; i++) order[i] = i;
  model.stopTraining = false;
  for (const cb of callbacks) await cb.onTrainBegin?.({}, model);
  for (let epoch = 0; epoch < epochs && !model.stopTraining; epoch++) {
    for (const cb of callbacks) await cb.onEpochBegin?.(epoch, {}, model);
    if (shuffle) {
      // A fresh permutation each epoch (as Keras), so it depends only on the RNG's position and a run
      // resumed from a checkpoint shuffles exactly as the uninterrupted one.
      for (let i = 0; i < N; i++) order[i] = i;
      for (let i = N - 1; i > 0; i--) {
        const j = e.shuffleRng.int(i + 1);
        const tmp = order[i]!; order[i] = order[j]!; order[j] = tmp;
      }
    }
    progress?.startEpoch(epoch);
    let lossSum = 0, accSum = 0, maeSum = 0, mseSum = 0, seen = 0, batch = 0;
    for (let start = 0; start < N; start += bs, batch++) {
      const B = Math.min(bs, N - start);
      for (const cb of callbacks) await cb.onBatchBegin?.(batch, { size: B }, model);
      const r = e.trainRows(x, y, order, start, B, T);
      lossSum += r.loss * B; accSum += (r.accuracy ?? 0) * B; maeSum += (r.mae ?? 0) * B; mseSum += (r.mse ?? 0) * B; seen += B;
      const logs: Logs = { loss: r.loss, size: B };
      if (r.accuracy !== undefined) logs.accuracy = r.accuracy;
      if (r.mae !== undefined) logs.mae = r.mae;
      if (r.mse !== undefined) logs.mse = r.mse;
      for (const cb of callbacks) await cb.onBatchEnd?.(batch, logs, model);
      progress?.batch(batch + 1, lossSum / seen, accSum / seen);
    }
    const logs: Logs = { loss: lossSum / seen };
    if (e.accuracy) logs.accuracy = accSum / seen;
    if (e.metrics.includes("mae")) logs.mae = maeSum / seen;
    if (e.metrics.includes("mse")) logs.mse = mseSum / seen;
    if (val) {
      if (saved) {
        saved.forEach((s, i) => { const cur = e.allocState(i, bs); s.forEach((buf, k) => buf.set(cur[k]!)); });
        e.zeroStates();
      }
      const r = e.evaluateRows(val.x, val.y, val.N, val.T, bs);
      if (saved) saved.forEach((s, i) => { s.forEach((buf, k) => e.state[i]![k]!.set(buf)); });
      logs.valLoss = r.loss;
      if (r.accuracy !== undefined) logs.valAccuracy = r.accuracy;
      if (r.mae !== undefined) logs.valMae = r.mae;
      if (r.mse !== undefined) logs.valMse = r.mse;
    }
    history.record(epoch, logs);
    progress?.endEpoch(logs);
    for (const cb of callbacks) await cb.onEpochEnd?.(epoch, logs, model);
    await yieldToEventLoop();
  }
  for (const cb of callbacks) await cb.onTrainEnd?.({}, model);
  return history;
}
