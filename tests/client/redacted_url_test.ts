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
