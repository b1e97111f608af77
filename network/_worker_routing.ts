/**
 * Which peer the edge's jobs go to: the NetworkActor's answer to `worker` (a connection to the
 * worker for a job, by the rules of `worker_choice.ts`: serves the model, not convicted here, has
 * capacity, backed by stake in this node's ledger, its track record (this node's record of its
 * workers, `worker_record.ts`, and its ledger credit) before its claims, a holder of the job's
 * input, least loaded; a newcomer's turn once in {@link NEWCOMER_EVERY} picks), to `worker_models` (the models some open worker lists,
 * `model_listing.ts`), and the workers that lately refused a job for a model they listed
 * (`worker_refused_model`: not picked for it for {@link REFUSED_MODEL_COOLDOWN_MS}). It reads the
 * actor's table (`_peer_entry.ts`) and the standings its hellos asked (`_peer_hellos.ts`), from
 * the actor's `receive` only. Owned and used by the NetworkActor (`network_actor.ts`, which
 * re-exports {@link REFUSED_MODEL_COOLDOWN_MS}); not part of the public API.
 *
 * @module
 */
import { storageKey } from "../protocols/cid.ts";
import { type RankedPeer, rankPeers } from "../storage/rendezvous.ts";
import { DEFAULT_REPLICAS } from "../storage/replicated_store.ts";
import type { Connection } from "../protocols/connection.ts";
import { toHex } from "../protocols/hash.ts";
import { formatPeerAddress } from "./peer_address.ts";
import {
  INFERENCE_PROTOCOL,
  SubmitMessage,
  type WireModelInfo,
} from "../protocols/inference_messages.ts";
import type { ConnectionStoragePeer } from "../storage/connection_storage_peer.ts";
import { chooseWorker, isProven, type WorkerCandidate } from "./worker_choice.ts";
import { type SeenVia, type WorkerRecord, workerRecordOf } from "./worker_record.ts";
import { peerOriginsOf } from "./_peer_origins.ts";
import { listedModels, type ModelListing } from "./model_listing.ts";
import type { PeerServices } from "./peer_services.ts";
import type { PeerEntry } from "./_peer_entry.ts";
import type { NetworkActorOptions } from "./network_actor.ts";

/**
 * How long a worker that refused a job for a model it listed is not picked for that model: a
 * peer that lists a model and refuses every job for it (four fresh keys did so in a review, and
 * turned away every job, each using up a job's tries) costs each model's jobs one try per minute
 * instead of all of them. Its next listing does not lift it early.
 */
export const REFUSED_MODEL_COOLDOWN_MS = 60_000;
/** Most refusals remembered; past it, expired ones go first, then the oldest. */
const MAX_REFUSED_MODELS = 4_096;

/**
 * A newcomer's turn (`worker_choice.ts`, rule 4) comes once in this many picks: after
 * `NEWCOMER_EVERY - 1` picks of proven workers, the next pick goes to a clean stranger with a
 * free slot if there is one. Without turns no new node would ever get a job beside proven
 * workers with room; with them, a stranger host's liars cost at most one job in 8 one failed try
 * (recovered by the failover), and an honest newcomer on a router with a job a second is tried
 * within seconds, and proven once it finishes that job.
 */
export const NEWCOMER_EVERY = 8;

/**
 * Most jobs whose worst-case locks the routing holds against their workers' free stake
 * ({@link WorkerRouting.worker}'s `job`); past it the oldest hold goes first. Each job's hold goes
 * at its end (`worker_job_ended`), so only a port that lost its ends fills it: 4,096 is far past
 * the jobs a router has in flight at once.
 */
const MAX_STAKE_HOLDS = 4_096;

/**
 * Most ended job ids remembered ({@link WorkerRouting.jobEnded}), each with its last run that
 * ended, so that a lookup of a run that arrives after its end holds nothing (review s80 vadm2 F1:
 * a failover's second lookup, sent after its client's cancel ended the job, held the lock against
 * an honest worker, and nothing named the job again to drop it); past it the oldest goes first.
 * Bounded like the holds.
 */
