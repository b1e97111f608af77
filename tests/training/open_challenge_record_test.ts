/**
 * The open challenge a training validator keeps on disk for a restart
 * (`training/_open_challenge_record.ts`): read back only when this validator signed it. A
 * trainer seals its answer to the key that signed the challenge, so a challenge another key
 * signed (a ledger directory kept across a change of the node's key) cannot be checked from here:
 * asked again, its answer would not open, and its silence would rest on another key's challenge.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Identity } from "../../protocols/identity.ts";
import { decodeCbor, encodeCanonical } from "../../protocols/cbor.ts";
import { drawTrainingChallenge } from "../../training/training_challenge.ts";
import { openChallengeOf, openChallengeRecord } from "../../training/_open_challenge_record.ts";
import { placeholderReceipt } from "./_placeholder_receipt.ts";
import { TEST_ARCH } from "./_fixtures.ts";

const START_MODEL = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

/** The record a validator `signer` keeps of its challenge of a placeholder receipt, as read back. */
function keptBy(signer: Identity): unknown {
  const receipt = placeholderReceipt(1, START_MODEL);
  const challenge = drawTrainingChallenge(receipt, signer);
  const record = openChallengeRecord({
    challenge,
    report: { receipt, delta: new Uint8Array(8) },
    terms: { round: 1, startModel: START_MODEL, steps: receipt.steps },
    arch: TEST_ARCH,
    shardSize: receipt.shardSize,
  });
  return decodeCbor(encodeCanonical(record));
}

Deno.test("open challenge record: read back for the validator that signed the challenge, not for another key", () => {
  const me = Identity.generate();
  const kept = keptBy(me);
  const open = openChallengeOf(kept, me.publicKey);
  assert.ok(open !== undefined, "this validator's own open challenge is resumed");
  assert.equal(open.shardSize, 100);
  assert.equal(openChallengeOf(kept, Identity.generate().publicKey), undefined);
  // Not an open challenge at all: a kept ending, nothing.
  assert.equal(openChallengeOf({ end: "passed" }, me.publicKey), undefined);
  assert.equal(openChallengeOf(undefined, me.publicKey), undefined);
});
