/**
 * The coordinator's held-out evaluation reads windows spread over the whole held-out text, not
 * its first 64 (4,160 bytes: the start of one Brown document of the public split, Hel's finding,
 * review s75), and the digest its saved loss reference is tied to covers the windows read.
 */
import assert from "node:assert/strict";
import { sampleCount, type TextShard } from "../../training/brown_corpus.ts";
import { seededGptWeights } from "../../training/gpt_weights.ts";
import { evaluateHeldOut } from "../../training/held_out_evaluator.ts";
import { HELD_OUT_EVAL_SAMPLES, heldOutSamples } from "../../training/held_out_samples.ts";
import { heldOutDigest } from "../../training/held_out_text.ts";
import { evaluatingCoordinator } from "./_eval_coordinator.ts";
import { TEST_ARCH, TEST_HYPER, testSplit } from "./_fixtures.ts";

const SAMPLE_BYTES = TEST_HYPER.sampleBytes;

/** One document: `head` (exactly the first 64 windows) then `tail`. */
function twoPartText(head: string, tail: Uint8Array): TextShard {
  const first = new TextEncoder().encode(head.repeat(SAMPLE_BYTES * HELD_OUT_EVAL_SAMPLES));
  const firstWindows = first.subarray(0, SAMPLE_BYTES * HELD_OUT_EVAL_SAMPLES);
  const bytes = new Uint8Array(firstWindows.length + tail.length);
  bytes.set(firstWindows);
  bytes.set(tail, firstWindows.length);
  return { documents: [{ id: "two-part", bytes }] };
}

/** The Brown test split's held-out documents as one run of bytes. */
async function prose(): Promise<Uint8Array> {
  const { heldOut } = await testSplit();
  const all = new Uint8Array(heldOut.documents.reduce((n, d) => n + d.bytes.length, 0));
  let at = 0;
  for (const d of heldOut.documents) {
    all.set(d.bytes, at);
    at += d.bytes.length;
  }
  return all;
}

Deno.test("the evaluation's windows span the held-out text: its first window, every document, its last stride", async () => {
  const { heldOut } = await testSplit();
  const count = sampleCount(heldOut, SAMPLE_BYTES);
  assert.ok(count > 4 * HELD_OUT_EVAL_SAMPLES, `a text of ${count} windows`);
  const samples = heldOutSamples(heldOut, SAMPLE_BYTES);
  assert.equal(samples.documents.length, HELD_OUT_EVAL_SAMPLES);
  assert.ok(samples.documents.every((d) => d.bytes.length === SAMPLE_BYTES));
  const first = heldOut.documents[0];
  const last = heldOut.documents.at(-1)!;
  assert.equal(samples.documents[0].id, `${first.id}:0`);
  // Every document of the split is read, the last one included, near its end.
  const read = new Set(samples.documents.map((d) => d.id.split(":")[0]));
  assert.deepEqual([...read], heldOut.documents.map((d) => d.id));
  const lastOffset = Number(samples.documents.at(-1)!.id.split(":")[1]);
  const stride = Math.ceil(count / HELD_OUT_EVAL_SAMPLES) * SAMPLE_BYTES;
  assert.ok(
    samples.documents.at(-1)!.id.startsWith(`${last.id}:`) &&
      lastOffset >= last.bytes.length - SAMPLE_BYTES - stride,
    `the last window read (${samples.documents.at(-1)!.id}) is in the text's last stride`,
  );
  // The same positions every time: the loss of one model does not vary between evaluations.
  assert.deepEqual(heldOutSamples(heldOut, SAMPLE_BYTES), samples);
});

Deno.test("the coordinator's held-out loss is over windows from the whole text, not its first 4 KB", async () => {
  // The first 64 windows are digits, the rest English prose: the seeded model's loss on the two
  // differs by far more than any rounding.
  const text = twoPartText("0123456789", await prose());
  const weights = seededGptWeights(TEST_ARCH, 0);
  const evaluation = (samples: TextShard) =>
    evaluateHeldOut({ arch: TEST_ARCH, samples, sampleBytes: SAMPLE_BYTES }, weights);
  const firstWindows: TextShard = {
    documents: [{
      id: "head",
      bytes: text.documents[0].bytes.subarray(0, SAMPLE_BYTES * HELD_OUT_EVAL_SAMPLES),
    }],
  };
  const onHead = await evaluation(firstWindows);
  const spread = await evaluation(heldOutSamples(text, SAMPLE_BYTES));
  assert.ok(Math.abs(onHead - spread) > 0.5, `head ${onHead} vs spread ${spread}`);
  const { status } = await evaluatingCoordinator(text);
  assert.equal(status.initialLoss, spread, `the coordinator measured ${status.initialLoss}`);
});

Deno.test("the digest the loss reference is tied to changes with a byte past the text's first 4 KB", async () => {
  const tail = await prose();
  const text = twoPartText("0123456789", tail);
  const samples = heldOutSamples(text, SAMPLE_BYTES);
  // A byte inside the last window read, far past the first 64 windows.
  const lastOffset = Number(samples.documents.at(-1)!.id.split(":")[1]);
  const changed = new Uint8Array(text.documents[0].bytes);
  changed[lastOffset + 3] ^= 1;
  const other: TextShard = { documents: [{ id: "two-part", bytes: changed }] };
  assert.ok(lastOffset > SAMPLE_BYTES * HELD_OUT_EVAL_SAMPLES * 4, `offset ${lastOffset}`);
  assert.notEqual(heldOutDigest(other, SAMPLE_BYTES), heldOutDigest(text, SAMPLE_BYTES));
  // A byte in a window not read leaves it: the digest is of what the evaluation reads.
  const unread = new Uint8Array(text.documents[0].bytes);
  unread[SAMPLE_BYTES * 1 + 3] ^= 1; // window 1: never read (the stride is several windows)
  assert.equal(
    heldOutDigest({ documents: [{ id: "two-part", bytes: unread }] }, SAMPLE_BYTES),
    heldOutDigest(text, SAMPLE_BYTES),
  );
});
