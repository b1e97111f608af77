/**
 * What a node serves to a peer over one connection: the two named protocols and their
 * handlers. The handlers hold no state of their own; each turns a peer's message into a message
 * to the actor that owns the state (the prover's proof store, the validator's ledger), so a
 * receipt or a fraud proof from a peer enters the same path as a local one.
 *
 * ```
 * veriflow/inference/1   inference.submit, inference.list_models → the local InferencePort
 *                        inference.get_proof                     → ProverActor  get_proof
 * veriflow/validation/1  validation.receipt                      → ValidatorActor receipt
 *                        validation.verdict / fraud_proof /
 *                          stream_proof / stake                  → ValidatorActor
 * veriflow/storage/2     storage.put_chunk / get_chunk / has_chunk / prove → StorageActor
 * veriflow/training/1    training.join                           → RoundCoordinator join
 *                        training.round / challenge / opening_part → TrainerService
 *                        training.receipt / fraud_proof / outcome → TrainingValidator
 * ```
 *
 * @module
 */
import type { ActorSystem } from "../actors/actor_system.ts";
import type { Connection, ConnectionTimers } from "../protocols/connection.ts";
import type { Protocol } from "../protocols/connection_protocols.ts";
import {
  FraudProofAnnouncementMessage,
  INFERENCE_PROTOCOL,
  ProofRequestMessage,
  ReceiptAnnouncementMessage,
  StakeAnnouncementMessage,
  StreamProofAnnouncementMessage,
  VALIDATION_PROTOCOL,
  VerdictAnnouncementMessage,
} from "../protocols/inference_messages.ts";
import { fromHex, toHex } from "../protocols/hash.ts";
import type { Account } from "../proof/ledger_state.ts";
import { bytesEqual } from "../protocols/bytes_equal.ts";
import { VeriflowError } from "../protocols/errors.ts";
import { BadSignatureError, InvalidBodyError } from "../protocols/protocol_errors.ts";
import type { Envelope } from "../protocols/envelope.ts";
import { TrainingError } from "../training/training_error.ts";
import type { ServedProof } from "../proof/served_proof.ts";
import type { InferencePort } from "../inference/inference_port.ts";
import { PeerJobShares, serveInference, UnsentReceipts } from "../inference/serve_inference.ts";
import { proverCut, proverJobTrace, type ProverMessage } from "../actors/prover_actor.ts";
import type { ReceiptHandled, ValidatorMessage } from "../actors/validator_actor.ts";
import type { StorageMessage } from "../actors/storage_actor_messages.ts";
import { StorageActorPeer } from "../actors/storage_actor_peer.ts";
import { STORAGE_PROTOCOL } from "../protocols/storage_messages.ts";
import { serveStoragePeer } from "../storage/connection_storage_peer.ts";
import {
  NEW_PLEDGES_FIRST_REFILL_MS,
  NEW_PLEDGES_PER_GROUP_BURST,
  NEW_PLEDGES_PER_GROUP_REFILL_MS,
  NEW_PLEDGES_PER_NODE_BURST,
  NEW_PLEDGES_PER_NODE_REFILL_MS,
  NEW_PLEDGES_RESERVE,
  NEW_PLEDGES_UNADDRESSED_BURST,
  NEW_PLEDGES_UNADDRESSED_REFILL_MS,
  type PledgeBudgets,
  PledgeGate,
} from "./pledge_budget.ts";
import { AddressBudget } from "./address_budget.ts";
import { ProofRequestQueue } from "./proof_request_queue.ts";
import {
  MAX_HELD_TRAINING_BYTES,
  type PeerEvidence,
  ValidatorInbox,
  type ValidatorInboxOptions,
} from "./_validator_inbox.ts";
import {
  ChallengeMessage,
  JoinMessage,
  OpeningPartMessage,
  OutcomeMessage,
  RoundMessage,
  TRAINING_PROTOCOL,
  TrainingFraudProofMessage,
  TrainingReceiptMessage,
} from "../protocols/training_messages.ts";
import type { CoordinatorMessage } from "../training/round_coordinator.ts";
import type {
  ChallengeAccepted,
  RoundAccepted,
  TrainerMessage,
} from "../training/trainer_service.ts";
import type { TrainingValidatorMessage } from "../training/training_validator.ts";
import type { JoinedBody } from "../protocols/training_messages.ts";

