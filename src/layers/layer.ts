/**
 * The layer protocol: what every layer gives the engine, so that the engine is one driver over a list of
 * layers and knows no architecture (tfjs-layers' RNN driver over its cells is the model for the idea).
 *
 * A layer has
 * - weights: shapes and names in getWeights order, bound as views of the model's one flat parameter buffer
 *   and its gradient twin (llm.c's layout), so the optimizer stays one loop;
 * - a flow rule: what it takes and gives ("sequence" [B, T, ·] or "vector" [B, ·]); the model's order rules
 *   come from these, so "an LSTM needs a sequence" is the LSTM's own rule, not a fixed pattern of the model;
 * - a workspace per (B, capacity) and input flow, reused for every call of that shape or smaller;
 * - `forward` over steps [t0, t1) and `backward` over [tb, t1) that accumulates into its gradients, both on
 *   time-major streams, so the truncated-BPTT unroller can keep history in front of a window;
 * - `shiftHistory`, which moves kept steps to the front of its step-indexed buffers.
 * Recurrent layers (`RecurrentLayer`) also have state slots, named per layer (an LSTM's h and c, a GRU's h), which
 * the engine keeps per row between passes, dropout masks drawn per batch, and see the mask.
 *
 * Streams. Layers hand each other buffers they own, described by a `Stream` (no copies between layers):
 * - a sequence: step t's (B, dim) rows at off + t·B·dim (an LSTM's h_t lives at slot t + 1, so its output
 *   stream has off = B·H);
 * - a vector: one (B, dim) block at off.
 * A gradient arriving from above is a `GradStream`: for a sequence, step t ≥ from at off + (t − from)·B·dim
 * (steps before `from` get nothing from above; in truncated BPTT the head's gradient starts at the window
 * while the recurrence reaches further back); for a vector, one (B, dim) block at off.
 *
 * Legend: B batch, T timesteps, cap the workspace's steps, dim a stream's features.
 */
import type { DType, FloatArray } from "../tensor/tensor.js";
import type { Rng } from "../init.js";

/** What flows between layers: a sequence [B, T, dim] (time-major inside) or one vector per row [B, dim]. */
export type Flow = "sequence" | "vector";

/** A layer's output (or the model's input) as a buffer and an offset; see the file's header. */
export interface Stream {
  buf: FloatArray;
  off: number;
}

/** A gradient from above; see the file's header. */
export interface GradStream {
  buf: FloatArray;
  off: number;
  /** A sequence's first step that has a gradient. */
  from: number;
}

/** Where a recurrent layer's backward writes its per-step state gradients: dL/dh_t, and dL/dc_t for a layer with a c (else null). */
export interface StudyBuffers {
  dh: FloatArray; // (cap, B, H)
  dc: FloatArray | null; // (cap, B, H)
}

/**
 * What one forward or backward call is given beyond its buffers: one object per engine, its fields set
 * before each layer's call (no allocation per pass).
 */
export interface PassContext {
  /** (cap, B): 0 where a step is masked, when a mask reaches this layer's input; else null. */
  valid: Uint8Array | null;
  /** Backward of a recurrent layer: ‖dL/dh_t‖ over the batch into dhNorms[t], when asked. */
  dhNorms: Float64Array | null;
  /** Backward of a recurrent layer: dL/dh_t (and an LSTM's dL/dc_t), (cap, B, H) each, when asked. */
  study: StudyBuffers | null;
  /** Backward: false when nobody reads the gradient w.r.t. the layer's input (the bottom layer of a training step). */
  needDx: boolean;
  /** Backward of the top layer: the loss already wrote dL/d(logits) (sigmoid + binary, softmax + categorical). */
  logitGrad: boolean;
  /**
   * Forward: no backward follows this pass (predict, evaluate, a stream's step), so a layer may keep only what its
   * next step, the layer above and the states need (its state slots and output as always), not the activations a
   * backward reads. The results are the same bits either way.
   */
  infer: boolean;
}

/**
 * One layer as the engine drives it. `W` is the layer's workspace. Layers validate their options when they
 * are made; the engine hands them checked data and never validates.
 */
