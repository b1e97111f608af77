/**
 * A URL as the client prints it: without its username and password. Deno sends a URL's userinfo
 * (`wss://user:pass@proxy`) as Basic auth, so it is a working way to pass a reverse proxy's
 * credentials, and every error message that named the URL put them in the caller's logs.
 * Public (the `./client` entry point exports it) so that a program, `cli.ts infer` among them,
 * names the URL it was given the way the client's own messages do.
 *
 * @module
 */

/** `user:pass@` (or `user@`) after a scheme's `//`, in text that may not parse as a URL. */
const USERINFO = /(\/\/)[^/?#@\s]*@/g;

/**
 * `url` without its username and password, for messages: a parsed URL loses them; text that is
 * not a URL (the caller's typo) loses anything between `//` and an `@`. Everything else (scheme,
 * host, port, path, query) is kept, so the message still says where.
 *
 * @param url The URL a message names.
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
  return url.replace(USERINFO, "$1");
}
