/**
 * Assertion helpers for the server tests, on `node:assert/strict` (the project has no `@std`).
 *
 * @module
 */
import nodeAssert from "node:assert/strict";

/** Assert `condition` is truthy. */
export function assert(condition: unknown, message?: string): asserts condition {
  nodeAssert.ok(condition, message ?? "assertion failed");
}

/** Assert deep strict equality. */
export function assertEquals<T>(actual: unknown, expected: T, message?: string): void {
  if (message === undefined) nodeAssert.deepStrictEqual(actual, expected);
  else nodeAssert.deepStrictEqual(actual, expected, message);
}

/** Assert that `fn` rejects (with an instance of `type`, when given); returns the error. */
export async function assertRejects<E extends Error = Error>(
  fn: () => Promise<unknown>,
  // deno-lint-ignore no-explicit-any
  type?: new (...args: any[]) => E,
): Promise<E> {
  try {
    await fn();
  } catch (error) {
    if (type && !(error instanceof type)) {
      throw new nodeAssert.AssertionError({
        message: `expected ${type.name}, got ${(error as Error)?.name}: ${
          (error as Error)?.message
        }`,
      });
    }
    return error as E;
  }
  throw new nodeAssert.AssertionError({ message: "expected a rejection" });
}
