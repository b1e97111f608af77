/**
 * NetworkActor: the node's peers. It owns the peer connections — inbound ones from its TCP
 * listener, outbound ones to the static peers it is told about (`--peer HOST:PORT`), redialled
 * with backoff when they drop — and everything that goes out to peers goes through it:
 *
 * - a local receipt is announced to every peer that keeps a ledger (`validation.receipt`);
 * - a verdict or fraud proof this node's validator signed is spread to every such peer; a fraud
 *   proof, or a "proof withheld" claim (`invalid / proof_unavailable`), after its author's pledge
 *   where that connection has not carried it yet (a ledger takes either only from a key with stake
 *   there: `PledgeSync.sendAhead`); a claim also after the receipt and job it is about, where the
 *   validator handed them over (a ledger takes a claim over only while it remembers them:
 *   {@link ClaimEvidence});
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
 * touched in `receive`.
 *
 * Transports: TCP (static peers on a LAN or loopback) and, when configured, Hyperswarm through
 * the swarm host (`swarm_host.ts`), which hands this actor each peer's byte stream with the key
 * its Noise handshake authenticated: the connection's own handshake must prove the same key.
 *
 * @module
 */
import { storageKey } from "../protocols/cid.ts";
import { rankPeers } from "../storage/rendezvous.ts";
import { DEFAULT_REPLICAS } from "../storage/replicated_store.ts";
import type { Actor, ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import { Connection, type ConnectionOptions } from "../protocols/connection.ts";
import type { Protocol } from "../protocols/connection_protocols.ts";
import { connectTcp, type TcpListener } from "../protocols/tcp_transport.ts";
import { listenForPeers } from "./peer_listener.ts";
import { LogLimiter } from "./log_limiter.ts";
import type { ByteDuplex } from "../protocols/memory_duplex.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { SwarmHost } from "./swarm_host.ts";
import type { Identity } from "../protocols/identity.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import type { TextJob } from "../protocols/job.ts";
import type { Receipt } from "../protocols/receipt.ts";
import type { JobAssignment } from "../protocols/assignment.ts";
import type { Verdict } from "../protocols/verdict.ts";
import type { FraudProof } from "../protocols/fraud_proof.ts";
import {
  PLEDGE_SEND_BURST,
  PLEDGE_SEND_REFILL_MS,
  type StakePledge,
} from "../protocols/stake_pledge.ts";
import {
  FraudProofAnnouncementMessage,
  INFERENCE_PROTOCOL,
  ListModelsMessage,
  ReceiptAnnouncementMessage,
  VALIDATION_PROTOCOL,
  VerdictAnnouncementMessage,
  type WireModelInfo,
} from "../protocols/inference_messages.ts";
import { offeredProtocols, type PeerServices, servePeer } from "./peer_services.ts";
import { STORAGE_PROTOCOL } from "../protocols/storage_messages.ts";
import {
  OutcomeMessage,
  TRAINING_PROTOCOL,
  TrainingFraudProofMessage,
  type TrainingGossip,
  TrainingReceiptMessage,
} from "../protocols/training_messages.ts";
import {
  HELLO_MAX_AGE_MS,
  knownHelloFields,
  PEER_PROTOCOL,
  type PeerHello,
  type PeerHelloBody,
  PeerHelloMessage,
  type PeerLoad,
  type PeerRole,
  type PeerStorage,
  signPeerHello,
  verifyPeerHello,
} from "../protocols/peer_hello.ts";
import { chooseWorker, type WorkerCandidate } from "./worker_choice.ts";
import { listedModels, type ModelListing } from "./model_listing.ts";
import { nodeTopics } from "./swarm_topics.ts";
import { ConnectionStoragePeer } from "../storage/connection_storage_peer.ts";
import type { StorageMessage } from "../actors/storage_actor_messages.ts";
import { formatPeerAddress, type PeerAddress } from "./peer_address.ts";
import { type PledgeBudget, PledgeBudgets } from "./pledge_budget.ts";
import { PledgeSync } from "./pledge_sync.ts";
import { sendCatchUp } from "./catch_up.ts";
import { KeyDials } from "./dial_by_key.ts";
import {
  addressGroup,
  ConnectionLimits,
  type ConnectionLimitsOptions,
} from "./connection_limits.ts";

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
  /** Its software version, from its hello. */
  version?: string;
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
   * Clock of the per-peer pledge budgets, both ways, and of the limit on log lines peers cause
   * (default `Date.now`; tests fake it).
   */
  now?: () => number;
  /** Options of every peer connection (keepalive, idle timeout, budgets). */
  connection?: ConnectionOptions;
  /**
   * How many peer connections are held, in all and per peer key, and how many handshakes of
   * inbound TCP connections run at once, in all and per address (`connection_limits.ts`;
   * defaults 256, 4, 64, 8).
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
     * For a connection that came in over TCP, the {@link addressGroup} of its remote address
     * (the per-address bounds).
     */
    host?: string;
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
   * after its author's pledge, and after `evidence` where the validator gave it.
   */
  | { type: "publish_verdict"; verdict: Verdict; except?: string; evidence?: ClaimEvidence }
  | { type: "publish_fraud_proof"; proof: FraudProof; except?: string }
  | { type: "publish_pledge"; pledge: StakePledge; except?: string }
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
  }
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
  | { type: "peers" }
  | { type: "listening" }
  | { type: "peer_convicted"; key: string }
  | { type: "storage_peers" }
  | { type: "peer_hello"; connection: Connection; hello: PeerHello }
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

