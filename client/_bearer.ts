/**
 * The `Authorization` header an API key is sent in, checked first: a key that a header cannot
 * carry (a newline or a space copied with it, a character past ASCII) made Deno's `fetch` and
 * `WebSocket` throw a `TypeError` that quoted the header, the key with it, into the caller's
 * error and whatever log it reaches.
 *
 * @module
 */

/** A key a bearer header carries: printable ASCII, no spaces (RFC 6750's b64token is narrower). */
const CARRIABLE = /^[\x21-\x7e]+$/;

/**
 * `Bearer <key>`, or a `TypeError` that says what is wrong with the key without showing it.
 *
 * @param key The API key.
 */
export function bearerAuthorization(key: string): string {
  // Said as such: "a character a header cannot carry" sends its reader looking for a stray space.
  if (key === "") {
    throw new TypeError(
      "the API key is empty: give the key itself, or none for a node without keys",
    );
  }
  if (!CARRIABLE.test(key)) {
    throw new TypeError(
      `the API key (${key.length} characters, not shown) has a character an HTTP header cannot ` +
        `carry: a space, a line break or a letter past ASCII, perhaps copied with it`,
    );
  }
  return `Bearer ${key}`;
}
