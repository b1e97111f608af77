/**
 * The NetworkActor's half of the stake-pledge exchange: what goes out to a ledger-keeping peer
 * of the pledges this node holds. Such a peer is sent, on connect, this node's stake pledge and
 * a bounded few its ledger recorded (the keys active there first), and later the pledge of a
 * worker whose receipt it refused for want of stake, so a node that joins late learns the stake
 * gossiped before it came; a pledge new to this node's ledger is passed on to its other peers,
 * and so is a second, different pledge of a pledged key (it convicts the key of pledge
 * equivocation, `proof/_ledger_pledges.ts`), with the key's first: every ledger that holds
 * either comes to hold both, and settles the key alike (those two are never dropped for want of
 * budget: the key is owed to the peer, kept while the peer is away, and its pledges sent as the
 * budget refills, and first on a reconnect, {@link MAX_OWED_CONVICTIONS}).
 * The evidence that counts in a ledger only from a key with stake there — a fraud proof, a "proof
 * withheld" claim — is passed on after its author's pledge, on the same connection, unless that
 * connection has carried the pledge in the last minute ({@link PledgeSync.sendAhead},
 * {@link CARRIED_PLEDGE_TTL_MS}); a plain verdict after its author's pledge unless the peer key was
 * sent it, or sent it us, in the last {@link VERDICT_PLEDGE_TTL_MS}.
 * Every pledge sent to a peer comes out of that peer's budget (`pledge_budget.ts`), held in the
 * NetworkActor's table: {@link PledgeSync} only reads the table, from the actor's `receive`, and
 * what it learns in the background (the validator's answers) comes back to the actor as a
 * `push_pledges` message.
 *
 * A peer's ledger may refuse a pledge of a key it has never seen for want of room in its budget of
 * new keys (per address group, per node, with a reserve for each block's or connection's first:
 * `address_budget.ts`, review s71 verify F3); it counts it (`newKeyPledgesRefused` in its
 * validator's stats) but cannot say so: a pledge is a one-way notify, and answering each would
 * cost a round trip per pledge of the connect push. So the sender tries again where it matters:
 * this node's own pledge goes first on every connect (a first take there, which the reserve is
 * kept for: its address block's first in ten minutes, or an unaddressed connection's first), and a pledge the peer needs goes again each time it refuses a receipt
 * of that worker `insufficient_stake` ({@link PledgeSync.sendNeeded}), when room may have come back.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import type { Connection } from "../protocols/connection.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { toHex } from "../protocols/hash.ts";
import {
  PLEDGE_SEND_RESERVE,
  PLEDGES_PUSHED_ON_CONNECT,
  type StakePledge,
} from "../protocols/stake_pledge.ts";
import { StakeAnnouncementMessage, VALIDATION_PROTOCOL } from "../protocols/inference_messages.ts";
import type { Accusation, NetworkMessage } from "./network_actor.ts";
import type { PledgeBudget } from "./pledge_budget.ts";
import { askValidatorFor } from "./_validator_ask.ts";
import { errorWords } from "./_peer_words.ts";

/** One connection in the NetworkActor's table, as the pledge exchange sees it. */
export interface PledgePeer {
  /** The connection to the peer. */
  readonly connection: Connection;
  /**
   * What may still be sent to its key of pledges, shared by the key's connections
   * (`pledge_budget.ts`; only in `receive`).
   */
  readonly pledges: PledgeBudget;
}

/** The NetworkActor's `push_pledges` message: pledges our ledger holds, for one peer. */
export type PushPledgesMessage = Extract<NetworkMessage, { type: "push_pledges" }>;

/**
 * Pledges a connection is remembered to have carried, either way (by signature: a key convicted
 * of pledge equivocation has two, and carrying one is not carrying the other), so that
 * {@link PledgeSync.sendAhead} sends a pledge once per connection and minute
 * ({@link CARRIED_PLEDGE_TTL_MS}) rather than ahead of each of its author's fraud proofs and
 * claims: a claimant's claims come one per receipt it challenged, and each copy would take room
 * from the budget the pledges a peer needs are sent out of. Past it the oldest is forgotten, and
 * sent again at most once more: a connection sends 64 pledges at once and one per 12 s after
 * (`pledge_budget.ts`), so it takes over half an hour to carry more. About 70 KB per connection
 * (256 hex signatures and times in a map), 18 MB at the 256 connections a node holds by default.
 */
export const MAX_CARRIED_PLEDGES = 256;

/**
 * How long a connection's memo of a pledge it carried ({@link MAX_CARRIED_PLEDGES}) holds, ms:
 * past it, its author's next fraud proof or "proof withheld" claim on that connection goes after
 * the pledge again ({@link PledgeSync.sendAhead}). A pledge is a one-way notify, so the memo says
 * "sent", not "recorded": a peer whose validator was restarting when it came (its NetworkActor
 * finds no validator and drops it, or it was in the mailbox of the validator that crashed) never
 * records it. Remembered for good, every later proof or claim of that author on that connection
 * went alone, and the peer held it for a pledge nothing else sends: it paid a cheat every other
 * ledger slashed (review s58). A minute: a validator's restart takes seconds (the node
 * supervisor's backoff starts at 100 ms, five restarts in 30 s at most), and a minute is a tenth
 * of the challenge window (`DEFAULT_ECONOMICS.challengeWindowMs`), so evidence that comes a
 * minute or more after a lost pledge brings it while the receipt can still be settled, and the
 * peer then takes what it held of that author meanwhile too. The trade-off: evidence that comes
 * within the minute after a lost pledge waits there for the author's next evidence a minute on
 * (for good if none comes), as it did before; and an author's pledge costs a connection at most
 * one send (about 150 bytes, one look-up at the peer) per minute instead of one, out of the same
 * budget with the same reserves ({@link CLAIM_PLEDGE_RESERVE}), so a key that keeps claiming takes
 * no more room than a stream of fresh claimant keys, one claim each, could already.
 */
