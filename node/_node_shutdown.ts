/**
 * How a started node stops ({@link nodeShutdown}): `shutdown()` stops the heartbeat, the HTTP
 * API, the actors and the models in that order, each step whatever the one before did; `finished`
 * settles once the actor system has terminated — by `shutdown`, or with `fatal` when the node
 * supervisor gave up — after the same shutdown. Used by `node.ts` for `VeriflowNode`'s `shutdown`
 * and `finished`. Not part of the public API.
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

/** The node's `shutdown` (idempotent) and its `finished`, over `parts`. */
export function nodeShutdown(
  { heartbeat, http, system, models, log }: NodeShutdownParts,
): { shutdown: () => Promise<void>; finished: Promise<{ fatal?: string }> } {
  let stopping: Promise<void> | undefined;
  const shutdown = (): Promise<void> => {
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
    return fatal === undefined ? {} : { fatal };
  });
  return { shutdown, finished };
}
