/**
 * The playground page: reads the form, talks to the trainer (a Web Worker, or the page's own thread when
 * no worker can start, e.g. from file://), and redraws the plots after every epoch. No framework.
 * `window.playground.run(settings)` is what the Start button calls; tests call it too.
 */
import { runPlots } from "./plots.js";
import { checkSettings, type EpochReport, type Settings } from "./session.js";
import { Trainer, type Final, type FromTrainer, type ToTrainer } from "./worker.js";

interface Backend { send(msg: ToTrainer, transfer?: Transferable[]): void; kind: "worker" | "main thread" }

type Listener = (msg: FromTrainer) => void;
const listeners = new Set<Listener>();
const dispatch = (msg: FromTrainer): void => { for (const l of [...listeners]) l(msg); };

/** The trainer in a worker started from this very script, or on this thread if that fails. */
function startBackend(scriptUrl: string): Promise<Backend> {
  const inPage = (): Backend => {
    const trainer = new Trainer((msg) => queueMicrotask(() => dispatch(msg)), () => new Promise((r) => setTimeout(r, 0)));
    return { kind: "main thread", send: (msg) => { void trainer.handle(msg); } };
  };
  return new Promise((resolve) => {
    let worker: Worker;
    try {
      worker = new Worker(scriptUrl);
    } catch {
      resolve(inPage()); // e.g. file:// pages in Chromium may not start workers
      return;
    }
    let ready = false;
    worker.onmessage = (e: MessageEvent<FromTrainer>) => {
      if (e.data.type === "ready" && !ready) {
        ready = true;
        resolve({ kind: "worker", send: (msg, transfer) => worker.postMessage(msg, transfer ?? []) });
      } else dispatch(e.data);
    };
    worker.onerror = (e) => {
      if (!ready) { e.preventDefault(); worker.terminate(); resolve(inPage()); }
    };
  });
}

export interface Playground {
  /** Trains with these settings (the form's for the rest), drawing as it goes; resolves with the last epoch's figures. */
  run(settings?: Partial<Settings> & { continueTraining?: boolean }): Promise<Final>;
  stop(): void;
  /** The form's settings. */
  settings(): Settings;
  /** The epochs of the current or last run. */
  reports: EpochReport[];
  /** "worker" or "main thread". */
  backend(): Promise<string>;
}

