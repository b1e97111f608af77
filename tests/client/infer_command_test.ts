import { assert, assertEquals } from "../server/_assert.ts";
import { directText, eventually, startTestNode } from "../server/_fixtures.ts";
import { silentPort, stallingServer } from "./_stub_servers.ts";
import { runInfer } from "../../client/infer_command.ts";
import { cidOf } from "../../protocols/cid.ts";
import {
  DEFAULT_STREAM_CONNECT_TIMEOUT_MS,
  MAX_STREAM_TIMEOUT_MS,
} from "../../client/stream_client.ts";
import { recordTimeouts } from "./_timers.ts";

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

Deno.test("runInfer exits 1 naming the URL when the node accepts the connection but never answers (connect timeout)", async () => {
  const silent = silentPort();
  try {
    const { err, io } = captureIo();
    const url = `ws://127.0.0.1:${silent.port}`;
    assertEquals(await runInfer(["--url", url, "hi"], { ...io, connectTimeoutMs: 100 }), 1);
    assert(err.join("").includes(`no answer from ${url}/v1/stream within 0.1 s`), err.join(""));
  } finally {
    silent.close();
  }
});

Deno.test("runInfer exits 1 when a running job goes silent for --idle-timeout seconds, naming the URL and the flag", async () => {
  const server = stallingServer();
  try {
    const { out, err, io } = captureIo();
    const url = `ws://127.0.0.1:${server.addr.port}`;
    assertEquals(await runInfer(["--url", url, "--idle-timeout", "0.15", "hi"], io), 1);
    assertEquals(out.join(""), "A");
    const text = err.join("");
    assert(text.includes(`no message from ${url}/v1/stream for 0.15 s`), text);
    assert(text.includes("--idle-timeout"), text);
    assertEquals(await runInfer(["--idle-timeout", "-1", "hi"], captureIo().io), 2);
  } finally {
    await server.shutdown();
  }
});

Deno.test("runInfer: a prompt over the node's http.maxRequestBytes reports the close code and the node's reason", async () => {
  const node = await startTestNode({ edge: { maxRequestBytes: 1024 } });
  try {
    const { err, io } = captureIo();
    assertEquals(await runInfer(["--url", node.url, "x".repeat(4096)], io), 1);
    assert(/code 1009: .*http\.maxRequestBytes/.test(err.join("")), err.join(""));
  } finally {
    await node.close();
  }
});

