/**
 * Review at stop 53 of how `/v1/chat/completions` turns a conversation into a job: the chat
 * template's end-of-turn stop (`"\nUser:"`) must stay a stop whatever `stop` the client sends
 * (as a model's end-of-turn token stays one under vLLM and OpenAI), or the model runs on into a
 * user turn it makes up and answers itself; and a message whose content is text parts
 * (`[{type:"text",text:"a"},{type:"text",text:"b"}]`, what OpenAI's clients and LangChain send)
 * keeps its parts apart as vLLM does (joined by a newline) instead of gluing their words.
 */
import { assert, assertEquals } from "./_assert.ts";
import { GENERATION_LIMITS } from "../../protocols/job.ts";
import type { ServedModelInfo } from "../../inference/inference_port.ts";
import { CHAT_TURN_STOP } from "../../server/chat_template.ts";
import { recordingApp } from "./_recording_app.ts";

const MODEL: ServedModelInfo = { cid: "bafkchatmodel", name: "chat", kind: "text" };

Deno.test("review s53: a chat request's own stop sequences are added to the end-of-turn stop, not put in its place (a list, a string, an empty list)", async () => {
  const { jobs, chat } = recordingApp(MODEL);
  await chat({ stop: ["\n\n"] });
  await chat({ stop: "END" });
  await chat({ stop: [] });
  await chat({});
  assertEquals(jobs.length, 4);
  for (const job of jobs) {
    assert(
      job.params.stop.includes(CHAT_TURN_STOP),
      `the end-of-turn stop is kept: ${JSON.stringify(job.params.stop)}`,
    );
  }
  assert(jobs[0].params.stop.includes("\n\n"), "the client's stop is kept too");
  assert(jobs[1].params.stop.includes("END"), "the client's stop is kept too");
  // No stop repeated: a job's stops are what its receipt commits to.
  for (const job of jobs) assertEquals(new Set(job.params.stop).size, job.params.stop.length);
});

Deno.test("review s53: chat stops that already end every turn (the turn stop itself, or a part of it such as a newline) take no extra slot; a full list of other stops is a 400 naming 'stop', never a job over the limit", async () => {
  const { jobs, chat } = recordingApp(MODEL);
  const full = ["a", "b", "c", "\n"].slice(0, GENERATION_LIMITS.maxStopSequences);
  // "\n" ends the output at the turn's first character, so the list stops every turn already.
  await chat({ stop: full });
  await chat({ stop: [CHAT_TURN_STOP] });
  assertEquals(jobs.map((job) => job.params.stop), [full, [CHAT_TURN_STOP]]);
  // As many stops as a job may hold, none of which ends a turn: no room for the turn's stop.
  const others = ["w", "x", "y", "z"].slice(0, GENERATION_LIMITS.maxStopSequences);
  const refused = await chat({ stop: others });
  assertEquals(refused.status, 400);
  const error = refused.error;
  assertEquals([error.code, error.param, error.type], [
    "invalid_request",
    "stop",
    "invalid_request_error",
  ]);
  assertEquals(jobs.length, 2, "the refused request made no job");
  for (const job of jobs) {
    assert(job.params.stop.length <= GENERATION_LIMITS.maxStopSequences);
  }
});

Deno.test("review s53: chat content given as text parts keeps the parts apart (joined by a newline, as vLLM does), so their words are not glued together", async () => {
  const { jobs, chat } = recordingApp(MODEL);
  await chat({
    messages: [{
      role: "user",
      content: [{ type: "text", text: "Translate this:" }, { type: "text", text: "Good morning" }],
    }],
  });
  assertEquals(jobs.length, 1);
  assertEquals(jobs[0].prompt, "User: Translate this:\nGood morning\nAssistant:");
  // One part is the string itself.
  await chat({ messages: [{ role: "user", content: [{ type: "text", text: "Hi there" }] }] });
  assertEquals(jobs[1].prompt, "User: Hi there\nAssistant:");
});
