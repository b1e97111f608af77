/**
 * How the NetworkActor's peer connections come to be: the TCP listener, the static peers dialled
 * and redialled with backoff when they drop ({@link MAX_REDIAL_MS}), the Hyperswarm host and
 * its topics, the peers dialled by key (`reach`, `dial_by_key.ts`), and the authenticated
 * handshake every connection is opened with, whatever its transport
 * ({@link PeerTransports.open}: the bounds on handshakes at once, `connection_limits.ts`; the
 * key a swarm connection's Noise handshake proved; the peer services served on it), and the
 * goodbyes (`protocols/peer_goodbye.ts`): said when the node stops to every connection opened
 * here, in the actor's table or not yet (a `peer_up` the stop discarded), and to one whose
 * handshake ends once the stop began (refused with it); and heard from a peer that stops, whose
 * connection then closes at once. A connection opened here is handed to
 * the actor as a `peer_up` message (a peer's goodbye as `peer_down`): the actor's table is only
 * touched in its `receive`. Owned and used by the NetworkActor (`network_actor.ts`, which re-exports
 * {@link MAX_REDIAL_MS}); not part of the public API.
 *
 * @module
 */
import type { ActorContext } from "../actors/actor.ts";
import { sleep } from "../actors/_common.ts";
import { Connection } from "../protocols/connection.ts";
import type { Protocol } from "../protocols/connection_protocols.ts";
import { connectTcp, type TcpDuplex, type TcpListener } from "../protocols/tcp_transport.ts";
import { listenForPeers } from "./peer_listener.ts";
import type { LogLimiter } from "./log_limiter.ts";
import type { ByteDuplex } from "../protocols/memory_duplex.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import {
  FRAMING_ERROR_CODES,
  OwnKeyHandshakeError,
  type RemoteError,
} from "../protocols/protocol_errors.ts";
import { SwarmHost } from "./swarm_host.ts";
import { SwarmSettling } from "./_swarm_settling.ts";
import { swarmHostHealthOf } from "./swarm_host_health.ts";
import { toHex } from "../protocols/hash.ts";
import { PeerHelloMessage, type PeerRole } from "../protocols/peer_hello.ts";
import {
  GOODBYE_PROTOCOL,
  type GoodbyeReason,
  PeerGoodbyeMessage,
  PeerStoppedError,
} from "../protocols/peer_goodbye.ts";
import { type ConnectionTimers, SYSTEM_TIMERS } from "../protocols/connection_timers.ts";
import { type PeerServices, servePeer } from "./peer_services.ts";
import { nodeTopics } from "./swarm_topics.ts";
import { formatPeerAddress, type PeerAddress } from "./peer_address.ts";
import type { PledgeBudgets } from "./pledge_budget.ts";
import type { PeerEntry } from "./_peer_entry.ts";
import { KeyDials } from "./dial_by_key.ts";
import { addressGroup, type ConnectionLimits, type HandshakeSlot } from "./connection_limits.ts";
import { refuseHandshake } from "../protocols/session_handshake.ts";
import { peerOriginsOf } from "./_peer_origins.ts";
import type { AccountMessage } from "../actors/validator_messages.ts";
import type { Account } from "../proof/ledger.ts";
import { WireBudget } from "../protocols/wire_budget.ts";
import type {
  NetworkActorOptions,
  NetworkMessage,
  ReachAnswer,
  SwarmOptions,
} from "./network_actor.ts";

/** Most a redial waits: a restarted peer is found again within this. */
export const MAX_REDIAL_MS = 10_000;
/** A dialled connection that lasted this long starts the redial backoff from its first step. */
const STABLE_CONNECTION_MS = 10_000;
/** Default first redial delay. */
const DEFAULT_REDIAL_MS = 250;
/**
 * Most a stopping node waits for its goodbyes to be written ({@link PeerTransports.close}):
 * a goodbye is one small frame, written at once to every peer that reads us; a peer that stopped
 * reading (our writes to it stuck) is not worth holding the stop for: its goodbye is flushed with
 * the connection's close, if at all, and it sees the connection drop, as before goodbyes.
 */
