// Adds one job and waits for its result through QueueEvents, as a NestJS request handler might.
//   node wait.mjs '{"queue": "default", "name": "test.effect", "data": {...}, "opts": {...}, "timeoutMs": 20000}'
// Prints {"added": id} once the job is in the queue, then {"result": <return value>} or {"error": reason}.
import { Queue, QueueEvents } from 'bullmq';

import { jsonArgument, queueOptions } from './connection.mjs';

const { queue: queueName, name, data, opts = {}, timeoutMs = 20000 } = jsonArgument();
const queue = new Queue(queueName, queueOptions());
const events = new QueueEvents(queueName, queueOptions());
try {
  await events.waitUntilReady(); // subscribed before the job exists: no event can be missed
  const job = await queue.add(name, data, opts);
  process.stdout.write(`${JSON.stringify({ added: job.id })}\n`);
  try {
    const result = await job.waitUntilFinished(events, timeoutMs);
    process.stdout.write(`${JSON.stringify({ result })}\n`);
  } catch (err) {
    process.stdout.write(`${JSON.stringify({ error: err.message })}\n`);
  }
} finally {
  await events.close();
  await queue.close();
}