/** Where a peer's messages go on this node. */
export interface PeerServices {
  /** The actor system holding the node's actors (looked up by name per message). */
  system: ActorSystem;
  /** The local port jobs from peers run on (absent: this node does not serve inference). */
  inference?: InferencePort;
  /** Registry name of the ProverActor (absent: no proof data to serve). */
  prover?: string;
  /** Registry name of the ValidatorActor (absent: this node keeps no ledger). */
  validator?: string;
  /** Registry name of the StorageActor (absent: this node holds nothing for peers). */
  storage?: string;
  /** Registry name of the TrainerService (absent: this node does not train). */
  trainer?: string;
  /** Registry name of the RoundCoordinator (absent: this node runs no rounds). */
  coordinator?: string;
  /** Registry name of the TrainingValidator (absent: no training gossip is taken here). */
  trainingValidator?: string;
  /** This node's key (a proof request naming it as the worker is answered, not relayed). */
  self?: Uint8Array;
  /** An open connection to the peer `key` that speaks `protocol` (for relaying). */
  connectionTo?: (key: Uint8Array, protocol: string) => Promise<Connection | undefined>;
  /** Clock of each connection's pledge budget (`pledge_budget.ts`; default `Date.now`). */
  now?: () => number;
  /**
   * Clock of a request's wait for a validator that is down (`ValidatorInbox.ask`, at most
   * `MAX_WAIT_MS`): the connections' own (`ConnectionOptions.timers`; default the system's).
   */
  timers?: ConnectionTimers;
  /** The receiving pledge budgets by peer key, kept across connections (`pledge_budget.ts`). */
  pledgeBudgets?: PledgeBudgets;
  /**
   * What the connections bring the ledger of pledges of keys it has never seen, per address
   * group and for the node (`address_budget.ts`, `NEW_PLEDGES_PER_GROUP_BURST`); default: one per
   * actor system and validator, on {@link now}.
   */
  newPledges?: AddressBudget;
  /**
   * The queue every connection's `inference.get_proof` waits in, fair across peer keys
   * (`proof_request_queue.ts`); default: one per actor system.
   */
  proofRequests?: ProofRequestQueue;
  /**
   * Inference jobs each peer key runs here, counted over all its connections
   * (`serve_inference.ts`); default: one per actor system.
   */
  peerJobs?: PeerJobShares;
  /** Where one line per job a peer ran here goes (`serve_inference.ts`); none by default. */
  log?: (line: string) => void;
}

/**
 * The defaults of {@link PeerServices.peerJobs} and `proofRequests`: one each per actor system
 * (per node).
 */
const peerJobShares = new WeakMap<ActorSystem, PeerJobShares>();
const proofQueues = new WeakMap<ActorSystem, ProofRequestQueue>();
/**
 * Each node's receipts whose `end` event a connection lost (`UnsentReceipts`): kept across
 * connections, since the requester asks for one on a later connection.
 */
const unsentReceipts = new WeakMap<ActorSystem, UnsentReceipts>();
/**
 * Each node's {@link ValidatorInbox}, by validator name: one per validator (the ValidatorActor,
 * the TrainingValidator), for every connection.
 */
const validatorInboxes = new WeakMap<ActorSystem, Map<string, ValidatorInbox<unknown>>>();
/** Each node's {@link PeerServices.newPledges} default, by validator name: one per ledger. */
const newPledgeBudgets = new WeakMap<ActorSystem, Map<string, AddressBudget>>();

/** `cache`'s value for `system`, made on first use: one per node, shared by its connections. */
function perSystem<T>(cache: WeakMap<ActorSystem, T>, system: ActorSystem, make: () => T): T {
  let value = cache.get(system);
  if (value === undefined) cache.set(system, value = make());
  return value;
}

function peerJobsOf(services: PeerServices): PeerJobShares {
  return services.peerJobs ??
    perSystem(peerJobShares, services.system, () => new PeerJobShares());
}

/** The budget of new keys' pledges for the ledger of validator `name` (see `newPledges`). */
function newPledgesOf(services: PeerServices, name: string): AddressBudget {
  if (services.newPledges !== undefined) return services.newPledges;
  const budgets = perSystem(newPledgeBudgets, services.system, () => new Map());
  let budget = budgets.get(name);
  if (budget === undefined) budgets.set(name, budget = newPledgeBudget(services.now));
  return budget;
}

/**
 * A ledger's budget of pledges of keys it has never seen (`pledge_budget.ts`'s sizes), on `now`:
 * what {@link PeerServices.newPledges} is by default. Connections with no address have their own
 * bucket, and the node's keeps a reserve for first takes (review s71 verify F3).
 */
