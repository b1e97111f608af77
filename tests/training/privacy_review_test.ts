/**
 * "Data stays home": a trainer's samples leave it only sealed to a challenger that is owed an
 * opening, and refusing one that is not owed never costs the trainer its stake.
 *
 * Before this review any key could sign a challenge naming itself as validator, for any receipt
 * gossip had shown it, and the trainer sealed 9 steps' batches to it: a stakeless key that no
 * coin drew and no round knows read a trainer's private samples, and each fresh key read 9 ×
 * batchSize more. And a challenge the trainer rightly refuses (more steps than a challenge draws)
 * made an `opening_missing` proof every checker confirmed: the honest trainer slashed for refusing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import type { StorageMessage } from "../../actors/storage_actor_messages.ts";
import { StorageActorPeer, storageGateway } from "../../actors/storage_actor_peer.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { keepShardPrivate } from "../../training/private_shard.ts";
import { Identity } from "../../protocols/identity.ts";
import { decodeCbor } from "../../protocols/cbor.ts";
import { toHex } from "../../protocols/hash.ts";
import { DEFAULT_ECONOMICS } from "../../proof/economics.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { RoundModels } from "../../training/round_models.ts";
import {
  type ChallengeAccepted,
  type RoundAccepted,
  type TrainerMessage,
  TrainerService,
  type TrainerServiceOptions,
} from "../../training/trainer_service.ts";
import { trainAndSign } from "../../training/training_round.ts";
import {
  drawTrainingChallenge,
  TRAINING_CHALLENGE_STEPS,
  type TrainingChallenge,
  trainingChallengeId,
} from "../../training/training_challenge.ts";
import {
  type SealedStepOpenings,
  type StepOpenings,
  unsealStepOpenings,
} from "../../training/step_opening.ts";
import { sampleAt } from "../../training/brown_corpus.ts";
import {
  checkTrainingFraudProof,
  signTrainingFraudProof,
  TRAINING_FRAUD_PROOF_VERSION,
} from "../../training/training_fraud_proof.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import { TEST_ARCH, TEST_HYPER, testRoundBody, testSplit } from "./_fixtures.ts";

/** Local steps of the rounds here: enough for a challenge of 9 steps, a few seconds at most. */
const H = 10;

/** A trainer (honest `trainAndSign`, in place) that has trained one round for `coordinator`. */
async function trainedTrainer(
  system: ActorSystem,
  dir: string,
  coordinator: Identity,
  options: Partial<TrainerServiceOptions> = {},
) {
  const split = await testSplit();
  const shard = split.shards[0];
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const identity = Identity.generate();
  const ref = await system.spawn<TrainerMessage>({
    name: "node/trainer",
    factory: () =>
      new TrainerService({
        identity,
        shard,
        models,
        train: trainAndSign,
        sampleBytes: TEST_HYPER.sampleBytes,
        ...options,
      }),
  });
  const body = testRoundBody(seed.cid, H);
  const accepted = await ref.ask<RoundAccepted>({
    type: "round",
    body,
    coordinator: toHex(coordinator.publicKey),
  });
  const { receipt } = await accepted.report;
  return { ref, receipt, shard };
}

/**
 * Ask the trainer for `challenge` as the peer `from`, as `peer_services.ts` does, fetch the
 * sealed answer part by part and open it with `challenger`'s key: the plaintext it was sent, or
 * the refusal's code.
 */
async function challengeAs(
  ref: Awaited<ReturnType<typeof trainedTrainer>>["ref"],
  challenge: TrainingChallenge,
  challenger: Identity,
  receipt: TrainingReceipt,
): Promise<{ openings: StepOpenings } | { refused: string }> {
  const accepted = await ref.ask<ChallengeAccepted>({
    type: "challenge",
    challenge,
    from: challenger.publicKey,
  });
  let header;
  try {
    header = await accepted.openings;
  } catch (error) {
    return { refused: (error as { code: string }).code };
  }
  const challengeId = trainingChallengeId(challenge);
  const bytes = new Uint8Array(header.size);
  let at = 0;
  for (let index = 0; index < header.parts; index++) {
    const part = await ref.ask<Uint8Array>({ type: "part", challengeId, index });
    bytes.set(part, at);
    at += part.length;
  }
  const sealed = decodeCbor(bytes) as SealedStepOpenings;
  const opened = unsealStepOpenings(sealed, challenge, receipt, challenger);
  assert.ok(opened.ok, "the answer opens with the challenger's own key");
  return { openings: decodeCbor(opened.plaintext) as StepOpenings };
}

