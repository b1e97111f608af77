/**
 * The API keys a node accepts (`--api-key`, `http.apiKeys`, `http.apiKeysFile`), held as
 * SHA-256 digests: a key is looked up by the digest of what the client sent, so the lookup
 * takes the same time whichever key (or near miss) is tried, and logs name a key by a digest
 * prefix, never by the key.
 *
 * @module
 */
import { sha256Hex } from "../protocols/hash.ts";
import { bearerToken } from "./credentials.ts";
import type { ClientIdentity } from "./client_identity.ts";
import { EdgeError } from "./http_errors.ts";

/** Hex characters of a key's digest that name it in logs. */
const KEY_LABEL_CHARS = 8;
/** Shortest key accepted: 16 characters of a random key are beyond guessing over a network. */
export const MIN_API_KEY_CHARS = 16;
/**
 * What a key may be made of: one word of visible ASCII, as `Authorization: Bearer KEY` carries
 * it. A blank ends the token a client sends, and a header carries other characters as bytes
 * read back as Latin-1, not as the UTF-8 the key is hashed from: such a key could never match.
 */
export const API_KEY_CHARS = /^[\x21-\x7e]+$/;

/** The keys file cannot be read, or holds a key that is too short. */
export class ApiKeysFileError extends EdgeError {
  /**
   * Create it.
   *
   * @param message What is wrong with the file.
   * @param options The cause.
   */
  constructor(message: string, options?: ErrorOptions) {
    super("invalid_api_keys_file", message, options);
  }
}

/** The accepted API keys. */
export class ApiKeys {
  #ids: Set<string>;

  /**
   * Accept `keys`.
   *
   * @param keys The keys, as clients send them.
   */
  constructor(keys: Iterable<string>) {
    this.#ids = new Set([...keys].map((key) => sha256Hex(new TextEncoder().encode(key))));
  }

  /**
   * The keys of the configuration: `apiKeys` plus those of `apiKeysFile` (read now, once; one
   * key per line, blank lines and `#` comments skipped: a comment starts a line or follows a space).
   */
  static fromConfig(config: { apiKeys: readonly string[]; apiKeysFile?: string }): ApiKeys {
    const keys = [...config.apiKeys];
    if (config.apiKeysFile !== undefined) keys.push(...readKeysFile(config.apiKeysFile));
    return new ApiKeys(keys);
  }

  /** How many keys there are; 0 means the API has no keys. */
  get size(): number {
    return this.#ids.size;
  }

  /**
   * The identity of the client that sent `authorization` (the header's value), or an error
   * saying what is missing: `missing_api_key` or `invalid_api_key` (both 401).
   */
  identify(authorization: string | undefined): ClientIdentity {
    const token = bearerToken(authorization);
    if (token === undefined) {
      throw new EdgeError(
        "missing_api_key",
        "this node needs an API key: send it as 'Authorization: Bearer KEY' (ask the node's " +
          "operator for one)",
      );
    }
    const id = sha256Hex(new TextEncoder().encode(token));
    if (!this.#ids.has(id)) {
      throw new EdgeError(
        "invalid_api_key",
        "the API key is not one this node accepts; check it with the node's operator",
      );
    }
    return { label: `key ${id.slice(0, KEY_LABEL_CHARS)}`, keyId: id };
  }
}

function readKeysFile(path: string): string[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (cause) {
    throw new ApiKeysFileError(
      `cannot read the API keys file ${path} (http.apiKeysFile): ${(cause as Error).message}`,
      { cause },
    );
  }
  const keys: string[] = [];
  for (const [index, line] of text.split("\n").entries()) {
    // A comment starts the line or follows a space: a key may hold `#` (`--api-key` takes any
    // visible ASCII), and cut at it, the file's key was not the one clients send (review s52).
    const key = line.replace(/(^|\s)#.*/, "").trim();
    if (key === "") continue;
    if (key.length < MIN_API_KEY_CHARS || !API_KEY_CHARS.test(key)) {
      throw new ApiKeysFileError(
        `${path}, line ${index + 1}: an API key is one word of at least ${MIN_API_KEY_CHARS} ` +
          `visible ASCII characters (generate one with: openssl rand -hex 24)`,
      );
    }
    keys.push(key);
  }
  return keys;
}
