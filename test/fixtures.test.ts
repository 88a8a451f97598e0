/**
 * Every golden fixture (PyTorch autograd, float64; test/fixtures/README.md) through the public API:
 * float64 to relative 1e-9 (absolute 1e-12 near zero), float32 to 1e-4; on both backends (the TypeScript
 * kernels, and the WebAssembly SIMD products of `backend: "wasm"`).
 */
import { describe, expect, it } from "vitest";
import { Sequential, LSTM, GRU, Bidirectional, Dense, Adam, Masking, Embedding, type DType } from "../src/index.js";
import { loadFixtures, expectClose } from "./helpers/fixtures.js";

const TOL: Record<DType, [number, number]> = { float64: [1e-9, 1e-12], float32: [1e-4, 1e-5] };

function headModel(cfg: any, dtype: DType, stateful: boolean, backend: "js" | "wasm"): Sequential {
  return new Sequential([
    new LSTM({ units: cfg.units, inputDim: cfg.inputDim, stateful, batchSize: stateful ? cfg.batchSize : undefined }),
    new Dense({ units: cfg.denseUnits, activation: cfg.activation }),
  ], { dtype, seed: 1, backend });
}

function keraWeights(w: any): number[][] | any[] {
  return [w.lstm.kernel, w.lstm.recurrentKernel, w.lstm.bias, w.dense.kernel, w.dense.bias];
}

