import { makeStepModel } from "./train-step.js";
const S = process.env.S === "S3" ? { B: 64, T: 50, I: 64, H: 128 } : { B: 32, T: 50, I: 32, H: 64 };
const m = makeStepModel(S as any, "float32", 1, "wasm");
const step = (m as any).step ?? (() => (m as any).model.trainOnBatch((m as any).x, (m as any).y));
for (let i = 0; i < 20; i++) step();
const t0 = performance.now();
const n = Number(process.env.N ?? 200);
for (let i = 0; i < n; i++) step();
console.log(((performance.now() - t0) / n).toFixed(2), "ms/step");
