/**
 * The dashboard's in-page receipt check (`server/dashboard/receipt_check.js`): its canonical CBOR
 * encoder writes the node's bytes, and the page says "verified" only for a receipt the node's own
 * `verifyReceipt` accepts for the same job and output; and what the socket still sends a page about
 * its own job (tokens, receipt, fraud proofs) when it falls behind or reads with an API key.
 */
import { assert, assertEquals } from "./_assert.ts";
import { JOB, OUTPUT, receiptWith } from "./_page_receipt.ts";
import {
  checkReceipt,
  encodeCanonical as inBrowser,
} from "../../server/dashboard/receipt_check.js";
import { encodeCanonical as onNode } from "../../protocols/cbor.ts";
import { toHex } from "../../protocols/hash.ts";
import {
  emptyInferenceStats,
  type InferenceHandle,
  type InferencePort,
  type JobSummary,
  type StreamedToken,
} from "../../inference/inference_port.ts";
import { createApp } from "../../server/app.ts";
import { JobMonitor } from "../../server/job_monitor.ts";
import { serve } from "../../server/serve.ts";
import { eventually } from "../_helpers/wait.ts";
import { quietSources } from "./_dashboard_sources.ts";
import { jobId, type TextJob } from "../../protocols/job.ts";
import { verifyReceipt } from "../../protocols/receipt.ts";

// The dashboard checks receipts in the browser with its own canonical CBOR encoder
// (`server/dashboard/receipt_check.js`): it must write the node's bytes (`protocols/cbor.ts`),
// or a receipt over a job with non-ASCII map keys would not verify in the page.

Deno.test("the dashboard's receipt check encodes canonical CBOR byte for byte as the node does, non-ASCII and index-like keys included", () => {
  const values = [
    { "é": 1, ab: 2, c: 3 }, // "é" is one UTF-16 unit, shorter than "ab"
    { a: 1, "10": 2, bb: [1, "x"] },
    { z: { "\uE000": 1, "𝄞": 2, "ß": null } },
    {
      kind: "text",
      model: "bafk",
      prompt: "hé",
      nonce: "n",
      params: { temperature: 0.5, topK: 0, topP: 1, seed: 7, maxTokens: 5 },
    },
  ];
  for (const value of values) assertEquals(toHex(inBrowser(value)), toHex(onNode(value)));
});

// The dashboard's in-page receipt check (`server/dashboard/receipt_check.js`): the page says
// "verified" only for a receipt the node's own `verifyReceipt` accepts for the same job and output.
// A receipt correctly signed by its worker but not well formed (a kind other than the job's,
// another format version, no commitment to its tokens — which no validator could ever challenge —,
// a field the node does not sign) is not a receipt for the job.
//
// And the socket (`server/dashboard_routes.ts`): a page that fell behind (over 4 MiB unread) lost
// its own prompt's tokens and receipt with the updates, and was left "streaming…" for good.

Deno.test("the page's receipt check says verified for a well-formed receipt of its job, as the node does", async () => {
  const receipt = receiptWith(() => {});
  assert(verifyReceipt(receipt, { job: JOB, output: OUTPUT }).ok, "the node accepts it");
  const result = await checkReceipt(receipt, { job: JOB, output: OUTPUT });
  assertEquals(result.ok, true, JSON.stringify(result));
});

Deno.test("the page's receipt check does not say verified for a signed receipt the node refuses as not well formed or not for the job", async () => {
  const cases: [string, (body: Record<string, unknown>) => void][] = [
    ["a tensor receipt for a text job", (b) => (b.kind = "tensor")],
    ["another format version", (b) => (b.v = 2)],
    ["no commitment to its tokens (unchallengeable)", (b) => delete b.commitment],
    ["no timings", (b) => delete b.timings],
    ["a negative token count", (b) => (b.tokenCount = -1)],
    ["a field the node does not sign", (b) => (b.paidTo = "someone else")],
  ];
  const wrong: string[] = [];
  for (const [name, change] of cases) {
    const receipt = receiptWith(change);
    assert(!verifyReceipt(receipt, { job: JOB, output: OUTPUT }).ok, `the node refuses ${name}`);
    const result = await checkReceipt(receipt, { job: JOB, output: OUTPUT });
    if (result.ok) wrong.push(name);
  }
  assertEquals(wrong, [], "receipts the page called verified");
});

// ---- the page's own prompt on a socket that fell behind ------------------------------------

const OPERATOR = "op-token-0123456789abcdef";

