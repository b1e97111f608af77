/**
 * The NetworkActor's hellos, and what a peer's hello leads it to ask: this node's signed hello
 * (roles, models, load, storage, version), re-signed whenever what it says changes and sent on
 * every open connection ({@link PeerHellos.helloLoop}); each peer's, kept when signed by the key
 * its connection proved and newer ({@link PeerHellos.onHello}); the peer's model list, asked on
 * connect and when a hello names other models, one ask in flight per connection
 * ({@link PeerHellos.askModels}); and its standing in this node's ledger, asked when its hello
 * says it serves inference, one ask in flight per key ({@link PeerHellos.askStanding}). A flood
 * of hellos never becomes a flood of requests held open here, nor of signature checks: each
 * connection has its hellos checked at a pace with headroom over an honest node's
 * ({@link HELLO_BURST}, then {@link HELLO_PACE_HEADROOM} per `helloIntervalMs`); a faster one is
 * held, the newest only, until that pace allows it, and refused, counted toward the connection's
 * refusal limit, which cuts a flood off (review s76 F5: 7,000 changed hellos a second, each
 * verified at ~0.19 ms and each a peer-table change).
 * The answers come back to the actor as messages (`hello_signed`, `peer_models`, `peer_standing`,
 * `hello_due`); the table's entries
 * (`_peer_entry.ts`) are only touched in its `receive`. Owned and used by the NetworkActor
 * (`network_actor.ts`, which re-exports {@link DEFAULT_HELLO_INTERVAL_MS}); not part of the
 * public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import type { Connection } from "../protocols/connection.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { ProtocolError, type RemoteError } from "../protocols/protocol_errors.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { fromHex } from "../protocols/hash.ts";
import { INFERENCE_PROTOCOL, ListModelsMessage } from "../protocols/inference_messages.ts";
import {
  HELLO_MAX_AGE_MS,
  knownHelloFields,
  PEER_PROTOCOL,
  type PeerHello,
  type PeerHelloBody,
  PeerHelloMessage,
  PeerHelloSchema,
  signPeerHello,
  verifyPeerHello,
} from "../protocols/peer_hello.ts";
import type { WorkerCandidate } from "./worker_choice.ts";
import type { LogLimiter } from "./log_limiter.ts";
import type { PeerServices } from "./peer_services.ts";
import { PledgeBudget } from "./pledge_budget.ts";
import type { PeerEntry } from "./_peer_entry.ts";
import { HELLO_TOO_SOON, OwnHelloRefusals } from "./_hello_refusals.ts";
import type { NetworkActorOptions, NetworkMessage } from "./network_actor.ts";

/**
 * Default `helloIntervalMs`: a peer's load is at most a second old when a job is routed, for
 * one small signed message a second per peer.
 */
export const DEFAULT_HELLO_INTERVAL_MS = 1_000;

/** Hellos with a bad signature that close a connection (see {@link PeerHellos.onHello}). */
const MAX_BAD_HELLOS = 3;

/**
 * Hellos one connection may have checked at once, before the pace ({@link HELLO_PACE_HEADROOM}
 * per `helloIntervalMs`) holds the rest. An honest node sends at most one per interval
 * (`helloLoop`, on its own clock), but those sent while its link was stalled arrive together: a
 * hello later than the idle timeout (5 s by default) finds its connection dropped, so up to five
 * sent a second apart can come at once, and a change of roles or models right after must not wait:
 * six covers those (three refused 6 of 200 hellos up to 4 s late: review s76 vstore F6). A peer
 * that sends faster is held to the pace, and each hello over it is a refusal: a flood reaches the
 * connection's `maxRefusals` (100 in 10 s by default) and is cut off, while one honest hello too
 * many costs one refusal.
 */
export const HELLO_BURST = 6;

/**
 * How much faster than an honest sender the pace refills: one hello of room per
 * `helloIntervalMs / 2`. Refilled at exactly the honest rate, the bucket a delayed bunch emptied
 * never filled again, so every later late hello was refused: an honest peer whose hellos came in
 * order but up to 3–4 s late had 17–70 of 300 refused, each counted toward its refusal limit
 * (review s76 vstore F6). Twice the rate refills it while the peer keeps its pace, and a flood is
 * still held to two checked hellos an interval and cut off by its refusals.
 */