for (const [dtype, backend] of [["float64", "js"], ["float32", "js"], ["float64", "wasm"], ["float32", "wasm"]] as [DType, "js" | "wasm"][]) {
  const [rtol, atol] = TOL[dtype];
  describe(`golden fixtures (${dtype}, backend ${backend})`, () => {
    for (const fx of loadFixtures("singleWindow")) {
      it(`${fx.file}: outputs, loss, every gradient, dx and dInitialState`, () => {
        const cfg = fx.config, ex = fx.expected;
        // A stateful model lets us start from the fixture's initial state through the public API.
        const model = headModel(cfg, dtype, true, backend);
        model.compile({ optimizer: "adam", loss: cfg.loss });
        model.setWeights(keraWeights(fx.weights));
        model.resetStates([{ h: fx.initialState.h, c: fx.initialState.c }]);
        const r = model.computeGradients(fx.x, fx.y);
        const tol = (n: string, a: unknown, e: unknown) => expectClose(`${fx.file} ${n}`, a, e, rtol, atol);
        tol("loss", r.loss, ex.loss);
        tol("output", r.outputs, ex.output);
        tol("hSeq", r.hiddenStates[0], ex.hSeq);
        const [st] = model.getStates();
        tol("hT", st!.h, ex.hT);
        tol("cT", st!.c, ex.cT);
        const names = ["kernel", "recurrentKernel", "bias", "dense kernel", "dense bias"];
        keraWeights(ex.grads).forEach((g: unknown, i: number) => tol(`grads ${names[i]}`, r.grads[i], g));
        tol("dx", r.inputGrad, ex.dx);
        tol("dInitialState.h", r.stateGrads[0]!.h, ex.dInitialState.h);
        tol("dInitialState.c", r.stateGrads[0]!.c, ex.dInitialState.c);
      });
    }

    for (const fx of loadFixtures("statefulWindows")) {
      it(`${fx.file}: windows carried by a stateful model`, () => {
        const cfg = fx.config;
        const model = headModel(cfg, dtype, true, backend);
        model.compile({ optimizer: "adam", loss: cfg.loss });
        model.setWeights(keraWeights(fx.weights));
        fx.windows.forEach((w: any, k: number) => {
          const r = model.computeGradients(w.x, w.y);
          const tol = (n: string, a: unknown, e: unknown) => expectClose(`${fx.file} window ${k} ${n}`, a, e, rtol, atol);
          tol("loss", r.loss, w.expected.loss);
          tol("output", r.outputs, w.expected.output);
          const [st] = model.getStates();
          tol("hT", st!.h, w.expected.hT);
          tol("cT", st!.c, w.expected.cT);
          keraWeights(w.expected.grads).forEach((g: unknown, i: number) => tol(`grads[${i}]`, r.grads[i], g));
        });
      });
    }

    for (const fx of loadFixtures("statefulWindows", "bidirectional")) {
      it(`${fx.file}: a stateful Bidirectional's windows (both directions carried: h, c, hBackward, cBackward), then Adam steps`, () => {
        const make = () => {
          const m = sequenceModel(fx, dtype, backend);
          m.setWeights(fx.weights);
          return m;
        };
        const model = make();
        model.compile({ optimizer: "adam", loss: fx.config.loss });
        expect(model.weightNames()).toEqual(fx.weightNames);
        fx.windows.forEach((w: any, k: number) => {
          const r = model.computeGradients(w.x, w.y);
          const tol = (n: string, a: unknown, e: unknown) => expectClose(`${fx.file} window ${k} ${n}`, a, e, rtol, atol);
          tol("loss", r.loss, w.expected.loss);
          tol("output", r.outputs, w.expected.output);
          const st = model.getStates();
          w.expected.states.forEach((e: Record<string, unknown>, i: number) => {
            expect(Object.keys(st[i]!).sort()).toEqual(Object.keys(e).sort());
            for (const nm of Object.keys(e)) tol(`states[${i}].${nm}`, (st[i] as unknown as Record<string, unknown>)[nm], e[nm]);
          });
          w.expected.grads.forEach((e: unknown, i: number) => tol(`grads[${i}] (${model.weightNames()[i]})`, r.grads[i], e));
        });
        const trained = make();
        trained.compile({ optimizer: new Adam({ learningRate: fx.adam.learningRate }), loss: fx.config.loss });
        const losses = [];
        for (let s = 0; s < fx.adam.steps; s++) losses.push(trained.trainOnBatch(fx.windows[s].x, fx.windows[s].y).loss);
        expectClose(`${fx.file} Adam losses`, losses, fx.adam.losses, rtol, atol);
        fx.adam.weights.forEach((e: unknown, i: number) => expectClose(`${fx.file} Adam weights[${i}]`, trained.getWeights()[i], e, rtol, atol));
      });
    }

    for (const fx of loadFixtures("statefulWindows", "gru")) {
      it(`${fx.file}: a stateful GRU's windows (torch.nn.GRU from the carried h), then Adam steps`, () => {
        const cfg = fx.config, w0 = fx.weights;
        const make = () => {
          const m = new Sequential([
            new GRU({ units: cfg.units, inputDim: cfg.inputDim, stateful: true, batchSize: cfg.batchSize }),
            new Dense({ units: cfg.denseUnits, activation: cfg.activation }),
          ], { dtype, seed: 1, backend });
          m.setWeights([w0.gru.kernel, w0.gru.recurrentKernel, w0.gru.bias, w0.dense.kernel, w0.dense.bias]);
          return m;
        };
        const model = make();
        model.compile({ optimizer: "adam", loss: cfg.loss });
        fx.windows.forEach((w: any, k: number) => {
          const r = model.computeGradients(w.x, w.y);
          const tol = (n: string, a: unknown, e: unknown) => expectClose(`${fx.file} window ${k} ${n}`, a, e, rtol, atol);
          tol("loss", r.loss, w.expected.loss);
          tol("output", r.outputs, w.expected.output);
          tol("hT", model.getStates()[0]!.h, w.expected.hT);
          w.expected.grads.forEach((e: unknown, i: number) => tol(`grads[${i}]`, r.grads[i], e)); // in getWeights order
        });
        // Keras-form Adam, window k at step k + 1, the state carried and the weights updated between windows.
        const trained = make();
        trained.compile({ optimizer: new Adam({ learningRate: fx.adam.learningRate }), loss: cfg.loss });
        const losses = [];
        for (let s = 0; s < fx.adam.steps; s++) losses.push(trained.trainOnBatch(fx.windows[s].x, fx.windows[s].y).loss);
        expectClose(`${fx.file} Adam losses`, losses, fx.adam.losses, rtol, atol);
        fx.adam.weights.forEach((e: unknown, i: number) => expectClose(`${fx.file} Adam weights[${i}]`, trained.getWeights()[i], e, rtol, atol));
      });
    }

    for (const fx of loadFixtures("adamSteps")) {
      it(`${fx.file}: ${fx.config.steps} Keras-form Adam steps, losses before each update and final weights`, () => {
        const cfg = fx.config;
        const model = headModel(cfg, dtype, false, backend);
        model.compile({ optimizer: new Adam({ learningRate: cfg.learningRate }), loss: cfg.loss });
        model.setWeights(keraWeights(fx.weights));
        const losses = [];
        for (let s = 0; s < cfg.steps; s++) losses.push(model.trainOnBatch(fx.x, fx.y).loss);
        expectClose(`${fx.file} losses`, losses, fx.expected.losses, rtol, atol);
        const ws = model.getWeights();
        keraWeights(fx.expected.weights).forEach((w: unknown, i: number) => expectClose(`${fx.file} weights[${i}]`, ws[i], w, rtol, atol));
      });
    }

    // The GRU's (cell "gru"): torch.nn.GRU for resetAfter true, tfjs for false (test/fixtures/README.md). Its dropout
    // follows our LSTM's convention, one x mask and one h mask shared by the gates; gru_dropout_pergate_* is Keras ≥ 3.8's
    // three recurrent masks, which longshort does not draw (README, "GRU"): it is not run here.
    const gruFixtures = loadFixtures("sequenceModel", "gru").filter((fx) => !fx.perGateMasks);
    // Bidirectional's (cell "bidirectional"): torch.nn.LSTM / GRU(bidirectional=True), Keras 3's masks (test/fixtures/README.md).
    const bidiFixtures = loadFixtures("sequenceModel", "bidirectional");
    it("the Bidirectional fixtures are all here", () => expect(bidiFixtures.length).toBe(10));
    it("the MAE and Huber fixtures are all here (δ 1 and 0.5)", () => {
      const files = loadFixtures("sequenceModel").filter((fx) => fx.file.startsWith("loss_"));
      expect(files.map((fx) => [fx.config.loss, fx.config.huberDelta ?? null])).toEqual([
        ["huber", 0.5], ["huber", 0.5], ["huber", 1], ["meanAbsoluteError", null], ["meanAbsoluteError", null],
      ]);
    });
    for (const fx of [...loadFixtures("sequenceModel"), ...gruFixtures, ...bidiFixtures]) {
      const adam = fx.adam ? `, ${fx.adam.steps} Adam steps` : "";
      it(`${fx.file}: stacked / per-step model, output, loss, grads${fx.expected.dx ? ", dx" : ""}${adam}`, () => {
        const model = sequenceModel(fx, dtype, backend);
        model.compile({ optimizer: "adam", loss: lossOf(fx.config) });
        model.setWeights(fx.weights);
        // Dropout: the masks the reference drew, handed to the next training pass.
        if (fx.masks) model.engine.nextMasks = dropoutMasks(fx);
        const r = model.computeGradients(fx.x, fx.y, fx.masks ? { training: true } : {});
        const tol = (n: string, a: unknown, e: unknown) => expectClose(`${fx.file} ${n}`, a, e, rtol, atol);
        tol("loss", r.loss, fx.expected.loss);
        tol("output", r.outputs, fx.expected.output);
        fx.expected.grads.forEach((g: unknown, i: number) => tol(`grads[${i}] (${model.weightNames()[i]})`, r.grads[i], g));
        // Ids (behind an Embedding) have no gradient: the fixture has no dx.
        if (fx.expected.dx) tol("dx", r.inputGrad, fx.expected.dx);
        if (fx.adam) {
          // Keras-form Adam on the same batch: the losses before each update, the weights after the last.
          const trained = sequenceModel(fx, dtype, backend);
          trained.compile({ optimizer: new Adam({ learningRate: fx.adam.learningRate }), loss: lossOf(fx.config) });
          trained.setWeights(fx.weights);
          const losses = [];
          for (let s = 0; s < fx.adam.steps; s++) {
            if (fx.masks) trained.engine.nextMasks = dropoutMasks(fx);
            losses.push(trained.trainOnBatch(fx.x, fx.y).loss);
          }
          tol("Adam losses", losses, fx.adam.losses);
          const ws = trained.getWeights();
          fx.adam.weights.forEach((w: unknown, i: number) => tol(`Adam weights[${i}] (${trained.weightNames()[i]})`, ws[i], w));
        }
      });
    }
  });
}

