/**
 * `longshort/web`: the whole portable API of `longshort`, plus both cores with Web Workers
 * (`setThreads`, web/threads.ts). This file only re-exports.
 */
export * from "../index.js";
export { setThreads, canShareMemory, type WebThreadOptions } from "./threads.js";
export type { ThreadOptions } from "../threads/pool.js";
