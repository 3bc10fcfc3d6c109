// Reads jobs back the way a Node service (or a dashboard) sees them.
//   node show.mjs '{"queue": "default", "ids": ["a", "b"]}'
// Prints a JSON array with one object per id (null for a job that does not exist).
import { Queue } from 'bullmq';

import { jsonArgument, queueOptions } from './connection.mjs';

const { queue: queueName, ids } = jsonArgument();
const queue = new Queue(queueName, queueOptions());
const views = [];
try {
  for (const id of ids) {
    const job = await queue.getJob(id);
    if (!job) {
      views.push(null);
      continue;
    }
    views.push({
      id: job.id,
      name: job.name,
      state: await job.getState(),
      data: job.data,
      opts: job.opts,
      returnvalue: job.returnvalue ?? null,
      failedReason: job.failedReason ?? null,
      stacktrace: job.stacktrace ?? [],
      attemptsMade: job.attemptsMade,
      timestamp: job.timestamp,
      processedOn: job.processedOn ?? null,
      finishedOn: job.finishedOn ?? null,
    });
  }
} finally {
  await queue.close();
}
process.stdout.write(`${JSON.stringify(views)}\n`);
