/**
 * A model worker entry for supervision and life-cycle tests: the real worker, plus hooks driven
 * over its test module's channel (`faultsChannel`, see `_worker_faults.ts`): `crash` makes the named worker throw an
 * uncaught error; `hold` makes every worker keep the generation steps it receives until
 * `release`, so jobs stay running for as long as a test needs.
 *
 * @module
 */
import "../../inference/_model_worker.ts";
import { eachMessage } from "../../inference/_batched_post.ts";
import { faultsChannel, type WorkerFault } from "./_worker_faults.ts";

const scope = globalThis as unknown as {
  name: string;
  onmessage: ((event: MessageEvent<{ op: string } | { op: string }[]>) => void) | null;
};
const handle = scope.onmessage! as (event: MessageEvent<{ op: string }>) => void;
let held: MessageEvent<{ op: string }>[] | undefined;
/** `?flags=DIR` on this module's URL: the folder of the file-driven faults (see below). */
const flags = new URL(import.meta.url).searchParams.get("flags");
/** `?scope=…`: the test module that started this worker (its faults alone reach it). */
const scopeId = new URL(import.meta.url).searchParams.get("scope");

/**
 * Whether this worker takes the `hold-load` fault: the file `DIR/hold-load` is consumed (one
 * worker takes it) and `DIR/load-held` written, and the load request is never answered. A
 * replacement started after a crash then stays loading for as long as a test needs; a later
 * `crash` takes it down while it loads.
 */
function holdsLoad(): boolean {
  if (flags === null) return false;
  try {
    Deno.removeSync(`${flags}/hold-load`);
  } catch {
    return false;
  }
  Deno.writeTextFileSync(`${flags}/load-held`, "");
  return true;
}

scope.onmessage = (event) => {
  // One request, or several the pool posted together (`_batched_post.ts`): each on its own.
  for (const data of eachMessage(event.data)) {
    const request = new MessageEvent("message", { data });
    if (data.op === "load" && holdsLoad()) continue;
    if (held !== undefined && data.op === "step") held.push(request);
    else handle(request);
  }
};

const channel = new BroadcastChannel(faultsChannel(scopeId));
channel.onmessage = ({ data: fault }: MessageEvent<WorkerFault>) => {
  if (fault.type === "crash" && fault.worker === scope.name) {
    // Thrown from a timer, outside any request: an uncaught error, not an error reply.
    setTimeout(() => {
      throw new Error("injected crash");
    });
  } else if (fault.type === "hold") {
    held ??= [];
  } else if (fault.type === "release") {
    const steps = held ?? [];
    held = undefined;
    for (const step of steps) handle(step);
  }
};
