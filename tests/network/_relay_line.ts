/**
 * The line V — R — W for a proof relayed through the job's requester (`dial_by_key_test.ts`,
 * `validator_down_test.ts`): V (a validator that challenges every receipt) and
 * W (the worker, serving its proofs) never meet; R, the requester, is connected to both. W's
 * honest receipt of R's job is proved, staked for, and (if `relayHoldsReceipt`) recorded in R's
 * ledger; it is not yet given to V.
 *
 * @module
 */
import type { Actor } from "../../actors/actor.ts";
import type { ActorRef } from "../../actors/actor_ref.ts";
import type { ActorSystem } from "../../actors/actor_system.ts";
import {
  type ReceiptHandled,
  ValidatorActor,
  type ValidatorMessage,
} from "../../actors/validator_actor.ts";
import type { ProverMessage } from "../../actors/prover_actor.ts";
import { NetworkActor, type NetworkMessage, type PeerInfo } from "../../network/network_actor.ts";
import type { Connection } from "../../protocols/connection.ts";
import { Identity } from "../../protocols/identity.ts";
import { toHex } from "../../protocols/hash.ts";
import { memoryDuplexPair } from "../../protocols/memory_duplex.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import { signAssignment } from "../../protocols/assignment.ts";
import { receiptId } from "../../protocols/receipt.ts";
import type { TextJob } from "../../protocols/job.ts";
import { proveJob } from "../../proof/prover.ts";
import { type ServedProof, signServedProof } from "../../proof/served_proof.ts";
import { loadFixture, manualStream } from "../proof/_models.ts";
import { eventually } from "../_helpers/wait.ts";
import type { ManualTimers } from "../protocols/_helpers.ts";

/** The worker's stake, in V's and R's ledgers. */
export const RELAY_STAKE = 10_000;

/** The worker's prover, reduced to the one question a challenge asks. */
class ServesProofs implements Actor<ProverMessage> {
  constructor(readonly proofs: Map<string, ServedProof>) {}
  receive(message: ProverMessage): ServedProof | undefined {
    return message.type === "get_proof" ? this.proofs.get(message.receiptId) : undefined;
  }
}

/** What {@link relayLine} builds the line with. */
export interface RelayLineOptions {
  /** V's proof deadline, ms. */
  deadlineMs: number;
  /**
   * R holds the receipt: the worker pledged in V's and R's ledgers and the receipt recorded in
   * R's. Else R's ledger has neither, and the worker's stake in V's is a deposit (V would send R
   * a pledge R turned out to need, not a deposit).
   */
  relayHoldsReceipt: boolean;
  /** R's connections' clock (`PeerServices.timers`; default their own). */
  timersR?: ManualTimers;
  /** The job's prompt and nonce. */
  prompt: string;
  nonce: string;
}

/** The line {@link relayLine} built. */
export interface RelayLine {
  vValidator: ActorRef<ValidatorMessage>;
  rValidator: ActorRef<ValidatorMessage>;
  /** R's side of the V — R connection. */
  atR: Connection;
  r: Identity;
  w: Identity;
  /** The receipt's id. */
  id: string;
  /** R's ledger's answer to the receipt (undefined unless `relayHoldsReceipt`). */
  inR: ReceiptHandled | undefined;
  /** Hand the receipt to V as `origin` (hex key) passed it on: V challenges it. */
  toV: (origin: string) => Promise<ReceiptHandled>;
  /** R's validator as it was spawned (its ledger reopened from disk). */
  restartR: () => Actor<ValidatorMessage>;
}

