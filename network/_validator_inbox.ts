/**
 * Where a peer's one-way evidence, and this node's own receipts of the jobs it forwarded, wait
 * while this node's validator (or training validator) is down; and how a peer's request for the
 * validator waits for it.
 *
 * A fraud proof, a verdict ("proof withheld" claim) or a stake pledge for the ValidatorActor, or
 * a training receipt, training fraud proof or round outcome for the TrainingValidator, comes from
 * a peer as a one-way notify, passed on once per connection: the sender never learns whether this node's
 * ledger took it, and sends it again only on a new connection (its catch-up), except when this
 * node's connection refused it `busy` at admission (it never got here), which the sender's
 * connection sends again after a backoff (`protocols/_connection_notices.ts`). Handed over with a
 * `tell`, it was lost when no validator was registered (stopped; the error frame back is acted on
 * by nobody) or when the validator crashed with it queued (a crashed incarnation's mailbox is
 * discarded, and `tell` had resolved once it was queued): the receipt's window then closed here
 * without it, and the cheat (or lazy trainer) every other ledger slashed was paid in this one;
 * a lost round outcome was never audited here, and the round's honest trainers every other ledger
 * credited went uncredited in this one.
 *
 * So the evidence is handed over with an `ask`, which settles only once the validator's
 * `receive` took it (quickly: a fraud proof's check, a forward pass, runs outside the mailbox
 * and is not waited for; a training proof's re-run and an outcome's audit likewise), and what
 * does not get there is
 * held here, in one bounded queue per node and validator, and handed over again:
 *
 * - no validator registered, or its mailbox closed for good (`ActorStoppedError`): held until
 *   the actor system reports an actor of that name started (a `started` or `restarted` event);
 * - the validator crashed before taking it (`ActorCrashedError`): asked again at once, which
 *   waits in the mailbox for the supervisor's next incarnation — at most
 *   {@link MAX_HANDOVERS} times in all, so a message that itself crashes the validator does not
 *   crash it in a loop.
 *
 * A handover that times out is not held (the message is still queued there and will be taken),
 * nor one refused for a full mailbox (overload: shedding it is the mailbox's job). Duplicates are
 * harmless: the ledger takes each verdict, proof, pledge and receipt once, and the training
 * validator audits each outcome once (`training/_outcome_gate.ts`).
 *
 * Who pays: this node, in memory, at most {@link MAX_HELD} messages and {@link MAX_HELD_BYTES}
 * (CBOR; {@link MAX_HELD_TRAINING_BYTES} for the training validator) while its validator is
 * down, of which each peer key may take only {@link MAX_HELD_PER_PEER} messages and an eighth of
 * the bytes ({@link MAX_HELD_BYTES_PER_PEER}); past its share a peer's evidence is dropped as
 * before (it can still come again on a new connection's catch-up), and never displaces another
 * peer's. Nothing is kept across a restart of the node.
 *
 * A key is free to make, so shares per key alone held nobody: eight throwaway keys, one
 * connection each, filled the whole hold during a restart, and an honest peer's evidence that
 * came next was dropped (review s71, finding 3: the honest worker whose pledge it carried had no
 * stake in this ledger afterwards). So what a key is known as (`_peer_origins.ts`) counts too:
 * keys with no standing in this ledger (no stake, no credit recorded before) take at most
 * {@link MAX_HELD_NEWCOMERS} messages and half the bytes together — the rest is kept for keys
 * with standing, so newcomers cannot crowd out known peers — and, where their connection came in
 * over TCP, at most {@link MAX_HELD_NEWCOMERS_PER_GROUP} and an eighth of the bytes per address
 * group (one host gets what one key got, however many keys it makes); one address group, keys
 * with standing included, takes at most {@link MAX_HELD_PER_GROUP} and half the bytes. Swarm and
 * in-memory connections carry no address: for them the newcomers' part is the node-wide bound.
 * Stake is only a signed pledge, so keys with stake can still crowd each other: how fast a host
 * makes staked keys is what the budget of new keys' pledges per address group bounds
 * (`peer_services.ts`). The same shares bound the requests waiting for a validator
 * ({@link ValidatorInbox.ask}).
 *
 * This node's own receipts go through {@link ValidatorInbox.deliver} too: the forwarding port
 * (`network/network_inference_port.ts`) hands each worker's receipt it checked, with the assignment
 * it signed, to its validator, which records it and announces both to the other ledgers
 * (`announce`). Handed over with a `tell`, it was lost as the peers' evidence was (no validator
 * registered, or a crash with it queued), and the assignment existed nowhere else: the requester's
 * ledger never recorded the receipt as assigned, no other ledger heard of it, the honest worker
 * that delivered every token was paid in none, and this node refused every relay request for it
 * (`relayProof` asks its ledger), so a validator that reaches the worker only through this node
 * took the missing proof for the worker's withholding (review s60,
 * `tests/network/validator_inbox_test.ts`). They are held in a share of the bounds
 * of their own ({@link MAX_HELD} messages and the node's byte bound, an eighth of each per worker
 * key, counted apart from the peers' evidence: `DeliverOptions.own`), so peers' evidence never
 * crowds them out, nor they it; one worker's receipts past its eighth are dropped as before.
 *
 * A request for the validator — a peer's `validation.receipt` announcement, whose answer (recorded
 * or not) goes back to the peer — goes through {@link ValidatorInbox.ask}. Answered at once with
 * `service_unavailable` while no validator was registered, or with the crash while it crashed with
 * the ask queued, it was lost for good: the sender asks again only after `busy`
 * (`announceReceipt`, `_accusations.ts`), a new connection does not carry receipts, and the honest
 * worker's receipt was never recorded in this ledger, so it was paid less here than in the others
 * (review s59, `tests/network/validator_inbox_test.ts`). So the request waits here
 * instead, as the evidence above is held: for a validator to start, and is asked of it then, or
 * asked again at once after a crash ({@link MAX_HANDOVERS} in all). The wait is bounded in time,
 * {@link MAX_WAIT_MS} on the connections' clock (`PeerServices.timers`), well under the sender's
 * request timeout, and ends when the requester gives up or the connection closes; and in number,
 * with bounds of its own (the held evidence's, counted apart, so a peer's receipts never crowd out
 * its fraud proofs): {@link MAX_HELD} requests and {@link MAX_HELD_BYTES} per node, an eighth per
 * peer key. Who pays: this node, holding the request it already decoded (and one of the
 * connection's `maxInboundRequests` slots) for at most that long; the sender, one of its pending
 * requests as long (and a "proof withheld" claim sent behind the receipt waits for its answer, as
 * it should); past the wait or the bounds the request is answered `service_unavailable` as before,
 * and the worker goes unpaid in this ledger alone (a validator down longer than a whole crash
 * streak takes, or a peer announcing more than its share while it is down). A relay's
 * `receipt_status` (a validator not connected to a worker asks this node, the job's requester, to
 * fetch its proof: `relayProof`, `network/peer_services.ts`) is a request of the same kind and
 * waits the same way, in the same bounds (review s60, e6af3f8).
 *
 * @module
 */
