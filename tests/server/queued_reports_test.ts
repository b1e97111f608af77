/**
 * A job that waits for a slot says so to its client: a `queued` message on `/v1/stream`, an SSE
 * comment on the OpenAI routes, between the start and the first token.
 */
import OpenAI from "openai";
import { assert, assertEquals } from "./_assert.ts";
import { startTestNode, type TestNode } from "./_fixtures.ts";
import { WsProbe } from "./_ws_probe.ts";
import { StreamClient } from "../../client/stream_client.ts";

async function withNode(body: (node: TestNode) => Promise<void>): Promise<void> {
  const node = await startTestNode({ concurrency: 1, queueLimit: 4 });
  try {
    await body(node);
  } finally {
    await node.close();
  }
}

Deno.test("WS /v1/stream: a queued job gets start, then its place in the queue, then its tokens; a job that starts at once gets no queued message", async () => {
  await withNode(async (node) => {
    const probe = await WsProbe.open(node.wsUrl);
    probe.send({ type: "infer", id: "a", model: "gated", prompt: "x", max_tokens: 1 });
    await probe.next((m) => m.type === "start" && m.id === "a");
    probe.send({ type: "infer", id: "b", model: "gated", prompt: "x", max_tokens: 1 });
    probe.send({ type: "infer", id: "c", model: "gated", prompt: "x", max_tokens: 1 });
    await probe.next((m) => m.type === "queued" && m.id === "c");
    node.gated.release(3);
    for (const id of ["a", "b", "c"]) await probe.end(id);
    const kinds = (id: string) =>
      probe.messages.filter((m) => m.id === id).map((m) =>
        m.type === "queued" ? `queued ${m.position}` : m.type
      );
    assertEquals(kinds("a"), ["start", "token", "done"]);
    assertEquals(kinds("b"), ["start", "queued 1", "token", "done"]);
    // c moved up when a ended and b got the slot.
    assertEquals(kinds("c"), ["start", "queued 2", "queued 1", "token", "done"]);
    await probe.close();
  });
});

Deno.test("StreamClient hands each queued place to onQueued, before the tokens", async () => {
  await withNode(async (node) => {
    const client = await StreamClient.connect(node.wsUrl);
    try {
      const ahead = client.infer({ model: "gated", prompt: "x", max_tokens: 1 });
      await ahead.start;
      const seen: string[] = [];
      const job = client.infer({ model: "gated", prompt: "x", max_tokens: 2 }, {
        onQueued: (position) => seen.push(`queued ${position}`),
      });
      await job.start;
      while (seen.length === 0) await new Promise((r) => setTimeout(r, 5));
      node.gated.release(3);
      for await (const token of job.tokens) seen.push(`token ${token.index}`);
      assertEquals(seen, ["queued 1", "token 0", "token 1"]);
      assertEquals((await job.done).finish_reason, "length");
      await ahead.done;
    } finally {
      client.close();
    }
  });
});

Deno.test("POST /v1/completions (stream: true): a queued job's SSE carries `: queued N` comments before its first chunk, and the openai client still reads the text", async () => {
  await withNode(async (node) => {
    const hold = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gated", prompt: "x", max_tokens: 1, stream: true }),
    });
    const response = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gated", prompt: "x", max_tokens: 2, stream: true }),
    });
    assertEquals(response.status, 200);
    const reader = response.body!.getReader();
    const decoder = new TextDecoder();
    let text = "";
    while (!text.includes("\n\n")) text += decoder.decode((await reader.read()).value);
    assertEquals(text, ": queued 1\n\n", "the first event is the place, as a comment");
    node.gated.release(3);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value);
    }
    const events = text.split("\n\n").filter((e) => e !== "");
    assertEquals(events[0], ": queued 1");
    assert(events.slice(1).every((e) => e.startsWith("data: ")), text);
    assertEquals(events.at(-1), "data: [DONE]");
    await hold.body!.cancel();

    // An OpenAI client reading a queued stream skips the comment.
    const first = await fetch(`${node.url}/v1/completions`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ model: "gated", prompt: "x", max_tokens: 1, stream: true }),
    });
    const openai = new OpenAI({ baseURL: `${node.url}/v1`, apiKey: "none" });
    const stream = await openai.completions.create({
      model: "gated",
      prompt: "x",
      max_tokens: 2,
      stream: true,
    });
    node.gated.release(3);
    let got = "";
    for await (const chunk of stream) got += chunk.choices[0]?.text ?? "";
    assertEquals(got, "ab");
    await first.body!.cancel();
  });
});
