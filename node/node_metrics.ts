/**
 * The node's own series on `/metrics`, beside the inference ones the app registers: proving
 * (receipts signed), validation (receipts seen, challenged, verdicts by outcome), this node's
 * ledger account, and process memory. Operators watch the proof pipeline the same way they
 * watch tokens per second.
 *
 * @module
 */
import type { ActorRef } from "../actors/actor_ref.ts";
import type { ProverMessage, ProverStats } from "../actors/prover_actor.ts";
import type { Account, ValidatorMessage } from "../actors/validator_actor.ts";
import type { MetricSample, MetricsCollector } from "../server/metrics_registry.ts";

/** Verdict outcomes the node counts. */
export type VerdictTallyKey = "valid" | "fraud" | "invalid" | "inconclusive";

/** Counters of what the node's validator did with the receipts handed to it. */
export class ValidatorTally {
  /** Receipts handed to the validator. */
  received = 0;
  /** Receipts the ledger refused (for example: not enough stake). */
  refused = 0;
  /** Receipts the validator chose to challenge. */
  challenged = 0;
  /** Verdicts by outcome. */
  readonly verdicts: Record<VerdictTallyKey, number> = {
    valid: 0,
    fraud: 0,
    invalid: 0,
    inconclusive: 0,
  };
}

/** What {@link nodeCollector} reads. */
export interface NodeCollectorSources {
  /** The node's public key (its ledger account). */
  publicKey: Uint8Array;
  /** Looks up the prover, if the node runs one. */
  prover: () => ActorRef<ProverMessage> | undefined;
  /** Looks up the validator, if the node runs one. */
  validator: () => ActorRef<ValidatorMessage> | undefined;
  /** The validator tally kept by the node. */
  tally: ValidatorTally;
}

/** A short ask: a metrics scrape must not hang on a busy actor. */
const SCRAPE_ASK_TIMEOUT_MS = 1_000;

/** Collector of the node's proof, ledger and process series. */
export function nodeCollector(sources: NodeCollectorSources): MetricsCollector {
  return async () => {
    const samples: MetricSample[] = [{
      name: "veriflow_process_rss_bytes",
      help: "Resident set size of the node process.",
      type: "gauge",
      value: Deno.memoryUsage().rss,
    }];
    const prover = sources.prover();
    if (prover !== undefined) {
      const s = await prover.ask<ProverStats>({ type: "stats" }, {
        timeoutMs: SCRAPE_ASK_TIMEOUT_MS,
      });
      samples.push(
        {
          name: "veriflow_prover_receipts_signed_total",
          help: "Receipts signed.",
          type: "counter",
          value: s.proven,
        },
        {
          name: "veriflow_prover_failed_total",
          help: "Token streams that ended without a receipt (cancelled or failed).",
          type: "counter",
          value: s.failed,
        },
        {
          name: "veriflow_prover_active_jobs",
          help: "Jobs being proven now.",
          type: "gauge",
          value: s.active,
        },
      );
    }
    const validator = sources.validator();
    if (validator !== undefined) {
      const t = sources.tally;
      samples.push(
        {
          name: "veriflow_validator_receipts_total",
          help: "Receipts handed to the validator.",
          type: "counter",
          value: t.received,
        },
        {
          name: "veriflow_validator_refused_total",
          help: "Receipts the ledger refused.",
          type: "counter",
          value: t.refused,
        },
        {
          name: "veriflow_validator_challenges_total",
          help: "Receipts challenged.",
          type: "counter",
          value: t.challenged,
        },
      );
      for (const [outcome, value] of Object.entries(t.verdicts)) {
        samples.push({
          name: "veriflow_validator_verdicts_total",
          help: "Verdicts signed, by outcome.",
          type: "counter",
          value,
          labels: { outcome },
        });
      }
      const account = await validator.ask<Account>(
        { type: "account", key: sources.publicKey },
        { timeoutMs: SCRAPE_ASK_TIMEOUT_MS },
      );
      samples.push(
        {
          name: "veriflow_ledger_balance",
          help: "This node's credited balance.",
          type: "gauge",
          value: account.balance,
        },
        {
          name: "veriflow_ledger_stake",
          help: "This node's stake.",
          type: "gauge",
          value: account.stake,
        },
        {
          name: "veriflow_ledger_stake_locked",
          help: "Stake locked behind pending receipts.",
          type: "gauge",
          value: account.locked,
        },
      );
    }
    return samples;
  };
}
