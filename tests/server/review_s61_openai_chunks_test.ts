/**
 * Review s61 (lib3, S3): the OpenAI-style streamed chunks, Veriflow's extension fields
 * included, have exported types (`CompletionChunk`, `ChatCompletionChunk`,
 * `VeriflowChunkFields`) from `mod.ts` and `client/mod.ts`, and they are what a real node writes:
 * every chunk of its streams is checked against the types' keys, which `deno check` ties to the
 * interfaces (a key set is a `Record<keyof T, true>`: a key added to or removed from a type and
 * not here fails the check), so neither can drift from the other unnoticed. The openai package
 * reads the Veriflow fields as the docs show.
 */
import OpenAI from "openai";
import { assert, assertEquals } from "./_assert.ts";
import { startTestNode } from "./_fixtures.ts";
import { post, sseEvents } from "./_sse.ts";
import { ProverActor, proverHook, type ProverMessage } from "../../actors/prover_actor.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { Identity } from "../../protocols/identity.ts";
import { verifyReceipt } from "../../protocols/receipt.ts";
import type {
  ChatCompletionChunk,
  ChatCompletionChunkChoice,
  ChatTokenLogprob,
  CompletionChunk,
  CompletionChunkChoice,
  CompletionLogprobs,
  VeriflowChunkFields,
} from "../../client/mod.ts";
// The package's main entry point names the same types (a type-only import loads nothing).
import type * as Main from "../../mod.ts";

const _sameTypes: [
  Main.CompletionChunk,
  Main.ChatCompletionChunk,
  Main.VeriflowChunkFields,
] extends [CompletionChunk, ChatCompletionChunk, VeriflowChunkFields] ? true : never = true;

const VERIFLOW_KEYS: Record<keyof VeriflowChunkFields, true> = {
  veriflow_job_id: true,
  veriflow_stop: true,
  veriflow_receipt: true,
  veriflow_receipt_error: true,
};
const COMPLETION_CHUNK_KEYS: Record<keyof CompletionChunk, true> = {
  id: true,
  object: true,
  created: true,
  model: true,
  choices: true,
  usage: true,
  ...VERIFLOW_KEYS,
};
const CHAT_CHUNK_KEYS: Record<keyof ChatCompletionChunk, true> = { ...COMPLETION_CHUNK_KEYS };
const COMPLETION_CHOICE_KEYS: Record<keyof CompletionChunkChoice, true> = {
  index: true,
  text: true,
  logprobs: true,
  finish_reason: true,
};
const CHAT_CHOICE_KEYS: Record<keyof ChatCompletionChunkChoice, true> = {
  index: true,
  delta: true,
  logprobs: true,
  finish_reason: true,
};
const DELTA_KEYS: Record<keyof ChatCompletionChunkChoice["delta"], true> = {
  role: true,
  content: true,
};
const COMPLETION_LOGPROBS_KEYS: Record<keyof CompletionLogprobs, true> = {
  tokens: true,
  token_logprobs: true,
  top_logprobs: true,
  text_offset: true,
};
const CHAT_LOGPROBS_KEYS: Record<keyof NonNullable<ChatCompletionChunkChoice["logprobs"]>, true> = {
  content: true,
  refusal: true,
};
const CHAT_TOKEN_KEYS: Record<keyof ChatTokenLogprob, true> = {
  token: true,
  logprob: true,
  bytes: true,
  top_logprobs: true,
};
const RECEIPT_ERROR_KEYS: Record<
  keyof NonNullable<VeriflowChunkFields["veriflow_receipt_error"]>,
  true
> = { code: true, message: true };

/** Every key of `value` is one of `keys`' (what the type declares). */
function keysWithin(value: unknown, keys: Record<string, true>, what: string): void {
  assert(typeof value === "object" && value !== null, `${what}: ${JSON.stringify(value)}`);
  const extra = Object.keys(value).filter((key) => !(key in keys));
  assertEquals(extra, [], `${what} has keys its type lacks: ${JSON.stringify(value)}`);
}

function checkCompletionChunk(chunk: Record<string, unknown>): void {
  keysWithin(chunk, COMPLETION_CHUNK_KEYS, "completion chunk");
  assertEquals(chunk.object, "text_completion" satisfies CompletionChunk["object"]);
  for (const choice of chunk.choices as Record<string, unknown>[]) {
    keysWithin(choice, COMPLETION_CHOICE_KEYS, "completion choice");
    if (choice.logprobs !== null) {
      keysWithin(choice.logprobs, COMPLETION_LOGPROBS_KEYS, "completion logprobs");
    }
  }
  checkVeriflow(chunk);
}

