/**
 * The Veriflow node: builds the supervision tree from the configuration and serves the client
 * APIs. This file only wires; each flow between actors is a message from one to another:
 *
 * ```
 * node                  (system: root supervisor, one_for_one)
 * └── node/sup          NodeSupervisor, one_for_one, backoff
 *     ├── node/storage     StorageActor   — chunk store under <dataDir>/store; with storage
 *     │                                      peers, files spread over them and this node
 *     ├── node/prover      ProverActor    — fingerprints each job's stream, signs receipts
 *     ├── node/validator   ValidatorActor — ledger; challenges other nodes' receipts
 *     ├── node/inference   InferenceActor — job queue, one child per running job
 *     ├── node/training-validator TrainingValidator — challenges training receipts, settles
 *     │                                          training fraud proofs, serves round models
 *     ├── node/trainer     TrainerService — trains on this node's private shard (--train)
 *     ├── node/training-coordinator RoundCoordinator — runs training rounds
 *     │                                          (--coordinate-training)
 *     └── node/network     NetworkActor   — peer connections (TCP, Hyperswarm), what goes to
 *                                          and from peers
 * ```
 *
 * The proof path: the InferenceActor tees each text job's tokens to the prover, which signs
 * the receipt; the validator records it (origin `local`) before it is returned to the requester
 * with the job's end, and has the NetworkActor announce it to other nodes' validators — it never
 * challenges its own. Receipts, verdicts and fraud proofs from peers
 * arrive through the NetworkActor at the same validator; a challenge fetches the worker's proof
 * data through it; verdicts and fraud proofs go back out through it.
 *
 * The client edge talks to an inference port: the local InferenceActor, or — on a node that
 * runs no model — the peers that do. Children start in this order and stop in the reverse
 * one: the network first (no new work from peers), storage last (nothing lost mid-write).
 *
 * The parts, each a private module beside this one: the actors' registry names
 * (`_actor_names.ts`), the models loaded at start (`_node_models.ts`), the supervisor's children
 * per role (`_node_children.ts`, the training roles' in `_training_children.ts`), the HTTP API
 * (`_http_api.ts`) and the shutdown (`_node_shutdown.ts`).
 *
 * @module
 */
import { JobInputError, type JobInputReader } from "../protocols/job_input.ts";
import { join } from "node:path";
import { ActorSystem, formatTree } from "../actors/actor_system.ts";
import type { ActorRef } from "../actors/actor_ref.ts";
import { formatEvent } from "../actors/events.ts";
import type { InferenceMessage } from "../actors/inference_actor.ts";
import type { StorageMessage } from "../actors/storage_actor_messages.ts";
import { storageGateway } from "../actors/storage_actor_peer.ts";
import type { Account, ReceiptRecord, ValidatorMessage } from "../actors/validator_actor.ts";
import type { Verdict } from "../protocols/verdict.ts";
import type { ModelRegistry } from "../inference/model_registry.ts";
import type { GatewayStorage } from "../storage/gateway_port.ts";
import type { InferencePort } from "../inference/inference_port.ts";
import { LocalInferencePort } from "../inference/local_port.ts";
import type { NetworkMessage, PeerInfo } from "../network/network_actor.ts";
import { checkPeerAddress } from "../network/peer_listener.ts";
import { PeerChanges } from "../network/peer_changes.ts";
import {
  ASSIGNED_JOBS_FILE,
  LOST_ENDS_DIR,
  NetworkInferencePort,
} from "../network/network_inference_port.ts";
import type { PeerAddress } from "../network/peer_address.ts";
import type { Identity } from "../protocols/identity.ts";
import { toHex } from "../protocols/hash.ts";
import { OWNER_DIR_MODE } from "../protocols/owner_only.ts";
import { loadOrCreatePledge } from "./node_pledge.ts";
import { ApiKeys } from "../server/api_keys.ts";
import { startHeartbeat } from "./heartbeat.ts";
import { forwardingOptionsOf, type NodeConfig } from "./config.ts";
import { loadOrCreateIdentity } from "./node_identity.ts";
import { DataDirLock } from "./data_dir_lock.ts";
import { checkAccountKey } from "../proof/account_key.ts";
import { CalibrationStore, classCoverageNote } from "../proof/calibration.ts";
import { HttpListener } from "./http_listener.ts";
import { JobMonitor } from "../server/job_monitor.ts";
import { NodeActivity } from "./node_activity.ts";
import type { TrainFunction } from "../training/trainer_service.ts";
import { OwnerKey } from "../storage/private_tier.ts";
import { NODE_ACTORS } from "./_actor_names.ts";
import { loadModels, offeredModels } from "./_node_models.ts";
import { HeldModelPromptCounter } from "../network/_held_model_prompt_counter.ts";
import { nodeChildren } from "./_node_children.ts";
import { trainingInputs } from "./_training_children.ts";
import { apiLines, serveHttpApi } from "./_http_api.ts";
import { nodeShutdown } from "./_node_shutdown.ts";
import { DiskRoom } from "./disk_room.ts";
import type { ConnectionTimers } from "../protocols/connection_timers.ts";
import { refusingWhileReadOnly } from "./_read_only_port.ts";
import { type LedgerStakeReads, ownStakeIn, refusingUnbacked } from "./_stake_backed_port.ts";
import { waitForPeer, type WaitForPeerOptions } from "./wait_for_peer.ts";
import { checkVersion } from "./version.ts";

