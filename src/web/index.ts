/**
 * `longshort/web`: the whole portable API of `longshort`, plus both cores with Web Workers
 * (`setThreads`, web/threads.ts) and keeping models in the browser (IndexedDB, downloads, file inputs:
 * web/storage.ts). This file only re-exports.
 */
export * from "../index.js";
export { setThreads, canShareMemory, type WebThreadOptions } from "./threads.js";
export {
  saveCheckpoint, loadCheckpoint, saveSafetensors, loadSafetensors, listModels, removeModel, type StoredModelInfo, type BlobLike,
} from "./storage.js";
export type { ThreadOptions } from "../threads/pool.js";