/**
 * Default `helloIntervalMs`: a peer's load is at most a second old when a job is routed, for
 * one small signed message a second per peer.
 */
export const DEFAULT_HELLO_INTERVAL_MS = 1_000;

/**
 * How long a worker that refused a job for a model it listed is not picked for that model: a
 * peer that lists a model and refuses every job for it (four fresh keys did so in a review, and
 * turned away every job, each using up a job's tries) costs each model's jobs one try per minute
 * instead of all of them. Its next listing does not lift it early.
 */
export const REFUSED_MODEL_COOLDOWN_MS = 60_000;
/** Most refusals remembered; past it, expired ones go first, then the oldest. */
const MAX_REFUSED_MODELS = 4_096;

/** Most a redial waits: a restarted peer is found again within this. */
export const MAX_REDIAL_MS = 10_000;
/** A dialled connection that lasted this long starts the redial backoff from its first step. */
const STABLE_CONNECTION_MS = 10_000;
/** Default first redial delay. */
const DEFAULT_REDIAL_MS = 250;

interface PeerEntry {
  connection: Connection;
  info: PeerInfo;
  /** Its storage role seen as a holder (when it offered the storage protocol). */
  storage?: ConnectionStoragePeer;
  /** What it answered to `inference.list_models` on connect (empty: it runs no model). */
  models: WireModelInfo[];
  /** Its latest signed hello. */
  hello?: PeerHello;
  /** An `inference.list_models` to it is in flight (or waits for its turn): never two. */
  listing?: boolean;
  /** A hello named other models while one was in flight: ask again when it answers. */
  listAgain?: boolean;
  /** When the last `inference.list_models` was sent to it (ms, Date.now). */
  listedAt?: number;
  /**
   * What may still be sent to its key of pledges, across its connections (`pledge_budget.ts`;
   * only in `receive`).
   */
  pledges: PledgeBudget;
  /**
   * Its key's conviction in this node's ledger is still being asked: no job for it until the
   * answer (a convicted worker that reconnected after a restart was routable until then).
   */
  checking?: boolean;
  /** For a connection that came in over TCP, its remote address's {@link addressGroup}. */
  host?: string;
  /** Hellos from it whose signature did not verify ({@link MAX_BAD_HELLOS} close it). */
  badHellos?: number;
}

/** Hellos with a bad signature that close a connection (see `#onHello`). */
const MAX_BAD_HELLOS = 3;

/** How long a new peer waits for the ledger's word on its conviction before it is routable. */
const CONVICTION_CHECK_TIMEOUT_MS = 5_000;

/** Owns the peer connections; see the module doc. */
export class NetworkActor implements Actor<NetworkMessage> {
  readonly #options: NetworkActorOptions;
  /** Open connections by hex peer key; the oldest first (a key may connect twice). */
  readonly #peers = new Map<string, PeerEntry[]>();
  /** Hex keys of workers slashed in this node's ledger (told by the validator). */
  readonly #convicted = new Set<string>();
  #listener?: TcpListener;
  /** `key:model` → until when (ms) that worker is not picked for that model (it refused it). */
  readonly #refused = new Map<string, number>();
  #swarm?: SwarmHost;
  /** Bounds on connections and handshakes (`connection_limits.ts`). */
  readonly #limits: ConnectionLimits;
  /** Peers dialled by key (`reach`); only with a swarm. */
  #dials?: KeyDials;
  #protocols: Protocol[] = [];
  #services?: PeerServices;
  /** This node's latest signed hello, sent to each peer on connect. */
  #hello?: PeerHello;
  /** Hex key → its account in this node's ledger (asked when its hello arrives). */
  readonly #standing = new Map<string, WorkerCandidate["standing"]>();
  /**
   * Hex key → its standing asks: whether one is in flight, whether another was wanted meanwhile,
   * and when a hello last asked. A peer's hellos are its to send: one ask in flight per key, and
   * one per `helloIntervalMs` for hellos (an honest peer's pace), or each hello re-sent would be
   * a ledger ask, held open here until answered.
   */
  readonly #standingAsks = new Map<string, { inFlight: boolean; again: boolean; at: number }>();
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
  /**
   * Per connection, the receipts it carried ahead of a claim, by id, oldest first (bounded:
   * {@link MAX_CARRIED_CLAIM_RECEIPTS}), each with the promise of the peer's answer; gone with
   * the connection.
   */
  readonly #carriedReceipts = new WeakMap<Connection, Map<string, Promise<unknown>>>();
  /** The log lines peers can cause, a few per kind at a time (`log_limiter.ts`). */
  readonly #peerLog: LogLimiter;

