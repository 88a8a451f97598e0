/**
 * A worker thread's side: a replica of the model's engine (same layers, same kernels) whose weights are
 * the shared `params` buffer. On each "run" command it binds new buffers if it was sent any, computes
 * forward (and loss, and backward) on its rows, writes what the main thread asked for into shared memory,
 * and sets CTRL_DONE; the main thread, which computed its own rows meanwhile, waits on that word with
 * Atomics.wait, so the public API stays synchronous.
 *
 * Whatever happens, the main thread must not wait forever: every "run" signals CTRL_DONE, with
 * CTRL_STATUS 1 and the error's text when anything in it threw. If the thread dies anyway, the host's exit
 * hook calls `markExited` (protocol.ts). Only a thread that hangs or is killed from outside says nothing;
 * the main thread's deadline covers those.
 *
 * Nothing here knows the platform: node/worker.ts feeds it messages from Node's worker_threads.
 *
 * Legend: B the worker's rows, T timesteps, F input features, H units, D head units, M head rows.
 */
import { fromData, type FloatArray } from "../tensor/tensor.js";
import { LSTM } from "../layers/lstm.js";
import { GRU } from "../layers/gru.js";
import { Dense } from "../layers/dense.js";
import { Embedding } from "../layers/embedding.js";
import { Bidirectional } from "../layers/bidirectional.js";
import { Engine } from "../engine.js";
import type { DropoutMasks } from "../engine-core.js";
import { WindowRows } from "../tbptt-rows.js";
import {
  type Fault, type Message, type ReplicaLayer, type RunMessage, type SharedBuffers, type WindowMessage, type WorkerInit,
  CTRL_DONE, CTRL_READY, CTRL_STATUS, maskViews, sharedArray, stateLayout, stateViews, writeMessage,
} from "./protocol.js";

interface Views {
  x: FloatArray; y: FloatArray; stateIn: FloatArray; stateOut: FloatArray; out: FloatArray;
  dx: FloatArray; stateGrads: FloatArray; hseq: FloatArray; norms: Float64Array; masks: Float64Array;
}

export class Replica {
  private readonly ctrl: Int32Array;
  private readonly result: Float64Array;
  private readonly message: Uint8Array;
  private readonly units: number[];
  private readonly layout: { units: number; count: number }[];
  private engine: Engine | null = null;
  private views: Views | null = null;
  /** Views of `masks` for the rows they were made for (maskViews), remade when the rows or the buffers change. */
  private masks: { B: number; views: DropoutMasks[] } | null = null;
  /** The shared weights and gradients, when the replica computes in its own WebAssembly memory (backend "wasm"). */
  private shared: { params: FloatArray; grads: FloatArray } | null = null;
  /** A failure staged by a "fault" message for the next run (tests only). */
  private fault: Fault | null = null;
  /** This worker's rows of the truncated-BPTT sequence in progress ("window" messages), or null before any. */
  private rows: WindowRows | null = null;

  /**
   * Builds the replica and tells the main thread (CTRL_READY 1, or 2 with the reason). `exit` ends this
   * thread with a code (the "exit" fault of the tests).
   */
  constructor(private readonly init: WorkerInit, private readonly exit: (code: number) => void) {
    this.ctrl = new Int32Array(init.ctrl);
    this.result = new Float64Array(init.result);
    this.message = new Uint8Array(init.message);
    this.layout = stateLayout(init.layers);
    this.units = this.layout.map((l) => l.units);
    try {
      const cell = (l: ReplicaLayer): LSTM | GRU | Dense | Embedding => {
        if (l.kind === "embedding") return new Embedding({ inputDim: l.inputDim, outputDim: l.units, maskZero: l.maskZero });
        if (l.kind === "lstm" || l.kind === "gru") {
          const common = {
            units: l.units, returnSequences: l.returnSequences, recurrentActivation: l.recurrentActivation, useBias: l.useBias,
            goBackwards: l.goBackwards, zeroOutputForMask: l.zeroOutputForMask, dropout: l.dropout, recurrentDropout: l.recurrentDropout,
          };
          return l.kind === "lstm" ? new LSTM(common) : new GRU({ ...common, resetAfter: l.resetAfter });
        }
        if (l.kind === "bidirectional") throw new Error("a Bidirectional inside a Bidirectional");
        return new Dense({ units: l.units, activation: l.activation, useBias: l.useBias });
      };
      const layers = init.layers.map((l) => (l.kind === "bidirectional" ? new Bidirectional(cell(l.layer) as LSTM | GRU, { mergeMode: l.mergeMode }) : cell(l)));
      const engine = new Engine(layers, init.dtype, "0", init.maskingValue, init.backend ?? "js", init.fma ?? false);
      // No initialisation: its weights are the shared ones anyway. (An Embedding's input is one id per step.)
      engine.build(init.layers[0]!.kind === "embedding" ? 1 : init.layers[0]!.inputDim, false);
      this.engine = engine;
      this.result[2] = engine.arena ? (engine.arena.fused ? 2 : 1) : 0; // what the main thread reports as simdWorkers, fusedWorkers
      Atomics.store(this.ctrl, CTRL_READY, 1);
    } catch (e) {
      writeMessage(this.ctrl, this.message, `building the replica failed: ${(e as Error)?.stack ?? String(e)}`);
      Atomics.store(this.ctrl, CTRL_READY, 2);
    }
    Atomics.notify(this.ctrl, CTRL_READY);
  }

