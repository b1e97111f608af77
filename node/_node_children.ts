/**
 * The children of the node's supervisor, one per role, in start order ({@link nodeChildren}):
 * storage, prover, validator, inference, the training roles (`_training_children.ts`) and the
 * network last; each a `ChildSpec` whose factory builds the role's actor from the configuration,
 * naming the actors it talks to by their registry names (`_actor_names.ts`). Used by `node.ts`,
 * which hands them to `node/sup`. Not part of the public API.
 *
 * @module
 */
import type { HeldModelPromptCounter } from "../network/_held_model_prompt_counter.ts";
import { join } from "node:path";
import type { ActorRef } from "../actors/actor_ref.ts";
import type { ChildSpec } from "../actors/actor.ts";
import {
  emptyInferenceCounters,
  InferenceActor,
  type InferenceMessage,
} from "../actors/inference_actor.ts";
import { ProverActor, proverHook, type ProverMessage } from "../actors/prover_actor.ts";
import { StorageActor } from "../actors/storage_actor.ts";
import type { StorageMessage } from "../actors/storage_actor_messages.ts";
import {
  ValidatorActor,
  type ValidatorActorOptions,
  type ValidatorMessage,
} from "../actors/validator_actor.ts";
import { emptyValidatorStats } from "../actors/validator_messages.ts";
import { challengeProbabilityWarning, DEFAULT_ECONOMICS } from "../proof/economics.ts";
import type { ModelRegistry } from "../inference/model_registry.ts";
import type { InferencePort } from "../inference/inference_port.ts";
import { NetworkActor, type NetworkMessage } from "../network/network_actor.ts";
import { parsePeerAddress } from "../network/peer_address.ts";
import type { PeerChanges } from "../network/peer_changes.ts";
import { toHex } from "../protocols/hash.ts";
import type { Identity } from "../protocols/identity.ts";
import type { JobInputReader } from "../protocols/job_input.ts";
import type { StakePledge } from "../protocols/stake_pledge.ts";
import { nodeHello } from "./node_hello.ts";
import { connectionOptionsOf, type NodeConfig, replicaQuotaOf } from "./config.ts";
import type { CalibrationStore } from "../proof/calibration.ts";
import type { NodeActivity } from "./node_activity.ts";
import type { OwnerKey } from "../storage/private_tier.ts";
import { NODE_ACTORS } from "./_actor_names.ts";
import type { DiskRoom } from "./disk_room.ts";
import {
  addTrainingChildren,
  type TrainingInputs,
  trainingValidates,
} from "./_training_children.ts";

/** What {@link nodeChildren} builds the roles' actors from: the node's parts, made by `node.ts`. */
export interface NodeChildrenInputs {
  /** The node's configuration (its roles, sizes and directories). */
  config: NodeConfig;
  /** The node's key pair: its actors sign and are known by it. */
  identity: Identity;
  /** The models this node holds (inference, validation, training). */
  models: ModelRegistry;
  /** Finds a running actor by its registry name (`NODE_ACTORS`). */
  lookup: <M>(name: string) => ActorRef<M> | undefined;
  /** The node's own inference port, once the inference actor runs (for the network's jobs). */
  localPort: () => InferencePort | undefined;
  /** The node's log. */
  log: (line: string) => void;
  /** The calibrated tolerances the validator checks with, where the node has them. */
  calibration: CalibrationStore | undefined;
  /** This node's signed stake pledge, announced to its peers. */
  pledge: StakePledge | undefined;
  /** Where the validator records what it did, for watchers (the dashboard's feed, `/metrics`). */
  activity: NodeActivity | undefined;
  /** The training roles' inputs (`_training_children.ts`). */
  training: TrainingInputs;
  /**
   * The node's tokenizers, read once per model: its validator re-counts receipts' prompt tokens
   * with them, its router counts the prompts it forwards (review s78 vprompt F1).
   */
  prompts: HeldModelPromptCounter;
  /** The owner's key the storage's private tier encrypts this node's own files with. */
  ownerKey: OwnerKey;
  /** Where the NetworkActor tells its peer table's changes (`VeriflowNode.waitForPeer` hears). */
  peerChanges: PeerChanges;
  /** Reads a job's stored input from this node's storage (none without the storage role). */
  readInput?: JobInputReader;
  /** Start-up's signal: it stops the ledger's rebuild of its history index (Ctrl-C at start). */
  signal?: AbortSignal;
  /** The node's read-only state on a full disk: the ledger's writes are refused while it holds. */
  disk?: DiskRoom;
  /** The disk's free bytes as a test sees them (`StartNodeOptions.disk`), for the store too. */
  freeBytes?: () => number | Promise<number>;
  /** Told the validator's ledger while it is open: the job admission reads its free stake. */
  onLedger?: ValidatorActorOptions["onLedger"];
}