  /** @param options See {@link NetworkActorOptions}. */
  constructor(options: NetworkActorOptions) {
    this.#options = options;
    this.#limits = new ConnectionLimits(options.limits);
    this.#pledgeBudgets = new PledgeBudgets({ now: options.now });
    this.#pledgeSendBudgets = new PledgeBudgets({
      burst: PLEDGE_SEND_BURST,
      refillMs: PLEDGE_SEND_REFILL_MS,
      now: options.now,
    });
    this.#peerLog = new LogLimiter((line) => this.#log(line), { now: options.now });
    this.#pledgeSync = new PledgeSync({
      pledge: options.pledge,
      peers: this.#peers,
      entryOf: (connection) => this.#entryOf(connection),
      validator: () => this.#services?.validator,
      tell: tellQuietly,
      log: (line) => this.#log(line),
    });
  }

  /** Start listening and dialling, and join the swarm when configured. */
  preStart(ctx: ActorContext<NetworkMessage>): void {
    this.#services = {
      ...this.#options.services,
      system: ctx.system,
      self: this.#options.identity.publicKey,
      now: this.#options.now,
      connectionTo: (key, protocol) =>
        ctx.self.ask<Connection | undefined>({ type: "connection_to", key, protocol }),
    };
    this.#protocols = [...offeredProtocols(this.#services), PEER_PROTOCOL];
    if (this.#options.describe !== undefined) void this.#helloLoop(this.#options.describe, ctx);
    const { listen, peers = [] } = this.#options;
    if (listen !== undefined) {
      this.#listener = listenForPeers(listen, (duplex, remoteAddr) => {
        const remote = formatPeerAddress(remoteAddr);
        // The per-address bounds count an IPv6 /64, and this machine's loopback, as one address.
        const group = addressGroup(remoteAddr.hostname);
        this.#open(duplex, () => duplex.close(), ctx, undefined, group).then(
          (connection) =>
            ctx.self.tell({
              type: "peer_up",
              connection,
              address: remote,
              outbound: false,
              host: group,
            })
              .catch(() => connection.close()), // stopping: nobody would own it
          (error) => this.#handshakeFailed(remote, error),
        );
      }, (line) => this.#log(line));
      this.#log(`peer listener    ${formatPeerAddress(this.#listener.addr)}`);
    }
    for (const address of peers) void this.#dialLoop(address, ctx);
    if (this.#options.swarm !== undefined) {
      // In the background: start-up does not wait for the DHT, and a swarm that cannot start
      // (no Node.js) leaves the node on its TCP peers, saying why.
      this.#joinSwarm(this.#options.swarm, ctx).catch((error) =>
        this.#log(`swarm unavailable: ${(error as Error).message}`)
      );
    }
  }

  async #joinSwarm(options: SwarmOptions, ctx: ActorContext<NetworkMessage>): Promise<void> {
    const swarm = await SwarmHost.start({
      identity: this.#options.identity,
      bootstrap: options.bootstrap,
      bind: options.bind,
      nodePath: options.nodePath,
      socketDir: options.socketDir,
      log: (line) => this.#log(line),
      onState: (state) => this.#log(`swarm ${state}`),
      onPeer: (peer) => {
        const address = `swarm:${toHex(peer.remoteKey).slice(0, 16)}`;
        this.#open(peer.duplex, peer.close, ctx, peer.remoteKey).then(
          (connection) =>
            ctx.self.tell({ type: "peer_up", connection, address, outbound: peer.initiator })
              .catch(() => connection.close()),
          (error) => this.#handshakeFailed(address, error),
        );
      },
    });
    if (ctx.signal.aborted) {
      await swarm.close(); // stopped while the host was starting
      return;
    }
    this.#swarm = swarm;
    this.#dials = new KeyDials({
      dial: (key) => swarm.dial(key),
      undial: (key) => swarm.undial(key),
    });
    const about = await this.#options.describe?.().catch(() => undefined);
    const topics = nodeTopics(
      (about?.roles ?? []) as PeerRole[],
      about?.models ?? [],
      true, // its edge forwards clients' jobs when it runs no model
      options.topic,
    );
    for (const join of topics) {
      await swarm.join(join.topic, { server: join.server, client: join.client });
    }
    this.#log(
      `swarm joined     ${
        options.bootstrap === null ? "the public DHT" : `bootstrap ${options.bootstrap.join(", ")}`
      } (topics ${topics.map((t) => t.name).join(", ")})`,
    );
  }

  /** Close the listener and every connection. */
  async postStop(): Promise<void> {
    await this.#listener?.close();
    this.#dials?.stop();
    await this.#swarm?.close();
    const all = [...this.#peers.values()].flat();
    this.#peers.clear();
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
          this.#listed(entry, ctx);
        }
        return;
      }
      case "peer_models_failed": {
        const entry = this.#entryOf(message.connection);
        if (entry) this.#listed(entry, ctx);
        return;
      }
      case "announce_receipt":
        return this.#broadcast(
          VALIDATION_PROTOCOL,
          message.except,
          (c) =>
            c.request(ReceiptAnnouncementMessage, {
              receipt: message.receipt,
              job: message.job,
              ...(message.assignment ? { assignment: message.assignment } : {}),
            })
              .then((ack) => {
                if (!ack.recorded) {
                  this.#peerLog.line(
                    "receipt refused",
                    `peer ${short(c)}: receipt refused (${ack.refusal})`,
                  );
                }
                // Its ledger lacks the worker's stake (the pledge was not among those pushed
                // on connect, or its gossip was dropped): it keeps the receipt until it arrives.
                if (ack.refusal === "insufficient_stake") {
                  this.#pledgeSync.sendNeeded(c, message.receipt.worker, ctx);
                }
              }),
        );
      case "publish_verdict":
        // A claim a ledger takes over only from a claimant with stake there: after its pledge.
        if (isWithheldClaim(message.verdict)) {
          const { verdict, evidence } = message;
          return this.#publishAccusation({ kind: "withheld", verdict, evidence }, message, ctx);
        }
        return this.#broadcast(
          VALIDATION_PROTOCOL,
          message.except,
          (c) => c.notify(VerdictAnnouncementMessage, { verdict: message.verdict }),
        );
      case "publish_fraud_proof":
        return this.#publishAccusation({ kind: "inference", proof: message.proof }, message, ctx);
      case "publish_accusation": {
        const { accusation, pledge } = message;
        return this.#broadcast(
          accusation.kind === "fraud_proof" ? TRAINING_PROTOCOL : VALIDATION_PROTOCOL,
          message.except,
          (c) => {
            this.#pledgeSync.sendAhead(c, pledge, accusation.kind);
            const ahead = this.#receiptAhead(c, accusation);
            if (ahead === undefined) return notifyAccusation(c, accusation);
            return ahead.then(() => notifyAccusation(c, accusation));
          },
        );
      }
      case "publish_pledge":
        return this.#pledgeSync.relayPledge(message.pledge, message.except);
      case "push_pledges":
        return this.#pledgeSync.pushPledges(message);
      case "publish_training":
        if (message.gossip.kind === "fraud_proof") {
          return this.#publishAccusation(message.gossip, message, ctx);
        }
        return this.#broadcast(
          TRAINING_PROTOCOL,
          message.except,
          (c) => notifyTraining(c, message.gossip),
        );
      case "connection_to":
        return this.#connectionTo(message.key, message.protocol);
      case "reach":
        return this.#reach(message.key, message.forMs, message.holder);
      case "release_reach":
        return this.#dials?.release(message.key, message.holder);
      case "worker":
        return this.#worker(message.model, message.exclude, message.input);
      case "worker_refused_model":
        return this.#refusedModel(message.key, message.model);
      case "worker_models":
        return this.#workerModels();
      case "peers":
        return [...this.#peers.values()].flat().map((p) => ({ ...p.info }));
      case "listening":
        return this.#listener?.addr;
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
        return this.#onHello(message.connection, message.hello, ctx);
      case "hello_signed":
        return this.#sendHello(message.hello);
      case "peer_standing": {
        // Not for a key gone meanwhile (its entry would stay for good).
        if (!this.#peers.has(message.key)) return;
        if (message.standing !== undefined) this.#standing.set(message.key, message.standing);
        const asks = this.#standingAsksOf(message.key);
        asks.inFlight = false;
        if (asks.again) this.#askStanding(message.key, ctx);
        return;
      }
      case "peer_staked":
        if (this.#peers.has(message.key)) this.#askStanding(message.key, ctx);
        return;
      case "attach":
        return this.#attach(message, ctx);
    }
  }

  /**
   * Open a connection over `duplex`; `close` cuts the transport. `expectedKey`: the key the
   * transport already authenticated (the swarm's Noise handshake) — the peer must prove it.
   * `inboundFrom`: the address of a connection that came in over TCP, whose handshake takes a
   * slot (`connection_limits.ts`).
   */
  async #open(
    duplex: ByteDuplex,
    close: () => void,
    ctx: ActorContext<NetworkMessage>,
    expectedKey?: Uint8Array,
    inboundFrom?: string,
  ): Promise<Connection> {
    if (inboundFrom !== undefined) {
      const refused = this.#limits.startHandshake(inboundFrom);
      if (refused !== undefined) {
        close();
        throw new Error(`refused: ${refused}`);
      }
    }
    let connection: Connection;
    try {
      connection = await Connection.open(duplex, {
        ...this.#options.connection,
        identity: this.#options.identity,
        protocols: this.#protocols,
      });
    } catch (error) {
      close(); // a failed handshake leaves nothing worth lingering for
      throw error;
    } finally {
      if (inboundFrom !== undefined) this.#limits.endHandshake(inboundFrom);
    }
    if (expectedKey !== undefined && !bytesEqual(connection.peerKey!, expectedKey)) {
      await connection.close();
      close();
      throw new Error("the peer proved another key than the one its swarm connection has");
    }
    // Once the connection is done, so is the socket, even if a peer that stopped reading
    // still holds our last writes (a half-closed peer never ends them).
    connection.closed.then(() => close());
    if (ctx.signal.aborted) {
      await connection.close();
      throw new Error("the network actor stopped");
    }
    servePeer(connection, connection.peerKey!, {
      ...this.#services!,
      pledgeBudgets: this.#pledgeBudgets,
    });
    connection.handle(PeerHelloMessage, ({ hello }) => {
      tellQuietly(ctx, { type: "peer_hello", connection, hello });
    });
    return connection;
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
    }, message.outbound || this.#dials?.has(connection.peerKey!) === true);
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
    const storage = connection.supports(STORAGE_PROTOCOL.name)
      ? new ConnectionStoragePeer(connection, connection.peerKey!)
      : undefined;
    const pledges = this.#pledgeSendBudgets.of(key);
    const validator = this.#services?.validator;
    const checking = validator !== undefined && !info.convicted;
    list.push({ connection, info, models: [], storage, pledges, checking, host: message.host });
    this.#peers.set(key, list);
    if (storage !== undefined) this.#storagePeersChanged(ctx);
    this.#log(
      `peer up   ${key.slice(0, 16)} ${message.address} (${
        info.protocols.join(", ") || "no protocols"
      })`,
    );
    connection.closed.then(() => tellQuietly(ctx, { type: "peer_down", connection }));
    if (connection.supports(INFERENCE_PROTOCOL.name)) this.#askModels(list.at(-1)!, ctx);
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
    if (this.#hello !== undefined && connection.supports(PEER_PROTOCOL.name)) {
      connection.notify(PeerHelloMessage, { hello: this.#hello }).catch(() => {});
    }
    if (connection.supports(VALIDATION_PROTOCOL.name)) {
      this.#pledgeSync.sendPledges(connection, ctx);
      // The convictions and start's verdicts gossip reached only the peers connected then,
      // after our pledge (`catch_up.ts`).
      if (validator !== undefined) sendCatchUp(connection, validator, ctx);
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
      connection = await this.#open(duplex, close, ctx);
    } catch (error) {
      this.#handshakeFailed(address, error);
      return undefined;
    }
    this.#up({ type: "peer_up", connection, address, outbound }, ctx);
    return connection;
  }

  #down(connection: Connection, ctx: ActorContext<NetworkMessage>): void {
    const key = connection.peerKey === undefined ? undefined : toHex(connection.peerKey);
    if (key === undefined) return;
    const before = this.#peers.get(key) ?? [];
    const list = before.filter((p) => p.connection !== connection);
    if (list.length === 0) {
      this.#peers.delete(key);
      // Asked again at its next hello: kept, it grew for every key that ever said hello.
      this.#standing.delete(key);
      this.#standingAsks.delete(key);
    } else this.#peers.set(key, list);
    if (before.some((p) => p.connection === connection && p.storage !== undefined)) {
      this.#storagePeersChanged(ctx);
    }
    const why = connection.closeReason ? `: ${connection.closeReason.message}` : "";
    this.#log(`peer down ${key.slice(0, 16)}${why}`);
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
    for (const entry of this.#peers.get(key) ?? []) entry.info.convicted = true;
    this.#log(`peer ${key.slice(0, 16)} convicted of cheating: no more jobs are routed to it`);
  }

  #entryOf(connection: Connection): PeerEntry | undefined {
    const key = connection.peerKey === undefined ? undefined : toHex(connection.peerKey);
    return key === undefined
      ? undefined
      : this.#peers.get(key)?.find((p) => p.connection === connection);
  }

  /**
   * What a claim waits for on `connection` before it goes: the peer's answer for its receipt
   * (`ClaimEvidence`), sent now if the claim brings it and the connection has not carried it
   * ({@link MAX_CARRIED_CLAIM_RECEIPTS}), whatever the answer (the peer's validator handled the
   * receipt: remembers it again, or records it). A request may wait for a slot on the connection,
   * so a claim sent at once would overtake it, and so would a later claimant's claim about the
   * same receipt sent while it is on its way. Undefined: nothing to wait for.
   */
  #receiptAhead(connection: Connection, accusation: Accusation): Promise<unknown> | undefined {
    if (accusation.kind !== "withheld") return undefined;
    const id = accusation.verdict.subjectId;
    let carried = this.#carriedReceipts.get(connection);
    const sent = carried?.get(id);
    if (sent !== undefined || accusation.evidence === undefined) return sent;
    if (carried === undefined) this.#carriedReceipts.set(connection, carried = new Map());
    const answered = connection.request(ReceiptAnnouncementMessage, accusation.evidence)
      .catch(() => {});
    carried.set(id, answered);
    if (carried.size > MAX_CARRIED_CLAIM_RECEIPTS) carried.delete(carried.keys().next().value!);
    return answered;
  }

  /**
   * Pass a fraud proof or a "proof withheld" claim on to every peer but `except`, each after its
   * author's pledge: looked up in our ledger first, then sent (`publish_accusation`).
   */
  #publishAccusation(
    accusation: Accusation,
    { except }: { except?: string },
    ctx: ActorContext<NetworkMessage>,
  ): void {
    this.#pledgeSync.lookUpPledge(
      accuserOf(accusation),
      ctx,
      (pledge) => ({ type: "publish_accusation", accusation, pledge, except }),
    );
  }

  /**
   * Send to one connection of every peer that offers `protocol`, but the peer `except` (hex
   * key); failures are logged.
   */
  #broadcast(
    protocol: Protocol,
    except: string | undefined,
    send: (connection: Connection) => Promise<unknown>,
  ): number {
    let sent = 0;
    for (const [key, list] of this.#peers) {
      if (key === except) continue;
      const entry = list.find((p) => !p.connection.isClosed);
      if (entry === undefined || !entry.connection.supports(protocol.name)) continue;
      sent++;
      send(entry.connection).catch((error) =>
        this.#log(`peer ${entry.info.key.slice(0, 16)}: ${(error as Error).message}`)
      );
    }
    return sent;
  }

  /** See the `reach` message: dial `key` when no connection to it is open. */
  #reach(key: Uint8Array, forMs: number, holder?: string): ReachAnswer {
    if (this.#dials === undefined || bytesEqual(key, this.#options.identity.publicKey)) {
      return false;
    }
    if (this.#peers.has(toHex(key))) return false; // connected: nothing to dial
    const dialled = this.#dials.reach(key, forMs, holder);
    if (!dialled) {
      this.#log(
        `reach ${toHex(key).slice(0, 16)}: not dialled, ${this.#dials.size} dials under way`,
      );
    }
    return dialled || "full";
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

  /**
   * A connection to the worker for a job on `model` (any when absent), by the rules of
   * `worker_choice.ts`: serves the model, not convicted here, has capacity, backed by stake in
   * this node's ledger, a holder of the job's `input` (when it names one), least loaded, best
   * track record.
   */
  #worker(model?: string, exclude: readonly string[] = [], input?: string): Connection | undefined {
    const candidates: (WorkerCandidate & { connection: Connection })[] = [];
    const holders = input === undefined ? undefined : this.#inputHolders(input);
    const now = Date.now();
    for (const list of this.#peers.values()) {
      for (const { connection, info, hello, checking } of list) {
        if (connection.isClosed || !connection.supports(INFERENCE_PROTOCOL.name)) continue;
        if (checking) continue; // its conviction is still being asked
        // A model it lists but refused lately is not its to be picked for.
        const refused = model !== undefined &&
          (this.#refused.get(`${info.key}:${model}`) ?? 0) > now;
        candidates.push({
          connection,
          key: info.key,
          // A peer that listed no model runs no jobs (it would only forward them again).
          models: refused ? info.models.filter((m) => m !== model) : info.models,
          convicted: info.convicted,
          load: hello?.load,
          inFlight: connection.stats().pendingRequests,
          standing: this.#standing.get(info.key),
          holdsInput: holders?.has(info.key) ?? false,
        });
      }
    }
    return chooseWorker(candidates, { model, exclude })?.connection;
  }

  /**
   * Hex keys of the nodes that hold `cid` by the placement storage uses (`storage/rendezvous.ts`):
   * the first r of the storing nodes this node sees (its storage peers, peers whose hello says
   * they store, and itself when it stores), ranked for the CID's storage key. Every node with the same peers computes the same holders;
   * a peer this node does not see may hold it too, and is simply not preferred.
   */
  #inputHolders(cid: string): Set<string> {
    // Its storage peers, and those whose hello says they store (a router that stores nothing
    // itself speaks no storage protocol with them, but ranks them as a storing node would).
    const ids = new Set(this.#holders().map((holder) => holder.id));
    for (const [key, list] of this.#peers) {
      if (list.some((p) => !p.connection.isClosed && p.hello?.roles.includes("storage"))) {
        ids.add(key);
      }
    }
    if (this.#services?.storage !== undefined) ids.add(toHex(this.#options.identity.publicKey));
    const peers = [...ids].map((id) => ({ id }));
    let key: string;
    try {
      key = storageKey(cid);
    } catch {
      return new Set(); // not a CID: the worker refuses the job, wherever it goes
    }
    return new Set(rankPeers(key, peers).slice(0, DEFAULT_REPLICAS).map((peer) => peer.id));
  }

  /** Note that worker `key` refused a job for `model` it listed (see `worker_refused_model`). */
  #refusedModel(key: string, model: string): void {
    const now = Date.now();
    if (this.#refused.size >= MAX_REFUSED_MODELS) {
      for (const [pair, until] of this.#refused) if (until <= now) this.#refused.delete(pair);
      // Still full of live entries: the oldest go first (a Map keeps insertion order).
      while (this.#refused.size >= MAX_REFUSED_MODELS) {
        this.#refused.delete(this.#refused.keys().next().value!);
      }
    }
    this.#refused.delete(`${key}:${model}`);
    this.#refused.set(`${key}:${model}`, now + REFUSED_MODEL_COOLDOWN_MS);
  }

  /** Sign and send this node's hello whenever what it says changes (and at least every 30 s). */
  async #helloLoop(
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

  #sendHello(hello: PeerHello): void {
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
   * A peer's hello: kept if it is signed by the key this connection proved, and newer. One for
   * another key ends the connection (an honest node sends its own); one whose signature does
   * not verify is dropped, and the {@link MAX_BAD_HELLOS}th ends it: a peer left connected could
   * send them without end, each an ed25519 check, while a version that signs its hellos in some
   * way this one cannot check is not cut off at its first.
   */
  #onHello(connection: Connection, hello: PeerHello, ctx: ActorContext<NetworkMessage>): void {
    const entry = this.#entryOf(connection);
    if (entry === undefined) return;
    const short = entry.info.key.slice(0, 16);
    if (!bytesEqual(hello.key, connection.peerKey!)) {
      const why = "hello refused (for another key than its connection's)";
      this.#peerLog.line("hello refused", `peer ${short}: ${why}`);
      connection.close(new Error(why)).catch(() => {});
      return;
    }
    if (!verifyPeerHello(hello)) {
      entry.badHellos = (entry.badHellos ?? 0) + 1;
      const why = `hello refused (not signed by its key; ${entry.badHellos} of ${MAX_BAD_HELLOS})`;
      this.#peerLog.line("hello refused", `peer ${short}: ${why}`);
      if (entry.badHellos >= MAX_BAD_HELLOS) connection.close(new Error(why)).catch(() => {});
      return;
    }
    hello = knownHelloFields(hello); // what a later version adds is signed, not kept
    if (entry.hello !== undefined && hello.seq <= entry.hello.seq) return; // a replay, or late
    entry.hello = hello;
    entry.info.roles = [...hello.roles];
    entry.info.version = hello.version;
    entry.info.load = hello.load && { ...hello.load };
    entry.info.storage = hello.storage && { ...hello.storage };
    if (hello.roles.includes("inference")) this.#helloStanding(entry.info.key, ctx);
    // It serves another set of models now (a training round's new model): ask for the list.
    if (
      hello.models.join() !== entry.info.models.join() &&
      connection.supports(INFERENCE_PROTOCOL.name)
    ) {
      this.#askModels(entry, ctx);
    }
  }

  /**
   * Ask a peer for its models. A flood of hellos must not become a flood of requests (each
   * one held here until answered): one is in flight per connection, and another waits until
   * `helloIntervalMs` after it; a hello that names other models meanwhile only marks that the
   * list is to be asked again once this answer is in (`#listed`).
   */
  #askModels(entry: PeerEntry, ctx: ActorContext<NetworkMessage>): void {
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
      ({ models }) => tellQuietly(ctx, { type: "peer_models", connection, models }),
      () => tellQuietly(ctx, { type: "peer_models_failed", connection }),
    );
  }

  /** A peer's model list answered (or failed): ask again if a hello asked for it meanwhile. */
  #listed(entry: PeerEntry, ctx: ActorContext<NetworkMessage>): void {
    entry.listing = false;
    if (entry.listAgain && !entry.connection.isClosed) this.#askModels(entry, ctx);
  }

  /** A hello asks for the peer's standing at most once per `helloIntervalMs` (see `#standingAsks`). */
  #helloStanding(key: string, ctx: ActorContext<NetworkMessage>): void {
    const asks = this.#standingAsksOf(key);
    const now = (this.#options.now ?? Date.now)();
    const every = this.#options.helloIntervalMs ?? DEFAULT_HELLO_INTERVAL_MS;
    if (now - asks.at < every) return;
    asks.at = now;
    this.#askStanding(key, ctx);
  }

  #standingAsksOf(key: string): { inFlight: boolean; again: boolean; at: number } {
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
  #askStanding(key: string, ctx: ActorContext<NetworkMessage>): void {
    const validator = this.#services?.validator;
    if (validator === undefined) return;
    const asks = this.#standingAsksOf(key);
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
        (a) => tellQuietly(ctx, { type: "peer_standing", key, standing: { ...a } }),
        () => tellQuietly(ctx, { type: "peer_standing", key }),
      );
  }

  /**
   * Every model some open worker connection listed, once per CID, named and ordered by what
   * the most keys list (`model_listing.ts`: the first listing named it, a stranger's as well),
   * but not a convicted worker's: no job goes to it, and its listing, first, took the name and
   * the default a client names a model by (`InferenceGateway.resolveModel`), so every such job
   * failed with `no_worker`.
   */
  #workerModels(): WireModelInfo[] {
    const listings: ModelListing[] = [];
    for (const list of this.#peers.values()) {
      for (const { connection, models, info, checking } of list) {
        // Nor one whose conviction is still being asked: it is routed no job (`#worker`).
        if (connection.isClosed || info.convicted || checking) continue;
        listings.push({ key: info.key, standing: this.#standing.get(info.key), models });
      }
    }
    return listedModels(listings);
  }

  async #dialLoop(address: PeerAddress, ctx: ActorContext<NetworkMessage>): Promise<void> {
    const first = this.#options.redialMs ?? DEFAULT_REDIAL_MS;
    let wait = first;
    const text = formatPeerAddress(address);
    while (!ctx.signal.aborted) {
      try {
        // Stopped with the actor: a dial under way does not outlive it.
        const duplex = await connectTcp(address, { signal: ctx.signal });
        const connection = await this.#open(duplex, () => duplex.close(), ctx);
        const since = performance.now();
        try {
          await ctx.self.tell({ type: "peer_up", connection, address: text, outbound: true });
        } catch (error) {
          await connection.close(); // stopping: nobody would own it
          throw error;
        }
        await connection.closed;
        // Only a connection that lasted starts the backoff again: one the peer refuses at once
        // (its connection limits) is not redialled every `redialMs` with a handshake each time.
        if (performance.now() - since >= STABLE_CONNECTION_MS) wait = first;
      } catch (error) {
        if (ctx.signal.aborted) return;
        this.#log(`peer ${text}: ${(error as Error).message}; retrying in ${wait} ms`);
      }
      await sleep(wait, ctx.signal);
      wait = Math.min(wait * 2, MAX_REDIAL_MS);
    }
  }

  #handshakeFailed(address: string, error: unknown): void {
    this.#peerLog.line(
      "handshake failed",
      `peer ${address}: handshake failed: ${(error as Error).message}`,
    );
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }
}