export const CARRIED_PLEDGE_TTL_MS = 60_000;

/**
 * Room a "proof withheld" claim's pledge sent ahead ({@link PledgeSync.sendAhead}) leaves to the
 * pledges a peer needs: half of {@link PLEDGE_SEND_RESERVE}. A claim is cheap — any key with a
 * pledge may sign one about any receipt still pending, and a pledge is valid from any fresh key —
 * so a stream of fresh claimants (each pledge gossiped until the budget is down to the reserve,
 * then one claim each) spent the whole reserve to every peer (review s56), and a worker's pledge
 * a peer refused its receipts for want of could not be sent. Half, not none: right after the
 * connect push the budget is down to the reserve, and a claim then still goes with its pledge.
 * A fraud proof's pledge may use all of it (a proof needs a receipt proven false).
 */
export const CLAIM_PLEDGE_RESERVE = PLEDGE_SEND_RESERVE / 2;

/**
 * How long a peer key is taken to hold a pledge it was sent, or sent us, when a plain verdict of
 * that pledge's author goes to it ({@link PledgeSync.sendAhead} `verdict`), ms: the challenge
 * window (`DEFAULT_ECONOMICS.challengeWindowMs`). Remembered per connection and minute
 * ({@link CARRIED_PLEDGE_TTL_MS}), the pledge went ahead of every verdict of its author each
 * minute, to a peer that held it, out of the budget the queued pledges drain from: with more than
 * five validators passing verdicts through a node, its queue for a peer stopped draining (review
 * s82 vpledge F1: 41 → 46 of 100 queued pledges reached the peer in ten minutes, 91 without
 * verdicts). Per peer key (its connections share its budget), while it has an open connection,
 * {@link MAX_CARRIED_PLEDGES} at most (the oldest forgotten). Not for fraud proofs, claims and
 * stream proofs, which move stake and keep the minute (review s58): a verdict moves none, and one
 * that comes after a copy of the pledge lost on the way (a validator restarting) is refused there
 * until the author's next verdict ten minutes on.
 */
export const VERDICT_PLEDGE_TTL_MS = 10 * 60_000;

/**
 * Convictions for pledge equivocation ({@link PledgeSync.relayPledge} `conviction`) owed to one
 * peer key, at most: keys whose two pledges found no room at all in its budget, the reserve
 * included, sent as its budget refills (one pledge per `PLEDGE_SEND_REFILL_MS`, 12 s), and kept
 * while the peer is away ({@link MAX_OWED_AWAY_PEERS}). Dropped, a key convicted in this ledger
 * kept its stake in a peer this node stayed connected to (review s80 F1: a flood of fresh keys'
 * pledges spent the budget, and the conviction's two pledges, published once, were never sent);
 * and an owed queue of 16 pledges, the newest dropped past it, let eight throw-away convictions
 * (a fresh key and two pledges each: a key is free) push a real one out (review s80 vgfx F1).
 *
 * Owed by key, the heaviest first ({@link PledgeSync.sendOwed}): the amount of the key's first
 * pledge, its stake in a ledger that holds only that one, which the conviction takes there; past
 * the bound, the lightest is forgotten for that peer, and of equal ones the newest, so a fresh key
 * never pushes out an older conviction of as much stake. A conviction is not free to mint
 * everywhere at once: each costs a key a ledger takes as new, out of its address group's and the
 * node's budgets (80 a minute, `address_budget.ts`), while a peer drains 2.5 a minute; the bound
 * keeps what a flood leaves owed to about 150 KB per peer key (the pledges themselves are shared
 * by every peer owed them), 75 MB over the 256 connected and {@link MAX_OWED_AWAY_PEERS} away.
 * Amounts are the keys' own word until a settlement layer exists (docs/PROTOCOL.md): a flood of
 * throw-away keys pledging more than a cheater did goes ahead of it, and past the bound pushes it
 * out for that peer.
 */
export const MAX_OWED_CONVICTIONS = 1_024;

/**
 * Peer keys with no open connection whose owed convictions ({@link MAX_OWED_CONVICTIONS}) are kept
 * for their return, at most: past it, the one owed the lightest is forgotten (by the heaviest
 * conviction owed to it), of equal ones the one owed longest. Forgotten on a disconnect, a
 * conviction owed to a peer that was away for a moment was never sent (review s80 vgfx F2: the
 * connect push keeps the reserve back, and the peer key's budget, remembered across its
 * connections, was still spent). Not the one owed longest first: peer keys are free, and an
 * attacker cycling 256 of them (a flood that spends their budgets, one throw-away conviction owed
 * to each, gone) made this node forget the conviction of a cheater owed to an honest peer away
 * meanwhile (review s80 vgfx2 F1). Amounts are the keys' own word, as for
 * {@link MAX_OWED_CONVICTIONS}: throw-away convictions of keys pledging more than the cheater
 * did, owed to 256 away keys, still push it out.
 */
export const MAX_OWED_AWAY_PEERS = 256;

