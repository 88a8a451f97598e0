/**
 * What the main thread and a worker thread agree on: the replica's configuration, the control words, the
 * messages, and where each shared buffer keeps what.
 *
 * Legend: Bw the worker's rows, T timesteps, F input features, H_l units of LSTM layer l, D head units,
 * Mw head rows of the worker (Bw, or T·Bw for a per-step head). Everything the worker reads or writes
 * lives in SharedArrayBuffers, so a step costs one small message and no copies through postMessage.
 */
import type { DType, FloatArray } from "../tensor/tensor.js";
import type { Activation } from "../layers/dense.js";
import type { RecurrentActivation } from "../layers/lstm.js";
import type { MergeMode } from "../layers/bidirectional.js";
import type { LossName } from "../losses.js";
import type { DropoutMasks } from "../engine-core.js";

/** One layer of the replica, enough to rebuild the same shapes (the weights come through `params`). */
export type ReplicaLayer =
  | ReplicaCell
  | { kind: "bidirectional"; units: number; inputDim: number; mergeMode: MergeMode; layer: ReplicaCell }
  | { kind: "dense"; units: number; inputDim: number; activation: Activation; useBias: boolean }
  | { kind: "embedding"; units: number; /** the vocabulary */ inputDim: number; maskZero: boolean };

/**
 * A recurrent cell of the replica (alone, or a Bidirectional's forward direction). Its dropout rates size its
 * buffers for the masked copies (the masks themselves come from the main thread's draw, through `masks`).
 */
export type ReplicaCell = {
  units: number; inputDim: number; returnSequences: boolean; recurrentActivation: RecurrentActivation; useBias: boolean;
  goBackwards: boolean; zeroOutputForMask: boolean; dropout: number; recurrentDropout: number;
} & ({ kind: "lstm" } | { kind: "gru"; resetAfter: boolean });

/** What every worker starts with (Node passes it as `workerData`). */
export interface WorkerInit {
  dtype: DType;
  layers: ReplicaLayer[];
  /**
   * "wasm": the replica computes in its own WebAssembly memory in SIMD (it copies the shared weights in before
   * each run and its gradients out after), as the main thread's model does; "js" (or absent): on the shared
   * buffers directly, with the TypeScript kernels.
   */
  backend?: "js" | "wasm";
  /** The main thread's model has `fma` on: the replica's products fuse their multiply-adds too (same rounding). */
  fma?: boolean;
  /** The model's Masking layer's value, or null (an Embedding's maskZero travels with its layer). */
  maskingValue: number | null;
  /** Int32 control words, see CTRL_*. */
  ctrl: SharedArrayBuffer;
  /** Float64 results (RESULT_WORDS): [loss, accuracy hits, SIMD flag, kept output rows, mae, mse]. */
  result: SharedArrayBuffer;
  /** UTF-8 text of the last error, CTRL_MSG_LEN bytes long. */
  message: SharedArrayBuffer;
}

/** Index of the word the worker sets to 1 (and notifies) when a command is done. */
export const CTRL_DONE = 0;
/** 0 when the last command succeeded, 1 when it threw (the text is in `message`). */
export const CTRL_STATUS = 1;
/** 0 while the worker starts, 1 when it is ready, 2 when it failed to start (text in `message`). */
export const CTRL_READY = 2;
/** Length in bytes of the error text in `message`. */
export const CTRL_MSG_LEN = 3;
/**
 * Set to 1 by the worker's own process 'exit' handler (process.exit, an uncaught error), which also
 * notifies CTRL_DONE and CTRL_READY: the main thread, blocked in Atomics.wait, cannot see the Worker's
 * 'exit' event, so this word is how it learns that no CTRL_DONE will come.
 */
export const CTRL_EXITED = 4;
/** The worker's exit code, valid once CTRL_EXITED is 1. */
export const CTRL_EXIT_CODE = 5;
export const CTRL_WORDS = 6;
export const MESSAGE_BYTES = 4096;
/**
 * Float64 words of `result`: the slice's mean loss, its accuracy hits, 1 (2 with fma) when the replica computes in
 * SIMD, how many output rows its loss counted (EngineCore.keptRows: fewer than Mw under a mask), which the main
 * thread weighs its loss and gradients by, and (when asked) the slice's mean absolute and squared error, weighed as
 * its loss.
 */
export const RESULT_WORDS = 6;

