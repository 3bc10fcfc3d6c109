// Adds jobs the way a NestJS producer does: queue.add(name, data, opts) on our prefix and queue names.
//   node add.mjs '[{"queue": "default", "name": "test.effect", "data": {...}, "opts": {...}}, ...]'
// Prints the ids BullMQ gave them, as a JSON array, in the order given.
import { Queue } from 'bullmq';

import { jsonArgument, queueOptions } from './connection.mjs';

const requests = jsonArgument();
const queues = new Map();
const ids = [];
try {
  for (const { queue, name, data, opts } of requests) {
    if (!queues.has(queue)) queues.set(queue, new Queue(queue, queueOptions()));
    const job = await queues.get(queue).add(name, data, opts ?? {});
    ids.push(job.id);
  }
} finally {
  await Promise.all([...queues.values()].map(q => q.close()));
}
process.stdout.write(`${JSON.stringify(ids)}\n`);