export function newPledgeBudget(now?: () => number): AddressBudget {
  return new AddressBudget({
    perGroup: { burst: NEW_PLEDGES_PER_GROUP_BURST, refillMs: NEW_PLEDGES_PER_GROUP_REFILL_MS },
    unaddressed: {
      burst: NEW_PLEDGES_UNADDRESSED_BURST,
      refillMs: NEW_PLEDGES_UNADDRESSED_REFILL_MS,
    },
    node: { burst: NEW_PLEDGES_PER_NODE_BURST, refillMs: NEW_PLEDGES_PER_NODE_REFILL_MS },
    reserve: { room: NEW_PLEDGES_RESERVE, refillMs: NEW_PLEDGES_FIRST_REFILL_MS },
    now,
  });
}

function proofQueueOf(services: PeerServices): ProofRequestQueue {
  return services.proofRequests ??
    perSystem(proofQueues, services.system, () => new ProofRequestQueue());
}

/**
 * The inbox of the validator `name` in `system`, taking `M` (`options` apply when it is made):
 * one per node and validator, shared by every connection's handlers and by the node's forwarding
 * port, which hands its own receipts through it (`network_inference_port.ts`).
 */
export function validatorInboxOf<M = PeerEvidence>(
  system: ActorSystem,
  name: string,
  options?: ValidatorInboxOptions,
): ValidatorInbox<M> {
  const inboxes = perSystem(
    validatorInboxes,
    system,
    () => new Map<string, ValidatorInbox<unknown>>(),
  );
  let inbox = inboxes.get(name);
  if (inbox === undefined) inboxes.set(name, inbox = new ValidatorInbox(system, name, options));
  return inbox as ValidatorInbox<M>;
}

/** How long a relayed proof request may take at the worker. */
const RELAY_TIMEOUT_MS = 30_000;

/** The protocols a node with `services` offers, in handshake order. */
export function offeredProtocols(services: PeerServices): Protocol[] {
  const offered: Protocol[] = [INFERENCE_PROTOCOL];
  if (services.validator !== undefined) offered.push(VALIDATION_PROTOCOL);
  if (services.storage !== undefined) offered.push(STORAGE_PROTOCOL);
  if (
    services.trainer !== undefined || services.coordinator !== undefined ||
    services.trainingValidator !== undefined
  ) offered.push(TRAINING_PROTOCOL);
  return offered;
}

/** A role this node does not run: the actor for it is absent or stopped. */
class ServiceUnavailableError extends VeriflowError {
  constructor(what: string) {
    super("service_unavailable", `${what} is not running on this node`);
  }
}

/** A trainer asked to join a node that runs no rounds (it tries every training peer). */
class NotCoordinatorError extends VeriflowError {
  constructor() {
    super("not_coordinator", "this node does not coordinate training rounds");
  }
}

/** The worker cannot be reached from this node (the validator asks again, or elsewhere). */
class WorkerUnreachableError extends VeriflowError {
  constructor() {
    super("worker_unreachable", "this node has no connection to the worker");
  }
}

/**
 * A validator not connected to a worker asks the job's requester (which is, or was, connected
 * to it) to fetch the proof: relayed for a receipt this node's ledger holds, to the worker
 * only (the request it sends names no worker, so it is not relayed again). The answer is the
 * worker's signed served proof, passed back untouched.
 *
 * The ledger is asked through the validator's inbox (`ValidatorInbox.ask`), as a receipt
 * announcement is: while this node's validator is down (stopped, restarting) the request waits
 * for it, at most `MAX_WAIT_MS` on the connections' clock and within the waits' bounds per node
 * and per peer key, never past the asking validator giving up on it (its round ends). Answered
 * `service_unavailable` at once, the asking validator asked again only in its next round, after
 * a pause (0.5 s doubling to 8 s, `actors/_proof_fetch.ts`): a refusal in its last round before
 * the deadline, from a validator back a moment later, was never asked again, and with this route
 * up the missing proof was the worker's withholding — an honest worker slashed in that ledger for
 * this node's restart (review s60, `tests/network/validator_down_test.ts`).
 */
