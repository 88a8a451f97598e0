/**
 * The engine of one model: the buffers, state slots and passes of engine-core.ts, and the whole calls on checked
 * rows that the facade (model.ts), fit.ts and the trainers make: a training step, a test step, evaluate, predict,
 * the gradients and their study outputs, and gradCheck's loss probe. Each runs on the calling thread unless the
 * thread pool (threads/pool.ts, set as `executor`) takes it.
 *
 * Everything here is internal: model.ts, fit.ts, tbptt.ts, checkpoint*.ts and the thread pool use it; users reach
 * it as `model.engine` only to study internals.
 *
 * Legend: B batch, T timesteps, F input features, H units, D output units, M output rows.
 */
import { type FloatArray, type StridedArray, allocate, fromData } from "./tensor/tensor.js";
import { rowNorms, timeToBatchMajor } from "./tensor/layout.js";
import { EngineCore, type StateSet } from "./engine-core.js";
import type { StepResult, Gradients, GradientRequest, RowExecutor } from "./engine-api.js";
import { meanAbsoluteError, meanSquaredError } from "./losses.js";

export { planFlows, weightNamesOf } from "./layers/layer.js";
export type { Layer, Recurrent, StateSet } from "./engine-core.js";
export type { StepResult, Gradients, GradientRequest, RowExecutor };

export class Engine extends EngineCore {
  /**
   * The initial states the next whole calls start from instead of the carried or zero state, per recurrent layer
   * (B·H values each, for the call's B rows), set by the facade around a call (`initialStates`); null: none.
   * Such calls run on the calling thread.
   */
  given: StateSet[] | null = null;

  /** Whether compile asked for mae or mse (checked at every step: a field, not a search). */
  get errorMetricsOn(): boolean {
    return this.metrics.length > (this.accuracy ? 1 : 0);
  }

  /** The pool, unless the call starts from given states (the pool's slices start from the carried ones). */
  protected override pool(): RowExecutor | null {
    return this.given ? null : super.pool();
  }

  /**
   * Forward over B rows (through the row map, if any) from the carried or zero state, labels loaded; returns M.
   * `train`: dropout on; `infer`: no backward follows (the forward-only path, PassContext.infer).
   */
  private forwardRows(
    xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number, train = false, infer = false,
  ): number {
    this.ensure(B, T);
    if (train && this.hasDropout) this.drawMasks(); // a training pass: dropout on, with masks for this batch
    this.loadInput(xt, rows, rowStart, B, 0, T, 0);
    this.setInitialState(0, true, this.given ?? undefined);
    const M = this.forward(0, T, infer);
    this.loadLabels(yt, rows, rowStart, B, 0, T);
    return M;
  }

  /** One optimizer step on B rows (optionally through a row map); the loss is the one before the update. */
  trainRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult {
    // Split across threads, a dropout step's masks are still drawn for the whole batch here (the pool slices them).
    const par = this.pool()?.trainRows(xt, yt, rows, rowStart, B, T);
    if (par) return par;
    const M = this.forwardRows(xt, yt, rows, rowStart, B, T, true);
    const loss = this.lossOf(M, true);
    const res = this.errorMetrics({ loss }, M);
    if (this.accuracy) res.accuracy = this.accuracyOf(M);
    this.zeroGrads();
    this.backward(0, T, 0, null, null, false);
    if (this.applyUpdate(loss, "trainOnBatch")) this.commitState(T);
    return res;
  }

  /** The loss (and accuracy) on B rows, without updating; a stateful model carries its state. */
  testRows(xt: StridedArray, yt: StridedArray, rows: Int32Array | null, rowStart: number, B: number, T: number): StepResult {
    const par = this.pool()?.testRows(xt, yt, rows, rowStart, B, T);
    if (par) return par;
    const M = this.forwardRows(xt, yt, rows, rowStart, B, T, false, true); // no backward: the forward-only path
    const res = this.errorMetrics({ loss: this.lossOf(M, false) }, M);
    if (this.accuracy) res.accuracy = this.accuracyOf(M);
    this.commitState(T);
    return res;
  }

  /** The batch-size-weighted mean loss (and accuracy, mae, mse) over N samples, in batches of bs. */
  evaluateRows(xt: StridedArray, yt: StridedArray, N: number, T: number, bs: number): StepResult {
    let loss = 0, acc = 0, mae = 0, mse = 0;
    for (let start = 0; start < N; start += bs) {
      const B = Math.min(bs, N - start);
      const r = this.testRows(xt, yt, null, start, B, T);
      loss += r.loss * B;
      acc += (r.accuracy ?? 0) * B;
      mae += (r.mae ?? 0) * B;
      mse += (r.mse ?? 0) * B;
    }
    const res: StepResult = { loss: loss / N };
    if (this.accuracy) res.accuracy = acc / N;
    if (this.metrics.includes("mae")) res.mae = mae / N;
    if (this.metrics.includes("mse")) res.mse = mse / N;
    return res;
  }