  /** Handles one message from the main thread; a run always ends by setting CTRL_DONE. */
  handle(msg: Message): void {
    if (msg.type === "fault") {
      this.fault = msg.kind;
      return;
    }
    // Everything a run does is inside the try, so the main thread always hears back.
    const ctrl = this.ctrl;
    try {
      if (this.fault === "throw") throw new Error("injected fault: the run failed before computing (as a failure to bind its buffers would)");
      if (msg.type === "window") this.window(msg);
      else this.run(msg);
      ctrl[CTRL_STATUS] = 0;
    } catch (e) {
      try {
        writeMessage(ctrl, this.message, (e as Error)?.stack ?? String(e));
      } catch {
        writeMessage(ctrl, this.message, "an error that could not be converted to text");
      }
      ctrl[CTRL_STATUS] = 1;
    }
    Atomics.store(ctrl, CTRL_DONE, 1);
    Atomics.notify(ctrl, CTRL_DONE);
  }

  /** Points the replica's weights and gradients at the shared buffers, and keeps views of the rest. */
  private bind(b: SharedBuffers): void {
    const e = this.engine!, dt = this.init.dtype;
    this.views = null; // until every view below is made
    this.masks = null;
    // The weights may be the main thread's own (in its shared memory), which this thread only reads.
    const P = e.params.length, params = sharedArray(dt, b.params, b.paramsAt, P), grads = sharedArray(dt, b.grads, b.gradsAt, P);
    if (e.arena) {
      // The SIMD kernels run on the replica's own memory: its weights stay there, filled from the shared ones
      // at each run (build allocated them in the arena), and its gradients are copied out after backward.
      this.shared = { params, grads };
    } else {
      let off = 0;
      for (const l of e.layers) off = l.bind(params, grads, off);
      e.params = params.subarray(0, off);
      e.grads = grads.subarray(0, off);
    }
    this.views = {
      x: sharedArray(dt, b.x), y: sharedArray(dt, b.y),
      stateIn: sharedArray(dt, b.stateIn), stateOut: sharedArray(dt, b.stateOut),
      out: sharedArray(dt, b.out), dx: sharedArray(dt, b.dx),
      stateGrads: sharedArray(dt, b.stateGrads), hseq: sharedArray(dt, b.hseq),
      norms: new Float64Array(b.norms), masks: new Float64Array(b.masks),
    };
  }

  private run(cmd: RunMessage): void {
    if (!this.engine) throw new Error("the replica was not built");
    if (cmd.buffers) this.bind(cmd.buffers);
    if (!this.views) throw new Error("a run came before any buffers");
    const m = this.engine, v = this.views, units = this.units;
    const { op, B, T } = cmd;
    const F = m.inputDim!, D = m.outputDim;
    if (this.shared) m.params.set(this.shared.params); // the weights of this step (the main thread may have updated them)
    m.loss = cmd.loss;
    m.huberDelta = cmd.huberDelta;
    m.ensure(B, T);
    if (cmd.dropout) {
      // A training pass with this worker's rows of the batch's dropout masks (drawn on the main thread).
      if (this.masks?.B !== B) this.masks = { B, views: maskViews(v.masks, this.init.layers, B) };
      m.useMasks(this.masks.views);
    }
    m.loadInput(fromData(v.x.subarray(0, B * T * F), [B, T, F]), null, 0, B, 0, T, 0);
    m.setInitialState(0, false, cmd.states ? stateViews(v.stateIn, this.layout, B) : undefined);
    const M = m.forward(0, T, op === "predict" || op === "test"); // forward-only where no backward follows
    if (this.fault === "exit") this.exit(70);
    if (this.fault === "hang") Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // nobody will notify
    // The final state of every layer (slot T), for the main thread to commit if the step stands.
    const finals = stateViews(v.stateOut, this.layout, B);
    m.rnns.forEach((l, i) => {
      const n = B * l.stateUnits, slots = m.ws(i).states;
      finals[i]!.forEach((f, s) => f.set(slots[s]!.subarray(T * n, (T + 1) * n)));
    });
    if (op === "predict" || op === "grads") v.out.set(m.outputRows().subarray(0, M * D));
    if (op === "predict") return;
    const L = m.labelDim, yShape = m.perStep ? [B, T, L] : [B, L];
    m.loadLabels(fromData(v.y.subarray(0, M * L), yShape), null, 0, B, 0, T);
    this.result[0] = m.lossOf(M, op !== "test");
    // The rows the loss counted (its mean's share of the batch's), and hits, not the fraction: the main thread divides
    // the total by the whole batch's count, exactly as one thread would.
    const kept = m.keptRows(M);
    this.result[3] = kept;
    this.result[1] = cmd.accuracy ? Math.round(m.accuracyOf(M) * m.accuracyUnits(kept)) : 0;
    if (cmd.errorMetrics) {
      const e = m.errorMetrics({ loss: 0 }, M, true, true); // means over the slice's counted elements, weighed as its loss
      this.result[4] = e.mae!;
      this.result[5] = e.mse!;
    }
    if (op === "test") return;
    const norms = cmd.norms ? units.map((_, i) => v.norms.subarray(i * T, (i + 1) * T)) : null;
    m.zeroGrads();
    m.backward(0, T, 0, norms, null, op === "grads");
    if (this.shared) this.shared.grads.set(m.grads);
    if (norms) for (const a of norms) for (let t = 0; t < T; t++) a[t] = a[t]! * a[t]!;
    if (op !== "grads") return;
    const g = m.inputGrad(); // every step: from is 0
    v.dx.set(g.buf.subarray(g.off, g.off + T * B * F));
    const sg = stateViews(v.stateGrads, this.layout, B);
    let hOff = 0;
    m.rnns.forEach((l, i) => {
      const n = B * l.stateUnits, ws = m.ws(i), hs = m.hiddenRows(i, B, T); // (T, B, directions·H)
      sg[i]!.forEach((g, s) => g.set(ws.dStates[s]!.subarray(0, n)));
      v.hseq.set(hs, hOff);
      hOff += hs.length;
    });
  }

