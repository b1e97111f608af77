/**
 * Review at stop 65 of the OpenAI-compatible API as client libraries use it (the `openai`
 * package, LangChain, chat UIs): a request that samples (`temperature` above 0) without a `seed`
 * gets a fresh seed per request, as OpenAI's samples vary from call to call — a chat UI's
 * "regenerate", or N requests standing in for `n: N`, would otherwise get the same text every
 * time; and the fields the node takes one value of (`n`, `echo`) or the message roles it has no
 * use for (`tool`, `function`) are refused with a 400 that says why, not zod's bare "expected 1".
 */
import OpenAI from "openai";
import { assert, assertEquals } from "./_assert.ts";
import { VeriflowError } from "../../protocols/errors.ts";
import { GENERATION_LIMITS, type TextJob } from "../../protocols/job.ts";
import type { InferencePort, InferenceStats } from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { serve } from "../../server/serve.ts";
import { drawRequestSeed } from "../../server/request_seed.ts";

const MODEL = { cid: "bafkrecorded", name: "recorded", kind: "text" as const, contextLength: 64 };

/**
 * A node whose port records each job and refuses it (429, so the `openai` client's call rejects
 * once the job is made), with the app's seeds drawn by `drawSeed`.
 */
function recordingNode(drawSeed?: () => number) {
  const jobs: TextJob[] = [];
  const inference: InferencePort = {
    submit: (job: TextJob) => {
      jobs.push(job);
      return Promise.reject(new VeriflowError("too_many_jobs", "recorded"));
    },
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve({} as InferenceStats),
  } as unknown as InferencePort;
  const app = createApp({ inference, drawSeed });
  const abort = new AbortController();
  const server = serve({ app, port: 0, signal: abort.signal });
  const client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: "unused", maxRetries: 0 });
  return {
    jobs,
    client,
    url: server.url,
    close: async () => {
      abort.abort();
      await server.finished;
    },
  };
}

Deno.test("review s65: an OpenAI request that samples without a seed gets a fresh one per request (chat and completions, streamed or not); a seed sent, and a greedy request, keep theirs", async () => {
  let draws = 0;
  const node = recordingNode(() => 1000 + ++draws);
  const chat = (body: Record<string, unknown>) =>
    node.client.chat.completions.create({
      model: "recorded",
      messages: [{ role: "user", content: "Hi" }],
      ...body,
    } as OpenAI.ChatCompletionCreateParamsNonStreaming).catch(() => undefined);
  const completion = (body: Record<string, unknown>) =>
    node.client.completions.create({
      model: "recorded",
      prompt: "Hi",
      ...body,
    } as OpenAI.CompletionCreateParamsNonStreaming).catch(() => undefined);
  try {
    await chat({ temperature: 0.8 });
    await chat({ temperature: 0.8 }); // "regenerate": the same request again
    await chat({ temperature: 0.8, stream: true });
    await completion({ temperature: 1, seed: null });
    await completion({ temperature: 1, seed: 7 }); // the client's seed: reproducible
    await chat({ temperature: 0.8, seed: 0 }); // 0 is a seed like any other
    await chat({}); // greedy by default: nothing to draw
    await completion({ temperature: 0 });
    await completion({ temperature: 1e-7 }); // below MIN_SAMPLING_TEMPERATURE: greedy
    await completion({ temperature: 1, top_p: 0 }); // the most likely token only: greedy
    assertEquals(
      node.jobs.map((job) => job.params.seed),
      [1001, 1002, 1003, 1004, 7, 0, 0, 0, 0, 0],
    );
    assertEquals(draws, 4);
  } finally {
    await node.close();
  }
});

Deno.test("review s65: the default seed draw is a job seed (a safe integer within GENERATION_LIMITS), whatever it draws", () => {
  for (let i = 0; i < 1000; i++) {
    const seed = drawRequestSeed();
    assert(Number.isSafeInteger(seed), String(seed));
    assert(seed >= GENERATION_LIMITS.minSeed && seed <= GENERATION_LIMITS.maxSeed, String(seed));
  }
});

Deno.test("review s65: n other than 1, echo: true and tool or function messages are 400s that say why (one choice per request, no echo, no tool calling), naming the field", async () => {
  const node = recordingNode();
  const post = async (path: string, body: Record<string, unknown>) => {
    const response = await fetch(`${node.url}/v1/${path}`, {
      method: "POST",
      body: JSON.stringify({ model: "recorded", ...body }),
    });
    return { status: response.status, error: (await response.json()).error };
  };
  try {
    for (
      const [path, body, param, says] of [
        ["chat/completions", { n: 2 }, "n", "one choice per request"],
        ["completions", { n: 3 }, "n", "one choice per request"],
        ["completions", { echo: true }, "echo", "the prompt is not echoed"],
        [
          "chat/completions",
          {
            messages: [
              { role: "user", content: "Hi" },
              { role: "tool", content: "42", tool_call_id: "call_1" },
            ],
          },
          "messages.1.role",
          "without tool calling",
        ],
        [
          "chat/completions",
          { messages: [{ role: "function", content: "42", name: "f" }] },
          "messages.0.role",
          "without tool calling",
        ],
      ] as const
    ) {
      const full = {
        ...(path === "completions"
          ? { prompt: "Hi" }
          : { messages: [{ role: "user", content: "Hi" }] }),
        ...body,
      };
      const { status, error } = await post(path, full);
      assertEquals([status, error.code, error.param], [400, "invalid_request", param], path);
      assert(error.message.includes(says), `${JSON.stringify(body)}: ${error.message}`);
    }
    // Their one value still passes (and becomes a job).
    assertEquals(
      (await post("chat/completions", { messages: [{ role: "user", content: "Hi" }], n: 1 }))
        .status,
      429,
    );
    assertEquals((await post("completions", { prompt: "Hi", n: 1, echo: false })).status, 429);
    assertEquals(node.jobs.length, 2);
  } finally {
    await node.close();
  }
});