import type { ActorSystem } from "../actors/actor_system.ts";
import type { ActorRef } from "../actors/actor_ref.ts";
import { ActorCrashedError, ActorStoppedError } from "../actors/errors.ts";
import type {
  FraudProofMessage,
  PledgeMessage,
  VerdictMessage,
} from "../actors/validator_messages.ts";
import { encodeCbor } from "../protocols/cbor.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { type PeerOrigin, type PeerOrigins, peerOriginsOf } from "./_peer_origins.ts";

/** A peer's one-way evidence for the ValidatorActor (the inbox's default message type). */
export type PeerEvidence = FraudProofMessage | VerdictMessage | PledgeMessage;

/**
 * Most messages held for a validator that is down. A restart takes seconds (the node's supervisor
 * backs off from 100 ms, 5 restarts in 30 s); a busy peer set passes on far fewer pieces of
 * evidence than this in that time.
 */
export const MAX_HELD = 256;
/**
 * Most bytes held (CBOR of each message). A text job's fraud proof is a few KiB, a pledge about
 * 150 B; one near a 1 MiB frame fits, four of them do not crowd out the rest of the peers.
 */
export const MAX_HELD_BYTES = 4 << 20;
/** A peer key's share of {@link MAX_HELD}: one peer cannot fill the queue (an eighth). */
export const MAX_HELD_PER_PEER = MAX_HELD / 8;
/** A peer key's share of {@link MAX_HELD_BYTES} (an eighth: 512 KiB). */
export const MAX_HELD_BYTES_PER_PEER = MAX_HELD_BYTES / 8;
/**
 * What keys with no standing in this ledger take of {@link MAX_HELD} together (and of the bytes:
 * the same half): the other half is kept for keys with standing, which a flood of fresh keys
 * cannot reach.
 */
