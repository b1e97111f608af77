/**
 * How a started node stops ({@link nodeShutdown}): `shutdown()` says so (`stopping`), then stops
 * the heartbeat, the HTTP API, the actors (the network first: it says goodbye to every peer before
 * its connections close, `protocols/peer_goodbye.ts`; the StorageActor, stopped after it, blames
 * no holder for a call those closes cut off, `StorageCore.stopped`) and the models in that order,
 * each step whatever the one before did; `finished` settles once the actor system has terminated —
 * by `shutdown`, or with `fatal` when the node supervisor gave up — after the same shutdown. Used by
 * `node.ts` for `VeriflowNode`'s `shutdown`, `finished` and `waitForPeer`. Not part of the public
 * API.
 *
 * @module
 */
import type { ActorSystem } from "../actors/actor_system.ts";
import type { ModelRegistry } from "../inference/model_registry.ts";
import type { HttpListener } from "./http_listener.ts";

/** What a node stops, in that order (the heartbeat first). */
export interface NodeShutdownParts {
  heartbeat: { stop(): void };
  http: HttpListener;
  system: ActorSystem;
  models: ModelRegistry;
  log: (line: string) => void;
}

/**
 * The node's `shutdown` (idempotent), its `finished`, and `stopping`, a signal aborted as the
 * shutdown begins (either way: what waits on the node, `waitForPeer`, gives up then), over
 * `parts`.
 */
export function nodeShutdown(
  { heartbeat, http, system, models, log }: NodeShutdownParts,
): {
  shutdown: () => Promise<void>;
  finished: Promise<{ fatal?: string; reason?: unknown }>;
  stopping: AbortSignal;
} {
  let stopping: Promise<void> | undefined;
  const began = new AbortController();
  const shutdown = (): Promise<void> => {
    began.abort();
    // Each step runs whatever the one before it did: a port that failed to close must not leave
    // the actors (the ledger, the proof store) running, nor a model that failed to release
    // reject the stop, which left the data directory locked and, in `cli.ts start`, ended the
    // process on an unhandled rejection (a review found it at stop 45).
    const step = async (what: string, stop: () => Promise<void>) => {
      try {
        await stop();
      } catch (error) {
        log(`error: stopping ${what}: ${(error as Error)?.message ?? String(error)}`);
      }
    };
    stopping ??= (async () => {
      heartbeat.stop();
      await step("the HTTP API", () => http.close());
      await step("the actors", () => system.shutdown());
      await step("the models", () => models.close());
    })();
    return stopping;
  };
  const finished = system.terminated.then(async (termination) => {
    let fatal: string | undefined;
    if (termination.reason === "fatal") {
      fatal = `the node supervisor gave up: ${String(termination.error)}`;
      log(`fatal: ${fatal}`);
    }
    await shutdown();
    // The reason itself beside its text: the start command says its typed code (`disk_full`).
    return fatal === undefined ? {} : { fatal, reason: termination.error };
  });
  return { shutdown, finished, stopping: began.signal };
}
