// A Node worker for jobs our Python producer enqueued, as a NestJS service would run one.
//   node work.mjs '{"queue": "default", "expect": 3, "timeoutMs": 20000}'
// Processes `test.effect` jobs with the same rules as the Python handler (tests/support/testjobs.py)
// until `expect` jobs have finished for good (completed, or failed with no attempt left), then prints
// {"order": [job ids in the order they started], "completed": [...], "failed": [...]} and exits.
import { UnrecoverableError, Worker } from 'bullmq';

import { jsonArgument, queueOptions } from './connection.mjs';

const { queue, expect, timeoutMs = 20000 } = jsonArgument();

// Our producer marks every job `backoff: {type: 'habitjobs', delay: <base ms>}`: a custom strategy
// that BullMQ only knows through the worker's settings. Without one, the first failure of such a job
// throws "Unknown backoff strategy habitjobs" inside BullMQ and the job is left active until its lock
// expires. This one is our policy's exponential backoff without jitter or cap.
function backoffStrategy(attemptsMade, type, _err, job) {
  if (type !== 'habitjobs') return -1; // unknown: no retry
  const base = Number(job.opts.backoff?.delay ?? 1000);
  return Math.round(base * 2 ** Math.max(attemptsMade - 1, 0));
}

const runs = new Map();
const order = [];
const completed = [];
const failed = [];

async function testEffect(job) {
  const { key, sleep_ms: sleepMs = 0, fail_times: failTimes = 0, permanent = false } = job.data;
  const run = (runs.get(key) ?? 0) + 1;
  runs.set(key, run);
  if (sleepMs) await new Promise(resolve => setTimeout(resolve, sleepMs));
  if (permanent) throw new UnrecoverableError(`effect ${key} can never succeed`);
  if (run <= failTimes) throw new Error(`planned failure ${run} of ${failTimes} for ${key}`);
  return { key, run, worker: 'node' };
}

let finish;
const done = new Promise(resolve => {
  finish = resolve;
});
const worker = new Worker(
  queue,
  async job => {
    order.push(job.id);
    if (job.name !== 'test.effect') throw new UnrecoverableError(`no handler for ${job.name}`);
    return testEffect(job);
  },
  { ...queueOptions(), concurrency: 1, settings: { backoffStrategy } },
);
const settle = () => {
  if (completed.length + failed.length >= expect) finish();
};
worker.on('completed', job => {
  completed.push(job.id);
  settle();
});
worker.on('failed', async job => {
  if (job && (await job.getState()) === 'failed') {
    failed.push(job.id);
    settle();
  }
});
worker.on('error', err => process.stderr.write(`worker error: ${err}\n`));

const timer = setTimeout(finish, timeoutMs);
await done;
clearTimeout(timer);
await worker.close();
process.stdout.write(`${JSON.stringify({ order, completed, failed })}\n`);
