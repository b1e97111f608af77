/**
 * Whose prompt a batch reads next (`inference/_batch_decoder.ts`, its module doc, "A step
 * boundary"; the turns and piece sizes in `inference/_prefill_planner.ts`): a short prompt that
 * arrives while a long one is read does not wait for the long one's whole prefill, idle or not;
 * a long prompt is read in pieces even with nobody decoding, so a cancel stops it after the piece
 * being read; and the short prompts passing a long one take turns with it, so it still
 * progresses. Every count comes from the executions the batch asks of its session (no clock).
 */
import assert from "node:assert/strict";
import { setImmediate } from "node:timers";
import { DecoderSession, type SampledStep } from "../../inference/_decoder_session.ts";
import { createSession } from "../../inference/_session.ts";
import { buildGptModel } from "../../inference/model_builder.ts";
import { tracker } from "../_helpers/fake_timers.ts";
import { decodingStream, GREEDY, noted, withBatch } from "./_prefill_batch.ts";

/**
 * Long enough that the long prompts below (up to 900 tokens) fit: the built-in `tiny` stops at
 * 256 positions, and a prompt's prefill only matters to others when it is long.
 */
const CONTEXT = 1024;
const dir = await Deno.makeTempDir({ prefix: "veriflow-prefill-turns-test-" });
await buildGptModel({ size: "tiny", seed: 0, contextLength: CONTEXT, outDir: dir });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

const SHAPE = { numLayers: 2, numKeyValueHeads: 4, headDim: 16, vocabSize: 260 };

async function decoderSession(): Promise<DecoderSession> {
  const { session } = await createSession(await Deno.readFile(`${dir}/model.onnx`), {
    intraOpThreads: 1,
  });
  return new DecoderSession(session, SHAPE);
}

/** The long prompt: lower-case bytes, so its executions are told apart by their first token. */
function longPrompt(n: number): number[] {
  return Array.from({ length: n }, (_, j) => 97 + (j * 7) % 26);
}

/** A short prompt, number `k`: upper-case bytes. */
function shortPrompt(k: number): number[] {
  return Array.from({ length: 10 }, (_, j) => 65 + (k * 5 + j * 3) % 26);
}

/** A prompt execution: whose (`L` the long prompt, `S` a short one), and how many tokens. */
interface PromptRead {
  who: "L" | "S";
  tokens: number;
  /** The execution's first token (a piece's, or the group's first row's). */
  first: number;
}

/**
 * Call `onRead` at every prompt execution the batch starts on `decoder` (decode steps, one token
 * a row, left out), before the execution runs. Every prompt here is read one at a time (they
 * arrive one by one), through `run` and so through `runRows`. What `onRead` returns, if anything,
 * happens *during* that execution, as a message or a closed connection does: it is heard in the
 * first macrotask after the execution ends (an execution holds the thread), queued before the
 * batch goes on.
 */
function onPromptReads(
  decoder: DecoderSession,
  onRead: (read: PromptRead) => (() => void) | void,
): void {
  const runRows = decoder.runRows.bind(decoder);
  decoder.runRows = (ids, batch, ...rest) => {
    const width = ids.length / batch;
    const during = width > 1
      ? onRead({ who: ids[0] >= 97n ? "L" : "S", tokens: width, first: Number(ids[0]) })
      : undefined;
    const ran = runRows(ids, batch, ...rest);
    if (!during) return ran;
    return ran.then((out) => {
      setImmediate(during);
      return out;
    });
  };
}

/** The first token `prompt` gets read alone, whole, on `decoder`. */
async function solo(decoder: DecoderSession, prompt: number[]): Promise<number> {
  const sequence = decoder.sequence();
  const step = await sequence.step(prompt, { params: GREEDY, position: 0 });
  sequence.close();
  return step.tokenId;
}

Deno.test("with nobody decoding, a short prompt arriving while a long one is read gets its first token before the long prompt's prefill ends", async () => {
  // Before, with nobody decoding, the long prompt was read whole in one execution: the short one
  // waited for all of it (a 2,000-token prompt on a 4,096-context model: ~2 s, against ~10 ms).
  const decoder = await decoderSession();
  await withBatch(decoder, async (batched) => {
    const reads: string[] = [];
    const long = batched.sequence();
    const short = batched.sequence();
    const shortStep = Promise.withResolvers<SampledStep>();
    onPromptReads(decoder, ({ who }) => {
      reads.push(who);
      // The short prompt arrives while the long one's first execution runs.
      if (reads.length > 1) return;
      return () =>
        shortStep.resolve(
          noted(
            short.step(shortPrompt(0), { params: GREEDY, position: 0 }),
            reads,
            "short answered",
          ),
        );
    });
    const prompt = longPrompt(900);
    const longStep = noted(
      long.step(prompt, { params: GREEDY, position: 0 }),
      reads,
      "long answered",
    );
    const gotLong = await longStep;
    const gotShort = await shortStep.promise;
    long.close();
    short.close();
    const shortAt = reads.indexOf("short answered");
    assert.ok(
      shortAt >= 0 && shortAt < reads.indexOf("long answered") && shortAt < reads.lastIndexOf("L"),
      `the short prompt waited for the long one's whole prefill: ${reads.join(" ")}`,
    );
    assert.ok(reads.filter((r) => r === "L").length >= 2, `read in pieces: ${reads.join(" ")}`);
    // It waited for the piece being read when it came, and no other.
    assert.deepEqual(reads.slice(0, 2), ["L", "S"], reads.join(" "));
    // Both get the first token each gets read alone.
    assert.equal(gotLong.tokenId, await solo(decoder, prompt));
    assert.equal(gotShort.tokenId, await solo(decoder, shortPrompt(0)));
  });
});