const MAX_ENDED_JOBS = 4_096;

/** The stake one run of a job (one submission of it) holds: see {@link WorkerRouting.worker}. */
interface RunHolds {
  /** The run (`run` of its lookups): later submissions of the job have greater ones. */
  run: number;
  /** Hex key of each worker it was sent to that may run it → the job's worst-case lock. */
  locks: Map<string, number>;
}

/** Options of {@link WorkerRouting}: what it needs of the NetworkActor. */
export interface WorkerRoutingOptions {
  /** The actor's options: read for `identity`. */
  options: NetworkActorOptions;
  /** The actor's open connections by hex peer key, the oldest first (only read). */
  peers: ReadonlyMap<string, readonly PeerEntry[]>;
  /** Hex key → its account in this node's ledger (`PeerHellos.standing`; only read). */
  standing: ReadonlyMap<string, WorkerCandidate["standing"]>;
  /** One storage holder per peer key that offers the storage protocol. */
  holders: () => ConnectionStoragePeer[];
  /** What this node serves to peers (set in the actor's `preStart`): whether it stores. */
  services: () => PeerServices | undefined;
  /**
   * Whether the node's swarm is still finding its peers: its host starting, or up less than
   * `SWARM_SETTLE_MS` ago (`PeerTransports.swarmSettling`); absent: never (no swarm).
   */
  swarmSettling?: () => boolean;
}

/** Picks the worker for a job; see the module doc. */
export class WorkerRouting {
  readonly #options: NetworkActorOptions;
  readonly #parts: WorkerRoutingOptions;
  readonly #peers: ReadonlyMap<string, readonly PeerEntry[]>;
  readonly #standing: ReadonlyMap<string, WorkerCandidate["standing"]>;
  /**
   * `key:model` → until when (ms, by {@link #now}) that worker is not picked for that model (it
   * refused it).
   */
  readonly #refused = new Map<string, number>();
  /** Picks of proven workers since the last newcomer's turn was taken ({@link NEWCOMER_EVERY}). */
  #sinceNewcomer = 0;
  /**
   * Job id → its latest run's holds: the workers that run was sent to that may run it, each
   * one's lock held against its free stake until the run ends here (`jobEnded`), is sent
   * elsewhere (see {@link worker}), or that worker no longer runs it ({@link released}: a
   * hedge's race lost).
   */
  readonly #stakeHolds = new Map<string, RunHolds>();
  /**
   * Job id → its last run that ended here lately ({@link jobEnded}), the oldest first: a lookup
   * of that run, or of an earlier one, holds nothing.
   */
  readonly #ended = new Map<string, number>();

  /** @param parts See {@link WorkerRoutingOptions}. */
  constructor(parts: WorkerRoutingOptions) {
    this.#parts = parts;
    this.#options = parts.options;
    this.#peers = parts.peers;
    this.#standing = parts.standing;
  }

  /** The actor's clock (`NetworkActorOptions.now`): the cooldowns run on it. */
  #now(): number {
    return (this.#options.now ?? Date.now)();
  }

