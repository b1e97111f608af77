import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { AskTimeoutError } from "../../actors/errors.ts";
import type { ProverMessage, ProverStats } from "../../actors/prover_actor.ts";
import type { ValidatorMessage } from "../../actors/validator_actor.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";

/** A stand-in actor ref whose `ask` answers with `answer(message)`. */
function refAnswering<M>(answer: (message: M) => Promise<unknown>): ActorRef<M> {
  return { ask: (message: M) => answer(message) } as unknown as ActorRef<M>;
}

Deno.test("a busy validator leaves only its own series out of /metrics: the prover's and the process's are served, the timeout counted", async () => {
  const prover = refAnswering<ProverMessage>(() =>
    Promise.resolve({ proven: 7, failed: 1, active: 0 } satisfies Partial<ProverStats>)
  );
  // What a validator with a long mailbox does to an ask: it times out.
  const validator = refAnswering<ValidatorMessage>(() =>
    Promise.reject(new AskTimeoutError("node/validator", 1_000))
  );
  const metrics = new MetricsRegistry();
  const collectors = nodeCollectors({
    publicKey: new Uint8Array(32),
    prover: () => prover,
    validator: () => validator,
    network: () => undefined,
  });
  for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);

  const text = await metrics.render();
  assert.match(text, /^veriflow_prover_receipts_signed_total 7$/m);
  assert.match(text, /^veriflow_process_rss_bytes \d+$/m);
  assert.doesNotMatch(text, /^veriflow_validator_/m);
  assert.match(
    text,
    /^veriflow_metrics_collector_failures_total\{collector="validator",reason="timeout"\} 1$/m,
  );
});
