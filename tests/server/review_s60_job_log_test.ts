/**
 * The operator's job lines count in English: "after 1 token", "1 prompt token", not "1 tokens"
 * (review stop 60, the first-hour walk: a WebSocket closed after its first token logged
 * `job 5c99936d90c1 cancelled after 1 tokens in 17 ms`).
 */
import { assert } from "./_assert.ts";
import { eventually, startTestNode } from "./_fixtures.ts";

Deno.test("a one-token job's lines say 'token', and a many-token job's 'tokens'", async () => {
  const lines: string[] = [];
  const node = await startTestNode({ log: (line) => lines.push(line) });
  try {
    for (const max_tokens of [1, 3]) {
      const response = await fetch(`${node.url}/v1/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ prompt: "a", max_tokens }),
      });
      const body = await response.text();
      assert(response.ok, body);
    }
    await eventually(() => lines.filter((line) => line.includes(" ended (")).length === 2);
    const said = lines.join("\n");
    assert(/ ended \(length\) after 1 token in \d+ ms/.test(said), said);
    assert(/ ended \(length\) after 3 tokens in \d+ ms/.test(said), said);
    assert(/\(completions, loopback, 1 prompt token\)/.test(said), said);
    assert(!/\b1 (prompt )?tokens\b/.test(said), said);
  } finally {
    await node.close();
  }
});