export interface EngineLayer<W = unknown> {
  /** "lstm", "dense", …: the name in weight names ("lstm_0/kernel") and configs. */
  readonly kind: string;
  /** Features of the layer's output. */
  readonly units: number;
  /** Features of its input, set when the model is built. */
  inputDim: number | undefined;
  /** The model this layer belongs to (a layer's weights live in one model's buffers). */
  owner: object | null;
  /** True for layers with state slots (the engine's `rnns`). */
  readonly recurrent: boolean;
  /** True for a layer that reads the model's integer ids (one per step) rather than features: the first layer only. */
  readonly readsIds?: boolean;
  /** The flow this layer gives for `input`, or the rule it breaks, as a sentence naming the layer. */
  flowFor(input: Flow): Flow | string;
  paramCount(inputDim?: number): number;
  weightShapes(inputDim?: number): number[][];
  weightNames(): string[];
  /** Points the weights and gradients at slices of the flat buffers from `off`; returns the next offset. */
  bind(params: FloatArray, grads: FloatArray, off: number): number;
  initialize(rng: Rng): void;
  /** Buffers for B rows and at least `cap` steps on `input`: `current` when it fits, else new ones. */
  workspace(dtype: DType, B: number, cap: number, input: Flow, masked: boolean, current: W | null): W;
  /** Forward over steps [t0, t1) of `x`; sets `out` to where the output now is. */
  forward(ws: W, x: Stream, t0: number, t1: number, pass: PassContext, out: Stream): void;
  /**
   * Backward over steps [tb, t1) (a vector layer: its one block) from `dOut`, accumulating into the layer's
   * gradients; sets `dx` to the gradient w.r.t. the input (when `pass.needDx`). May overwrite dOut.
   */
  backward(ws: W, x: Stream, tb: number, t1: number, dOut: GradStream, pass: PassContext, dx: GradStream): void;
  /** Moves `keep` steps from step `drop` on to the front of the step-indexed buffers (truncated BPTT). */
  shiftHistory(ws: W, drop: number, keep: number): void;
}

/**
 * A recurrent layer's workspace as the engine sees it: its state slots, the gradients w.r.t. the first of them, and
 * dropout's masks. Everything else in it is the layer's own.
 */
export interface RecurrentWorkspace {
  B: number;
  cap: number;
  /** Per state (the layer's `stateNames` order), (cap + 1, B, H): slot t is the state before step t, slot 0 the initial one. */
  readonly states: readonly FloatArray[];
  /** Per state, (B, H): after a backward over [tb, t1), dL/d(the state at slot tb). */
  readonly dStates: readonly FloatArray[];
  /**
   * Dropout's masks, per batch row, scaled: 0 or 1/(1 − p); x (directions·B, I), h (directions·B, H); null when the
   * layer has none.
   */
  xMask: Float64Array | null;
  hMask: Float64Array | null;
  /** Whether the masks apply to the pass in progress (a training pass of a layer with dropout). */
  dropping: boolean;
}

/** A layer with state slots: the engine keeps its states between passes (a stateful layer carries them). */
export interface RecurrentLayer<W extends RecurrentWorkspace = RecurrentWorkspace> extends EngineLayer<W> {
  readonly recurrent: true;
  /**
   * The names of its states, each (B, stateUnits): ["h", "c"] for an LSTM, ["h"] for a GRU, a Bidirectional's
   * forward direction's then its backward's (["h", "c", "hBackward", "cBackward"]). The first is h.
   */
  readonly stateNames: readonly string[];
  /** Features of each state: the units H of a cell (a Bidirectional's output may have 2H). */
  readonly stateUnits: number;
  /**
   * 1, or 2 for a layer that reads the sequence both ways (its states and dropout masks then lay out the forward
   * direction's first, and the second direction reads the steps in reverse).
   */
  readonly directions: 1 | 2;
  readonly stateful: boolean;
  batchSize: number | undefined;
  readonly dropout: number;
  readonly recurrentDropout: number;
  readonly goBackwards: boolean;
}

/**
 * The flows of a stack fed a sequence: what each layer gives, or the first rule broken as
 * { at: the layer's index, why }. A model needs at least one recurrent layer.
 */
export function planFlows(layers: readonly EngineLayer[]): Flow[] | { at: number; why: string } {
  const flows: Flow[] = [];
  let flow: Flow = "sequence";
  for (let i = 0; i < layers.length; i++) {
    if (i > 0 && layers[i]!.readsIds) return { at: i, why: `an ${layers[i]!.kind === "embedding" ? "Embedding" : layers[i]!.kind} reads the model's ids and must be the first layer` };
    const f = layers[i]!.flowFor(flow);
    if (f !== "sequence" && f !== "vector") return { at: i, why: f };
    flows.push(f);
    flow = f;
  }
  if (!layers.some((l) => l.recurrent)) return { at: -1, why: "a model needs at least one recurrent layer (an LSTM)" };
  return flows;
}

/** Names in getWeights order for `layers`: "<kind>_<k>/<weight>", layers counted per kind ("lstm_0/kernel", "dense_1/bias"). */
export function weightNamesOf(layers: readonly { kind: string; weightNames(): string[] }[]): string[] {
  const names: string[] = [], count = new Map<string, number>();
  for (const l of layers) {
    const k = count.get(l.kind) ?? 0;
    count.set(l.kind, k + 1);
    for (const n of l.weightNames()) names.push(`${l.kind}_${k}/${n}`);
  }
  return names;
}