export const GOODBYE_WAIT_MS = 500;

/**
 * How long a connection refused before its handshake stays open for its refusal to be read
 * (`refuseHandshake`): a round trip on any link a peer is dialled over, with room for a loaded
 * host; a dialer that reads it hangs up sooner, which ends it sooner.
 */
const REFUSAL_LINGER_MS = 1_000;
/**
 * Most refusals lingering at once: each drains the dialer's bytes into a read buffer (64 KiB), so
 * a flood of refused sockets costs at most 1 MiB; past it a refused socket is cut at once and its
 * dialer sees the stream end short, as before refusals were said.
 */
const MAX_POLITE_REFUSALS = 16;

/**
 * Codes of a handshake that failed on what the other end sent, not on the network: whatever
 * answered there speaks another protocol (an HTTP server's first bytes read as a frame of about
 * 1 GB: `frame_too_large`). The commonest cause is a `--peer` given a node's HTTP `--port`.
 */
const NOT_OUR_PROTOCOL: ReadonlySet<string> = new Set(FRAMING_ERROR_CODES);

/**
 * Why a dial of `address` failed, as the operator's log says it: the error's own text, and what
 * to check when the cause is a likely mistake in the address (nothing listening, or something
 * that is not a Veriflow peer port). `stage` says whether the TCP connect or the handshake after
 * it failed: only a handshake can show the other end speaks another protocol.
 */
function dialFailure(error: unknown, stage: "connect" | "handshake", address: string): string {
  const message = error instanceof Error ? error.message : String(error);
  if (stage === "connect" && error instanceof Deno.errors.ConnectionRefused) {
    return `${message} (is a node running there, with --p2p-port ${portOf(address)}?)`;
  }
  if (stage === "handshake") {
    // A handshake that failed on a frame wraps the frame's error (`handshake_failed`, its
    // `cause`): the cause's code says whether the other end spoke our protocol at all.
    const code = codeOf((error as { cause?: unknown } | null)?.cause) ?? codeOf(error);
    if (code !== undefined && NOT_OUR_PROTOCOL.has(code)) {
      return `not a Veriflow peer port: what answered sent no handshake of ours (${message}); ` +
        `give the node's --p2p-port (default 7700), not its HTTP --port`;
    }
    if (code === "peer_timeout") {
      return `${message} (a connection was accepted but no Veriflow handshake came: is ` +
        `${portOf(address)} the node's --p2p-port, not its HTTP --port or another service?)`;
    }
  }
  return message;
}

/**
 * Most a standing ask waits for the ledger: an account lookup is answered at once by a validator
 * that runs; one that does not answer leaves the key counted as a newcomer, as it was.
 */
const STANDING_ASK_TIMEOUT_MS = 5_000;

/**
 * How to ask the ledger of `services` whether `key` has standing there (stake or credit
 * recorded); undefined when this node keeps no ledger.
 */
function ledgerStanding(
  services: PeerServices,
  key: Uint8Array,
): (() => Promise<boolean>) | undefined {
  const name = services.validator;
  if (name === undefined) return undefined;
  return async () => {
    const validator = services.system.lookup<AccountMessage>(name);
    if (validator === undefined) return false;
    const account = await validator.ask<Account>({ type: "account", key }, {
      timeoutMs: STANDING_ASK_TIMEOUT_MS,
    });
    return account.stake > 0 || account.balance > 0;
  };
}

/** The stable `code` of a typed error, if it has one. */
function codeOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

/** The port of a formatted `HOST:PORT` address. */
function portOf(address: string): string {
  return address.slice(address.lastIndexOf(":") + 1);
}

/**
 * Where a connection with a known remote address comes from ({@link PeerTransports.open}): a
 * TCP connection a peer opened to the listener, or a swarm connection the swarm host gave an
 * address (`SwarmPeer.remoteHost`).
 */
