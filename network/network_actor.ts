/**
 * NetworkActor: the node's peers. It owns the peer connections — inbound ones from its TCP
 * listener, outbound ones to the static peers it is told about (`--peer HOST:PORT`), redialled
 * with backoff when they drop — and everything that goes out to peers goes through it:
 *
 * - a local receipt is announced to every peer that keeps a ledger (`validation.receipt`), and
 *   asked again after a backoff while a peer's connection refuses it `busy` (`announceReceipt`,
 *   `_accusations.ts`: its worker went unpaid in that ledger);
 * - a verdict or fraud proof this node's validator signed is spread to every such peer; a fraud
 *   proof, or a "proof withheld" claim (`invalid / proof_unavailable`), after its author's pledge
 *   where that connection has not carried it in the last minute (a ledger takes either only from
 *   a key with stake there: `PledgeSync.sendAhead`); a claim also after the receipt and job it is
 *   about, where the validator handed them over (a ledger takes a claim over only while it
 *   remembers them: {@link ClaimEvidence});
 * - such a peer is sent, on connect, this node's stake pledge and a bounded few its ledger
 *   recorded (the keys active there first), and later the pledge of a worker whose receipt it
 *   refused for want of stake, so a node that joins late learns the stake gossiped before it
 *   came; every pledge sent to a peer comes out of that peer's budget (`pledge_budget.ts`;
 *   the exchange itself: `pledge_sync.ts`), and after it its catch-up: the convictions this
 *   node's validator settled and the verdicts its start applied, while their windows are open,
 *   which gossip reached only the peers connected then (`catch_up.ts`);
 * - a validator's challenge fetches proof data over the worker's own connection (looked up
 *   here, requested by the validator's challenge task, so no peer can hold this mailbox);
 * - the peers that offer the storage protocol are the StorageActor's holders: it is told the
 *   set on every change, spreads files over them and this node, and repairs what a departed
 *   holder held;
 * - the edge's jobs go to a peer that serves inference (see `NetworkInferencePort`), the least
 *   busy one that lists the model, and never one slashed in this node's ledger (the validator
 *   says so when the slash lands; a worker that connects is asked about).
 *
 * Each connection is opened with the authenticated handshake (the peer's key is known before
 * any message) and named protocols (`peer_services.ts`), so a peer that does not keep a ledger
 * is never sent a receipt and one that does not serve inference is never sent a job. Peer
 * connections come and go by messages to this actor (`peer_up`, `peer_down`); its table is only
 * touched in `receive`, and each change of it (a peer up, its models, hello or conviction, a peer
 * down) is told to `peerChanges` there (`peer_changes.ts`), for whoever waits on a peer.
 *
 * Transports: TCP (static peers on a LAN or loopback) and, when configured, Hyperswarm through
 * the swarm host (`swarm_host.ts`), which hands this actor each peer's byte stream with the key
 * its Noise handshake authenticated: the connection's own handshake must prove the same key.
 *
 * @module
 */
import type { Actor, ActorContext } from "../actors/actor.ts";
import {
  type Connection,
  type ConnectionOptions,
  type ConnectionTimers,
  SYSTEM_TIMERS,
} from "../protocols/connection.ts";
import type { Protocol } from "../protocols/connection_protocols.ts";
import { LogLimiter } from "./log_limiter.ts";
import type { PeerChange, PeerChanges } from "./peer_changes.ts";
import { PeerStoppedError } from "../protocols/peer_goodbye.ts";
import type { ByteDuplex } from "../protocols/memory_duplex.ts";
import type { Identity } from "../protocols/identity.ts";
import { toHex } from "../protocols/hash.ts";
import type { TextJob } from "../protocols/job.ts";
import type { Receipt } from "../protocols/receipt.ts";
import type { JobAssignment } from "../protocols/assignment.ts";
import type { Verdict } from "../protocols/verdict.ts";
import type { FraudProof } from "../protocols/fraud_proof.ts";
import type { StreamProof } from "../protocols/stream_proof.ts";
import {
  PLEDGE_SEND_BURST,
  PLEDGE_SEND_REFILL_MS,
  type StakePledge,
} from "../protocols/stake_pledge.ts";
import {
  INFERENCE_PROTOCOL,
  VALIDATION_PROTOCOL,
  type WireModelInfo,
} from "../protocols/inference_messages.ts";
import { offeredProtocols, type PeerServices } from "./peer_services.ts";
import { STORAGE_PROTOCOL } from "../protocols/storage_messages.ts";
import type { TrainingGossip } from "../protocols/training_messages.ts";
import {
  PEER_PROTOCOL,
  type PeerHello,
  type PeerHelloBody,
  PeerHelloMessage,
  type PeerLoad,
  type PeerStorage,
} from "../protocols/peer_hello.ts";
import type { WorkerCandidate } from "./worker_choice.ts";
import { ConnectionStoragePeer } from "../storage/connection_storage_peer.ts";
import type { StorageMessage } from "../actors/storage_actor_messages.ts";
import type { PeerAddress } from "./peer_address.ts";
import { PledgeBudgets } from "./pledge_budget.ts";
import { PledgeSync } from "./pledge_sync.ts";
import { catchUpBudget, catchUpTurn, sendCatchUp } from "./catch_up.ts";
import type { AddressBudget } from "./address_budget.ts";
import {
  addressBlock,
  addressGroup,
  ConnectionLimits,
  type ConnectionLimitsOptions,
} from "./connection_limits.ts";
import { peerOriginsOf } from "./_peer_origins.ts";
import type { Accusation, ClaimEvidence } from "./_accusations.ts";
import { PeerGossip } from "./_peer_gossip.ts";
import { peerWords } from "./_peer_words.ts";
import type { PeerEntry } from "./_peer_entry.ts";
import { DEFAULT_HELLO_INTERVAL_MS, PeerHellos } from "./_peer_hellos.ts";
import { MAX_REDIAL_MS, PeerTransports } from "./_peer_transports.ts";
import { REFUSED_MODEL_COOLDOWN_MS, WorkerRouting } from "./_worker_routing.ts";