/** A masked client frame (text). */
function clientFrame(text: string): Uint8Array {
  const payload = new TextEncoder().encode(text);
  const head = payload.length < 126 ? [0x81, 0x80 | payload.length] : [
    0x81,
    0x80 | 126,
    payload.length >> 8,
    payload.length & 0xff,
  ];
  const mask = [1, 2, 3, 4];
  return new Uint8Array([...head, ...mask, ...payload.map((b, i) => b ^ mask[i % 4])]);
}

/** Reads the server's (unmasked) text frames off `conn` as they come. */
async function* serverMessages(conn: Deno.Conn, buffered: Uint8Array) {
  let data = buffered;
  const more = async () => {
    const chunk = new Uint8Array(8 << 20);
    const n = await conn.read(chunk);
    if (n === null) throw new Error("closed");
    const next = new Uint8Array(data.length + n);
    next.set(data);
    next.set(chunk.subarray(0, n), data.length);
    data = next;
  };
  let message: Uint8Array[] = [];
  while (true) {
    while (data.length < 2) await more();
    const fin = (data[0] & 0x80) !== 0;
    const opcode = data[0] & 0x0f;
    let length = data[1] & 0x7f;
    let at = 2;
    if (length === 126) {
      while (data.length < 4) await more();
      length = (data[2] << 8) | data[3];
      at = 4;
    } else if (length === 127) {
      while (data.length < 10) await more();
      length = Number(new DataView(data.buffer, data.byteOffset + 2, 8).getBigUint64(0));
      at = 10;
    }
    while (data.length < at + length) await more();
    const payload = data.slice(at, at + length);
    data = data.slice(at + length);
    if (opcode >= 8) continue; // ping, pong, close
    message.push(payload);
    if (!fin) continue;
    const whole = new Uint8Array(message.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const part of message) whole.set(part, offset), offset += part.length;
    message = [];
    yield new TextDecoder().decode(whole);
  }
}

Deno.test("a dashboard page that fell behind on its updates still gets its own prompt's tokens and receipt (only updates are dropped)", async () => {
  let ended = false;
  const port: InferencePort = {
    models: () => Promise.resolve([{ cid: "bafkmodel", name: "m", kind: "text" }]),
    stats: () => Promise.resolve(emptyInferenceStats()),
    submit: (job) => {
      const tokens = new ReadableStream<StreamedToken>({
        start(c) {
          ["a", "b", "c"].forEach((text, index) => c.enqueue({ index, tokenId: 97, text }));
          c.close();
        },
      });
      return Promise.resolve({
        jobId: jobId(job as TextJob),
        model: { cid: "bafkmodel", name: "m", kind: "text" },
        promptTokens: 1,
        tokens,
        done: Promise.resolve({
          jobId: jobId(job as TextJob),
          finishReason: "length",
          usage: { promptTokens: 1, completionTokens: 3 },
          timings: { queueMs: 0, ttftMs: 0, totalMs: 0, tokensPerS: 0 },
        } as unknown as JobSummary).finally(() => (ended = true)),
        cancel: () => {},
      } as unknown as InferenceHandle);
    },
  };
  // A large tree: the snapshot a page is sent first is more than the socket may hold unread.
  const sources = quietSources({ tree: () => ({ name: "x".repeat(24 << 20) }) });
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap(port),
    dashboard: { sources, jobs, operatorToken: OPERATOR, tickMs: 60_000 },
  });
  const server = serve({ app, hostname: "127.0.0.1", port: 0 });
  const address = new URL(server.url);
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(address.port) });
  try {
    await conn.write(new TextEncoder().encode(
      `GET /dashboard/live HTTP/1.1\r\nHost: ${address.host}\r\nUpgrade: websocket\r\n` +
        `Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n` +
        `Sec-WebSocket-Version: 13\r\nOrigin: ${server.url}\r\n\r\n`,
    ));
    // The upgrade's answer, then nothing read: the page is behind.
    let head = new Uint8Array(0);
    while (!new TextDecoder().decode(head).includes("\r\n\r\n")) {
      const chunk = new Uint8Array(1024);
      const n = await conn.read(chunk);
      if (n === null) throw new Error("closed");
      head = new Uint8Array([...head, ...chunk.subarray(0, n)]);
    }
    const split = head.findIndex((_, i) =>
      head[i] === 13 && head[i + 1] === 10 && head[i + 2] === 13 && head[i + 3] === 10
    ) + 4;
    assert(new TextDecoder().decode(head.subarray(0, split)).startsWith("HTTP/1.1 101"));
    const rest = head.slice(split);
    await conn.write(clientFrame(JSON.stringify({ type: "auth", token: OPERATOR })));
    await conn.write(clientFrame(JSON.stringify({ type: "prompt", job: JOB })));
    await eventually(() =>
      ended || undefined, "the prompt to end at the port");
    await eventually(() => jobs.snapshot().recent.length === 1 || undefined, "its end seen");
    // Now the page reads what the node held for it, then asks once more: the answer comes after
    // everything the node sent it.
    const types: string[] = [];
    for await (const text of serverMessages(conn, rest)) {
      const message = JSON.parse(text);
      types.push(message.type);
      if (message.type === "snapshot") {
        await conn.write(clientFrame(JSON.stringify({ type: "last" })));
      }
      if (message.type === "error" && message.code === "bad_message") break;
    }
    const own = types.filter((t) => t.startsWith("prompt_"));
    assertEquals(own, [
      "prompt_started",
      "prompt_token",
      "prompt_token",
      "prompt_token",
      "prompt_done",
    ], `messages read: ${types.join(", ")}`);
  } finally {
    conn.close();
    await server.shutdown();
  }
});