/**
 * Room the convictions owed to a peer ({@link MAX_OWED_CONVICTIONS}) leave to the pledges it
 * needs ({@link PledgeSync.sendNeeded}, which may take the last): owed pledges are sent only
 * while more than this is left, so a needed pledge never waits behind them — it takes the room
 * the next refill brings, and the owed ones what is left. Taking every pledge of room as it came
 * back, 1,024 throw-away convictions owed held a worker's pledge a peer refused its receipts for
 * want of 6.8 hours (review s80 vgfx2 F2). One: a refusal's pledge waits one refill (12 s) at
 * most, a fraud proof's pledge sent ahead takes it too, and a claim's
 * ({@link CLAIM_PLEDGE_RESERVE}) never does while anything is owed.
 */
export const OWED_SEND_RESERVE = 1;

/**
 * Pledges queued for one connected peer key, at most, in two lanes: fresh, the pledges new to this
 * node's ledger that found no room in the peer's budget when passed on
 * ({@link PledgeSync.relayPledge}); and the backlog, those of the connect push past it
 * ({@link PledgeSync.pushPledges}). Sent as the budget refills (one per `PLEDGE_SEND_REFILL_MS`,
 * 12 s, keeping {@link PLEDGE_SEND_RESERVE} back, after the convictions owed there:
 * {@link PledgeSync.sendOwed}), the fresh ones first, each lane in order. Dropped past the budget,
 * a pledge reached only the ledgers its first few relays fitted: in a 200-node network that
 * pledged on connect, 5 of 200 pledges reached every ledger once quiet, and a plain verdict missed
 * a fifth of the ledgers for want of its author's stake (review s82 sim F1). Past the bound the
 * backlog's last is dropped (the push lists the keys active here first, then the newest: the
 * oldest idle pledge, the likeliest to be held there already), and with no backlog left the oldest fresh one. One lane, the newest
 * dropped, let a connect push to a node joining a ledger of 303 pledges or more fill the queue at
 * once, and a validator's pledge that came later never reached the peer (review s82 vpledge F2).
 * A flood of throw-away keys faster than the drain (a key's first pledge is budgeted per address
 * group, `address_budget.ts`) still pushes an honest one out for that peer: it then reaches it with
 * the evidence that needs it ({@link PledgeSync.sendNeeded}, {@link PledgeSync.sendAhead}). What a
 * peer is sent stays at its budget's pace and the memory at this many entries per peer key (a hex
 * signature and a reference; the pledges themselves are the ledger's): about 50 KB per peer,
 * 13 MB at the 256 connections a node holds by default. A queue is forgotten when its peer key has
 * no open connection left (it is pushed pledges again when it comes back). Draining a full queue
 * takes 51 minutes per peer.
 */
export const MAX_QUEUED_PLEDGES = 256;

/** The pledges queued for one peer key ({@link MAX_QUEUED_PLEDGES}), by hex signature. */
interface PledgeQueue {
  /** Relayed pledges that found no room, the oldest first: sent first. */
  fresh: Map<string, StakePledge>;
  /** The connect push past the budget, in its order (active keys, then the newest): sent after. */
  backlog: Map<string, StakePledge>;
}

/** A conviction owed to one peer: the key's pledges not sent there yet, and its weight. */
interface OwedConviction {
  /** Its pledges still to send, the first first (by signature: each once). */
  pledges: StakePledge[];
  /** The amount of the first pledge owed: what goes first, and what is forgotten last. */
  weight: number;
}

/** Options of {@link PledgeSync}: what it needs of the NetworkActor. */
export interface PledgeSyncOptions {
  /** Our stake pledge, sent first to every ledger-keeping peer on connect. */
  pledge?: StakePledge;
  /** The NetworkActor's open connections by hex peer key, the oldest first (only read). */
  peers: ReadonlyMap<string, readonly PledgePeer[]>;
  /** The table's entry of `connection` (undefined once it is down). */
  entryOf: (connection: Connection) => PledgePeer | undefined;
  /** Our validator's actor path (undefined: no ledger here, or not started yet). */
  validator: () => string | undefined;
  /** Tell the NetworkActor `message`, quietly (it may be stopping). */
  tell: (ctx: ActorContext<NetworkMessage>, message: NetworkMessage) => void;
  /** Where a failed relay is logged. */
  log: (line: string) => void;
  /** Clock of the memo of pledges carried ({@link CARRIED_PLEDGE_TTL_MS}; default `Date.now`). */
  now?: () => number;
  /**
   * Timers of the wait for a budget to refill when pledges are owed ({@link MAX_OWED_CONVICTIONS};
   * default the system's).
   */
  timers?: ConnectionTimers;
}

/**
 * Sends pledges to the NetworkActor's peers, each within its budget; called from the actor's
 * `receive` (see the module doc).
 */
export class PledgeSync {
  readonly #options: PledgeSyncOptions;
  readonly #now: () => number;
  /**
   * Per connection, the pledges it carried (by hex signature) and when, the oldest first (bounded:
   * {@link MAX_CARRIED_PLEDGES}, and held {@link CARRIED_PLEDGE_TTL_MS}); gone with the
   * connection. A peer that connects again is sent a pledge ahead once more: a copy it has costs
   * it one look-up.
   */
  readonly #carried = new WeakMap<Connection, Map<string, number>>();
  /**
   * Per connection, the workers whose pledge {@link sendNeeded} is sending it, by hex key: how to
   * tell whoever waits for it once it is written ({@link pushPledges}) or not sent. One send each
   * at a time, whatever number of refusals asked for it; gone with the connection.
   */
  readonly #needed = new WeakMap<Connection, Map<string, PromiseWithResolvers<boolean>>>();
  /**
   * Per peer key (hex), the convictions owed to it by convicted key (hex), the oldest first
   * (bounded: {@link MAX_OWED_CONVICTIONS}; kept while the peer is away,
   * {@link MAX_OWED_AWAY_PEERS}); sent by {@link sendOwed}, the heaviest first.
   */
  readonly #owed = new Map<string, Map<string, OwedConviction>>();
  /**
   * Per connected peer key (hex), the pledges queued for it, in two lanes (bounded together:
   * {@link MAX_QUEUED_PLEDGES}); sent by {@link sendOwed} after what is owed there.
   */
  readonly #queued = new Map<string, PledgeQueue>();
  /**
   * Per connected peer key (hex), the pledges it was sent or sent us (by hex signature) and when,
   * the oldest first (bounded: {@link MAX_CARRIED_PLEDGES}, and held
   * {@link VERDICT_PLEDGE_TTL_MS}): a plain verdict's pledge goes ahead only when missing here.
   */
  readonly #heldBy = new Map<string, Map<string, number>>();
  /** The timer that wakes {@link sendOwed} once some room is back, while pledges are owed. */
  #owedTimer: unknown;
  readonly #timers: ConnectionTimers;