async function relayProof(
  services: PeerServices,
  peer: string,
  receiptId: string,
  worker: Uint8Array,
  signal: AbortSignal,
): Promise<{ served: ServedProof | null }> {
  if (services.validator === undefined) {
    throw new ServiceUnavailableError("a ledger holding that receipt");
  }
  const known = await validatorInboxOf<ValidatorMessage>(services.system, services.validator)
    .ask<unknown>(peer, { type: "receipt_status", receiptId }, {
      timers: services.timers,
      signal,
      unavailable: () => new ServiceUnavailableError("the validator"),
    });
  if (!known) throw new ServiceUnavailableError("a ledger holding that receipt");
  const connection = await services.connectionTo?.(worker, INFERENCE_PROTOCOL.name);
  if (connection === undefined) throw new WorkerUnreachableError();
  return await connection.request(ProofRequestMessage, { receiptId }, {
    signal,
    timeoutMs: RELAY_TIMEOUT_MS,
  });
}

/**
 * Register the handlers of every protocol `services` offers on `connection`. `peerKey` is the
 * key the connection's handshake authenticated; it tags what the peer sends. `host`: its remote
 * address's `addressGroup` (`connection_limits.ts`), for a TCP connection a peer opened or a swarm
 * connection whose host gave its address; undefined for one with no address (in-memory, a TCP
 * dial, a swarm peer relayed or of unknown address).
 */
export function servePeer(
  connection: Connection,
  peerKey: Uint8Array,
  services: PeerServices,
  host?: string,
): void {
  const { system } = services;
  const peer = toHex(peerKey);
  if (services.inference !== undefined) {
    // One share per peer key, not per connection: a key may hold several connections.
    serveInference(connection, services.inference, {
      peer,
      shares: peerJobsOf(services),
      unsent: perSystem(unsentReceipts, system, () => new UnsentReceipts()),
      // After a restart: the receipt its prover kept on disk, or `unknown_job` (review s79 crash).
      trace: proverJobTrace(system, services.prover),
      // A finished job's receipt over what its requester's client held, cut when asked (bill F1).
      cut: proverCut(system, services.prover),
      log: services.log,
    });
  }
  const proofRequests = proofQueueOf(services);
  connection.handle(ProofRequestMessage, async ({ receiptId, worker }, { signal }) => {
    if (worker !== undefined && !(services.self && bytesEqual(worker, services.self))) {
      return await relayProof(services, peer, receiptId, worker, signal);
    }
    const name = services.prover;
    const prover = name === undefined ? undefined : system.lookup<ProverMessage>(name);
    if (prover === undefined) throw new ServiceUnavailableError("the prover");
    // In this peer's turn (fair across peer keys), not first come first served: a flood from
    // other keys must not hold a validator's request past its proof deadline.
    const served = await proofRequests.run(
      peer,
      () => prover.ask<ServedProof | undefined>({ type: "get_proof", receiptId }),
      signal,
    );
    return { served: served ?? null };
  });
  if (services.storage !== undefined) {
    const name = services.storage;
    // Looked up per request: a restarted StorageActor is a new ref under the same name.
    const storage = {
      ask<R>(message: StorageMessage, options?: { signal?: AbortSignal }): Promise<R> {
        const ref = system.lookup<StorageMessage>(name);
        if (ref === undefined) throw new ServiceUnavailableError("storage");
        return ref.ask<R>(message, options);
      },
    };
    serveStoragePeer(connection, new StorageActorPeer(storage, peerKey));
  }
  if (services.validator !== undefined) {
    const name = services.validator;
    const inbox = validatorInboxOf<ValidatorMessage>(system, name);
    // A request: answered `service_unavailable` (or with the crash) while the validator was down,
    // it was lost for good, and the honest worker went unpaid in this ledger alone. It waits for
    // the validator instead, bounded in time and per peer (`ValidatorInbox.ask`).
    connection.handle(ReceiptAnnouncementMessage, async ({ receipt, job, assignment }, ctx) => {
      const handled = await inbox.ask<ReceiptHandled>(peer, {
        type: "receipt",
        receipt,
        job,
        assignment,
        origin: peer,
      }, {
        timers: services.timers,
        signal: ctx.signal,
        unavailable: () => new ServiceUnavailableError("the validator"),
      });
      // Never more than recorded-or-not: the draw stays with the validator.
      return handled.recorded ? { recorded: true } : {
        recorded: false,
        refusal: handled.refusal ?? "refused",
      };
    });
    // One-way evidence: the sender passes it on once, never learning whether the ledger took it,
    // except a `busy` refusal by this connection, which the sender's connection sends again after
    // a backoff (`protocols/_connection_notices.ts`; a receipt announcement above is a request,
    // asked again by the sender's NetworkActor: `announceReceipt`, `_accusations.ts`).
    // Handed over once the validator took it, or held (bounded, per node) while it is down or
    // after it crashed with it queued, and handed over when it is back (`_validator_inbox.ts`).
    // Evidence that fails a check its sender could have made itself is charged to the
    // connection ({@link chargeForged}).
    connection.handle(VerdictAnnouncementMessage, async ({ verdict }, { envelope }) => {
      const answer = await inbox.deliver(peer, { type: "verdict", verdict, origin: peer });
      chargeForged(connection, answer, envelope);
    });
    connection.handle(FraudProofAnnouncementMessage, async ({ proof }, { envelope }) => {
      const answer = await inbox.deliver(peer, { type: "fraud_proof", proof, origin: peer });
      chargeForged(connection, answer, envelope);
    });
    connection.handle(StreamProofAnnouncementMessage, async ({ proof }, { envelope }) => {
      const answer = await inbox.deliver(peer, { type: "stream_proof", proof, origin: peer });
      chargeForged(connection, answer, envelope);
    });
    // Pledges are valid from any fresh key and kept for good: what this connection may bring
    // the ledger is budgeted, and a peer that keeps on past it is cut off (`pledge_budget.ts`).
    const pledges = new PledgeGate(connection, {
      now: services.now,
      budget: services.pledgeBudgets?.of(peer),
    });
    // A key is free, so the pledges of keys the ledger has never seen are also budgeted per
    // address group and for the node: the validator takes room for one only for such a key (it
    // alone knows), and records nothing past it (review s71: one host, a fresh connection key each
    // time, had 20,480 pledges recorded in 40 s). Keys with stake there take none of it.
    const newKeys = newPledgesOf(services, name).room(host);
    connection.handle(StakeAnnouncementMessage, async ({ pledge }) => {
      // A peer's own pledge, one it passes on (gossip), one of those its ledger pushes when we
      // connect, or one we turned out to need (`network_actor.ts`): the ledger checks the
      // signature and counts a key's first as its stake; a second, different one convicts the key
      // of pledge equivocation. A node pledges once, ever (`node/node_pledge.ts`).
      pledges.admit();
      await inbox.deliver(peer, { type: "pledge", pledge, origin: peer, newKeys });
    });
  }
  serveTraining(connection, peer, services);
}

