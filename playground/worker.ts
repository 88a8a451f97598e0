/**
 * The playground's trainer: holds the model, runs sessions and answers the page's messages. In a Web Worker
 * (the usual case, so the page stays responsive) it is driven by postMessage; when no worker can start (a
 * page opened from file:// in Chromium) the page drives the same class directly on its own thread.
 */
import { fromSafetensors, toSafetensors, type Sequential } from "../src/index.js";
import {
  checkSettings, cellStates, evaluate, gradientNorms, makeData, makeModel, runSession, type EpochReport, type Settings,
} from "./session.js";

export type ToTrainer =
  | { type: "run"; id: number; settings: Partial<Settings>; continueTraining?: boolean }
  | { type: "stop" }
  | { type: "download"; id: number }
  | { type: "load"; id: number; bytes: Uint8Array; settings: Partial<Settings> };

export interface Final {
  epochs: number;
  stopped: boolean;
  loss: number;
  accuracy: number;
  testLoss: number;
  testAccuracy: number;
  seconds: number;
}

export type FromTrainer =
  | { type: "ready" }
  | { type: "epoch"; id: number; report: EpochReport }
  | { type: "done"; id: number; final: Final }
  | { type: "weights"; id: number; bytes: Uint8Array }
  | { type: "loaded"; id: number; units: number; report: EpochReport }
  | { type: "error"; id: number; message: string };

/** A fresh model for `s` with `from`'s weights (same units), or null when there is nothing to continue from. */
function carry(s: Settings, from: Sequential | null): Sequential | null {
  if (!from) return null;
  const m = makeModel(s, s.mode === "stateful", Math.min(s.batchSize, s.nTrain));
  m.setWeights(from.getWeights());
  return m;
}

export class Trainer {
  private model: Sequential | null = null;
  private stopping = false;
  private running = false;

  constructor(private readonly post: (msg: FromTrainer) => void, private readonly pause: () => Promise<void>) {}

  async handle(msg: ToTrainer): Promise<void> {
    if (msg.type === "stop") { this.stopping = true; return; }
    try {
      if (msg.type === "run") await this.run(msg.id, msg.settings, msg.continueTraining ?? false);
      else if (msg.type === "download") {
        if (!this.model) throw new Error("no weights yet: train or load a model first");
        this.post({ type: "weights", id: msg.id, bytes: toSafetensors(this.model) });
      } else if (msg.type === "load") this.load(msg.id, msg.bytes, msg.settings);
    } catch (e) {
      this.post({ type: "error", id: msg.id, message: e instanceof Error ? `${e.name}: ${e.message}` : String(e) });
    }
  }

  private async run(id: number, settings: Partial<Settings>, continueTraining: boolean): Promise<void> {
    if (this.running) throw new Error("a run is in progress: stop it first");
    const s = checkSettings(settings);
    this.running = true;
    this.stopping = false;
    const t0 = performance.now();
    try {
      const start = continueTraining ? carry(s, this.model) : null;
      const r = await runSession(s, {
        onEpoch: (report) => this.post({ type: "epoch", id, report }),
        shouldStop: () => this.stopping,
        pause: this.pause,
      }, start ?? undefined);
      this.model = r.model;
      const last = r.reports.at(-1);
      this.post({
        type: "done", id, final: {
          epochs: r.reports.length, stopped: r.stopped, loss: last?.loss ?? NaN, accuracy: last?.accuracy ?? NaN,
          testLoss: last?.testLoss ?? NaN, testAccuracy: last?.testAccuracy ?? NaN, seconds: (performance.now() - t0) / 1000,
        },
      });
    } finally {
      this.running = false;
    }
  }

  /** Weights from a safetensors file of toSafetensors (its metadata gives the units), evaluated on the test set. */
  private load(id: number, bytes: Uint8Array, settings: Partial<Settings>): void {
    const loaded = fromSafetensors(bytes);
    const shapes = loaded.getWeights().map((w) => w.shape);
    if (shapes.length !== 5 || shapes[0]!.join() !== `1,${4 * shapes[1]![0]!}` || shapes[3]!.join() !== `${shapes[1]![0]!},1`) {
      throw new Error(`expected the weights of LSTM(units, inputDim 1) → Dense(1), got shapes ${shapes.map((s) => `[${s.join(", ")}]`).join(" ")}`);
    }
    const units = shapes[1]![0]!;
    const s = checkSettings({ ...settings, units });
    const m = makeModel(s, s.mode === "stateful", Math.min(s.batchSize, s.nTrain));
    m.setWeights(loaded.getWeights());
    this.model = m;
    const test = makeData(s.nTest, `test/${s.seed}`).first;
    const ev = evaluate(s, m, test);
    const probe = Array.from({ length: Math.min(32, s.nTest) }, (_, i) => i);
    this.post({
      type: "loaded", id, units, report: {
        epoch: 0, loss: NaN, accuracy: NaN, testLoss: ev.loss, testAccuracy: ev.accuracy,
        gradNorms: gradientNorms(s, m, test, probe), cell: cellStates(s, m), seconds: 0,
      },
    });
  }
}

/** The worker side: a Trainer on postMessage. */
export function startWorker(scope: { postMessage(msg: unknown): void; onmessage: ((e: { data: ToTrainer }) => void) | null }): void {
  // A macrotask, so that a "stop" message queued meanwhile is handled between batches.
  const pause = (): Promise<void> => new Promise((resolve) => setTimeout(resolve, 0));
  const trainer = new Trainer((msg) => scope.postMessage(msg), pause);
  scope.onmessage = (e) => { void trainer.handle(e.data); };
  scope.postMessage({ type: "ready" } satisfies FromTrainer);
}
