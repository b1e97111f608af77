/**
 * `redactedUrl` (`client/redacted_url.ts`) is public on the package's `./client` entry point, so a
 * program (`cli.ts infer` among them) names a URL it was given as the client's own messages do:
 * without its username and password, everything else kept.
 *
 * @module
 */
import { redactedUrl } from "../../client/mod.ts";
import { assertEquals } from "../server/_assert.ts";

Deno.test("redactedUrl from the ./client entry point drops the username and password of a URL, parsed or not, and keeps the rest", () => {
  assertEquals(
    redactedUrl(new URL("wss://me:KEY@proxy:8443/v1/stream?x=1")),
    "wss://proxy:8443/v1/stream?x=1",
  );
  assertEquals(redactedUrl(new URL("ws://127.0.0.1:8080/")), "ws://127.0.0.1:8080/");
  // Text that is not a URL (an out-of-range port, another scheme) loses them too.
  assertEquals(redactedUrl("ws://me:KEY@127.0.0.1:99999"), "ws://127.0.0.1:99999");
  assertEquals(redactedUrl("ftp://me@host/"), "ftp://host/");
});

// Passwords that stop the URL parsing: a base64 key holds `/` and `+`; `?`, `#` and a second `@`
// end the authority early too. Before the fix, each kept part or all of the password.
const BREAKING_PASSWORDS = ["s3cr/Et+KEY", "s3cr?Et", "s3cr#Et", "p@ss@Et"];

Deno.test("redactedUrl drops a password that stops the URL parsing (holding / ? # or @), keeping the host", () => {
  for (const password of BREAKING_PASSWORDS) {
    // `@`s in a password still parse (the authority ends at its last `@`): redacted as the parsed
    // URL, which drops the default port.
    const parsed = password === "p@ss@Et" ? "wss://proxy/" : "wss://proxy:443";
    assertEquals(redactedUrl(`wss://me:${password}@proxy:443`), parsed, password);
    assertEquals(redactedUrl(`ws://me:${password}@host:99999/v1`), "ws://host:99999/v1", password);
  }
});

Deno.test("redactedUrl drops a password that stops the URL parsing from a message that names the URL", () => {
  for (const password of BREAKING_PASSWORDS) {
    const message = `Invalid URL: 'wss://me:${password}@proxy:443' (and ws://u:${password}@h)`;
    const shown = redactedUrl(message);
    assertEquals(shown, "Invalid URL: 'wss://proxy:443' (and ws://h)", password);
  }
});

Deno.test("redactedUrl drops the userinfo of a URL written with one slash, none or backslashes, which WHATWG parsing reads as credentials (review s74 verify1, F4)", () => {
  for (const spelling of ["ws:/", "ws:", "ws:\\\\", "ws:\\", "WS:/", " ws:/"]) {
    const text = `${spelling}me:S3CRET@127.0.0.1:18899`;
    // The premise: Deno would send these as Basic auth.
    assertEquals(URL.parse(text)?.password, "S3CRET", text);
    assertEquals(redactedUrl(text), "ws://127.0.0.1:18899/", text);
  }
  // Not a URL (port out of range), however many slashes: the userinfo still goes.
  assertEquals(redactedUrl("ws:/me:S3CRET@127.0.0.1:99999"), "ws:/127.0.0.1:99999");
  assertEquals(redactedUrl("http:me:S3CRET@127.0.0.1:99999"), "http:127.0.0.1:99999");
  assertEquals(redactedUrl("ws:\\\\me:S3CRET@h:99999"), "ws:\\\\h:99999");
  // In a message, too.
  assertEquals(
    redactedUrl("connect to ws:/me:S3CRET@127.0.0.1:18899 failed (and http:u:pw@h)"),
    "connect to ws:/127.0.0.1:18899 failed (and http:h)",
  );
  // A message without userinfo is left alone.
  assertEquals(redactedUrl("error: no answer from ws://h:1"), "error: no answer from ws://h:1");
});
