/**
 * The help of `cli.ts calibrate`, apart from the command: this module imports only the model
 * builder's default seed, so `cli.ts` answers `calibrate --help` without loading
 * `calibrate_command.ts`, whose imports read the environment as they load (cbor-x,
 * onnxruntime), and help needs no permission.
 *
 * @module
 */
import { DEFAULT_MODEL_SEED } from "../inference/model_builder.ts";

/** What `cli.ts calibrate --help` prints. */
export const CALIBRATE_USAGE = `Usage: cli.ts calibrate [options]

  --model DIR           an exported model directory (default: the built-in model)
  --model-size S        built-in model size: brown (default, trained), tiny or small
  --seed N              built-in model seed (default ${DEFAULT_MODEL_SEED})
  --data DIR            the node's data directory (default $VERIFLOW_DATA_DIR, else .veriflow); the profile
                        goes to DIR/calibration/<cid>.json. DIR must be a node's data directory
                        (identity.key, store or ledger in it): else exit 1, unless --init
  --init                calibrate into DIR although no node has used it yet (it is created)
  --jobs N              generations per execution variant (default 24)
  --tokens N            tokens per generation (default 64)
  --threads N,M         intra-op thread counts to measure (default 1 and every core)
  --reference-threads N the validator's own thread count (default: every core)
  --precisions LIST     precision classes, of fp32,fp16,bf16 (default all; fp32 always)
  --cuda                also measure the CUDA execution provider (when installed)
  --webgpu              also measure the WebGPU execution provider (where an adapter starts)
  --json                print the result as one JSON object (default: a readable summary)

The validator reads profiles when the node starts: start (or restart) the node after this.

Example:
  deno run -A cli.ts calibrate --model-size small --data .veriflow`;
