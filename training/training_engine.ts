/**
 * The tensor engine of training (`local_trainer.ts` on `tf_backend.ts`: tfjs, megabytes of
 * JavaScript evaluated in every process and worker that loads it), loaded on first use. The wire
 * schemas, validators and nodes that may train or re-run a step import this instead, so they pay
 * for tfjs only when they do.
 *
 * @module
 */

/** The exports of `local_trainer.ts` and `tf_backend.ts`. */
export type TrainingEngine =
  & typeof import("./local_trainer.ts")
  & typeof import("./tf_backend.ts");

/** Load the training engine (the module loader keeps it after the first call). */
export async function loadTrainingEngine(): Promise<TrainingEngine> {
  const [trainer, backend] = await Promise.all([
    import("./local_trainer.ts"),
    import("./tf_backend.ts"),
  ]);
  return { ...trainer, ...backend };
}