export { NODE_ACTORS, TRAINING_ACTORS } from "./_actor_names.ts";
export { NodeStoppedError, PEER_TABLE_RETRY_MS, type WaitForPeerOptions } from "./wait_for_peer.ts";

/**
 * NodeSupervisor restart intensity: 5 restarts in 30 s. A role that crashes in a loop (a bad
 * model file, a full disk) escalates within seconds and the node stops with the reason
 * instead of spinning; an isolated crash is absorbed.
 */
const NODE_MAX_RESTARTS = 5;
const NODE_RESTART_WINDOW_MS = 30_000;
/** First restart delay, doubling: gives a failing dependency (disk, device) time to recover. */
const NODE_BACKOFF_INITIAL_MS = 100;

/** Options of {@link startNode}. */
export interface StartNodeOptions {
  /** Where progress and event lines go; default none (silent). */
  log?: (line: string) => void;
  /**
   * The models to serve and validate with, already registered. Default: a registry holding
   * the configured model (`model.dir`, or the built-in model of `model.size`). The node takes a
   * registry given here over: its `shutdown()` closes it (and the worker pools it holds), so a
   * second node needs a registry of its own. A start that fails leaves it open.
   */
  models?: ModelRegistry;
  /**
   * Aborting it stops start-up at the next step (a step already running — a model load, the
   * ledger's verification — finishes first): what was started is stopped again, the port and
   * the data directory released, and `startNode` rejects with the signal's reason. Once the
   * node is up, stop it with `shutdown()`.
   */
  signal?: AbortSignal;
  /**
   * How this node's trainer trains a round (default the honest `trainAndSign`): the one
   * injection point of the training round, for test fixtures (`tests/training/_lazy_trainer.ts`).
   */
  train?: TrainFunction;
  /**
   * The data directory's disk as tests see it: `freeBytes` answers for the OS's free space (the
   * read-only state's and the store's alike), `timers` drive the read-only state's re-checks
   * (`node/disk_room.ts`). Default: the OS and the real clock.
   */
  disk?: { freeBytes?: () => number | Promise<number>; timers?: ConnectionTimers };
}

/** Jobs on a node now, from {@link VeriflowNode.jobs}. */
export interface NodeJobs {
  /** Jobs computing (or being relayed to a peer). */
  running: number;
  /** Jobs waiting for a slot. */
  queued: number;
}