export interface ConnectionOrigin {
  /**
   * Its remote address's `addressGroup` (`connection_limits.ts`): what the per-address budgets of
   * what it brings count it in, new keys' pledges (`peer_services.ts`) and the validator's inbox
   * (`_peer_origins.ts`), whoever opened it: a swarm peer this node dialled was found by a topic
   * lookup, where anyone may announce.
   */
  group: string;
  /**
   * The peer opened it (TCP: every connection to the listener; swarm: one this side did not
   * dial): its handshake takes a slot of its group's (`connection_limits.ts`), and the actor
   * counts it among the group's open connections (`peer_up`'s `host`). One this node opened is
   * its own choice, as a TCP dial is.
   */
  inbound: boolean;
}

/** Options of {@link PeerTransports}: what it needs of the NetworkActor. */
export interface PeerTransportsOptions {
  /**
   * The actor's options: read for `identity`, `listen`, `peers`, `swarm`, `connection`,
   * `redialMs`, `describe` and `log`.
   */
  options: NetworkActorOptions;
  /** Bounds on connections and handshakes (`connection_limits.ts`), shared with the actor. */
  limits: ConnectionLimits;
  /** What each peer key may still bring of pledges (served on every connection). */
  pledgeBudgets: PledgeBudgets;
  /** The log lines peers can cause, a few per kind at a time (`log_limiter.ts`). */
  peerLog: LogLimiter;
  /** The actor's open connections by hex peer key (only read: `reach` dials no connected key). */
  peers: ReadonlyMap<string, readonly PeerEntry[]>;
  /** The protocols every connection offers (set in the actor's `preStart`). */
  protocols: () => Protocol[];
  /** What this node serves to peers (set in the actor's `preStart`). */
  services: () => PeerServices | undefined;
  /** Tell the NetworkActor `message`, quietly (it may be stopping). */
  tell: (ctx: ActorContext<NetworkMessage>, message: NetworkMessage) => void;
  /**
   * A connection's peer sent an error that answers no request of ours (its `onRemoteError`,
   * after the one in `connection` options): a refusal of our hello is logged from it.
   */
  remoteError?: (connection: Connection, error: RemoteError) => void;
}

/**
 * A configured peer's (`--peer`, `network.peers`) dial state, kept per address by
 * {@link PeerTransports} (review s74 F3: a configured peer that could not be reached showed in one
 * log line only): `/metrics`' `veriflow_static_peer_up{address}`, `/healthz`'s `peer_unreachable`,
 * the heartbeat and the dashboard's peers panel read it (the `static_peers` ask).
 */
export interface StaticPeerState {
  /** The address as configured (`host:port`). */
  address: string;
  /** A connection dialled to it is open now. */
  up: boolean;
  /** Unix ms it has been so since: connected, or down (dialling began, or its connection closed). */
  since: number;
  /** Dials failed since it was last up (0: none failed yet). */
  failures: number;
  /** The last failure, as the log says it (absent while none failed since it was up). */
  lastError?: string;
  /**
   * The address is this node itself: it answered with our own key on our own listener (one
   * config listing every node, copied to each: review s78 F3). No longer dialled, and neither a
   * `peer_unreachable` condition nor a `veriflow_static_peer_up` series.
   */
  self?: true;
}

/** This machine's loopback addresses (127.0.0.0/8, ::1, IPv4 loopback mapped into IPv6). */
const LOOPBACK_HOST = /^(::1|(::ffff:)?127\.\d+\.\d+\.\d+)$/i;

/**
 * Whether `duplex`, a dial that answered with our own key, reached this node's own listener: our
 * listening port, on this machine (loopback, or the same address on both ends, as a dial of one's
 * own LAN address is). Another host that answers with our key is a copied identity (another node
 * run from this one's data), which stays a failure to see.
 */