Deno.test("a key that is not owed an opening — no stake, no round, no coin — is refused: it never reads a trainer's samples, however many keys it makes", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-privacy-" });
  const system = new ActorSystem({ name: "privacy-sybil" });
  try {
    const coordinator = Identity.generate();
    const { ref, receipt, shard } = await trainedTrainer(system, dir, coordinator);
    // The receipt is public (gossiped, in outcomes); any peer can name it.
    let leaked = 0;
    for (let i = 0; i < 3; i++) {
      const sybil = Identity.generate();
      const challenge = drawTrainingChallenge(receipt, sybil);
      const answer = await challengeAs(ref, challenge, sybil, receipt);
      if ("openings" in answer) {
        for (const step of answer.openings.steps) {
          for (const sample of step.samples) {
            const held = sampleAt(shard, TEST_HYPER.sampleBytes, sample.index).bytes;
            assert.deepEqual(sample.bytes, held, "the trainer's own private sample");
            leaked++;
          }
        }
      }
    }
    assert.equal(
      leaked,
      0,
      `3 fresh keys read ${leaked} private samples (${TRAINING_CHALLENGE_STEPS} steps × ` +
        `${TEST_HYPER.batchSize} a key, and no limit on keys)`,
    );
    // The round's coordinator is owed its answer (with no ledger here to ask), and gets the
    // challenged steps' batches, sealed to it: the proof of work still works.
    const owed = drawTrainingChallenge(receipt, coordinator);
    const answer = await challengeAs(ref, owed, coordinator, receipt);
    assert.ok("openings" in answer, "the coordinator is answered");
    assert.deepEqual(answer.openings.steps.map((s) => s.step), owed.steps);
    assert.equal(answer.openings.steps[0].samples.length, TEST_HYPER.batchSize);
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("with a ledger, a challenger with a fraud proof's stake there is answered, one without it is not, and the ledger is asked per challenger", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-privacy-" });
  const system = new ActorSystem({ name: "privacy-staked" });
  try {
    const staked = Identity.generate();
    const under = Identity.generate();
    const stakes = new Map([
      [toHex(staked.publicKey), DEFAULT_ECONOMICS.falseAccusationPenalty],
      [toHex(under.publicKey), DEFAULT_ECONOMICS.falseAccusationPenalty - 1],
    ]);
    const asked: string[] = [];
    const stakeOf = (key: Uint8Array) => {
      asked.push(toHex(key));
      return Promise.resolve(stakes.get(toHex(key)) ?? 0);
    };
    const { ref, receipt } = await trainedTrainer(system, dir, Identity.generate(), { stakeOf });
    const below = await challengeAs(ref, drawTrainingChallenge(receipt, under), under, receipt);
    assert.deepEqual(below, { refused: "challenge_mismatch" }, "less stake than an accuser's");
    const fresh = Identity.generate();
    assert.deepEqual(
      await challengeAs(ref, drawTrainingChallenge(receipt, fresh), fresh, receipt),
      { refused: "challenge_mismatch" },
    );
    const answer = await challengeAs(ref, drawTrainingChallenge(receipt, staked), staked, receipt);
    assert.ok("openings" in answer, "a staked validator is answered");
    assert.deepEqual(asked, [under, fresh, staked].map((k) => toHex(k.publicKey)));
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s64: the bar is the penalty of the ledger the trainer asks: a challenger staked past the default penalty but short of that ledger's larger one is not answered, one with it is", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-privacy-" });
  const system = new ActorSystem({ name: "privacy-economics" });
  try {
    const penalty = DEFAULT_ECONOMICS.falseAccusationPenalty * 5;
    const between = Identity.generate();
    const staked = Identity.generate();
    const stakes = new Map([
      [toHex(between.publicKey), (DEFAULT_ECONOMICS.falseAccusationPenalty + penalty) / 2],
      [toHex(staked.publicKey), penalty],
    ]);
    const stakeOf = (key: Uint8Array) => Promise.resolve(stakes.get(toHex(key)) ?? 0);
    const { ref, receipt } = await trainedTrainer(system, dir, Identity.generate(), {
      stakeOf,
      economics: { falseAccusationPenalty: penalty },
    });
    // Before: answered (the default penalty was the bar whatever the ledger's).
    const below = await challengeAs(ref, drawTrainingChallenge(receipt, between), between, receipt);
    // Compared as a word: a diff of an answer's openings is too large to print.
    const refusal = "refused" in below ? below.refused : "answered";
    assert.equal(refusal, "challenge_mismatch", "less stake than that ledger asks");
    const answer = await challengeAs(ref, drawTrainingChallenge(receipt, staked), staked, receipt);
    assert.ok("openings" in answer, "a validator with that ledger's penalty is answered");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a challenge the trainer refuses for naming more steps than a challenge draws cannot convict it: its opening_missing proof is refuted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-privacy-" });
  const system = new ActorSystem({ name: "privacy-greedy" });
  try {
    const coordinator = Identity.generate();
    const { ref, receipt } = await trainedTrainer(system, dir, coordinator);
    // The coordinator (whom the trainer owes an answer) asks for every step of the run.
    const issuedAt = Date.now();
    const greedy = drawTrainingChallenge(receipt, coordinator, {
      steps: H,
      now: () => issuedAt,
    });
    assert.ok(greedy.steps.length > TRAINING_CHALLENGE_STEPS);
    const answer = await challengeAs(ref, greedy, coordinator, receipt);
    assert.deepEqual(answer, { refused: "challenge_mismatch" }, "the trainer refuses it");
    // Past the deadline, it claims the opening is missing.
    const proof = signTrainingFraudProof({
      v: TRAINING_FRAUD_PROOF_VERSION,
      reason: "opening_missing",
      receipt,
      challenge: greedy,
      issuedAt: greedy.deadline + 1,
    }, coordinator);
    const check = await checkTrainingFraudProof(proof, {
      arch: TEST_ARCH,
      startWeights: seededGptWeights(TEST_ARCH, 0),
    });
    assert.equal(check.confirmed, false, "refusing to open more than a challenge draws is owed");
    assert.equal(check.reason, "challenge_mismatch");
  } finally {
    await system.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A shard kept private, on a node whose StorageActor also serves peers and the HTTP gateway. */
async function keptShard(system: ActorSystem, dataDir: string) {
  const ownerKey = await OwnerKey.fromSecret(new Uint8Array(32).fill(9));
  const storage = await system.spawn<StorageMessage>({
    name: "node/storage",
    factory: () => new StorageActor({ dir: join(dataDir, "store"), chunkSize: 1024, ownerKey }),
  });
  const split = await testSplit();
  const kept = await keepShardPrivate(storage, dataDir, {
    shard: split.shards[0],
    deal: { shard: 0, shards: 2, corpusDocs: 40 },
  });
  return { storage, kept };
}

Deno.test("a peer cannot read, find or challenge a trainer's local-only shard over the storage protocol", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "veriflow-privacy-" });
  const system = new ActorSystem({ name: "privacy-storage" });
  try {
    const { storage, kept } = await keptShard(system, dataDir);
    const peer = new StorageActorPeer(storage, Identity.generate().publicKey);
    assert.equal(await peer.hasChunk(kept.cid), false, "not even that it is here");
    await assert.rejects(peer.getChunk(kept.cid));
    const proofs = await peer.proveChunks(new Uint8Array(32), [kept.cid]).catch(() => [null]);
    assert.deepEqual(proofs, [null], "no proof over it either");
  } finally {
    await system.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("the HTTP gateway gives a trainer's shard as ciphertext only: a private file, no sample in any of its blocks", async () => {
  // The gateway serves the blocks the node holds, a `local` file's too (the operator's own API,
  // bound to loopback by default); the shard is a private file, so what it serves is ciphertext.
  const dataDir = await Deno.makeTempDir({ prefix: "veriflow-privacy-" });
  const system = new ActorSystem({ name: "privacy-gateway" });
  try {
    const { storage, kept } = await keptShard(system, dataDir);
    const gateway = storageGateway(storage);
    // A private file: the gateway's routes answer a plain read of it 403 key_required.
    const info = await gateway.stat(kept.cid);
    assert.equal(info.tier, "private");
    const sample = kept.shard.documents[0].bytes.slice(0, 48);
    const blocks = [kept.cid, ...info.chunks];
    assert.ok(blocks.length > 1);
    for (const cid of blocks) {
      const bytes = await gateway.block(cid);
      const text = new TextDecoder("latin1").decode(bytes);
      assert.equal(text.includes(new TextDecoder("latin1").decode(sample)), false, cid);
    }
  } finally {
    await system.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});
