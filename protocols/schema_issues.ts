/**
 * Schema problems told as a person reads them: `commitment.root: Invalid string`, the field's
 * dotted path first, `(root)` for the value itself. One shape for every refusal a program or an
 * operator meets: a malformed receipt, verdict or fraud proof (one line), and an invalid node
 * configuration (`node/config.ts`, a line per key, with its hints). zod's own `error.message` is a
 * multi-line JSON dump of its issue objects.
 *
 * @module
 */

/** One problem a schema found: where, and what is wrong (a zod issue has these fields). */
export interface SchemaIssue {
  /** Path of the offending value inside the checked one; empty for the value itself. */
  readonly path: readonly PropertyKey[];
  /** Human-readable description. */
  readonly message: string;
}

/**
 * Most problems {@link describeSchemaIssues} names: past them, the rest are counted. Enough for
 * every field of a receipt to be named at once; bounded, so a value wrong in a thousand places
 * does not make a thousand-part message.
 */
export const MAX_ISSUES_NAMED = 8;

/** The dotted path of an issue (`commitment.root`, `params.stop.0`), `(root)` for the value itself. */
export function schemaIssuePath(issue: SchemaIssue): string {
  return issue.path.map(String).join(".") || "(root)";
}

/** One issue as `path: message`. */
export function schemaIssueLine(issue: SchemaIssue): string {
  return `${schemaIssuePath(issue)}: ${issue.message}`;
}

/**
 * Every issue on one line, `path: message` each, `; `-separated (at most
 * {@link MAX_ISSUES_NAMED}, then how many more).
 *
 * @example
 * ```ts
 * import { describeSchemaIssues } from "./schema_issues.ts";
 * describeSchemaIssues({ issues: [{ path: ["commitment", "root"], message: "Invalid string" }] });
 * // "commitment.root: Invalid string"
 * ```
 */
export function describeSchemaIssues(error: { readonly issues: readonly SchemaIssue[] }): string {
  const named = error.issues.slice(0, MAX_ISSUES_NAMED).map(schemaIssueLine);
  const more = error.issues.length - named.length;
  return named.join("; ") + (more > 0 ? `; and ${more} more` : "");
}
