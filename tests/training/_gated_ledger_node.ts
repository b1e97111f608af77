/**
 * A ledger and a training validator on one directory (the node's layout), on one test clock, whose
 * fraud-proof checks can be held at a known point: the set-up of the tests of what the training
 * validator keeps across a stop (`training_proof_intake_test.ts`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { NetworkMessage } from "../../network/network_actor.ts";
import type { Account, ReceiptRecord } from "../../proof/ledger.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { Identity } from "../../protocols/identity.ts";
import { signStakePledge } from "../../protocols/stake_pledge.ts";
import type { GptArchitecture } from "../../inference/model_builder.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { type RoundModel, RoundModels } from "../../training/round_models.ts";
import type { TrainingFraudProof } from "../../training/training_fraud_proof.ts";
import type {
  TrainingValidatorMessage,
  TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { RecordingNetwork } from "../_helpers/recording_network.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { recordLazyReceipt } from "./_loss_fraud.ts";
import { spawnTrainingLedger, TRAINING_VALIDATOR } from "./_training_ledger.ts";

/** Where the gossip comes from. */
export const PEER = "ee".repeat(32);

/** One held `get` of {@link GatedModels}: entered once it waits; opened or failed by the test. */
export interface Gate {
  entered: Promise<void>;
  open: () => void;
  fail: (error: Error) => void;
}

/**
 * Round models whose next `get`s (each a fraud proof's check loading its start model) wait, one
 * gate each in the order they were asked for, until the test opens (or fails) them: a check under
 * way, at a point the test knows.
 */
export class GatedModels extends RoundModels {
  readonly #gates: { entered: PromiseWithResolvers<void>; pass: PromiseWithResolvers<void> }[] = [];

  /** The next `get` not gated yet waits on the gate returned. */
  gate(): Gate {
    const entered = Promise.withResolvers<void>();
    const pass = Promise.withResolvers<void>();
    pass.promise.catch(() => {});
    this.#gates.push({ entered, pass });
    return {
      entered: entered.promise,
      open: () => pass.resolve(),
      fail: (error) => pass.reject(error),
    };
  }

  override async get(cid: string, arch: GptArchitecture, file?: string): Promise<RoundModel> {
    const gate = this.#gates.shift();
    gate?.entered.resolve();
    await gate?.pass.promise;
    return await super.get(cid, arch, file);
  }
}

/**
 * A ledger and training validator on `dir`, both on one test clock starting at `start`, a way to
 * stop and start the training validator alone, and the asks the tests make of them.
 */
export async function ledgerNode(dir: string, name: string, start = Date.now()) {
  const system = new ActorSystem({ name });
  let clock = start;
  const now = () => clock;
  const models = new GatedModels({ modelsDir: dir, storage: () => undefined });
  const model = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  await system.spawn<NetworkMessage>({
    name: "node/network",
    factory: () => new RecordingNetwork([]),
  });
  const { ledger, restartTraining } = await spawnTrainingLedger(system, {
    identity: Identity.generate(),
    dir,
    now,
    models,
    challenge: {
      challengeProbability: 0,
      network: "node/network",
      pledgeRecheckMs: 5,
      // A settlement the ledger did not answer is asked again soon.
      endRetryMs: 5,
      now,
    },
    resumeOwnProofs: true,
  });
  const training = () => system.lookup<TrainingValidatorMessage>(TRAINING_VALIDATOR)!;
  return {
    system,
    ledger,
    training,
    restartTraining,
    models,
    model,
    status: async (id: string) =>
      (await ledger.ask<ReceiptRecord | undefined>({ type: "receipt_status", receiptId: id }))
        ?.status,
    account: (key: Uint8Array) => ledger.ask<Account>({ type: "account", key }),
    pledge: async (key: Identity, amount: number) =>
      assert.equal(
        await ledger.ask({ type: "pledge", pledge: signStakePledge(key, amount, 1), origin: PEER }),
        true,
      ),
    send: (proof: TrainingFraudProof) =>
      training().ask<Record<string, unknown>>({
        type: "fraud_proof",
        body: { proof, arch: TEST_ARCH },
        origin: PEER,
      }),
    checked: async () => (await training().ask<TrainingValidatorStats>({ type: "stats" })).checked,
    /** The `.cbor` files of folder `folder` under the ledger's directory (none: []). */
    kept: (folder: string) =>
      Array.fromAsync(Deno.readDir(join(dir, "ledger", folder))).then(
        (es) => es.map((e) => e.name).filter((n) => n.endsWith(".cbor")),
        () => [] as string[],
      ),
    advance: (ms: number) => clock += ms,
    closeWindow: async () => {
      clock += DEFAULT_ECONOMICS.challengeWindowMs + 1;
      await ledger.ask({ type: "finalize" });
    },
    /** Record the receipt `proof` accuses (a lazy trainer's), as the coordinator does. */
    recordLazy: (proof: TrainingFraudProof) =>
      recordLazyReceipt(ledger, training(), proof, model.cid),
  };
}

/** A {@link ledgerNode}. */
export type LedgerNode = Awaited<ReturnType<typeof ledgerNode>>;

/**
 * Run `test` on a fresh {@link ledgerNode} `name` (its dir prefixed `veriflow-<name>-`, its clock
 * starting at `start`), shut down and removed after it.
 */
export async function onLedgerNode(
  name: string,
  test: (node: LedgerNode, dir: string) => Promise<void>,
  start?: number,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `veriflow-${name}-` });
  const node = await ledgerNode(dir, name, start);
  try {
    await test(node, dir);
  } finally {
    await node.system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}