  /**
   * The exchange of one NetworkActor, over its table.
   * @param options See {@link PledgeSyncOptions}.
   */
  constructor(options: PledgeSyncOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    this.#timers = options.timers ?? SYSTEM_TIMERS;
  }

  /**
   * Anti-entropy of stake: a ledger-keeping peer is sent this node's own pledge at once, then
   * at most {@link PLEDGES_PUSHED_ON_CONNECT} pledges this node's ledger recorded — the keys
   * active there first (their receipts and verdicts are what the peer will be asked to settle),
   * then the newest — so a node that joins after a pledge was gossiped still learns it (gossip
   * reaches only the peers connected at the time). Not all of them: a ledger may hold thousands
   * of pledges of fresh keys that never did anything (a review pushed a newcomer 5,413). A
   * pledge left out reaches the peer when it needs it: it refuses a receipt of that worker with
   * `insufficient_stake`, keeps the receipt, and is sent the pledge (`sendNeeded`). A validator
   * down at the connect (stopped, restarting, too busy) is waited for while the connection is open
   * and asked once it is back (`_validator_ask.ts`), as for the catch-up: asked once, it sent this
   * peer none of them for the whole connection, and the peer held a conviction of the catch-up for
   * an accuser's pledge nothing sent (review s65,
   * `tests/network/pledge_sync_test.ts`).
   *
   * Cost: at most {@link PLEDGES_PUSHED_ON_CONNECT} + 1 `validation.stake` messages of about 150
   * bytes per connection each way (7 KB), under the 100 refusals a peer tolerates, so one that
   * offers `validation/1` without handling pledges is not made to hang up.
   */
  sendPledges(connection: Connection, ctx: ActorContext<NetworkMessage>): void {
    const own = this.#options.pledge;
    if (own !== undefined) this.pushPledges({ type: "push_pledges", connection, pledges: [own] });
    // Then the convictions owed to its key while it was away, from the reserve (review s80 vgfx
    // F2): its budget is the key's, remembered across connections, and may still be spent.
    this.sendOwed(ctx);
    const validator = this.#options.validator();
    if (validator === undefined) return;
    const peer = connection.peerKey!;
    // Two more than sent: the peer's own and ours are left out below; those past the budget
    // are queued ({@link MAX_QUEUED_PLEDGES}).
    const ask = { type: "pledges", limit: PLEDGES_PUSHED_ON_CONNECT + 2 + MAX_QUEUED_PLEDGES };
    askValidatorFor<StakePledge[]>(ctx.system, validator, ask, connection)
      .then((recorded) => {
        // Not ours again (it went first), nor the peer's own: it knows its own stake.
        const pledges = recorded.filter((p) =>
          !bytesEqual(p.key, peer) && !(own && bytesEqual(p.key, own.key))
        ).slice(0, PLEDGES_PUSHED_ON_CONNECT + MAX_QUEUED_PLEDGES);
        this.#options.tell(ctx, { type: "push_pledges", connection, pledges });
      }, () => {}); // it closed, or the validator failed every ask: the next connect sends them
  }

  /**
   * A peer refused a receipt of `worker` for want of stake: it keeps the receipt until the
   * worker's pledge arrives (or says it did not keep it: the receipt is then sent again after
   * the pledge, `_peer_gossip.ts`), so it is sent the pledge our ledger holds (out of the room kept
   * back for this, {@link PLEDGE_SEND_RESERVE}). Refusals that come while the pledge is on its way
   * share that one send. Resolves true once the pledge is written on the connection (what is
   * sent on it after goes after it, and the peer's validator takes it first), false when none
   * was sent: no pledge here (a deposit), no ledger, no room left in the peer's budget, the
   * connection closed.
   */
  sendNeeded(
    connection: Connection,
    worker: Uint8Array,
    ctx: ActorContext<NetworkMessage>,
  ): Promise<boolean> {
    const validator = this.#options.validator();
    if (validator === undefined || connection.isClosed) return Promise.resolve(false);
    // Its own stake is its own to record.
    if (bytesEqual(worker, connection.peerKey!)) return Promise.resolve(false);
    const key = toHex(worker);
    let needed = this.#needed.get(connection);
    if (needed === undefined) this.#needed.set(connection, needed = new Map());
    const sending = needed.get(key);
    if (sending !== undefined) return sending.promise;
    const waiting = Promise.withResolvers<boolean>();
    needed.set(key, waiting);
    const ledger = ctx.system.lookup<{ type: "pledges"; key: Uint8Array }>(validator);
    if (ledger === undefined) this.#sentNeeded(connection, key, false);
    ledger?.ask<StakePledge[]>({ type: "pledges", key: worker })
      .then((pledges) => {
        // A deposit, not a pledge: nothing to pass on.
        if (pledges.length === 0) return this.#sentNeeded(connection, key, false);
        this.#options.tell(ctx, { type: "push_pledges", connection, pledges, needed: true });
      }, () => this.#sentNeeded(connection, key, false));
    return waiting.promise;
  }

  /** Tell whoever waits for the pledge of `key` needed on `connection` whether it was `sent`. */
  #sentNeeded(connection: Connection, key: string, sent: boolean): void {
    const needed = this.#needed.get(connection);
    needed?.get(key)?.resolve(sent);
    needed?.delete(key);
  }

