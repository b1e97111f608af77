/**
 * The WebSocket API `/v1/stream` (`server/stream_routes.ts`): jobs started, streamed, cancelled and
 * refused on one socket, `queued` reports while a job waits for a slot (an SSE comment on the
 * OpenAI routes), a job's input named by CID, and a relayed job's timings in its `done`.
 */
import { assert, assertEquals } from "./_assert.ts";
import {
  directText,
  eventually,
  loadTinyModel,
  params,
  startTestNode,
  StaticModels,
  type TestNode,
} from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import {
  doneMessage,
  type WsDoneMessage,
  type WsErrorMessage,
  type WsStartMessage,
  type WsTokenMessage,
} from "../../server/stream_protocol.ts";
import type { TextJob } from "../../protocols/job.ts";
import type { TokenChunk } from "../../inference/text_model.ts";
import type { InferencePort, JobSummary } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import OpenAI from "openai";
import { StreamClient } from "../../client/stream_client.ts";
import { ActorSystem } from "../../actors/actor_system.ts";
import { InferenceActor, type InferenceMessage } from "../../actors/inference_actor.ts";
import { LocalInferencePort } from "../../inference/local_port.ts";
import { cidOf } from "../../protocols/cid.ts";
import { ChunkNotFoundError } from "../../storage/errors.ts";

async function withNode(
  options: Parameters<typeof startTestNode>[0],
  body: (node: TestNode) => Promise<void>,
): Promise<void> {
  const node = await startTestNode(options);
  try {
    await body(node);
  } finally {
    await node.close();
  }
}

Deno.test("WS /v1/stream: start, tokens and done; the streamed text equals a direct generate (greedy)", async () => {
  await withNode({}, async (node) => {
    const probe = await WsProbe.open(node.wsUrl);
    probe.send({ type: "infer", id: "a", prompt: "Once upon a time", max_tokens: 48 });
    const done = await probe.end("a") as WsDoneMessage;
    assertEquals(done.type, "done");
    const start = probe.messages[0] as WsStartMessage;
    assertEquals(start.type, "start");
    assertEquals(start.id, "a");
    assertEquals(start.model, node.model.info.cid);
    assertEquals(start.execution_provider, "cpu");
    assertEquals(start.prompt_tokens, node.model.tokenizer.encode("Once upon a time").length);
    assertEquals(start.job_id, done.job_id);
    assertEquals(
      probe.text("a"),
      await directText(node.model, "Once upon a time", { maxTokens: 48 }),
    );
    const indexes = probe.messages.filter((m) => m.type === "token").map((m) =>
      (m as { index: number }).index
    );
    assertEquals(indexes, [...indexes.keys()]);
    assertEquals(done.usage.completion_tokens, indexes.length);
    assertEquals(done.usage.total_tokens, done.usage.prompt_tokens + indexes.length);
    assert(["stop", "length"].includes(done.finish_reason));
    assert(done.timings.ttft_ms !== null && done.timings.ttft_ms <= done.timings.total_ms);
    assert(done.timings.tokens_per_s > 0);
    await probe.close();
  });
});

Deno.test("WS /v1/stream: several concurrent jobs on one socket each get their own correct stream", async () => {
  await withNode({}, async (node) => {
    const probe = await WsProbe.open(node.wsUrl);
    const prompts = { p1: "Hello", p2: "The sea", p3: "Zebra 42", p4: "héllo 世界 🚀" };
    for (const [id, prompt] of Object.entries(prompts)) {
      probe.send({ type: "infer", id, prompt, max_tokens: 40 });
    }
    for (const [id, prompt] of Object.entries(prompts)) {
      assertEquals((await probe.end(id)).type, "done");
      assertEquals(probe.text(id), await directText(node.model, prompt, { maxTokens: 40 }));
    }
    await probe.close();
  });
});

Deno.test("WS /v1/stream: a cancel message stops the job within one step and ends it with finish_reason cancelled", async () => {
  await withNode({}, async (node) => {
    const probe = await WsProbe.open(node.wsUrl);
    probe.send({ type: "infer", id: "c", model: "gated", prompt: "x", max_tokens: 50 });
    node.gated.release(3);
    await probe.next((m) => m.type === "token" && m.id === "c" && m.index === 2);
    probe.send({ type: "cancel", id: "c" });
    const done = await probe.end("c") as WsDoneMessage;
    assertEquals(done.finish_reason, "cancelled");
    node.gated.release(100);
    await new Promise((r) => setTimeout(r, 20));
    assert(node.gated.steps <= 4, `computed ${node.gated.steps} steps after a cancel at 3`);
    assertEquals((await node.stats()).jobsCancelled, 1);
    await probe.close();
  });
});

