/**
 * A response body that stops the work behind it when the client goes away, without
 * `request.signal`: Deno aborts that signal after every successful response too (its legacy
 * semantics, with a warning in the operator's log the first time it is read). The body's `cancel`
 * (the client went away) aborts the signal the body was opened with instead.
 *
 * @module
 */

/**
 * The stream `open` answers, as a response body whose `cancel` also aborts the signal `open` was
 * given, so the store stops reading whatever its stream does with the cancel.
 *
 * @param open Opens the body's stream with a signal the client's going away aborts.
 * @returns The body.
 */
export async function untilCancelled(
  open: (signal: AbortSignal) => Promise<ReadableStream<Uint8Array>> | ReadableStream<Uint8Array>,
): Promise<ReadableStream<Uint8Array>> {
  const abort = new AbortController();
  const reader = (await open(abort.signal)).getReader();
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel(reason) {
      abort.abort(reason);
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}