  /**
   * A fraud proof or a "proof withheld" claim is about to be passed on: look up its author's
   * pledge in our ledger, and tell the NetworkActor `then(pledge)` (`pledge` undefined: none
   * there — a deposit — or no ledger here, or it did not answer), so that each peer can be sent
   * the pledge just before the evidence ({@link sendAhead}).
   */
  lookUpPledge(
    accuser: Uint8Array,
    ctx: ActorContext<NetworkMessage>,
    then: (pledge: StakePledge | undefined) => NetworkMessage,
  ): void {
    const validator = this.#options.validator();
    const ledger = validator === undefined
      ? undefined
      : ctx.system.lookup<{ type: "pledges"; key: Uint8Array }>(validator);
    if (ledger === undefined) return this.#options.tell(ctx, then(undefined));
    ledger.ask<StakePledge[]>({ type: "pledges", key: accuser }).then(
      (pledges) => this.#options.tell(ctx, then(pledges[0])),
      () => this.#options.tell(ctx, then(undefined)),
    );
  }

  /**
   * Send `pledge` to the peer of `connection` ahead of the evidence that follows it on the
   * connection: a fraud proof, which a ledger takes only from an accuser with stake there, or a
   * "proof withheld" claim, which a ledger takes over (asks the worker itself, and slashes it if
   * it withholds there too) only from a claimant with stake there. The peer may lack the pledge
   * (not among those pushed on connect, or its gossip dropped past the budget) though this node,
   * which checked the evidence against it, holds it; without it the peer holds the evidence
   * until the pledge comes, which nothing else asks for. Out of the room kept back for pledges a
   * peer needs ({@link PLEDGE_SEND_RESERVE}): all of it for a fraud proof (`kind`, the default),
   * half for a claim, a stream proof or a plain verdict (`withheld`, `stream`, `verdict`,
   * {@link CLAIM_PLEDGE_RESERVE}); with none left the evidence goes
   * alone (and is held there until the pledge comes). Not to the
   * author itself, nor to a peer that keeps no ledger, nor again on a connection that has
   * carried the pledge, either way, in the last {@link CARRIED_PLEDGE_TTL_MS} (a copy carried
   * before may have been lost on the way into the peer's ledger: sent again then)
   * ({@link MAX_CARRIED_PLEDGES}); for a plain verdict, nor to a peer key that was sent it or sent
   * it us in the last {@link VERDICT_PLEDGE_TTL_MS}. Frames on a connection go out in the order sent, and a peer
   * hands them to its validator in that order, so the pledge is recorded first.
   */
  sendAhead(
    connection: Connection,
    pledge: StakePledge | undefined,
    kind: Accusation["kind"] | "verdict" = "inference",
  ): void {
    if (pledge === undefined || connection.isClosed) return;
    if (bytesEqual(pledge.key, connection.peerKey!)) return;
    if (!connection.supports(VALIDATION_PROTOCOL.name)) return;
    if (this.#hasCarried(connection, pledge)) return;
    const peer = toHex(connection.peerKey!);
    // A verdict moves no stake: the pledge goes again only past VERDICT_PLEDGE_TTL_MS.
    if (kind === "verdict" && this.#keyHolds(peer, pledge)) return;
    const entry = this.#options.entryOf(connection);
    // A claim and a stream proof are as cheap to make as to send: they leave half the room
    // kept for pledges a peer needs (review s69 for stream proofs, s56 for claims).
    // A plain verdict likewise (any key with a pledge signs one per receipt; review s82 sim F1).
    const cheap = kind === "withheld" || kind === "stream" || kind === "verdict";
    const reserve = cheap ? CLAIM_PLEDGE_RESERVE : 0;
    if (entry === undefined || !entry.pledges.take(reserve)) return;
    this.#carry(connection, pledge);
    connection.notify(StakeAnnouncementMessage, { pledge }).catch(() => {}); // closed meanwhile
  }

  /**
   * Send `pledges` to one peer, as far as its budget goes (the rest of a connect push is queued,
   * {@link MAX_QUEUED_PLEDGES}; the rest of `needed` ones are not sent: the peer asks again).
   * Sent one after another, each waiting for room in the connection's write budget, so a slow
   * peer slows this down rather than piling it up in memory.
   *
   * A pledge of the connect push ({@link sendPledges}: not `needed`) that an open connection of
   * the same peer key carried in the last {@link CARRIED_PLEDGE_TTL_MS} is not sent again: the
   * budget is the key's, across its connections, and a copy took the room of a pledge the peer
   * lacks. A node connected to a peer more than once pushes on each connection; a connection's
   * own pledge goes at once and its ledger's pledges once the validator answers, so when the
   * first connection's answer came after a later connection's own pledge (a validator down or
   * slow at the connect, `_validator_ask.ts`), that copy took the room of one of the pledges the
   * first push carries (review s65; `tests/network/peers_test.ts`, "connected three
   * times").
   *
   * The connect push's convictions (a key listed twice: both its pledges) are owed to the peer
   * rather than pushed, and sent first, the reserve included ({@link sendOwed}): the peer may have
   * been away when gossip carried them (review s80 vgfx F2). `ctx`: where the timer that sends
   * what is still owed tells (none in tests that call {@link sendOwed} themselves).
   */
  pushPledges(message: PushPledgesMessage, ctx?: ActorContext<NetworkMessage>): void {
    if (!message.needed) {
      const convictions = convictionPledges(message.pledges);
      if (convictions.size > 0) {
        const key = toHex(message.connection.peerKey!);
        const pushed = message.pledges.filter((p) => !convictions.has(p));
        // Those this peer key carried in the last minute (another connection's push) aside.
        for (const pledge of convictions) {
          if (!this.#keyCarried(message.connection, pledge)) this.#owe(key, pledge);
        }
        this.sendOwed(ctx);
        if (pushed.length === 0) return;
        message = { ...message, pledges: pushed };
      }
    }
    const { connection } = message;
    // Pledges `needed` ({@link sendNeeded}): whoever waits for one learns whether it was written.
    const sent = (pledges: readonly StakePledge[], written: boolean) => {
      if (!message.needed) return;
      for (const { key } of pledges) this.#sentNeeded(connection, toHex(key), written);
    };
    const entry = this.#options.entryOf(connection);
    if (entry === undefined || connection.isClosed) return sent(message.pledges, false);
    const reserve = message.needed ? 0 : PLEDGE_SEND_RESERVE;
    const pushed = message.needed
      ? message.pledges
      : message.pledges.filter((pledge) => !this.#keyCarried(connection, pledge));
    const fits: StakePledge[] = [];
    for (const pledge of pushed) {
      if (!entry.pledges.take(reserve)) break;
      fits.push(pledge);
      this.#carry(connection, pledge);
    }
    sent(pushed.slice(fits.length), false);
    // The connect push past the budget: queued, sent as it refills ({@link MAX_QUEUED_PLEDGES}).
    if (!message.needed) {
      const key = toHex(connection.peerKey!);
      for (const pledge of pushed.slice(fits.length)) this.#queue(key, pledge, "backlog", ctx);
    }
    if (fits.length === 0) return;
    (async () => {
      let written = 0;
      try {
        for (const pledge of fits) {
          if (connection.isClosed) return;
          await connection.notify(StakeAnnouncementMessage, { pledge });
          sent([pledge], true);
          written++;
        }
      } finally {
        sent(fits.slice(written), false);
      }
    })().catch(() => {}); // it closed: nothing left to send
  }

  /**
   * Gossip of a pledge new to our ledger (a key's first, or a second that convicts it, and then
   * its first again: `actors/validator_actor.ts`): to one connection of every `validation/1` peer but
   * `except` (where it came from) and the pledger itself, each within its budget, keeping
   * {@link PLEDGE_SEND_RESERVE} back: past it the pledge is queued for that peer, ahead of the
   * connect push's backlog ({@link MAX_QUEUED_PLEDGES}), and sent as the budget refills, so a
   * flood through this node reaches each peer at the budget's pace at most; an honest pledge
   * reaches it unless a flood faster than the drain fills the queue with relayed pledges while it
   * is the oldest there (then with the evidence that needs it, {@link sendNeeded}). The
   * two pledges of a conviction (`conviction`) are its evidence, and every ledger must come to
   * hold both: they may use the reserve but for {@link OWED_SEND_RESERVE} (left to a pledge a
   * peer needs, {@link sendNeeded}), and with no more room
   * they are owed to that peer and sent as its budget refills ({@link MAX_OWED_CONVICTIONS},
   * {@link sendOwed}; `ctx`: where the timer that wakes it tells, none in tests that call
   * {@link sendOwed} themselves). Owed pledges go before anything relayed after them.
   */
  relayPledge(
    pledge: StakePledge,
    except: string | undefined,
    conviction = false,
    ctx?: ActorContext<NetworkMessage>,
  ): number {
    this.sendOwed(ctx);
    const pledger = toHex(pledge.key);
    // The peer it came from has it: not sent it ahead of its author's evidence either.
    for (const { connection } of this.#options.peers.get(except ?? "") ?? []) {
      this.#carry(connection, pledge);
    }
    let sent = 0;
    for (const [key, list] of this.#options.peers) {
      if (key === except || key === pledger) continue;
      const entry = list.find((p) => !p.connection.isClosed);
      if (entry === undefined || !entry.connection.supports(VALIDATION_PROTOCOL.name)) continue;
      // Nothing goes ahead of the convictions owed to it: they are sent first, as room comes back.
      const owed = this.#owed.has(key);
      if (conviction) {
        if (owed || !entry.pledges.take(OWED_SEND_RESERVE)) {
          this.#owe(key, pledge, ctx);
          continue;
        }
      } else if (
        owed || (this.#queued.get(key)?.fresh.size ?? 0) > 0 ||
        !entry.pledges.take(PLEDGE_SEND_RESERVE)
      ) {
        // No room (or fresh ones wait ahead of it): queued, sent as the budget refills.
        this.#queue(key, pledge, "fresh", ctx);
        continue;
      }
      this.#send(key, entry.connection, pledge);
      sent++;
    }
    return sent;
  }

  /**
   * Send the convictions owed to each peer ({@link MAX_OWED_CONVICTIONS}) as far as its budget
   * goes, the reserve included but for {@link OWED_SEND_RESERVE}: the heaviest first (of equal
   * ones the oldest), each key's pledges its first first. Those of a peer key with no open
   * connection are kept for its return ({@link MAX_OWED_AWAY_PEERS}; sent first then,
   * {@link sendPledges}). Then, to a peer owed none, the pledges queued for it
   * ({@link MAX_QUEUED_PLEDGES}: the fresh ones, then the backlog), keeping
   * {@link PLEDGE_SEND_RESERVE} back; a queue of a peer key with no open connection is forgotten,
   * and what it was taken to hold ({@link VERDICT_PLEDGE_TTL_MS}). While some are still owed or
   * queued to a connected peer, a timer on the connections' clock tells the NetworkActor (`ctx`)
   * to call this again once one pledge of room is back.
   */
  sendOwed(ctx?: ActorContext<NetworkMessage>): void {
    for (const [key, owed] of this.#owed) {
      const entry = this.#openEntry(key);
      if (entry === undefined) continue;
      while (owed.size > 0) {
        const [convicted, conviction] = heaviest(owed);
        if (!entry.pledges.take(OWED_SEND_RESERVE)) break;
        this.#send(key, entry.connection, conviction.pledges.shift()!);
        if (conviction.pledges.length === 0) owed.delete(convicted);
      }
      if (owed.size === 0) this.#owed.delete(key);
    }
    for (const key of this.#heldBy.keys()) {
      if (this.#openEntry(key) === undefined) this.#heldBy.delete(key);
    }
    for (const [key, queued] of this.#queued) {
      const entry = this.#openEntry(key);
      if (entry === undefined) {
        this.#queued.delete(key); // away: pushed pledges again when it comes back
        continue;
      }
      if (this.#owed.has(key)) continue; // the convictions owed there go first
      drain: for (const lane of [queued.fresh, queued.backlog]) {
        for (const [sig, pledge] of lane) {
          // One the peer sent us, or that went to it since: not sent again.
          if (this.#keyCarried(entry.connection, pledge) || this.#keyHolds(key, pledge)) {
            lane.delete(sig);
            continue;
          }
          if (!entry.pledges.take(PLEDGE_SEND_RESERVE)) break drain;
          lane.delete(sig);
          this.#send(key, entry.connection, pledge);
        }
      }
      if (queued.fresh.size + queued.backlog.size === 0) this.#queued.delete(key);
    }
    this.#forgetAway();
    this.#wakeForOwed(ctx);
  }

  /** Stop the timer of {@link sendOwed} (the NetworkActor stops). */
  close(): void {
    if (this.#owedTimer !== undefined) this.#timers.clearTimeout(this.#owedTimer);
    this.#owedTimer = undefined;
    this.#owed.clear();
    this.#queued.clear();
    this.#heldBy.clear();
  }

  /**
   * Queue `pledge` for peer `key` in `lane` ({@link MAX_QUEUED_PLEDGES}: past it the backlog's
   * last is dropped, with no backlog the oldest fresh one, and a backlog entry never pushes out a
   * fresh one; once: a copy queued already is not queued again).
   */
  #queue(
    key: string,
    pledge: StakePledge,
    lane: keyof PledgeQueue,
    ctx?: ActorContext<NetworkMessage>,
  ): void {
    let queued = this.#queued.get(key);
    if (queued === undefined) {
      this.#queued.set(key, queued = { fresh: new Map(), backlog: new Map() });
    }
    const sig = toHex(pledge.sig);
    if (queued.fresh.has(sig) || queued.backlog.has(sig)) return;
    if (queued.fresh.size + queued.backlog.size >= MAX_QUEUED_PLEDGES) {
      if (queued.backlog.size > 0) {
        queued.backlog.delete([...queued.backlog.keys()].at(-1)!);
      } else if (lane === "fresh") {
        queued.fresh.delete(queued.fresh.keys().next().value!);
      } else return;
    }
    queued[lane].set(sig, pledge);
    this.#wakeForOwed(ctx);
  }

  /**
   * Owe `pledge`, one of a conviction's, to peer `key` ({@link MAX_OWED_CONVICTIONS}; once: a copy
   * owed already is not). Past the bound the lightest conviction owed there is forgotten, of equal
   * ones the newest: this one, if none is lighter.
   */
  #owe(key: string, pledge: StakePledge, ctx?: ActorContext<NetworkMessage>): void {
    let owed = this.#owed.get(key);
    if (owed === undefined) this.#owed.set(key, owed = new Map());
    const convicted = toHex(pledge.key);
    const conviction = owed.get(convicted);
    if (conviction !== undefined) {
      if (!conviction.pledges.some((p) => bytesEqual(p.sig, pledge.sig))) {
        conviction.pledges.push(pledge);
      }
      return;
    }
    owed.set(convicted, { pledges: [pledge], weight: pledge.amount });
    if (owed.size > MAX_OWED_CONVICTIONS) {
      const [lightest] = lightestNewest(owed);
      owed.delete(lightest);
      this.#options.log(
        `peer ${key.slice(0, 16)}: the conviction of ${lightest.slice(0, 16)} not sent ` +
          `(${MAX_OWED_CONVICTIONS} heavier or older owed already)`,
      );
    }
    this.#wakeForOwed(ctx);
  }

  /**
   * Past {@link MAX_OWED_AWAY_PEERS} peer keys away and owed, forget those owed the lightest
   * (by the heaviest conviction owed there), of equal ones those owed longest.
   */
  #forgetAway(): void {
    const away = [...this.#owed].filter(([key]) => this.#openEntry(key) === undefined);
    const over = away.length - MAX_OWED_AWAY_PEERS;
    if (over <= 0) return;
    const ranked = away.map(([key, owed], at) => ({ key, weight: heaviest(owed)[1].weight, at }))
      .sort((x, y) => x.weight - y.weight || x.at - y.at);
    for (const { key } of ranked.slice(0, over)) this.#owed.delete(key);
  }

  /**
   * Arm the timer of {@link sendOwed} for the first connected peer's next pledge of room: one owed
   * convictions, or one owed none with pledges queued.
   */
  #wakeForOwed(ctx?: ActorContext<NetworkMessage>): void {
    if (ctx === undefined || this.#owedTimer !== undefined) return;
    if (this.#owed.size === 0 && this.#queued.size === 0) return;
    let ms = Infinity;
    for (const key of this.#owed.keys()) {
      const entry = this.#openEntry(key);
      if (entry !== undefined) ms = Math.min(ms, entry.pledges.inMs(OWED_SEND_RESERVE));
    }
    for (const key of this.#queued.keys()) {
      const entry = this.#openEntry(key);
      if (entry !== undefined && !this.#owed.has(key)) {
        ms = Math.min(ms, entry.pledges.inMs(PLEDGE_SEND_RESERVE));
      }
    }
    if (ms === Infinity) return;
    this.#owedTimer = this.#timers.setTimeout(() => {
      this.#owedTimer = undefined;
      this.#options.tell(ctx, { type: "send_owed_pledges" });
    }, Math.max(ms, 1));
  }

  /** Peer `key`'s first entry with an open connection; undefined while it has none. */
  #openEntry(key: string): PledgePeer | undefined {
    return this.#options.peers.get(key)?.find((p) => !p.connection.isClosed);
  }

  /** Send `pledge` on `connection`, to peer `key` (room taken by the caller). */
  #send(key: string, connection: Connection, pledge: StakePledge): void {
    this.#carry(connection, pledge);
    connection.notify(StakeAnnouncementMessage, { pledge }).catch((error) =>
      this.#options.log(`peer ${key.slice(0, 16)}: ${errorWords(error)}`)
    );
  }

  /**
   * Whether `connection` carried `pledge` in the last {@link CARRIED_PLEDGE_TTL_MS} (see
   * {@link MAX_CARRIED_PLEDGES}).
   */
  #hasCarried(connection: Connection, pledge: StakePledge): boolean {
    const at = this.#carried.get(connection)?.get(toHex(pledge.sig));
    return at !== undefined && this.#now() - at < CARRIED_PLEDGE_TTL_MS;
  }

  /**
   * Whether an open connection of `connection`'s peer key (`connection` too) carried `pledge` in
   * the last {@link CARRIED_PLEDGE_TTL_MS}.
   */
  #keyCarried(connection: Connection, pledge: StakePledge): boolean {
    const connections = this.#options.peers.get(toHex(connection.peerKey!)) ?? [];
    return connections.some((peer) =>
      !peer.connection.isClosed && this.#hasCarried(peer.connection, pledge)
    );
  }