/** The line V — R — W in `system`, its ledgers under `dir`. */
export async function relayLine(
  system: ActorSystem,
  dir: string,
  options: RelayLineOptions,
): Promise<RelayLine> {
  const f = await loadFixture();
  const [v, r, w] = [Identity.generate(), Identity.generate(), Identity.generate()];
  const proofs = new Map<string, ServedProof>();
  const models = {
    get: (cid: string) => Promise.resolve(cid === f.honest.info.cid ? f.honest : undefined),
  };
  const validatorOf = (name: string, identity: Identity, challenge: boolean) => () =>
    new ValidatorActor({
      identity,
      ledgerDir: `${dir}/${name}`,
      models,
      challengeProbability: challenge ? 1 : 0,
      finalizeIntervalMs: 0,
      proofDeadlineMs: options.deadlineMs,
      network: `${name}/network`,
    });
  const vValidator = await system.spawn<ValidatorMessage>({
    name: "v/validator",
    factory: validatorOf("v", v, true),
  });
  const rValidator = await system.spawn<ValidatorMessage>({
    name: "r/validator",
    factory: validatorOf("r", r, false),
  });
  await system.spawn<ProverMessage>({ name: "w/prover", factory: () => new ServesProofs(proofs) });
  const net = (name: string, identity: Identity, services: Record<string, unknown>) =>
    system.spawn<NetworkMessage>({
      name: `${name}/network`,
      factory: () => new NetworkActor({ identity, services }),
    });
  const { timersR } = options;
  const [vNet, rNet, wNet] = await Promise.all([
    net("v", v, { validator: "v/validator" }),
    net(
      "r",
      r,
      timersR ? { validator: "r/validator", timers: timersR } : { validator: "r/validator" },
    ),
    net("w", w, { prover: "w/prover" }),
  ]);
  /** Join `a` (dialling) and `b`; resolves with b's side of the connection. */
  const join = async (a: typeof vNet, b: typeof vNet): Promise<Connection> => {
    const [da, db] = memoryDuplexPair();
    const [, atB] = await Promise.all([
      a.ask({ type: "attach", duplex: da, address: "mem", outbound: true }),
      b.ask<Connection>({ type: "attach", duplex: db, address: "mem", outbound: false }),
    ]);
    return atB;
  };
  const atR = await join(vNet, rNet);
  await join(rNet, wNet);
  await eventually(async () => {
    const peers = await vNet.ask<PeerInfo[]>({ type: "peers" });
    return peers.length === 1 ? true : undefined;
  }, "V to see only R");
  // The worker's job, as R requested it.
  const job: TextJob = {
    kind: "text",
    model: f.honest.info.cid,
    prompt: options.prompt,
    params: { maxTokens: 8, temperature: 0.7, topK: 0, topP: 1, seed: 5, stop: [] },
    nonce: options.nonce,
    requester: toHex(r.publicKey),
  };
  const ids = f.honest.tokenizer.encode(job.prompt);
  const proved = await proveJob(job, manualStream(() => f.honest, ids, job.params), w);
  const id = receiptId(proved.receipt);
  proofs.set(id, signServedProof(id, proved.proof, w));
  const assignment = signAssignment({ job, worker: w.publicKey, issuedAt: 1 }, r);
  // Without the worker's stake R's ledger refuses the receipt (even the copy V passes on).
  let inR: ReceiptHandled | undefined;
  if (options.relayHoldsReceipt) {
    for (const validator of [vValidator, rValidator]) {
      await validator.ask({ type: "pledge", pledge: signStakePledge(w, RELAY_STAKE, 1) });
    }
    inR = await rValidator.ask<ReceiptHandled>({
      type: "receipt",
      receipt: proved.receipt,
      job,
      assignment,
      origin: "local",
    });
  } else {
    await vValidator.ask({ type: "deposit", key: w.publicKey, amount: RELAY_STAKE });
  }
  return {
    vValidator,
    rValidator,
    atR,
    r,
    w,
    id,
    inR,
    toV: (origin) =>
      vValidator.ask<ReceiptHandled>({
        type: "receipt",
        receipt: proved.receipt,
        job,
        assignment,
        origin,
      }),
    restartR: validatorOf("r", r, false),
  };
}
