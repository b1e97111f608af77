/**
 * Through the HTTP edge, waiting jobs are served in turn per API key (`server/inference_gateway.ts`
 * passes the key's id as the queue's client; `actors/_fair_queue.ts` serves clients round-robin):
 * a key that queued several jobs first does not make another key's jobs wait behind them all.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startTestNode } from "./_fixtures.ts";

const KEY_A = "fair-key-a-0123456789abcdef";
const KEY_B = "fair-key-b-fedcba9876543210";

/** A streamed completion of one token on the gated model, accepted (200) with `key`. */
async function streamedJob(url: string, key: string): Promise<Response> {
  const response = await fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${key}` },
    body: JSON.stringify({ model: "gated", prompt: "x", max_tokens: 1, stream: true }),
  });
  assert.equal(response.status, 200);
  return response;
}

Deno.test("HTTP edge: two API keys' waiting jobs take the model's one seat in turn, not in the order they came", async () => {
  const node = await startTestNode({ concurrency: 1, edge: { apiKeys: [KEY_A, KEY_B] } });
  try {
    // a1 takes the seat; a2, a3, then b1, b2 wait (a streamed answer starts once queued).
    const jobs: [string, string][] = [
      ["a1", KEY_A],
      ["a2", KEY_A],
      ["a3", KEY_A],
      ["b1", KEY_B],
      ["b2", KEY_B],
    ];
    const ends = new Map<string, Promise<string>>();
    for (const [label, key] of jobs) {
      const response = await streamedJob(node.url, key);
      ends.set(label, response.text().then(() => label));
    }
    // One step at a time: the job holding the seat makes its one token and ends, and only then
    // does the next one start, so the answers end in the order the jobs took the seat.
    const order: string[] = [];
    while (ends.size > 0) {
      node.gated.release(1);
      const ended = await Promise.race(ends.values());
      ends.delete(ended);
      order.push(ended);
    }
    assert.deepEqual(order, ["a1", "b1", "a2", "b2", "a3"]);
  } finally {
    await node.close();
  }
});