/** The `addressGroup` of a connection from this machine (`127.0.0.0/8` or `::1`). */
const THIS_MACHINE = addressGroup("127.0.0.1");

/**
 * The placement group of every storage peer whose address is not known (a relayed swarm peer):
 * one shared group, so keys an attacker has relayed hold one copy of a chunk while other groups
 * are left, not one each (review s76 vstore F1: 32 relayed keys held all 3 copies of 59 % of
 * chunks). No `addressGroup` is written so: those are addresses, and a hostname has no brackets.
 */
const UNADDRESSED = "(unaddressed)";

/** A connected peer as the table shows it (plain data: `/metrics`, heartbeat, tests). */
export interface PeerInfo {
  /** Hex public key, authenticated by the handshake. */
  key: string;
  /** `host:port` we dialled, or the remote address of an inbound connection. */
  address: string;
  /** Whether we dialled it. */
  outbound: boolean;
  /** The protocols it offered (`veriflow/inference/1`, ...). */
  protocols: string[];
  /** The models it runs (when it serves inference). */
  models: string[];
  /** Slashed in this node's ledger: no job is routed to it. */
  convicted: boolean;
  /** The roles its signed hello lists (empty until one arrives). */
  roles: string[];
  /** Its software version, from its last hello. */
  version?: string;
  /**
   * The version its first hello on this connection stated, kept for the connection's life: what
   * `/metrics` counts (a hello may state another each time, and each would be a new series of the
   * operator's: review s77 vstr F1, 20 in 10 s from one connection).
   */
  firstVersion?: string;
  /** Its inference load, from its last hello. */
  load?: PeerLoad;
  /** Its storage use, from its last hello. */
  storage?: PeerStorage;
}

/** Options of {@link NetworkActor}. */
export interface NetworkActorOptions {
  /** This node's identity: the key the handshake proves. */
  identity: Identity;
  /** Where to accept peer connections; absent: accept none. */
  listen?: PeerAddress;
  /** Peers to dial and keep dialled. */
  peers?: readonly PeerAddress[];
  /** What this node serves to peers. */
  services: Omit<PeerServices, "system">;
  /**
   * Our stake pledge, sent to every ledger-keeping peer on connect, followed by a bounded few
   * our validator's ledger recorded (see `PledgeSync.sendPledges`).
   */
  pledge?: StakePledge;
  /**
   * Clock of the per-peer pledge budgets, both ways, of the memo of pledges each connection
   * carried (`pledge_sync.ts`), of the pace of each connection's hellos (`_peer_hellos.ts`) and
   * of the limit on log lines peers cause (default `Date.now`; tests fake it).
   */
  now?: () => number;
  /**
   * Options of every peer connection (keepalive, idle timeout, budgets). Their `timers` also run
   * the backoff of a receipt announcement a peer refused `busy` (`announceReceipt`).
   */
  connection?: ConnectionOptions;
  /**
   * How many peer connections are held, in all and per peer key, and how many handshakes of
   * connections peers opened (over TCP, or the swarm with an address known) run at once, in all
   * and per address (`connection_limits.ts`; defaults 256, 4, 64, 8).
   */
  limits?: ConnectionLimitsOptions;
  /** First redial delay, doubling to {@link MAX_REDIAL_MS}; default 250 ms. */
  redialMs?: number;
  /** Where connect and disconnect lines go. */
  log?: (line: string) => void;
  /** Find peers on Hyperswarm (through the swarm host); absent: TCP only. */
  swarm?: SwarmOptions;
  /**
   * What this node's hello says (roles, models, load, storage, version), read every
   * `helloIntervalMs`; a changed answer is signed and sent to every peer. Absent: no hellos.
   */
  describe?: () => Promise<PeerHelloBody>;
  /**
   * How often `describe` is read (default {@link DEFAULT_HELLO_INTERVAL_MS}); also the least
   * time between two `inference.list_models` asked of one peer.
   */
  helloIntervalMs?: number;
  /**
   * Where the table's changes are told (`peer_changes.ts`: a peer up, its models, hello or
   * conviction, a peer down), for whoever waits on a peer; made by the caller, so it outlives the
   * actor's restarts. Absent: told nowhere.
   */
  peerChanges?: PeerChanges;
}

/** How the node joins Hyperswarm. */
export interface SwarmOptions {
  /** DHT bootstrap nodes (`host:port`); `null` for the public DHT. */
  bootstrap: string[] | null;
  /** Bind the DHT to this address only (`127.0.0.1` for a local testnet). */
  bind?: string;
  /**
   * Replaces the network topic (`swarm_topics.ts` `NETWORK_TOPIC`): a separate network (tests).
   * Its role and model topics are derived from it, so its nodes never meet the default network's
   * (nor another separate network's) on a DHT they share.
   */
  topic?: Uint8Array;
  /** The Node.js executable (default `node`). */
  nodePath?: string;
  /**
   * Where the host link's private socket directory is made (the node's data directory: a node
   * may write only there); default the system's temporary directory.
   */
  socketDir?: string;
}

