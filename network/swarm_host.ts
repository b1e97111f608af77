/**
 * The swarm host, seen from Deno: Hyperswarm cannot load inside Deno (its UDP module needs
 * libuv symbols Deno does not export, and the process dies on load), so a small Node.js
 * program (`network/swarm/host.mjs`) runs it, and this class starts and supervises that
 * program like an actor: restarted with backoff when it dies after it came up, the transport
 * reported down and up, its stderr in the node's log, the topics joined again — up to a restart
 * intensity, as a supervisor's (`actors/supervisor.ts`), past which it is given up on and
 * reported `failed`. A host that dies before it first said it was ready fails
 * {@link SwarmHost.start} (with its exit status and last lines) and is not restarted: it would
 * only die again the same way. A start under way stops with its `signal`, the host killed; once
 * the signal is aborted (the node has begun to stop) a host that exits is not restarted.
 *
 * The host makes no protocol decision. It joins and leaves topics and hands each peer
 * connection to this process as one local connection over the link (`swarm_link.ts`: a Unix
 * socket in a private directory where the platform has them, loopback TCP otherwise;
 * backpressure both ways through the sockets), prefixed by a 32-byte secret token (so no other
 * local process can pose as the host), the peer's public key as its Noise handshake
 * authenticated it, whether this side dialled, and the IP address the peer's UDP stream comes
 * from (none when it is relayed or not known: {@link SwarmPeer.remoteHost}). The node's ed25519
 * identity is its swarm key pair (same seed), so the key the connection layer's own handshake
 * proves must equal the Noise key: the caller checks that.
 *
 * The host reads the node's secret seed from its stdin, never from its command line or
 * environment (both are visible to other local users).
 *
 * Three parts live in private modules beside this file, each owned by the host: the link's
 * connections, their header read and checked and the bound on those still sending it
 * (`_swarm_peer_acceptor.ts`); what the host's process prints, its pipes read line by line,
 * logged a bounded number at a time, the last lines kept for a failed start
 * (`_swarm_host_output.ts`); and the liveness check, a ping the running host must answer
 * (`_swarm_host_liveness.ts`).
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import type { ByteDuplex } from "../protocols/memory_duplex.ts";
import {
  openSwarmLink,
  type SwarmLink,
  type SwarmLinkAddress,
  type SwarmLinkKind,
} from "./swarm_link.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import type { Identity } from "../protocols/identity.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { SwarmHostLiveness } from "./_swarm_host_liveness.ts";
import { denoStandInNode, notNodeHint, standInNodeSentence } from "./_swarm_node_path.ts";
import { SwarmHostOutput } from "./_swarm_host_output.ts";
import { SwarmPeerAcceptor } from "./_swarm_peer_acceptor.ts";

/** The host program, run by Node.js. */
export const SWARM_HOST_SCRIPT = fileURLToPath(new URL("./swarm/host.mjs", import.meta.url));
/** A local DHT testnet program (tests and the demo). */
export const SWARM_TESTNET_SCRIPT = fileURLToPath(new URL("./swarm/testnet.mjs", import.meta.url));

/** How long the host may take to say it is ready. */
const READY_TIMEOUT_MS = 30_000;
const DEFAULT_RESTART = { initialMs: 250, maxMs: 10_000 };
/**
 * Default restart intensity ({@link SwarmHostOptions.restart}): at most 10 restarts within 5 min,
 * the OTP rule the node's supervisors follow (`actors/supervisor.ts`). A host that dies as soon as
 * it starts (its `node` removed or broken by an upgrade) uses them up in about a minute of the
 * default backoff (250 ms doubling to 10 s) and is given up on, reported `failed`, instead of a
 * `node` spawned every 10 s for the life of the node (review s71, finding 5); a host killed now
 * and then (a hang every few minutes, a peer's crash of the addon) is restarted for ever.
 */
const DEFAULT_MAX_RESTARTS = 10;
/** Default intensity window; see {@link DEFAULT_MAX_RESTARTS}. */
const DEFAULT_RESTART_WINDOW_MS = 5 * 60_000;
/**
 * How long close() lets the host leave the swarm before it is killed (logged): the host bounds
 * its own leave below it ({@link DEFAULT_LEAVE_GRACE_MS}), so only a hung host gets here.
 */
const STOP_GRACE_MS = 5_000;
/**
 * Default of {@link SwarmHostOptions.leaveGraceMs}: 3 s, two below {@link STOP_GRACE_MS}, and
 * inside the 5 s a node's actors have to stop. With no DHT node reachable at the stop (the
 * network gone, a testnet stopped first) Hyperswarm's leave waits on requests that only time out:
 * the host was killed after 5 s, the network actor's stop abandoned at the same moment
 * ("postStop … did not finish within 5000 ms"), and every such stop took that long.
 */
