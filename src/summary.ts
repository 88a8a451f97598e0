/**
 * `model.summary()`: the layers, their output shapes and parameter counts, in the table Keras 2 and TensorFlow.js
 * print (plain text, so it reads the same in a terminal, a log file and a browser console).
 *
 * Output shapes are Keras's tuples: `None` for the batch (or the fixed batch size of a stateful model) and for the
 * timesteps, which a model takes any number of: `(None, None, 64)` for a sequence of 64 features per step,
 * `(None, 10)` for one vector per row.
 */
import type { Engine } from "./engine.js";
import type { Masking } from "./layers/masking.js";
import { ValueError, checkKeys, fmtValue } from "./errors.js";

export interface SummaryOptions {
  /** Called with each line (default: console.log). */
  printFn?: (line: string) => void;
  /** Width of the table in characters (default 65, as Keras 2 and tfjs; wider when a name or shape needs it). */
  lineLength?: number;
}

/** The display name of a layer: "lstm_0 (LSTM)", "bidirectional_0 (Bidirectional(GRU))". */
function title(name: string, kind: string, inner?: string): string {
  const type: Record<string, string> = { lstm: "LSTM", gru: "GRU", dense: "Dense", embedding: "Embedding", bidirectional: "Bidirectional", masking: "Masking" };
  return `${name} (${type[kind] ?? kind}${inner ? `(${type[inner] ?? inner})` : ""})`;
}

/** Keras's shape tuple: None for unknown sizes. */
function tuple(dims: (number | null)[]): string {
  return `(${dims.map((d) => (d === null ? "None" : String(d))).join(", ")})`;
}

/** Columns of `cells`, each padded to its width. */
function row(cells: string[], widths: number[]): string {
  return cells.map((c, i) => c.padEnd(widths[i]!)).join("").trimEnd();
}

/**
 * The summary's lines for an engine (and the Masking layer in front of it, if any). Layers are named as the
 * weights are ("lstm_0", counted per kind); the first layer of an unbuilt model (no inputDim yet) shows "?" for its
 * parameters.
 */
export function summaryLines(e: Engine, masking: Masking | null, options: unknown = {}): { lines: string[]; printFn: (line: string) => void } {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ValueError(`summary options: expected an object like { printFn, lineLength }, got ${fmtValue(options)}`);
  }
  checkKeys("summary", options, ["printFn", "lineLength"]);
  const o = options as SummaryOptions;
  if (o.printFn !== undefined && typeof o.printFn !== "function") throw new ValueError(`summary printFn: expected a function, got ${fmtValue(o.printFn)}`);
  const L = o.lineLength ?? 65;
  if (typeof L !== "number" || !Number.isInteger(L) || L < 40 || L > 400) {
    throw new ValueError(`summary lineLength: expected an integer in [40, 400], got ${fmtValue(L)}`);
  }
  const batch = e.stateful && e.batchSize !== undefined ? e.batchSize : null;
  const body: string[][] = [];
  let total = 0, unbuilt = false;
  const count = new Map<string, number>();
  if (masking) body.push([title("masking_0", "masking"), tuple([batch, null, e.inputDim ?? null]), "0"]);
  e.layers.forEach((l, i) => {
    const k = count.get(l.kind) ?? 0;
    count.set(l.kind, k + 1);
    // A layer above the first reads the one below it; only the first layer waits for the data to know its inputDim.
    const inputDim = l.inputDim ?? (i > 0 ? e.layers[i - 1]!.units : undefined);
    const params = inputDim === undefined ? null : l.paramCount(inputDim);
    if (params === null) unbuilt = true;
    else total += params;
    const sequence = e.flows[i] === "sequence";
    const inner = l.kind === "bidirectional" ? (l as unknown as { forwardLayer: { kind: string } }).forwardLayer.kind : undefined;
    body.push([title(`${l.kind}_${k}`, l.kind, inner), tuple(sequence ? [batch, null, l.units] : [batch, l.units]), params === null ? "? (unbuilt)" : params.toLocaleString("en-US")]);
  });
  // Keras 2's and tfjs's proportions (0.45, 0.85 of the line), each column at least as wide as what it holds.
  const head = ["Layer (type)", "Output Shape", "Param #"];
  const widths = [Math.round(L * 0.45), Math.round(L * 0.4), 0].map((w, c) => Math.max(w, ...[head, ...body].map((r) => r[c]!.length + 1)));
  widths[2] = Math.max(L - widths[0]! - widths[1]!, ...[head, ...body].map((r) => r[2]!.length));
  const W = widths[0]! + widths[1]! + widths[2]!;
  const lines = ["_".repeat(W), row(head, widths), "=".repeat(W)];
  body.forEach((cells, i) => {
    lines.push(row(cells, widths));
    lines.push(i === body.length - 1 ? "=".repeat(W) : "_".repeat(W));
  });
  const totalText = unbuilt
    ? `${total.toLocaleString("en-US")} + the first layer's, unbuilt (its inputDim comes with the first call, or new LSTM({ inputDim }))`
    : total.toLocaleString("en-US");
  lines.push(`Total params: ${totalText}`, `Trainable params: ${totalText}`, "Non-trainable params: 0", "_".repeat(W));
  return { lines, printFn: o.printFn ?? ((line: string) => console.log(line)) };
}
