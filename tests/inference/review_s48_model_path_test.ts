/**
 * Review (s48) of the operator's first `--model DIR`: a path with no model there stops the node
 * with `error: the node did not start: <the ModelLoadError's message>` (the start command prints
 * a typed error's own message, not its cause), so that message must say why (the OS's reason)
 * and what a model path is, not only "no model at DIR".
 *
 * @module
 */

import { assert, assertRejects } from "../server/_assert.ts";
import { ModelRegistry } from "../../inference/model_registry.ts";
import { ModelLoadError } from "../../inference/errors.ts";

Deno.test("registering a model path that does not exist says why and what a model path holds", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const missing = `${dir}/no-such-model`;
    const error = await assertRejects(() => new ModelRegistry().register(missing), ModelLoadError);
    assert(error.message.includes(missing), error.message);
    assert(/no such file/i.test(error.message), error.message);
    assert(error.message.includes("model.onnx"), error.message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("registering a directory without model.onnx says which file is missing and why", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const error = await assertRejects(() => new ModelRegistry().register(dir), ModelLoadError);
    assert(error.message.includes(`${dir}/model.onnx`), error.message);
    assert(/no such file/i.test(error.message), error.message);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