export { NETWORK_TOPIC } from "./swarm_topics.ts";

/**
 * The answer to a `reach`: `true` when a dial of the key is under way; `false` when there is
 * nothing to dial (a connection to it is open, it is this node's own key, or there is no swarm);
 * `"full"` when this node's bound on dials at once (`MAX_DIALS`) refused it: this node's own
 * limit, not the peer's doing.
 */
export type ReachAnswer = boolean | "full";

/** Messages the NetworkActor accepts. */
export type NetworkMessage =
  | {
    type: "peer_up";
    connection: Connection;
    address: string;
    outbound: boolean;
    /**
     * For a connection a peer opened, over TCP or the swarm, the `addressGroup`
     * (`connection_limits.ts`) of its remote address (the per-address bounds); a swarm peer's is
     * the address its host gave it (`SwarmPeer.remoteHost`). Undefined: this node opened it, or
     * no address is known (in-memory, a swarm peer relayed or of unknown address).
     */
    host?: string;
    /**
     * A swarm peer whose host knows no address for it (relayed, or unknown): placed in the one
     * group every such peer shares (`#placementGroup`).
     */
    unaddressed?: boolean;
    /**
     * For a TCP connection this node dialled, the `addressGroup` of the address it reached (its
     * remote address, resolved): its group for placement and for the router's record of its
     * workers, as a connection a peer opened has its `host` (review s76 routegaps R3). Not
     * counted in the per-address bounds, which count connections peers open.
     */
    dialled?: string;
  }
  | { type: "peer_down"; connection: Connection }
  /** The ledger answered whether the peer of `connection` is convicted (internal). */
  | { type: "peer_checked"; connection: Connection; convicted: boolean }
  | { type: "peer_models"; connection: Connection; models: WireModelInfo[] }
  | { type: "peer_models_failed"; connection: Connection }
  | {
    type: "announce_receipt";
    receipt: Receipt;
    job: TextJob;
    assignment?: JobAssignment;
    /** Hex key of the peer it came from: not sent back there. */
    except?: string;
  }
  /**
   * A verdict to spread; a "proof withheld" claim goes as an accusation (`publish_accusation`),
   * after its author's pledge, and after `evidence` where the validator gave it. `authorPledge`:
   * the author's pledge as our ledger holds it, once looked up (`null`: none here); absent, it is
   * looked up first, and sent ahead of a plain verdict too (`PeerGossip.publishVerdict`).
   */
  | {
    type: "publish_verdict";
    verdict: Verdict;
    except?: string;
    evidence?: ClaimEvidence;
    authorPledge?: StakePledge | null;
  }
  | { type: "publish_fraud_proof"; proof: FraudProof; except?: string }
  | {
    /**
     * A stream proof (a lost worker's wrong tokens) to pass on, after the worker's pledge and its
     * accuser's. `workerPledge`: the worker's pledge as our ledger holds it, once looked up
     * (`null`: none here); absent, it is looked up first.
     */
    type: "publish_stream_proof";
    proof: StreamProof;
    except?: string;
    workerPledge?: StakePledge | null;
  }
  | {
    /**
     * A pledge new to our ledger, to pass on (`PledgeSync.relayPledge`); `conviction`: one of the
     * two pledges that convict its key of pledge equivocation, sent from the budget's reserve and
     * owed to a peer with no room, never dropped.
     */
    type: "publish_pledge";
    pledge: StakePledge;
    except?: string;
    conviction?: boolean;
  }
  /** Internal: some room is back for the pledges owed to peers (`PledgeSync.sendOwed`). */
  | { type: "send_owed_pledges" }
  | {
    /**
     * Pledges our ledger holds, for one peer (`PledgeSync.sendPledges`, `.sendNeeded`): sent as
     * far as its budget goes, keeping `PLEDGE_SEND_RESERVE` back unless the peer `needed` them.
     */
    type: "push_pledges";
    connection: Connection;
    pledges: StakePledge[];
    needed?: boolean;
  }
  /** Training gossip (receipts, fraud proofs, round outcomes) to every training peer. */
  | { type: "publish_training"; gossip: TrainingGossip; except?: string }
  | {
    /**
     * Internal: a fraud proof (`publish_fraud_proof`, or training gossip of one) or a "proof
     * withheld" claim (`publish_verdict`) to pass on, with its author's pledge as our ledger
     * holds it: each peer is sent the pledge just before the evidence, once per connection
     * (`PledgeSync.sendAhead`).
     */
    type: "publish_accusation";
    accusation: Accusation;
    pledge?: StakePledge;
    /**
     * A stream proof's worker's pledge, sent ahead of its accuser's: a ledger that lacks it would
     * convict the worker with nothing to cut (its stake 0 there), once for good.
     */
    workerPledge?: StakePledge;
    except?: string;
  }
  | { type: "connection_to"; key: Uint8Array; protocol: string }
  | {
    /**
     * Connect to this peer by its key, whatever topics it is on (Hyperswarm's DHT), when no
     * connection to it is open: its connection then comes up like any other, and later
     * `connection_to` asks find it. Kept up to `forMs`; without a swarm, or over the
     * `MAX_DIALS` bound (`dial_by_key.ts`), nothing happens. Answers a {@link ReachAnswer}.
     */
    type: "reach";
    key: Uint8Array;
    forMs: number;
    /** Who wants it (a challenged receipt's id); released with `release_reach`. */
    holder?: string;
  }
  /** `holder` no longer needs `key` dialled (see `reach`): the dial ends when no holder is left. */
  | { type: "release_reach"; key: Uint8Array; holder?: string }
  | {
    type: "worker";
    model?: string;
    /** Hex keys of workers not to pick (one that just failed this job). */
    exclude?: readonly string[];
    /** The job's input CID (`protocols/job_input.ts`): its storage holders are preferred. */
    input?: string;
    /**
     * The most stake the job's receipt can lock in this node's ledger (`_job_stake_lock.ts`):
     * a worker whose free stake covers it is backed (`worker_choice.ts`, rule 3).
     */
    lock?: number;
    /**
     * The job's id: its `lock` is held against the worker picked, beside the locks of this
     * node's other jobs there, until `worker_job_ended`, `worker_job_released` or the run's
     * next lookup.
     */
    job?: string;
    /**
     * The lookup of a hedge (`failover.ts`): the worker holding the job keeps its hold beside
     * the hedge's until the race's loser is released (`worker_job_released`).
     */
    hedge?: boolean;
    /**
     * Which submission of the job looks up (default 0; a client's retry of it is a later run,
     * with a greater number): a run that ended here, or that a later run of the job superseded,
     * holds nothing at a later lookup (one sent before its end), nor moves the later run's hold.
     */
    run?: number;
  }
  /**
   * Run `run` (default 0) of job `job`, whose worker a `worker` lookup picked, ended here: its
   * lock no longer holds that worker's stake (nor a hedge's).
   */
  | { type: "worker_job_ended"; job: string; run?: number }
  /**
   * Worker `worker` (hex key) no longer runs run `run` (default 0) of job `job`, which goes on
   * with another (a hedge's race lost): the run's lock no longer holds its stake.
   */
  | { type: "worker_job_released"; job: string; worker: string; run?: number }
  | {
    /**
     * A worker failed a job for a model it listed — refused it (`unknown_model`,
     * `model_load_failed`), went silent on it (`worker_stalled`), or signed a receipt the router
     * could not pass on: it is not picked for that model for {@link REFUSED_MODEL_COOLDOWN_MS},
     * whatever it lists.
     */
    type: "worker_refused_model";
    /** Hex key of the worker. */
    key: string;
    /** The model's CID. */
    model: string;
  }
  | { type: "worker_models" }
  /**
   * Whether a job the node has no worker for now may find one later, and when: `connecting`,
   * the node is still connecting to peers it will have (a configured peer not connected, a new
   * peer's models not listed yet, a swarm just joined: `WorkerRouting.connecting`); `keptOffMs`,
   * with `model`, how long until the first connected worker kept off that model after a failure
   * may take it again (`WorkerRouting.keptOffMs`; absent when none is). Answers
   * `{ connecting: boolean; keptOffMs?: number }`.
   */
  | { type: "connecting"; model?: string }
  | { type: "peers" }
  /**
   * What the node's wire budget, shared by every peer connection, holds and has counted (answers
   * a `WireBudgetReport`, `protocols/wire_budget.ts`; for `/metrics` and the heartbeat).
   */
  | { type: "wire" }
  | { type: "listening" }
  /**
   * Each configured peer's dial state (answers `StaticPeerState[]`, `_peer_transports.ts`; for
   * `/metrics`, `/healthz`, the heartbeat and the dashboard).
   */
  | { type: "static_peers" }
  | { type: "peer_convicted"; key: string }
  | { type: "storage_peers" }
  | { type: "peer_hello"; connection: Connection; hello: PeerHello }
  /**
   * Internal: the pace of hellos on `connection` has room again for the one it held
   * (`_peer_hellos.ts`, `PeerHellos.helloDue`).
   */
  | { type: "hello_due"; connection: Connection }
  | { type: "hello_signed"; hello: PeerHello }
  /** A standing ask answered (`standing`), or failed (none). */
  | { type: "peer_standing"; key: string; standing?: WorkerCandidate["standing"] }
  | { type: "peer_staked"; key: string }
  | {
    /**
     * Open a peer connection over a byte stream from any transport (an in-memory pair, a test's
     * socket). Answers the connection, or undefined when its handshake failed.
     */
    type: "attach";
    /** The byte stream. */
    duplex: ByteDuplex;
    /** How the table names it. */
    address: string;
    /** Whether this side opened it. */
    outbound: boolean;
    /** Cuts the transport (default: cancel the readable, abort the writable). */
    close?: () => void;
  };