function reachedOwnListener(duplex: TcpDuplex, listening: Deno.NetAddr | undefined): boolean {
  const remote = duplex.remoteAddr.hostname;
  return listening !== undefined && duplex.remoteAddr.port === listening.port &&
    (remote === duplex.localAddr.hostname || LOOPBACK_HOST.test(remote));
}

/** The NetworkActor's listener, dials and swarm; see the module doc. */
export class PeerTransports {
  readonly #options: NetworkActorOptions;
  readonly #parts: PeerTransportsOptions;
  readonly #peers: ReadonlyMap<string, readonly PeerEntry[]>;
  #listener?: TcpListener;
  #swarm?: SwarmHost;
  /**
   * The swarm host's start, while and after it is under way: a stop that comes meanwhile aborts
   * it (the actor's signal) and {@link close} waits for it, so no host outlives the node's stop.
   */
  #swarmStart?: Promise<SwarmHost>;
  /** Bounds on connections and handshakes (`connection_limits.ts`). */
  readonly #limits: ConnectionLimits;
  /** Peers dialled by key (`reach`); only with a swarm. */
  #dials?: KeyDials;
  /** Whether the swarm is still finding its peers (its host's states, on the actor's clock). */
  readonly #settling: SwarmSettling;
  readonly #pledgeBudgets: PledgeBudgets;
  readonly #peerLog: LogLimiter;
  /**
   * The node's budget shared by every connection opened here (`protocols/wire_budget.ts`): the
   * one in the actor's `connection` options (the node's config), else one with the defaults.
   */
  readonly #budget: WireBudget;
  /** Stops logging the budget's refusals. */
  readonly #unwatchBudget: () => void;
  /**
   * Every connection opened here and not closed yet, in the table or not: one whose `peer_up`
   * waits in the actor's mailbox belongs to no one else, and a stop that discards the message
   * must still say goodbye to it and close it ({@link PeerTransports.close}).
   */
  readonly #open = new Set<Connection>();
  /** The connections told goodbye already: a peer is told once. */
  readonly #toldGoodbye = new WeakSet<Connection>();
  /**
   * Refusals before the handshake still lingering ({@link MAX_POLITE_REFUSALS}): each one's timer
   * and how to cut its socket (at once when the node stops).
   */
  readonly #refusing = new Map<unknown, () => void>();
  /** Each configured peer's dial state, by address: as many as the configuration lists. */
  readonly #staticPeers = new Map<string, StaticPeerState>();

