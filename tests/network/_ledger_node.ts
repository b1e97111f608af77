/**
 * Test fixture: a node as far as pledges and ledgers go — a ValidatorActor keeping its ledger
 * (challenging nothing unless told) and a NetworkActor with the node's pledge, spawned in a node's
 * start order (the validator first) — a join of two such nodes over an in-memory pair, and a
 * fault kept on disk before a node's start.
 *
 * @module
 */
import type { ActorSystem } from "../../actors/actor_system.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ChallengeEndings } from "../../actors/_challenge_endings.ts";
import { ValidatorActor, type ValidatorActorOptions } from "../../actors/validator_actor.ts";
import type { ValidatorMessage, ValidatorModelSource } from "../../actors/validator_messages.ts";
import { NetworkActor, type NetworkMessage } from "../../network/network_actor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { Identity } from "../../protocols/identity.ts";
import type { TextJob } from "../../protocols/job.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { type Receipt, receiptId } from "../../protocols/receipt.ts";
import type { StakePledge } from "../../protocols/stake_pledge.ts";
import { Ledger } from "../../proof/ledger.ts";
import type { Account } from "../../proof/ledger.ts";
import type { FraudProof } from "../../protocols/fraud_proof.ts";
import { validateReceipt } from "../../proof/validation.ts";
import {
  announceAssigned,
  f,
  type LedgerClock,
  proveOn,
  START,
  textJob,
  withheldVerdict,
} from "../actors/_validator_fixture.ts";

/** What each test key deposits. */
export const STAKE = 10_000;

/** The node's actors. */
export interface LedgerNode {
  validator: ActorRef<ValidatorMessage>;
  network: ActorRef<NetworkMessage>;
}

/** Spawn node `name` in `system`, its ledger under `dir/name`. */
export async function spawnLedgerNode(
  system: ActorSystem,
  dir: string,
  name: string,
  options: {
    identity: Identity;
    pledge?: StakePledge;
    models: ValidatorModelSource;
    /** The NetworkActor's clock (default its own). */
    now?: () => number;
    /** Where peers' training gossip goes (an actor path; default: the node offers no training). */
    trainingValidator?: string;
    /** The ledger's clock, ms, which the test moves (default its own). */
    clock?: { t: number };
    /** The validator's challenges: how many (default none) and where proof data comes from. */
    validator?: Pick<ValidatorActorOptions, "challengeProbability" | "source">;
  },
): Promise<LedgerNode> {
  const { identity, pledge, models, now, trainingValidator, clock } = options;
  const validator = await system.spawn<ValidatorMessage>({
    name: `${name}/validator`,
    factory: () =>
      new ValidatorActor({
        identity,
        ledgerDir: `${dir}/${name}`,
        models,
        challengeProbability: 0,
        finalizeIntervalMs: 0,
        network: `${name}/network`,
        ledger: clock === undefined ? undefined : { now: () => clock.t },
        ...options.validator,
      }),
  });
  const network = await system.spawn<NetworkMessage>({
    name: `${name}/network`,
    factory: () =>
      new NetworkActor({
        identity,
        pledge,
        now,
        services: { validator: `${name}/validator`, trainingValidator },
      }),
  });
  return { validator, network };
}

/** Join two nodes in memory (`x` dials); resolves with x's side of the connection. */
export async function joinLedgerNodes(x: LedgerNode, y: LedgerNode): Promise<Connection> {
  const [dx, dy] = memoryDuplexPair();
  const [connection] = await Promise.all([
    x.network.ask<Connection>({ type: "attach", duplex: dx, address: "mem", outbound: true }),
    y.network.ask<Connection>({ type: "attach", duplex: dy, address: "mem", outbound: false }),
  ]);
  return connection;
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
