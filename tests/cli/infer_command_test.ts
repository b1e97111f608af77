/**
 * `cli.ts infer` (`cli/infer_command.ts`): its flags, what it prints, and the error line that
 * tells a person what to do next.
 */
import { apiKeyFromEnv } from "../../client/_api_key_variable.ts";
import { runInfer } from "../../cli/infer_command.ts";
import {
  DEFAULT_STREAM_CLOSE_TIMEOUT_MS,
  DEFAULT_STREAM_CONNECT_TIMEOUT_MS,
  MAX_STREAM_TIMEOUT_MS,
  StreamClient,
} from "../../client/stream_client.ts";
import { cidOf } from "../../protocols/cid.ts";
import { GENERATION_LIMITS } from "../../protocols/job.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { directText, eventually, startTestNode } from "../server/_fixtures.ts";
import {
  doneFrame,
  framesServer,
  scriptedServer,
  silentPort,
  stallingServer,
  startFrame,
} from "../client/_stub_servers.ts";
import { recordTimeouts } from "../client/_timers.ts";

// ---- flags, output and errors -------------------------------------------------------------------

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
      await runInfer(["--url", `${node.url}/v2`, "--api-key", key, "hi"], captured.io),
      1,
    );
    text = captured.err.join("");
    assert(/Invalid status code: 404 \(give the node's base address/.test(text), text);
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
  // Then close()'s wait for the node to answer the close (the client's `closeTimeoutMs`).
  const [connect, idle, close, ...more] = timeouts.delays;
  assertEquals(
    [connect, idle, close, more],
    [DEFAULT_STREAM_CONNECT_TIMEOUT_MS, MAX_STREAM_TIMEOUT_MS, DEFAULT_STREAM_CLOSE_TIMEOUT_MS, []],
  );
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

// ---- the README's first hour --------------------------------------------------------------------
//
// `cli.ts infer` as the README's first hour meets it: exit 1 promises "a line saying why and what
// to do next" (README, "Exit codes"). A newcomer who runs the README's `infer` with no node up, or
// names a model the node does not serve, must be told what to do, as `cli.ts status` already does
// for the first.

function captureErrors() {
  const err: string[] = [];
  return { err, io: { stdout: () => {}, stderr: (t: string) => void err.push(t) } };
}

Deno.test("runInfer with no node at --url exits 1 saying to start one or to give its address", async () => {
  // A port that was free a moment ago: nothing listens on it.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const { err, io } = captureErrors();
  assertEquals(await runInfer(["--url", `ws://127.0.0.1:${port}`, "hi"], io), 1);
  const text = err.join("");
  assert(text.includes(`cannot connect to ws://127.0.0.1:${port}/v1/stream`), text);
  assert(text.includes("deno task start") && text.includes("--url"), text);
});

Deno.test("runInfer --model naming no model the node serves exits 1 saying where the node's models are listed", async () => {
  const node = await startTestNode();
  try {
    const { err, io } = captureErrors();
    assertEquals(await runInfer(["--url", node.url, "--model", "nope", "hi"], io), 1);
    const text = err.join("");
    assert(text.includes("(unknown_model)"), text);
    assert(text.includes(`${node.url}/v1/models`), text);
    assert(text.includes("without --model"), text);
  } finally {
    await node.close();
  }
});

// ---- a node that asks to wait -------------------------------------------------------------------
//
// `cli.ts infer` (`cli/infer_command.ts`): what its error line tells a person the node asked to
// wait before retrying (a refusal's `retry_after_s`).

/**
 * A `/v1/stream` stand-in that refuses every job as the node refuses a key over its start rate
 * (`rate_limited`, with `retry_after_s`; the message is the node's).
 */
function refusingServer(retryAfterS: number): Deno.HttpServer<Deno.NetAddr> {
  return Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (request) => {
    const { socket, response } = Deno.upgradeWebSocket(request);
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      if (message.type !== "infer") return;
      socket.send(JSON.stringify({
        type: "error",
        id: message.id,
        code: "rate_limited",
        message: "this API key has started 60 jobs in the last minute, its limit " +
          "(http.perKeyRequestsPerMinute); retry after the Retry-After seconds",
        retry_after_s: retryAfterS,
      }));
    };
    return response;
  });
}