Deno.test("while a stream decodes, a short prompt arriving behind a long one is read before the long one's next piece", async () => {
  // Before, prompts were read first come first served: the short one waited for every piece of
  // the long one (one a tick), ~0.8 s on `small` behind 450 tokens, against ~15 ms alone.
  const decoder = await decoderSession();
  await withBatch(decoder, async (batched) => {
    const stream = await decodingStream(batched, shortPrompt(1));
    const running = stream.sequence;
    const reads: string[] = [];
    const long = batched.sequence();
    const short = batched.sequence();
    const shortStep = Promise.withResolvers<SampledStep>();
    onPromptReads(decoder, ({ who }) => {
      reads.push(who);
      // The short prompt arrives while the long one's first piece is read.
      if (who !== "L" || reads.filter((r) => r === "L").length > 1) return;
      return () =>
        shortStep.resolve(
          noted(
            short.step(shortPrompt(2), { params: GREEDY, position: 0 }),
            reads,
            "short answered",
          ),
        );
    });
    const prompt = longPrompt(600);
    const longStep = noted(
      long.step(prompt, { params: GREEDY, position: 0 }),
      reads,
      "long answered",
    );
    // The running stream keeps decoding while the long prompt is read.
    await stream.decodeUntil(tracker(longStep));
    const gotLong = await longStep;
    const gotShort = await shortStep.promise;
    const piecesBefore = reads.slice(0, reads.indexOf("short answered")).filter((r) => r === "L");
    const pieces = reads.filter((r) => r === "L");
    assert.ok(pieces.length >= 3, `the long prompt is read in pieces: ${reads.join(" ")}`);
    assert.equal(
      piecesBefore.length,
      1,
      `the short prompt waited for more than the piece being read: ${reads.join(" ")}`,
    );
    assert.equal(gotLong.tokenId, await solo(decoder, prompt));
    assert.equal(gotShort.tokenId, await solo(decoder, shortPrompt(2)));
    running.close();
    long.close();
    short.close();
  });
});

Deno.test("a long prompt cancelled while it is read with nobody decoding stops after the piece being read", async () => {
  // Before, with nobody decoding, the prompt was read whole in one execution: a cancel 1 ms
  // after the request still cost its whole prefill (4.3–4.7 s of the model's time for 2,000
  // tokens on a 4,096-context model), and every prompt behind it waited for it.
  const decoder = await decoderSession();
  await withBatch(decoder, async (batched) => {
    const reads: PromptRead[] = [];
    const long = batched.sequence();
    onPromptReads(decoder, (read) => {
      reads.push(read);
      // Its client goes away while its first execution runs.
      if (reads.length === 1) return () => long.close();
    });
    const prompt = longPrompt(900);
    await assert.rejects(
      long.step(prompt, { params: GREEDY, position: 0 }),
      /the sequence is closed/,
    );
    // A later prompt is read at once: nothing of the cancelled one is read any more.
    const next = batched.sequence();
    const got = await next.step(shortPrompt(3), { params: GREEDY, position: 0 });
    next.close();
    const longReads = reads.filter((r) => r.who === "L");
    assert.equal(longReads.length, 1, `read after its cancel: ${JSON.stringify(reads)}`);
    assert.ok(
      longReads[0].tokens < prompt.length,
      `the cancelled prompt was read whole: ${JSON.stringify(reads)}`,
    );
    assert.equal(got.tokenId, await solo(decoder, shortPrompt(3)));
  });
});