/**
 * Evidence against a worker to pass on, which a ledger takes only from an author with stake
 * there: a fraud proof of an inference receipt, training gossip of one, or a "proof withheld"
 * claim (a validator's `invalid / proof_unavailable` verdict: a ledger asks the worker itself on
 * a staked claimant's word, and slashes it if it withholds there too).
 */
export type Accusation =
  | { kind: "inference"; proof: FraudProof }
  | Extract<TrainingGossip, { kind: "fraud_proof" }>
  | { kind: "withheld"; verdict: Verdict; evidence?: ClaimEvidence };

/**
 * Receipts a connection is remembered to have carried ahead of a "proof withheld" claim
 * ({@link ClaimEvidence}), so that each goes once per connection, not ahead of each claimant's
 * claim about it: a job may take `MAX_NETWORK_JOB_BYTES` (448 KiB), and any staked key may sign a
 * claim about any pending receipt (a claim is taken over within the takeover budget, but recorded
 * and passed on past it), so keys claiming about receipts of large jobs multiplied what each
 * claim, about 1.3 KiB, costs every connection. Past the bound the oldest is forgotten, and sent
 * again at most once more. About 30 KB per connection (256 hex ids), as
 * `MAX_CARRIED_PLEDGES`. A peer that forgot a receipt again after it was carried (a flood pushed
 * it out of its memory anew) and did not take the first claim over takes a later claim alone.
 */
