/**
 * Through the HTTP edge, waiting jobs are served in turn per API key (`server/inference_gateway.ts`
 * passes the key's id as the queue's client; `actors/_fair_queue.ts` serves clients round-robin):
 * a key that queued several jobs first does not make another key's jobs wait behind them all; a
 * key holds at most half the queue, while a keyless node's own loopback clients (`this machine`)
 * may fill all of it. Keyless users a trusted reverse proxy relays (`http.trustedProxies`) take
 * turns as two keys do.
 *
 * @module
 */
import assert from "node:assert/strict";
import { startTestNode } from "./_fixtures.ts";

const KEY_A = "fair-key-a-0123456789abcdef";
const KEY_B = "fair-key-b-fedcba9876543210";

/**
 * A streamed completion of one token on the gated model, with `key` (none: from loopback), and
 * `headers` (a proxy's `X-Forwarded-For`).
 */
function submit(
  url: string,
  key?: string,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(`${url}/v1/completions`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      ...(key === undefined ? {} : { authorization: `Bearer ${key}` }),
      ...headers,
    },
    body: JSON.stringify({ model: "gated", prompt: "x", max_tokens: 1, stream: true }),
  });
}

/** {@link submit}, accepted (200). */
async function streamedJob(
  url: string,
  key?: string,
  headers?: Record<string, string>,
): Promise<Response> {
  const response = await submit(url, key, headers);
  // The refusal's body says why; an accepted stream's would not end while the seat is held.
  if (response.status !== 200) assert.fail(`${response.status}: ${await response.text()}`);
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

Deno.test("HTTP edge: two keyless users behind a trusted reverse proxy take the seat in turn, each its own client, under http.allowUnauthenticatedRemote", async () => {
  // The test's fetches come from 127.0.0.1: the proxy, as nginx on the node's machine would be.
  const node = await startTestNode({
    concurrency: 1,
    edge: { allowUnauthenticatedRemote: true, trustedProxies: ["127.0.0.1", "::1"] },
  });
  try {
    const jobs: [string, string][] = [
      ["a1", "198.51.100.7"],
      ["a2", "198.51.100.7"],
      ["a3", "198.51.100.7"],
      ["b1", "2001:db8:1:2::7"],
      ["b2", "2001:db8:1:2::99"], // the same /64: the same user
    ];
    const ends = new Map<string, Promise<string>>();
    for (const [label, client] of jobs) {
      // nginx's `$proxy_add_x_forwarded_for`: what the client wrote, then the address it saw.
      const headers = { "x-forwarded-for": `203.0.113.1, ${client}` };
      const response = await streamedJob(node.url, undefined, headers);
      ends.set(label, response.text().then(() => label));
    }
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

Deno.test("HTTP edge: a keyless node's own loopback clients may fill its whole queue; an API key only half of it", async () => {
  const open: Response[] = [];
  // One seat and 4 queue places: a share of 2 for a remote client.
  const local = await startTestNode({ concurrency: 1, queueLimit: 4 });
  try {
    for (let job = 0; job < 5; job++) open.push(await streamedJob(local.url)); // 1 runs, 4 wait
    const full = await submit(local.url);
    assert.equal(full.status, 429);
    const body = await full.json();
    assert.equal(body.error.code, "too_many_jobs");
    assert.doesNotMatch(body.error.message, /per-client/); // refused by the queue's total only
  } finally {
    for (const response of open.splice(0)) await response.body?.cancel().catch(() => {});
    local.gated.release(1e6);
    await local.close();
  }
  const keyed = await startTestNode({
    concurrency: 1,
    queueLimit: 4,
    edge: { apiKeys: [KEY_A, KEY_B] },
  });
  try {
    for (let job = 0; job < 3; job++) open.push(await streamedJob(keyed.url, KEY_A)); // 1 runs
    const capped = await submit(keyed.url, KEY_A);
    assert.equal(capped.status, 429);
    assert.match((await capped.json()).error.message, /per-client cap 2 of the queue's 4/);
    open.push(await streamedJob(keyed.url, KEY_B)); // another key still gets in
  } finally {
    for (const response of open) await response.body?.cancel().catch(() => {});
    keyed.gated.release(1e6);
    await keyed.close();
  }
});