Deno.test("runInfer on a refusal with retry_after_s says how many seconds to wait (a terminal shows no Retry-After header)", async () => {
  const server = refusingServer(17);
  try {
    const err: string[] = [];
    const status = await runInfer(["--url", `ws://127.0.0.1:${server.addr.port}`, "hi"], {
      stdout: () => {},
      stderr: (text) => void err.push(text),
    });
    assertEquals(status, 1);
    const said = err.join("");
    assert(said.includes("(rate_limited)"), said);
    assert(/retry in 17 s/.test(said), said);
  } finally {
    await server.shutdown();
  }
});

// ---- an empty API key ---------------------------------------------------------------------------
//
// An empty API key. `VERIFLOW_API_KEY=` (set, but to nothing: what `export VERIFLOW_API_KEY=` or a
// CI template with the secret missing leaves) is no key: `cli.ts status` already reads it so, but
// `cli.ts infer` sent it, and the client refused it as a key holding "a character an HTTP header
// cannot carry", which an empty key does not: the job against a node that needs no key never ran,
// and the message sent its user looking for a stray space.

const emptyKeyEnv = (name: string) => name === "VERIFLOW_API_KEY" ? "" : undefined;

Deno.test("VERIFLOW_API_KEY set to nothing counts as no key, as status reads it", () => {
  assertEquals(apiKeyFromEnv(emptyKeyEnv), { key: undefined, unreadable: false });
});