/**
 * Charge `connection` a refusal for a peer's verdict, fraud proof or stream proof its validator
 * answered `skipped` `bad_signature` or `malformed` (`ForgedEvidence`, `FraudProofHandled`,
 * `StreamProofHandled`): checks the sender could have made itself, and an honest peer passes on
 * only evidence its own ledger took, so only a forger meets them. Counted like any refused frame,
 * a peer that keeps on is cut off at the connection's refusal limit (`too_many_refusals`), as one
 * sending bad hellos is; before, each forgery cost this node a signature check and the peer
 * nothing, without end (review s80, F2). Whatever an honest relay can meet — a duplicate, a
 * receipt not recorded here, an unstaked author, a receipt settled already — is never charged,
 * nor evidence held while the validator is down (its answer, later, goes to nobody).
 */
function chargeForged(connection: Connection, answer: unknown, envelope: Envelope): void {
  const skipped = (answer as { skipped?: unknown } | undefined)?.skipped;
  const where = { envelopeId: envelope.id, envelopeType: envelope.type };
  if (skipped === "bad_signature") {
    connection.refuse(
      new BadSignatureError(`${envelope.type}: its signature does not verify`, where),
    );
  } else if (skipped === "malformed") {
    connection.refuse(new InvalidBodyError(envelope.type, "not a valid proof", where));
  }
}

/**
 * A round asked of this node's trainer by a coordinator with no stake in this node's ledger
 * (`unstaked_coordinator`). A trainer trains and signs for whoever asks, and its signed slot is
 * (round, start model) whoever asked (`training/_signed_slots.ts`): before this gate any peer
 * could take an honest coordinator's next slot first (review s79 F2), have cheap rounds signed
 * and gossip their receipts to lock the trainer's whole stake so it got no seat (F3), or hold its
 * engine with a long round past other coordinators' deadlines (F4).
 */
class UnstakedCoordinatorError extends TrainingError {
  constructor(round: number) {
    super(
      "unstaked_coordinator",
      `round ${round} refused: this trainer trains only for coordinators with stake in its ledger`,
    );
  }
}

