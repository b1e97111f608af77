/**
 * Counting the values a decoded CBOR or JSON value holds, before any schema reads them: a schema
 * that keeps the fields a later version adds (they are signed) would otherwise read, encode and
 * hash as many as a frame can carry, ~95,000 in 1 MiB, each time a peer sends it.
 *
 * @module
 */

/**
 * Whether `value` holds at most `max` values (map entries and array items, at any depth; a byte
 * array is one value), counted by keys before any is read: an oversized value is refused at its
 * first oversized map.
 *
 * @example
 * ```ts
 * import { holdsAtMostValues } from "./value_count.ts";
 * holdsAtMostValues({ a: 1, b: [1, 2] }, 4); // true
 * holdsAtMostValues({ a: 1, b: [1, 2] }, 3); // false
 * ```
 */
export function holdsAtMostValues(value: unknown, max: number): boolean {
  let count = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0) {
    const item = stack.pop();
    if (item === null || typeof item !== "object" || ArrayBuffer.isView(item)) continue;
    const keys = Array.isArray(item) ? undefined : Object.keys(item);
    count += keys === undefined ? (item as unknown[]).length : keys.length;
    if (count > max) return false;
    if (keys === undefined) stack.push(...(item as unknown[]));
    else for (const key of keys) stack.push((item as Record<string, unknown>)[key]);
  }
  return true;
}
