/**
 * "Data stays home": a trainer's private shard is stored encrypted and kept off storage peers, its
 * samples leave it only sealed to a challenger owed an opening, and one validator learns a bounded
 * part of it per receipt, also across a restart of the trainer.
 *
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { ActorSystem } from "../../actors/actor_system.ts";
import { StorageActor } from "../../actors/storage_actor.ts";
import { type StorageMessage, unwrapReply } from "../../actors/storage_actor_messages.ts";
import { StorageActorPeer, storageGateway } from "../../actors/storage_actor_peer.ts";
import { OwnerKey } from "../../storage/private_tier.ts";
import { keepShardPrivate } from "../../training/private_shard.ts";
import { Identity } from "../../protocols/identity.ts";
import { decodeCbor, encodeCanonical } from "../../protocols/cbor.ts";
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
import { sampleAt, type TextShard } from "../../training/brown_corpus.ts";
import {
  checkTrainingFraudProof,
  signTrainingFraudProof,
  TRAINING_FRAUD_PROOF_VERSION,
} from "../../training/training_fraud_proof.ts";
import type { TrainingReceipt } from "../../training/training_receipt.ts";
import { TEST_ARCH, TEST_HYPER, testRoundBody, testSplit } from "./_fixtures.ts";
import { ChunkStore } from "../../storage/chunk_store.ts";
import { LocalStoragePeer } from "../../storage/storage_peer.ts";
import { parseNodeConfig } from "../../node/config.ts";
import { startNode } from "../../node/node.ts";

// ------------------------------------------------------------------------------------------------
// "Data stays home": a trainer's samples leave it only sealed to a challenger that is owed an
// opening, and refusing one that is not owed never costs the trainer its stake.
//
// Before, any key could sign a challenge naming itself as validator, for any receipt gossip had
// shown it, and the trainer sealed 9 steps' batches to it: a stakeless key that no coin drew and no
// round knows read a trainer's private samples, and each fresh key read 9 × batchSize more. And a
// challenge the trainer rightly refuses (more steps than a challenge draws) made an
// `opening_missing` proof every checker confirmed: the honest trainer slashed for refusing.
// ------------------------------------------------------------------------------------------------

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

Deno.test("the bar is the penalty of the ledger the trainer asks: a challenger staked past the default penalty but short of that ledger's larger one is not answered, one with it is", async () => {
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

// ------------------------------------------------------------------------------------------------
// A trainer answers one challenge per validator and receipt: each opening reveals a batch of the
// private shard per challenged step, so the rule bounds what one validator learns of it. The record
// of who challenged which receipt was in memory only: after a restart of the trainer, a staked
// validator challenged the same receipt again and read more of the shard's batches. It is now kept
// in the trainer's data directory until the receipt's traces are gone.
// ------------------------------------------------------------------------------------------------

/** A stake every ledger takes a peer's fraud proof from. */
const STAKE = 10_000_000;

/**
 * An honest trainer (its worker engine, traces on disk) under `dir`, whose ledger holds a stake
 * for each of `staked`; one trained run of it.
 */
async function trainerFixture(dir: string, staked: Identity[]) {
  const split = await testSplit();
  const models = new RoundModels({ modelsDir: join(dir, "models"), storage: () => undefined });
  const seed = await models.publish(TEST_ARCH, seededGptWeights(TEST_ARCH, 0));
  const identity = Identity.generate();
  const keys = new Set(staked.map((v) => toHex(v.publicKey)));
  const dataDir = join(dir, "training");
  const spawn = (system: ActorSystem) =>
    system.spawn<TrainerMessage>({
      name: "node/trainer",
      factory: () =>
        new TrainerService({
          identity,
          shard: split.shards[0],
          models,
          sampleBytes: TEST_HYPER.sampleBytes,
          dataDir,
          stakeOf: (key) => Promise.resolve(keys.has(toHex(key)) ? STAKE : 0),
        }),
    });
  const body = testRoundBody(seed.cid, 6);
  return { spawn, body, dataDir };
}

/** Ask the trainer at `ref` to open `challenge`: its header, or the refusal's code. */
async function ask(
  ref: Awaited<ReturnType<Awaited<ReturnType<typeof trainerFixture>>["spawn"]>>,
  challenge: TrainingChallenge,
): Promise<{ size: number } | string> {
  const { openings } = await ref.ask<ChallengeAccepted>({
    type: "challenge",
    challenge,
    from: challenge.validator,
  });
  return await openings.catch((e: { code?: string }) => e.code ?? "thrown");
}