export const DEFAULT_LEAVE_GRACE_MS = 3_000;
/**
 * glibc's malloc settings for the host, whatever the node's own are (the host would inherit
 * those `deno task start` sets for the node: `storage/freed_memory.ts`). The host's buffers are
 * its messages, up to 256 KiB plus framing each way; below the mmap threshold every one would be a
 * fresh mapping, faulted in page by page and unmapped again. Above them, they come from the heap
 * and are reused (and a heap that does not shrink and grow back after each one): measured on the
 * link alone, 1 GiB each way, with the node's threshold then at 256 KiB, the host's CPU per MiB
 * went from 0.72 to 0.36 ms reading the node and from 0.57 to 0.30 writing to it.
 */
const HOST_MALLOC_ENV = {
  MALLOC_MMAP_THRESHOLD_: String(4 * 1024 * 1024),
  MALLOC_TRIM_THRESHOLD_: String(16 * 1024 * 1024),
};

/** One peer connection out of the swarm. */
export interface SwarmPeer {
  /** The connection's bytes. */
  duplex: ByteDuplex;
  /** The peer's public key, authenticated by the swarm's Noise handshake. */
  remoteKey: Uint8Array;
  /** Whether this side dialled. */
  initiator: boolean;
  /**
   * The IP address the peer's UDP stream comes from, as the host saw it when it handed the
   * connection on (`127.0.0.1` on a local testnet); absent where the host does not know it, or
   * the stream comes through a blind relay (the relay's address is not the peer's: see
   * `swarm/host.mjs`'s `remoteHostOf`). The node counts the connection's per-address budgets by
   * it (`addressGroup`, `connection_limits.ts`).
   */
  remoteHost?: string;
  /** Close the underlying local socket now. */
  close(): void;
}

/** Options of {@link SwarmHost.start}. */
export interface SwarmHostOptions {
  /** The node's identity: its seed is the swarm key pair. */
  identity: Identity;
  /**
   * DHT bootstrap nodes (`host:port`); `null` for the public DHT (operators' default). Tests
   * and the demo use a local testnet (`SWARM_TESTNET_SCRIPT`).
   */
  bootstrap: string[] | null;
  /** Bind the DHT to this address only (`127.0.0.1` for a local testnet). */
  bind?: string;
  /** Each authenticated peer connection. */
  onPeer: (peer: SwarmPeer) => void;
  /**
   * Transport state changes: `up` once the host is ready (again), `down` when it died (it is
   * restarted), `failed` when it is not restarted again (past the restart intensity: see
   * {@link SwarmHostOptions.restart}), with the error that says why (also logged, once).
   */
  onState?: (state: SwarmHostState, reason?: SwarmHostError) => void;
  /**
   * Whether the host knows a DHT node: `false` once it found none at its bootstrap (its topics'
   * lookups find nobody meanwhile; it asks the bootstrap again on the backoff of
   * {@link SwarmHostOptions.dhtRetry}), `true` once one answered after that (its topics are
   * looked up again). Each host (re)started begins afresh: one that finds no DHT node either says
   * so again. `message` names the bootstrap. Also logged.
   */
  onDht?: (reachable: boolean, message: string) => void;
  /**
   * How often the host asks its bootstrap again while it knows no DHT node: `initialMs` (default
   * 2 s) doubling up to `maxMs` (default 30 s); also how often, while it knows some, it checks
   * that it still does (every `maxMs`).
   */
  dhtRetry?: { initialMs: number; maxMs: number };
  /** Log lines (the host's stderr, restarts). */
  log?: (line: string) => void;
  /** The Node.js executable; default `node` on the PATH. */
  nodePath?: string;
  /**
   * Restart backoff, for a host that died after it came up (one that dies before its first
   * "ready" fails {@link SwarmHost.start} instead); default 250 ms doubling to 10 s. Each restart
   * waits `initialMs · 2^n`, at most `maxMs`, where `n` counts the restarts since the backoff was
   * last reset. It is reset (`n` = 0) when the host that died had been up at least as long as the
   * delay it would now wait: a host that ran a while and died is a fresh failure, restarted
   * after `initialMs`, while one that keeps dying soon after it comes up (or before) still backs
   * off.
   *
   * Restart intensity, as the node's supervisors have it (`actors/supervisor.ts`): at most
   * `maxRestarts` restarts (default 10) within `withinMs` (default 5 min). A host that dies once
   * more is not restarted: the host gives up, reports `failed` through
   * {@link SwarmHostOptions.onState}, logs it once with the dead host's last lines, and fails the
   * joins waiting for it and every later one.
   */
  restart?: { initialMs: number; maxMs: number; maxRestarts?: number; withinMs?: number };
  /**
   * How long a started host has to say "ready" (default 30 s). The first one that does not
   * fails {@link SwarmHost.start}; a restarted one is killed and started again after the
   * backoff (one hung in start-up used to leave the node without a swarm for good, its joins
   * waiting forever).
   */
  readyTimeoutMs?: number;
  /**
   * How long a ping to a host that is up may go unanswered (it is asked every third of this)
   * before the host is taken for hung: killed, reported down and restarted after the backoff
   * (default 30 s). The node's own checks count too: a ping is unanswered for that long only
   * over three of them, so a node whose event loop stalled reads the host's answer first.
   */
  hangTimeoutMs?: number;
  /**
   * How much of one peer connection's incoming bytes the host may hold while this process does
   * not read them (default 32 MiB); above it, the host closes that connection and logs it. The
   * swarm's transport does not slow a sender down for a slow reader, so without it a peer
   * could fill the host's memory.
   */
  maxUnreadBytes?: number;
  /**
   * How much all peer connections together may hold so (default 128 MiB); above it, the host
   * closes the connections holding the most until the rest fit, and logs each.
   */
  maxUnreadTotalBytes?: number;
  /**
   * How many peer connections the host hands on at once (default 512); past it, the host
   * closes each new one a peer makes as it comes and logs it. Hyperswarm bounds only the
   * connections this node makes, not those peers (with keys free to make) make to it; those this
   * node makes are handed on whatever peers hold.
   */
  maxConnections?: number;
  /**
   * How long the host, asked to stop, tries to leave the swarm cleanly (unannounce its topics,
   * close the DHT) before it exits anyway, logging that it did (default
   * {@link DEFAULT_LEAVE_GRACE_MS}; 1 … 4,000 ms, below the kill after {@link STOP_GRACE_MS}).
   */
  leaveGraceMs?: number;
  /**
   * The link to the host (`swarm_link.ts`): `unix` (default where supported; falls back to
   * `tcp`, logged, when no socket file can be made) or `tcp` (loopback).
   */
  link?: SwarmLinkKind;
  /**
   * Where the link's private socket directory is made (default the system's temporary
   * directory): a node allowed to write only its data directory passes that.
   */
  socketDir?: string;
  /**
   * Stops a start still under way: the host, not yet ready, is killed at once (it joined
   * nothing) and {@link SwarmHost.start} rejects with the signal's reason. A node that stops
   * while its host starts leaves no host process behind, and hears nothing more from it. Aborted
   * later, it says the node has begun to stop: a host that exits from then on is not restarted
   * (only logged), and {@link SwarmHost.close} still stops the rest.
   */
  signal?: AbortSignal;
}