  /**
   * One step of a split truncated-BPTT sequence (see WindowMessage): this worker's rows, its state and kept history
   * staying in the replica's buffers from message to message, as the calling thread's do in its own engine.
   */
  private window(cmd: WindowMessage): void {
    if (!this.engine) throw new Error("the replica was not built");
    if (cmd.buffers) this.bind(cmd.buffers);
    if (!this.views) throw new Error("a window came before any buffers");
    const m = this.engine, v = this.views, { B, T } = cmd, F = m.inputDim!;
    m.loss = cmd.loss;
    if (cmd.settle !== 0) this.rows?.settle(cmd.settle === 1);
    if (cmd.begin) {
      this.rows = new WindowRows(m, B, cmd.k1, cmd.k2, false);
      this.rows.begin(false);
      // The sequence's dropout masks: copies of this worker's rows, so that they hold whatever the buffers do next.
      if (cmd.masks) m.useMasks(maskViews(v.masks, this.init.layers, B).map((s) => ({ x: s.x && s.x.slice(), h: s.h && s.h.slice() })));
    }
    const rows = this.rows;
    if (!rows || rows.B !== B) throw new Error("a window came before its sequence began");
    const L = m.labelDim;
    const y = fromData(v.y.subarray(0, (m.perStep ? T : 1) * B * L), m.perStep ? [B, T, L] : [B, L]);
    if (cmd.n > 0) rows.load(fromData(v.x.subarray(0, B * T * F), [B, T, F]), y, cmd.tx, cmd.n);
    if (cmd.run) {
      if (this.shared) m.params.set(this.shared.params); // the weights of this window (the main thread updated them after the last)
      if (this.fault === "exit") this.exit(70);
      if (this.fault === "hang") Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // nobody will notify
      const r = rows.window(y, cmd.dropping, cmd.study, cmd.accuracy);
      this.result[0] = r.loss;
      this.result[3] = rows.kept; // its share of the batch's loss under a mask (see pool.ts)
      this.result[1] = cmd.accuracy ? Math.round(r.accuracy! * m.accuracyUnits(rows.kept)) : 0;
      if (this.shared) this.shared.grads.set(m.grads);
      if (cmd.study) {
        const reach = rows.t1 - rows.tb, g = m.inputGrad(), at = g.off + (rows.tb - g.from) * B * F; // (reach, B, F) from step tb
        v.dx.set(g.buf.subarray(at, at + reach * B * F));
        const sg = stateViews(v.stateGrads, this.layout, B);
        m.rnns.forEach((l, i) => sg[i]!.forEach((d, s) => d.set(m.ws(i).dStates[s]!.subarray(0, B * l.stateUnits))));
        rows.dhNorms!.forEach((a, i) => {
          for (let t = rows.tb; t < rows.t1; t++) v.norms[i * rows.cap + t] = a[t]! * a[t]!;
        });
      }
    }
    // The carried state (the window's end, or after a settle the slot it moved to), for getStates and the model's commit.
    const finals = stateViews(v.stateOut, this.layout, B);
    m.rnns.forEach((l, i) => {
      const n = B * l.stateUnits, off = rows.stateSlot * n, slots = m.ws(i).states;
      finals[i]!.forEach((f, s) => f.set(slots[s]!.subarray(off, off + n)));
    });
  }
}
