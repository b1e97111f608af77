/**
 * `ValidatorStats.newKeyPledgesRefused` (peers' pledges of keys this ledger never saw, refused for
 * want of room in an address group's or the node's budget: `network/address_budget.ts`) is on
 * `/metrics` beside the validator's other counters, so an operator can see a sybil flood eat the
 * budget (and honest newcomers' pledges go unrecorded) without reading the dashboard.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { Account, ValidatorMessage } from "../../actors/validator_actor.ts";
import { emptyValidatorStats } from "../../actors/validator_messages.ts";
import { nodeCollectors } from "../../node/node_metrics.ts";
import { MetricsRegistry } from "../../server/metrics_registry.ts";
import { parsePrometheusText, valueOf } from "../server/_prometheus_text.ts";

Deno.test("/metrics serves the validator's refused new-key pledges as veriflow_validator_new_key_pledges_refused_total, a counter with a help text", async () => {
  const stats = { ...emptyValidatorStats(), newKeyPledgesRefused: 7 };
  const account: Account = { balance: 0, stake: 0, locked: 0 };
  const validator = {
    ask: (message: ValidatorMessage) => Promise.resolve(message.type === "stats" ? stats : account),
  } as unknown as ActorRef<ValidatorMessage>;
  const metrics = new MetricsRegistry();
  const collectors = nodeCollectors({
    publicKey: new Uint8Array(32),
    prover: () => undefined,
    validator: () => validator,
    network: () => undefined,
  });
  for (const [name, collect] of Object.entries(collectors)) metrics.register(collect, name);

  const text = await metrics.render();
  // Failed before the fix: the stat was counted but never exported.
  assert.equal(
    valueOf(parsePrometheusText(text), "veriflow_validator_new_key_pledges_refused_total"),
    7,
  );
  assert.match(text, /^# TYPE veriflow_validator_new_key_pledges_refused_total counter$/m);
  assert.match(text, /^# HELP veriflow_validator_new_key_pledges_refused_total \S.*budget/m);
});