Deno.test("cli.ts infer with VERIFLOW_API_KEY set to nothing runs the job on a node that needs no key, and exits 0", async () => {
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

Deno.test("an empty API key given to StreamClient.connect is said to be empty, not to hold a character a header cannot carry", async () => {
  const error = await StreamClient.connect("ws://127.0.0.1:9/v1/stream", { apiKey: "" }).then(
    () => undefined,
    (e: Error) => e,
  );
  assert(error instanceof TypeError, `connect did not reject with a TypeError: ${error}`);
  assert(/empty/.test(error.message), error.message);
  assert(!/cannot carry/.test(error.message), error.message);
});

// ---- text from a node reaches the terminal ------------------------------------------------------
//
// `cli.ts infer` (`cli/infer_command.ts`): the text it prints is what a node sent, on a router a
// remote worker's, and it went to the terminal raw. A worker that streamed escape sequences drove
// the user's terminal: set its title, wrote to its clipboard (OSC 52), hid or rewrote what was
// printed before. On a terminal, control characters other than newline and tab are now shown as
// escapes; a pipe still gets the bytes as sent. What the node says on stderr (an error's code and
// message, a receipt error's) is escaped too, always.

/** What a hostile worker streams: a clipboard write, a title change and a cleared line. */
const HOSTILE = ["Hi", "\x1b]52;c;Y3VybCBldmlsLnNo\x07", "\x1b]0;owned\x07", "\r\x1b[2K", "\n\tok"];

/** What `infer` printed on stdout, to a terminal or not. */
async function printed(stdoutIsTerminal: boolean): Promise<string> {
  const server = scriptedServer(HOSTILE.map((text, index) => ({ index, text })));
  try {
    const out: string[] = [];
    const status = await runInfer(["--url", `ws://127.0.0.1:${server.addr.port}`, "hi"], {
      stdout: (text) => void out.push(text),
      stderr: () => {},
      stdoutIsTerminal,
    });
    assertEquals(status, 0);
    return out.join("");
  } finally {
    await server.shutdown();
  }
}

Deno.test("on a terminal, infer shows a worker's control characters as escapes instead of letting them drive the terminal; newline and tab stay", async () => {
  assertEquals(
    await printed(true),
    "Hi\\x1b]52;c;Y3VybCBldmlsLnNo\\x07\\x1b]0;owned\\x07\\x0d\\x1b[2K\n\tok",
  );
});

Deno.test("piped, infer writes the text as the node sent it", async () => {
  assertEquals(await printed(false), HOSTILE.join(""));
});

/** What `infer` printed on stderr when the node ended its job with `end`. */
async function toldOnStderr(end: (id: string) => Record<string, unknown>): Promise<string> {
  const server = scriptedServer([{ index: 0, text: "Hi" }], end);
  try {
    const err: string[] = [];
    await runInfer(["--url", `ws://127.0.0.1:${server.addr.port}`, "hi"], {
      stdout: () => {},
      stderr: (text) => void err.push(text),
      stdoutIsTerminal: false,
    });
    return err.join("");
  } finally {
    await server.shutdown();
  }
}

/** A clipboard write (OSC 52) and a cleared line, as a node's error text. */
const HOSTILE_MESSAGE = "no\x1b]52;c;Y3VybCBldmlsLnNo\x07\r\x1b[2K";

Deno.test("a node's error message is shown on stderr with its control characters as escapes", async () => {
  const told = await toldOnStderr((id) => ({
    type: "error",
    id,
    code: "internal_error",
    message: HOSTILE_MESSAGE,
  }));
  assertEquals(told.includes("\x1b"), false, JSON.stringify(told));
  assertEquals(told.includes("no\\x1b]52;c;Y3VybCBldmlsLnNo\\x07\\x0d\\x1b[2K"), true, told);
  assertEquals(told.includes("error (internal_error)"), true, told);
});

Deno.test("an error code that is not a code (control characters, an object) is a protocol error on stderr, naming the field, never the code's text", async () => {
  for (const code of ["bad\x1b[2J", { x: 1 }]) {
    const told = await toldOnStderr((id) => ({ type: "error", id, code, message: 42 }));
    assertEquals(told.includes("\x1b"), false, JSON.stringify(told));
    assert(told.includes("error (stream_protocol_error): "), told);
    assert(told.includes("sent an error frame whose code is not"), told);
    assert(!told.includes("is not a function"), told);
  }
});

Deno.test("infer exits 1 on a done that counts more tokens than came (an answer cut on its way), and its summary never claims the node's count", async () => {
  const server = scriptedServer(
    [0, 1, 2].map((index) => ({ index, text: `t${index} ` })),
    (id) => doneFrame(id, 10),
  );
  try {
    const { out, err, io } = captureIo();
    assertEquals(await runInfer(["--url", `ws://127.0.0.1:${server.addr.port}`, "p"], io), 1);
    assertEquals(out.join(""), "t0 t1 t2 ");
    const told = err.join("");
    assert(told.includes("error (stream_protocol_error): "), told);
    assert(told.includes("a done that counts 10 tokens after 3"), told);
    assert(!told.includes("10 tokens,"), told);
  } finally {
    await server.shutdown();
  }
});

Deno.test("infer's summary counts the tokens that came; a cancelled done counting more, with no cancel sent, is refused, not summed up (review s77, F1)", async () => {
  const told = await toldOnStderr((id) => doneFrame(id, 1, "cancelled"));
  assert(told.includes("[1 token, "), told);
  assert(told.includes("finish cancelled"), told);
  const more = await toldOnStderr((id) => doneFrame(id, 5, "cancelled"));
  assert(more.includes("error (stream_protocol_error)"), more);
  assert(more.includes("no cancel was sent"), more);
  assert(!more.includes("[1 token, "), more);
});

Deno.test("infer shows the node's job_id in its summary with control characters as escapes", async () => {
  const jobId = "\x1b[2J\x1b]0;t\x07";
  // Its start names the same: a done naming another job than its start is refused (s77, F2).
  await using server = framesServer((id) => [
    { ...startFrame(id), job_id: jobId },
    { ...doneFrame(id, 0), job_id: jobId },
  ]);
  const err: string[] = [];
  await runInfer(["--url", `ws://127.0.0.1:${server.addr.port}`, "hi"], {
    stdout: () => {},
    stderr: (text) => void err.push(text),
  });
  const told = err.join("");
  assertEquals(told.includes("\x1b"), false, JSON.stringify(told));
  assert(told.includes("job \\x1b[2J\\x1b]0"), told);
});

Deno.test("infer cuts a node's long error message, saying how long it was", async () => {
  const message = "A".repeat(10_000);
  const told = await toldOnStderr((id) => ({ type: "error", id, code: "internal_error", message }));
  assert(told.includes("… (10000 characters)"), told.slice(-200));
  assert(told.length < 3_000, `${told.length} characters on stderr`);
});

Deno.test("a receipt error's message is shown on stderr with its control characters as escapes", async () => {
  const told = await toldOnStderr((id) => ({
    ...doneFrame(id, 1),
    receipt_error: { code: "proof_store_failed", message: HOSTILE_MESSAGE },
  }));
  assertEquals(told.includes("\x1b"), false, JSON.stringify(told));
  assertEquals(told.includes("warning: the job ended without a receipt"), true, told);
});

// ---- help, summary and flag ranges --------------------------------------------------------------
//
// `cli.ts infer` as a client user meets it: its help starts as the other commands' do (`Usage:
// cli.ts infer`, not a `veriflow` binary there is none of); a one-token job's summary says "1
// token"; and a flag outside the range docs/API.md documents is refused before anything is sent,
// naming the flag (not the wire field) with exit 2, as every other bad flag value is.

Deno.test("infer --help starts with the header the other commands use", async () => {
  const { out, io } = captureIo();
  assertEquals(await runInfer(["--help"], io), 0);
  assert(out.join("").startsWith("Usage: cli.ts infer [options] [PROMPT...]\n"), out.join(""));
});

Deno.test("infer's summary counts a one-token job as 1 token", async () => {
  const node = await startTestNode();
  try {
    const { err, io } = captureIo();
    const status = await runInfer(["--url", node.url, "--max-tokens", "1", "Hello"], io);
    assertEquals(status, 0, err.join(""));
    const summary = err.join("");
    assert(/\n\[1 token, /.test(summary), summary);
  } finally {
    await node.close();
  }
});

Deno.test("infer refuses a number flag outside its documented range, naming the flag, exit 2, before connecting", async () => {
  // The node's own bounds: the command's copy of them must agree.
  const { maxTokens, maxTemperature, maxTopK } = GENERATION_LIMITS;
  const cases: [string[], string][] = [
    [["--max-tokens", "99999"], `--max-tokens 99999 is out of range: 1 to ${maxTokens}`],
    [["--max-tokens", "0"], `--max-tokens 0 is out of range: 1 to ${maxTokens}`],
    [["--temperature", "2.5"], `--temperature 2.5 is out of range: 0 to ${maxTemperature}`],
    [["--top-p", "1.5"], "--top-p 1.5 is out of range: 0 to 1"],
    [["--top-k", `${maxTopK + 1}`], `--top-k ${maxTopK + 1} is out of range: 0 to ${maxTopK}`],
  ];
  for (const [flags, expected] of cases) {
    const { err, io } = captureIo();
    // Nothing listens on port 9: a check made after connecting would say so instead.
    const status = await runInfer(["--url", "ws://127.0.0.1:9", ...flags, "hi"], io);
    assertEquals(status, 2, `${flags.join(" ")}: ${err.join("")}`);
    // One error line, then the usage (stop 65: before, the line had no `error: ` before it).
    assert(err.join("").startsWith(`error: ${expected}\n\nUsage: cli.ts infer`), err.join(""));
  }
});

Deno.test("infer --max-tokens=-3 (or -3 as its own argument) names the flag's real range, 1 to 4096, as 0 does", async () => {
  for (const args of [["--max-tokens=-3"], ["--max-tokens", "-3"], ["--max-tokens=0"]]) {
    const captured = captureIo();
    assertEquals(await runInfer([...args, "hi"], captured.io), 2);
    const first = captured.err.join("").split("\n")[0];
    const value = args.join("=").replace("--max-tokens=", "");
    assertEquals(first, `error: --max-tokens ${value} is out of range: 1 to 4096`);
  }
});
