/**
 * Finds a key written twice in one object of a JSON text. `JSON.parse` keeps the last copy of a
 * repeated key without a word, so a configuration file that repeats a section (an operator
 * appending `"http": {…}` at the end) lost the first copy's API keys and ports, and the node
 * started on defaults (review s78 F5). `node/config.ts` refuses such a file, naming the key path,
 * the streaming API a `/v1/stream` frame (`stream_session.ts`): `{"type":"infer",…,
 * "type":"cancel"}` was read as a cancel and refused for a field it did not name (review s79 F4),
 * and the OpenAI routes a request body (`openai_routes.ts`): `{"max_tokens":1,…,"max_tokens":40}`
 * ran 40 tokens behind a filter that read the first copy, and a message's second `"role"` made a
 * user turn a system turn (review s80 serve F1).
 *
 * It scans text that `JSON.parse` has accepted already: only the structure (objects, arrays,
 * strings) is followed, and each key is decoded as JSON decodes it, so `"h\u0074tp"` and
 * `"http"` are one key.
 *
 * @module
 */
import { RequestValidationError } from "./http_errors.ts";

/** An object being scanned: its keys so far and the one whose value is being read. */
interface ObjectFrame {
  kind: "object";
  keys: Set<string>;
  key?: string;
  /** The next string is a key (after `{` or `,`), not a value. */
  expectKey: boolean;
}

/** An array being scanned: the index of the element being read. */
interface ArrayFrame {
  kind: "array";
  index: number;
}

/**
 * The path of the first key written twice in one object of `text` (valid JSON), from the top:
 * object keys and array indexes; undefined when no object repeats a key.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { repeatedJsonKey } from "./repeated_json_key.ts";
 * assert.deepEqual(repeatedJsonKey('{"a": {"b": 1, "b": 2}}'), ["a", "b"]);
 * assert.equal(repeatedJsonKey('{"a": 1}'), undefined);
 * ```
 */
export function repeatedJsonKey(text: string): (string | number)[] | undefined {
  const stack: (ObjectFrame | ArrayFrame)[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    const top = stack.at(-1);
    if (c === '"') {
      const start = i;
      for (i++; text[i] !== '"'; i++) if (text[i] === "\\") i++;
      if (top?.kind !== "object" || !top.expectKey) continue;
      const key = JSON.parse(text.slice(start, i + 1)) as string;
      top.expectKey = false;
      top.key = key;
      if (top.keys.has(key)) {
        return stack.map((frame) => frame.kind === "object" ? frame.key! : frame.index);
      }
      top.keys.add(key);
    } else if (c === "{") {
      stack.push({ kind: "object", keys: new Set(), expectKey: true });
    } else if (c === "[") {
      stack.push({ kind: "array", index: 0 });
    } else if (c === "}" || c === "]") {
      stack.pop();
    } else if (c === ",") {
      if (top?.kind === "array") top.index++;
      else if (top?.kind === "object") top.expectKey = true;
    }
  }
  return undefined;
}

/**
 * The refusal of a request that writes a key twice in one object (at `path`), naming the key: the
 * client sees its real mistake, and nothing between it and the node can read a copy the node does
 * not run.
 *
 * @param path The repeated key's path, as {@link repeatedJsonKey} gives it.
 * @param where What the text was: `"body"` (HTTP) or `"frame"` (WebSocket).
 */
export function repeatedKeyError(
  path: (string | number)[],
  where: "body" | "frame",
): RequestValidationError {
  const name = path.join(".");
  return new RequestValidationError(
    "invalid_request",
    `key ${JSON.stringify(name)} written twice in one object of the ${where} (JSON keeps only ` +
      `the last): send each key once`,
    name,
  );
}
