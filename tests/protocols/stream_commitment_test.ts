/**
 * The signed running commitment of a job's stream (`protocols/stream_commitment.ts`): what a
 * worker signs event by event, what its requester accepts, and the claim a third party checks.
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import {
  streamChainOver,
  StreamSigner,
  streamSigningBytes,
  StreamVerifier,
  verifyStreamClaim,
} from "../../protocols/stream_commitment.ts";
import type { TextJob } from "../../protocols/job.ts";
import { jobId } from "../../protocols/job.ts";
import { params } from "../server/_fixtures.ts";

const JOB_ID = "ab".repeat(32);
const IDS = [104, 101, 108, 108, 111, 32, 119, 111];

/** Events of 1, 3, 1 and 3 tokens of {@link IDS}. */
const EVENTS = [[0, 1], [1, 4], [4, 5], [5, 8]].map(([a, b]) => IDS.slice(a, b));

Deno.test("stream: what a worker signs event by event, its requester accepts, and the head covers every token delivered", () => {
  const worker = Identity.generate();
  const signer = new StreamSigner(worker, JOB_ID);
  const verifier = new StreamVerifier(worker.publicKey, JOB_ID);
  let n = 0;
  for (const ids of EVENTS) {
    const sig = signer.sign(ids);
    assert.ok(verifier.accept(ids, sig), `event ${ids} refused`);
    n += ids.length;
    assert.equal(verifier.head?.n, n);
  }
  assert.deepEqual(verifier.tokenIds, IDS);
  // The head is the worker's signature over the whole chain, whatever the events were.
  const h = streamChainOver(JOB_ID, IDS);
  assert.deepEqual(
    verifier.head!.sig,
    worker.sign(streamSigningBytes(JOB_ID, IDS.length, h)),
    "ed25519 is deterministic: the head signs (jobId, n, h_n)",
  );
});

Deno.test("stream: a requester refuses a missing, short, foreign or stale signature, and a refused event moves nothing", () => {
  const worker = Identity.generate();
  const signer = new StreamSigner(worker, JOB_ID);
  const verifier = new StreamVerifier(worker.publicKey, JOB_ID);
  const first = signer.sign(EVENTS[0]);
  assert.ok(verifier.accept(EVENTS[0], first));
  const second = signer.sign(EVENTS[1]);
  const other = new StreamSigner(Identity.generate(), JOB_ID);
  other.sign(EVENTS[0]);
  const refused: [string, number[], Uint8Array | undefined][] = [
    ["no signature", EVENTS[1], undefined],
    ["a short one", EVENTS[1], second.slice(0, 63)],
    ["another key's", EVENTS[1], other.sign(EVENTS[1])],
    ["the previous event's, replayed", EVENTS[1], first],
    ["over other tokens", [1, 2, 3], second],
    ["over fewer tokens", EVENTS[1].slice(0, 2), second],
    ["for another job", EVENTS[1], new StreamSigner(worker, "cd".repeat(32)).sign(IDS.slice(0, 4))],
  ];
  for (const [label, ids, sig] of refused) {
    assert.equal(verifier.accept(ids, sig), false, label);
    assert.equal(verifier.head?.n, 1, `${label} moved the head`);
    assert.deepEqual(verifier.tokenIds, EVENTS[0], `${label} moved the tokens`);
  }
  assert.ok(verifier.accept(EVENTS[1], second), "the genuine event after the refusals");
});

Deno.test("stream: a worker that took a job over signs the chain from position 0, the prefix it was handed included", () => {
  const worker = Identity.generate();
  const prefix = IDS.slice(0, 3);
  const signer = new StreamSigner(worker, JOB_ID, prefix);
  const verifier = new StreamVerifier(worker.publicKey, JOB_ID, prefix);
  const sig = signer.sign(IDS.slice(3, 5));
  assert.ok(verifier.accept(IDS.slice(3, 5), sig));
  assert.deepEqual(verifier.head?.n, 5);
  assert.deepEqual(verifier.tokenIds, IDS.slice(0, 5));
  // Its signature holds it to the prefix: checked against another prefix, it is refused.
  const elsewhere = new StreamVerifier(worker.publicKey, JOB_ID, [1, 2, 3]);
  assert.equal(elsewhere.accept(IDS.slice(3, 5), sig), false);
});

Deno.test("stream: a claim verifies with the worker's head over its tokens and a position among them, and not otherwise", () => {
  const worker = Identity.generate();
  const job: TextJob = {
    kind: "text",
    model: "m",
    prompt: "hi",
    params: params({ maxTokens: 16 }),
    nonce: "claim",
  };
  const id = jobId(job);
  const signer = new StreamSigner(worker, id);
  const sig = signer.sign(IDS);
  const claim = { job, worker: worker.publicKey, tokenIds: [...IDS], sig, at: 3 };
  assert.ok(verifyStreamClaim(claim, id));
  assert.equal(verifyStreamClaim({ ...claim, at: IDS.length }, id), false, "past the head");
  assert.equal(verifyStreamClaim({ ...claim, tokenIds: IDS.slice(0, 7) }, id), false, "fewer");
  assert.equal(
    verifyStreamClaim({ ...claim, tokenIds: [...IDS.slice(0, 7), 1] }, id),
    false,
    "another last token",
  );
  assert.equal(
    verifyStreamClaim({ ...claim, worker: Identity.generate().publicKey }, id),
    false,
    "another worker",
  );
  assert.equal(verifyStreamClaim(claim, "cd".repeat(32)), false, "another job");
});

Deno.test("stream: a final event's signature says its last token ends the job: it does not pass for an event that does not, nor the reverse", () => {
  const worker = Identity.generate();
  const signer = new StreamSigner(worker, JOB_ID);
  const open = new StreamVerifier(worker.publicKey, JOB_ID);
  const sig = signer.sign(IDS, true);
  assert.equal(open.accept(IDS, sig), false, "a final signature taken for an open event");
  assert.ok(open.accept(IDS, sig, true));
  assert.equal(open.head?.final, true);
  const other = new StreamVerifier(worker.publicKey, JOB_ID);
  const plain = new StreamSigner(worker, JOB_ID).sign(IDS);
  assert.equal(other.accept(IDS, plain, true), false, "an open signature taken for a final one");
});