  /**
   * The compiled error metrics of the last forward's output rows against the loaded labels, added to `res`: mae,
   * mse, means over the elements the loss counts (the kept steps under a mask), as Keras's metrics of those names.
   */
  errorMetrics(res: StepResult, M: number, mae = this.metrics.includes("mae"), mse = this.metrics.includes("mse")): StepResult {
    if (!mae && !mse) return res;
    const D = this.outputDim, N = M * D, out = this.outputRows(), rv = this.rowValid();
    if (mae) res.mae = meanAbsoluteError(N, out, this.ys, null, rv, D);
    if (mse) res.mse = meanSquaredError(N, out, this.ys, null, rv, D);
    return res;
  }

  /** The output for rows [start, start + B) of x, written into `out` (the whole [N, D] or [N, T, D]). */
  predictRows(xt: StridedArray, start: number, B: number, T: number, out: FloatArray): void {
    if (this.pool()?.predictRows(xt, start, B, T, out)) return;
    this.ensure(B, T);
    this.loadInput(xt, null, start, B, 0, T, 0);
    this.setInitialState(0, true, this.given ?? undefined);
    this.forward(0, T, true); // no backward: the forward-only path
    this.commitState(T);
    this.writeOutput(B, T, out, start * (this.perStep ? T : 1) * this.outputDim); // no tensor in between (a stream's step is a few µs)
  }

  /** The loss, every gradient, dL/dx and dL/d(initial state) on B rows; weights unchanged, state carried. */
  gradients(xt: StridedArray, yt: StridedArray, B: number, T: number, request: GradientRequest = {}): Gradients {
    const hiddenGradNorms = request.hiddenGradNorms ?? false;
    // The thread pool serves the plain request; the study outputs run on the calling thread.
    const plain = !request.gradNorms && !request.hiddenGrads && !request.keepState && !request.training;
    const par = plain ? this.pool()?.gradients(xt, yt, B, T, hiddenGradNorms) : null;
    if (par) return par;
    const M = this.forwardRows(xt, yt, null, 0, B, T, request.training ?? false);
    const loss = this.lossOf(M, true);
    this.zeroGrads();
    const norms = hiddenGradNorms ? this.rnns.map(() => new Float64Array(T)) : null;
    const study = request.gradNorms || request.hiddenGrads
      ? this.rnns.map((l) => {
        const n = T * B * l.directions * l.stateUnits; // a two-way layer's (T, B, 2H): both directions in time order
        return { dh: new Float64Array(n), dc: l.stateNames.includes("c") ? new Float64Array(n) : null };
      })
      : null;
    this.backward(0, T, 0, norms, study);
    if (!request.keepState) this.commitState(T);
    const F = this.inputDim!;
    const dx = allocate(this.dtype, B * T * F), g = this.inputGrad(); // every step: from is 0
    timeToBatchMajor(T, B, F, g.buf, g.off, dx, 0);
    const res: Gradients = {
      loss, grads: this.splitFlat(this.grads), outputs: this.headOutput(B, T), inputGrad: fromData(dx, [B, T, F]),
      hiddenStates: this.rnns.map((_, i) => this.hiddenSequence(i, B, T)),
      stateGrads: this.rnns.map((_, i) => this.namedStates(i, this.ws(i).dStates, 0, B)),
    };
    if (norms) res.hiddenGradNorms = norms.map((a) => Array.from(a));
    if (study && request.gradNorms) {
      res.gradNorms = study.map((s, i) => {
        const l = this.rnns[i]!, H = l.directions * l.stateUnits;
        return s.dc ? { h: rowNorms(s.dh, B, T, H), c: rowNorms(s.dc, B, T, H) } : { h: rowNorms(s.dh, B, T, H) };
      });
    }
    if (study && request.hiddenGrads) {
      res.hiddenGrads = study.map((s, i) => {
        const l = this.rnns[i]!, H = l.directions * l.stateUnits, out = new Float64Array(B * T * H);
        timeToBatchMajor(T, B, H, s.dh, 0, out, 0);
        return fromData(out, [B, T, H]);
      });
    }
    return res;
  }

  /**
   * The loss of B rows of x against y from the given initial states (per recurrent layer, (B, H) each), or from what a
   * pass would start from (the carried state of a stateful model, else zeros). Changes no state: gradCheck's
   * probe.
   */
  lossFrom(xt: StridedArray, yt: StridedArray, B: number, T: number, states: StateSet[] | null): number {
    this.ensure(B, T);
    this.loadInput(xt, null, 0, B, 0, T, 0);
    this.setInitialState(0, true, states ?? undefined);
    const M = this.forward(0, T);
    this.loadLabels(yt, null, 0, B, 0, T);
    this.uses++;
    return this.lossOf(M, false);
  }
}
