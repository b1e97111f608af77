/**
 * The dashboard's validator source (`node/dashboard_sources.ts`) over a stand-in validator whose
 * ledger cannot write (review s71, finding 1): 3 own receipts handed in, none recorded (each lost
 * to a failed write: refused), and the fault the validator carries then. For the views that show
 * it: `cli.ts status` and the dashboard page.
 *
 * @module
 */
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import {
  emptyValidatorStats,
  type ValidatorMessage,
  type ValidatorStats,
} from "../../actors/validator_messages.ts";
import { dashboardSources } from "../../node/dashboard_sources.ts";
import type { DashboardSources } from "../../server/dashboard_routes.ts";

/** What the node's validator said after 3 completions on a ledger that cannot write. */
export const REFUSING_STATS: ValidatorStats = {
  ...emptyValidatorStats(),
  received: 3,
  refused: 3,
  own: 0,
  ledgerWriteFault: {
    cause: "EPERM",
    message: "the ledger in /data/ledger could not write (EPERM: Operation not permitted)",
    since: 0,
    failures: 3,
    reopens: 0,
  },
};

/** The account of the node in {@link REFUSING_STATS}. */
export const REFUSING_ACCOUNT = { balance: 0, stake: 1_000_000, locked: 0 };

/**
 * The node's own dashboard source of the validator, over a validator answering `stats`; `close`
 * the actor system it is wired to (it reads nothing of it here).
 */
export function validatorSource(stats: ValidatorStats = REFUSING_STATS): {
  validator: DashboardSources["validator"];
  close: () => Promise<void>;
} {
  const ref = {
    ask: (message: ValidatorMessage) =>
      Promise.resolve(message.type === "stats" ? stats : REFUSING_ACCOUNT),
  } as unknown as ActorRef<ValidatorMessage>;
  const system = new ActorSystem({ name: "refusing-validator" });
  const sources = dashboardSources({
    publicKey: new Uint8Array(32),
    system,
    inferenceName: "node/inference",
    network: () => undefined,
    validator: () => ref,
    storage: () => undefined,
  });
  return { validator: () => sources.validator(), close: () => system.shutdown() };
}
