/**
 * fit's progress display, Keras-like, written to a sink rather than to a process: the portable core has no
 * terminal of its own. Where output goes with `verbose: 1`:
 * - `fit(…, { log })`: one line per epoch through the user's function (a page, a worker, a logger);
 * - otherwise the terminal registered by `longshort/node` (process.stdout): a live bar when it is a TTY,
 *   one line per epoch when it is not;
 * - otherwise (a browser, or Node without `longshort/node`) nowhere.
 */
import type { Logs } from "./callbacks.js";

/** Where progress text goes. `live`: the sink is a terminal that understands \r and ANSI line erase. */
export interface ProgressSink {
  write(text: string): void;
  readonly live: boolean;
}

let terminal: ProgressSink | null = null;

/** Sets the terminal that `verbose: 1` writes to when fit gets no `log` (longshort/node sets process.stdout). */
export function setTerminal(sink: ProgressSink | null): void {
  terminal = sink;
}

/** The sink for one fit: lines through `log`, else the terminal, else none. */
export function progressSink(verbose: 0 | 1, log: ((line: string) => void) | undefined): ProgressSink | null {
  if (verbose === 0) return null;
  if (log) return { write: (text) => log(text.replace(/\n$/, "")), live: false };
  return terminal;
}

/** Keras-like progress: a live bar on a live sink, one line per epoch otherwise. */
export class ProgressBar {
  private epoch = 0;
  private start = 0;
  constructor(
    private readonly sink: ProgressSink,
    private readonly epochs: number,
    private readonly batches: number,
    private readonly accuracy: boolean,
  ) {}

  startEpoch(epoch: number): void {
    this.epoch = epoch;
    this.start = performance.now();
    if (this.sink.live) this.sink.write(`Epoch ${epoch + 1}/${this.epochs}\n`);
  }

  batch(done: number, loss: number, acc: number): void {
    if (!this.sink.live) return;
    const width = 30, filled = Math.round((done / this.batches) * width);
    const bar = "=".repeat(Math.max(0, filled - 1)) + (filled > 0 ? (done === this.batches ? "=" : ">") : "") + ".".repeat(width - filled);
    const metrics = `loss: ${loss.toFixed(4)}` + (this.accuracy ? ` - accuracy: ${acc.toFixed(4)}` : "");
    this.sink.write(`\r${String(done).padStart(String(this.batches).length)}/${this.batches} [${bar}] - ${metrics}`);
  }

  endEpoch(logs: Logs): void {
    const ms = performance.now() - this.start;
    const parts = [`${(ms / 1000).toFixed(2)}s`, `loss: ${logs.loss!.toFixed(4)}`];
    for (const key of ["accuracy", "mae", "mse", "valLoss", "valAccuracy", "valMae", "valMse"] as const) {
      const v = logs[key];
      if (v !== undefined) parts.push(`${key}: ${v.toFixed(4)}`);
    }
    if (this.sink.live) {
      const n = this.batches;
      this.sink.write(`\r\x1b[2K${n}/${n} [${"=".repeat(30)}] - ${parts.join(" - ")}\n`);
    } else {
      this.sink.write(`Epoch ${this.epoch + 1}/${this.epochs} - ${parts.join(" - ")}\n`);
    }
  }
}