  /**
   * Note that `connection` carried `pledge` now (the oldest noted is forgotten past the bound,
   * and those older than {@link CARRIED_PLEDGE_TTL_MS} as they come up: noted in time order).
   */
  #carry(connection: Connection, pledge: StakePledge): void {
    let carried = this.#carried.get(connection);
    if (carried === undefined) this.#carried.set(connection, carried = new Map());
    const key = toHex(pledge.sig);
    const now = this.#now();
    note(carried, key, now, CARRIED_PLEDGE_TTL_MS);
    const peer = toHex(connection.peerKey!);
    let held = this.#heldBy.get(peer);
    if (held === undefined) this.#heldBy.set(peer, held = new Map());
    note(held, key, now, VERDICT_PLEDGE_TTL_MS);
  }

  /** Whether peer `key` was sent `pledge`, or sent it us, within {@link VERDICT_PLEDGE_TTL_MS}. */
  #keyHolds(key: string, pledge: StakePledge): boolean {
    const at = this.#heldBy.get(key)?.get(toHex(pledge.sig));
    return at !== undefined && this.#now() - at < VERDICT_PLEDGE_TTL_MS;
  }
}

/**
 * Note `sig` in `memo` at `now`, to the back (the oldest noted is forgotten past
 * {@link MAX_CARRIED_PLEDGES}, and those older than `ttl` as they come up: noted in time order).
 */
