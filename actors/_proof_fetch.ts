/**
 * Fetching a challenged worker's proof data for the ValidatorActor (`validator_actor.ts`):
 * asked over the wire through the NetworkActor, on every route this node has — its own
 * connection to the worker (dialled by the worker's key when there is none), else through the
 * job's requester and the other ledger-keeping peers, which relay — and asked again, route after
 * route, until the deadline. What it gives is the worker's proof data as it served it, signed
 * by it for the receipt, or nothing: withheld. How the worker failed to deliver (no answer,
 * "none", unsigned data, or no route reaching it) does not matter: a missing response by the
 * deadline is the worker's failure, so an honest worker stays reachable and keeps its proof data
 * for the challenge window (`proofs.retentionMs`). One exception: a validator that had no route
 * at all for the whole deadline (no connection to anyone; a dial that connected nothing is no
 * route) is cut off itself, and says so ({@link UNREACHABLE}); so is one that never dialled the
 * worker because its own dials were all taken (others' receipts can take them): the worker was
 * given no chance, for the validator's reasons. Not part of the public API.
 *
 * @module
 */
import { type Receipt, receiptId } from "../protocols/receipt.ts";
import { type ServedProof, verifyServedProof } from "../proof/served_proof.ts";
import type { ActorRef } from "./actor_ref.ts";
import type { NetworkMessage, PeerInfo, ReachAnswer } from "../network/network_actor.ts";
import type { Connection } from "../protocols/connection.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import {
  INFERENCE_PROTOCOL,
  ProofRequestMessage,
  VALIDATION_PROTOCOL,
} from "../protocols/inference_messages.ts";
import type { ChallengeSource } from "./validator_messages.ts";

/** First pause before asking an unreached worker again (doubling up to the maximum). */
const PROOF_RETRY_MS = 500;
const PROOF_RETRY_MAX_MS = 8_000;
/**
 * Most peers asked to relay in one round besides the job's requester: enough routes in a
 * sparse network (the relay is any ledger-keeping peer holding the receipt and connected to the
 * worker), while a round costs the worker at most this many relayed requests more.
 */
const MAX_PROOF_RELAYS = 8;
/**
 * Longest one round waits on the relays: a relay that holds the request without answering (a
 * requester hostile to the worker) must not keep the validator from trying the other routes,
 * and a direct connection that comes up, until the deadline. Never more than a
 * {@link MIN_ROUNDS}th of the deadline, so a short one still has that many rounds.
 */
const RELAY_ROUND_MS = 10_000;
const MIN_ROUNDS = 4;

/**
 * {@link proofOf}'s answer when this validator had no route at all for the whole deadline: no
 * connection to the worker and none to any peer that could relay. That is the validator's own
 * isolation (its network down), not the worker's failure: `inconclusive / worker_unreachable`,
 * unpaid and not slashed. Also when the worker, not connected, was never dialled because this
 * node's dials were all taken each time (`reach` answered `"full"`). Otherwise, with any route
 * up, a missing response is the worker's.
 */
