/**
 * What one `training.outcome` from a hostile peer can make a node do. Any `training/1` peer may
 * send one, and any staked key may sign one, so before this node builds or downloads anything
 * for it, the message must name an architecture a round can train (the genesis check builds a
 * model of the architecture the outcome names) and receipts their trainers signed (the audit
 * downloads the start model and every delta an outcome names), and a relaying peer has a bounded
 * number audited per window. (Unsigned outcomes are refused before all of this:
 * `signed_outcome_test.ts`.)
 */
import assert from "node:assert/strict";
import type { ActorRef } from "../../actors/actor_ref.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { cidOf } from "../../protocols/cid.ts";
import { toHex } from "../../protocols/hash.ts";
import { Identity } from "../../protocols/identity.ts";
import {
  ArchitectureSchema,
  MAX_REPORT_DELTA_BYTES,
  type OutcomeBody,
  OutcomeMessage,
  RoundMessage,
} from "../../protocols/training_messages.ts";
import { gptWeightShapes } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import {
  MAX_AUDITS_PER_PEER,
  PEER_AUDIT_WINDOW_MS,
  TrainingValidator,
  type TrainingValidatorMessage,
  type TrainingValidatorStats,
} from "../../training/training_validator.ts";
import { GPT_MODEL_SIZES } from "../../inference/model_builder.ts";
import { signOutcome } from "../../training/signed_outcome.ts";
import { eventually } from "../_helpers/wait.ts";
import { spawnStakesLedger } from "./_stakes_ledger.ts";
import { placeholderReceipt } from "./_placeholder_receipt.ts";
import { TEST_ARCH } from "./_fixtures.ts";
import { DEFAULT_LOCAL_HYPER_PARAMS } from "../../training/hyper_params.ts";

const parameters = (arch: Parameters<typeof gptWeightShapes>[0]) =>
  gptWeightShapes(arch).reduce((n, [, shape]) => n + shape.reduce((a, b) => a * b, 1), 0);

const file = (text: string) => cidOf(new TextEncoder().encode(text));

/** An outcome of round `round` from `startModel` naming `receipts`, each with a delta file. */
function outcomeOf(round: number, startModel: string, receipts: TrainingReceipt[]): OutcomeBody {
  return {
    round,
    startModel,
    startFile: file(`start ${startModel}`),
    model: file(`model ${round} ${startModel}`),
    file: file(`model file ${round} ${startModel}`),
    arch: TEST_ARCH,
    accepted: receipts.map((r) => toHex(r.trainer)),
    reports: receipts.map((receipt, i) => ({ receipt, deltaFile: file(`delta ${i}`) })),
    excluded: [],
  };
}

Deno.test("an architecture a round cannot train is refused at the wire: no outcome, round or proof makes a node build a model of billions of parameters", () => {
  // Every field within its own bound, together 52 billion parameters (208 GB of float32): the
  // genesis check of an outcome from an unknown start model built it.
  const huge = { numLayers: 64, hiddenSize: 8192, numHeads: 128, contextLength: 65_536 };
  assert.ok(parameters(huge) > 5e10);
  assert.equal(ArchitectureSchema.safeParse(huge).success, false);
  const outcome = { ...outcomeOf(1, file("start"), []), arch: huge };
  const parsed = OutcomeMessage.schema.safeParse(outcome);
  assert.equal(parsed.success, false);
  assert.ok(
    !parsed.success && parsed.error.issues.some((i) => i.path[0] === "arch"),
    "the architecture is named",
  );
  assert.equal(
    RoundMessage.schema.safeParse({
      round: 0,
      startModel: file("start"),
      startFile: file("start"),
      arch: huge,
      steps: 1,
      dataSeed: 1,
      hyper: { ...DEFAULT_LOCAL_HYPER_PARAMS },
      deadline: 1,
    }).success,
    false,
  );
  // The bound is what a round can carry: a report's delta is one byte a parameter, inline.
  const widest = { numLayers: 1, hiddenSize: 256, numHeads: 4, contextLength: 64 };
  const wider = { ...widest, numLayers: 2 };
  assert.ok(parameters(widest) <= MAX_REPORT_DELTA_BYTES);
  assert.ok(parameters(wider) > MAX_REPORT_DELTA_BYTES);
  assert.ok(ArchitectureSchema.safeParse(widest).success);
  assert.equal(ArchitectureSchema.safeParse(wider).success, false);
  // What the project trains still passes.
  for (const arch of [TEST_ARCH, GPT_MODEL_SIZES.tiny, GPT_MODEL_SIZES.brown]) {
    assert.ok(ArchitectureSchema.safeParse(arch).success, JSON.stringify(arch));
  }
});

