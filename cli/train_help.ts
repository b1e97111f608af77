/**
 * The help of `cli.ts train`, apart from the command: this module imports only the model sizes
 * and the local trainer's defaults (neither reads the environment nor loads a native module as
 * it loads), so `cli.ts` answers `train --help` without loading `train_command.ts`, which loads
 * onnxruntime and tfjs, and help needs no permission.
 *
 * @module
 */
import { GPT_MODEL_SIZES } from "../inference/model_builder.ts";
import { DEFAULT_EVAL_SAMPLES, DEFAULT_LOCAL_HYPER_PARAMS } from "../training/hyper_params.ts";

/** What `cli.ts train --help` prints. */
export const TRAIN_USAGE =
  `Usage: cli.ts train --out DIR [--trainers N] [--rounds R] [--steps H] [--size S] [--seed S]
             [--minutes M] [--batch B] [--lr X] [--eval-samples K] [--log-format text|json]

DiLoCo training on this machine: N trainers, each a worker on its own Brown corpus shard,
H local AdamW steps per round, the outer step between rounds; each round's model is written
to DIR/<cid>. Ends with the model's CID, directory, held-out bits per byte and a sample.

  --trainers N      trainers, one worker (core) each (default 2)
  --rounds R        rounds (default 10)
  --steps H         local steps per round (default 50)
  --size S          ${Object.keys(GPT_MODEL_SIZES).join(" | ")} (default tiny);
                    --layers, --width, --heads, --context override its fields
  --seed S          seed of the initial weights and of every batch (default 0)
  --minutes M       wall budget: stop before a round that would end past it
  --batch B         samples per step (default ${DEFAULT_LOCAL_HYPER_PARAMS.batchSize})
  --sample-bytes L  bytes per sample, from 2 to context + 1 (the default)
  --lr X            inner AdamW learning rate (default ${DEFAULT_LOCAL_HYPER_PARAMS.learningRate})
  --eval-samples K  held-out samples evaluated after each round (default ${DEFAULT_EVAL_SAMPLES})
  --corpus-limit D  use D of the 500 corpus documents (default all)
  --backend B       wasm (default) or cpu
  --keep-rounds     keep every round's model directory (default: the last only)
  --log-format F    text (default; redrawn in place on a terminal) or json (one event a line)

Example:
  deno run -A cli.ts train --trainers 2 --rounds 4 --steps 30 --out /tmp/veriflow-train`;
