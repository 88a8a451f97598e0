/**
 * A worker thread: a replica of the model's engine (same layers, same kernels) whose weights are the
 * shared `params` buffer. On each "run" command it binds new buffers if it was sent any, computes forward
 * (and loss, and backward) on its rows, writes what the main thread asked for into shared memory, and
 * sets CTRL_DONE; the main thread, which computed its own rows meanwhile, waits on that word with
 * Atomics.wait, so the public API stays synchronous.
 *
 * Whatever happens, the main thread must not wait forever: every "run" signals CTRL_DONE, with
 * CTRL_STATUS 1 and the error's text when anything in it threw, and if the thread dies anyway
 * (process.exit, an uncaught error elsewhere) its process 'exit' handler sets CTRL_EXITED and wakes the
 * waiter. Only a thread that hangs or is killed from outside says nothing; the main thread's deadline
 * covers those.
 *
 * Legend: B the worker's rows, T timesteps, F input features, H units, D head units, M head rows.
 */
import { parentPort, workerData } from "node:worker_threads";
import { fromData, type FloatArray } from "../tensor/tensor.js";
import { LSTM } from "../layers/lstm.js";
import { Dense } from "../layers/dense.js";
import { Sequential } from "../model.js";
import {
  type Fault, type Message, type RunMessage, type SharedBuffers, type WorkerInit,
  CTRL_DONE, CTRL_EXITED, CTRL_EXIT_CODE, CTRL_READY, CTRL_STATUS, sharedArray, stateViews, writeMessage,
} from "./protocol.js";

const init = workerData as WorkerInit;
const ctrl = new Int32Array(init.ctrl);
const result = new Float64Array(init.result);
const message = new Uint8Array(init.message);

// Runs inside this thread as it ends (process.exit or an uncaught error), while the main thread may be
// blocked in Atomics.wait where the Worker's own 'exit' event cannot reach it.
process.on("exit", (code) => {
  Atomics.store(ctrl, CTRL_EXIT_CODE, code);
  Atomics.store(ctrl, CTRL_EXITED, 1);
  Atomics.notify(ctrl, CTRL_DONE);
  Atomics.notify(ctrl, CTRL_READY);
});

/** A failure staged by a "fault" message for the next run (tests only). */
let fault: Fault | null = null;

const units = init.layers.filter((l) => l.kind === "lstm").map((l) => l.units);

interface Views {
  x: FloatArray; y: FloatArray; stateIn: FloatArray; stateOut: FloatArray; out: FloatArray;
  dx: FloatArray; stateGrads: FloatArray; hseq: FloatArray; norms: Float64Array;
}
let views: Views | null = null;

/** The replica: built with zero initialisers (its weights are overwritten by the shared ones anyway). */
function buildReplica(): Sequential {
  const layers = init.layers.map((l) => l.kind === "lstm"
    ? new LSTM({
      units: l.units, inputDim: l.inputDim, returnSequences: l.returnSequences,
      kernelInitializer: "zeros", recurrentInitializer: "zeros",
    })
    : new Dense({ units: l.units, activation: l.activation }));
  return new Sequential(layers, { dtype: init.dtype, seed: 0 });
}

let model: Sequential | null = null;
try {
  model = buildReplica();
  Atomics.store(ctrl, CTRL_READY, 1);
} catch (e) {
  writeMessage(ctrl, message, `building the replica failed: ${(e as Error)?.stack ?? String(e)}`);
  Atomics.store(ctrl, CTRL_READY, 2);
}
Atomics.notify(ctrl, CTRL_READY);

/** Points the replica's weights and gradients at the shared buffers, and keeps views of the rest. */
function bindBuffers(b: SharedBuffers): void {
  const m = model!;
  views = null; // until every view below is made
  const params = sharedArray(init.dtype, b.params);
  const grads = sharedArray(init.dtype, b.grads);
  let off = 0;
  for (const l of m.layers) off = l.bind(params, grads, off);
  m.params = params.subarray(0, off);
  m.grads = grads.subarray(0, off);
  views = {
    x: sharedArray(init.dtype, b.x), y: sharedArray(init.dtype, b.y),
    stateIn: sharedArray(init.dtype, b.stateIn), stateOut: sharedArray(init.dtype, b.stateOut),
    out: sharedArray(init.dtype, b.out), dx: sharedArray(init.dtype, b.dx),
    stateGrads: sharedArray(init.dtype, b.stateGrads), hseq: sharedArray(init.dtype, b.hseq),
    norms: new Float64Array(b.norms),
  };
}