Deno.test("after the trainer restarts, a staked validator's second challenge of a receipt it challenged before is refused (challenge_mismatch) — it reads no more batches of the shard — while its first challenge is still answered, and so is another validator's first", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-challenged-" });
  const validator = Identity.generate();
  const other = Identity.generate();
  const { spawn, body } = await trainerFixture(dir, [validator, other]);
  let receipt: TrainingReceipt;
  let first: TrainingChallenge;
  const before = new ActorSystem({ name: "s53b-before-restart" });
  try {
    const ref = await spawn(before);
    const { report } = await ref.ask<RoundAccepted>({ type: "round", body, coordinator: "c0" });
    receipt = (await report).receipt;
    first = drawTrainingChallenge(receipt, validator, { steps: 2 });
    const opened = await ask(ref, first);
    assert.ok(typeof opened !== "string" && opened.size > 0, "the first challenge is answered");
    const second = drawTrainingChallenge(receipt, validator, { steps: 2 });
    assert.equal(await ask(ref, second), "challenge_mismatch", "refused before the restart");
  } finally {
    await before.shutdown();
  }
  const after = new ActorSystem({ name: "s53b-after-restart" });
  try {
    const ref = await spawn(after);
    const second = drawTrainingChallenge(receipt, validator, { steps: 2 });
    assert.equal(
      await ask(ref, second),
      "challenge_mismatch",
      "a second challenge by the same validator after the restart: more batches of the shard",
    );
    // Its own challenge again (its answer was lost with the restart): still owed, or its
    // opening_missing would slash the honest trainer.
    const again = await ask(ref, first);
    assert.ok(typeof again !== "string" && again.size > 0, "the first challenge, asked again");
    const fresh = await ask(ref, drawTrainingChallenge(receipt, other, { steps: 2 }));
    assert.ok(typeof fresh !== "string" && fresh.size > 0, "another validator's first challenge");
  } finally {
    await after.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a damaged record of challenges does not stop the trainer and is set aside (challenges are answered), and entries past their window are not read back", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s53b-challenged-damaged-" });
  const validator = Identity.generate();
  const { spawn, body, dataDir } = await trainerFixture(dir, [validator]);
  let receipt: TrainingReceipt;
  const before = new ActorSystem({ name: "s53b-damaged-before" });
  try {
    const ref = await spawn(before);
    const { report } = await ref.ask<RoundAccepted>({ type: "round", body, coordinator: "c0" });
    receipt = (await report).receipt;
  } finally {
    await before.shutdown();
  }
  const file = join(dataDir, "challenged-by.cbor");
  try {
    // Not CBOR at all: the trainer starts and answers.
    await Deno.writeFile(file, new Uint8Array([0xff, 0xfe, 0x00, 0x13]));
    const damaged = new ActorSystem({ name: "s53b-damaged" });
    try {
      const ref = await spawn(damaged);
      const opened = await ask(ref, drawTrainingChallenge(receipt, validator, { steps: 2 }));
      assert.ok(typeof opened !== "string" && opened.size > 0, "answered over a damaged file");
    } finally {
      await damaged.shutdown();
    }
    // An entry past its window (and malformed ones) are not read back: the validator's
    // challenge is answered, the malformed entries do not stop the trainer.
    const key = `${toHex(validator.publicKey)}/${
      drawTrainingChallenge(receipt, validator).receiptId
    }`;
    await Deno.writeFile(
      file,
      encodeCanonical([[key, "ab".repeat(32), Date.now() - 1000], ["junk"], 7]),
    );
    const expired = new ActorSystem({ name: "s53b-expired" });
    try {
      const ref = await spawn(expired);
      const opened = await ask(ref, drawTrainingChallenge(receipt, validator, { steps: 2 }));
      assert.ok(typeof opened !== "string" && opened.size > 0, "an expired entry binds nothing");
    } finally {
      await expired.shutdown();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ------------------------------------------------------------------------------------------------
// A trainer's shard in its private storage tier (`training/private_shard.ts`): stored once,
// encrypted (no plaintext in the store's files), kept off storage peers even when the node has some
// (and a repair of every pin does not send it there), found again on the next start, and stored
// anew when the node is dealt another shard; a trainer node does so on start.
// ------------------------------------------------------------------------------------------------

const encoder = new TextEncoder();
/** A phrase that must never appear in the store's files in the clear. */
const SECRET = "the jury praised the administration and operation of the Atlanta police";

function shard(tag: string): TextShard {
  return {
    documents: [
      { id: `${tag}01`, bytes: encoder.encode(`${SECRET} (${tag}) `.repeat(40)) },
      { id: `${tag}02`, bytes: encoder.encode(`second document of ${tag} `.repeat(30)) },
    ],
  };
}

/** Whether `needle` occurs in any file under `dir`. */
async function occursUnder(dir: string, needle: Uint8Array): Promise<boolean> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      if (await occursUnder(path, needle)) return true;
      continue;
    }
    const bytes = await Deno.readFile(path);
    outer: for (let i = 0; i + needle.length <= bytes.length; i++) {
      for (let j = 0; j < needle.length; j++) if (bytes[i + j] !== needle[j]) continue outer;
      return true;
    }
  }
  return false;
}

