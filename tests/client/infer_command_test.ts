import { assert, assertEquals } from "../server/_assert.ts";
import { directText, startTestNode } from "../server/_fixtures.ts";
import { runInfer } from "../../client/infer_command.ts";

function captureIo() {
  const out: string[] = [];
  const err: string[] = [];
  return {
    out,
    err,
    io: { stdout: (t: string) => void out.push(t), stderr: (t: string) => void err.push(t) },
  };
}

Deno.test("runInfer streams the tokens to stdout and a summary line to stderr", async () => {
  const node = await startTestNode();
  try {
    const { out, err, io } = captureIo();
    const status = await runInfer([
      "--url",
      node.url.replace("http:", "ws:"),
      "--max-tokens",
      "24",
      "Hello",
      "world",
    ], io);
    assertEquals(status, 0);
    assertEquals(out.join(""), await directText(node.model, "Hello world", { maxTokens: 24 }));
    assert(out.length > 1, "tokens arrive as separate writes, not one block");
    const summary = err.join("");
    assert(
      /\[\d+ tokens, [\d.]+ tok\/s, ttft [\d.]+ ms, finish (stop|length), job [0-9a-f]{12}\]/.test(
        summary,
      ),
      summary,
    );
  } finally {
    await node.close();
  }
});

Deno.test("runInfer reports a server refusal with its code and exits 1", async () => {
  const node = await startTestNode();
  try {
    const { err, io } = captureIo();
    assertEquals(await runInfer(["--url", node.url, "--model", "nope", "hi"], io), 1);
    assert(err.join("").includes("(unknown_model)"), err.join(""));
  } finally {
    await node.close();
  }
});

Deno.test("runInfer exits 2 on usage errors and 1 when the node is unreachable", async () => {
  let captured = captureIo();
  assertEquals(await runInfer([], captured.io), 2);
  assert(captured.err.join("").includes("no prompt"));
  captured = captureIo();
  assertEquals(await runInfer(["--max-tokens", "many", "hi"], captured.io), 2);
  captured = captureIo();
  assertEquals(await runInfer(["--bogus", "hi"], captured.io), 2);
  captured = captureIo();
  // Port 9 (discard) on loopback: nothing listens there in the test environment.
  assertEquals(await runInfer(["--url", "ws://127.0.0.1:9", "hi"], captured.io), 1);
});

Deno.test("runInfer sends the node's API key (--api-key, or VERIFLOW_API_KEY)", async () => {
  const key = "infer-key-0123456789abcdef";
  const node = await startTestNode({ edge: { apiKeys: [key] } });
  try {
    let captured = captureIo();
    assertEquals(await runInfer(["--url", node.url, "--max-tokens", "3", "hi"], captured.io), 1);
    captured = captureIo();
    assertEquals(
      await runInfer(["--url", node.url, "--api-key", key, "--max-tokens", "3", "hi"], captured.io),
      0,
    );
    captured = captureIo();
    const env = (name: string) => name === "VERIFLOW_API_KEY" ? key : undefined;
    assertEquals(
      await runInfer(["--url", node.url, "--max-tokens", "3", "hi"], { ...captured.io, env }),
      0,
    );
  } finally {
    await node.close();
  }
});
