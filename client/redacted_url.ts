/**
 * A URL as the client prints it: without its username and password. Deno sends a URL's userinfo
 * (`wss://user:pass@proxy`) as Basic auth, so it is a working way to pass a reverse proxy's
 * credentials, and every error message that named the URL put them in the caller's logs.
 * Public (the `./client` entry point exports it) so that a program, `cli.ts infer` among them,
 * names the URL it was given the way the client's own messages do.
 *
 * @module
 */

/**
 * Text that is a URL attempt as a whole (a `--url` value, a string given to `connect`), not a
 * message that names one: a scheme at its very start, then any number of slashes or backslashes.
 * WHATWG parsing reads `ws:/me:pw@h`, `ws:me:pw@h` and `ws:\\me:pw@h` as `ws://me:pw@h` (a
 * special scheme's authority starts after any run of them, none included), so a typo there still
 * carries a password (review s74 verify1, F4).
 */
const URL_TEXT = /^[a-z][a-z0-9+.-]*:[\/\\]*/i;

/**
 * In a message, a scheme, its slashes or backslashes (any number, none included, as for
 * {@link URL_TEXT}) and the run of non-space characters after them, up to and including its last
 * `@`: the userinfo of a URL named there, however it is written. Greedy up to the last `@`, not
 * stopping at `/`, `?`, `#` or an `@`: a password holding them (a base64 key holds `/` and `+`)
 * is what stops the URL parsing, and each of them would otherwise end the match early and leave
 * the rest of the password printed.
 */
const USERINFO_IN_TEXT = /([a-z][a-z0-9+.-]*:[\/\\]*)\S*@/gi;

/**
 * `url` without its username and password, for messages: a parsed URL, or text that parses as
 * one with credentials, loses them (the text then comes back as the parsed URL's `href`); other
 * text (the caller's typo, a password that breaks its parsing) loses everything from its
 * scheme's slashes up to its last `@` (for a message that names a URL: up to the last `@` before
 * the next space). Everything else (scheme, host, port, path, query) is kept, so the message still says
 * where; text whose path or query held an `@` loses what came before it too, rather than risk
 * showing a password.
 *
 * @param url The URL a message names, or a message that names URLs.
 * @returns Its text without credentials.
 *
 * @example Name a URL in a message without its credentials
 * ```ts
 * import { redactedUrl } from "@veriflow/node/client";
 *
 * const parsed = redactedUrl(new URL("wss://me:KEY@proxy/v1/stream"));
 * if (parsed !== "wss://proxy/v1/stream") throw new Error(parsed);
 * // Not a URL (the port is out of range), and still without the password.
 * const typo = redactedUrl("ws://me:KEY@host:99999");
 * if (typo !== "ws://host:99999") throw new Error(typo);
 * // Not a URL because of its password ("/" ends the host), which still does not show.
 * const slash = redactedUrl("wss://me:s3cr/Et+KEY@proxy:443");
 * if (slash !== "wss://proxy:443") throw new Error(slash);
 * ```
 */
export function redactedUrl(url: string | URL): string {
  if (url instanceof URL) {
    if (url.username === "" && url.password === "") return url.href;
    const copy = new URL(url.href);
    copy.username = "";
    copy.password = "";
    return copy.href;
  }
  // What WHATWG parsing reads as a URL with credentials is redacted as that URL, however it was
  // spelled: the parser, not a pattern, decides what Deno would send as Basic auth.
  const parsed = URL.parse(url);
  if (parsed !== null && (parsed.username !== "" || parsed.password !== "")) {
    return redactedUrl(parsed);
  }
  const scheme = URL_TEXT.exec(url);
  if (scheme !== null) {
    // The whole text is the URL, a space in its password included: up to its last `@`.
    const at = url.lastIndexOf("@");
    return at < 0 ? url : scheme[0] + url.slice(at + 1);
  }
  return url.replace(USERINFO_IN_TEXT, "$1");
}