/** The states {@link SwarmHostOptions.onState} reports. */
export type SwarmHostState = "up" | "down" | "failed";

/** The swarm host could not be started (no Node.js, a bad configuration). */
export class SwarmHostError extends VeriflowError {
  /** @param message What went wrong and what to do. */
  constructor(message: string) {
    super("swarm_host_failed", message);
  }
}

interface Joined {
  server: boolean;
  client: boolean;
}

/**
 * A join or leave sent to the host (or to be sent once it is up again) and not yet answered. Its
 * `id` goes in the line to the host, which echoes it in its answer: the answer settles only this
 * request. `callers` are the calls it settles: its own; for the rejoin of a topic after a
 * restart, the joins of that topic that the host died before answering (the later one's outcome
 * is theirs too); none for a rejoin nobody waits for.
 */
interface Pending {
  id: number;
  topic: string;
  op: "join" | "leave";
  callers: PromiseWithResolvers<void>[];
  /** Sent to the host that runs now, which will answer it; false once that host died. */
  answerable: boolean;
}

/** A supervised swarm host process. */
export class SwarmHost {
  readonly #options: SwarmHostOptions;
  /** The link's connections: their headers read and checked (see `_swarm_peer_acceptor.ts`). */
  readonly #peers: SwarmPeerAcceptor;
  #link: SwarmLink | undefined;
  readonly #topics = new Map<string, Joined>();
  /** Requests not yet answered, by id (in the order they were made). */
  readonly #pending = new Map<number, Pending>();
  /** Each topic's latest request (id) until answered: a failed join that is one is not kept. */
  readonly #latest = new Map<string, number>();
  #nextId = 0;
  /** Peers dialled by key, hex (see {@link dial}). */
  readonly #dialled = new Set<string>();
  #child: Deno.ChildProcess | undefined;
  #stdin: WritableStreamDefaultWriter<Uint8Array> | undefined;
  #closing = false;
  #restarts = 0;
  /** When each restart within the intensity window was decided (`performance.now()`). */
  #restartTimes: number[] = [];
  /** Why the host was given up on (past the restart intensity); undefined while it is not. */
  #failure: SwarmHostError | undefined;
  /** The close under way or done: a second close() waits for the first. */
  #closed: Promise<void> | undefined;
  /** The link's close, once begun (the give-up and close() both close it). */
  #linkClosed: Promise<void> | undefined;
  /** `n` of the restart delay (see {@link SwarmHostOptions.restart}). */
  #backoff = 0;
  /** When the running host said it was ready (`performance.now()`); undefined while it is not. */
  #upSince: number | undefined;
  /** The running host's deadline to say "ready" ({@link SwarmHostOptions.readyTimeoutMs}). */
  #readyTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether a host has ever been ready: until then an exit fails start(). */
  #cameUp = false;
  #restartTimer: ReturnType<typeof setTimeout> | undefined;
  /** Whether the running host, once up, still answers (see `_swarm_host_liveness.ts`). */
  readonly #liveness: SwarmHostLiveness;
  /** What the host prints: its pipes, its log lines, its last lines (`_swarm_host_output.ts`). */
  readonly #output: SwarmHostOutput;
  readonly #ready = Promise.withResolvers<void>();
  #publicKey: Uint8Array | undefined;