export { DEFAULT_HELLO_INTERVAL_MS, MAX_REDIAL_MS, REFUSED_MODEL_COOLDOWN_MS };
export type { StaticPeerState } from "./_peer_transports.ts";
export type { Accusation, ClaimEvidence };
export {
  MAX_BUSY_RECEIPT_BYTES,
  MAX_BUSY_RECEIPTS,
  MAX_CARRIED_CLAIM_RECEIPTS,
} from "./_accusations.ts";

/** How long a new peer waits for the ledger's word on its conviction before it is routable. */
const CONVICTION_CHECK_TIMEOUT_MS = 5_000;

/** Owns the peer connections; see the module doc. */
export class NetworkActor implements Actor<NetworkMessage> {
  readonly #options: NetworkActorOptions;
  /** Open connections by hex peer key; the oldest first (a key may connect twice). */
  readonly #peers = new Map<string, PeerEntry[]>();
  /** Hex keys of workers slashed in this node's ledger (told by the validator). */
  readonly #convicted = new Set<string>();
  /** Bounds on connections and handshakes (`connection_limits.ts`). */
  readonly #limits: ConnectionLimits;
  #protocols: Protocol[] = [];
  #services?: PeerServices;
  /** What each peer key may still bring of pledges, across its connections. */
  readonly #pledgeBudgets: PledgeBudgets;
  /**
   * What each peer key may still be sent of pledges, across its connections: the peer's
   * receiving budget is its key's, so one of each connection's own, full at each connect, sent
   * a peer connected twice (or reconnecting) past it, and the pledge it then needed was refused.
   */
  readonly #pledgeSendBudgets: PledgeBudgets;
  /** What goes out to peers of the pledges this node holds (`pledge_sync.ts`). */
  readonly #pledgeSync: PledgeSync;
  /** Catch-ups sent per address group, in turn (`catch_up.ts`). */
  readonly #catchUps: AddressBudget;
  /**
   * The clock of a receipt announcement's backoff after a `busy` refusal (`announceReceipt`): the
   * connections' own (`connection.timers`), so a test that fakes theirs moves this one too.
   */
  readonly #timers: ConnectionTimers;
  /** The log lines peers can cause, a few per kind at a time (`log_limiter.ts`). */
  readonly #peerLog: LogLimiter;
  /** The listener, the dials and the swarm (`_peer_transports.ts`). */
  readonly #transports: PeerTransports;
  /** This node's hello and its peers', their models and standings (`_peer_hellos.ts`). */
  readonly #hellos: PeerHellos;
  /** Which worker a job goes to, and who lately refused a model (`_worker_routing.ts`). */
  readonly #routing: WorkerRouting;
  /** Gossip to every peer: receipts, verdicts, accusations, training (`_peer_gossip.ts`). */
  readonly #gossip: PeerGossip;

