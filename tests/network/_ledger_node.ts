/**
 * Test fixture: a node as far as pledges and ledgers go — a ValidatorActor keeping its ledger
 * (challenging nothing unless told) and a NetworkActor with the node's pledge, spawned in a node's
 * start order (the validator first) — a join of two such nodes over an in-memory pair, and a
 * fault kept on disk before a node's start. Also the settings the tests of several nodes share: a
 * node with only its network over a stand-in ledger, pledged nodes, a validator V with a late peer
 * L that catches up with it, a forwarding node and a peer with a worker staked in both, a cheat
 * caught in every ledger, a worker that withholds (or serves)
 * its proof data, and a ledger directory copied as a new process reads it; a fresh key's node
 * pledged 5,000 on models all held, and an honest worker's receipt handed to a node's validator.
 *
 * @module
 */
import type { Actor } from "../../actors/actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ChallengeEndings } from "../../actors/_challenge_endings.ts";
import {
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorActorOptions,
} from "../../actors/validator_actor.ts";
import type {
  ChallengeSource,
  ValidatorMessage,
  ValidatorModelSource,
} from "../../actors/validator_messages.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import {
  Connection,
  type ConnectionOptions,
  type ConnectionTimers,
} from "../../protocols/connection.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { VALIDATION_PROTOCOL } from "../../protocols/inference_messages.ts";
import { inputHashOf, type Receipt, receiptId } from "../../protocols/receipt.ts";
import { signStakePledge, type StakePledge } from "../../protocols/stake_pledge.ts";
import { Ledger } from "../../proof/ledger.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { eventually } from "../_helpers/wait.ts";
import { toHex } from "../../protocols/hash.ts";
import { assigned, job, receipt, requester, resigned } from "../proof/_ledger_fixtures.ts";
import { stoppedValidator } from "./_validator_down.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import { signServedProof } from "../../proof/served_proof.ts";
import type { ProofData } from "../../proof/commitment.ts";
import {
  announceAssigned,
  f,
  HONEST_MODELS,
  type LedgerClock,
  type LedgerReads,
  ledgerReads,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "../actors/_validator_fixture.ts";
export { copyDir } from "../_helpers/copy_dir.ts";

/** What each test key deposits. */
export const STAKE = 10_000;

/** The node's actors. */
export interface LedgerNode {
  validator: ActorRef<ValidatorMessage>;
  network: ActorRef<NetworkMessage>;
}

/** What a node's ValidatorActor is built with (see {@link spawnLedgerNode}). */
export interface LedgerNodeValidatorOptions {
  identity: Identity;
  models: ValidatorModelSource;
  /** The ledger's clock, ms, which the test moves (default its own). */
  clock?: { t: number };
  /** The validator's challenges: how many (default none) and where proof data comes from. */
  validator?: Pick<ValidatorActorOptions, "challengeProbability" | "source">;
}

/**
 * Node `name`'s ValidatorActor on its ledger under `dir/name`, as {@link spawnLedgerNode} builds
 * it: for a test that starts it again after a stop or a crash.
 */
export function ledgerNodeValidator(
  dir: string,
  name: string,
  options: LedgerNodeValidatorOptions,
): ValidatorActor {
  const { identity, models, clock } = options;
  return new ValidatorActor({
    identity,
    ledgerDir: `${dir}/${name}`,
    models,
    challengeProbability: 0,
    finalizeIntervalMs: 0,
    network: `${name}/network`,
    ledger: clock === undefined ? undefined : { now: () => clock.t },
    // A test clock starts in 1970: real receipts are decades "ahead" of it (`receipt_from_future`).
    ...(clock === undefined ? {} : { maxReceiptLeadMs: Number.POSITIVE_INFINITY }),
    ...options.validator,
  });
}

/** How {@link spawnLedgerNode} builds a node: its validator's options, then its network's. */
export interface LedgerNodeOptions extends LedgerNodeValidatorOptions {
  pledge?: StakePledge;
  /** The NetworkActor's clock (default its own). */
  now?: () => number;
  /** Where peers' training gossip goes (an actor path; default: the node offers no training). */
  trainingValidator?: string;
  /** Options of the node's peer connections (default the NetworkActor's). */
  connection?: ConnectionOptions;
  /** Where the NetworkActor logs (default nowhere). */
  log?: (line: string) => void;
  /** The clock the node's peer handlers wait on (`PeerServices.timers`; default the connections'). */
  peerTimers?: ConnectionTimers;
  /** What is spawned in place of the validator, given the real one (default: the real one). */
  wrap?: (validator: ValidatorActor) => Actor<ValidatorMessage>;
}

/** Spawn node `name` in `system`, its ledger under `dir/name`. */
export async function spawnLedgerNode(
  system: ActorSystem,
  dir: string,
  name: string,
  options: LedgerNodeOptions,
): Promise<LedgerNode> {
  const { identity, pledge, now, trainingValidator, connection, log, peerTimers, wrap } = options;
  const validator = await system.spawn<ValidatorMessage>({
    name: `${name}/validator`,
    factory: () => {
      const real = ledgerNodeValidator(dir, name, options);
      return wrap === undefined ? real : wrap(real);
    },
  });
  const network = await system.spawn<NetworkMessage>({
    name: `${name}/network`,
    factory: () =>
      new NetworkActor({
        identity,
        pledge,
        now,
        connection,
        log,
        services: {
          validator: `${name}/validator`,
          trainingValidator,
          ...(peerTimers === undefined ? {} : { timers: peerTimers }),
        },
      }),
  });
  return { validator, network };
}

/**
 * Spawn node `name` with its key's pledge of {@link STAKE}, the honest models, and its network
 * and ledger both on `clock`.
 */
export function spawnPledgedNode(
  system: ActorSystem,
  dir: string,
  name: string,
  identity: Identity,
  clock: { t: number },
): Promise<LedgerNode> {
  return spawnLedgerNode(system, dir, name, {
    identity,
    pledge: signStakePledge(identity, STAKE, 1),
    models: HONEST_MODELS,
    now: () => clock.t,
    clock,
  });
}

/**
 * Spawn node `name` as far as its NetworkActor goes: the actor `ledger` makes, a stand-in for its
 * validator (one that notes what the network hands it), then the network, on `now` (default its
 * own clock).
 */
export async function spawnNetworkNode(
  system: ActorSystem,
  name: string,
  identity: Identity,
  ledger: () => Actor<ValidatorMessage>,
  now?: () => number,
): Promise<LedgerNode> {
  const validator = await system.spawn<ValidatorMessage>({
    name: `${name}/validator`,
    factory: ledger,
  });
  const network = await system.spawn<NetworkMessage>({
    name: `${name}/network`,
    factory: () =>
      new NetworkActor({ identity, now, services: { validator: `${name}/validator` } }),
  });
  return { validator, network };
}

/** What a test of two or more nodes runs on: a temp dir, a ledger clock and an actor system. */
export interface LedgerSetting {
  dir: string;
  clock: LedgerClock;
  system: ActorSystem;
}

/**
 * Spawn node `name` under key `identity` in `on` (`setting`'s system or another process's), on the
 * honest models, its ledger under `setting`'s dir and its ledger and network both on `setting`'s
 * clock; `more`: its peer handlers' clock and its NetworkActor's log (default theirs, nowhere).
 */
export function spawnSettingNode(
  { dir, clock }: LedgerSetting,
  on: ActorSystem,
  name: string,
  identity: Identity,
  more: Pick<LedgerNodeOptions, "peerTimers" | "log"> = {},
): Promise<LedgerNode> {
  return spawnLedgerNode(on, dir, name, {
    identity,
    models: HONEST_MODELS,
    clock,
    now: () => clock.t,
    ...more,
  });
}

/**
 * Spawn node `a` (the node that forwards a job to `worker`) and node `c` (a peer that hears of the
 * job's receipt only through A) in `setting`, under keys `keys.a` and `keys.c`, on the honest
 * models and the setting's clock, `worker` staked `stake` in both ledgers. They are not joined.
 */
export async function spawnNodesStakingWorker(
  setting: LedgerSetting,
  keys: { a: Identity; c: Identity },
  worker: Identity,
  stake: number,
): Promise<{ nodeA: LedgerNode; nodeC: LedgerNode }> {
  const { system, dir, clock } = setting;
  const nodeA = await spawnLedgerNode(system, dir, "a", {
    identity: keys.a,
    models: HONEST_MODELS,
    clock,
  });
  const nodeC = await spawnLedgerNode(system, dir, "c", {
    identity: keys.c,
    models: HONEST_MODELS,
    clock,
  });
  for (const node of [nodeA, nodeC]) {
    await node.validator.ask({ type: "deposit", key: worker.publicKey, amount: stake });
  }
  return { nodeA, nodeC };
}

/**
 * Run `test` in a fresh {@link LedgerSetting} (system `name`, the clock at `START`), shut down and
 * removed after it.
 */
export async function inLedgerSetting(
  name: string,
  test: (setting: LedgerSetting) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  const clock = { t: START };
  const system = new ActorSystem({ name });
  try {
    await test({ dir, clock, system });
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

/**
 * A worker that serves whoever asks its proof data `proof` of receipt `id` (signed by `worker`),
 * and nothing for any other receipt (a validator's challenge source).
 */
export function servesProof(
  id: string,
  proof: ProofData,
  worker: Identity,
): ChallengeSource {
  return {
    proof: (r) =>
      Promise.resolve(
        receiptId(r) === id ? signServedProof(id, proof, worker) : undefined,
      ),
  };
}

/** A worker that withholds its proof data from whoever asks (a validator's challenge source). */
export const withholds: ChallengeSource = { proof: () => Promise.resolve(undefined) };

/**
 * The validator V (key `v`: it challenges every receipt, and the worker withholds from it) and a
 * late peer L (a fresh key: it challenges none of its own; `source` is how the worker answers it,
 * by default it withholds), with `stake` deposited in both ledgers for each of `staked` in order;
 * not connected.
 */
export async function spawnValidatorAndLatePeer(
  { dir, clock, system }: LedgerSetting,
  v: Identity,
  options: { staked: readonly Identity[]; stake: number; source?: ChallengeSource },
): Promise<{ nodeV: LedgerNode; nodeL: LedgerNode }> {
  const nodeV = await spawnLedgerNode(system, dir, "v", {
    identity: v,
    models: HONEST_MODELS,
    clock,
    validator: { challengeProbability: 1, source: withholds },
  });
  const nodeL = await spawnLedgerNode(system, dir, "l", {
    identity: Identity.generate(),
    models: HONEST_MODELS,
    clock,
    validator: { challengeProbability: 0, source: options.source ?? withholds },
  });
  for (const node of [nodeV, nodeL]) {
    for (const key of options.staked) {
      await node.validator.ask({ type: "deposit", key: key.publicKey, amount: options.stake });
    }
  }
  return { nodeV, nodeL };
}

/** What the late peer L holds after {@link latePeerCatchesUp}. */
export interface LatePeerCaughtUp {
  /** L's ledger. */
  readsL: LedgerReads;
  /** The receipt's record in L before its window closed (undefined: L never recorded it). */
  record: ReceiptRecord | undefined;
  /** The worker's account in L before the window closed. */
  before: Account;
}

/**
 * The late peer L joins V and is given V's catch-up; once L recorded V's claim about receipt `id`
 * (or the shared give-up time went by without it: the ledger tells the rest) and its challenges
 * ended, the receipt's record and `worker`'s account there are read, and L's challenge window
 * closes. Every caller expects the claim: the wait is not bounded shorter than the shared limit,
 * so a loaded machine delays a passing run, never fails it.
 */
export async function latePeerCatchesUp(
  nodeL: LedgerNode,
  nodeV: LedgerNode,
  clock: LedgerClock,
  id: string,
  worker: Identity,
): Promise<LatePeerCaughtUp> {
  await joinLedgerNodes(nodeL, nodeV);
  const readsL = ledgerReads(() => nodeL.validator, clock);
  await eventually(
    async () => (await readsL.stats()).peerVerdicts >= 1,
    "L to record V's claim from its catch-up",
  ).catch(() => {});
  await readsL.drained();
  const before = await readsL.account(worker.publicKey);
  const record = await readsL.record(id);
  await readsL.closeWindow();
  return { readsL, record, before };
}

/** Join two nodes in memory (`x` dials); resolves with x's side of the connection. */
export async function joinLedgerNodes(x: LedgerNode, y: LedgerNode): Promise<Connection> {
  const [connection] = await joinLedgerNodeEnds(x, y);
  return connection;
}

/**
 * Join two nodes in memory (`x` dials), as {@link joinLedgerNodes}; resolves with both ends of
 * the connection: x's (to y), then y's (to x).
 */
export function joinLedgerNodeEnds(
  x: LedgerNode,
  y: LedgerNode,
): Promise<[Connection, Connection]> {
  const [dx, dy] = memoryDuplexPair();
  return Promise.all([
    x.network.ask<Connection>({ type: "attach", duplex: dx, address: "mem", outbound: true }),
    y.network.ask<Connection>({ type: "attach", duplex: dy, address: "mem", outbound: false }),
  ]);
}

/**
 * A bare peer with key `identity` (a fresh one by default) speaking the validation protocol,
 * connected in memory to `to` (which accepts): a pledger or a flooder with no node behind it.
 */
export async function attachValidationPeer(
  to: LedgerNode,
  identity: Identity = Identity.generate(),
): Promise<Connection> {
  const [dx, dy] = memoryDuplexPair();
  const open = Connection.open(dx, { identity, protocols: [VALIDATION_PROTOCOL] });
  await to.network.ask<Connection>({ type: "attach", duplex: dy, address: "mem", outbound: false });
  return await open;
}

/** `key`'s stake in `node`'s ledger. */
export async function stakeIn(node: LedgerNode, key: Identity): Promise<number> {
  return (await node.validator.ask<Account>({ type: "account", key: key.publicKey })).stake;
}

/** A cheat's receipt recorded in every node's ledger, and the accuser's proof of it. */
export interface CaughtCheat {
  job: TextJob;
  proved: Awaited<ReturnType<typeof proveOn>>;
  /** The receipt's id. */
  id: string;
  fraudProof: FraudProof;
}

/**
 * `worker` cheats on `requester`'s job named `tag` (its tokens come from another model than the
 * one it names), its receipt recorded in each of `nodes`' ledgers (after `deposit` of each of
 * `staked` there, if given), and `accuser`'s fraud proof of it, made as at `START`.
 */
export async function caughtCheat(
  nodes: readonly LedgerNode[],
  parties: { worker: Identity; requester: Identity; accuser: Identity; tag: string },
  staked: readonly Identity[] = [],
  deposit = 0,
): Promise<CaughtCheat> {
  const { worker, requester, accuser, tag } = parties;
  const job = textJob(requester, tag);
  const proved = await proveOn(job, worker, f.otherSeed);
  for (const node of nodes) {
    for (const key of staked) {
      await node.validator.ask({ type: "deposit", key: key.publicKey, amount: deposit });
    }
    const { recorded } = await announceAssigned(node.validator, proved.receipt, job, requester);
    if (!recorded) throw new Error(`the cheat's receipt was not recorded`);
  }
  const { fraudProof } = await validateReceipt(
    { job, receipt: proved.receipt, proof: proved.proof },
    f.honest,
    accuser,
    { now: () => START },
  );
  if (fraudProof === undefined) throw new Error("the cheat was not caught");
  return { job, proved, id: receiptId(proved.receipt), fraudProof };
}

/** A fresh worker's receipt, the job it ran and who asked for it. */
export interface KeptWork {
  receipt: Receipt;
  job: TextJob;
  requester: Identity;
  worker: Identity;
  id: string;
}

/**
 * A validator's (`me`) fault kept on disk in `ledgerDir` before a stop, the worker having
 * withheld its proof data: the challenge is open in the ledger, which does not have the verdict
 * yet; a start applies it (and passes its verdict on).
 */
export async function keptFault(
  ledgerDir: string,
  me: Identity,
  clock: LedgerClock,
): Promise<KeptWork> {
  const [worker, requester] = [Identity.generate(), Identity.generate()];
  const job = textJob(requester, crypto.randomUUID());
  const { receipt } = await proveOn(job, worker);
  const id = receiptId(receipt);
  const ledger = await Ledger.open(ledgerDir, me, { now: () => clock.t });
  await ledger.deposit(worker.publicKey, STAKE);
  await ledger.recordReceipt(receipt, {
    assignment: signAssignment({ job, worker: worker.publicKey, issuedAt: 0 }, requester),
  });
  await ledger.openChallenge(id);
  await ledger.close();
  const verdict = withheldVerdict(id, worker.publicKey, clock.t, me);
  await ChallengeEndings.in(ledgerDir).keep(id, {
    end: "fault",
    reason: "proof_unavailable",
    verdict,
  });
  return { receipt, job, requester, worker, id };
}

/**
 * Joins `c` to `a` while `a`'s validator (`a/validator` in `system`) is stopped, then starts it
 * again (as {@link ledgerNodeValidator} of `dir` and `a`, with `options`): what A's peer gets once
 * its validator is back (review s65). Resolves with A as it is now, its new validator's ref.
 */
export async function joinWhileValidatorDown(
  system: ActorSystem,
  dir: string,
  c: LedgerNode,
  a: LedgerNode,
  options: LedgerNodeValidatorOptions,
): Promise<LedgerNode> {
  const { back } = await stoppedValidator<ValidatorMessage>(
    system,
    "a/validator",
    () => ledgerNodeValidator(dir, "a", options),
  );
  await joinLedgerNodes(c, a);
  await back();
  return { validator: system.lookup<ValidatorMessage>("a/validator")!, network: a.network };
}

/**
 * Every model counts as held, so assigned receipts are credited (a ledger credits only what it
 * can check); none is ever loaded: for nodes that challenge nothing.
 */
export const HELD_MODELS: ValidatorModelSource = {
  has: () => true,
  get: () => Promise.resolve(undefined),
};

/** A node of {@link spawnFreshPledgedNode}: its key, its pledge and its actors. */
export interface FreshPledgedNode extends LedgerNode {
  identity: Identity;
  pledge: StakePledge;
}

/**
 * Spawn node `name` under a fresh key that pledges 5,000, on {@link HELD_MODELS}, its
 * NetworkActor on `now` (default its own clock).
 */
export async function spawnFreshPledgedNode(
  system: ActorSystem,
  dir: string,
  name: string,
  now?: () => number,
): Promise<FreshPledgedNode> {
  const identity = Identity.generate();
  const pledge = signStakePledge(identity, 5_000, 1);
  const actors = await spawnLedgerNode(system, dir, name, {
    identity,
    pledge,
    models: HELD_MODELS,
    now,
  });
  return { identity, pledge, ...actors };
}

/**
 * Worker `by`'s receipt for fixture job `n` (`_ledger_fixtures.ts`), committing to the job's own
 * input, signed now (the validators' ledgers run on the real clock, and refuse a receipt first
 * seen long after).
 */
export function honestReceipt(n: number, by: Identity): Receipt {
  return resigned(receipt(n, 8, by), {
    inputHash: inputHashOf(job(n)),
    timings: { startedAt: Date.now(), firstTokenMs: 1, totalMs: 2 },
  }, by);
}

/**
 * Hand `node`'s validator `r`, a receipt for fixture job `n`, as from the job's requester: with
 * its assignment, unless `assignment` is false. What the validator answered.
 */
export function handReceipt(
  node: LedgerNode,
  r: Receipt,
  n: number,
  assignment = true,
): Promise<ReceiptHandled> {
  return node.validator.ask<ReceiptHandled>({
    type: "receipt",
    receipt: r,
    job: job(n),
    ...(assignment ? assigned(r) : {}),
    origin: toHex(requester.publicKey),
  } as ValidatorMessage);
}
