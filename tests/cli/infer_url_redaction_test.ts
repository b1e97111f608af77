/**
 * `cli.ts infer --url` with credentials in it (`ws://me:KEY@host`, which Deno sends as Basic auth
 * to a reverse proxy) never prints them: the command's own messages that name the URL give it as
 * the client library's do (`redactedUrl`), without its username and password. stderr is a terminal
 * or a CI log as often as not.
 *
 * @module
 */
import { runInfer } from "../../cli/infer_command.ts";
import { assert, assertEquals } from "../server/_assert.ts";
import { startTestNode } from "../server/_fixtures.ts";

const KEY = "sk-SECRET-0123456789";

/** An io that keeps stderr. */
function captureErrors() {
  const err: string[] = [];
  return { err, io: { stdout: () => {}, stderr: (t: string) => void err.push(t) } };
}

Deno.test("infer --url that cannot name a node (not a URL, ftp:) is refused exit 2 without showing its username or password", async () => {
  for (const url of [`ws://me:${KEY}@127.0.0.1:99999`, `ftp://me:${KEY}@127.0.0.1/`]) {
    const { err, io } = captureErrors();
    assertEquals(await runInfer(["--url", url, "hi"], io), 2, url);
    const text = err.join("");
    // Failed before the fix: the usage line quoted --url as given.
    assert(!text.includes(KEY), text);
    assert(!text.includes("me:"), text);
    assert(text.includes("--url") && text.includes("127.0.0.1"), text); // still names what
  }
});

Deno.test("infer --url whose password stops its parsing (/ ? # or a second @) is refused exit 2 without showing any of it", async () => {
  // Port 99999 keeps each unparsable whatever its password does: nothing is ever sent.
  for (const password of ["s3cr/Et+KEY", "s3cr?Et", "s3cr#Et", "p@ss@Et"]) {
    const { err, io } = captureErrors();
    const url = `wss://me:${password}@proxy.example:99999`;
    assertEquals(await runInfer(["--url", url, "hi"], io), 2, url);
    const text = err.join("");
    assert(!text.includes("Et"), text);
    assert(text.includes("--url") && text.includes("proxy.example"), text); // still names what
  }
});

Deno.test("infer --url with credentials: the unknown-model hint names where the models are listed without them", async () => {
  const node = await startTestNode();
  try {
    const { err, io } = captureErrors();
    const url = node.url.replace("http://", `ws://me:${KEY}@`);
    assertEquals(await runInfer(["--url", url, "--model", "nope", "hi"], io), 1);
    const text = err.join("");
    assert(text.includes("(unknown_model)"), text);
    assert(text.includes(`${node.url}/v1/models`), text);
    assert(!text.includes(KEY), text);
    assert(!text.includes("me:"), text);
  } finally {
    await node.close();
  }
});