  /** @param options See {@link NetworkActorOptions}. */
  constructor(options: NetworkActorOptions) {
    this.#options = options;
    this.#timers = options.connection?.timers ?? SYSTEM_TIMERS;
    this.#limits = new ConnectionLimits(options.limits);
    this.#pledgeBudgets = new PledgeBudgets({ now: options.now });
    this.#pledgeSendBudgets = new PledgeBudgets({
      burst: PLEDGE_SEND_BURST,
      refillMs: PLEDGE_SEND_REFILL_MS,
      now: options.now,
    });
    this.#peerLog = new LogLimiter((line) => this.#log(line), { now: options.now });
    this.#catchUps = catchUpBudget(options.now);
    this.#pledgeSync = new PledgeSync({
      pledge: options.pledge,
      peers: this.#peers,
      entryOf: (connection) => this.#entryOf(connection),
      validator: () => this.#services?.validator,
      tell: tellQuietly,
      log: (line) => this.#log(line),
      now: options.now,
      timers: this.#timers,
    });
    this.#gossip = new PeerGossip({
      peers: this.#peers,
      pledgeSync: this.#pledgeSync,
      timers: this.#timers,
      peerLog: this.#peerLog,
      log: (line) => this.#log(line),
    });
    this.#transports = new PeerTransports({
      options,
      limits: this.#limits,
      pledgeBudgets: this.#pledgeBudgets,
      peerLog: this.#peerLog,
      peers: this.#peers,
      protocols: () => this.#protocols,
      services: () => this.#services,
      tell: tellQuietly,
      remoteError: (connection, error) => this.#hellos.refusedByPeer(connection, error),
    });
    this.#hellos = new PeerHellos({
      options,
      peers: this.#peers,
      entryOf: (connection) => this.#entryOf(connection),
      services: () => this.#services,
      peerLog: this.#peerLog,
      tell: tellQuietly,
    });
    this.#routing = new WorkerRouting({
      options,
      peers: this.#peers,
      standing: this.#hellos.standing,
      holders: () => this.#holders(),
      services: () => this.#services,
      swarmSettling: () => this.#transports.swarmSettling,
    });
  }

  /** Start listening and dialling, and join the swarm when configured. */
  preStart(ctx: ActorContext<NetworkMessage>): void {
    this.#services = {
      ...this.#options.services,
      system: ctx.system,
      self: this.#options.identity.publicKey,
      now: this.#options.now,
      // A receipt's wait for a validator that is down runs on the connections' clock.
      timers: this.#options.services.timers ?? this.#timers,
      connectionTo: (key, protocol) =>
        ctx.self.ask<Connection | undefined>({ type: "connection_to", key, protocol }),
      log: this.#options.services.log ?? ((line) => this.#log(line)),
    };
    this.#protocols = [...offeredProtocols(this.#services), PEER_PROTOCOL];
    if (this.#options.describe !== undefined) {
      void this.#hellos.helloLoop(this.#options.describe, ctx);
    }
    this.#transports.start(ctx);
  }

  /** Close the listener and every connection. */
  async postStop(): Promise<void> {
    this.#pledgeSync.close();
    await this.#transports.close();
    const all = [...this.#peers.values()].flat();
    for (const entry of all) this.#hellos.dropped(entry);
    this.#peers.clear();
    for (const entry of all) this.#changed("down", entry);
    await Promise.all(all.map((p) => p.connection.close()));
    this.#peerLog.flush();
  }

  /** Handle one message; see {@link NetworkMessage}. */
  receive(message: NetworkMessage, ctx: ActorContext<NetworkMessage>): unknown {
    switch (message.type) {
      case "peer_up":
        return this.#up(message, ctx);
      case "peer_down":
        return this.#down(message.connection, ctx);
      case "peer_models": {
        const entry = this.#entryOf(message.connection);
        if (entry) {
          entry.models = message.models;
          entry.info.models = message.models.map((m) => m.cid);
          this.#changed("updated", entry);
          this.#hellos.listed(entry, ctx);
        }
        return;
      }
      case "peer_models_failed": {
        const entry = this.#entryOf(message.connection);
        if (entry) this.#hellos.listed(entry, ctx);
        return;
      }
      case "announce_receipt":
        return this.#gossip.announceReceipt(message, ctx);
      case "publish_verdict":
        return this.#gossip.publishVerdict(message, ctx);
      case "publish_fraud_proof":
        return this.#gossip.publishFraudProof(message, ctx);
      case "publish_stream_proof":
        return this.#gossip.publishStreamProof(message, ctx);
      case "publish_accusation":
        return this.#gossip.sendAccusation(message);
      case "publish_pledge":
        return this.#pledgeSync.relayPledge(
          message.pledge,
          message.except,
          message.conviction,
          ctx,
        );
      case "send_owed_pledges":
        return this.#pledgeSync.sendOwed(ctx);
      case "push_pledges":
        return this.#pledgeSync.pushPledges(message, ctx);
      case "publish_training":
        return this.#gossip.publishTraining(message, ctx);
      case "connection_to":
        return this.#connectionTo(message.key, message.protocol);
      case "reach":
        return this.#transports.reach(message.key, message.forMs, message.holder);
      case "release_reach":
        return this.#transports.dials?.release(message.key, message.holder);
      case "worker":
        return this.#routing.worker(
          message.model,
          message.exclude,
          message.input,
          message.lock,
          message.job,
          message.hedge,
          message.run,
        );
      case "worker_job_ended":
        return this.#routing.jobEnded(message.job, message.run);
      case "worker_job_released":
        return this.#routing.released(message.job, message.worker, message.run);
      case "worker_refused_model":
        return this.#routing.refusedModel(message.key, message.model);
      case "worker_models":
        return this.#routing.workerModels();
      case "connecting":
        return {
          connecting: this.#routing.connecting(),
          keptOffMs: message.model === undefined
            ? undefined
            : this.#routing.keptOffMs(message.model),
        };
      case "peers":
        return [...this.#peers.values()].flat().map((p) => copyOf(p.info));
      case "wire":
        return this.#transports.budget.report();
      case "listening":
        return this.#transports.listening;
      case "static_peers":
        return this.#transports.staticPeers;
      case "peer_convicted":
        return this.#onConvicted(message.key);
      case "peer_checked": {
        const entry = this.#entryOf(message.connection);
        if (entry !== undefined) entry.checking = false;
        if (message.convicted) return this.#onConvicted(toHex(message.connection.peerKey!));
        return;
      }
      case "storage_peers":
        return this.#holders();
      case "peer_hello":
      case "hello_due": {
        const entry = this.#entryOf(message.connection);
        const before = entry?.hello;
        if (message.type === "peer_hello") {
          this.#hellos.onHello(message.connection, message.hello, ctx);
        } else this.#hellos.helloDue(message.connection, ctx);
        // Kept (signed by its key, and newer): what the table shows of it changed.
        if (entry !== undefined && entry.hello !== before) this.#changed("updated", entry);
        return;
      }
      case "hello_signed":
        return this.#hellos.sendHello(message.hello);
      case "peer_standing": {
        // Not for a key gone meanwhile (its entry would stay for good).
        if (!this.#peers.has(message.key)) return;
        if (message.standing !== undefined) {
          this.#hellos.standing.set(message.key, message.standing);
        }
        const asks = this.#hellos.standingAsksOf(message.key);
        asks.inFlight = false;
        if (asks.again) this.#hellos.askStanding(message.key, ctx);
        return;
      }
      case "peer_staked":
        if (this.#peers.has(message.key)) this.#hellos.askStanding(message.key, ctx);
        return;
      case "attach":
        return this.#attach(message, ctx);
    }
  }

  #up(
    message: Extract<NetworkMessage, { type: "peer_up" }>,
    ctx: ActorContext<NetworkMessage>,
  ): void {
    const { connection } = message;
    const key = toHex(connection.peerKey!);
    const open = [...this.#peers.values()].flat().filter((p) => !p.connection.isClosed);
    const refusal = this.#limits.refusal({
      ofPeer: open.filter((p) => p.info.key === key).length,
      total: open.length,
      fromAddress: message.host === undefined
        ? undefined
        : open.filter((p) => p.host === message.host).length,
    }, message.outbound || this.#transports.dials?.has(connection.peerKey!) === true);
    if (refusal !== undefined) {
      this.#peerLog.line(
        "peer refused",
        `peer refused ${key.slice(0, 16)} ${message.address}: ${refusal}`,
      );
      connection.close().catch(() => {});
      return;
    }
    const info: PeerInfo = {
      key,
      address: message.address,
      outbound: message.outbound,
      protocols: connection.peerProtocols.map((p) => `${p.name}/${p.version}`),
      models: [],
      convicted: this.#convicted.has(key),
      roles: [],
    };
    const list = this.#peers.get(key) ?? [];
    // One group for its storage holder and for the router's guess of who holds a job's input
    // (`_worker_routing.ts`): the guess ranks as storage places.
    const placement = this.#placementGroup(key, message, ctx);
    const storage = connection.supports(STORAGE_PROTOCOL.name)
      ? new ConnectionStoragePeer(connection, connection.peerKey!, { group: placement })
      : undefined;
    const pledges = this.#pledgeSendBudgets.of(key);
    const validator = this.#services?.validator;
    const checking = validator !== undefined && !info.convicted;
    const entry: PeerEntry = {
      connection,
      info,
      models: [],
      storage,
      pledges,
      checking,
      host: message.host,
      dialled: message.dialled,
      placement,
    };
    list.push(entry);
    this.#peers.set(key, list);
    this.#changed("up", entry);
    if (storage !== undefined) this.#storagePeersChanged(ctx);
    this.#log(
      `peer up   ${key.slice(0, 16)} ${message.address} (${
        info.protocols.join(", ") || "no protocols"
      })`,
    );
    connection.closed.then(() => tellQuietly(ctx, { type: "peer_down", connection }));
    if (connection.supports(INFERENCE_PROTOCOL.name)) this.#hellos.askModels(entry, ctx);
    // A worker slashed here before (in an earlier connection or run) is not sent jobs, nor
    // any job until the ledger said (a validator that does not answer in time clears it).
    if (checking) {
      const asked = ctx.system.lookup<{ type: "convicted"; key: Uint8Array }>(validator!)
        ?.ask<boolean>({ type: "convicted", key: connection.peerKey! }, {
          timeoutMs: CONVICTION_CHECK_TIMEOUT_MS,
        }) ?? Promise.resolve(false);
      asked.then(
        (convicted) => tellQuietly(ctx, { type: "peer_checked", connection, convicted }),
        () => tellQuietly(ctx, { type: "peer_checked", connection, convicted: false }),
      );
    }
    if (this.#hellos.hello !== undefined && connection.supports(PEER_PROTOCOL.name)) {
      connection.notify(PeerHelloMessage, { hello: this.#hellos.hello }).catch(() => {});
    }
    if (connection.supports(VALIDATION_PROTOCOL.name)) {
      this.#pledgeSync.sendPledges(connection, ctx);
      // The convictions and start's verdicts gossip reached only the peers connected then,
      // after our pledge (`catch_up.ts`).
      if (validator !== undefined) {
        // Resolves once the pledge is written: a receipt the peer did not keep goes after it.
        const send = () =>
          sendCatchUp(
            connection,
            validator,
            ctx,
            this.#timers,
            (worker) => this.#pledgeSync.sendNeeded(connection, worker, ctx),
          );
        // In its address group's turn, unless this node chose the connection: keys are free, and
        // the catch-up is far larger than a handshake (review s71, `catch_up.ts`).
        const chosen = message.outbound || this.#transports.dials?.has(connection.peerKey!);
        // Taken in turn even when there is room: connections already waiting go first.
        if (chosen) send();
        else {
          void catchUpTurn(connection, this.#catchUps, message.host, this.#timers)
            .then((turn) => turn && send());
        }
      }
    }
  }

  /**
   * A peer over a transport this actor does not own: opened like any other (handshake, named
   * protocols), then in the table. Resolves with the connection once the handshake is done, or
   * undefined when it failed (logged, as for any other transport: a peer that fails its
   * handshake must not crash this actor, whose restart would lose the peer table).
   */
  async #attach(
    message: Extract<NetworkMessage, { type: "attach" }>,
    ctx: ActorContext<NetworkMessage>,
  ): Promise<Connection | undefined> {
    const { duplex, address, outbound } = message;
    const close = message.close ?? (() => {
      duplex.readable.cancel().catch(() => {});
      duplex.writable.abort().catch(() => {});
    });
    let connection: Connection;
    try {
      connection = await this.#transports.open(duplex, close, ctx);
    } catch (error) {
      this.#transports.handshakeFailed(address, error);
      return undefined;
    }
    this.#up({ type: "peer_up", connection, address, outbound }, ctx);
    return connection;
  }

  #down(connection: Connection, ctx: ActorContext<NetworkMessage>): void {
    const key = connection.peerKey === undefined ? undefined : toHex(connection.peerKey);
    if (key === undefined) return;
    const before = this.#peers.get(key) ?? [];
    // Dropped already: a peer's goodbye drops it at once, and its close comes after.
    if (!before.some((p) => p.connection === connection)) return;
    const gone = before.find((p) => p.connection === connection)!;
    this.#hellos.dropped(gone);
    const list = before.filter((p) => p.connection !== connection);
    if (list.length === 0) {
      this.#peers.delete(key);
      // Asked again at its next hello: kept, it grew for every key that ever said hello.
      this.#hellos.forget(key);
    } else this.#peers.set(key, list);
    if (gone.storage !== undefined) this.#storagePeersChanged(ctx);
    this.#changed("down", gone);
    // Its address tells an operator which --peer it was; a close with no recorded reason (the
    // peer killed, or one older than goodbyes stopped) says that much rather than nothing.
    const at = `${key.slice(0, 16)} ${gone.info.address}`;
    const reason = connection.closeReason;
    // A goodbye's reason is the peer's word (any `[a-z][a-z0-9_]*`): quoted, it sets no level.
    if (reason instanceof PeerStoppedError) {
      this.#log(`peer ${at} stopped (${peerWords(reason.reason)})`);
    } else this.#log(`peer down ${at}: ${reason?.message ?? "connection closed"}`);
  }

  /**
   * Tell the StorageActor which peers hold files now: one holder per peer key that offers the
   * storage protocol (its oldest open connection). The actor places chunks over them and this
   * node by rendezvous hashing, and repairs what a departed holder held.
   */
  #storagePeersChanged(ctx: ActorContext<NetworkMessage>): void {
    const name = this.#services?.storage;
    if (name === undefined) return;
    ctx.system.lookup<StorageMessage>(name)?.tell({ type: "set_peers", peers: this.#holders() })
      .catch(() => {});
  }

  /**
   * The address group a storage peer is placed in (`storage/rendezvous.ts`: a chunk's holders are
   * spread over groups, so keys from one host hold one copy while other hosts are left; review s76
   * F4): from the `addressGroup` of the connection a peer opened (`host`), else of the latest of
   * the key's connections with an address (a swarm peer this node dialled: `_peer_origins.ts`),
   * widened to its `addressBlock`: an IPv6 peer is placed by its /48, one site's allocation, as
   * the bound on handshakes counts it (32 keys from 32 /64s of one /48 were 32 groups and held all
   * 3 copies of 59 % of chunks: review s76 vstore F1).
   *
   * A swarm peer whose address is not known (`unaddressed`: relayed) is in the one group all such
   * peers share: one group each let 32 relayed keys hold all 3 copies of 59 % of chunks (the same
   * review). A TCP peer this node dialled is in the group of the address it reached (`dialled`),
   * when nothing better is known: keys of one host are one host however the connection was
   * opened (review s76 routegaps R3). None — a group of its own, placed by key — for a peer on
   * this machine (`loopback`, or an in-memory link, which is this process): this node counts
   * itself in no group, so grouping the peers it reaches over loopback would make each node of a
   * one-host cluster see the others as one host and itself apart, and each would place
   * differently. Ungrouped, a one-host cluster places by key, the same on every node.
   */
  #placementGroup(
    key: string,
    message: Extract<NetworkMessage, { type: "peer_up" }>,
    ctx: ActorContext<NetworkMessage>,
  ): string | undefined {
    const group = message.host ?? peerOriginsOf(ctx.system).of(key).group ?? message.dialled;
    if (group === undefined) return message.unaddressed === true ? UNADDRESSED : undefined;
    return group === THIS_MACHINE ? undefined : addressBlock(group);
  }

  /** One storage holder per peer key that offers the storage protocol. */
  #holders(): ConnectionStoragePeer[] {
    const holders: ConnectionStoragePeer[] = [];
    for (const list of this.#peers.values()) {
      const entry = list.find((p) => p.storage !== undefined && !p.connection.isClosed);
      if (entry?.storage !== undefined) holders.push(entry.storage);
    }
    return holders;
  }

  /** A worker slashed in this node's ledger: routed around from now on. */
  #onConvicted(key: string): void {
    if (this.#convicted.has(key)) return;
    this.#convicted.add(key);
    for (const entry of this.#peers.get(key) ?? []) {
      entry.info.convicted = true;
      this.#changed("updated", entry);
    }
    this.#log(`peer ${key.slice(0, 16)} convicted of cheating: no more jobs are routed to it`);
  }

  /** Tell the peer changes (`peer_changes.ts`) what became of `entry`, with a copy of its info. */
  #changed(type: PeerChange["type"], entry: PeerEntry): void {
    this.#options.peerChanges?.emit({ type, peer: copyOf(entry.info) });
  }

  #entryOf(connection: Connection): PeerEntry | undefined {
    const key = connection.peerKey === undefined ? undefined : toHex(connection.peerKey);
    return key === undefined
      ? undefined
      : this.#peers.get(key)?.find((p) => p.connection === connection);
  }

  /**
   * An open connection to the peer with `key` that speaks `protocol`. Answered from memory: the
   * caller makes its request outside this actor, so a slow or dead peer never holds the mailbox.
   */
  #connectionTo(key: Uint8Array, protocol: string): Connection | undefined {
    return this.#peers.get(toHex(key))?.find((p) =>
      !p.connection.isClosed && p.connection.supports(protocol)
    )?.connection;
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }
}

/**
 * A copy of a peer's info that its holder may change: its lists and its hello's parts are the
 * table's own, and a listener or an asker that changed them changed the table.
 */
function copyOf(info: PeerInfo): PeerInfo {
  const copy = {
    ...info,
    protocols: [...info.protocols],
    models: [...info.models],
    roles: [...info.roles],
  };
  if (info.load !== undefined) copy.load = { ...info.load };
  if (info.storage !== undefined) copy.storage = { ...info.storage };
  return copy;
}

function tellQuietly(ctx: ActorContext<NetworkMessage>, message: NetworkMessage): void {
  // The actor may be stopping: a late peer event then has nobody to inform.
  ctx.self.tell(message).catch(() => {});
}