export const MAX_HELD_NEWCOMERS = MAX_HELD / 2;
/**
 * What keys with no standing take together from one address group (and an eighth of the bytes):
 * one key's share, so one host making fresh keys gets what one key did.
 */
export const MAX_HELD_NEWCOMERS_PER_GROUP = MAX_HELD / 8;
/**
 * What one address group takes, keys with standing included (and half the bytes): a handful of
 * honest nodes on one host (tests, the demo, one NAT) never pass it during a restart, and one
 * host's staked keys cannot take it all.
 */
export const MAX_HELD_PER_GROUP = MAX_HELD / 2;
/**
 * Most bytes held for the training validator. A training fraud proof carries the two training
 * states of its step, so it can be as large as a frame (1 MiB; about 750 KiB for the smallest test
 * model): a peer's eighth (1.125 MiB) holds one of them with its envelope, which 512 KiB did not.
 */
export const MAX_HELD_TRAINING_BYTES = 9 << 20;
/**
 * How many times one message is handed to crashing incarnations before it is dropped: the first
 * try and one more. A message that crashes the validator by itself costs one extra restart, not
 * a loop that spends the supervisor's restart budget.
 */
export const MAX_HANDOVERS = 2;

/**
 * Longest a request waits for a validator that is down ({@link ValidatorInbox.ask}). A third of a
 * request's default timeout (30 s, `protocols/connection.ts`), so the sender hears the answer, or
 * `service_unavailable`, well before it gives up on the request; and more than a whole crash
 * streak of the node's supervisor (5 restarts backing off from 100 ms, doubled: 3.1 s) with the
 * ledger's reopening after each.
 */
export const MAX_WAIT_MS = 10_000;

/** Options of {@link ValidatorInbox.ask}. */
export interface InboxAskOptions {
  /** The error a request that got no validator ends with (past the wait, the bounds, the signal). */
  unavailable: () => Error;
  /** The clock of the wait, {@link MAX_WAIT_MS} (default the system's). */
  timers?: ConnectionTimers;
  /** Aborted: stop waiting (the requester gave up, or the connection closed). */
  signal?: AbortSignal;
}

/** Options of {@link ValidatorInbox.deliver}. */
export interface DeliverOptions {
  /**
   * This node's own message (a receipt its forwarding port checked, with the assignment it
   * signed), not a peer's: held in a share of the bounds of its own, apart from the peers'
   * evidence, so that neither crowds the other out; `peer` then names the receipt's worker, which
   * takes an eighth of that share as a peer key does of the peers'.
   */
  own?: boolean;
}

/** Options of a {@link ValidatorInbox}. */
export interface ValidatorInboxOptions {
  /**
   * Most bytes held (CBOR), of which each peer key may take an eighth (as of
   * {@link MAX_HELD}). Default {@link MAX_HELD_BYTES}.
   */
  maxHeldBytes?: number;
  /**
   * What each peer key is known as: its address group and standing (default the node's,
   * `peerOriginsOf(system)`, which its connections fill).
   */
  origins?: PeerOrigins;
}