/**
 * What a program reads of a node's ledger ({@link VeriflowNode.ledger}): a receipt's record, the
 * verdicts about it, a key's balances. Each asks the node's validator, which owns the ledger.
 */
export interface NodeLedger {
  /**
   * The ledger's record of a receipt: its worker, status (`pending`, `challenged`, `final`,
   * `fraud`, `unpaid`), credit and locked stake; undefined when the ledger has none.
   * @param receiptId The receipt's id (`receiptId(receipt)`, or `verifyReceipt`'s answer).
   */
  receipt(receiptId: string): Promise<ReceiptRecord | undefined>;
  /**
   * The signed verdicts the ledger holds about a receipt (this validator's challenge's, and the
   * peers' it recorded), in the order recorded; empty when none judged it here. It reads every
   * verdict the ledger holds: for a program or an audit, not a hot path.
   * @param receiptId The receipt's id.
   */
  verdicts(receiptId: string): Promise<Verdict[]>;
  /**
   * A key's balances: credits earned, stake, stake locked against pending receipts.
   * @param key The ed25519 public key (a node's `identity.publicKey`, a receipt's `worker`).
   */
  account(key: Uint8Array): Promise<Account>;
}

/**
 * A running node. It is `AsyncDisposable`: `await using node = await startNode(…)` shuts it
 * down when the block ends, however it ends (`[Symbol.asyncDispose]` is {@link shutdown}).
 */