Deno.test("an outcome naming receipts their trainers did not sign is refused before anything is downloaded for it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-outcome-forged-" });
  const system = new ActorSystem({ name: "outcome-forged" });
  try {
    const fetched: string[] = [];
    // Storage that records what the audit asks for: a forged outcome must cost no download.
    const storage = {
      ask(message: StorageMessage) {
        fetched.push(`${message.type} ${(message as { cid?: string }).cid}`);
        return Promise.reject(new Error("not here"));
      },
    } as unknown as ActorRef<StorageMessage>;
    const coordinator = Identity.generate();
    await spawnStakesLedger(system, [[coordinator.publicKey, 1_000_000]]);
    const validator = await system.spawn<TrainingValidatorMessage>({
      name: "node/training-validator",
      factory: () =>
        new TrainingValidator({
          identity: Identity.generate(),
          models: new RoundModels({ modelsDir: dir, storage: () => storage }),
          ledger: "node/validator",
        }),
    });
    const start = file("a start model nobody holds");
    // Fresh keys, each receipt re-signed by someone else: the shape is a receipt's, the
    // signature not its trainer's. 64 of them, each with a delta file of the peer's choosing.
    const forged = Array.from({ length: 64 }, () => {
      const receipt = placeholderReceipt(0, start);
      return { ...receipt, sig: placeholderReceipt(0, start).sig };
    });
    // Signed by a staked coordinator: the receipts are still checked.
    const outcome = signOutcome(outcomeOf(0, start, forged), coordinator);
    assert.ok(OutcomeMessage.schema.safeParse(outcome).success, "schema-valid");
    await validator.tell({ type: "outcome", body: outcome, origin: "peer" });
    const stats = await eventually(async () => {
      const s = await validator.ask<TrainingValidatorStats>({ type: "stats" });
      return s.refused.length === 1 || fetched.length > 0 ? s : undefined;
    }, "the outcome audited or a download asked");
    assert.deepEqual(stats.refused.map((r) => r.reason), ["receipt_invalid"]);
    assert.deepEqual(fetched, [], "nothing fetched for a forged outcome");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a peer's outcomes are audited a bounded number per window: fresh model CIDs do not buy it more audits, another peer still gets its own, and the window refills", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-outcome-peer-budget-" });
  const system = new ActorSystem({ name: "outcome-peer-budget" });
  const clock = { t: 1_000_000 };
  try {
    // Each outcome signed by another staked key (stake is self-pledged: a peer may hold many),
    // so the coordinator's own bound never applies and the relay's does.
    const coordinators = Array.from({ length: MAX_AUDITS_PER_PEER + 8 }, () => Identity.generate());
    await spawnStakesLedger(system, coordinators.map((c) => [c.publicKey, 1_000_000]));
    const validator = await system.spawn<TrainingValidatorMessage>({
      name: "node/training-validator",
      factory: () =>
        new TrainingValidator({
          identity: Identity.generate(),
          models: new RoundModels({ modelsDir: dir, storage: () => undefined }),
          ledger: "node/validator",
          now: () => clock.t,
        }),
    });
    // Each outcome names another start model, so another model CID: the per-model bound never
    // applies. Each is refused (forged receipts) without a download, so an audit shows as one
    // entry in `refused`.
    let n = 0;
    const send = async (origin: string) => {
      const start = file(`start ${n}`);
      const forged = placeholderReceipt(0, start);
      const receipt = { ...forged, sig: placeholderReceipt(0, start).sig };
      const body = signOutcome(outcomeOf(0, start, [receipt]), coordinators[n++]);
      await validator.tell({ type: "outcome", body, origin });
    };
    const audited = async () =>
      (await validator.ask<TrainingValidatorStats>({ type: "stats" })).refused.length;
    for (let i = 0; i < MAX_AUDITS_PER_PEER + 4; i++) await send("flooder");
    await eventually(async () => (await audited()) >= MAX_AUDITS_PER_PEER, "the audits");
    assert.equal(await audited(), MAX_AUDITS_PER_PEER, "the flooder's excess is not audited");
    await send("honest");
    await eventually(async () => (await audited()) === MAX_AUDITS_PER_PEER + 1, "another peer's");
    clock.t += PEER_AUDIT_WINDOW_MS;
    await send("flooder");
    await eventually(
      async () => (await audited()) === MAX_AUDITS_PER_PEER + 2,
      "the flooder's, in a new window",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