function checkChatChunk(chunk: Record<string, unknown>): void {
  keysWithin(chunk, CHAT_CHUNK_KEYS, "chat chunk");
  assertEquals(chunk.object, "chat.completion.chunk" satisfies ChatCompletionChunk["object"]);
  for (const choice of chunk.choices as Record<string, unknown>[]) {
    keysWithin(choice, CHAT_CHOICE_KEYS, "chat choice");
    keysWithin(choice.delta, DELTA_KEYS, "chat delta");
    const logprobs = choice.logprobs as { content: unknown[] } | null;
    if (logprobs !== null) {
      keysWithin(logprobs, CHAT_LOGPROBS_KEYS, "chat logprobs");
      for (const token of logprobs.content) keysWithin(token, CHAT_TOKEN_KEYS, "chat token");
    }
  }
  checkVeriflow(chunk);
}

function checkVeriflow(chunk: Record<string, unknown>): void {
  if (chunk.veriflow_receipt_error !== undefined) {
    keysWithin(chunk.veriflow_receipt_error, RECEIPT_ERROR_KEYS, "veriflow_receipt_error");
  }
}

/** A test node whose prover writes its proof data under `dir`. */
async function nodeWithProver(dir: string) {
  const provers = new ActorSystem({ name: "review-s61-chunks", maxRestarts: 0 });
  const prover = await provers.spawn<ProverMessage>({
    name: "node/prover",
    factory: () => new ProverActor({ identity: Identity.generate(), dir, sweepEveryMs: 0 }),
  });
  const node = await startTestNode({ prover: proverHook(prover) });
  node.gated.release(1_000_000); // these tests are about shapes, not timing
  return {
    node,
    close: async () => {
      await node.close();
      await provers.shutdown();
    },
  };
}

Deno.test("review s61: every chunk a node streams on /v1/completions and /v1/chat/completions has only the keys of CompletionChunk / ChatCompletionChunk, and the last carries the Veriflow fields", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s61-chunks-" });
  const { node, close } = await nodeWithProver(dir);
  try {
    const completion = await sseEvents(
      await post(node, "/v1/completions", {
        model: "gated",
        prompt: "x",
        max_tokens: 8,
        stop: "de",
        logprobs: 2,
        stream: true,
        stream_options: { include_usage: true },
      }),
    );
    completion.forEach(checkCompletionChunk);
    const last = completion.findLast((c) => c.veriflow_job_id !== undefined) as unknown as
      | CompletionChunk
      | undefined;
    assert(last !== undefined, JSON.stringify(completion));
    assertEquals(last.veriflow_stop, "de");
    assert(last.veriflow_receipt !== undefined, JSON.stringify(last));
    const text = completion.flatMap((c) => (c as unknown as CompletionChunk).choices)
      .map((choice) => choice.text).join("");
    assertEquals(text, "abc");
    const check = verifyReceipt(last.veriflow_receipt, { output: text + last.veriflow_stop });
    assert(check.ok, JSON.stringify(check));
    assert(completion.at(-1)!.usage !== null, "include_usage: the last chunk has the usage");

    const chat = await sseEvents(
      await post(node, "/v1/chat/completions", {
        model: "gated",
        messages: [{ role: "user", content: "x" }],
        max_tokens: 4,
        logprobs: true,
        top_logprobs: 2,
        stream: true,
      }),
    );
    chat.forEach(checkChatChunk);
    const end = chat.at(-1) as unknown as ChatCompletionChunk;
    assertEquals(typeof end.veriflow_job_id, "string");
    assert(end.veriflow_receipt !== undefined, JSON.stringify(end));
  } finally {
    await close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("review s61: a chunk whose job has no receipt carries veriflow_receipt_error as its type says", async () => {
  const root = await Deno.makeTempDir({ prefix: "veriflow-s61-chunks-" });
  const dir = `${root}/proofs`;
  const { node, close } = await nodeWithProver(dir);
  try {
    // Once the prover is up: every write of proof data fails from now on.
    await Deno.writeTextFile(dir, "not a directory");
    const events = await sseEvents(
      await post(node, "/v1/completions", {
        model: "gated",
        prompt: "x",
        max_tokens: 3,
        stream: true,
      }),
    );
    events.forEach(checkCompletionChunk);
    const last = events.at(-1) as unknown as CompletionChunk;
    assertEquals(last.veriflow_receipt, undefined);
    assertEquals(last.veriflow_receipt_error?.code, "proof_store_failed");
  } finally {
    await close();
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("review s61: the openai package's chunks carry the Veriflow fields, read as VeriflowChunkFields (the docs' example)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "veriflow-s61-chunks-" });
  const { node, close } = await nodeWithProver(dir);
  try {
    // As docs/API.md shows it.
    const client = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "unused", maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: "gated",
      messages: [{ role: "user", content: "x" }],
      max_tokens: 6,
      stop: "cd",
      stream: true,
    });
    let text = "";
    let end: VeriflowChunkFields = {};
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? "";
      const fields = chunk as typeof chunk & VeriflowChunkFields;
      if (fields.veriflow_job_id !== undefined) end = fields;
    }
    const output = text + (end.veriflow_stop ?? ""); // the text the receipt commits to
    const check = verifyReceipt(end.veriflow_receipt, { output });
    assertEquals([text, end.veriflow_stop, check.ok], ["ab", "cd", true]);
  } finally {
    await close();
    await Deno.remove(dir, { recursive: true });
  }
});
