/**
 * Fetching a challenged worker's proof data for the ValidatorActor (`validator_actor.ts`):
 * asked over the wire through the NetworkActor, directly when connected to the worker, else
 * through the job's requester, which relays; asked again while the worker is unreachable, until
 * the deadline. What it gives is the worker's proof data as it served it, signed by it for the
 * receipt; nothing (withheld); or {@link UNREACHABLE} when only a relay's word came back. Not
 * part of the public API.
 *
 * @module
 */
import { type Receipt, receiptId } from "../protocols/receipt.ts";
import { type ServedProof, verifyServedProof } from "../proof/served_proof.ts";
import type { ActorRef } from "./actor_ref.ts";
import type { NetworkMessage } from "../network/network_actor.ts";
import type { Connection } from "../protocols/connection.ts";
import { INFERENCE_PROTOCOL, ProofRequestMessage } from "../protocols/inference_messages.ts";
import type { ChallengeSource } from "./validator_messages.ts";

/** What fetching proof data gives when the worker could not be asked at all. */
export const UNREACHABLE: unique symbol = Symbol("worker unreachable");
/** First pause before asking an unreachable worker again (doubling up to the maximum). */
const PROOF_RETRY_MS = 500;
const PROOF_RETRY_MAX_MS = 8_000;

/** What {@link proofOf} needs besides the receipt. */
export interface ProofFetchOptions {
  /** Challenge material beyond the announcement: its `proof`, when present, is asked instead. */
  source: ChallengeSource;
  /**
   * The NetworkActor, looked up again at every try; undefined when the validator has no
   * network (then nothing is fetched: withheld).
   */
  network: (() => ActorRef<NetworkMessage> | undefined) | undefined;
  /** How long the worker has to serve its proof data, ms from the first try. */
  deadlineMs: number;
  /** Aborts the fetch (throws its reason). */
  signal: AbortSignal;
  /** The job's requester, which can relay the request when this node is not connected. */
  relay: Uint8Array | undefined;
}

/** Sleep `ms`, or less if `signal` aborts first (then throw its reason). */
function abortableDelay(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * The worker's proof data as it served it, signed by it for this receipt; undefined when the
 * worker did not serve it by the deadline, or served it unsigned (both: withheld);
 * {@link UNREACHABLE} when the worker could not be asked at all.
 *
 * @param receipt The challenged receipt.
 * @param options Where to ask, until when, and the signal that aborts it.
 * @returns The served proof, undefined (withheld) or {@link UNREACHABLE}.
 */
export async function proofOf(
  receipt: Receipt,
  options: ProofFetchOptions,
): Promise<ServedProof | typeof UNREACHABLE | undefined> {
  const id = receiptId(receipt);
  const served = await fetchProof(receipt, options);
  if (served === UNREACHABLE) return served;
  return verifyServedProof(served, id, receipt.worker) ? served : undefined;
}

/**
 * Ask the worker for its proof data until the deadline: directly when connected to it, else
 * through the job's requester, which relays. A direct "none" is the worker's refusal, and no
 * answer by the deadline is withholding (also when nobody could reach it: a worker that
 * drops every connection on a proof request must not escape). But a relay's "none", or data
 * the worker did not sign, is the relay's word, not the worker's: asked again, and if by the
 * deadline the worker was never asked directly and a relay did answer so,
 * {@link UNREACHABLE} (inconclusive: not paid, nobody slashed).
 */
async function fetchProof(
  receipt: Receipt,
  { source, network: lookup, deadlineMs, signal, relay }: ProofFetchOptions,
): Promise<ServedProof | typeof UNREACHABLE | undefined> {
  if (source.proof !== undefined) return await source.proof(receipt).catch(() => undefined);
  const id = receiptId(receipt);
  const worker = receipt.worker;
  if (lookup === undefined) return undefined;
  // The worker has until the deadline to answer: a worker that restarts, or whose connection
  // drops and comes back, is asked again; one that answers "none" has refused.
  const deadline = performance.now() + deadlineMs;
  let askedDirectly = false;
  let relayAnswered = false;
  for (let wait = PROOF_RETRY_MS;; wait = Math.min(wait * 2, PROOF_RETRY_MAX_MS)) {
    signal.throwIfAborted();
    const left = deadline - performance.now();
    // Withheld (`invalid`, `proof_unavailable`), or only a relay's word (`inconclusive`).
    if (left <= 0) return !askedDirectly && relayAnswered ? UNREACHABLE : undefined;
    try {
      const network = lookup();
      const to = (key: Uint8Array) =>
        network?.ask<Connection | undefined>(
          { type: "connection_to", key, protocol: INFERENCE_PROTOCOL.name },
        );
      const direct = await to(worker);
      if (direct !== undefined) {
        askedDirectly = true;
        const { served } = await direct.request(ProofRequestMessage, { receiptId: id }, {
          timeoutMs: left,
          signal,
        });
        return served ?? undefined;
      }
      // Not connected to the worker: through the job's requester, which relays to it.
      const via = relay === undefined ? undefined : await to(relay);
      if (via !== undefined) {
        const { served } = await via.request(ProofRequestMessage, { receiptId: id, worker }, {
          timeoutMs: left,
          signal,
        });
        if (served && verifyServedProof(served, id, worker)) return served;
        relayAnswered = true;
      }
    } catch {
      // Unreachable for now (directly and through the requester), or the connection dropped:
      // ask again until the deadline.
    }
    await abortableDelay(Math.min(wait, Math.max(0, deadline - performance.now())), signal);
  }
}
