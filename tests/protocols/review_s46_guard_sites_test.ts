/**
 * CBOR that someone else wrote goes through the structure guard (`decodeCheckedCbor`) at every
 * site that decodes it, not only on the wire: a trainer's answer to a challenge, the plaintext
 * of that answer, and a private file's sealed metadata (which a share link's holder can write).
 * Without it, cbor-x's tag extensions decode too, and a few hundred bytes stand for an array of
 * a million items (review at stop 46).
 */
import { ChallengedReceipts } from "../../training/_challenged_receipts.ts";
import assert from "node:assert/strict";
import { encodeCbor } from "../../protocols/cbor.ts";
import { Identity } from "../../protocols/identity.ts";
import { ChallengeMessage, OpeningPartMessage } from "../../protocols/training_messages.ts";
import { sha256Hex } from "../../protocols/hash.ts";
import type { Connection } from "../../protocols/connection.ts";
import { InvalidManifestError } from "../../protocols/manifest.ts";
import { exportFileKeys, OwnerKey } from "../../storage/private_tier.ts";
import { verifyOpeningsPlaintext } from "../../training/step_verify.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import {
  signTrainingReceipt,
  TRAINING_RECEIPT_VERSION,
  type TrainingReceipt,
} from "../../training/training_receipt.ts";
import {
  TrainingChallengeRun,
  type TrainingChallengeRunOptions,
} from "../../training/_training_challenge_run.ts";
import type { ChallengeRequest } from "../../training/training_validator.ts";
import { TEST_ARCH, TEST_HYPER } from "../training/_fixtures.ts";

/** Levels of doubling: the amplified array has 2^20 items. */
const LEVELS = 20;

/**
 * A CBOR map of `fields` and one more key, `pad`, whose value is an array of 2^levels items, in
 * well under a kilobyte: cbor-x's packed-value tables (tag 51) nest, and a prefix tag (225) on
 * a packed reference (tag 6) concatenates two arrays, so each table doubles the array.
 */
function amplifiedMap(fields: Record<string, unknown>, levels = LEVELS): Uint8Array {
  const out: number[] = [];
  const table = (value: number[]) => {
    out.push(0xd8, 0x33, 0x84); // tag 51, [values, prefixes, suffixes, rump]
    out.push(0x91, ...new Array(16).fill(0xf6), ...value); // 16 nulls, then packed value 16
    out.push(0x82, 0xf6, 0xc6, 0x00); // prefixes: [null, ref(value 16)]
    out.push(0x80); // suffixes: []
  };
  table([0x81, 0x00]); // [0]
  for (let k = 0; k < levels; k++) table([0xd8, 0xe1, 0xc6, 0x00]); // prefix 1 ++ ref(value 16)
  const entries = Object.entries(fields);
  out.push(0xa0 + entries.length + 1);
  for (const [k, v] of entries) out.push(...encodeCbor(k), ...encodeCbor(v));
  out.push(...encodeCbor("pad"), 0xc6, 0x00); // pad: ref(value 16)
  return new Uint8Array(out);
}

function receiptOf(trainer: Identity): TrainingReceipt {
  const steps = 3;
  return signTrainingReceipt({
    v: TRAINING_RECEIPT_VERSION,
    round: 0,
    startModel: "dd".repeat(32),
    steps,
    dataSeed: 1,
    hyper: { ...TEST_HYPER, lr: 1e-3 } as unknown as TrainingReceipt["hyper"],
    samplesRoot: "aa".repeat(32),
    sampleCount: steps * TEST_HYPER.batchSize,
    checkpointsRoot: "bb".repeat(32),
    shardRoot: "cc".repeat(32),
    shardSize: 100,
    losses: [3, 3, 3],
    deltaHash: "ee".repeat(32),
    deltaBytes: 1,
  }, trainer);
}

Deno.test("the amplifier is what it says: a few hundred bytes that cbor-x alone takes for a million items", async () => {
  const { decodeCbor } = await import("../../protocols/cbor.ts");
  const bytes = amplifiedMap({ a: 1 });
  assert.ok(bytes.length < 1024, `${bytes.length} bytes`);
  const value = decodeCbor(bytes) as { pad: unknown[] };
  assert.equal(value.pad.length, 2 ** LEVELS);
});