Deno.test("WS /v1/stream: closing the socket cancels its jobs while another socket's job continues", async () => {
  await withNode({}, async (node) => {
    const leaver = await WsProbe.open(node.wsUrl);
    const stayer = await WsProbe.open(node.wsUrl);
    leaver.send({ type: "infer", id: "l", model: "gated", prompt: "x", max_tokens: 50 });
    node.gated.release(2);
    await leaver.next((m) => m.type === "token" && m.index === 1);
    await leaver.close();
    await eventually(async () => (await node.stats()).jobsCancelled === 1);
    stayer.send({ type: "infer", id: "s", prompt: "Still here", max_tokens: 30 });
    assertEquals((await stayer.end("s")).type, "done");
    assertEquals(stayer.text("s"), await directText(node.model, "Still here", { maxTokens: 30 }));
    node.gated.release(100);
    await new Promise((r) => setTimeout(r, 20));
    assert(
      node.gated.steps <= 3,
      `computed ${node.gated.steps} steps after the socket closed at 2`,
    );
    const stats = await node.stats();
    assertEquals([stats.activeJobs, stats.jobsCancelled, stats.jobsFinished], [0, 1, 1]);
    await stayer.close();
  });
});

Deno.test("WS /v1/stream: bad frames and refused jobs give typed error messages and the socket stays usable", async () => {
  await withNode({ concurrency: 1, queueLimit: 0 }, async (node) => {
    const probe = await WsProbe.open(node.wsUrl);
    const errorFor = async (message: unknown, id?: string) => {
      const before = probe.messages.length;
      probe.send(message);
      const error = await probe.next((m) =>
        probe.messages.indexOf(m) >= before && m.type === "error"
      ) as WsErrorMessage;
      assertEquals(error.id, id);
      return error.code;
    };
    assertEquals(await errorFor("{not json"), "invalid_json");
    assertEquals(await errorFor({ type: "dance", id: "d" }, "d"), "invalid_request");
    assertEquals(
      await errorFor({ type: "infer", id: "t", prompt: "x", temperature: 9 }, "t"),
      "invalid_request",
    );
    assertEquals(
      await errorFor({ type: "infer", id: "m", prompt: "x", model: "nope" }, "m"),
      "unknown_model",
    );
    assertEquals(
      await errorFor({ type: "infer", id: "L", prompt: "y".repeat(300) }, "L"),
      "context_length_exceeded",
    );
    probe.send({ type: "infer", id: "g", model: "gated", prompt: "x", max_tokens: 5 });
    await probe.next((m) => m.type === "start" && m.id === "g");
    // Refused without `id`: "g" is still running, and its end is its own `done` (next test).
    assertEquals(await errorFor({ type: "infer", id: "g", prompt: "x" }), "duplicate_id");
    assertEquals(
      await errorFor({ type: "infer", id: "busy", model: "gated", prompt: "x" }, "busy"),
      "too_many_jobs",
    );
    node.gated.release(5);
    await probe.next((m) => m.type === "done" && m.id === "g");
    // Still usable after all of that.
    probe.send({ type: "infer", id: "ok", prompt: "fine", max_tokens: 8 });
    assertEquals((await probe.end("ok")).type, "done");
    await probe.close();
  });
});

Deno.test("WS /v1/stream: a frame refused while its id runs (duplicate_id, invalid) names it in refused_id, not id: the running job still ends exactly once", async () => {
  await withNode({}, async (node) => {
    const probe = await WsProbe.open(node.wsUrl);
    probe.send({ type: "infer", id: "g", model: "gated", prompt: "x", max_tokens: 3 });
    await probe.next((m) => m.type === "start" && m.id === "g");
    probe.send({ type: "infer", id: "g", prompt: "x" });
    const duplicate = await probe.next((m) => m.type === "error") as WsErrorMessage;
    assertEquals(duplicate.code, "duplicate_id");
    assertEquals(duplicate.id, undefined);
    assertEquals(duplicate.refused_id, "g");
    // The client's own mistake, not an internal error: its text is meant for the client.
    assertEquals(duplicate.message, "request id g is already running");
    probe.send({ type: "infer", id: "g", prompt: "x", temperature: 9 });
    const invalid = await probe.next((m) =>
      m.type === "error" && m.code === "invalid_request"
    ) as WsErrorMessage;
    assertEquals([invalid.id, invalid.refused_id], [undefined, "g"]);
    node.gated.release(3);
    assertEquals((await probe.end("g")).type, "done");
    // A later job's end comes after anything else the socket had for "g".
    probe.send({ type: "infer", id: "after", prompt: "x", max_tokens: 2 });
    await probe.end("after");
    const endsOfG = probe.messages.filter((m) =>
      (m.type === "done" || m.type === "error") && m.id === "g"
    );
    assertEquals(endsOfG.map((m) => m.type), ["done"]);
    await probe.close();
  });
});