Deno.test("runInfer: a refused upgrade says the status; 401 adds the --api-key hint, a wrong path the base-URL hint", async () => {
  const key = "infer-key-0123456789abcdef";
  const node = await startTestNode({ edge: { apiKeys: [key] } });
  try {
    let captured = captureIo();
    assertEquals(await runInfer(["--url", node.url, "hi"], captured.io), 1);
    let text = captured.err.join("");
    assert(/Invalid status code: 401\n\(pass --api-key KEY/.test(text), text);
    captured = captureIo();
    assertEquals(
      await runInfer(["--url", `${node.url}/v1`, "--api-key", key, "hi"], captured.io),
      1,
    );
    text = captured.err.join("");
    assert(/Invalid status code: 404\n\(give --url the node's base address/.test(text), text);
    // A key that was given and refused is named as refused, not asked for.
    captured = captureIo();
    assertEquals(await runInfer(["--url", node.url, "--api-key", "wrong", "hi"], captured.io), 1);
    text = captured.err.join("");
    assert(/401\n\(the node refused the API key given by --api-key: check it/.test(text), text);
    assert(!text.includes("pass --api-key"), text);
    captured = captureIo();
    const env = (name: string) => name === "VERIFLOW_API_KEY" ? "wrong" : undefined;
    assertEquals(await runInfer(["--url", node.url, "hi"], { ...captured.io, env }), 1);
    text = captured.err.join("");
    assert(/refused the API key given by VERIFLOW_API_KEY/.test(text), text);
  } finally {
    await node.close();
  }
});

Deno.test("runInfer --url that is not a node address exits 2 naming --url", async () => {
  for (const url of ["notaurl", "ftp://127.0.0.1:8080"]) {
    const { err, io } = captureIo();
    assertEquals(await runInfer(["--url", url, "hi"], io), 2);
    assert(err.join("").includes(`--url "${url}"`), err.join(""));
  }
});

Deno.test("runInfer: Ctrl-C while the job runs cancels it on the node (it stops computing) and exits 130", async () => {
  const node = await startTestNode();
  try {
    node.gated.release(1); // one token, then the model waits at its gate
    let stop: (() => void) | undefined;
    let listening = 0;
    const { err } = captureIo();
    const status = await runInfer(["--url", node.url, "--model", "gated", "hi"], {
      stdout: () => stop!(), // Ctrl-C as the first token arrives
      stderr: (text) => void err.push(text),
      onStopSignal: (listener) => {
        stop = listener;
        listening++;
        return () => listening--;
      },
    });
    assertEquals(status, 130);
    assert(err.join("").includes("interrupted"), err.join(""));
    assertEquals(listening, 0, "the signal listener is removed");
    await eventually(async () => (await node.stats()).jobsCancelled === 1, "the job cancelled");
    assertEquals((await node.stats()).activeJobs, 0);
  } finally {
    await node.close();
  }
});

Deno.test("runInfer: Ctrl-C while connecting gives up and exits 130", async () => {
  const silent = silentPort();
  try {
    const { err, io } = captureIo();
    const status = await runInfer(["--url", `ws://127.0.0.1:${silent.port}`, "hi"], {
      ...io,
      onStopSignal: (listener) => {
        queueMicrotask(listener);
        return () => {};
      },
    });
    assertEquals(status, 130);
    assert(err.join("").includes("interrupted"), err.join(""));
  } finally {
    silent.close();
  }
});

Deno.test("runInfer refuses numbers `start` refuses (0x10, 1e1, 1.5, 1e-1, -1) with exit 2, naming the flag; a negative --seed is taken", async () => {
  // Port 9 (discard) on loopback: a number that is taken gets as far as connecting (exit 1).
  const url = "ws://127.0.0.1:9";
  const refused: [string, string, string][] = [
    ["--max-tokens", "0x10", `--max-tokens expects a whole number in decimal digits, got "0x10"`],
    ["--max-tokens", "1e1", `--max-tokens expects a whole number in decimal digits, got "1e1"`],
    ["--top-k", "1.5", `--top-k expects a whole number in decimal digits, got "1.5"`],
    ["--temperature", "1e-1", `--temperature expects a decimal number such as 0.05, got "1e-1"`],
    ["--top-p", "0x1", `--top-p expects a decimal number such as 0.05, got "0x1"`],
    ["--idle-timeout", "-1", `--idle-timeout must not be negative (0 or more), got "-1"`],
    ["--seed", "1.5", `--seed expects a whole number in decimal digits, got "1.5"`],
  ];
  for (const [flag, text, message] of refused) {
    const { err, io } = captureIo();
    assertEquals(await runInfer(["--url", url, `${flag}=${text}`, "hi"], io), 2, `${flag} ${text}`);
    // Stop 65: an `error:` line, then the usage, as every command refuses a flag.
    assert(err.join("").startsWith(`error: ${message}\n\nUsage: cli.ts infer`), err.join(""));
  }
  for (const taken of [["--max-tokens", "16"], ["--temperature", ".5"], ["--seed=-7"]]) {
    const { err, io } = captureIo();
    assertEquals(await runInfer(["--url", url, ...taken, "hi"], io), 1, err.join(""));
  }
});

Deno.test("runInfer --idle-timeout past setTimeout's limit (3000000 s) waits with a 2^31−1 ms timer, never a 1 ms timer loop", async () => {
  const server = stallingServer();
  const stop = new AbortController();
  const timeouts = recordTimeouts();
  try {
    const { out, err } = captureIo();
    const status = await runInfer([
      "--url",
      `ws://127.0.0.1:${server.addr.port}`,
      "--idle-timeout",
      "3000000",
      "hi",
    ], {
      stdout: (text) => {
        out.push(text);
        stop.abort(); // the job runs and the socket is silent: the idle watch is armed
      },
      stderr: (text) => void err.push(text),
      signal: stop.signal,
    });
    assertEquals(status, 130, err.join(""));
    assertEquals(out.join(""), "A");
  } finally {
    timeouts.restore();
    await server.shutdown();
  }
  const [connect, ...idle] = timeouts.delays;
  assertEquals([connect, idle], [DEFAULT_STREAM_CONNECT_TIMEOUT_MS, [MAX_STREAM_TIMEOUT_MS]]);
});

Deno.test("runInfer --input: the node reads the stored text before the prompt; with --input the prompt may be left out", async () => {
  const stored = new TextEncoder().encode("A stored note about the sea. ");
  const input = cidOf(stored);
  const node = await startTestNode({
    readInput: (cid) => cid === input ? Promise.resolve(stored) : Promise.reject(new Error(cid)),
  });
  try {
    const url = node.url.replace("http:", "ws:");
    const withPrompt = captureIo();
    const args = ["--url", url, "--max-tokens", "12", "--input", input];
    assertEquals(await runInfer([...args, "Then"], withPrompt.io), 0, withPrompt.err.join(""));
    assertEquals(
      withPrompt.out.join(""),
      await directText(node.model, "A stored note about the sea. Then", { maxTokens: 12 }),
    );
    const alone = captureIo();
    assertEquals(await runInfer(args, alone.io), 0, alone.err.join(""));
    assertEquals(
      alone.out.join(""),
      await directText(node.model, "A stored note about the sea. ", { maxTokens: 12 }),
    );
  } finally {
    await node.close();
  }
});
