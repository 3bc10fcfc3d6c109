// Bull Board (@bull-board/api + @bull-board/express, pinned in package.json) over our queues, as a NestJS
// team mounts it: one BullMQAdapter per queue, the same Redis and key prefix as our workers.
// Argument: {"queues": ["default", ...], "port": 3000}. Prints "listening <port>" once it serves /ui.
import express from 'express';
import { Queue } from 'bullmq';
import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { ExpressAdapter } from '@bull-board/express';
import { jsonArgument, queueOptions } from './connection.mjs';

const { queues, port } = jsonArgument();
const serverAdapter = new ExpressAdapter();
serverAdapter.setBasePath('/ui');
const handles = queues.map((name) => new Queue(name, queueOptions()));
createBullBoard({ queues: handles.map((queue) => new BullMQAdapter(queue)), serverAdapter });

const app = express();
app.use('/ui', serverAdapter.getRouter());
const server = app.listen(port, '127.0.0.1', () => console.log(`listening ${port}`));

async function stop() {
  server.close();
  await Promise.all(handles.map((queue) => queue.close()));
  process.exit(0);
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
