import assert from "node:assert/strict";
import { collect, params, tinyModel } from "./_fixtures.ts";
import { GENERATION_LIMITS } from "../../protocols/job.ts";

const { model, cleanup } = await tinyModel();
Deno.test.afterAll(cleanup);

const PROMPT = model.tokenizer.encode("Once upon a time");
const SAMPLED = params({ maxTokens: 40, temperature: 0.9, topK: 40, topP: 0.95, seed: 1234 });

Deno.test("seeded sampling is reproducible: same seed, same tokens; another seed differs", async () => {
  const a = (await collect(model.generate(PROMPT, SAMPLED))).map((c) => c.tokenId);
  const b = (await collect(model.generate(PROMPT, SAMPLED))).map((c) => c.tokenId);
  const c = (await collect(model.generate(PROMPT, { ...SAMPLED, seed: 4321 }))).map((c) =>
    c.tokenId
  );
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

Deno.test("sampling is resumable: restarting at token k with prompt+first k tokens continues identically", async () => {
  const whole = await collect(model.generate(PROMPT, SAMPLED));
  for (const k of [1, 7, 25]) {
    const prefix = whole.slice(0, k).map((c) => c.tokenId);
    const resumed = await collect(
      model.generate([...PROMPT, ...prefix], SAMPLED, { startIndex: k }),
    );
    assert.deepEqual(resumed.map((c) => c.index), whole.slice(k).map((c) => c.index));
    assert.deepEqual(resumed.map((c) => c.tokenId), whole.slice(k).map((c) => c.tokenId));
  }
});

Deno.test("multi-byte UTF-8 streams intact: chunk texts concatenate to the whole decode, none broken", async () => {
  // The highest temperature allowed makes the model emit many bytes >= 0x80, i.e. partial
  // characters.
  const hot = params({ maxTokens: 200, temperature: GENERATION_LIMITS.maxTemperature, seed: 5 });
  const chunks = await collect(model.generate(model.tokenizer.encode("héllo 世界 🚀"), hot));
  const ids = chunks.map((c) => c.tokenId);
  assert.ok(ids.some((t) => t >= 0x80 && t < 0x100), "the test needs some non-ASCII bytes");
  const joined = chunks.map((c) => c.text).join("");
  const eos = model.info.eosTokenId;
  assert.equal(joined, model.tokenizer.decode(ids.filter((t) => t !== eos)));
  for (const chunk of chunks) assert.ok(chunk.text.isWellFormed(), "lone surrogate in a chunk");
});

Deno.test("the streaming decoder holds back partial characters of 'héllo 世界 🚀' and never emits a broken one", () => {
  const text = "héllo 世界 🚀";
  const decoder = model.tokenizer.streamDecoder();
  const pieces = model.tokenizer.encode(text).map((id) => decoder.push(id));
  pieces.push(decoder.flush());
  assert.equal(pieces.join(""), text);
  for (const p of pieces) assert.ok(!p.includes("\uFFFD") && p.isWellFormed());
  // "é" is 2 bytes, "世" 3, "🚀" 4: the first bytes of each yield "".
  assert.ok(pieces.filter((p) => p === "").length >= 1 + 2 + 2 + 3);
  assert.ok(pieces.includes("🚀"));
});

Deno.test("cancelling the stream stops compute: no model run after the last pulled chunk", async () => {
  const before = model.runCount;
  const reader = model.generate(PROMPT, params({ maxTokens: 100 })).getReader();
  for (let i = 0; i < 3; i++) assert.equal((await reader.read()).done, false);
  await reader.cancel();
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(model.runCount - before, 3, "one run per pulled chunk, none after cancel");
});

Deno.test("nothing is computed until the consumer pulls (backpressure)", async () => {
  const before = model.runCount;
  const stream = model.generate(PROMPT, params({ maxTokens: 100 }));
  await new Promise((r) => setTimeout(r, 20));
  assert.equal(model.runCount - before, 0);
  await stream.cancel();
});

Deno.test("aborting the signal errors the stream with the reason and stops within one step", async () => {
  const controller = new AbortController();
  const before = model.runCount;
  const reader = model.generate(PROMPT, params({ maxTokens: 100 }), {
    signal: controller.signal,
  }).getReader();
  await reader.read();
  await reader.read();
  const pending = reader.read(); // a step is now in flight
  controller.abort(new Error("client went away"));
  await assert.rejects(pending, /client went away/);
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(model.runCount - before <= 3, `ran ${model.runCount - before} steps`);
  assert.throws(
    () => model.generate(PROMPT, params(), { signal: controller.signal }),
    /client went away/,
  );
});

Deno.test("a stop sequence ends generation with finishReason stop after the token completing it", async () => {
  const free = await collect(model.generate(PROMPT, params({ maxTokens: 40 })));
  const text = free.map((c) => c.text).join("");
  const stop = text.slice(10, 13);
  const first = text.indexOf(stop);
  const stopped = await collect(model.generate(PROMPT, params({ maxTokens: 40, stop: [stop] })));
  const out = stopped.map((c) => c.text).join("");
  assert.equal(stopped.at(-1)?.finishReason, "stop");
  assert.equal(out, text.slice(0, first + stop.length));
});

Deno.test("temperature 0 ignores the seed: greedy output is the same for every seed", async () => {
  const a = await collect(model.generate(PROMPT, params({ maxTokens: 16, seed: 1 })));
  const b = await collect(model.generate(PROMPT, params({ maxTokens: 16, seed: 2 })));
  assert.deepEqual(a.map((c) => c.tokenId), b.map((c) => c.tokenId));
});

Deno.test("concurrent streams on one model do not interfere (each keeps its own cache)", async () => {
  const other = model.tokenizer.encode("Lorem ipsum");
  const solo = await collect(model.generate(other, SAMPLED));
  const base = await collect(model.generate(PROMPT, SAMPLED));
  const [a, b] = await Promise.all([
    collect(model.generate(PROMPT, SAMPLED)),
    collect(model.generate(other, SAMPLED)),
  ]);
  assert.deepEqual(a.map((c) => c.tokenId), base.map((c) => c.tokenId));
  assert.deepEqual(b.map((c) => c.tokenId), solo.map((c) => c.tokenId));
});