Deno.test("WS /v1/stream: done carries the prover's receipt, byte strings as hex", async () => {
  const prover = async (job: TextJob, jobId: string, chunks: ReadableStream<TokenChunk>) => {
    let count = 0;
    for await (const _ of chunks) count++;
    return { jobId, model: job.model, count, signature: new Uint8Array([0xde, 0xad, 0xbe, 0xef]) };
  };
  await withNode({ prover }, async (node) => {
    const probe = await WsProbe.open(node.wsUrl);
    probe.send({ type: "infer", id: "r", prompt: "receipt please", max_tokens: 12 });
    const done = await probe.end("r") as WsDoneMessage;
    assertEquals(done.receipt, {
      jobId: done.job_id,
      model: node.model.info.cid,
      count: done.usage.completion_tokens,
      signature: "deadbeef",
    });
    await probe.close();
  });
});

Deno.test("GET /v1/stream without an Upgrade header answers 426 in the OpenAI error shape", async () => {
  await withNode({}, async (node) => {
    const response = await fetch(`${node.url}/v1/stream`);
    assertEquals(response.status, 426);
    assertEquals((await response.json()).error.code, "upgrade_required");
  });
});

Deno.test("GET /v1/stream with an Upgrade header but no WebSocket handshake answers 400 in the OpenAI error shape, naming what is wrong", async () => {
  await withNode({}, async (node) => {
    const response = await fetch(`${node.url}/v1/stream`, {
      headers: { upgrade: "websocket", connection: "Upgrade" },
    });
    assertEquals(response.status, 400);
    const { error } = await response.json();
    assertEquals([error.code, error.type], ["invalid_request", "invalid_request_error"]);
    assert(/WebSocket handshake/.test(error.message), error.message);
  });
});

Deno.test("WS /v1/stream: a cancel right after the infer (before the job is accepted) ends in done/cancelled, and the job's start and cancel are logged", async () => {
  const log: string[] = [];
  const node = await startTestNode({ log: (line) => log.push(line) });
  // A port that holds the submission until the test lets it through, so the cancel is sure to
  // arrive while the job is being submitted.
  const submitted = Promise.withResolvers<void>();
  const proceed = Promise.withResolvers<void>();
  const port: InferencePort = {
    submit: async (job, options) => {
      submitted.resolve();
      await proceed.promise;
      return await node.port.submit(job, options);
    },
    models: () => node.port.models(),
    stats: () => node.port.stats(),
  };
  const app = createApp({ inference: port, log: (line) => log.push(line) });
  const abort = new AbortController();
  const server = serve({ app, signal: abort.signal });
  try {
    const probe = await WsProbe.open(`${server.url.replace("http:", "ws:")}/v1/stream`);
    probe.send({ type: "infer", id: "c", model: "gated", prompt: "x", max_tokens: 5 });
    await submitted.promise;
    probe.send({ type: "cancel", id: "c" });
    // Frames are handled in order: once this one is answered, the cancel has been handled.
    probe.send("{not json");
    await probe.next((m) => m.type === "error" && m.code === "invalid_json");
    proceed.resolve();
    const end = await probe.end("c");
    assertEquals(end.type, "done", JSON.stringify(end));
    assertEquals((end as WsDoneMessage).finish_reason, "cancelled");
    await eventually(async () => (await node.stats()).jobsCancelled === 1);
    const jobId = (end as WsDoneMessage).job_id.slice(0, 12);
    await eventually(() => log.some((line) => line.startsWith(`job ${jobId} cancelled`)));
    assert(
      log.some((line) => line.startsWith(`job ${jobId} started (ws, loopback`)),
      log.join("\n"),
    );
    await probe.close();
  } finally {
    abort.abort();
    await server.finished;
    await node.close();
  }
});