/** The shared buffers of one worker (params is the same for every worker). */
export interface SharedBuffers {
  params: SharedArrayBuffer;     // (P) at paramsAt: the model's weights, in the model's own shared memory or a copy
  paramsAt: number;              // byte offset of the weights in params
  grads: SharedArrayBuffer;      // (P) at gradsAt: the worker's gradients of its rows' mean loss
  gradsAt: number;               // byte offset of the gradients in grads (in the model's arena, on the SIMD backend)
  x: SharedArrayBuffer;          // (Bw, T, F) batch-major input rows
  y: SharedArrayBuffer;          // (Bw, D) or (Bw, T, D) labels
  stateIn: SharedArrayBuffer;    // per layer (Bw, H) h then (Bw, H) c: initial states
  stateOut: SharedArrayBuffer;   // per layer (Bw, H) h then (Bw, H) c: final states
  out: SharedArrayBuffer;        // (Mw, D) head output rows, time-major for a per-step head
  dx: SharedArrayBuffer;         // (T, Bw, F) dL/dx, time-major
  stateGrads: SharedArrayBuffer; // per layer (Bw, H) dL/dh0 then (Bw, H) dL/dc0
  hseq: SharedArrayBuffer;       // per layer (T, Bw, H) h_0 … h_{T-1}, time-major
  norms: SharedArrayBuffer;      // float64, per layer (T) squared ‖dL/dh_t‖ (the worker's mean loss)
  masks: SharedArrayBuffer;      // float64, per layer with dropout (dirs·Bw, I) then (dirs·Bw, H): its rows of the batch's masks (maskViews)
}

export type Op = "train" | "test" | "predict" | "grads";

/**
 * Test-only failures a worker can be told to stage on its next "run": throw before running (where a
 * failure to bind new buffers would surface), call process.exit in the middle of the pass, or block
 * forever in the middle of the pass (a hung thread that never signals).
 */
export type Fault = "throw" | "exit" | "hang";

export type RunMessage = {
  type: "run"; op: Op; B: number; T: number; loss: LossName | null;
  /** The loss's delta when it is "huber". */
  huberDelta: number;
  /** New buffers to bind before running (the first run, or after they grew), else null. */
  buffers: SharedBuffers | null;
  /** Initial states are in stateIn (else zeros). */
  states: boolean;
  /** Count accuracy hits into result[1]. */
  accuracy: boolean;
  /** The slice's mean absolute and squared error into result[4], result[5] (metrics "mae", "mse"). */
  errorMetrics: boolean;
  /** Record ‖dL/dh_t‖ per layer (computeGradients' hiddenGradNorms). */
  norms: boolean;
  /** A training pass with the dropout masks in `masks`. */
  dropout: boolean;
};

/**
 * One step of a truncated-BPTT sequence split across the pool (threads/tbptt-pool.ts), the worker keeping its rows'
 * state and kept history in its replica from message to message (tbptt-rows.ts). In this order: settle the last
 * window, begin a new sequence, load steps [tx, tx + n) of x (and of per-step labels y), train the window. Then the
 * carried state goes to stateOut. x holds (B, T, F) of the call's chunk and y its labels, written before the call's
 * first message.
 */
export type WindowMessage = {
  type: "window"; B: number; T: number; loss: LossName | null;
  /** New buffers to bind first (the first message, or after they grew), else null. */
  buffers: SharedBuffers | null;
  /** The last window's fate, deferred to this message: 0 none pending, 1 it stood (keep its history), 2 dropped (onNonFinite "skip"). */
  settle: 0 | 1 | 2;
  /**
   * Start a new sequence of windows of k1 steps, gradients reaching back k2: zero state, no history; with `masks`, its
   * dropout masks are this worker's rows in `masks` (drawn for the whole batch on the main thread), kept for the sequence.
   */
  begin: boolean; k1: number; k2: number; masks: boolean;
  tx: number; n: number;
  /** Train the open window after loading: forward, loss (into result[0]; the output rows it counted into result[3]), backward (gradients into grads). */
  run: boolean;
  /** A training window: dropout's masks apply. */
  dropping: boolean;
  /** Count accuracy hits into result[1]. */
  accuracy: boolean;
  /** onWindow looks: dL/dx of the reached steps (reach, B, F) into dx, dL/d(state) into stateGrads, ‖dL/dh_t‖² per layer (cap) into norms. */
  study: boolean;
};

export type Message = RunMessage | WindowMessage | { type: "fault"; kind: Fault };

/** Sizes (in elements) every buffer needs for Bw rows and T steps. */
export function bufferSizes(
  layers: readonly ReplicaLayer[], Bw: number, T: number,
): Record<Exclude<keyof SharedBuffers, "params" | "paramsAt" | "grads" | "gradsAt">, number> {
  const rnns = recurrentCells(layers);
  const states = stateLayout(layers).reduce((s, l) => s + l.count * l.units, 0); // Σ (states × H) over the recurrent layers
  const F = layers[0]!.kind === "embedding" ? 1 : layers[0]!.inputDim, D = layers[layers.length - 1]!.units; // an Embedding reads one id per step
  // The output is per step when every recurrent layer returns sequences (a Dense keeps what it is given).
  const rows = rnns.every((l) => l.cell.returnSequences) ? T * Bw : Bw;
  const sumH = rnns.reduce((s, l) => s + l.dirs * l.cell.units, 0); // a two-way layer's hidden rows hold both directions
  return {
    x: Bw * T * F,
    y: rows * D,
    stateIn: Bw * states,
    stateOut: Bw * states,
    out: rows * D,
    dx: T * Bw * F,
    stateGrads: Bw * states,
    hseq: T * Bw * sumH,
    norms: rnns.length * T,
    masks: rnns.reduce((s, { cell, dirs }) => s + dirs * Bw * ((cell.dropout > 0 ? cell.inputDim : 0) + (cell.recurrentDropout > 0 ? cell.units : 0)), 0),
  };
}

