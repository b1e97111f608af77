/**
 * A bounded map of recent jobs by id, oldest evicted first: what a node's own validator needs
 * to re-execute a challenged receipt. Bounded because jobs arrive forever and a challenge only
 * ever concerns receipts inside the challenge window.
 *
 * @module
 */
import type { Job } from "../protocols/job.ts";

/** Recent jobs, by job id, at most `capacity` of them. */
export class RecentJobs {
  readonly #capacity: number;
  readonly #jobs = new Map<string, Job>();

  /** @param capacity How many jobs to keep. */
  constructor(capacity: number) {
    this.#capacity = capacity;
  }

  /** Remember a job (refreshing it if known). */
  set(jobId: string, job: Job): void {
    this.#jobs.delete(jobId);
    this.#jobs.set(jobId, job);
    if (this.#jobs.size > this.#capacity) {
      this.#jobs.delete(this.#jobs.keys().next().value!);
    }
  }

  /** The job with this id, if still remembered. */
  get(jobId: string): Job | undefined {
    return this.#jobs.get(jobId);
  }
}