export const MAX_CARRIED_CLAIM_RECEIPTS = 256;

/**
 * The receipt a "proof withheld" claim is about, with its job: sent on each connection ahead of
 * the claim (once per connection, {@link MAX_CARRIED_CLAIM_RECEIPTS}), as a `validation.receipt`
 * announcement (no assignment: a ledger that has the receipt
 * recorded needs none, and one that has not records it uncredited until its assignment comes).
 * A ledger takes a claim over only while it remembers the receipt and job (a bounded memory, one
 * queue for every worker, `actors/_validator_memory.ts`); one that forgot them, pushed out by a
 * flood of receipts (which only lock stake), remembers them again from this copy (the very
 * receipt recorded there, its worker's signature checked), and one that never had them records
 * them (review s57: the claim alone was not taken over there, and the worker that withheld was
 * paid there, slashed in the claimant's ledger).
 */
export interface ClaimEvidence {
  /** The worker's signed receipt. */
  receipt: Receipt;
  /** Its job (a text job: what `validation.receipt` carries). */
  job: TextJob;
}

/**
 * Whether `verdict` is a "proof withheld" claim about an inference receipt: what a ledger takes
 * over (`ValidatorActor`'s `#takeOverWithheld`) only from a claimant with stake there.
 */
function isWithheldClaim(verdict: Verdict): boolean {
  return verdict.subject === "inference" && verdict.outcome === "invalid" &&
    verdict.reason === "proof_unavailable";
}