export interface VeriflowNode extends AsyncDisposable {
  /** The node's ed25519 identity (signs receipts, verdicts, ledger entries; proves its peers). */
  readonly identity: Identity;
  /** The actor system holding the supervision tree. */
  readonly system: ActorSystem;
  /** The served models. */
  readonly models: ModelRegistry;
  /** Base URL of the HTTP API (`ws:` + same host for `/v1/stream`); absent without one. */
  readonly url?: string;
  /**
   * The node's own inference port, the one its HTTP and WebSocket edge serve: jobs run on this
   * node's models (its InferenceActor), reading a job's `input` from this node's storage; or, on
   * a node that runs no model, forwarded to the peers that do. Absent when the node has neither
   * the inference role nor a network. A `LocalInferencePort` built by hand over the
   * InferenceActor lacks the storage reader: a job naming an input gets `input_unavailable`.
   *
   * @example
   * ```ts ignore
   * const [model] = await node.inference!.models();
   * const handle = await node.inference!.submit({
   *   kind: "text",
   *   model: model.cid,
   *   prompt: "The history of",
   *   params: { ...DEFAULT_GENERATION_PARAMS, maxTokens: 16 },
   *   nonce: crypto.randomUUID(),
   * });
   * for await (const token of handle.tokens) console.log(token.text);
   * console.log((await handle.done).receipt);
   * ```
   */
  readonly inference?: InferencePort;
  /**
   * The node's storage (its StorageActor) as a typed port: `put` a file, `read` its bytes,
   * `stat`, `block`, `car`, from this node's store and its storage peers (`{ local: true }`
   * keeps to its own). Absent without the storage role. Prefer it to asking the actor: its
   * replies come wrapped (`{ ok, value }`), and `ask<T>` does not check `T`.
   *
   * @example
   * ```ts ignore
   * const bytes = new TextEncoder().encode("Once upon a time");
   * const { cid } = await node.storage!.put(ReadableStream.from([bytes]), { name: "story.txt" });
   * const stream = await node.storage!.read(cid, { start: 0, end: bytes.length });
   * console.log(await new Response(stream).text()); // "Once upon a time"
   * ```
   */
  readonly storage?: GatewayStorage;
  /**
   * The node's ledger, read through its validator: a receipt's record, the verdicts about it,
   * a key's balances. Absent without the validator role.
   *
   * @example
   * ```ts ignore
   * const check = verifyReceipt((await handle.done).receipt, { output: text });
   * if (check.ok) {
   *   console.log(await node.ledger!.receipt(check.receiptId)); // { status: "pending", … }
   *   console.log(await node.ledger!.verdicts(check.receiptId)); // [] until someone judges it
   *   console.log(await node.ledger!.account(node.identity.publicKey));
   * }
   * ```
   */
  readonly ledger?: NodeLedger;
  /**
   * The TCP address peers connect to (`connectTcp` + `Connection.open` reach its
   * `RemoteInferencePort`): the bound port when `network.listen.port` was 0. Undefined when the
   * node runs no network or does not listen.
   */
  peerAddress(): Promise<PeerAddress | undefined>;
  /**
   * The node's open peer connections now, as its NetworkActor's table shows them: key, address,
   * direction, protocols, the models each runs (once listed) and its last hello. A configured
   * peer shows here once its dial and handshake are done; its models follow one round trip
   * later. To wait for one, {@link waitForPeer}; a program that forwards a job before then gets
   * `no_worker` with a retry hint (`retryAfterS`) while the node is still connecting.
   */
  peers(): Promise<PeerInfo[]>;
  /**
   * Resolves with the first peer in {@link peers} that `predicate` accepts (default: any): one
   * connected now, or the first to connect, list its models or send its hello later (the table is
   * read once, then the NetworkActor's peer changes are heard: `node/wait_for_peer.ts`).
   * @param predicate Which peer, e.g. one that serves a model.
   * @param options `signal`: aborting it rejects the wait with the signal's reason.
   * @returns The peer, as the table showed it when it matched.
   * @throws {NodeStoppedError} the node stopped (`shutdown`, or its supervisor gave up) first.
   *
   * @example
   * ```ts ignore
   * // Wait up to a minute for a peer that serves the model, then forward a job to it.
   * const worker = await node.waitForPeer((peer) => peer.models.includes(modelCid), {
   *   signal: AbortSignal.timeout(60_000),
   * });
   * ```
   */
  waitForPeer(
    predicate?: (peer: PeerInfo) => boolean,
    options?: WaitForPeerOptions,
  ): Promise<PeerInfo>;
  /** The supervision tree as text. */
  tree(): string;
  /** Jobs running and queued now (none when the node serves no jobs). */
  jobs(): Promise<NodeJobs>;
  /** Stop serving, stop every actor in reverse start order, release models. Idempotent. */
  shutdown(): Promise<void>;
  /**
   * Resolves once the node has fully stopped: by `shutdown`, or with `fatal` (the reason, as
   * text) and `reason` (the error itself) when its supervisor gave up on a role that kept crashing.
   */
  readonly finished: Promise<{ fatal?: string; reason?: unknown }>;
}

/**
 * Start a node.
 *
 * Every failure is a rejection, and what it took (the ports, the data directory) is released
 * first. A role whose actor fails to start rejects it with an `ActorCrashedError` carrying
 * the role's error as `reason`.
 *
 * @throws {InvalidVersionError} `deno.json`'s version breaks the hello's grammar.
 * @throws {HttpListenError} the HTTP port cannot be bound (taken, not this machine's).
 * @throws {PeerListenError} the peer port cannot be bound.
 * @throws {ApiKeysFileError} `http.apiKeysFile` cannot be read, or holds a malformed key.
 * @throws {DataDirLockedError} another node or command holds the data directory.
 * @throws {ModelLoadError} the configured model cannot be loaded.
 * @throws {PledgeUnreadableError} `stake_pledge.cbor` is there but is not a valid pledge.
 * @throws {PledgeMissingError} `stake_pledge.cbor` is gone and the ledger records the key's stake.
 *
 * @example
 * ```ts ignore
 * // Shut down at the end of the block, however it ends.
 * await using node = await startNode(parseNodeConfig({ http: { port: 0 } }), {
 *   log: console.log,
 * });
 * console.log(node.url);
 * ```
 */