Deno.test("a trainer's answer of a few hundred bytes standing for a million items is refused before it is decoded", async () => {
  const validator = Identity.generate();
  const trainer = Identity.generate();
  const receipt = receiptOf(trainer);
  const answer = amplifiedMap({ v: 1, receiptId: "00".repeat(32) });
  const connection = {
    peerKey: trainer.publicKey,
    closed: new Promise<void>(() => {}),
    request: (definition: unknown) => {
      if (definition === ChallengeMessage) {
        return Promise.resolve({ size: answer.length, parts: 1, sha256: sha256Hex(answer) });
      }
      if (definition === OpeningPartMessage) return Promise.resolve({ bytes: answer });
      return Promise.reject(new Error("not asked in this test"));
    },
  } as unknown as Connection;
  const stop = new AbortController();
  const lines: string[] = [];
  const checked: unknown[] = [];
  const run = new TrainingChallengeRun({
    identity: validator,
    models: { get: () => Promise.resolve({ weights: new Map() }) },
    challengeProbability: 1,
    random: () => 0,
    openingDeadlineMs: 60_000,
    check: (_receipt: unknown, _challenge: unknown, sealed: unknown) => {
      checked.push(sealed);
      return Promise.resolve({ ok: false, reason: "opening_unsigned" });
    },
    endings: { hold() {}, holds: () => false, end: () => Promise.resolve() },
    challenged: new ChallengedReceipts(undefined, () => 0),
    now: () => 0,
    ask: () => Promise.reject(new Error("no ledger")),
    hasLedger: () => false,
    connectionTo: () => Promise.resolve(undefined),
    reach: () => Promise.resolve(undefined),
    log: (line: string) => {
      lines.push(line);
      stop.abort(); // the run now waits for the deadline: the test has seen what it needs
    },
  } as unknown as TrainingChallengeRunOptions);
  const request = {
    type: "challenge",
    report: { receipt, delta: new Uint8Array(1) },
    connection,
    terms: { round: 0, startModel: receipt.startModel, steps: receipt.steps },
    arch: TEST_ARCH,
    shardSize: receipt.shardSize,
    shardRoot: receipt.shardRoot,
  } as unknown as ChallengeRequest;
  const ctx = { signal: stop.signal, self: { tell() {} } };
  await run.challenge(request, ctx as never).catch(() => {});
  // Past the (aborted) wait the check runs once more with no answer: that one is not decoded.
  const decoded = checked.filter((s) => s !== undefined);
  const sizes = decoded.map((s) => (s as { pad?: unknown[] }).pad?.length);
  assert.deepEqual(sizes, [], `decoded and checked: arrays of ${sizes.join(", ")} items`);
  assert.match(lines[0], /did not open its steps \(malformed_cbor\)/);
});

Deno.test("an answer's plaintext standing for a million items is not CBOR to the step check", () => {
  const validator = Identity.generate();
  const receipt = receiptOf(Identity.generate());
  const challenge = drawTrainingChallenge(receipt, validator, { deadlineMs: 60_000 });
  const plaintext = amplifiedMap({ v: 1 });
  const r = verifyOpeningsPlaintext(receipt, challenge, plaintext, TEST_ARCH);
  assert.deepEqual(r, { ok: false, why: "not CBOR" });
});

/** `plaintext` sealed as a private file's metadata, as a share link's holder can. */
async function sealRaw(keys: Uint8Array, plaintext: Uint8Array): Promise<Uint8Array> {
  const key = await crypto.subtle.importKey("raw", keys.slice(32), "AES-GCM", false, [
    "encrypt",
  ]);
  const out = await crypto.subtle.encrypt(
    {
      name: "AES-GCM",
      iv: new Uint8Array(12),
      additionalData: new TextEncoder().encode("veriflow/storage/v1/manifest"),
    },
    key,
    new Uint8Array(plaintext),
  );
  return new Uint8Array(out);
}

Deno.test("a private file's sealed metadata standing for a million items is refused as a malformed manifest", async () => {
  const owner = await OwnerKey.fromSecret(new Uint8Array(32).fill(7));
  const salt = new Uint8Array(32).fill(1);
  // A share link's holder has the file's keys: it can seal metadata the owner then opens.
  const keys = await exportFileKeys(owner, salt);
  const cipher = await owner.file(salt);
  const amplified = await sealRaw(keys, amplifiedMap({ size: 0, chunkSize: 1 }));
  await assert.rejects(cipher.openInfo(amplified), InvalidManifestError);
  // Bytes that are no CBOR at all are a malformed manifest too, not a decoder's bare Error.
  const junk = await sealRaw(keys, new Uint8Array([0x1c]));
  await assert.rejects(cipher.openInfo(junk), InvalidManifestError);
});
