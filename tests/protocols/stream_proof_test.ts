/**
 * Stream proofs (`protocols/stream_proof.ts`): an accuser's signature over a stream claim, what
 * every field of it binds, and its shape on the wire (`validation.stream_proof`).
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { decodeCbor, encodeCbor } from "../../protocols/cbor.ts";
import { StreamProofAnnouncementMessage } from "../../protocols/inference_messages.ts";
import { type StreamClaim, StreamSigner } from "../../protocols/stream_commitment.ts";
import {
  signStreamProof,
  type StreamProof,
  streamProofHash,
  StreamProofSchema,
  verifyStreamProofSignature,
} from "../../protocols/stream_proof.ts";
import { params } from "../server/_fixtures.ts";

const JOB: TextJob = {
  kind: "text",
  model: "bafy-model",
  prompt: "hello",
  params: params({ maxTokens: 16 }),
  nonce: "stream-proof",
};
const IDS = [104, 101, 108, 108, 111];

/** `worker`'s claim over {@link IDS} of {@link JOB}, refused at position `at`. */
function claimBy(worker: Identity, at = 2): StreamClaim {
  const sig = new StreamSigner(worker, jobId(JOB)).sign(IDS);
  return { job: JOB, worker: worker.publicKey, tokenIds: IDS, sig: new Uint8Array(sig), at };
}

Deno.test("stream proof: signed by its accuser over the claim, the time and its key; any change to them breaks the signature and the hash", () => {
  const [worker, accuser, other] = [Identity.generate(), Identity.generate(), Identity.generate()];
  const proof = signStreamProof(claimBy(worker), accuser, 1_000);
  assert.equal(StreamProofSchema.safeParse(proof).success, true);
  assert.equal(verifyStreamProofSignature(proof), true);
  const hash = streamProofHash(proof);
  const changed: StreamProof[] = [
    { ...proof, issuedAt: 1_001 },
    { ...proof, accuser: other.publicKey },
    { ...proof, claim: { ...proof.claim, at: 3 } },
    { ...proof, claim: claimBy(other) },
    { ...proof, claim: { ...proof.claim, tokenIds: [...IDS.slice(0, 4), 33] } },
    { ...proof, sig: other.sign(new Uint8Array([1])) },
  ];
  for (const [i, bad] of changed.entries()) {
    assert.equal(verifyStreamProofSignature(bad), false, `change ${i} kept the signature`);
    if (i < 5) assert.notEqual(streamProofHash(bad), hash, `change ${i} kept the hash`);
  }
  // Another accuser's proof of the same claim is another proof.
  assert.notEqual(streamProofHash(signStreamProof(proof.claim, other, 1_000)), hash);
});

Deno.test("stream proof: the wire message carries it whole through CBOR; its schema refuses another version, a short key or signature, a claim without tokens", () => {
  const proof = signStreamProof(claimBy(Identity.generate()), Identity.generate(), 7);
  const body = decodeCbor(encodeCbor({ proof }));
  const parsed = StreamProofAnnouncementMessage.schema.safeParse(body);
  assert.equal(parsed.success, true);
  assert.equal(verifyStreamProofSignature(parsed.data!.proof), true);
  const refused: unknown[] = [
    { ...proof, v: 2 },
    { ...proof, accuser: proof.accuser.subarray(0, 31) },
    { ...proof, sig: proof.sig.subarray(0, 63) },
    { ...proof, issuedAt: -1 },
    { ...proof, claim: { ...proof.claim, tokenIds: [] } },
    { ...proof, claim: undefined },
  ];
  for (const [i, bad] of refused.entries()) {
    assert.equal(StreamProofSchema.safeParse(bad).success, false, `shape ${i} accepted`);
  }
});