export const HELLO_PACE_HEADROOM = 2;

/** A hello came faster than the hello interval allows: held back, and counted as a refusal. */
export class HelloTooSoonError extends ProtocolError {
  /** @param intervalMs The hello interval (the pace allows {@link HELLO_PACE_HEADROOM} per it). */
  constructor(intervalMs: number) {
    super(
      HELLO_TOO_SOON,
      `more than ${HELLO_BURST} hellos at once, or more than one per ` +
        `${helloRefillMs(intervalMs)} ms after them: held until then`,
      { envelopeType: PeerHelloMessage.type },
    );
  }
}

/** Options of {@link PeerHellos}: what it needs of the NetworkActor. */
export interface PeerHellosOptions {
  /** The actor's options: read for `identity`, `helloIntervalMs`, `now` and `log`. */
  options: NetworkActorOptions;
  /** The actor's open connections by hex peer key, the oldest first (only read). */
  peers: ReadonlyMap<string, readonly PeerEntry[]>;
  /** The table's entry of `connection` (undefined once it is down). */
  entryOf: (connection: Connection) => PeerEntry | undefined;
  /** What this node serves to peers (set in the actor's `preStart`): its validator is asked. */
  services: () => PeerServices | undefined;
  /** The log lines peers can cause, a few per kind at a time (`log_limiter.ts`). */
  peerLog: LogLimiter;
  /** Tell the NetworkActor `message`, quietly (it may be stopping). */
  tell: (ctx: ActorContext<NetworkMessage>, message: NetworkMessage) => void;
}

/** This node's hello and its peers'; see the module doc. */
export class PeerHellos {
  readonly #options: NetworkActorOptions;
  readonly #parts: PeerHellosOptions;
  readonly #peers: ReadonlyMap<string, readonly PeerEntry[]>;
  readonly #peerLog: LogLimiter;
  /** This node's latest signed hello, sent to each peer on connect. */
  #hello?: PeerHello;
  /** Why peers refuse our own hello, as last logged (said once while it lasts). */
  #ownRefusal?: string;
  /** Peers' refusals of our hello, said in the log once per connection and code. */
  readonly #refusedByPeers: OwnHelloRefusals;
  /** Hex key → its account in this node's ledger (asked when its hello arrives). */
  readonly #standing = new Map<string, WorkerCandidate["standing"]>();
  /**
   * Hex key → its standing asks: whether one is in flight, whether another was wanted meanwhile,
   * and when a hello last asked. A peer's hellos are its to send: one ask in flight per key, and
   * one per `helloIntervalMs` for hellos (an honest peer's pace), or each hello re-sent would be
   * a ledger ask, held open here until answered.
   */
  readonly #standingAsks = new Map<string, { inFlight: boolean; again: boolean; at: number }>();