// ---- a fraud proof holds its job: prompt and output ----------------------------------------

Deno.test("a dashboard page reading with an API key gets no job text from a fraud proof (its job's prompt, the output's tokens), as on the rest of the socket; the operator token does", async () => {
  const KEY = "a-real-api-key-0123456789";
  const PROOF = {
    v: 1,
    kind: "fingerprint",
    job: { ...JOB, prompt: "SECRET-PROMPT of another client" },
    receipt: { jobId: "ab".repeat(32) },
    chunks: [{ index: 0, tokens: "5345435245542d4f5554505554", path: [] }],
    cited: [{ position: 0 }],
    issuedAt: 1,
    validator: "cd".repeat(32),
    sig: "ef".repeat(64),
  };
  const sources = quietSources({
    activity: {
      recent: () => [],
      subscribe: () => () => {},
      fraudProof: (id) => (id === "p1" ? JSON.parse(JSON.stringify(PROOF)) : undefined),
    },
  });
  const jobs = new JobMonitor();
  const app = createApp({
    inference: jobs.wrap({
      submit: () => Promise.reject(new Error("no jobs")),
      models: () => Promise.resolve([]),
      stats: () => Promise.resolve(emptyInferenceStats()),
    }),
    edge: { apiKeys: [KEY] },
    dashboard: { sources, jobs, operatorToken: OPERATOR, tickMs: 60_000 },
  });
  // Every client on another machine.
  const remote = { transport: "tcp", hostname: "198.51.100.9", port: 4242 } as Deno.NetAddr;
  const server = serve({
    app: { fetch: (req: Request) => app.fetch(req, { remoteAddr: remote }) },
    hostname: "127.0.0.1",
    port: 0,
  });
  const proofFor = async (token: string) => {
    const ws = new WebSocket(server.url.replace("http", "ws") + "/dashboard/live");
    const messages: { type: string; access?: string; proof?: unknown }[] = [];
    ws.onmessage = (e) => messages.push(JSON.parse(e.data));
    await new Promise((r) => (ws.onopen = r));
    const closed = new Promise((r) => (ws.onclose = r));
    ws.send(JSON.stringify({ type: "auth", token }));
    await eventually(() => messages.some((m) => m.type === "snapshot") || undefined, "let in");
    ws.send(JSON.stringify({ type: "fraud_proof", id: "p1" }));
    await eventually(() => messages.find((m) => m.type === "fraud_proof"), "the proof");
    ws.close();
    await closed;
    return JSON.stringify(messages.find((m) => m.type === "fraud_proof")!.proof);
  };
  try {
    const read = await proofFor(KEY);
    assert(!read.includes("SECRET-PROMPT"), `the prompt, to an API key: ${read}`);
    assert(!read.includes(PROOF.chunks[0].tokens), `the output's tokens, to an API key: ${read}`);
    assert(read.includes(PROOF.receipt.jobId), "the rest of the proof is there");
    const operator = await proofFor(OPERATOR);
    assert(operator.includes("SECRET-PROMPT"), "the operator sees the whole proof");
    assert(operator.includes(PROOF.chunks[0].tokens));
  } finally {
    await server.shutdown();
  }
});