  /** @param parts See {@link PeerTransportsOptions}. */
  constructor(parts: PeerTransportsOptions) {
    this.#parts = parts;
    this.#options = parts.options;
    this.#peers = parts.peers;
    this.#limits = parts.limits;
    this.#pledgeBudgets = parts.pledgeBudgets;
    this.#peerLog = parts.peerLog;
    this.#budget = this.#options.connection?.budget ?? new WireBudget();
    this.#unwatchBudget = this.#budget.onRefusal((peer, reason) => {
      const who = /^[0-9a-f]{64}$/.test(peer) ? peer.slice(0, 16) : peer;
      this.#peerLog.line("wire budget", `peer ${who}: request refused busy: ${reason}`);
    });
    const now = () => (this.#options.now ?? Date.now)();
    this.#settling = new SwarmSettling(this.#options.swarm !== undefined, now);
  }

  /** Each configured peer's dial state (copies), in the order configured. */
  get staticPeers(): StaticPeerState[] {
    return [...this.#staticPeers.values()].map((state) => ({ ...state }));
  }

  /** The node's budget shared by every connection opened here (what it holds: `stats()`). */
  get budget(): WireBudget {
    return this.#budget;
  }

  /**
   * Whether the swarm is still finding its peers: its host starting, or up and joined less than
   * `SWARM_SETTLE_MS` ago (`_swarm_settling.ts`); false without a swarm.
   */
  get swarmSettling(): boolean {
    return this.#settling.settling;
  }

  /** Where this node accepts peer connections (undefined: it listens nowhere). */
  get listening(): Deno.NetAddr | undefined {
    return this.#listener?.addr;
  }

  /** Peers dialled by key (`reach`); only with a swarm, once it started. */
  get dials(): KeyDials | undefined {
    return this.#dials;
  }

  /** What every connection offers: the actor's protocols, and goodbyes (sent and read here). */
  get #protocols(): Protocol[] {
    return [...this.#parts.protocols(), GOODBYE_PROTOCOL];
  }

  /** The connections' clock (the bound on the goodbyes' wait). */
  get #timers(): ConnectionTimers {
    return this.#options.connection?.timers ?? SYSTEM_TIMERS;
  }

  get #services(): PeerServices | undefined {
    return this.#parts.services();
  }

  /** Start listening and dialling, and join the swarm when configured (the actor's `preStart`). */
  start(ctx: ActorContext<NetworkMessage>): void {
    const { listen, peers = [] } = this.#options;
    if (listen !== undefined) {
      this.#listener = listenForPeers(listen, (duplex, remoteAddr) => {
        const remote = formatPeerAddress(remoteAddr);
        // The per-address bounds count an IPv6 /64, and this machine's loopback, as one address.
        const group = addressGroup(remoteAddr.hostname);
        this.open(duplex, () => duplex.close(), ctx, undefined, { group, inbound: true }).then(
          (connection) =>
            ctx.self.tell({
              type: "peer_up",
              connection,
              address: remote,
              outbound: false,
              host: group,
            })
              .catch(() => this.#refuse(connection)), // stopping: nobody would own it
          (error) => this.handshakeFailed(remote, error),
        );
      }, (line) => this.#log(line));
      this.#log(`peer listener    ${formatPeerAddress(this.#listener.addr)}`);
    }
    for (const address of peers) void this.#dialLoop(address, ctx);
    if (this.#options.swarm !== undefined) {
      // In the background: start-up does not wait for the DHT, and a swarm that cannot start
      // (no Node.js) leaves the node on its TCP peers, saying why. A join the node's own
      // stopping cut short (its bootstrap never answered) is no failure to report at Ctrl-C.
      this.#joinSwarm(this.#options.swarm, ctx).catch((error) => {
        this.#settling.failed();
        if (ctx.signal.aborted) return;
        this.#log(`swarm unavailable: ${(error as Error).message}`);
        // No host runs (a join that failed leaves the host up): /healthz says why.
        if (this.#swarm === undefined) {
          swarmHostHealthOf(ctx.system).failed((error as Error).message);
        }
      });
    }
  }

  async #joinSwarm(options: SwarmOptions, ctx: ActorContext<NetworkMessage>): Promise<void> {
    const health = swarmHostHealthOf(ctx.system);
    this.#swarmStart = SwarmHost.start({
      identity: this.#options.identity,
      bootstrap: options.bootstrap,
      bind: options.bind,
      nodePath: options.nodePath,
      socketDir: options.socketDir,
      log: (line) => this.#log(line),
      // The node's stop kills a host still starting (review s71, finding 3).
      signal: ctx.signal,
      onState: (state, reason) => {
        // Each coming up (a restart joins its topics again) opens the window anew.
        if (state === "up") {
          this.#settling.up();
          health.up();
        } else {
          this.#settling.down();
        }
        if (state === "failed") {
          // Given up restarting (its restart intensity): no peer comes through it any more.
          this.#settling.failed();
          health.failed(reason?.message ?? "the swarm host gave up restarting");
        }
        this.#log(`swarm ${state}`);
      },
      // No DHT node answered at its bootstrap: /healthz says so until one does (review s78, F3).
      onDht: (reachable, message) => reachable ? health.dhtAnswered() : health.noDht(message),
      onPeer: (peer) => {
        const address = `swarm:${toHex(peer.remoteKey).slice(0, 16)}`;
        // Its address group, as a TCP peer's (a testnet's 127.0.0.1 is `loopback`, the group TCP
        // peers on this machine share): counted in the per-address budgets, so fresh keys from
        // one host share one group's, not the one bucket every swarm peer drew on (review s71
        // verify F3). None where the host knows no address, or the peer comes through a relay
        // (`SwarmPeer.remoteHost`): those still share the unaddressed bucket.
        const origin = peer.remoteHost === undefined
          ? undefined
          : { group: addressGroup(peer.remoteHost), inbound: !peer.initiator };
        this.open(peer.duplex, peer.close, ctx, peer.remoteKey, origin).then(
          (connection) =>
            ctx.self.tell({
              type: "peer_up",
              connection,
              address,
              outbound: peer.initiator,
              ...(origin?.inbound ? { host: origin.group } : {}),
              // Relayed, or of unknown address: placed in the group all such peers share.
              ...(origin === undefined ? { unaddressed: true } : {}),
            })
              .catch(() => this.#refuse(connection)),
          (error) => this.handshakeFailed(address, error),
        );
      },
    });
    const swarm = await this.#swarmStart;
    if (ctx.signal.aborted) return; // stopped as the host came up: close() closes it
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
    // A join the node's stopping settled (the host's last flush) joined nothing worth a line.
    if (ctx.signal.aborted) return;
    // Its topics joined: the window for finding its peers counts from here.
    this.#settling.up();
    this.#log(
      `swarm joined     ${
        options.bootstrap === null ? "the public DHT" : `bootstrap ${options.bootstrap.join(", ")}`
      } (topics ${topics.map((t) => t.name).join(", ")})`,
    );
  }

  /**
   * Say goodbye to every peer (`stopping`), then close the listener, the dials and the swarm (in
   * the actor's `postStop`, first), and the connections that never reached the actor's table (a
   * `peer_up` the stop discarded); the actor closes its table's after it.
   */
  async close(): Promise<void> {
    this.#unwatchBudget();
    await this.#sayGoodbye([...this.#open], "stopping");
    await this.#listener?.close();
    for (const [timer, cut] of this.#refusing) {
      this.#timers.clearTimeout(timer);
      cut();
    }
    this.#refusing.clear();
    this.#dials?.stop();
    // A host still starting: the stop aborted its start, which kills it; wait for that.
    const swarm = this.#swarm ?? await this.#swarmStart?.catch(() => undefined);
    await swarm?.close();
    await Promise.all([...this.#open].map((connection) => connection.close()));
  }

  /**
   * Say goodbye (`stopping`) to a connection the stopping actor will not take, then close it: its
   * handshake ended once the stop began, or its `peer_up` found the mailbox closed. The peer sees
   * a stop, as the ones in the table do, not a connection dropped under it.
   */
  async #refuse(connection: Connection): Promise<void> {
    await this.#sayGoodbye([connection], "stopping");
    await connection.close();
  }

  /**
   * Open a connection over `duplex`; `close` cuts the transport. `expectedKey`: the key the
   * transport already authenticated (the swarm's Noise handshake) — the peer must prove it.
   * `origin`: where a connection with a known remote address comes from (see
   * {@link ConnectionOrigin}); undefined for one with none (in-memory, a TCP dial, a swarm peer
   * whose address is unknown or relayed).
   */
  async open(
    duplex: ByteDuplex,
    close: () => void,
    ctx: ActorContext<NetworkMessage>,
    expectedKey?: Uint8Array,
    origin?: ConnectionOrigin,
  ): Promise<Connection> {
    const inboundFrom = origin?.inbound ? origin.group : undefined;
    let slot: HandshakeSlot | undefined;
    if (inboundFrom !== undefined) {
      const taken = this.#limits.startHandshake(inboundFrom, () => {
        this.#peerLog.line(
          "handshake dropped",
          `peer ${inboundFrom}: handshake closed: its slot went to a newcomer (every slot was ` +
            `taken, its address block held the most)`,
        );
        close();
      });
      if (typeof taken === "string") {
        this.#refuseHandshake(duplex, close, taken);
        throw new Error(`refused: ${taken}`);
      }
      slot = taken;
    }
    let connection: Connection;
    let opened: Connection | undefined;
    const given = this.#options.connection?.onRemoteError;
    try {
      connection = await Connection.open(duplex, {
        ...this.#options.connection,
        budget: this.#budget,
        identity: this.#options.identity,
        protocols: this.#protocols,
        onRemoteError: (error) => {
          given?.(error);
          if (opened !== undefined) this.#parts.remoteError?.(opened, error);
        },
      });
      opened = connection;
    } catch (error) {
      close(); // a failed handshake leaves nothing worth lingering for
      throw error;
    } finally {
      slot?.end();
    }
    if (expectedKey !== undefined && !bytesEqual(connection.peerKey!, expectedKey)) {
      await connection.close();
      close();
      throw new Error("the peer proved another key than the one its swarm connection has");
    }
    // Once the connection is done, so is the socket, even if a peer that stopped reading
    // still holds our last writes (a half-closed peer never ends them).
    this.#open.add(connection);
    connection.closed.then(() => {
      this.#open.delete(connection);
      close();
    });
    if (ctx.signal.aborted) {
      // The handshake ended after the stop began: refused with the goodbye the others got.
      await this.#refuse(connection);
      throw new Error("the network actor stopped");
    }
    servePeer(connection, connection.peerKey!, {
      ...this.#services!,
      pledgeBudgets: this.#pledgeBudgets,
    }, origin?.group);
    // What the bounds that must not be per key count it as (its address group, its standing in
    // this node's ledger): the validator's inbox reads it (`_peer_origins.ts`).
    const services = this.#services!;
    const left = peerOriginsOf(services.system).connected(
      toHex(connection.peerKey!),
      origin?.group,
      ledgerStanding(services, connection.peerKey!),
    );
    connection.closed.then(left);
    connection.handle(PeerHelloMessage, ({ hello }) => {
      this.#parts.tell(ctx, { type: "peer_hello", connection, hello });
    });
    connection.handle(PeerGoodbyeMessage, ({ reason }) => {
      // Closed here, in the read loop, before the peer's own close can arrive: everything pending
      // on it fails with why (a router's jobs fail over, but the stop is not the worker's
      // failure), and the actor drops the peer now, not once the transport has wound down.
      void connection.close(new PeerStoppedError(reason));
      this.#parts.tell(ctx, { type: "peer_down", connection });
    });
    return connection;
  }

  /**
   * Refuse a connection before its handshake (`connection_limits.ts`): an `error` frame saying
   * why, so the dialer fails with `handshake_refused` rather than a stream cut short
   * (`refuseHandshake`), then cut after {@link REFUSAL_LINGER_MS}, sooner when the dialer hangs
   * up on reading it. Past {@link MAX_POLITE_REFUSALS} under way, cut at once, as before: a flood
   * of refused sockets must not hold a drain buffer each.
   */
  #refuseHandshake(duplex: ByteDuplex, close: () => void, reason: string): void {
    if (this.#refusing.size >= MAX_POLITE_REFUSALS) {
      close();
      return;
    }
    refuseHandshake(duplex, reason);
    const timer = this.#timers.setTimeout(() => {
      this.#refusing.delete(timer);
      close();
    }, REFUSAL_LINGER_MS);
    this.#refusing.set(timer, close);
  }

  /**
   * Tell each of `connections` that is open and speaks {@link GOODBYE_PROTOCOL} that this node
   * leaves, and why (once per connection); resolves once the goodbyes are written, or after
   * {@link GOODBYE_WAIT_MS}, whichever comes first: a stop never waits on a peer. A peer that does
   * not know goodbyes gets none.
   */
  async #sayGoodbye(connections: Iterable<Connection>, reason: GoodbyeReason): Promise<void> {
    const sent: Promise<void>[] = [];
    for (const connection of connections) {
      if (connection.isClosed || !connection.supports(GOODBYE_PROTOCOL.name)) continue;
      if (this.#toldGoodbye.has(connection)) continue;
      this.#toldGoodbye.add(connection);
      sent.push(connection.notify(PeerGoodbyeMessage, { reason }).catch(() => {}));
    }
    if (sent.length === 0) return;
    const timers = this.#timers;
    let timer: unknown;
    const waited = new Promise<void>((resolve) => {
      timer = timers.setTimeout(resolve, GOODBYE_WAIT_MS);
    });
    await Promise.race([Promise.all(sent), waited]);
    timers.clearTimeout(timer);
  }

  /** See the `reach` message: dial `key` when no connection to it is open. */
  reach(key: Uint8Array, forMs: number, holder?: string): ReachAnswer {
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

  async #dialLoop(address: PeerAddress, ctx: ActorContext<NetworkMessage>): Promise<void> {
    const first = this.#options.redialMs ?? DEFAULT_REDIAL_MS;
    let wait = first;
    const text = formatPeerAddress(address);
    const now = () => (this.#options.now ?? Date.now)();
    const state: StaticPeerState = { address: text, up: false, since: now(), failures: 0 };
    this.#staticPeers.set(text, state);
    // The failure last logged: a peer that stays down, or stays the wrong kind of port, is said
    // once, not at every redial (at the cap, a line every 10 s for as long as the node runs).
    let logged: string | undefined;
    while (!ctx.signal.aborted) {
      let stage: "connect" | "handshake" = "connect";
      let duplex: TcpDuplex | undefined;
      try {
        // Stopped with the actor: a dial under way does not outlive it.
        duplex = await connectTcp(address, { signal: ctx.signal });
        stage = "handshake";
        const dialled = duplex;
        const connection = await this.open(dialled, () => dialled.close(), ctx);
        logged = undefined; // connected: the next failure is news again
        const since = performance.now();
        // The group of the address reached (resolved, so a name and its address are one host):
        // placement and the router's record of its workers group it as a peer that dialled in
        // (review s76 routegaps R3). Not its `host`: the per-address bounds count what peers open.
        const group = addressGroup(dialled.remoteAddr.hostname);
        try {
          await ctx.self.tell({
            type: "peer_up",
            connection,
            address: text,
            outbound: true,
            dialled: group,
          });
        } catch (error) {
          await this.#refuse(connection); // stopping: nobody would own it
          throw error;
        }
        Object.assign(state, { up: true, since: now(), failures: 0, lastError: undefined });
        await connection.closed;
        Object.assign(state, { up: false, since: now(), lastError: "the connection closed" });
        // Only a connection that lasted starts the backoff again: one the peer refuses at once
        // (its connection limits) is not redialled every `redialMs` with a handshake each time.
        if (performance.now() - since >= STABLE_CONNECTION_MS) wait = first;
      } catch (error) {
        if (ctx.signal.aborted) return;
        if (
          error instanceof OwnKeyHandshakeError && duplex !== undefined &&
          reachedOwnListener(duplex, this.listening)
        ) {
          // This node itself: redialling it would fail the same way for as long as the node runs.
          Object.assign(state, { up: false, since: now(), failures: 0, lastError: undefined });
          state.self = true;
          this.#log(`peer ${text} is this node itself (network.peers); skipped, not dialled again`);
          return;
        }
        const why = dialFailure(error, stage, text);
        Object.assign(state, { up: false, failures: state.failures + 1, lastError: why });
        if (why !== logged) {
          logged = why;
          this.#log(
            `peer ${text}: ${why}; retrying in ${wait} ms, then backing off to every ` +
              `${MAX_REDIAL_MS / 1000} s (said again only when the failure changes)`,
          );
        }
      }
      await sleep(wait, ctx.signal);
      wait = Math.min(wait * 2, MAX_REDIAL_MS);
    }
  }

  handshakeFailed(address: string, error: unknown): void {
    this.#peerLog.line(
      "handshake failed",
      `peer ${address}: handshake failed: ${(error as Error).message}`,
    );
  }

  #log(line: string): void {
    this.#options.log?.(line);
  }
}