/** This node's own messages: bounded per node and per worker key only (`DeliverOptions.own`). */
const OWN: PeerOrigin = Object.freeze({ standing: true });

/** A count of messages and their CBOR bytes. */
interface Tally {
  count: number;
  bytes: number;
}

/** Whether `tally` with one more message of `bytes` stays within `count` and `maxBytes`. */
function fits(tally: Tally | undefined, bytes: number, count: number, maxBytes: number): boolean {
  return (tally?.count ?? 0) < count && (tally?.bytes ?? 0) + bytes <= maxBytes;
}

/** Add `bytes` (one message) to `key`'s tally in `tallies`, or take it out again (`sign` -1). */
function count(tallies: Map<string, Tally>, key: string, bytes: number, sign: 1 | -1): void {
  const tally = tallies.get(key) ?? { count: 0, bytes: 0 };
  tally.count += sign;
  tally.bytes += sign * bytes;
  if (tally.count === 0) tallies.delete(key);
  else tallies.set(key, tally);
}

/**
 * What is kept, by count and CBOR bytes, per node, per peer key, per address group, and for keys
 * with no standing (see the module doc): at most {@link MAX_HELD} and `maxBytes`, of which a peer
 * key takes an eighth of each, an address group half, keys with no standing half together and an
 * eighth per address group.
 */
class Shares {
  readonly all: Tally = { count: 0, bytes: 0 };
  readonly #newcomers: Tally = { count: 0, bytes: 0 };
  readonly #perPeer = new Map<string, Tally>();
  readonly #perGroup = new Map<string, Tally>();
  readonly #newcomersPerGroup = new Map<string, Tally>();

  constructor(readonly maxBytes: number) {}