  /** @param parts See {@link PeerHellosOptions}. */
  constructor(parts: PeerHellosOptions) {
    this.#parts = parts;
    this.#options = parts.options;
    this.#peers = parts.peers;
    this.#peerLog = parts.peerLog;
    this.#refusedByPeers = new OwnHelloRefusals({
      peerLog: parts.peerLog,
      ownVersion: () => this.#hello?.version,
      peerVersion: (connection) => this.#entryOf(connection)?.info.version,
      intervalMs: () => this.#every,
    });
  }

  /**
   * `connection`'s peer sent `error`, which answers no request of ours (its `onRemoteError`): a
   * log line when it refuses our hello (`_hello_refusals.ts`).
   */
  refusedByPeer(connection: Connection, error: RemoteError): void {
    this.#refusedByPeers.refused(connection, error);
  }

  /** This node's latest signed hello, sent to each peer on connect. */
  get hello(): PeerHello | undefined {
    return this.#hello;
  }

  /** Hex key → its account in this node's ledger (asked when its hello arrives). */
  get standing(): Map<string, WorkerCandidate["standing"]> {
    return this.#standing;
  }

  /** Forget what was asked of `key`'s standing: its last connection is down. */
  forget(key: string): void {
    this.#standing.delete(key);
    this.#standingAsks.delete(key);
  }

  get #services(): PeerServices | undefined {
    return this.#parts.services();
  }

  #entryOf(connection: Connection): PeerEntry | undefined {
    return this.#parts.entryOf(connection);
  }

  /** Sign and send this node's hello whenever what it says changes (and at least every 30 s). */
  async helloLoop(
    describe: () => Promise<PeerHelloBody>,
    ctx: ActorContext<NetworkMessage>,
  ): Promise<void> {
    const every = this.#options.helloIntervalMs ?? DEFAULT_HELLO_INTERVAL_MS;
    let last = "";
    let lastAt = 0;
    let seq = 0;
    while (!ctx.signal.aborted) {
      try {
        const body = await describe();
        const text = JSON.stringify(body);
        const now = Date.now();
        if (text !== last || now - lastAt >= HELLO_MAX_AGE_MS) {
          const hello = signPeerHello(this.#options.identity, body, ++seq, now);
          this.#checkOwn(hello);
          last = text;
          lastAt = now;
          await ctx.self.tell({ type: "hello_signed", hello });
        }
      } catch (error) {
        if (ctx.signal.aborted) return;
        this.#log(`hello: ${(error as Error).message}`);
      }
      await sleep(every, ctx.signal);
    }
  }

  /**
   * Say once, while it lasts, that our own hello breaks the grammar peers check it against: each
   * peer refuses it (`invalid_body`, an answer that names no request of ours), so none would know
   * this node's roles, models or load, and neither side's log said why (review s77 vstr F3). A
   * version off the grammar is refused at start (`node/version.ts`); this catches the rest (a
   * `describe` of a test or an embedder, a field past its bound).
   */
  #checkOwn(hello: PeerHello): void {
    const result = PeerHelloSchema.safeParse(hello);
    const why = result.success
      ? undefined
      : result.error.issues.map((i) => `${i.path.join(".") || "hello"}: ${i.message}`).join("; ");
    if (why !== undefined && why !== this.#ownRefusal) {
      this.#log(
        `hello: refused by every peer, ours breaks the hello's grammar (${why}): peers will ` +
          `not know this node's roles, models or load`,
      );
    }
    this.#ownRefusal = why;
  }

  sendHello(hello: PeerHello): void {
    this.#hello = hello;
    // On every open connection: a peer keeps a hello per connection and weighs each as a
    // routing candidate, so one sent on the first only left the others claiming the old load.
    for (const list of this.#peers.values()) {
      for (const { connection } of list) {
        if (connection.isClosed || !connection.supports(PEER_PROTOCOL.name)) continue;
        connection.notify(PeerHelloMessage, { hello }).catch(() => {});
      }
    }
  }

  /**
   * A peer's hello: kept if it is newer (its `seq`, compared first), within the connection's pace
   * ({@link HELLO_BURST}, then {@link HELLO_PACE_HEADROOM} per `helloIntervalMs`) and signed by the
   * key this connection proved. One for another key ends the connection (an honest node sends its
   * own). One past the pace is held, the newest only, and checked once the pace allows
   * ({@link helloDue}), so the last of a burst still arrives within one interval; it is refused
   * too, counted toward the connection's refusal limit ({@link HelloTooSoonError}). One whose
   * signature does not verify is dropped, and the {@link MAX_BAD_HELLOS}th ends it: a peer left
   * connected could send them without end, each an ed25519 check, while a version that signs its
   * hellos in some way this one cannot check is not cut off at its first.
   */
  onHello(connection: Connection, hello: PeerHello, ctx: ActorContext<NetworkMessage>): void {
    const entry = this.#entryOf(connection);
    if (entry === undefined) return;
    if (!bytesEqual(hello.key, connection.peerKey!)) {
      const why = "hello refused (for another key than its connection's)";
      this.#peerLog.line("hello refused", `peer ${entry.info.key.slice(0, 16)}: ${why}`);
      connection.close(new Error(why)).catch(() => {});
      return;
    }
    // A hello not newer than the one kept (verified, on this proven connection) is a replay or
    // late: dropped before its signature is checked or its fields parsed again, whatever its
    // signature says (each replay cost ~0.24 ms, review s64). A newer one is verified first.
    if (entry.hello !== undefined && hello.seq <= entry.hello.seq) return;
    if (!this.#paceOf(entry).take()) {
      if (entry.heldHello === undefined || hello.seq > entry.heldHello.seq) {
        entry.heldHello = hello;
      }
      connection.refuse(new HelloTooSoonError(this.#every));
      this.#holdUntilDue(entry, ctx);
      return;
    }
    this.#take(entry, hello, ctx);
  }

  /**
   * The pace of `connection` has room again for the hello it held (`hello_due`): checked and
   * kept as {@link onHello} would, unless a newer one was kept meanwhile. Not a refusal when
   * another hello took the room first: it waits for the next.
   */
  helloDue(connection: Connection, ctx: ActorContext<NetworkMessage>): void {
    const entry = this.#entryOf(connection);
    if (entry === undefined) return;
    entry.helloTimer = undefined;
    const held = entry.heldHello;
    if (held === undefined) return;
    if (entry.hello !== undefined && held.seq <= entry.hello.seq) {
      entry.heldHello = undefined;
      return;
    }
    if (!this.#paceOf(entry).take()) return this.#holdUntilDue(entry, ctx);
    entry.heldHello = undefined;
    this.#take(entry, held, ctx);
  }

  /** `entry` left the table: its held hello's timer is cleared (nothing is left to check). */
  dropped(entry: PeerEntry): void {
    if (entry.helloTimer !== undefined) this.#timers.clearTimeout(entry.helloTimer);
    entry.helloTimer = undefined;
    entry.heldHello = undefined;
  }

  /** The hello interval: this node's own, the pace every node sends at by default. */
  get #every(): number {
    return this.#options.helloIntervalMs ?? DEFAULT_HELLO_INTERVAL_MS;
  }

  /** The actor's timers (its connections'), for the held hello's wait: tests move them by hand. */
  get #timers(): ConnectionTimers {
    return this.#options.connection?.timers ?? SYSTEM_TIMERS;
  }

  /** `entry`'s pace of hellos, made full on its first; on the clock of the per-peer budgets. */
  #paceOf(entry: PeerEntry): PledgeBudget {
    // `PledgeBudget` is a plain token bucket; its pledge defaults are not used here.
    entry.helloPace ??= new PledgeBudget({
      burst: HELLO_BURST,
      refillMs: helloRefillMs(this.#every),
      now: this.#options.now,
    });
    return entry.helloPace;
  }

  /** Arm one timer per connection for when its pace has room for the held hello. */
  #holdUntilDue(entry: PeerEntry, ctx: ActorContext<NetworkMessage>): void {
    if (entry.helloTimer !== undefined) return;
    const { connection } = entry;
    entry.helloTimer = this.#timers.setTimeout(
      () => this.#parts.tell(ctx, { type: "hello_due", connection }),
      Math.max(1, this.#paceOf(entry).nextInMs),
    );
  }

  /** Check `hello`'s signature and keep it (see {@link onHello}). */
  #take(entry: PeerEntry, hello: PeerHello, ctx: ActorContext<NetworkMessage>): void {
    const { connection } = entry;
    if (!verifyPeerHello(hello)) {
      entry.badHellos = (entry.badHellos ?? 0) + 1;
      const why = `hello refused (not signed by its key; ${entry.badHellos} of ${MAX_BAD_HELLOS})`;
      this.#peerLog.line("hello refused", `peer ${entry.info.key.slice(0, 16)}: ${why}`);
      if (entry.badHellos >= MAX_BAD_HELLOS) connection.close(new Error(why)).catch(() => {});
      return;
    }
    hello = knownHelloFields(hello); // what a later version adds is signed, not kept
    entry.hello = hello;
    entry.info.roles = [...hello.roles];
    entry.info.version = hello.version;
    entry.info.firstVersion ??= hello.version;
    entry.info.load = hello.load && { ...hello.load };
    entry.info.storage = hello.storage && { ...hello.storage };
    if (hello.roles.includes("inference")) this.#helloStanding(entry.info.key, ctx);
    // It serves another set of models now (a training round's new model): ask for the list.
    if (
      hello.models.join() !== entry.info.models.join() &&
      connection.supports(INFERENCE_PROTOCOL.name)
    ) {
      this.askModels(entry, ctx);
    }
  }

  /**
   * Ask a peer for its models. A flood of hellos must not become a flood of requests (each
   * one held here until answered): one is in flight per connection, and another waits until
   * `helloIntervalMs` after it; a hello that names other models meanwhile only marks that the
   * list is to be asked again once this answer is in (`listed`).
   */
  askModels(entry: PeerEntry, ctx: ActorContext<NetworkMessage>): void {
    if (entry.listing) {
      entry.listAgain = true;
      return;
    }
    entry.listing = true;
    entry.listAgain = false;
    const { connection } = entry;
    const every = this.#options.helloIntervalMs ?? DEFAULT_HELLO_INTERVAL_MS;
    const now = Date.now();
    const wait = entry.listedAt === undefined ? 0 : Math.max(0, entry.listedAt + every - now);
    entry.listedAt = now + wait;
    sleep(wait, ctx.signal).then(() => connection.request(ListModelsMessage, {})).then(
      ({ models }) => this.#parts.tell(ctx, { type: "peer_models", connection, models }),
      () => this.#parts.tell(ctx, { type: "peer_models_failed", connection }),
    );
  }

  /** A peer's model list answered (or failed): ask again if a hello asked for it meanwhile. */
  listed(entry: PeerEntry, ctx: ActorContext<NetworkMessage>): void {
    entry.listing = false;
    if (entry.listAgain && !entry.connection.isClosed) this.askModels(entry, ctx);
  }

  /**
   * A hello asks for the peer's standing at most once per `helloIntervalMs` (see
   * `#standingAsks`).
   */
  #helloStanding(key: string, ctx: ActorContext<NetworkMessage>): void {
    const asks = this.standingAsksOf(key);
    const now = (this.#options.now ?? Date.now)();
    const every = this.#options.helloIntervalMs ?? DEFAULT_HELLO_INTERVAL_MS;
    if (now - asks.at < every) return;
    asks.at = now;
    this.askStanding(key, ctx);
  }

  standingAsksOf(key: string): { inFlight: boolean; again: boolean; at: number } {
    let asks = this.#standingAsks.get(key);
    if (asks === undefined) {
      asks = { inFlight: false, again: false, at: -Infinity };
      this.#standingAsks.set(key, asks);
    }
    return asks;
  }

  /**
   * Ask this node's ledger for a worker's account (its stake, locks and credit): one ask in
   * flight per key; one wanted meanwhile is made once it is answered (`peer_standing`).
   */
  askStanding(key: string, ctx: ActorContext<NetworkMessage>): void {
    const validator = this.#services?.validator;
    if (validator === undefined) return;
    const asks = this.standingAsksOf(key);
    if (asks.inFlight) {
      asks.again = true;
      return;
    }
    const ref = ctx.system.lookup<{ type: "account"; key: Uint8Array }>(validator);
    if (ref === undefined) return;
    asks.inFlight = true;
    asks.again = false;
    ref.ask<{ stake: number; locked: number; balance: number }>({
      type: "account",
      key: fromHex(key),
    })
      .then(
        (a) => this.#parts.tell(ctx, { type: "peer_standing", key, standing: { ...a } }),
        () => this.#parts.tell(ctx, { type: "peer_standing", key }),
      );
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }
}

/** One hello of room back per this many ms, for a hello interval of `intervalMs`. */
function helloRefillMs(intervalMs: number): number {
  return Math.max(1, Math.floor(intervalMs / HELLO_PACE_HEADROOM));
}
