/**
 * The playground's one script, for the page and its worker alike (so the library is bundled once and the
 * page needs no module-worker support): in a worker it runs the trainer, in a page the UI, which starts a
 * worker from this same script's URL.
 */
import { startWorker } from "./worker.js";
import { startPage } from "./ui.js";

declare const WorkerGlobalScope: unknown;
if (typeof WorkerGlobalScope !== "undefined" && typeof document === "undefined") {
  startWorker(self as unknown as Parameters<typeof startWorker>[0]);
} else {
  const src = (document.currentScript as HTMLScriptElement | null)?.src ?? "playground.js";
  (window as unknown as { playground: unknown }).playground = startPage(src);
}
