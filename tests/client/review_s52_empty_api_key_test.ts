/**
 * Review s52 of an empty API key. `VERIFLOW_API_KEY=` (set, but to nothing: what `export
 * VERIFLOW_API_KEY=` or a CI template with the secret missing leaves) is no key: `cli.ts status`
 * already reads it so, but `cli.ts infer` sent it, and the client refused it as a key holding "a
 * character an HTTP header cannot carry", which an empty key does not: the job against a node that
 * needs no key never ran, and the message sent its user looking for a stray space.
 */
import { assert, assertEquals } from "../server/_assert.ts";
import { startTestNode } from "../server/_fixtures.ts";
import { runInfer } from "../../client/infer_command.ts";
import { StreamClient } from "../../client/stream_client.ts";
import { apiKeyFromEnv } from "../../client/_api_key_variable.ts";

const emptyKeyEnv = (name: string) => name === "VERIFLOW_API_KEY" ? "" : undefined;

Deno.test("review s52: VERIFLOW_API_KEY set to nothing counts as no key, as status reads it", () => {
  assertEquals(apiKeyFromEnv(emptyKeyEnv), { key: undefined, unreadable: false });
});

Deno.test("review s52: cli.ts infer with VERIFLOW_API_KEY set to nothing runs the job on a node that needs no key, and exits 0", async () => {
  const node = await startTestNode();
  node.gated.release(1_000);
  try {
    const out: string[] = [];
    const err: string[] = [];
    const code = await runInfer(
      ["--url", node.url, "--model", "gated", "--max-tokens", "3", "hi"],
      { stdout: (t) => void out.push(t), stderr: (t) => void err.push(t), env: emptyKeyEnv },
    );
    assertEquals([code, out.join("")], [0, "abc"], err.join(""));
  } finally {
    await node.close();
  }
});

Deno.test("review s52: an empty API key given to StreamClient.connect is said to be empty, not to hold a character a header cannot carry", async () => {
  const error = await StreamClient.connect("ws://127.0.0.1:9/v1/stream", { apiKey: "" }).then(
    () => undefined,
    (e: Error) => e,
  );
  assert(error instanceof TypeError, `connect did not reject with a TypeError: ${error}`);
  assert(/empty/.test(error.message), error.message);
  assert(!/cannot carry/.test(error.message), error.message);
});