/** A fixture's loss for compile: its name, or Huber with the fixture's delta (loss_huber_* files). */
function lossOf(cfg: { loss: string; huberDelta?: number }): any {
  return cfg.huberDelta === undefined ? cfg.loss : { name: cfg.loss, delta: cfg.huberDelta };
}

/** The model of a sequenceModel fixture: its layers in order, behind Masking when it says maskValue. */
function sequenceModel(fx: any, dtype: DType, backend: "js" | "wasm"): Sequential {
  const cfg = fx.config;
  let dim = cfg.inputDim;
  const layers = cfg.layers.map((l: any) => {
    if (l.type === "embedding") {
      dim = l.outputDim;
      return new Embedding({ inputDim: l.inputDim, outputDim: l.outputDim, maskZero: l.maskZero ?? false });
    }
    if (l.type === "bidirectional") {
      const c = l.layer, o = {
        units: c.units, inputDim: dim, returnSequences: Boolean(c.returnSequences), useBias: c.useBias ?? true,
        recurrentActivation: c.recurrentActivation ?? "sigmoid", dropout: c.dropout ?? 0, recurrentDropout: c.recurrentDropout ?? 0,
        stateful: c.stateful ?? false, ...(c.stateful ? { batchSize: cfg.batchSize } : {}),
      };
      dim = l.mergeMode === "concat" ? 2 * c.units : c.units;
      return new Bidirectional(c.type === "gru" ? new GRU({ ...o, resetAfter: c.resetAfter ?? true }) : new LSTM(o), { mergeMode: l.mergeMode });
    }
    const layer = l.type === "gru"
      ? new GRU({
        units: l.units, inputDim: dim, returnSequences: Boolean(l.returnSequences), goBackwards: l.goBackwards ?? false,
        resetAfter: l.resetAfter ?? true, recurrentActivation: l.recurrentActivation ?? "sigmoid", useBias: l.useBias ?? true,
        dropout: l.dropout ?? 0, recurrentDropout: l.recurrentDropout ?? 0,
      })
      : l.type === "lstm"
      ? new LSTM({
        units: l.units, inputDim: dim, returnSequences: Boolean(l.returnSequences), goBackwards: l.goBackwards ?? false,
        recurrentActivation: l.recurrentActivation ?? "sigmoid", useBias: l.useBias ?? true,
        dropout: l.dropout ?? 0, recurrentDropout: l.recurrentDropout ?? 0,
      })
      : new Dense({ units: l.units, activation: l.activation, useBias: l.useBias ?? true });
    dim = l.units;
    return layer;
  });
  return new Sequential(cfg.maskValue !== undefined ? [new Masking({ maskValue: cfg.maskValue }), ...layers] : layers, { dtype, seed: 3, backend });
}

function dropoutMasks(fx: any): { x: Float64Array | null; h: Float64Array | null }[] {
  return fx.masks.map((m: { x: number[][] | null; h: number[][] | null }) => ({
    x: m.x ? Float64Array.from(m.x.flat()) : null, h: m.h ? Float64Array.from(m.h.flat()) : null,
  }));
}