export const UNREACHABLE: unique symbol = Symbol("no route to the worker");

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
  /** The job's requester, the first relay asked when this node is not connected. */
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
 * The worker's proof data as it served it, signed by it for this receipt; undefined when no
 * route brought it by the deadline, or it came unsigned (both: withheld, the worker's failure).
 *
 * @param receipt The challenged receipt.
 * @param options Where to ask, until when, and the signal that aborts it.
 * @returns The served proof, or undefined (withheld).
 */
export async function proofOf(
  receipt: Receipt,
  options: ProofFetchOptions,
): Promise<ServedProof | typeof UNREACHABLE | undefined> {
  const served = await fetchProof(receipt, options);
  if (served === UNREACHABLE) return UNREACHABLE;
  return verifyServedProof(served, receiptId(receipt), receipt.worker) ? served : undefined;
}

/**
 * Ask the worker for its proof data until the deadline, every route in each round: directly
 * when connected to it (its answer, "none" included, is its own word: final), else it is dialled
 * by its key for the time left (`reach`), and the relays are asked — the job's requester first,
 * then the other ledger-keeping peers — any of which may bring data the worker signed. A relay's
 * "none", an error or silence proves nothing, so the next round tries every route again, its own
 * connection first: one the dial brought up meanwhile is found there. Nothing signed by the
 * deadline: withheld.
 */
async function fetchProof(
  receipt: Receipt,
  { source, network: lookup, deadlineMs, signal, relay }: ProofFetchOptions,
): Promise<ServedProof | typeof UNREACHABLE | undefined> {
  // The embedding's own way to the worker: its answer is the worker's word (undefined: withheld),
  // but its throw is its own failure, as no route is: taken for withholding, it slashed honest
  // workers for the embedding's outage (review s52).
  if (source.proof !== undefined) return await source.proof(receipt).catch(() => UNREACHABLE);
  if (lookup === undefined) return undefined;
  const networkNow = lookup; // narrowed for the rounds below
  const id = receiptId(receipt);
  const worker = receipt.worker;
  /** Whether any route (the worker's connection, or a relay's) was up at some point. */
  const routed = { any: false };
  /**
   * Whether the worker ever had its chance: its own connection was up, or it was dialled; and
   * whether a dial of it was refused by this node's own bound on dials (`MAX_DIALS`). A worker
   * never given either because this node's dials were all taken (by others' receipts, which
   * throwaway keys sign cheaply) was not reached for this node's own reasons, not its own.
   */
  const chance = { given: false, refused: false };
  // A worker that restarts, or whose connection drops and comes back, is asked again; one
  // that answers "none" on its own connection has refused.
  const deadline = performance.now() + deadlineMs;
  /** Whether this fetch had the worker dialled: released when it ends, however it ends. */
  let dialled = false;
  try {
    return await fetchRounds();
  } finally {
    if (dialled) {
      networkNow()?.tell({ type: "release_reach", key: worker, holder: id }).catch(() => {});
    }
  }

  async function fetchRounds(): Promise<ServedProof | typeof UNREACHABLE | undefined> {
    for (let wait = PROOF_RETRY_MS;; wait = Math.min(wait * 2, PROOF_RETRY_MAX_MS)) {
      signal.throwIfAborted();
      const left = deadline - performance.now();
      if (left <= 0) {
        const ownGap = !routed.any || (chance.refused && !chance.given);
        return ownGap ? UNREACHABLE : undefined;
      }
      const network = networkNow();
      // Every lookup is bounded by the time left: a stalled NetworkActor must not hold the
      // challenge open past its deadline (it ends as no route, or withheld if a route was up).
      const direct = await connectionTo(network, worker, { timeoutMs: left, signal });
      if (direct !== undefined) {
        routed.any = true;
        chance.given = true;
        try {
          const { served } = await direct.request(ProofRequestMessage, { receiptId: id }, {
            timeoutMs: left,
            signal,
          });
          return served ?? undefined;
        } catch {
          // The connection dropped (or the worker failed the request): the relays, then again.
          signal.throwIfAborted();
        }
      }
      // Before the relays, so a connection dialled during their round is found by the next one.
      if (direct === undefined) {
        dialled = true;
        const answer = await reach(network, worker, left, id, signal);
        if (answer === "full") chance.refused = true;
        else if (answer === true) chance.given = true;
      }
      const relayed = await throughRelays(receipt, network, relay, {
        timeoutMs: Math.min(deadline - performance.now(), RELAY_ROUND_MS, deadlineMs / MIN_ROUNDS),
        signal,
        routed,
      });
      if (relayed !== undefined) return relayed;
      await abortableDelay(Math.min(wait, Math.max(0, deadline - performance.now())), signal);
    }
  }
}

/**
 * This node's open inference connection to `key`, if any; none when the NetworkActor does not
 * answer within `timeoutMs` (at least 1 ms).
 */
async function connectionTo(
  network: ActorRef<NetworkMessage> | undefined,
  key: Uint8Array,
  { timeoutMs, signal }: { timeoutMs: number; signal: AbortSignal },
): Promise<Connection | undefined> {
  return await network?.ask<Connection | undefined>(
    { type: "connection_to", key, protocol: INFERENCE_PROTOCOL.name },
    { timeoutMs: Math.max(1, timeoutMs), signal },
  ).catch(() => undefined);
}

/**
 * Have the NetworkActor dial `key` (Hyperswarm's DHT) for up to `forMs` when no connection to it
 * is open, on behalf of `holder` (the receipt: released when the fetch ends); the connection, if
 * it comes up, is found by a later {@link connectionTo}. A dial alone is no route: it counts only
 * once it connected. Answers the NetworkActor's word (`"full"`: refused by its bound on dials);
 * undefined when it does not answer within `forMs` (at least 1 ms).
 */
async function reach(
  network: ActorRef<NetworkMessage> | undefined,
  key: Uint8Array,
  forMs: number,
  holder: string,
  signal: AbortSignal,
): Promise<ReachAnswer | undefined> {
  return await network?.ask<ReachAnswer>(
    { type: "reach", key, forMs, holder },
    { timeoutMs: Math.max(1, forMs), signal },
  ).catch(() => undefined);
}

/**
 * One round through the relays, all asked at once: the job's requester and up to
 * {@link MAX_PROOF_RELAYS} other ledger-keeping peers. The first answer the worker signed for
 * this receipt wins (the others are cancelled); undefined when none brought one in `timeoutMs`.
 */
async function throughRelays(
  receipt: Receipt,
  network: ActorRef<NetworkMessage> | undefined,
  requester: Uint8Array | undefined,
  { timeoutMs, signal, routed }: {
    timeoutMs: number;
    signal: AbortSignal;
    routed: { any: boolean };
  },
): Promise<ServedProof | undefined> {
  if (network === undefined || timeoutMs <= 0) return undefined;
  const id = receiptId(receipt);
  const worker = receipt.worker;
  const roundEnd = performance.now() + timeoutMs;
  const keys = await relayKeys(network, worker, requester, { timeoutMs, signal });
  const round = new AbortController();
  const stop = () => round.abort(signal.reason);
  signal.addEventListener("abort", stop, { once: true });
  try {
    const asks = keys.map(async (key) => {
      const via = await connectionTo(network, key, {
        timeoutMs: roundEnd - performance.now(),
        signal: round.signal,
      });
      if (via === undefined || performance.now() >= roundEnd) return undefined;
      routed.any = true;
      const { served } = await via.request(ProofRequestMessage, { receiptId: id, worker }, {
        timeoutMs: roundEnd - performance.now(),
        signal: round.signal,
      });
      return served && verifyServedProof(served, id, worker) ? served : undefined;
    });
    return await firstDefined(asks);
  } finally {
    signal.removeEventListener("abort", stop);
    round.abort();
  }
}

/**
 * Who to ask to relay: the job's requester first, then ledger-keeping peers (never the worker);
 * only the requester when the NetworkActor does not list its peers within `timeoutMs`.
 */
async function relayKeys(
  network: ActorRef<NetworkMessage>,
  worker: Uint8Array,
  requester: Uint8Array | undefined,
  { timeoutMs, signal }: { timeoutMs: number; signal: AbortSignal },
): Promise<Uint8Array[]> {
  const peers = await network.ask<PeerInfo[] | undefined>({ type: "peers" }, {
    timeoutMs: Math.max(1, timeoutMs),
    signal,
  }).catch(() => []);
  const seen = new Set([toHex(worker)]);
  const keys: Uint8Array[] = [];
  let others = 0;
  if (requester !== undefined && !seen.has(toHex(requester))) {
    seen.add(toHex(requester));
    keys.push(requester);
  }
  // As the peer table lists what a peer offered (`name/version`).
  const ledgerKeeping = `${VALIDATION_PROTOCOL.name}/${VALIDATION_PROTOCOL.version}`;
  for (const peer of Array.isArray(peers) ? peers : []) {
    if (others === MAX_PROOF_RELAYS) break;
    if (seen.has(peer.key) || !peer.protocols.includes(ledgerKeeping)) continue;
    seen.add(peer.key);
    keys.push(fromHex(peer.key));
    others++;
  }
  return keys;
}

/** The first of `asks` to resolve to a value; undefined once all settled without one. */
function firstDefined<T>(asks: Promise<T | undefined>[]): Promise<T | undefined> {
  return new Promise((resolve) => {
    let left = asks.length;
    if (left === 0) resolve(undefined);
    for (const ask of asks) {
      ask.then((value) => {
        if (value !== undefined) resolve(value);
      }, () => {}).finally(() => {
        if (--left === 0) resolve(undefined);
      });
    }
  });
}
