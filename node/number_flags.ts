/**
 * Numbers as an operator writes them, for flags and `VERIFLOW_*` variables alike: plain decimal
 * digits, not what `Number()` also reads (`0x50`, `8e3`, `-1`). No imports: a command that reads
 * numbers (`cli.ts infer`) loads nothing else for it.
 *
 * @module
 */

/**
 * A whole number as an operator writes one: decimal digits (`80`), not `0x50`, `8e3`, `80.0` or
 * `-1`, which `Number()` would also read (as 80, 8000, 80, -1): a mistyped or pasted value would
 * start a node on a port, or with a count, nobody wrote. Flags and `VERIFLOW_*` variables alike.
 */
const WHOLE_NUMBER = /^\d+$/;

/**
 * `text` as a whole number in decimal digits (surrounding blanks ignored), or undefined when it
 * is not one, or is past 2^53 - 1 (`Number.MAX_SAFE_INTEGER`), where `Number()` would read a
 * neighbouring number nobody wrote (`9007199254740993` as `…992`); {@link notWholeNumber} says
 * which.
 *
 * @example
 * ```ts
 * import { parseWholeNumber } from "./number_flags.ts";
 * parseWholeNumber(" 8080 "); // 8080
 * parseWholeNumber("0x50"); // undefined, where Number() says 80
 * ```
 */
export function parseWholeNumber(text: string): number | undefined {
  const t = text.trim();
  if (!WHOLE_NUMBER.test(t)) return undefined;
  const value = Number(t);
  return Number.isSafeInteger(value) ? value : undefined;
}

/**
 * The bounds a number setting of its own takes (`infer --max-tokens`: 1 to 4096), when they are
 * not just "0 or more": a negative value is then refused naming them, since "0 or more" would
 * promise a 0 the setting refuses.
 */
export type NumberRange = readonly [min: number, max: number];

/**
 * Why `text`, given to `name` (`--port`, `VERIFLOW_HTTP_PORT`), was refused: one wording for
 * flags and variables; `range`, when the setting has one of its own ({@link NumberRange}).
 */
export function notWholeNumber(name: string, text: string, range?: NumberRange): string {
  if (isNegative(text, WHOLE_NUMBER)) return mustNotBeNegative(name, text, range);
  if (WHOLE_NUMBER.test(text.trim())) {
    return `${name} is too large (at most ${Number.MAX_SAFE_INTEGER}), got "${text}"`;
  }
  return `${name} expects a whole number in decimal digits, got "${text}"`;
}

/** Whether `text` is `-` before what `number` accepts: a sign, not a typo, is what is wrong. */
function isNegative(text: string, number: RegExp): boolean {
  const t = text.trim();
  return t.startsWith("-") && number.test(t.slice(1));
}

function mustNotBeNegative(name: string, text: string, range?: NumberRange): string {
  // Worded as the setting's own range check words a value past it, so that -3 and 0 read alike.
  if (range !== undefined) {
    return `${name} ${text.trim()} is out of range: ${range[0]} to ${range[1]}`;
  }
  return `${name} must not be negative (0 or more), got "${text}"`;
}

/**
 * A number as an operator writes one: plain decimal notation (`0.05`, `.05`, `1`, `1000000`),
 * not `0x10`, `1e3` or `-1`, which `Number()` would also read. Flags and variables alike.
 */
const DECIMAL_NUMBER = /^(\d+(\.\d*)?|\.\d+)$/;

/**
 * `text` as a number in plain decimal notation (surrounding blanks ignored), or undefined when
 * it is not one; {@link notDecimalNumber} says so.
 *
 * @example
 * ```ts
 * import { parseDecimalNumber } from "./number_flags.ts";
 * parseDecimalNumber(".05"); // 0.05
 * parseDecimalNumber("1e3"); // undefined, where Number() says 1000
 * ```
 */
export function parseDecimalNumber(text: string): number | undefined {
  const t = text.trim();
  return DECIMAL_NUMBER.test(t) ? Number(t) : undefined;
}

/**
 * Why `text`, given to `name`, was refused as a decimal number: one wording for flags and
 * variables. A negative number is named as such (every number setting is 0 or more; `range`,
 * when the setting has one of its own, {@link NumberRange}).
 */
export function notDecimalNumber(name: string, text: string, range?: NumberRange): string {
  if (isNegative(text, DECIMAL_NUMBER)) return mustNotBeNegative(name, text, range);
  return `${name} expects a decimal number such as 0.05, got "${text}"`;
}