Deno.test("short prompts passing a long one take turns with its pieces, so it is not starved", async () => {
  // A short prompt goes before a long one's next piece; one arriving at every execution would
  // otherwise hold the long one back for as long as they keep coming.
  const decoder = await decoderSession();
  await withBatch(decoder, async (batched) => {
    const reads: string[] = [];
    const shorts: Promise<number>[] = [];
    let longDone = false;
    onPromptReads(decoder, ({ who }) => {
      reads.push(who);
      if (longDone || shorts.length >= 8) return;
      // A new short prompt arrives during every execution until the long one is answered; each
      // is closed once answered, so nobody decodes.
      const k = shorts.length + 4;
      const s = batched.sequence();
      const { promise, resolve } = Promise.withResolvers<SampledStep>();
      shorts.push(promise.then((step) => {
        s.close();
        return step.tokenId;
      }));
      return () => resolve(s.step(shortPrompt(k), { params: GREEDY, position: 0 }));
    });
    const long = batched.sequence();
    const prompt = longPrompt(900);
    const got = await long.step(prompt, { params: GREEDY, position: 0 }).then((step) => {
      longDone = true;
      return step;
    });
    long.close();
    await Promise.all(shorts);
    const lastLong = reads.lastIndexOf("L");
    const whileLong = reads.slice(0, lastLong + 1).join("");
    assert.ok(reads.filter((r) => r === "L").length >= 2, `read in pieces: ${whileLong}`);
    assert.ok(whileLong.includes("S"), `no short prompt passed the long one: ${whileLong}`);
    // Never two short prompts' executions in a row while the long one waits, nor two of its
    // pieces while a short prompt waits (one arrived at each execution).
    assert.ok(!whileLong.includes("SS") && !whileLong.includes("LL"), whileLong);
    assert.equal(got.tokenId, await solo(decoder, prompt));
  });
});

/** A second long prompt: digits, so its pieces are told apart from the first one's letters. */
function digitPrompt(n: number): number[] {
  return Array.from({ length: n }, (_, j) => 48 + (j * 3) % 10);
}

Deno.test("a second long prompt arriving behind a first one gets a piece before the first one's prefill ends", async () => {
  // Before, long prompts were read one at a time, first come first: a 257-token prompt behind a
  // 3,000-token one got its first token with it, after its whole prefill (2.9–4.8 s on the
  // 4,096-context model, against 0.57 s for a 256-token one, read whole between two pieces).
  const decoder = await decoderSession();
  await withBatch(decoder, async (batched) => {
    const reads: string[] = [];
    const first = batched.sequence();
    const second = batched.sequence();
    const secondStep = Promise.withResolvers<SampledStep>();
    onPromptReads(decoder, (read) => {
      reads.push(read.first >= 97 ? "A" : "B");
      // The second prompt arrives while the first one's first piece is read.
      if (reads.length > 1) return;
      return () =>
        secondStep.resolve(
          noted(
            second.step(digitPrompt(600), { params: GREEDY, position: 0 }),
            reads,
            "B answered",
          ),
        );
    });
    const prompt = longPrompt(900);
    const gotFirst = await noted(
      first.step(prompt, { params: GREEDY, position: 0 }),
      reads,
      "A answered",
    );
    const gotSecond = await secondStep.promise;
    first.close();
    second.close();
    const firstPieces = reads.filter((r) => r === "A").length;
    assert.ok(firstPieces >= 3, `the first prompt is read in pieces: ${reads.join(" ")}`);
    assert.ok(
      reads.indexOf("B") < reads.lastIndexOf("A"),
      `the second prompt waited for the first one's whole prefill: ${reads.join(" ")}`,
    );
    // One piece each in turn: the second waited for the piece being read when it came, no more.
    assert.deepEqual(reads.slice(0, 4), ["A", "B", "A", "B"], reads.join(" "));
    assert.equal(gotFirst.tokenId, await solo(decoder, prompt));
    assert.equal(gotSecond.tokenId, await solo(decoder, digitPrompt(600)));
  });
});

Deno.test("while a stream decodes, two long prompts take turns one piece each", async () => {
  // Before, the second waited for every piece of the first (a 129-token prompt behind a
  // 3,000-token one, a stream decoding: 1.5 s, against 80 ms for a 128-token one).
  const decoder = await decoderSession();
  await withBatch(decoder, async (batched) => {
    const stream = await decodingStream(batched, shortPrompt(5));
    const running = stream.sequence;
    const reads: string[] = [];
    const first = batched.sequence();
    const second = batched.sequence();
    const secondStep = Promise.withResolvers<SampledStep>();
    onPromptReads(decoder, (read) => {
      reads.push(read.first >= 97 ? "A" : "B");
      // The second prompt arrives while the first one's first piece is read.
      if (reads.length > 1) return;
      return () =>
        secondStep.resolve(
          noted(
            second.step(digitPrompt(400), { params: GREEDY, position: 0 }),
            reads,
            "B answered",
          ),
        );
    });
    const prompt = longPrompt(600);
    const firstStep = noted(
      first.step(prompt, { params: GREEDY, position: 0 }),
      reads,
      "A answered",
    );
    // The running stream keeps decoding while the long prompts are read.
    await stream.decodeUntil(tracker(firstStep));
    const gotFirst = await firstStep;
    const gotSecond = await secondStep.promise;
    assert.ok(
      reads.filter((r) => r === "A").length >= 3,
      `the first prompt is read in pieces: ${reads.join(" ")}`,
    );
    assert.deepEqual(reads.slice(0, 4), ["A", "B", "A", "B"], reads.join(" "));
    assert.equal(gotFirst.tokenId, await solo(decoder, prompt));
    assert.equal(gotSecond.tokenId, await solo(decoder, digitPrompt(400)));
    running.close();
    first.close();
    second.close();
  });
});
