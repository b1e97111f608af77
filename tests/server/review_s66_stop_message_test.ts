/**
 * Review (stop 66, helper-R): the 400 for a chat `stop` list that needs a fifth slot names the
 * stop that takes no slot as JSON (`"\n"`, two characters between quotes), as it names the end of
 * turn. Written into a template literal as `"\n"`, it was a real line break between two quotes:
 * the message a client logs showed `"` and `"` on two lines instead of the stop to send.
 */
import { assert, assertEquals } from "./_assert.ts";
import type { ServedModelInfo } from "../../inference/inference_port.ts";
import { recordingApp } from "./_recording_app.ts";

const MODEL: ServedModelInfo = { cid: "bafkchatmodel", name: "chat", kind: "text" };

Deno.test("review s66: the chat 'stop' refusal names the newline stop as JSON, with no line break in the message", async () => {
  const { jobs, chat } = recordingApp(MODEL);
  const refused = await chat({ stop: ["w", "x", "y", "z"] });
  assertEquals(refused.status, 400);
  const message: string = refused.error.message;
  assert(!message.includes("\n"), `a line break in the message: ${JSON.stringify(message)}`);
  assert(message.includes('"\\n"'), message);
  assertEquals(jobs.length, 0);
});