export function startPage(scriptUrl: string): Playground {
  const $ = <E extends HTMLElement>(id: string): E => document.getElementById(id) as E;
  const form = $<HTMLFormElement>("settings"), status = $<HTMLParagraphElement>("status");
  const startBtn = $<HTMLButtonElement>("start"), stopBtn = $<HTMLButtonElement>("stop");
  const downloadBtn = $<HTMLButtonElement>("download"), loadInput = $<HTMLInputElement>("load");
  const tbptt = $<HTMLFieldSetElement>("tbptt"), modeSel = $<HTMLSelectElement>("mode");
  const backend = startBackend(scriptUrl);
  let nextId = 1, busy = false;
  const reports: EpochReport[] = [];

  const field = (name: string): HTMLInputElement => form.elements.namedItem(name) as HTMLInputElement;
  const num = (name: string): number => Number(field(name).value);
  const readForm = (): Settings => checkSettings({
    mode: modeSel.value as Settings["mode"], units: num("units"), learningRate: num("learningRate"), seed: num("seed"),
    epochs: num("epochs"), batchSize: num("batchSize"), nTrain: num("nTrain"), k1: num("k1"), k2: num("k2"),
  });
  const writeForm = (s: Partial<Settings>): void => {
    for (const [k, v] of Object.entries(s)) {
      if (k === "mode") modeSel.value = String(v);
      else if (form.elements.namedItem(k) instanceof HTMLInputElement) field(k).value = String(v);
    }
    tbptt.disabled = modeSel.value !== "tbptt";
  };
  modeSel.addEventListener("change", () => { tbptt.disabled = modeSel.value !== "tbptt"; });
  tbptt.disabled = modeSel.value !== "tbptt";

  const draw = (rs: EpochReport[]): void => {
    const p = runPlots(rs);
    for (const k of ["loss", "accuracy", "gradients", "cell"] as const) $(`plot-${k}`).innerHTML = p[k];
  };
  draw([]);
  const setBusy = (b: boolean): void => {
    busy = b;
    startBtn.disabled = b; downloadBtn.disabled = b; loadInput.disabled = b; stopBtn.disabled = !b;
  };

  /** Sends one request and resolves with the first answer of its id that `accept` takes (errors reject). */
  const request = async <T>(make: (id: number) => ToTrainer, accept: (msg: FromTrainer) => T | undefined, onOther?: Listener, transfer?: Transferable[]): Promise<T> => {
    const b = await backend, id = nextId++;
    return new Promise<T>((resolve, reject) => {
      const l: Listener = (msg) => {
        if (!("id" in msg) || msg.id !== id) return;
        if (msg.type === "error") { listeners.delete(l); reject(new Error(msg.message)); return; }
        const v = accept(msg);
        if (v !== undefined) { listeners.delete(l); resolve(v); } else onOther?.(msg);
      };
      listeners.add(l);
      b.send(make(id), transfer);
    });
  };

  const pg: Playground = {
    reports,
    settings: readForm,
    backend: async () => (await backend).kind,
    stop() { void backend.then((b) => b.send({ type: "stop" })); status.textContent = "Stopping…"; },
    async run(settings = {}) {
      if (busy) throw new Error("a run is in progress");
      const { continueTraining = field("continueTraining").checked, ...rest } = settings;
      writeForm(rest);
      const s = readForm();
      reports.length = 0;
      draw(reports);
      setBusy(true);
      status.textContent = `Training: ${s.mode}, LSTM(${s.units}), ${s.epochs} epochs…`;
      try {
        const final = await request((id) => ({ type: "run", id, settings: s, continueTraining }), (m) => (m.type === "done" ? m.final : undefined), (m) => {
          if (m.type !== "epoch") return;
          reports.push(m.report);
          draw(reports);
          const r = m.report;
          status.textContent = `Epoch ${r.epoch + 1}/${s.epochs}: loss ${r.loss.toFixed(4)}, accuracy ${r.accuracy.toFixed(3)}, test loss ${r.testLoss.toFixed(4)}, test accuracy ${r.testAccuracy.toFixed(3)} (${r.seconds.toFixed(2)} s)`;
        });
        status.textContent = `${final.stopped ? "Stopped" : "Done"} after ${final.epochs} epoch${final.epochs === 1 ? "" : "s"} in ${final.seconds.toFixed(1)} s: test accuracy ${final.testAccuracy.toFixed(3)}, test loss ${final.testLoss.toFixed(4)}.`;
        return final;
      } catch (e) {
        status.textContent = `Error: ${(e as Error).message}`;
        throw e;
      } finally {
        setBusy(false);
      }
    },
  };

  form.addEventListener("submit", (e) => {
    e.preventDefault();
    pg.run().catch(() => { /* shown in the status line */ });
  });
  stopBtn.addEventListener("click", () => pg.stop());
  downloadBtn.addEventListener("click", () => {
    request((id) => ({ type: "download", id }), (m) => (m.type === "weights" ? m.bytes : undefined)).then((bytes) => {
      const url = URL.createObjectURL(new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `longshort-first-element-${modeSel.value}.safetensors`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 1000);
      status.textContent = `Downloaded ${bytes.length} bytes of weights (safetensors).`;
    }, (e: Error) => { status.textContent = `Error: ${e.message}`; });
  });
  loadInput.addEventListener("change", async () => {
    const file = loadInput.files?.[0];
    if (!file) return;
    try {
      const bytes = new Uint8Array(await file.arrayBuffer());
      const got = await request((id) => ({ type: "load", id, bytes, settings: readForm() }), (m) => (m.type === "loaded" ? m : undefined), undefined, [bytes.buffer]);
      writeForm({ units: got.units });
      reports.length = 0;
      draw([got.report]);
      status.textContent = `Loaded ${file.name}: LSTM(${got.units}), test accuracy ${got.report.testAccuracy.toFixed(3)} in mode ${modeSel.value}. Tick "continue from current weights" to train on from them.`;
    } catch (e) {
      status.textContent = `Error: ${(e as Error).message}`;
    } finally {
      loadInput.value = "";
    }
  });
  return pg;
}
