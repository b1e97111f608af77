/**
 * How deeply a JSON text nests, found in one pass over its characters before it is parsed.
 * `JSON.parse` on the event loop takes time that grows much faster than the text with its depth
 * (half a million `[` in a 1 MiB body took ~490 ms, stalling every stream on the node), while no
 * request this node takes nests more than a handful of levels: a text deeper than
 * {@link MAX_JSON_DEPTH} is refused before it reaches the parser.
 *
 * @module
 */

/**
 * Deepest nesting of arrays and objects a request body or WebSocket message may have. A chat
 * request is at most six levels deep (body, `messages`, a message, its content parts, a part,
 * an `image_url`); 64 leaves every client's shape ample room and keeps the parser's work linear.
 */
export const MAX_JSON_DEPTH = 64;

const QUOTE = 0x22; // "
const BACKSLASH = 0x5c; // \
const OPEN_ARRAY = 0x5b; // [
const CLOSE_ARRAY = 0x5d; // ]
const OPEN_OBJECT = 0x7b; // {
const CLOSE_OBJECT = 0x7d; // }

/**
 * Whether `text` opens more than `limit` arrays and objects inside one another, counting only
 * brackets outside strings (a `\"` inside a string does not end it). The scan stops at the first
 * bracket past the limit, and it does not check that the text is JSON at all: the parser does
 * that next, on a text known to nest no deeper than the limit.
 *
 * @example
 * ```ts
 * import { nestsDeeperThan } from "./json_depth.ts";
 * nestsDeeperThan('{"a":[[1]]}', 2); // true
 * nestsDeeperThan('{"a":"[[[["}', 2); // false: those brackets are in a string
 * ```
 */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === BACKSLASH) i++; // the escaped character, whatever it is, is not the string's end
      else if (c === QUOTE) inString = false;
    } else if (c === QUOTE) inString = true;
    else if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (++depth > limit) return true;
    } else if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) depth--;
  }
  return false;
}
