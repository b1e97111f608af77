/**
 * A URL as the client prints it: without its username and password. Deno sends a URL's userinfo
 * (`wss://user:pass@proxy`) as Basic auth, so it is a working way to pass a reverse proxy's
 * credentials, and every error message that named the URL put them in the caller's logs.
 *
 * @module
 */

/** `user:pass@` (or `user@`) after a scheme's `//`, in text that may not parse as a URL. */
const USERINFO = /(\/\/)[^/?#@\s]*@/g;

/**
 * `url` without its username and password, for messages: a parsed URL loses them; text that is
 * not a URL (the caller's typo) loses anything between `//` and an `@`.
 *
 * @param url The URL a message names.
 * @returns Its text without credentials.
 *
 * @example
 * ```ts ignore
 * redactedUrl(new URL("wss://me:KEY@proxy/v1/stream")); // "wss://proxy/v1/stream"
 * redactedUrl("ws://me:KEY@host:99999"); // "ws://host:99999" (not a URL: the port)
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