Deno.test("Each job's start and end are logged with how it came in", async () => {
  const log: string[] = [];
  await withNode({ log: (line) => log.push(line) }, async (node) => {
    const response = await fetch(`${node.url}/v1/chat/completions`, {
      method: "POST",
      body: JSON.stringify({ messages: [{ role: "user", content: "Hi" }], max_tokens: 3 }),
    });
    const { veriflow_job_id: id } = await response.json();
    await eventually(() => log.some((line) => line.startsWith(`job ${id.slice(0, 12)} ended`)));
    assert(log.some((line) => line.startsWith(`job ${id.slice(0, 12)} started (chat, loopback`)));
  });
});

Deno.test("WS /v1/stream: logprobs N puts each token's logprob and its N most likely tokens on the token message; without it, token messages are unchanged", async () => {
  await withNode({}, async (node) => {
    const prompt = "Once upon a time";
    const N = 4;
    const expected: Partial<WsTokenMessage>[] = [];
    const ids = node.model.tokenizer.encode(prompt);
    for await (
      const c of node.model.generate(ids, params({ maxTokens: 10 }), { topLogprobs: N })
    ) {
      expected.push({
        index: c.index,
        token_id: c.tokenId,
        text: c.text,
        logprob: c.fingerprint.logProb,
        top_logprobs: c.topLogprobs!.map((t) => ({
          token_id: t.tokenId,
          text: t.text,
          logprob: t.logprob,
        })),
      });
    }
    const probe = await WsProbe.open(node.wsUrl);
    const tokensOf = async (id: string, fields: Record<string, unknown>) => {
      probe.send({ type: "infer", id, prompt, max_tokens: 10, ...fields });
      assertEquals((await probe.end(id)).type, "done");
      return probe.messages.filter((m) => m.type === "token" && m.id === id)
        .map(({ type: _, id: __, ...rest }) => rest) as Partial<WsTokenMessage>[];
    };
    const withTop = await tokensOf("top", { logprobs: N });
    assertEquals(withTop, expected);
    for (const token of withTop) {
      assertEquals(token.top_logprobs![0].token_id, token.token_id);
      assertEquals(token.top_logprobs![0].logprob, token.logprob);
    }
    assertEquals(
      await tokensOf("chosen", { logprobs: 0 }),
      expected.map(({ top_logprobs: _, ...rest }) => rest),
    );
    assertEquals(
      await tokensOf("plain", {}),
      expected.map(({ top_logprobs: _, logprob: __, ...rest }) => rest),
    );
    probe.send({ type: "infer", id: "over", prompt, logprobs: 21 });
    const error = await probe.end("over") as WsErrorMessage;
    assertEquals([error.type, error.code], ["error", "invalid_request"]);
    assert(error.message.includes("'logprobs'"), error.message);
    await probe.close();
  });
});

// A job that waits for a slot says so to its client: a `queued` message on `/v1/stream`, an SSE
// comment on the OpenAI routes, between the start and the first token.

async function withQueueingNode(body: (node: TestNode) => Promise<void>): Promise<void> {
  const node = await startTestNode({ concurrency: 1, queueLimit: 4 });
  try {
    await body(node);
  } finally {
    await node.close();
  }
}

Deno.test("WS /v1/stream: a queued job gets start, then its place in the queue, then its tokens; a job that starts at once gets no queued message", async () => {
  await withQueueingNode(async (node) => {
    const probe = await WsProbe.open(node.wsUrl);
    probe.send({ type: "infer", id: "a", model: "gated", prompt: "x", max_tokens: 1 });
    await probe.next((m) => m.type === "start" && m.id === "a");
    probe.send({ type: "infer", id: "b", model: "gated", prompt: "x", max_tokens: 1 });
    probe.send({ type: "infer", id: "c", model: "gated", prompt: "x", max_tokens: 1 });
    await probe.next((m) => m.type === "queued" && m.id === "c");
    node.gated.release(3);
    for (const id of ["a", "b", "c"]) await probe.end(id);
    const kinds = (id: string) =>
      probe.messages.filter((m) => m.id === id).map((m) =>
        m.type === "queued" ? `queued ${m.position}` : m.type
      );
    assertEquals(kinds("a"), ["start", "token", "done"]);
    assertEquals(kinds("b"), ["start", "queued 1", "token", "done"]);
    // c moved up when a ended and b got the slot.
    assertEquals(kinds("c"), ["start", "queued 2", "queued 1", "token", "done"]);
    await probe.close();
  });
});