export async function startNode(
  config: NodeConfig,
  options: StartNodeOptions = {},
): Promise<VeriflowNode> {
  options.signal?.throwIfAborted();
  // A version every peer would refuse in each hello is said now, before anything is bound.
  checkVersion();
  // The HTTP port first: one another process holds is refused before anything touches the data
  // directory (node/http_listener.ts).
  const http = HttpListener.open({ ...config.http, log: options.log });
  try {
    // The peer port too (the NetworkActor binds it later, once the node is built).
    if (config.network.listening) checkPeerAddress(config.network.listen);
    // And the API keys file (the edge reads it once the node is built): a mistyped path is
    // said now, not after a model load that can take minutes.
    ApiKeys.fromConfig(config.http);
  } catch (error) {
    await http.close();
    throw error;
  }
  // One owner per data directory for the node's whole life: a second node is refused, naming
  // this process (node/data_dir_lock.ts).
  let lock: DataDirLock;
  try {
    lock = await DataDirLock.acquire(config.dataDir, "node");
  } catch (error) {
    await http.close();
    throw error;
  }
  let node: VeriflowNode;
  try {
    node = await startLockedNode(config, options, http);
  } catch (error) {
    await http.close();
    await lock.release();
    throw error;
  }
  const finished = node.finished.finally(() => lock.release());
  const shutdown = async () => {
    try {
      await node.shutdown();
    } finally {
      await lock.release();
    }
  };
  return { ...node, shutdown, finished, [Symbol.asyncDispose]: shutdown };
}

/**
 * {@link startNode} once the port is bound and the data directory is this node's. On a failure
 * or an abort, stops what it started (the caller releases the port and the directory).
 */
async function startLockedNode(
  config: NodeConfig,
  options: StartNodeOptions,
  http: HttpListener,
): Promise<VeriflowNode> {
  const log = options.log ?? (() => {});
  const signal = options.signal;
  /** What to stop if start-up goes no further, in start order. */
  const started: (() => Promise<void>)[] = [];
  try {
    return await startSteps(config, options, http, log, started);
  } catch (error) {
    if (signal?.aborted) log("start-up interrupted: stopping what was started…");
    for (const stop of started.reverse()) await stop().catch(() => {});
    throw error;
  }
}

