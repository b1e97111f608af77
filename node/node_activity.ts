/**
 * What the node's validator did, kept for watchers: the receipts, challenges, verdicts (storage
 * audits included) and fraud proofs of the last while as plain JSON items (the dashboard's
 * feed, each fraud proof a click away by id), the validation-time histogram and the receipts
 * by verdict (`/metrics`). Fed by the ValidatorActor's `onActivity`; read-only for everyone.
 *
 * @module
 */
import type { ValidatorActivity } from "../actors/validator_messages.ts";
import { fraudProofHash } from "../protocols/fraud_proof.ts";
import { toHex } from "../protocols/hash.ts";
import { receiptId } from "../protocols/receipt.ts";
import { verdictId } from "../protocols/verdict.ts";
import { type JsonValue, toJsonValue } from "../server/json_value.ts";
import { Histogram, type MetricSample, type MetricsCollector } from "../server/metrics_registry.ts";

/** One line of the activity feed. */
export interface ActivityItem {
  /** Unix ms when it happened here. */
  time: number;
  /** `receipt`, `challenge`, `verdict`, `audit` (a storage verdict) or `fraud`. */
  kind: "receipt" | "challenge" | "verdict" | "audit" | "fraud";
  /** The receipt (or audited holder's verdict subject) it is about. */
  subject: string;
  /** Hex key of the worker or holder it is about. */
  target: string;
  /** The outcome or status in a word (`valid`, `fraud`, `recorded`, `confirmed`…). */
  outcome: string;
  /** More, in a few words. */
  detail: string;
  /** Id of a fraud proof to fetch with {@link NodeActivity.fraudProof}. */
  fraudProof?: string;
}

/** Items kept: about ten minutes of a busy validator, a few kB each at most. */
const KEPT_ITEMS = 200;
/** Fraud proofs kept for a click (each can hold opened chunks: tens of kB). */
const KEPT_PROOFS = 32;
/**
 * Validation bounds in seconds: a tiny model's teacher-forced pass takes milliseconds, a large
 * one's, or one waiting for the worker's proof data, seconds to a minute (the proof deadline).
 */
const VALIDATION_BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** Options of {@link NodeActivity}. */
export interface NodeActivityOptions {
  /** Wall clock; default `Date.now`. */
  now?: () => number;
}

/** See the module doc. */
export class NodeActivity {
  readonly #now: () => number;
  readonly #items: ActivityItem[] = [];
  readonly #proofs = new Map<string, JsonValue>();
  readonly #validation = new Histogram(VALIDATION_BOUNDS);
  readonly #byVerdict = new Map<string, number>();
  #listeners: ((item: ActivityItem) => void)[] = [];

  /** An empty feed. */
  constructor(options: NodeActivityOptions = {}) {
    this.#now = options.now ?? (() => Date.now());
  }

  /** Take one activity (the validator's `onActivity`). */
  record(activity: ValidatorActivity): void {
    const time = this.#now();
    switch (activity.kind) {
      case "receipt":
        this.#push({
          time,
          kind: activity.challenged ? "challenge" : "receipt",
          subject: activity.receiptId,
          target: activity.worker,
          outcome: activity.challenged ? "challenged" : activity.recorded ? "recorded" : "refused",
          detail: `${activity.tokens} tokens, job ${activity.jobId.slice(0, 12)}, from ` +
            (activity.origin === "local" ? "this node" : `peer ${activity.origin.slice(0, 12)}`),
        });
        return;
      case "verdict": {
        const { verdict } = activity;
        const storage = verdict.subject === "storage";
        if (!storage) {
          const outcome = verdict.outcome;
          this.#byVerdict.set(outcome, (this.#byVerdict.get(outcome) ?? 0) + 1);
        }
        if (activity.validationMs !== undefined) {
          this.#validation.observe(activity.validationMs / 1000);
        }
        let proofId: string | undefined;
        if (activity.fraudProof !== undefined) proofId = this.#keep(activity.fraudProof);
        this.#push({
          time,
          kind: storage ? "audit" : "verdict",
          subject: verdict.subjectId,
          target: toHex(verdict.target),
          outcome: verdict.outcome,
          detail: `${verdict.reason}; ${activity.own ? "signed here" : "by"} ` +
            (activity.own ? "" : `${toHex(verdict.validator).slice(0, 12)} `) +
            (activity.validationMs === undefined
              ? ""
              : `in ${Math.round(activity.validationMs)} ms `) +
            `(verdict ${verdictId(verdict).slice(0, 12)})`,
          fraudProof: proofId,
        });
        return;
      }
      case "fraud":
        this.#push({
          time,
          kind: "fraud",
          subject: receiptId(activity.proof.receipt),
          target: toHex(activity.proof.receipt.worker),
          outcome: activity.confirmed ? "confirmed" : "refuted",
          detail: `${activity.proof.kind}: ${activity.reason}`,
          fraudProof: this.#keep(activity.proof),
        });
    }
  }

  /** The kept items, newest first. */
  recent(): ActivityItem[] {
    return [...this.#items];
  }

  /** A kept fraud proof by id (its hash), as JSON; undefined once forgotten. */
  fraudProof(id: string): JsonValue | undefined {
    return this.#proofs.get(id);
  }

  /** Hear each new item; returns the unsubscribe function. */
  subscribe(listener: (item: ActivityItem) => void): () => void {
    this.#listeners = [...this.#listeners, listener];
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== listener);
    };
  }

  /** Validation time and receipts by verdict, for `/metrics`. */
  collector(): MetricsCollector {
    const activity: MetricsCollector = (): MetricSample[] => [
      this.#validation.sample(
        "veriflow_validation_seconds",
        "Time this validator took to judge a challenged receipt (fetching its proof data " +
          "and the forward pass).",
      ),
      ...["valid", "fraud", "invalid", "inconclusive"].map((verdict) => ({
        name: "veriflow_receipts_by_verdict_total",
        help: "Receipts judged in this ledger (by this validator or a peer's), by verdict.",
        type: "counter" as const,
        value: this.#byVerdict.get(verdict) ?? 0,
        labels: { verdict },
      })),
    ];
    return activity;
  }

  #keep(proof: Parameters<typeof fraudProofHash>[0]): string {
    const id = fraudProofHash(proof);
    this.#proofs.set(id, toJsonValue(proof));
    while (this.#proofs.size > KEPT_PROOFS) this.#proofs.delete(this.#proofs.keys().next().value!);
    return id;
  }

  #push(item: ActivityItem): void {
    this.#items.unshift(item);
    this.#items.length = Math.min(this.#items.length, KEPT_ITEMS);
    for (const listener of this.#listeners) {
      try {
        listener(item);
      } catch {
        // A closed page's listener must not disturb the validator.
      }
    }
  }
}