Deno.test("StreamClient hands each queued place to onQueued, before the tokens", async () => {
  await withQueueingNode(async (node) => {
    const client = await StreamClient.connect(node.wsUrl);
    try {
      const ahead = client.infer({ model: "gated", prompt: "x", max_tokens: 1 });
      await ahead.start;
      const seen: string[] = [];
      const job = client.infer({ model: "gated", prompt: "x", max_tokens: 2 }, {
        onQueued: (position) => seen.push(`queued ${position}`),
      });
      await job.start;
      while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
      node.gated.release(3);
      for await (const token of job.tokens) seen.push(`token ${token.index}`);
      assertEquals(seen, ["queued 1", "token 0", "token 1"]);
      assertEquals((await job.done).finish_reason, "length");
      await ahead.done;
    } finally {
      client.close();
    }
  });
});

Deno.test("POST /v1/completions (stream: true): a queued job's SSE carries `: queued N` comments before its first chunk, and the openai client still reads the text", async () => {
  await withQueueingNode(async (node) => {
    const hold = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gated", prompt: "x", max_tokens: 1, stream: true }),
    });
    const response = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gated", prompt: "x", max_tokens: 2, stream: true }),
    });
    assertEquals(response.status, 200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    while (!text.includes("\n\n")) text += decoder.decode((await reader.read()).value);
    assertEquals(text, ": queued 1\n\n", "the first event is the place, as a comment");
    node.gated.release(3);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    const events = text.split("\n\n").filter((e) => e !== "");
    assertEquals(events[0], ": queued 1");
    assert(events.slice(1).every((e) => e.startsWith("data: ")), text);
    assertEquals(events.at(-1), "data: [DONE]");
    await hold.body!.cancel();

    // An OpenAI client reading a queued stream skips the comment.
    const first = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gated", prompt: "x", max_tokens: 1, stream: true }),
    });
    const openai = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "none" });
    const stream = await openai.completions.create({
      model: "gated",
      prompt: "x",
      max_tokens: 2,
      stream: true,
    });
    node.gated.release(3);
    let got = "";
    for await (const chunk of stream) got += chunk.choices[0]?.text ?? "";
    assertEquals(got, "ab");
    await first.body!.cancel();
  });
});

// A job's input by CID at the edge: `veriflow_input` on `/v1/completions` and `input` on a
// WebSocket `infer` name a stored file whose text the model reads before the prompt; a value
// that cannot name one is a 400 naming the field, a file stored nowhere a 404.

const LOOPBACK = { transport: "tcp", hostname: "127.0.0.1", port: 40000 } as const;
const STORED = new TextEncoder().encode("Minutes of the meeting: the budget passed. ");
const INPUT = cidOf(STORED);

async function withApp(fn: (app: ReturnType<typeof createApp>) => Promise<void>): Promise<void> {
  const model = await loadTinyModel();
  const system = new ActorSystem({ name: "input-edge" });
  try {
    const models = new StaticModels([model]);
    const inference = await system.spawn<InferenceMessage>({
      name: "node/inference",
      factory: () => new InferenceActor({ models }),
    });
    const readInput = (cid: string) =>
      cid === INPUT
        ? Promise.resolve(STORED)
        : Promise.reject(new ChunkNotFoundError(cid, "any storage peer"));
    await fn(createApp({ inference: new LocalInferencePort({ inference, models, readInput }) }));
  } finally {
    await system.shutdown();
  }
}

async function complete(app: ReturnType<typeof createApp>, body: Record<string, unknown>) {
  const response = await app.fetch(
    new Request("http://127.0.0.1/v1/completions", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ max_tokens: 8, seed: 3, temperature: 0.7, ...body }),
    }),
    { remoteAddr: LOOPBACK },
  );
  return { status: response.status, body: await response.json() };
}

Deno.test("POST /v1/completions with veriflow_input: the model reads the stored text, then the prompt", async () => {
  await withApp(async (app) => {
    const withInput = await complete(app, { prompt: "Next: ", veriflow_input: INPUT });
    assertEquals(withInput.status, 200, JSON.stringify(withInput.body));
    const inline = await complete(app, { prompt: new TextDecoder().decode(STORED) + "Next: " });
    assertEquals(withInput.body.choices[0].text, inline.body.choices[0].text);
    assertEquals(withInput.body.usage.prompt_tokens, inline.body.usage.prompt_tokens);
  });
});