  get #services(): PeerServices | undefined {
    return this.#parts.services();
  }

  #holders(): ConnectionStoragePeer[] {
    return this.#parts.holders();
  }

  /**
   * A connection to the worker for a job on `model` (any when absent), by the rules of
   * `worker_choice.ts`: serves the model, not convicted here, has capacity, backed by stake in
   * this node's ledger, proven before strangers and suspect strangers last (`worker_record.ts`),
   * a holder of the job's `input` (when it names one), least loaded. Once in
   * {@link NEWCOMER_EVERY} picks a clean stranger with a free slot goes first, unless `exclude`
   * names a stranger that failed here (this job, or lately). `lock`: the most stake the job's
   * receipt can lock here (`_job_stake_lock.ts`); backed means free stake covering it, less the
   * locks of this node's other jobs sent to it and not ended. `job`: the job's id, whose lock is
   * then held against the worker picked until {@link jobEnded}, until the run's next lookup
   * (the worker refused it or was lost: the job goes elsewhere), or until {@link released}.
   * `hedge`: the lookup of a hedge, which races the worker that holds the job (`failover.ts`):
   * both hold the job's lock until the race's loser is released (review s80 vadm F4: the hedge's
   * lookup moved the hold, and a lost hedge left the running worker unheld).
   * `run`: which submission of the job looks up (a client's retry of a job that ended unassigned
   * is a later run, with a greater number: `network_inference_port.ts`); the holds are the run's.
   * A run that ended here ({@link jobEnded}) or was superseded by a later run holds nothing at a
   * later lookup (one sent before its end that arrives after it), nor moves the later run's hold:
   * a late lookup of a cancelled run, reaching the routing after the client's retry started,
   * dropped the retry's hold, and its worker, whose stake the retry locks, was sent one more job
   * as backed, to refuse it `insufficient_stake` (review s80 vlate F1).
   */
  worker(
    model?: string,
    exclude: readonly string[] = [],
    input?: string,
    lock?: number,
    job?: string,
    hedge = false,
    run = 0,
  ): Connection | undefined {
    const current = job !== undefined && this.#current(job, run);
    // A lookup that is not a hedge's sends the run elsewhere: its holds go (an earlier run's too).
    if (current && !hedge) this.#stakeHolds.delete(job);
    const held = this.#heldStake();
    const candidates: (WorkerCandidate & { connection: Connection })[] = [];
    const holders = input === undefined ? undefined : this.#inputHolders(input);
    const now = this.#now();
    const record = this.#record();
    for (const list of this.#peers.values()) {
      for (const { connection, info, hello, checking, host, dialled, placement } of list) {
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
          // Its jobs only: a receipt announcement, a catch-up's receipts or a proof fetch
          // waiting on its validator is no load on its model (review s60: counted, a worker
          // that had just connected looked busy with the catch-up's receipts and got no job).
          inFlight: connection.pendingRequestsOf(SubmitMessage),
          standing: this.#standing.get(info.key),
          held: held.get(info.key),
          holdsInput: holders?.has(info.key) ?? false,
          // The group it connected from, else the one this node dialled (routegaps R3); a
          // relayed peer's stops count in the group all relayed peers are placed in.
          record: this.#recordOf(record, info.key, host ?? dialled, {
            connection,
            stopGroup: placement,
          }),
        });
      }
    }
    // A stranger failed this job already (an excluded key whose record here is a net failure;
    // a refusal as full is none): no second one while a proven worker has room, nor a
    // newcomer's turn (`worker_choice.ts`, rule 4).
    // The port's first lookup of a try excludes the workers it asks last, too
    // (`busy_refusals.ts`): while a stranger is asked last after a failure, newcomers' turns wait
    // with it, and strangers get only the jobs no proven worker has room for.
    const strangerFailed = exclude.some((key) => (record?.of(key).net ?? 0) < 0);
    const newcomerTurn = !strangerFailed && this.#sinceNewcomer >= NEWCOMER_EVERY - 1;
    const pick = chooseWorker(candidates, {
      model,
      exclude,
      newcomerTurn,
      strangerFailed,
      lock,
    });
    if (pick !== undefined && isProven(pick)) this.#sinceNewcomer++;
    else if (pick !== undefined && newcomerTurn) this.#sinceNewcomer = 0;
    // A job given on a connection opened after a loss of the key's: losing this one too is a
    // second loss, finishing it forgives one job of the first (one open before is no comeback).
    if (pick !== undefined) record?.picked(pick.key, pick.connection);
    if (current && pick !== undefined && lock !== undefined && lock > 0) {
      let holds = this.#stakeHolds.get(job);
      if (holds === undefined) {
        if (this.#stakeHolds.size >= MAX_STAKE_HOLDS) {
          this.#stakeHolds.delete(this.#stakeHolds.keys().next().value!);
        }
        holds = { run, locks: new Map() };
        this.#stakeHolds.set(job, holds);
      }
      holds.locks.set(pick.key, lock);
    }
    return pick?.connection;
  }

  /**
   * Whether run `run` of job `job` is its current one here: it has not ended ({@link jobEnded}),
   * and no later run of the job holds stake. Only the current run holds, or moves holds.
   */
  #current(job: string, run: number): boolean {
    return run > (this.#ended.get(job) ?? -Infinity) &&
      run >= (this.#stakeHolds.get(job)?.run ?? -Infinity);
  }

  /**
   * Run `run` of job `job` ended here (its receipt handed on, or none): its lock no longer holds
   * its worker's stake here, and a later lookup of it holds nothing. A later run's holds stay.
   * A receipt recorded in this node's ledger locks it there (`standing`).
   */
  jobEnded(job: string, run = 0): void {
    if (run >= (this.#stakeHolds.get(job)?.run ?? -Infinity)) this.#stakeHolds.delete(job);
    const ended = Math.max(run, this.#ended.get(job) ?? -Infinity);
    this.#ended.delete(job);
    if (this.#ended.size >= MAX_ENDED_JOBS) this.#ended.delete(this.#ended.keys().next().value!);
    this.#ended.set(job, ended);
  }

  /**
   * Worker `key` no longer runs run `run` of job `job`, which goes on with another (a hedge that
   * lost its race, or the worker a hedge took the job from): its lock no longer holds `key`'s
   * stake here. Another run's hold on `key` stays.
   */
  released(job: string, key: string, run = 0): void {
    const holds = this.#stakeHolds.get(job);
    if (holds?.run !== run) return;
    holds.locks.delete(key);
    if (holds.locks.size === 0) this.#stakeHolds.delete(job);
  }

  /** Hex key → the locks this node's jobs not ended hold of its free stake. */
  #heldStake(): Map<string, number> {
    const held = new Map<string, number>();
    for (const { locks } of this.#stakeHolds.values()) {
      for (const [key, lock] of locks) held.set(key, (held.get(key) ?? 0) + lock);
    }
    return held;
  }

  /** The node's record of its workers (`worker_record.ts`); none before the actor started. */
  #record(): WorkerRecord | undefined {
    const system = this.#services?.system;
    return system === undefined ? undefined : workerRecordOf(system);
  }

  /**
   * `key`'s record, once its address group is noted in it: the group its connections came from
   * (`_peer_origins.ts`, which knows a swarm peer this node dialled too), else the connection's
   * own (`host`: the one a peer opened came from, or the address a TCP dial reached); none for an
   * in-memory connection. `via`: the connection, and the group its stops count in where it has
   * no address group (`SeenVia`).
   */
  #recordOf(
    record: WorkerRecord | undefined,
    key: string,
    host: string | undefined,
    via: SeenVia,
  ): WorkerCandidate["record"] {
    if (record === undefined) return undefined;
    const system = this.#services!.system;
    record.seen(key, peerOriginsOf(system).of(key).group ?? host, via);
    return record.of(key);
  }

  /**
   * Hex keys of the nodes that hold `cid` by the placement storage uses (`storage/rendezvous.ts`):
   * the first r of the storing nodes this node sees (its storage peers, peers whose hello says
   * they store, and itself when it stores), ranked for the CID's storage key and spread over
   * their address groups as storage spreads copies (each peer in its placement group, the one
   * its storage holder has: `PeerEntry.placement`; this node in none, as its storage counts
   * itself). Ranked by key alone, 32 keys from one host held the top places of most CIDs, and
   * their claims of locality won jobs over holders storage really places copies on (review s76
   * routegaps R2). Every node with the same peers and groups computes the same holders; a peer
   * this node does not see may hold it too, and is simply not preferred.
   */
  #inputHolders(cid: string): Set<string> {
    // Its storage peers, and those whose hello says they store (a router that stores nothing
    // itself speaks no storage protocol with them, but ranks them as a storing node would).
    const peers = new Map<string, RankedPeer>();
    for (const holder of this.#holders()) peers.set(holder.id, holder);
    for (const [key, list] of this.#peers) {
      const stores = list.find((p) => !p.connection.isClosed && p.hello?.roles.includes("storage"));
      if (stores !== undefined && !peers.has(key)) {
        peers.set(key, { id: key, group: stores.placement });
      }
    }
    if (this.#services?.storage !== undefined) {
      const self = toHex(this.#options.identity.publicKey);
      peers.set(self, { id: self });
    }
    let key: string;
    try {
      key = storageKey(cid);
    } catch {
      return new Set(); // not a CID: the worker refuses the job, wherever it goes
    }
    const ranked = rankPeers(key, [...peers.values()]);
    return new Set(ranked.slice(0, DEFAULT_REPLICAS).map((peer) => peer.id));
  }

  /** Note that worker `key` refused a job for `model` it listed (see `worker_refused_model`). */
  refusedModel(key: string, model: string): void {
    const now = this.#now();
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

  /**
   * Whether this node is still connecting to peers it will have, so that a job it has no worker
   * for now may find one in a moment (the forwarding port's `no_worker` then carries a retry
   * hint): a configured static peer (`peers`) has no open connection (its dial, or redial, has not
   * succeeded), a connected peer serving inference has not answered its first model listing or
   * its conviction check, or the node's swarm is still finding its peers (its host starting, or
   * up and joined less than `SWARM_SETTLE_MS` ago: `_swarm_settling.ts`). A router with none of
   * these (no peer configured, or every one connected and listed) has nothing to wait for.
   */
  connecting(): boolean {
    const { peers = [] } = this.#options;
    const open = [...this.#peers.values()].flat().filter((p) => !p.connection.isClosed);
    // A static peer's dial reports its connection under the address it was configured with.
    const dialled = new Set(open.filter((p) => p.info.outbound).map((p) => p.info.address));
    if (peers.some((address) => !dialled.has(formatPeerAddress(address)))) return true;
    const settling = open.some((p) =>
      p.connection.supports(INFERENCE_PROTOCOL.name) &&
      (p.checking === true || (p.listing === true && p.models.length === 0))
    );
    if (settling) return true;
    return this.#parts.swarmSettling?.() ?? false;
  }

  /**
   * How long (ms) until the first open worker connection that lists `model` and is kept off it
   * after a failure ({@link refusedModel}) may be picked for it again; undefined when none is
   * kept off it. The forwarding port's `no_worker` says so as its retry hint: without one, a
   * client told "try again shortly" could only guess when. A convicted worker is never picked
   * again, so it does not count; a peer that does not list the model is not coming for it either.
   */
  keptOffMs(model: string): number | undefined {
    const now = this.#now();
    let first: number | undefined;
    for (const list of this.#peers.values()) {
      for (const { connection, info } of list) {
        if (connection.isClosed || !connection.supports(INFERENCE_PROTOCOL.name)) continue;
        if (info.convicted || !info.models.includes(model)) continue;
        const until = this.#refused.get(`${info.key}:${model}`) ?? 0;
        if (until > now && (first === undefined || until < first)) first = until;
      }
    }
    return first === undefined ? undefined : first - now;
  }

  /**
   * Every model some open worker connection listed, once per CID, named and ordered by what
   * the most keys list (`model_listing.ts`: the first listing named it, a stranger's as well),
   * but not a convicted worker's: no job goes to it, and its listing, first, took the name and
   * the default a client names a model by (`InferenceGateway.resolveModel`), so every such job
   * failed with `no_worker`.
   */
  workerModels(): WireModelInfo[] {
    const listings: ModelListing[] = [];
    for (const list of this.#peers.values()) {
      for (const { connection, models, info, checking } of list) {
        // Nor one whose conviction is still being asked: it is routed no job (`worker`).
        if (connection.isClosed || info.convicted || checking) continue;
        listings.push({ key: info.key, standing: this.#standing.get(info.key), models });
      }
    }
    return listedModels(listings);
  }
}