/** The steps of start-up, each pushing its undo onto `started`; checks the signal between them. */
async function startSteps(
  config: NodeConfig,
  options: StartNodeOptions,
  http: HttpListener,
  log: (line: string) => void,
  started: (() => Promise<void>)[],
): Promise<VeriflowNode> {
  const step = () => options.signal?.throwIfAborted();
  await Deno.mkdir(config.dataDir, { recursive: true, mode: OWNER_DIR_MODE });
  const identity = await loadOrCreateIdentity(config.dataDir);
  log(`veriflow node ${toHex(identity.publicKey)}`);
  // Absolute (it was made just above): a relative one did not say which directory it was in.
  log(`data directory ${Deno.realPathSync(config.dataDir)}`);
  // Before anything else writes (the identity above only reads one that exists): on a full disk
  // the node starts read-only, its reserve freed for the ledger's open and the operator's deletes,
  // instead of failing (node/disk_room.ts).
  const disk = await DiskRoom.open({
    dir: config.dataDir,
    floorBytes: config.storage.putMinFreeBytes,
    freeBytes: options.disk?.freeBytes,
    timers: options.disk?.timers,
    log,
  });
  started.push(() => Promise.resolve(disk.close()));
  step();
  const models = options.models ?? await loadModels(config, log, {}, options.signal);
  if (options.models === undefined) started.push(() => models.close());
  step();
  // The validator's tolerances per model, from `cli.ts calibrate` (read at start).
  const calibration = config.roles.validator
    ? await CalibrationStore.open(join(config.dataDir, "calibration"))
    : undefined;
  if (calibration !== undefined) {
    const calibrated = calibration.models.length;
    log(
      calibrated > 0
        ? `calibration: ${calibrated} model profile(s) from ${calibration.dir}`
        : `calibration: none (default tolerances; run \`cli.ts calibrate\` per model)`,
    );
    // A class missing from a profile: its jobs are checked under a coarser class, or, with none,
    // not paid on the defaults (`inconclusive / class_uncalibrated`, review s80 F1).
    for (const model of calibration.models) {
      const note = classCoverageNote(calibration.lookup(model)!);
      if (note !== undefined) log(`warning: calibration: ${model}: ${note}`);
    }
    for (const { file, reason } of calibration.rejected) {
      log(
        `warning: calibration: ${join(calibration.dir, file)} not loaded (its model gets the ` +
          `default tolerances): ${reason}`,
      );
    }
  }

  if (config.roles.inference && config.roles.prover && !config.roles.validator) {
    // Receipts, the stake pledge and proof data travel on the validation protocol, which a node
    // offers only with a validator (`network/peer_services.ts`): a worker without one signs
    // receipts that no peer ever records.
    log(
      "roles: the prover is on and the validator off: this node's receipts, stake pledge and " +
        "proof data travel on the validation protocol, which it offers only with a validator, " +
        "so no peer records its work and it earns no credit; keep the validator on a worker",
    );
  }

  // One pledge per key, ever, the same bytes on every run (see node_pledge.ts): a pledge file
  // that is damaged, or gone once the key staked, refuses the start before any actor runs.
  const pledge = config.selfStake > 0
    ? await loadOrCreatePledge(config.dataDir, identity, config.selfStake, log)
    : undefined;

  const training = await trainingInputs(config, options.train, log);
  // Private files (a trainer's shard) are sealed under a key derived from the node's secret.
  const ownerKey = await OwnerKey.fromSecret(identity.exportSecretKey());
  step();

  // The root restarts nothing: `node/sup` holds the restart budget (5 in 30 s, with backoff), and
  // when it gives up the node stops with the reason. A root that restarted `node/sup` would give
  // it a fresh budget each time, and a role crashing in a loop would restart the whole tree
  // every few seconds, forever.
  const system = new ActorSystem({ name: "node", maxRestarts: 0 });
  started.push(() => system.shutdown());
  system.events.subscribe((event) => {
    // Per-job children start and stop all the time; their crashes still show.
    if (event.name.startsWith(`${NODE_ACTORS.inference}/`) && event.type !== "crashed") return;
    log(formatEvent(event));
  });
  const lookup = <M>(name: string): ActorRef<M> | undefined => system.lookup<M>(name);
  // Every job this node runs — its clients' and its peers' — is watched on its way out (the
  // dashboard's live jobs, the latency histograms); the validator tells what it judged.
  const jobMonitor = new JobMonitor();
  const activity = config.roles.validator ? new NodeActivity() : undefined;
  // A job's input (`protocols/job_input.ts`) is read from this node's storage: its own chunks
  // first, then its storage peers'. A node without the storage role reads none.
  const readInput: JobInputReader | undefined = config.roles.storage
    ? (cid, signal, readOptions) => {
      const storage = lookup<StorageMessage>(NODE_ACTORS.storage);
      if (storage === undefined) {
        return Promise.reject(
          new JobInputError("input_unavailable", `storage is not running: input ${cid} unread`),
        );
      }
      return storageGateway(storage).block(cid, signal, readOptions);
    }
    : undefined;
  // The validator's ledger while it is open (`onLedger`), for the admission's synchronous reads.
  let openLedger: LedgerStakeReads | undefined;
  const onLedger = (ledger: LedgerStakeReads, open: boolean) => {
    if (open) openLedger = ledger;
    else if (openLedger === ledger) openLedger = undefined; // not a newer incarnation's
  };
  const localPort = (): InferencePort | undefined => {
    const inference = lookup<InferenceMessage>(NODE_ACTORS.inference);
    // A job that signs a receipt writes it to the ledger: refused up front while read-only.
    const writes = config.roles.prover;
    return inference &&
      jobMonitor.wrap(
        // A job this node's stake cannot back is refused before the work (review s78 F2).
        refusingUnbacked(
          refusingWhileReadOnly(
            new LocalInferencePort({ inference, models: offeredModels(models), readInput }),
            writes ? disk : undefined,
          ),
          {
            self: toHex(identity.publicKey),
            // Read from the ledger's memory, not asked of the validator: its mailbox may be
            // held seconds per receipt by the intake (review s79 vmoney F2).
            ledger: config.roles.validator
              ? () => openLedger && ownStakeIn(openLedger, identity.publicKey)
              : undefined,
            count: (job) => promptCounter.count(job),
            prepare: (model) => promptCounter.promptCounting(model),
          },
        ),
      );
  };

  // The peer table's changes, told by the NetworkActor (any incarnation of it): waitForPeer's.
  const peerChanges = new PeerChanges();
  // The tokenizers the validator and the router count prompt tokens with, read once per model
  // (review s78 vprompt F1).
  const promptCounter = new HeldModelPromptCounter(models);
  await system.supervise({
    name: NODE_ACTORS.supervisor,
    strategy: "one_for_one",
    maxRestarts: NODE_MAX_RESTARTS,
    withinMs: NODE_RESTART_WINDOW_MS,
    backoff: { initialMs: NODE_BACKOFF_INITIAL_MS },
    children: nodeChildren({
      config,
      identity,
      models,
      lookup,
      localPort,
      log,
      calibration,
      pledge,
      activity,
      training,
      ownerKey,
      peerChanges,
      prompts: promptCounter,
      readInput,
      signal: options.signal,
      disk,
      freeBytes: options.disk?.freeBytes,
      onLedger,
    }),
  });
  step();

  const validator = lookup<ValidatorMessage>(NODE_ACTORS.validator);
  if (validator !== undefined && config.selfStake > 0) {
    // Once per key, ever: a node slashed to nothing does not refill its stake by restarting.
    if (!await validator.ask<boolean>({ type: "has_staked", key: identity.publicKey })) {
      if (disk.readOnly) {
        // A first start on a full disk: the deposit would be refused `disk_full` and fail the
        // start; it is made at the first start with room (not staked till then: asked again).
        log(
          `ledger: this node's stake of ${config.selfStake} is recorded at the first start ` +
            "with room (read-only: the disk is full)",
        );
      } else {
        await validator.ask({ type: "deposit", key: identity.publicKey, amount: config.selfStake });
        log(`ledger: recorded a stake of ${config.selfStake} for this node's key (first start)`);
      }
    }
  }
  step();

  const network = lookup<NetworkMessage>(NODE_ACTORS.network);
  const local = localPort();
  // Read before the first job, so each is counted exactly (review s78 vprompt F1).
  if (local === undefined && network !== undefined) await promptCounter.prepare();
  const forwarding = local === undefined && network !== undefined
    ? new NetworkInferencePort(
      network,
      validator,
      identity,
      // The validator's system: each checked receipt reaches it through the node's
      // ValidatorInbox, held while it is down (review s60). Receipts a lost worker still owes
      // are kept on disk, so a restart still asks for them (review s64).
      {
        ...forwardingOptionsOf(config.network.routing),
        system,
        lostEndsDir: join(config.dataDir, LOST_ENDS_DIR),
        // The jobs it assigned, so a restart still refuses a client's retry of one (s78).
        assignedJobsFile: join(config.dataDir, ASSIGNED_JOBS_FILE),
        // What that file's load skipped as damaged (stop 80): an operator reads it here.
        log,
        // A worker's prompt-token count held to this node's tokenizers, for the models it holds.
        countPromptTokens: promptCounter.count,
      },
    )
    : undefined;
  // It reads and writes its files in the data directory: done before the directory is released.
  if (forwarding !== undefined) started.push(() => forwarding.close());
  const port: InferencePort | undefined = local ?? (forwarding && jobMonitor.wrap(forwarding));
  let url: string | undefined;
  if (port !== undefined) {
    url = await serveHttpApi(http, port, {
      config,
      identity,
      system,
      models,
      lookup,
      jobMonitor,
      activity,
      local,
      log,
      disk,
    });
  } else {
    await http.close();
  }

  const ledger: NodeLedger | undefined = validator && {
    receipt: (receiptId) =>
      validator.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId }),
    verdicts: (receiptId) => validator.ask<Verdict[]>({ type: "verdicts", receiptId }),
    // Checked before the ask: thrown inside the validator, a caller's bad key would crash it.
    account: async (key) =>
      await validator.ask<Account>({ type: "account", key: checkAccountKey(key) }),
  };
  const storageRef = lookup<StorageMessage>(NODE_ACTORS.storage);
  // An ActorRef outlives restarts of its actor: one port for the node's whole life.
  const storage = storageRef && storageGateway(storageRef);
  const tree = () => formatTree(system.tree());
  // A line per call: the log writes what one call says as one line.
  log("\nsupervision tree:");
  const treeLines = tree().split("\n");
  treeLines.forEach((line, i) => log(i === treeLines.length - 1 ? `${line}\n` : line));
  for (const line of apiLines(url, config, local !== undefined)) log(line);

  const heartbeat = startHeartbeat({
    everyMs: config.heartbeatMs,
    publicKey: identity.publicKey,
    port,
    validator: () => lookup<ValidatorMessage>(NODE_ACTORS.validator),
    network: () => lookup<NetworkMessage>(NODE_ACTORS.network),
    models: () => models.health(),
    // Read-only on a full disk: said on every beat (`disk_room.ts`).
    disk: () => disk.state(),
    log,
  });

  const stops = nodeShutdown({ heartbeat, http, system, models, log });
  const { stopping } = stops;
  // The forwarding port's files are closed once the actors stopped (the jobs they end assign
  // their receipts first) and before the node is said stopped, however it stops: the caller then
  // releases the data directory, and may remove it (s78: a write landed after, and the removal
  // failed "Directory not empty").
  const finished = stops.finished.finally(() => forwarding?.close());
  // The disk's re-checks stop with the node, however it stops (a fatal stop included).
  finished.finally(() => disk.close()).catch(() => {});
  const shutdown = async () => {
    disk.close();
    await stops.shutdown();
    await forwarding?.close();
  };

  const jobs = async (): Promise<NodeJobs> => {
    const stats = await port?.stats();
    return { running: stats?.activeJobs ?? 0, queued: stats?.queuedJobs ?? 0 };
  };
  const peerAddress = async (): Promise<PeerAddress | undefined> => {
    const addr = await lookup<NetworkMessage>(NODE_ACTORS.network)?.ask<Deno.NetAddr | undefined>(
      { type: "listening" },
    );
    return addr === undefined ? undefined : { hostname: addr.hostname, port: addr.port };
  };
  const peers = async (): Promise<PeerInfo[]> =>
    await lookup<NetworkMessage>(NODE_ACTORS.network)?.ask<PeerInfo[]>({ type: "peers" }) ?? [];
  return {
    identity,
    system,
    models,
    url,
    inference: port,
    storage,
    ledger,
    peerAddress,
    peers,
    waitForPeer: (predicate, waitOptions) =>
      waitForPeer({ peers, changes: peerChanges, stopping }, predicate, waitOptions),
    tree,
    jobs,
    shutdown,
    finished,
    [Symbol.asyncDispose]: shutdown,
  };
}