/**
 * Refuse `peer`'s round `round` unless its key holds stake in this node's ledger, the way a
 * node audits only the outcomes of staked coordinators (`training/_outcome_gate.ts`) and a
 * router ranks a worker by its standing in its own ledger (`worker_choice.ts`). This node's own
 * key is not asked (its coordinator is its own). A node that keeps no ledger cannot tell, and
 * trains for any peer, as before (docs/TRAINING.md says so).
 */
async function refuseUnstakedCoordinator(
  services: PeerServices,
  peer: string,
  round: number,
  signal: AbortSignal,
): Promise<void> {
  if (services.validator === undefined) return;
  if (services.self !== undefined && toHex(services.self) === peer) return;
  const account = await validatorInboxOf<ValidatorMessage>(services.system, services.validator)
    .ask<Account | undefined>(peer, { type: "account", key: fromHex(peer) }, {
      timers: services.timers,
      signal,
      unavailable: () => new ServiceUnavailableError("the validator"),
    });
  if ((account?.stake ?? 0) > 0) return;
  services.log?.(
    `trainer: round ${round} refused for ${peer.slice(0, 16)}: unstaked_coordinator (no stake ` +
      `in this ledger)`,
  );
  throw new UnstakedCoordinatorError(round);
}

/** The training protocol's handlers (`protocols/training_messages.ts`), by role. */
function serveTraining(connection: Connection, peer: string, services: PeerServices): void {
  const { system } = services;
  const actor = <M>(name: string | undefined, what: string) => {
    const ref = name === undefined ? undefined : system.lookup<M>(name);
    if (ref === undefined) throw new ServiceUnavailableError(what);
    return ref;
  };
  if (services.trainer !== undefined) {
    // A trainer joins every peer that speaks training; coordinators accept.
    system.lookup<TrainerMessage>(services.trainer)?.tell({ type: "peer", connection })
      .catch(() => {});
  }
  connection.handle(JoinMessage, async ({ shardSize, shardRoot }) => {
    if (services.coordinator === undefined) throw new NotCoordinatorError();
    return await actor<CoordinatorMessage>(services.coordinator, "the coordinator")
      .ask<JoinedBody>({ type: "join", connection, shardSize, shardRoot });
  });
  connection.handle(RoundMessage, async (body, { signal }) => {
    const trainer = actor<TrainerMessage>(services.trainer, "a trainer");
    await refuseUnstakedCoordinator(services, peer, body.round, signal);
    // The signal aborts when this connection closes: a coordinator gone (restarted) no longer
    // holds its one round slot at the trainer with a round nobody will read the report of.
    const accepted = await trainer.ask<RoundAccepted>({
      type: "round",
      body,
      coordinator: peer,
      gone: signal,
    });
    return await accepted.report;
  });
  connection.handle(ChallengeMessage, async ({ challenge }) => {
    const trainer = actor<TrainerMessage>(services.trainer, "a trainer");
    const accepted = await trainer.ask<ChallengeAccepted>({
      type: "challenge",
      challenge,
      from: connection.peerKey,
    });
    return await accepted.openings;
  });
  connection.handle(OpeningPartMessage, async ({ challengeId, index }) => {
    const trainer = actor<TrainerMessage>(services.trainer, "a trainer");
    const bytes = await trainer.ask<Uint8Array | undefined>({ type: "part", challengeId, index });
    if (bytes === undefined) {
      throw new TrainingError("unknown_opening", "no such answer or part here");
    }
    return { bytes };
  });
  // Training receipts, fraud proofs and round outcomes are one-way evidence for the ledger,
  // passed on once per connection: handed over as the inference evidence is, or held while the
  // training validator is down or after it crashed with them queued (`_validator_inbox.ts`). An
  // outcome lost here was never audited here, so the round's honest trainers went uncredited in
  // this ledger alone. A training fraud proof can be as large as a frame, hence the larger hold.
  const evidence = (message: TrainingValidatorMessage) => {
    if (services.trainingValidator === undefined) {
      throw new ServiceUnavailableError("the training validator");
    }
    return validatorInboxOf<TrainingValidatorMessage>(system, services.trainingValidator, {
      maxHeldBytes: MAX_HELD_TRAINING_BYTES,
    }).deliver(peer, message);
  };
  connection.handle(TrainingReceiptMessage, async (body) => {
    await evidence({ type: "receipt", body, origin: peer });
  });
  connection.handle(TrainingFraudProofMessage, async (body) => {
    await evidence({ type: "fraud_proof", body, origin: peer });
  });
  connection.handle(OutcomeMessage, async (body) => {
    await evidence({ type: "outcome", body, origin: peer });
  });
}
