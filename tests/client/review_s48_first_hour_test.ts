/**
 * Review (s48) of `cli.ts infer` as the README's first hour meets it: exit 1 promises "a line
 * saying why and what to do next" (README, "Exit codes"). A newcomer who runs the README's
 * `infer` with no node up, or names a model the node does not serve, must be told what to do,
 * as `cli.ts status` already does for the first.
 *
 * @module
 */

import { assert, assertEquals } from "../server/_assert.ts";
import { startTestNode } from "../server/_fixtures.ts";
import { runInfer } from "../../client/infer_command.ts";

function captureIo() {
  const err: string[] = [];
  return { err, io: { stdout: () => {}, stderr: (t: string) => void err.push(t) } };
}

Deno.test("runInfer with no node at --url exits 1 saying to start one or to give its address", async () => {
  // A port that was free a moment ago: nothing listens on it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const { err, io } = captureIo();
  assertEquals(await runInfer(["--url", `ws://127.0.0.1:${port}`, "hi"], io), 1);
  const text = err.join("");
  assert(text.includes(`cannot connect to ws://127.0.0.1:${port}/v1/stream`), text);
  assert(text.includes("deno task start") && text.includes("--url"), text);
});

Deno.test("runInfer --model naming no model the node serves exits 1 saying where the node's models are listed", async () => {
  const node = await startTestNode();
  try {
    const { err, io } = captureIo();
    assertEquals(await runInfer(["--url", node.url, "--model", "nope", "hi"], io), 1);
    const text = err.join("");
    assert(text.includes("(unknown_model)"), text);
    assert(text.includes(`${node.url}/v1/models`), text);
    assert(text.includes("without --model"), text);
  } finally {
    await node.close();
  }
});