  private constructor(options: SwarmHostOptions) {
    const { leaveGraceMs, restart, dhtRetry } = options;
    if (
      dhtRetry !== undefined &&
      !(Number.isInteger(dhtRetry.initialMs) && dhtRetry.initialMs >= 1 &&
        Number.isInteger(dhtRetry.maxMs) && dhtRetry.maxMs >= dhtRetry.initialMs)
    ) {
      throw new RangeError(
        `dhtRetry needs integer ms with 1 <= initialMs <= maxMs, got ${JSON.stringify(dhtRetry)}`,
      );
    }
    const { maxRestarts, withinMs } = restart ?? {};
    if (maxRestarts !== undefined && !(Number.isInteger(maxRestarts) && maxRestarts >= 0)) {
      throw new RangeError(`restart.maxRestarts must be an integer from 0, got ${maxRestarts}`);
    }
    if (withinMs !== undefined && !(Number.isFinite(withinMs) && withinMs > 0)) {
      throw new RangeError(`restart.withinMs must be a positive number of ms, got ${withinMs}`);
    }
    if (
      leaveGraceMs !== undefined &&
      !(Number.isInteger(leaveGraceMs) && leaveGraceMs >= 1 && leaveGraceMs < STOP_GRACE_MS)
    ) {
      throw new RangeError(
        `leaveGraceMs must be an integer from 1 to ${STOP_GRACE_MS - 1}, got ${leaveGraceMs}`,
      );
    }
    this.#options = options;
    this.#peers = new SwarmPeerAcceptor({
      onPeer: (peer) => options.onPeer(peer),
      closing: () => this.#closing,
    });
    this.#output = new SwarmHostOutput((line) => options.log?.(line));
    this.#liveness = new SwarmHostLiveness(options, (message) => this.#send(message));
    // Rejected by an abort or a timer while start() may not be awaiting it yet: not unhandled.
    this.#ready.promise.catch(() => {});
  }

  /**
   * Start the host and wait until it is ready.
   * @throws {SwarmHostError} when Node.js cannot be run (or `node` is Deno's stand-in for it) or
   *   the host does not come up.
   */
  static async start(options: SwarmHostOptions): Promise<SwarmHost> {
    const { signal } = options;
    signal?.throwIfAborted();
    // Refused before anything runs: in Deno's stand-in the host dies on Hyperswarm's native addon
    // with a symbol lookup error that never says Node.js is missing (`_swarm_node_path.ts`).
    const standIn = denoStandInNode(options.nodePath ?? "node");
    if (standIn !== undefined) {
      throw new SwarmHostError(`cannot start the swarm host with ${standInNodeSentence(standIn)}`);
    }
    const host = new SwarmHost(options);
    const onAbort = () => host.#ready.reject(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    try {
      host.#link = await openSwarmLink((duplex) => {
        host.#peers.accept(duplex).catch(() => duplex.close());
      }, { kind: options.link, socketDir: options.socketDir, log: options.log });
      signal?.throwIfAborted(); // stopped while the link opened: no host is run
      host.#spawn();
      await host.#ready.promise;
    } catch (error) {
      await host.close(); // kills a host still starting (review s71, finding 3)
      if (signal?.aborted && error === signal.reason) throw error;
      throw error instanceof SwarmHostError ? error : new SwarmHostError(
        `cannot start the swarm host with ${options.nodePath ?? "node"}: ${
          (error as Error).message
        } (Hyperswarm runs in Node.js: install Node.js 20 or later, or set the path to it)`,
      );
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
    return host;
  }

  /** This node's public key as the swarm knows it (equals the identity's). */
  get publicKey(): Uint8Array {
    return this.#publicKey!;
  }

  /** The host process's id (changes when it is restarted). */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  /** The link the host delivers peers on (`unix`, or `tcp` by choice or fallback). */
  get link(): SwarmLinkKind {
    return this.#link!.kind;
  }

  /** Where the host connects: the socket file, or the loopback port (tests). */
  get linkAddress(): SwarmLinkAddress {
    return this.#link!.address;
  }

  /** Restarts so far (each after the host died). */
  get restarts(): number {
    return this.#restarts;
  }

  /** Why the host was given up on (past the restart intensity); undefined while it was not. */
  get failure(): SwarmHostError | undefined {
    return this.#failure;
  }

  /**
   * Join a 32-byte topic (announce as a server, look up as a client, or both); kept across
   * restarts of the host. Resolves once the host has announced and looked it up; while the host
   * is being restarted, once the restarted host has.
   * Each call is settled by the host's answer to it, even when another join or leave of the
   * topic was asked meanwhile (the host does them in order). A join the host died before
   * answering takes the outcome of the restarted host's rejoin of the topic.
   * @throws {SwarmHostError} when the host fails the join (the topic is then not joined, unless
   * a later join of it is under way), when a leave of the topic was asked before a host that
   * died answered it (superseded: not joined), or when the host is closed first.
   */
  async join(topic: Uint8Array, options: Partial<Joined> = {}): Promise<void> {
    if (topic.length !== 32) {
      throw new SwarmHostError(`a swarm topic is 32 bytes, not ${topic.length}`);
    }
    const joined = { server: options.server ?? true, client: options.client ?? true };
    const hex = toHex(topic);
    this.#topics.set(hex, joined);
    await this.#request(hex, "join", { op: "join", topic: hex, ...joined });
  }

  /**
   * Leave a topic. Resolves at once while the host is being restarted (the restarted host does
   * not join it).
   */
  async leave(topic: Uint8Array): Promise<void> {
    const hex = toHex(topic);
    this.#topics.delete(hex);
    await this.#request(hex, "leave", { op: "leave", topic: hex });
  }

  /**
   * Connect to a peer by its public key through the DHT, whatever topics it is on, and keep
   * reconnecting while it stays dialled (kept across restarts of the host). Its connection
   * arrives on {@link SwarmHostOptions.onPeer} like any other. No answer: a key nobody has
   * announced only never connects.
   * @throws {SwarmHostError} for a key that is not 32 bytes, or this node's own.
   */
  dial(key: Uint8Array): void {
    if (key.length !== 32) throw new SwarmHostError(`a peer key is 32 bytes, not ${key.length}`);
    if (bytesEqual(key, this.#options.identity.publicKey)) {
      throw new SwarmHostError("a node does not dial itself");
    }
    const hex = toHex(key);
    this.#dialled.add(hex);
    this.#send({ op: "dial", key: hex }).catch(() => {}); // down: redialled once it is back
  }

  /** Stop dialling `key` (an open connection to it stays open). */
  undial(key: Uint8Array): void {
    const hex = toHex(key);
    if (!this.#dialled.delete(hex)) return;
    this.#send({ op: "undial", key: hex }).catch(() => {}); // down: the restarted host never dials it
  }

  /** Keys dialled now, hex (see {@link dial}). */
  get dialled(): ReadonlySet<string> {
    return this.#dialled;
  }

  /**
   * Stop the host (it leaves the swarm) and the link's listener. A host that never came up is
   * killed at once: it joined nothing, and one hung in its start-up would hold the close for
   * {@link STOP_GRACE_MS}.
   */
  close(): Promise<void> {
    return this.#closed ??= this.#close();
  }

  async #close(): Promise<void> {
    this.#closing = true;
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#readyTimer);
    this.#liveness.stop();
    // Not awaited before the kill's timer is set: a hung host with its stdin pipe full never
    // takes the writes queued behind it, and the close waited for them for ever.
    void this.#stdin?.close().catch(() => {});
    const child = this.#child;
    if (child !== undefined) {
      if (!this.#cameUp) {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
          this.#options.log?.(
            `swarm host: not stopped ${STOP_GRACE_MS / 1000} s after it was asked to: killed`,
          );
        } catch {
          // already gone
        }
      }, STOP_GRACE_MS);
      await child.status.catch(() => {});
      clearTimeout(timer);
      await this.#output.lastPipes();
    }
    this.#output.stderrLog.flush();
    await this.#closeLink();
    this.#peers.cutPending();
    this.#rejectAll(new SwarmHostError("the swarm host stopped"));
  }

  /**
   * Whether the node has begun to stop: close() was called, or the owner's signal aborted. A host
   * that exits then is not restarted: a new one would join every topic again and announce the
   * node on the DHT while it shuts down (review s78, finding 1).
   */
  get #stopping(): boolean {
    return this.#closing || this.#options.signal?.aborted === true;
  }

  /** Close the link's listener (and remove its directory), once. */
  #closeLink(): Promise<void> {
    return this.#linkClosed ??= this.#link?.close() ?? Promise.resolve();
  }

  /**
   * Ask the host to join or leave `topic`; settled by the host's answer to this request (its id),
   * not by what it answers to another request of the topic: the host does a topic's requests one
   * after another, so each gets its own outcome (until review s80 a second request resolved the
   * first at once, and the host's answer to the first then settled the second, so a join the
   * host failed could resolve). While the host is down (being restarted), a join waits for the
   * restarted host's rejoin and a leave is done at once (see {@link #hostGone}).
   */
  #request(topic: string, op: Pending["op"], message: Record<string, unknown>): Promise<void> {
    if (this.#closing) return Promise.reject(new SwarmHostError("the swarm host stopped"));
    if (this.#failure !== undefined) return Promise.reject(this.#failure);
    const caller = Promise.withResolvers<void>();
    const pending = this.#track(topic, op, [caller]);
    if (this.#stdin === undefined) {
      this.#unanswerable(pending);
      this.#dropSuperseded();
      return caller.promise;
    }
    pending.answerable = true;
    // A write that fails means the host just died: #onExit treats this request as one made
    // while it was down (and a leave is done at once, whichever comes first).
    this.#send({ ...message, id: pending.id }).catch(() => {
      if (this.#pending.get(pending.id) === pending && pending.answerable) {
        this.#unanswerable(pending);
        this.#dropSuperseded();
      }
    });
    return caller.promise;
  }

  /** A new request of `topic` (the topic's latest), settling `callers`. */
  #track(topic: string, op: Pending["op"], callers: Pending["callers"]): Pending {
    const pending: Pending = { id: ++this.#nextId, topic, op, callers, answerable: false };
    this.#pending.set(pending.id, pending);
    this.#latest.set(topic, pending.id);
    return pending;
  }

  /**
   * `pending` will get no answer (the host it was sent to died, or none runs): a leave is done
   * (the restarted host does not join its topic); a join waits for the restarted host's rejoin
   * of its topic, and takes its outcome (see {@link #dropSuperseded} for a topic left since).
   */
  #unanswerable(pending: Pending): void {
    pending.answerable = false;
    if (pending.op === "join") return;
    this.#done(pending);
    for (const caller of pending.callers) caller.resolve();
  }

  /**
   * Every join that will get no answer and whose topic was left since (so the restarted host does
   * not join it again): rejected as superseded by that leave, since the topic is not joined.
   */
  #dropSuperseded(): void {
    for (const pending of [...this.#pending.values()]) {
      if (pending.op !== "join" || pending.answerable || this.#topics.has(pending.topic)) continue;
      this.#done(pending);
      const error = new SwarmHostError(
        `the join of topic ${pending.topic.slice(0, 16)}… was superseded by a leave of it ` +
          `before the swarm host answered: not joined`,
      );
      for (const caller of pending.callers) caller.reject(error);
    }
  }

  /** `pending` answered (or given up on): no longer tracked. */
  #done(pending: Pending): void {
    this.#pending.delete(pending.id);
    if (this.#latest.get(pending.topic) === pending.id) this.#latest.delete(pending.topic);
  }

  /**
   * The host died: nothing it was sent will be answered. Leaves are done; joins wait for the
   * restarted host's rejoin, unless a later leave of their topic superseded them.
   */
  #hostGone(): void {
    for (const pending of [...this.#pending.values()]) this.#unanswerable(pending);
    this.#dropSuperseded();
  }

  /**
   * The host's answer to the request `id` (or, from a host that echoes no id, to the oldest
   * request of `topic` with that `op` it was sent): that request is settled, with `error` if the
   * host failed it. A failed join is not kept (nor joined again after a restart) when it is the
   * topic's latest request, whether or not a caller waits for it; a rejoin after a restart that
   * failed and that nobody waited for is kept for the next restart.
   */
  #answer(id: unknown, topic: string, op: Pending["op"], error?: SwarmHostError): void {
    let pending = typeof id === "number" ? this.#pending.get(id) : undefined;
    if (id === undefined) {
      pending = [...this.#pending.values()].find((p) =>
        p.topic === topic && p.op === op && p.answerable
      );
    }
    if (pending === undefined || pending.op !== op || pending.topic !== topic) return;
    const latest = this.#latest.get(topic) === pending.id;
    this.#done(pending);
    if (error === undefined) {
      for (const caller of pending.callers) caller.resolve();
      return;
    }
    if (op === "join" && latest && pending.callers.length > 0) this.#topics.delete(topic);
    for (const caller of pending.callers) caller.reject(error);
  }

  /** Every request's callers rejected with `error`; none tracked any more. */
  #rejectAll(error: Error): void {
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    this.#latest.clear();
    for (const { callers } of pending) for (const caller of callers) caller.reject(error);
  }

  async #send(message: Record<string, unknown>): Promise<void> {
    if (this.#stdin === undefined) throw new SwarmHostError("the swarm host is not running");
    await this.#stdin.write(new TextEncoder().encode(JSON.stringify(message) + "\n"));
  }

  #spawn(): void {
    const command = new Deno.Command(this.#options.nodePath ?? "node", {
      args: [SWARM_HOST_SCRIPT],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
      // Not the node's environment: its API keys (`VERIFLOW_HTTP_API_KEYS`) or a `NODE_OPTIONS`
      // such as `--inspect` have no business in the process that talks to the internet.
      clearEnv: true,
      env: { PATH: Deno.env.get("PATH") ?? "", NODE_NO_WARNINGS: "1", ...HOST_MALLOC_ENV },
    });
    const child = command.spawn();
    this.#child = child;
    const readyMs = this.#options.readyTimeoutMs ?? READY_TIMEOUT_MS;
    this.#readyTimer = setTimeout(() => {
      this.#readyTimer = undefined;
      const what = `the swarm host did not come up in ${readyMs / 1000} s`;
      this.#ready.reject(new SwarmHostError(what)); // the first start (else already settled)
      this.#options.log?.(`${what}; stopping it`);
      try {
        child.kill("SIGKILL"); // its exit restarts it after the backoff
      } catch {
        // already gone
      }
    }, readyMs);
    this.#stdin = child.stdin.getWriter();
    this.#output.lastLines = [];
    const config = {
      seed: toHex(this.#options.identity.exportSecretKey()),
      ...this.#link!.address,
      token: toHex(this.#peers.token),
      bootstrap: this.#options.bootstrap,
      ...(this.#options.bind ? { bind: this.#options.bind } : {}),
      ...(this.#options.maxUnreadBytes !== undefined
        ? { maxUnreadBytes: this.#options.maxUnreadBytes }
        : {}),
      ...(this.#options.maxUnreadTotalBytes !== undefined
        ? { maxUnreadTotalBytes: this.#options.maxUnreadTotalBytes }
        : {}),
      ...(this.#options.maxConnections !== undefined
        ? { maxConnections: this.#options.maxConnections }
        : {}),
      leaveGraceMs: this.#options.leaveGraceMs ?? DEFAULT_LEAVE_GRACE_MS,
      ...(this.#options.dhtRetry !== undefined ? { dhtRetry: this.#options.dhtRetry } : {}),
    };
    this.#send(config).catch(() => {});
    this.#output.read(child, (line) => {
      this.#liveness.heardAt = performance.now();
      this.#onEvent(line);
    });
    child.status.then(async (status) => {
      clearTimeout(this.#readyTimer);
      this.#readyTimer = undefined;
      if (child === this.#child) this.#liveness.stop();
      await this.#output.lastPipes();
      this.#onExit(child, status);
    });
  }

  #onEvent(line: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      parsed = undefined;
    }
    // What a library in the host prints with console.log: bounded like its stderr. Some of it
    // parses (`null`, a number): an event is an object, and reading `.ev` of `null` threw and
    // ended the reading of the host's stdout for good (a review at stop 47).
    if (typeof parsed !== "object" || parsed === null) {
      this.#output.stderrLog.line("swarm host stdout", `swarm host: ${line}`);
      return;
    }
    const event = parsed as {
      ev?: string;
      id?: unknown;
      publicKey?: string;
      topic?: string;
      op?: string;
      message?: string;
    };
    switch (event.ev) {
      case "ready": {
        // A host restarted just before close() may finish its start-up while it is being
        // stopped: no transport comes up then, and the liveness check close() cleared must
        // not be started again (it outlived the close and took the gone host for hung).
        if (this.#stopping) return;
        const key = fromHex(event.publicKey ?? "");
        if (!bytesEqual(key, this.#options.identity.publicKey)) {
          this.#ready.reject(new SwarmHostError("the swarm key pair differs from the identity"));
          return;
        }
        clearTimeout(this.#readyTimer);
        this.#readyTimer = undefined;
        this.#publicKey = key;
        this.#cameUp = true;
        this.#upSince = performance.now();
        this.#ready.resolve();
        this.#liveness.watch(this.#child!);
        this.#options.onState?.("up");
        // After a restart: join every topic again, dial every dialled peer again. The joins of
        // a topic that the dead host did not answer take the rejoin's outcome.
        for (const [topic, joined] of this.#topics) {
          const waiting = [...this.#pending.values()].filter((p) =>
            p.topic === topic && p.op === "join" && !p.answerable
          );
          for (const p of waiting) this.#done(p);
          const rejoin = this.#track(topic, "join", waiting.flatMap((p) => p.callers));
          rejoin.answerable = true;
          this.#send({ op: "join", id: rejoin.id, topic, ...joined }).catch(() => {});
        }
        for (const key of this.#dialled) this.#send({ op: "dial", key }).catch(() => {});
        return;
      }
      case "joined":
        this.#answer(event.id, event.topic ?? "", "join");
        return;
      case "left":
        this.#answer(event.id, event.topic ?? "", "leave");
        return;
      case "error": {
        const { id, topic, op, message } = event;
        if (topic !== undefined && (op === "join" || op === "leave")) {
          const error = new SwarmHostError(
            `the swarm host could not ${op} topic ${topic.slice(0, 16)}…: ${message}`,
          );
          this.#answer(id, topic, op, error);
          this.#options.log?.(error.message);
          return;
        }
        this.#output.remember(`error: ${message}`);
        this.#output.stderrLog.line("swarm host error", `swarm host error: ${message}`);
        return;
      }
      case "pong": // the liveness check's answer: any line counts (heardAt)
        return;
      case "warning": {
        const message = `${event.message}: this node finds no peers on the swarm until one does ` +
          `(check --swarm-bootstrap, and that the DHT node there is running)`;
        this.#options.log?.(`swarm: ${message}`);
        this.#options.onDht?.(false, message);
        return;
      }
      case "recovered": {
        const message = `${event.message}: looking this node's topics up again`;
        this.#options.log?.(`swarm: ${message}`);
        this.#options.onDht?.(true, message);
        return;
      }
    }
  }

  #onExit(child: Deno.ChildProcess, status: Deno.CommandStatus): void {
    if (child !== this.#child) return;
    // The pipe to the dead host's stdin: closed, or each restart left one of the node's file
    // descriptors open (a review at stop 47). What waits to be written there fails.
    void this.#stdin?.abort().catch(() => {});
    this.#stdin = undefined;
    if (this.#closing) return;
    const how = status.signal ?? `code ${status.code}`;
    if (this.#stopping && this.#cameUp) {
      // Leaves in flight are done (nothing will join again); joins fail at the close.
      this.#hostGone();
      this.#upSince = undefined;
      this.#options.log?.(`swarm host exited (${how}) while the node stops: not restarted`);
      return;
    }
    if (!this.#cameUp) {
      // Still starting: it would only die the same way again. start() fails, saying why.
      const nodePath = this.#options.nodePath ?? "node";
      const lines = this.#output.lastLines;
      const said = lines.length > 0
        ? `: ${lines.join(" | ")}`
        : ` and printed nothing (is "${nodePath}" Node.js 20 or later?)`;
      // Deno linked as `node` ran the host until the addon's libuv symbols were missing: say
      // what that means, not only the symbol (review s71, finding 7).
      const hint = notNodeHint(lines, nodePath);
      this.#ready.reject(
        new SwarmHostError(
          `the swarm host exited before it was ready (${how})${said}${hint ? `: ${hint}` : ""}`,
        ),
      );
      return;
    }
    // Leaves in flight are done: the restarted host does not join those topics. Joins wait
    // for the restarted host's rejoin.
    this.#hostGone();
    this.#scheduleRestart(`swarm host exited (${how})`);
  }

  /**
   * Start the host again after the backoff's delay, unless that would be one restart more than
   * the intensity allows ({@link #giveUp}); `what` happened (logged).
   */
  #scheduleRestart(what: string): void {
    const restart: NonNullable<SwarmHostOptions["restart"]> = this.#options.restart ??
      DEFAULT_RESTART;
    const { initialMs, maxMs } = restart;
    const maxRestarts = restart.maxRestarts ?? DEFAULT_MAX_RESTARTS;
    const withinMs = restart.withinMs ?? DEFAULT_RESTART_WINDOW_MS;
    const now = performance.now();
    this.#restartTimes = this.#restartTimes.filter((at) => now - at < withinMs);
    if (this.#restartTimes.length >= maxRestarts) {
      this.#giveUp(what, maxRestarts, withinMs);
      return;
    }
    this.#restartTimes.push(now);
    const delayAt = (n: number) => Math.min(maxMs, initialMs * 2 ** n);
    const wasUp = this.#upSince !== undefined;
    const upMs = wasUp ? performance.now() - this.#upSince! : 0;
    this.#upSince = undefined;
    if (upMs >= delayAt(this.#backoff)) this.#backoff = 0; // it ran a while: a fresh failure
    const delay = delayAt(this.#backoff);
    if (delay < maxMs) this.#backoff++;
    this.#restarts++;
    this.#options.log?.(`${what}; restarting in ${delay} ms`);
    if (wasUp) this.#options.onState?.("down");
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      if (this.#stopping) return;
      try {
        this.#spawn();
      } catch (error) {
        this.#scheduleRestart(`swarm host restart failed: ${(error as Error).message}`);
      }
    }, delay);
  }

  /**
   * Past the restart intensity: no more restarts. The host is reported `failed` and logged once,
   * with the dead host's last lines; what waits for it, and every later join, fails with why; the
   * link is closed (nothing will connect to it). close() still stops the rest.
   */
  #giveUp(what: string, maxRestarts: number, withinMs: number): void {
    const nodePath = this.#options.nodePath ?? "node";
    const lines = this.#output.lastLines;
    const said = lines.length > 0 ? `; its last lines: ${lines.join(" | ")}` : "";
    const hint = notNodeHint(lines, nodePath);
    const failure = new SwarmHostError(
      `${what}; gave up after ${maxRestarts} restarts within ${withinMs / 1000} s ` +
        `(restart.maxRestarts, restart.withinMs): the node has no swarm until it is restarted` +
        `${said}${hint ? `: ${hint}` : ""}`,
    );
    this.#failure = failure;
    this.#upSince = undefined;
    this.#output.stderrLog.flush();
    this.#options.log?.(failure.message);
    this.#rejectAll(failure);
    void this.#closeLink().catch(() => {});
    this.#options.onState?.("failed", failure);
  }
}