Deno.test("veriflow_input that cannot name a one-chunk file is a 400 on the field; one stored nowhere a 404", async () => {
  await withApp(async (app) => {
    const dagPb = "bafybeif7ztnhq65lumvvtr4ekcwd2ifwgm3awq4zfr3srh462rwyinlb4y";
    for (const value of [dagPb, "not-a-cid", 7]) {
      const answer = await complete(app, { prompt: "x", veriflow_input: value });
      assertEquals(answer.status, 400, JSON.stringify(answer.body));
      assertEquals(answer.body.error.param, "veriflow_input");
    }
    const missing = await complete(app, {
      prompt: "x",
      veriflow_input: cidOf(new TextEncoder().encode("never stored")),
    });
    assertEquals(missing.status, 404, JSON.stringify(missing.body));
    assertEquals(missing.body.error.code, "input_not_found");
  });
});

Deno.test("WS infer with input streams the same tokens as the stored text sent inline", async () => {
  await withApp(async (app) => {
    const abort = new AbortController();
    const server = serve({ app, port: 0, signal: abort.signal });
    const ws = await WsProbe.open(`${server.url.replace("http:", "ws:")}/v1/stream`);
    try {
      const text = async (id: string, fields: Record<string, unknown>) => {
        ws.send({ type: "infer", id, max_tokens: 8, seed: 3, temperature: 0.7, ...fields });
        return { end: await ws.end(id), out: ws.text(id) };
      };
      const a = await text("a", { prompt: "Next: ", input: INPUT });
      assertEquals(a.end.type, "done", JSON.stringify(a.end));
      const b = await text("b", { prompt: new TextDecoder().decode(STORED) + "Next: " });
      assertEquals(a.out, b.out);
      assert(a.out.length > 0);
    } finally {
      await ws.close();
      abort.abort();
      await server.finished;
    }
  });
});

Deno.test("veriflow_input on /v1/chat/completions is a 400 unsupported_field, not a chat answer that ignored the file", async () => {
  await withApp(async (app) => {
    const chat = async (body: Record<string, unknown>) => {
      const response = await app.fetch(
        new Request("http://127.0.0.1/v1/chat/completions", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({
            max_tokens: 4,
            seed: 3,
            messages: [{ role: "user", content: "Summarize the file." }],
            ...body,
          }),
        }),
        { remoteAddr: LOOPBACK },
      );
      return { status: response.status, body: await response.json() };
    };
    const refused = await chat({ veriflow_input: INPUT });
    assertEquals(refused.status, 400, JSON.stringify(refused.body));
    assertEquals(refused.body.error.code, "unsupported_field");
    assertEquals(refused.body.error.param, "veriflow_input");
    // null asks for nothing, as for the other refused fields.
    assertEquals((await chat({ veriflow_input: null })).status, 200);
  });
});

// What a streaming client receives at a job's end when the job was relayed: a router's summaries
// time only what they can see (`queueMs` and, for a cancelled job or one resumed on another worker,
// `tokensPerS` are NaN), and NaN is `null` in JSON — a `done` whose `tokens_per_s` is `null` where
// the API promises a number breaks its clients (`done.timings.tokens_per_s.toFixed(1)`, as
// `veriflow infer` prints it).

/** The `done` a client parses for `summary`. */
function onTheWire(summary: JobSummary): WsDoneMessage {
  return JSON.parse(JSON.stringify(doneMessage("a", summary)));
}

Deno.test("a relayed job's done carries numbers (or the documented null) in its timings, never a NaN turned null", () => {
  // As `_remote_job.ts` ends a cancelled job, and `failover.ts` one resumed on another worker.
  const relayed: JobSummary[] = [
    {
      jobId: "ab".repeat(32),
      finishReason: "cancelled",
      usage: { promptTokens: 3, completionTokens: 2 },
      timings: { queueMs: NaN, ttftMs: 12, totalMs: 40, tokensPerS: NaN },
    },
    {
      jobId: "ab".repeat(32),
      finishReason: "length",
      usage: { promptTokens: 3, completionTokens: 5 },
      timings: { queueMs: NaN, ttftMs: 12, totalMs: 40, tokensPerS: 125 },
    },
  ];
  for (const summary of relayed) {
    const { timings } = onTheWire(summary);
    assertEquals(typeof timings.tokens_per_s, "number", "tokens_per_s is a number");
    assert(Number.isFinite(timings.tokens_per_s));
    assertEquals(typeof timings.total_ms, "number");
    // Unknown on a node that relayed the job: said as such (null), as ttft_ms without a token.
    assert(timings.queue_ms === null || Number.isFinite(timings.queue_ms));
  }
  assertEquals(onTheWire(relayed[1]).timings.tokens_per_s, 125);
  assertEquals(onTheWire(relayed[0]).timings.tokens_per_s, 0);
});
