/**
 * Well-formed Unicode at the schema edge.
 *
 * A JavaScript string may hold a lone UTF-16 surrogate (JSON's `"\ud800"` parses to one), which
 * has no UTF-8 encoding: canonical CBOR refuses it ({@link IllFormedStringError} in `cbor.ts`),
 * and the wire encoder would write bytes the receiver decodes as U+FFFD, so the value, and any
 * id hashed from it, would change in transit. Schemas of what is hashed or signed (jobs,
 * receipts, verdicts) refuse such strings where they enter, with a validation issue, so a
 * client is told what is wrong instead of the encoder failing deep inside a handler.
 *
 * Strings decoded from CBOR are always well-formed (the decoder replaces bad bytes), so these
 * checks only ever refuse values built locally: a JSON body, a file, a caller's object.
 *
 * @module
 */
import type { z } from "zod";

/** The issue message of a string that is not well-formed Unicode. */
export const ILL_FORMED_STRING_MESSAGE = "must be well-formed Unicode (no lone UTF-16 surrogate)";

/**
 * `schema` that also refuses a string that is not well-formed Unicode
 * (`String.prototype.isWellFormed`), with {@link ILL_FORMED_STRING_MESSAGE}.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import { wellFormed } from "./well_formed.ts";
 * const name = wellFormed(z.string().max(64));
 * name.safeParse("café").success; // true
 * name.safeParse("\uD800").success; // false
 * ```
 */
export function wellFormed(schema: z.ZodString): z.ZodString {
  return schema.refine((value) => value.isWellFormed(), ILL_FORMED_STRING_MESSAGE);
}

/**
 * True when every string in `value` — map keys included, at any depth of plain objects and
 * arrays — is well-formed Unicode: what canonical CBOR can encode. For schemas that let a
 * nested value through loosely (a fraud proof's job) or encode it to measure it (a verdict's
 * details).
 *
 * @example
 * ```ts
 * import { hasOnlyWellFormedStrings } from "./well_formed.ts";
 * hasOnlyWellFormedStrings({ stop: ["é"] }); // true
 * hasOnlyWellFormedStrings({ stop: ["\uD800"] }); // false
 * ```
 */
export function hasOnlyWellFormedStrings(value: unknown): boolean {
  if (typeof value === "string") return value.isWellFormed();
  if (value === null || typeof value !== "object" || ArrayBuffer.isView(value)) return true;
  if (Array.isArray(value)) return value.every(hasOnlyWellFormedStrings);
  for (const [key, item] of Object.entries(value)) {
    if (!key.isWellFormed() || !hasOnlyWellFormedStrings(item)) return false;
  }
  return true;
}