/** The supervisor's children for the node's configuration, in start order. */
export function nodeChildren(inputs: NodeChildrenInputs): ChildSpec<never>[] {
  const {
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
    prompts,
  } = inputs;
  const children: ChildSpec<never>[] = [];
  const add = <M>(spec: ChildSpec<M>) => children.push(spec as unknown as ChildSpec<never>);
  const { roles } = config;
  if (roles.storage) {
    add<StorageMessage>({
      name: NODE_ACTORS.storage,
      factory: () =>
        new StorageActor({
          dir: join(config.dataDir, "store"),
          store: {
            quotaBytes: config.storage.quotaBytes,
            replicaQuotaBytes: replicaQuotaOf(config.storage),
            replicaMinFreeBytes: config.storage.replicaMinFreeBytes,
            putMinFreeBytes: config.storage.putMinFreeBytes,
            gcGraceMs: config.storage.gcGraceMs,
            // One disk for the store and the node's read-only state (`disk_room.ts`).
            faults: inputs.freeBytes && { freeBytes: inputs.freeBytes },
          },
          maxInMemoryBytes: config.storage.maxInMemoryBytes,
          auditIntervalMs: config.storage.auditIntervalMs,
          identity,
          ownerKey,
          // With storage peers, files are spread over them and this node (r copies each).
          holdHere: true,
          network: NODE_ACTORS.network,
          log,
          // The ledger lives in the validator: a node without that role keeps none, so its
          // audits' verdicts are logged, not dropped unseen (review s75: `?.tell` on no validator
          // discarded them while docs/STORAGE.md said they went to the node's ledger).
          onVerdict: roles.validator
            ? async (verdict) => {
              await lookup<ValidatorMessage>(NODE_ACTORS.validator)?.tell({
                type: "verdict",
                verdict,
              });
            }
            : (verdict) =>
              log(
                `storage: audit verdict ${verdict.outcome}/${verdict.reason} against holder ` +
                  `${toHex(verdict.target)} not recorded: no ledger without the validator role`,
              ),
        }),
    });
  }
  if (roles.prover) {
    add<ProverMessage>({
      name: NODE_ACTORS.prover,
      factory: () =>
        new ProverActor({
          identity,
          dir: join(config.dataDir, "proofs"),
          proofRetentionMs: config.proofs.retentionMs,
          // Each receipt is recorded in this node's ledger before it leaves the prover.
          validator: roles.validator ? NODE_ACTORS.validator : undefined,
          log,
        }),
    });
  }
  if (roles.validator) {
    // Built here, outside the factory: every incarnation counts on in the same totals, so an
    // actor's restart does not take the node's counts back to 0 (review s71).
    const stats = emptyValidatorStats();
    const unsafe = challengeProbabilityWarning(
      config.validator.challengeProbability ?? DEFAULT_ECONOMICS.challengeProbability,
    );
    if (unsafe !== undefined) log(`warning: validator: ${unsafe} (validator.challengeProbability)`);
    add<ValidatorMessage>({
      name: NODE_ACTORS.validator,
      factory: () =>
        new ValidatorActor({
          identity,
          ledgerDir: join(config.dataDir, "ledger"),
          // The ledger says a rebuild of its history index (minutes on a long ledger, after an
          // upgrade) and its progress, and Ctrl-C at start-up stops it (review s72).
          // A read-only node (a full disk) refuses every entry with `disk_full`, the log untouched.
          ledger: {
            checkpointEvery: config.ledger.checkpointEvery,
            log,
            signal: inputs.signal,
            refuseWrite: inputs.disk && (() => inputs.disk!.refusalNow()),
          },
          // `has` answers the intake's "can this ledger check it" from the registry, loading
          // nothing: a receipt on a model not registered here earns no credit here.
          models: {
            has: (cid) => models.has(cid),
            get: async (cid) => models.has(cid) ? await models.get(cid) : undefined,
            // The re-count of every receipt's prompt tokens reads a tokenizer, loads no session.
            promptCounting: (cid) => prompts.promptCounting(cid),
          },
          challengeProbability: config.validator.challengeProbability,
          validation: calibration && { calibration: calibration.lookup },
          // A lost worker's stream of a job that reads a stored input is replayed on its bytes.
          readInput: inputs.readInput,
          network: NODE_ACTORS.network,
          log,
          onActivity: activity && ((a) => activity.record(a)),
          // The training validator resumes its own interrupted challenges (addTrainingChildren).
          trainingProofsResumed: trainingValidates(config, training),
          stats,
          onLedger: inputs.onLedger,
        }),
    });
  }
  if (roles.inference) {
    // Outside the factory, as the validator's: totals that outlive the actor's restarts.
    const counters = emptyInferenceCounters();
    add<InferenceMessage>({
      name: NODE_ACTORS.inference,
      factory: () => {
        const prover = roles.prover ? lookup<ProverMessage>(NODE_ACTORS.prover) : undefined;
        const validator = roles.validator
          ? lookup<ValidatorMessage>(NODE_ACTORS.validator)
          : undefined;
        return new InferenceActor({
          models,
          concurrency: config.inference.concurrency,
          queueLimit: config.inference.queueLimit,
          prover: prover && proverHook(prover),
          // One receipt per job, across restarts: the ledger remembers every one this node signed.
          // Asked about this node's own: another key's receipt for the job (a requester, a router
          // or a failover's first worker knew the job first) must not make it refuse the job.
          receiptSigned: validator &&
            ((jobId) =>
              validator.ask<boolean>({ type: "job_recorded", jobId, worker: identity.publicKey })),
          counters,
        });
      },
    });
  }
  const names = addTrainingChildren(config, identity, models, lookup, log, training, add);
  const { network } = config;
  add<NetworkMessage>({
    name: NODE_ACTORS.network,
    factory: () =>
      new NetworkActor({
        identity,
        listen: network.listening ? network.listen : undefined,
        peers: network.peers.map(parsePeerAddress),
        services: {
          inference: localPort(),
          prover: roles.prover ? NODE_ACTORS.prover : undefined,
          validator: roles.validator ? NODE_ACTORS.validator : undefined,
          storage: roles.storage ? NODE_ACTORS.storage : undefined,
          ...names,
        },
        pledge,
        connection: connectionOptionsOf(network),
        describe: nodeHello({
          roles,
          inference: localPort,
          storage: () => roles.storage ? lookup<StorageMessage>(NODE_ACTORS.storage) : undefined,
          queueLimit: config.inference.queueLimit,
        }),
        peerChanges,
        swarm: network.swarm.enabled
          ? {
            bootstrap: network.swarm.bootstrap,
            bind: network.swarm.bind,
            socketDir: config.dataDir,
          }
          : undefined,
        log,
      }),
  });
  return children;
}