  /** Count `bytes` of `peer`'s (known as `origin`) in, unless that is past a bound; whether it was. */
  take(peer: string, origin: PeerOrigin, bytes: number): boolean {
    const max = this.maxBytes;
    const { group, standing } = origin;
    if (
      !fits(this.all, bytes, MAX_HELD, max) ||
      !fits(this.#perPeer.get(peer), bytes, MAX_HELD_PER_PEER, max / 8) ||
      (group !== undefined &&
        !fits(this.#perGroup.get(group), bytes, MAX_HELD_PER_GROUP, max / 2)) ||
      (!standing && !fits(this.#newcomers, bytes, MAX_HELD_NEWCOMERS, max / 2)) ||
      (!standing && group !== undefined &&
        !fits(this.#newcomersPerGroup.get(group), bytes, MAX_HELD_NEWCOMERS_PER_GROUP, max / 8))
    ) return false;
    this.#count(peer, origin, bytes, 1);
    return true;
  }

  /** Count `bytes` of `peer`'s out again (`origin` as it was taken). */
  give(peer: string, origin: PeerOrigin, bytes: number): void {
    this.#count(peer, origin, bytes, -1);
  }

  #count(peer: string, { group, standing }: PeerOrigin, bytes: number, sign: 1 | -1): void {
    this.all.count += sign;
    this.all.bytes += sign * bytes;
    count(this.#perPeer, peer, bytes, sign);
    if (group !== undefined) count(this.#perGroup, group, bytes, sign);
    if (standing) return;
    this.#newcomers.count += sign;
    this.#newcomers.bytes += sign * bytes;
    if (group !== undefined) count(this.#newcomersPerGroup, group, bytes, sign);
  }
}

interface Held<M> {
  peer: string;
  /** What `peer` was known as when it was held (its shares are given back as taken). */
  origin: PeerOrigin;
  message: M;
  bytes: number;
  /** Handovers that ended in a crash so far. */
  crashes: number;
  /** Whose bounds it takes while held: the peers' evidence's or this node's own. */
  shares: Shares;
}

/**
 * The one-way evidence of every peer on its way to the validator registered as `name`, which
 * takes messages of type `M` (default {@link PeerEvidence}: the ValidatorActor's).
 */
export class ValidatorInbox<M = PeerEvidence> {
  readonly #system: ActorSystem;
  readonly #name: string;
  #held: Held<M>[] = [];
  /** What the peers' evidence in {@link #held} takes of the bounds. */
  readonly #heldShares: Shares;
  /** What this node's own messages in {@link #held} take of bounds of their own. */
  readonly #ownShares: Shares;
  /** What the requests waiting for a validator ({@link ask}) take of bounds of their own. */
  readonly #waitShares: Shares;
  /** How to wake each request waiting for a validator to start. */
  readonly #waiters = new Set<() => void>();
  readonly #origins: PeerOrigins;
  /** How many times an actor of the validator's name started (or restarted). */
  #starts = 0;
  #flushing = false;
  #again = false;

  /**
   * @param system The actor system the validator runs in (its events say when it is back).
   * @param name The validator's registry name.
   * @param options Its bounds (see {@link ValidatorInboxOptions}).
   */
  constructor(system: ActorSystem, name: string, options?: ValidatorInboxOptions) {
    this.#system = system;
    this.#name = name;
    const maxBytes = options?.maxHeldBytes ?? MAX_HELD_BYTES;
    this.#heldShares = new Shares(maxBytes);
    this.#ownShares = new Shares(maxBytes);
    this.#waitShares = new Shares(maxBytes);
    this.#origins = options?.origins ?? peerOriginsOf(system);
    system.events.subscribe((event) => {
      if ((event.type !== "started" && event.type !== "restarted") || event.name !== name) return;
      this.#starts++;
      if (this.#held.length > 0) void this.#flush();
      for (const wake of [...this.#waiters]) wake();
    });
  }

  /** How many messages are held now. */
  get held(): number {
    return this.#held.length;
  }

  /**
   * Hand `message` from `peer` to the validator; resolves with its answer once it took it, or
   * undefined once it holds it for the validator's return (see the module docs; a held message's
   * answer, later, goes to nobody). Rejects only as the handover did otherwise (a full mailbox, a
   * timeout), like the `tell` it replaces. `options.own`: this node's own message, `peer` its
   * worker's key, held in a share of its own ({@link DeliverOptions}).
   */
  async deliver(peer: string, message: M, options?: DeliverOptions): Promise<unknown> {
    const own = options?.own === true;
    const shares = own ? this.#ownShares : this.#heldShares;
    const origin = own ? OWN : this.#origins.of(peer);
    const item: Held<M> = { peer, origin, message, bytes: 0, crashes: 0, shares };
    const ref = this.#system.lookup<M>(this.#name);
    if (ref === undefined) return this.#hold(item);
    return await this.#handOver(ref, item);
  }

  /**
   * Ask the validator `message`, a request from `peer` (a `validation.receipt` announcement), and
   * resolve with its answer; while it is down, wait for it rather than answer at once (see the
   * module docs): with no validator registered, or its mailbox closed for good
   * (`ActorStoppedError`), the request waits for an actor of that name to start, at most
   * {@link MAX_WAIT_MS} on `options.timers` in all, and is asked of it then; after a crash with the
   * request queued (`ActorCrashedError`) it is asked again at once, which waits in the mailbox for
   * the next incarnation, {@link MAX_HANDOVERS} times in all.
   *
   * @throws `options.unavailable()` when no validator took it within the wait, past this node's
   * or `peer`'s share of the waiting requests' bounds, or once `options.signal` aborted; the
   * last crash after {@link MAX_HANDOVERS}; any other error of the ask as it came (a timeout, a
   * full mailbox).
   */
  async ask<R>(peer: string, message: M, options: InboxAskOptions): Promise<R> {
    const timers = options.timers ?? SYSTEM_TIMERS;
    let crashes = 0;
    let waiting: { bytes: number; until: number; origin: PeerOrigin } | undefined;
    try {
      for (;;) {
        const starts = this.#starts;
        const ref = this.#system.lookup<M>(this.#name);
        if (ref !== undefined) {
          try {
            const answer = await ref.ask<R>(message);
            void this.#origins.recheck(peer);
            return answer;
          } catch (error) {
            if (error instanceof ActorCrashedError) {
              if (++crashes >= MAX_HANDOVERS) throw error;
              continue; // asked again now: it waits in the mailbox for the next incarnation
            }
            if (!(error instanceof ActorStoppedError)) throw error;
            if (this.#starts !== starts) continue; // one started since: it takes it now
          }
        }
        if (waiting === undefined) {
          const bytes = encodeCbor(message).length;
          const origin = this.#origins.of(peer);
          if (!this.#waitShares.take(peer, origin, bytes)) throw options.unavailable();
          waiting = { bytes, until: timers.now() + MAX_WAIT_MS, origin };
        }
        const started = await this.#started(waiting.until - timers.now(), timers, options.signal);
        if (!started) throw options.unavailable();
      }
    } finally {
      if (waiting !== undefined) this.#waitShares.give(peer, waiting.origin, waiting.bytes);
    }
  }

  /**
   * Resolves true once an actor of the validator's name starts, false after `ms` on `timers` or
   * once `signal` aborts; nothing is left armed either way.
   */
  #started(ms: number, timers: ConnectionTimers, signal?: AbortSignal): Promise<boolean> {
    if (ms <= 0 || signal?.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const end = (started: boolean) => {
        this.#waiters.delete(wake);
        timers.clearTimeout(timer);
        signal?.removeEventListener("abort", abort);
        resolve(started);
      };
      const wake = () => end(true);
      const abort = () => end(false);
      const timer = timers.setTimeout(() => end(false), ms);
      this.#waiters.add(wake);
      signal?.addEventListener("abort", abort, { once: true });
    });
  }

  /** Ask `ref` to take `item`; hold it if it did not get there (see the module docs). */
  async #handOver(ref: ActorRef<M>, item: Held<M>): Promise<unknown> {
    try {
      const answer = await ref.ask(item.message);
      // Taken: a key with no standing may have some now (its own pledge, usually).
      if (item.origin !== OWN) void this.#origins.recheck(item.peer);
      return answer;
    } catch (error) {
      if (error instanceof ActorCrashedError) {
        if (++item.crashes >= MAX_HANDOVERS) return;
        this.#hold(item);
        // Asked again now, it waits in the mailbox for the supervisor's next incarnation.
        void this.#flush();
      } else if (error instanceof ActorStoppedError) {
        this.#hold(item);
        // A validator that replaced it already (its `started` event came first) takes it now.
        const now = this.#system.lookup<M>(this.#name);
        if (now !== undefined && now !== ref) void this.#flush();
      } else throw error;
    }
  }

  #hold(item: Held<M>): void {
    if (item.bytes === 0) item.bytes = encodeCbor(item.message).length;
    // Dropped, as before, past the node's bound or past this peer's (or its group's) share.
    if (item.shares.take(item.peer, item.origin, item.bytes)) this.#held.push(item);
  }

  #release(item: Held<M>): void {
    item.shares.give(item.peer, item.origin, item.bytes);
  }

  /** Hand over what is held, in the order it came, while a validator is registered. */
  async #flush(): Promise<void> {
    if (this.#flushing) {
      this.#again = true;
      return;
    }
    this.#flushing = true;
    try {
      do {
        this.#again = false;
        const ref = this.#system.lookup<M>(this.#name);
        if (ref === undefined) return; // its `started` event flushes again
        const items = this.#held;
        this.#held = [];
        for (const item of items) {
          this.#release(item);
          // A full mailbox or a timeout is not held (module docs): nothing left to do.
          await this.#handOver(ref, item).catch(() => {});
        }
      } while (this.#again && this.#held.length > 0);
    } finally {
      this.#flushing = false;
    }
  }
}