Deno.test("a trainer's shard is stored once in the private tier, encrypted and on this node only, then found again; another deal stores another", async () => {
  const dataDir = await Deno.makeTempDir();
  const peerDirs = [await Deno.makeTempDir(), await Deno.makeTempDir()];
  const system = new ActorSystem({ name: "shard-test" });
  try {
    const peers = await Promise.all(
      peerDirs.map(async (d) =>
        new LocalStoragePeer(
          await ChunkStore.open(d, { durable: false }),
          Identity.generate().publicKey,
        )
      ),
    );
    const ownerKey = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () =>
        new StorageActor({
          dir: join(dataDir, "store"),
          chunkSize: 1024,
          ownerKey,
          replication: { replicas: 2, writeQuorum: 2 },
        }),
    });
    // The node has storage peers: public files go to them, the shard must not.
    unwrapReply(await storage.ask({ type: "set_peers", peers }));
    const deal = { shard: 1, shards: 3, corpusDocs: 40 };
    const dealt = shard("ca");

    const first = await keepShardPrivate(storage, dataDir, { shard: dealt, deal });
    assert.equal(first.stored, true);
    assert.deepEqual(first.shard, dealt, "what trains is what was dealt, read back");
    const secret = encoder.encode(SECRET);
    assert.equal(await occursUnder(join(dataDir, "store"), secret), false, "encrypted at rest");
    for (const peer of peers) {
      assert.equal(await peer.hasChunk(first.cid), false, "its file never reaches a peer");
      assert.equal((await peer.store.stats()).objectCount, 0, "not one chunk of it");
    }
    // A repair of every pin does not send it out either.
    unwrapReply(await storage.ask({ type: "repair" }));
    for (const peer of peers) assert.equal((await peer.store.stats()).objectCount, 0);

    const again = await keepShardPrivate(storage, dataDir, { shard: shard("xx"), deal });
    assert.equal(again.stored, false, "found by its recorded CID, not stored again");
    assert.equal(again.cid, first.cid);
    assert.deepEqual(again.shard, dealt, "the stored shard, not the one offered now");

    const other = await keepShardPrivate(storage, dataDir, {
      shard: shard("cb"),
      deal: { ...deal, shard: 2 },
    });
    assert.equal(other.stored, true, "another deal is another shard");
    assert.notEqual(other.cid, first.cid);
    assert.deepEqual(other.shard, shard("cb"));
  } finally {
    await system.shutdown();
    for (const d of [dataDir, ...peerDirs]) await Deno.remove(d, { recursive: true });
  }
});

Deno.test("without an owner key the shard cannot be kept private: the store says key_required", async () => {
  const dataDir = await Deno.makeTempDir();
  const system = new ActorSystem({ name: "shard-test-nokey" });
  try {
    const storage = await system.spawn<StorageMessage>({
      name: "node/storage",
      factory: () => new StorageActor({ dir: join(dataDir, "store") }),
    });
    await assert.rejects(
      keepShardPrivate(storage, dataDir, {
        shard: shard("ca"),
        deal: { shard: 0, shards: 1, corpusDocs: 40 },
      }),
      (e: { code?: string }) => e.code === "key_required",
    );
  } finally {
    await system.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("a trainer node keeps its shard in its own private tier: one private file, recorded, found again after a restart", async () => {
  const dataDir = await Deno.makeTempDir();
  const config = parseNodeConfig({
    dataDir,
    http: { port: 0 },
    heartbeatMs: 0,
    model: { workers: 0 },
    roles: { inference: false, prover: false },
    training: {
      arch: TEST_ARCH,
      corpusDocs: 20,
      trainer: { enabled: true, shard: 0, shards: 2 },
    },
  });
  const lines: string[] = [];
  const privateFiles = async () => {
    const node = await startNode(config, { log: (line) => lines.push(line) });
    try {
      const storage = node.system.lookup<StorageMessage>("node/storage")!;
      const files = unwrapReply<{ cid: string; tier: string }[]>(
        await storage.ask({ type: "list" }),
      );
      return files.filter((f) => f.tier === "private").map((f) => f.cid);
    } finally {
      await node.shutdown();
    }
  };
  try {
    const first = await privateFiles();
    assert.equal(first.length, 1, "the shard, as one private file");
    assert.ok(lines.some((l) => l.includes(`shard stored in the private tier as ${first[0]}`)));
    const second = await privateFiles();
    assert.deepEqual(second, first, "the same file after a restart");
    assert.ok(lines.some((l) => l.includes(`shard found in the private tier as ${first[0]}`)));
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