function note(memo: Map<string, number>, sig: string, now: number, ttl: number): void {
  memo.delete(sig); // to the back: carried again now
  memo.set(sig, now);
  for (const [oldest, at] of memo) {
    if (memo.size <= MAX_CARRIED_PLEDGES && now - at < ttl) break;
    memo.delete(oldest);
  }
}

/** The heaviest conviction owed (of equal ones the oldest): sent first. */
function heaviest(owed: Map<string, OwedConviction>): [string, OwedConviction] {
  let best: [string, OwedConviction] | undefined;
  for (const entry of owed) {
    if (best === undefined || entry[1].weight > best[1].weight) best = entry;
  }
  return best!;
}

/** The lightest conviction owed (of equal ones the newest): forgotten first past the bound. */
function lightestNewest(owed: Map<string, OwedConviction>): [string, OwedConviction] {
  let worst: [string, OwedConviction] | undefined;
  for (const entry of owed) {
    if (worst === undefined || entry[1].weight <= worst[1].weight) worst = entry;
  }
  return worst!;
}

/** The pledges of `pledges` whose key is listed twice: convictions (`Ledger.pledges` lists both). */
function convictionPledges(pledges: readonly StakePledge[]): Set<StakePledge> {
  const count = new Map<string, number>();
  for (const { key } of pledges) count.set(toHex(key), (count.get(toHex(key)) ?? 0) + 1);
  return new Set(pledges.filter(({ key }) => count.get(toHex(key))! > 1));
}
