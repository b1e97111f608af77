/**
 * Conversion of in-process values (receipts, with their `Uint8Array` signatures and hashes)
 * into plain JSON values for the client APIs: byte strings become lower-case hex, as
 * everywhere else in Veriflow's text surfaces (job ids, `sha256Hex`); `bigint`s become decimal
 * strings; `Map`s become objects. Anything already JSON passes through unchanged.
 *
 * @module
 */
import { toHex } from "../protocols/hash.ts";

/** A JSON value. */
export type JsonValue = null | boolean | number | string | JsonValue[] | {
  [key: string]: JsonValue;
};

/**
 * `value` as a JSON value (see the module comment for the conversions).
 *
 * @example
 * ```ts
 * import { toJsonValue } from "./json_value.ts";
 * toJsonValue({ sig: new Uint8Array([1, 255]) }); // { sig: "01ff" }
 * ```
 */
export function toJsonValue(value: unknown): JsonValue {
  if (value === null || value === undefined) return null;
  if (value instanceof Uint8Array) return toHex(value);
  if (typeof value === "bigint") return value.toString();
  if (typeof value === "number") return Number.isFinite(value) ? value : null;
  if (typeof value === "string" || typeof value === "boolean") return value;
  if (Array.isArray(value)) return value.map(toJsonValue);
  if (value instanceof Map) {
    const object: Record<string, JsonValue> = {};
    for (const [key, item] of value) object[String(key)] = toJsonValue(item);
    return object;
  }
  if (typeof value === "object") {
    const object: Record<string, JsonValue> = {};
    for (const [key, item] of Object.entries(value)) {
      if (item !== undefined) object[key] = toJsonValue(item);
    }
    return object;
  }
  return null;
}