/** The recurrent layers' cells and directions, bottom to top. */
function recurrentCells(layers: readonly ReplicaLayer[]): { cell: ReplicaCell; dirs: number }[] {
  return layers.flatMap((l) => (l.kind === "lstm" || l.kind === "gru" ? [{ cell: l, dirs: 1 }] : l.kind === "bidirectional" ? [{ cell: l.layer, dirs: 2 }] : []));
}

/**
 * Views of a worker's `masks` buffer as per-layer dropout masks for Bw rows, laid out as EngineCore.drawMaskRows
 * lays a batch's: per recurrent layer x (dirs·Bw, I) if it has dropout, then h (dirs·Bw, H) if it has recurrent
 * dropout (bufferSizes counts the same).
 */
export function maskViews(buf: Float64Array, layers: readonly ReplicaLayer[], Bw: number): DropoutMasks[] {
  let off = 0;
  const view = (n: number): Float64Array => buf.subarray(off, (off += n));
  return recurrentCells(layers).map(({ cell, dirs }) => ({
    x: cell.dropout > 0 ? view(dirs * Bw * cell.inputDim) : null,
    h: cell.recurrentDropout > 0 ? view(dirs * Bw * cell.units) : null,
  }));
}

/** Per recurrent layer, bottom to top: its units and how many states it has (an LSTM's h and c: 2). */
export function stateLayout(layers: readonly ReplicaLayer[]): { units: number; count: number }[] {
  const count = (c: ReplicaCell): number => (c.kind === "lstm" ? 2 : 1);
  return layers.flatMap((l) => (
    l.kind === "lstm" || l.kind === "gru" ? [{ units: l.units, count: count(l) }]
      : l.kind === "bidirectional" ? [{ units: l.layer.units, count: 2 * count(l.layer) }] : []
  ));
}

/**
 * Views of a state buffer (Bw·Σ count·H) as per-layer state sets, each state (Bw, H): a layer's states follow each
 * other (an LSTM's h then c), the layers bottom to top.
 */
export function stateViews(buf: FloatArray, layout: readonly { units: number; count: number }[], Bw: number): FloatArray[][] {
  let off = 0;
  return layout.map(({ units, count }) => {
    const n = Bw * units, v: FloatArray[] = [];
    for (let s = 0; s < count; s++, off += n) v.push(buf.subarray(off, off + n));
    return v;
  });
}

/** A typed array of the dtype over a SharedArrayBuffer: from byte `at`, n values (default: to the end). */
export function sharedArray(dtype: DType, buf: SharedArrayBuffer, at = 0, n?: number): FloatArray {
  return dtype === "float32" ? new Float32Array(buf, at, n) : new Float64Array(buf, at, n);
}

/** A SharedArrayBuffer for n elements of the dtype (at least one byte: a zero-length one is legal but useless). */
export function sharedBuffer(dtype: DType, n: number): SharedArrayBuffer {
  return new SharedArrayBuffer(Math.max(1, n) * (dtype === "float32" ? 4 : 8));
}

/** Writes an error's text into the message buffer and its length into the control words. */
export function writeMessage(ctrl: Int32Array, message: Uint8Array, text: string): void {
  const bytes = new TextEncoder().encode(text).subarray(0, MESSAGE_BYTES);
  message.set(bytes);
  ctrl[CTRL_MSG_LEN] = bytes.length;
}

export function readMessage(ctrl: Int32Array, message: Uint8Array): string {
  // TextDecoder refuses views of shared memory: copy out first.
  return new TextDecoder().decode(message.slice(0, Atomics.load(ctrl, CTRL_MSG_LEN)));
}

/**
 * Marks the worker as ended with `code` and wakes a main thread blocked on it. A worker calls this from
 * its host's exit hook (Node's process 'exit'), which runs inside the ending thread while the main thread
 * may be blocked in Atomics.wait, where the Worker object's own 'exit' event cannot reach it.
 */
export function markExited(ctrl: Int32Array, code: number): void {
  Atomics.store(ctrl, CTRL_EXIT_CODE, code);
  Atomics.store(ctrl, CTRL_EXITED, 1);
  Atomics.notify(ctrl, CTRL_DONE);
  Atomics.notify(ctrl, CTRL_READY);
}
