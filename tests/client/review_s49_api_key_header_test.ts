/**
 * Review s49 of an API key a header cannot carry (a line break copied with it, a letter past
 * ASCII): Deno's `fetch` and `WebSocket` refuse it with a `TypeError` that quotes the header, so
 * the key itself went into the caller's error, onto the terminal and into any log. The client
 * says what is wrong with the key without showing it, and `status` does not blame the node.
 */
import assert from "node:assert/strict";
import { StreamClient } from "../../client/stream_client.ts";
import { runStatus } from "../../client/status_command.ts";

const SECRET = "sk-very-secret-0123456789";

for (
  const [what, key] of [["a line break", `${SECRET}\nx`], ["a letter past ASCII", `${SECRET}é`]]
) {
  Deno.test(`review s49: StreamClient.connect with an API key holding ${what} rejects without showing the key`, async () => {
    const error = await StreamClient.connect("ws://127.0.0.1:9/v1/stream", { apiKey: key }).then(
      () => undefined,
      (e: Error) => e,
    );
    assert.ok(error instanceof Error, "connect did not reject");
    assert.ok(!error.message.includes(SECRET), `the key is in the error: ${error.message}`);
    assert.match(error.message, /API key/);
  });

  Deno.test(`review s49: cli.ts status with an API key holding ${what} says what is wrong with it, without showing it or blaming the node`, async () => {
    const err: string[] = [];
    const code = await runStatus(["--url", "http://127.0.0.1:9", "--api-key", key], {
      out: () => {},
      err: (line) => void err.push(line),
    });
    assert.equal(code, 2);
    const said = err.join("\n");
    assert.ok(!said.includes(SECRET), `the key is in the output: ${said}`);
    assert.match(said, /API key/);
    assert.doesNotMatch(said, /no node answered/);
  });
}