function run(cmd: RunMessage): void {
  if (!model) throw new Error("the replica was not built");
  if (cmd.buffers) bindBuffers(cmd.buffers);
  if (!views) throw new Error("a run came before any buffers");
  const m = model, v = views;
  const { op, B, T } = cmd;
  const F = m.inputDim!, D = m.outputDim;
  m.loss = cmd.loss;
  m.ensure(B, T);
  m.loadInput(fromData(v.x.subarray(0, B * T * F), [B, T, F]), null, 0, B, 0, T, 0);
  m.setInitialState(0, false, cmd.states ? stateViews(v.stateIn, units, B) : undefined);
  const M = m.forward(0, T, 0);
  if (fault === "exit") process.exit(70);
  if (fault === "hang") Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // nobody will notify
  // The final state of every layer (slot T), for the main thread to commit if the step stands.
  const finals = stateViews(v.stateOut, units, B);
  m.lstms.forEach((l, i) => {
    const n = B * l.units;
    finals[i]!.h.set(l.ws!.hs.subarray(T * n, (T + 1) * n));
    finals[i]!.c.set(l.ws!.cs.subarray(T * n, (T + 1) * n));
  });
  const head = m.denses[m.denses.length - 1]!.ws!;
  if (op === "predict" || op === "grads") v.out.set(head.out.subarray(0, M * D));
  if (op === "predict") return;
  const yShape = m.perStep ? [B, T, D] : [B, D];
  m.loadLabels(fromData(v.y.subarray(0, M * D), yShape), null, 0, B, 0, T);
  result[0] = m.lossOf(M, op !== "test");
  // Hits, not the fraction: the main thread divides the total by the whole batch's count, exactly as one thread would.
  result[1] = cmd.accuracy ? Math.round(m.accuracyOf(M) * M * D) : 0;
  if (op === "test") return;
  const norms = cmd.norms ? units.map((_, i) => v.norms.subarray(i * T, (i + 1) * T)) : null;
  m.grads.fill(0);
  m.backward(0, T, 0, norms);
  if (norms) for (const a of norms) for (let t = 0; t < T; t++) a[t] = a[t]! * a[t]!;
  if (op !== "grads") return;
  v.dx.set(m.lstms[0]!.ws!.dxs.subarray(0, T * B * F));
  const sg = stateViews(v.stateGrads, units, B);
  let hOff = 0;
  m.lstms.forEach((l, i) => {
    const n = B * l.units, ws = l.ws!;
    sg[i]!.h.set(ws.dh.subarray(0, n));
    sg[i]!.c.set(ws.dc.subarray(0, n));
    v.hseq.set(ws.hs.subarray(n, (T + 1) * n), hOff); // slots 1 … T are h_0 … h_{T-1}
    hOff += T * n;
  });
}

parentPort!.on("message", (msg: Message) => {
  if (msg.type === "fault") {
    fault = msg.kind;
    return;
  }
  // Everything a run does is inside the try, so the main thread always hears back.
  try {
    if (fault === "throw") throw new Error("injected fault: the run failed before computing (as a failure to bind its buffers would)");
    run(msg);
    ctrl[CTRL_STATUS] = 0;
  } catch (e) {
    try {
      writeMessage(ctrl, message, (e as Error)?.stack ?? String(e));
    } catch {
      writeMessage(ctrl, message, "an error that could not be converted to text");
    }
    ctrl[CTRL_STATUS] = 1;
  }
  Atomics.store(ctrl, CTRL_DONE, 1);
  Atomics.notify(ctrl, CTRL_DONE);
});
