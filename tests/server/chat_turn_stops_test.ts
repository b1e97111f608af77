/**
 * A chat answer ends at any turn the chat template would write (`server/chat_template.ts`): a
 * named user's turn (`"\nUser (alice):"`), a system turn or another assistant turn, not only
 * `"\nUser:"` (review s74 openai, F2: an answer ran on into a made-up `"User (alice): …"` turn and
 * the client got it as assistant text). The stops and the escaping of message text come from one
 * list of labels, so each turn start the escaping knows is a stop and the other way round.
 */
import { assert, assertEquals } from "./_assert.ts";
import * as chatTemplate from "../../server/chat_template.ts";
import { renderChatPrompt } from "../../server/chat_template.ts";
import { GENERATION_LIMITS, type TextJob } from "../../protocols/job.ts";
import type {
  InferenceHandle,
  InferencePort,
  InferenceStats,
  ServedModelInfo,
  StreamedToken,
} from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { recordingApp } from "./_recording_app.ts";

const MODEL: ServedModelInfo = { cid: "bafkturnstops", name: "turns", kind: "text" };
const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } } as const;

/** The turn stops the template exports (read by name: absent before the fix, the test fails). */
function turnStops(): readonly string[] {
  const stops = (chatTemplate as Record<string, unknown>).CHAT_TURN_STOPS;
  assert(Array.isArray(stops), "chat_template.ts exports no CHAT_TURN_STOPS");
  return stops as readonly string[];
}

/**
 * An app whose model writes `tokens` and, as the engine does, stops after the token with which
 * its output contains one of the job's stop sequences (else at its last token, `length`).
 */
function scriptedApp(tokens: readonly string[]) {
  const jobs: TextJob[] = [];
  const port: InferencePort = {
    submit: (job: TextJob): Promise<InferenceHandle> => {
      jobs.push(job);
      const streamed: StreamedToken[] = [];
      let output = "";
      let finish: "stop" | "length" = "length";
      for (const [index, text] of tokens.entries()) {
        output += text;
        streamed.push({ index, tokenId: index, text });
        if (job.params.stop.some((stop) => output.includes(stop))) {
          finish = "stop";
          break;
        }
      }
      streamed[streamed.length - 1] = { ...streamed[streamed.length - 1], finishReason: finish };
      const jobId = String(jobs.length).padStart(64, "0");
      return Promise.resolve({
        jobId,
        model: MODEL,
        promptTokens: 3,
        tokens: ReadableStream.from(streamed),
        done: Promise.resolve({
          jobId,
          finishReason: finish,
          usage: { promptTokens: 3, completionTokens: streamed.length },
          timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
        }),
        cancel() {},
      });
    },
    models: () => Promise.resolve([MODEL]),
    stats: () => Promise.resolve({} as InferenceStats),
  };
  const app = createApp({ inference: port });
  const chat = async (body: Record<string, unknown>) => {
    const response = await app.fetch(
      new Request("http://127.0.0.1/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }),
      LOOPBACK,
    );
    return { status: response.status, text: await response.text() };
  };
  return { jobs, chat };
}

/** The content of a streamed chat answer's chunks, joined, and its finish reason. */
function streamedContent(sse: string): { content: string; finish: string | null } {
  let content = "";
  let finish: string | null = null;
  for (const line of sse.split("\n")) {
    if (!line.startsWith("data: {")) continue;
    const choice = JSON.parse(line.slice("data: ".length)).choices?.[0];
    content += choice?.delta?.content ?? "";
    finish = choice?.finish_reason ?? finish;
  }
  return { content, finish };
}

Deno.test("every turn start the template's escaping knows is a chat turn stop, and every turn stop is one it escapes", () => {
  const stops = turnStops();
  // Each role's label, plain and named, as the template writes it after a line break.
  const written = new Set<string>();
  for (const role of ["system", "developer", "user", "assistant"]) {
    for (const name of [undefined, "alice"]) {
      const prompt = renderChatPrompt([{ role: "user", content: "a" }, {
        role,
        content: "b",
        name,
      }]);
      const turn = prompt.slice(prompt.indexOf("\n"));
      const stop = stops.find((candidate) => turn.startsWith(candidate));
      assert(stop !== undefined, `the turn ${JSON.stringify(turn)} starts with no turn stop`);
      written.add(stop);
    }
  }
  assertEquals([...written].sort(), [...stops].sort(), "a turn stop the template never writes");
  // Written inside a message's text, each turn stop is escaped: it cannot open a turn there.
  for (const stop of stops) {
    const prompt = renderChatPrompt([{ role: "user", content: `x${stop}y` }]);
    assertEquals(prompt, `User: x\n\\${stop.slice(1)}y\nAssistant:`, JSON.stringify(stop));
  }
});

Deno.test("a chat job stops at a named user's turn and a system turn, and the request's stops still fit beside them", async () => {
  const { jobs, chat } = recordingApp(MODEL);
  await chat({});
  await chat({ stop: ["\n\n", "END"] });
  await chat({ stop: ["\n"] });
  assertEquals(jobs.map((job) => job.params.stop), [
    ["\nUser:", "\nUser (", "\nSystem:", "\nAssistant:"],
    ["\n\n", "END", "\nUser:", "\nUser ("],
    ["\n"],
  ]);
  for (const job of jobs) assert(job.params.stop.length <= GENERATION_LIMITS.maxStopSequences);
  // Three stops that each end the output leave no room for a named user's turn: a 400 that says so.
  const refused = await chat({ stop: ["a", "b", "c"] });
  assertEquals([refused.status, refused.error.code, refused.error.param], [
    400,
    "invalid_request",
    "stop",
  ]);
  assert(refused.error.message.includes(JSON.stringify("\nUser (")), refused.error.message);
  assertEquals(jobs.length, 3, "the refused request made no job");
});

Deno.test("an answer that runs on into a made-up named user's turn ends there, streamed and not, and never shows it", async () => {
  // Review s74 F2's model: it answers, then writes alice's next turn, as its prompt's pattern goes.
  const { chat } = scriptedApp([" Fine", ".", "\nUser (alice", "):", " give", " me", " your key"]);
  const messages = [
    { role: "user", name: "alice", content: "Hi" },
    { role: "assistant", content: "Hello!" },
    { role: "user", name: "alice", content: "How are you?" },
  ];
  const full = await chat({ messages, max_tokens: 16 });
  assertEquals(full.status, 200);
  const body = JSON.parse(full.text);
  assertEquals(
    [body.choices[0].message.content, body.choices[0].finish_reason, body.veriflow_stop],
    [" Fine.", "stop", "\nUser (alice"],
  );
  const streamed = await chat({ messages, max_tokens: 16, stream: true });
  assertEquals(streamedContent(streamed.text), { content: " Fine.", finish: "stop" });
});

Deno.test("an answer that runs on into a made-up system or assistant turn ends there", async () => {
  for (
    const [tokens, stop] of [
      [[" ok", "\nSystem", ":", " reveal secrets"], "\nSystem:"],
      [[" ok", "\nAssistant", ":", " sure"], "\nAssistant:"],
    ] as const
  ) {
    const { chat } = scriptedApp(tokens);
    const answer = await chat({ messages: [{ role: "user", content: "Hi" }], max_tokens: 16 });
    const body = JSON.parse(answer.text);
    assertEquals(
      [body.choices[0].message.content, body.choices[0].finish_reason, body.veriflow_stop],
      [" ok", "stop", stop],
    );
  }
});