/** The key whose stake `accusation` counts on: its accuser's, or its claimant's. */
function accuserOf(accusation: Accusation): Uint8Array {
  switch (accusation.kind) {
    case "inference":
      return accusation.proof.validator;
    case "fraud_proof":
      return accusation.body.proof.validator;
    case "withheld":
      return accusation.verdict.validator;
  }
}

/** Send `accusation` on `connection`, as the message of its protocol. */
function notifyAccusation(connection: Connection, accusation: Accusation): Promise<void> {
  switch (accusation.kind) {
    case "inference":
      return connection.notify(FraudProofAnnouncementMessage, { proof: accusation.proof });
    case "fraud_proof":
      return notifyTraining(connection, accusation);
    case "withheld":
      // After its receipt, where it brings one (`NetworkActor`'s `#receiptAhead`).
      return connection.notify(VerdictAnnouncementMessage, { verdict: accusation.verdict });
  }
}

/** Send one training gossip item on `connection`. */
function notifyTraining(connection: Connection, gossip: TrainingGossip): Promise<void> {
  switch (gossip.kind) {
    case "receipt":
      return connection.notify(TrainingReceiptMessage, gossip.body);
    case "fraud_proof":
      return connection.notify(TrainingFraudProofMessage, gossip.body);
    case "outcome":
      return connection.notify(OutcomeMessage, gossip.body);
  }
}

function short(connection: Connection): string {
  return connection.peerKey === undefined ? "?" : toHex(connection.peerKey).slice(0, 16);
}

function tellQuietly(ctx: ActorContext<NetworkMessage>, message: NetworkMessage): void {
  // The actor may be stopping: a late peer event then has nobody to inform.
  ctx.self.tell(message).catch(() => {});
}
