// The Node BullMQ side of bench/engine.py (same pinned package as the interop test: tests/interop/node).
//   node bench/engine_node.mjs enqueue '{"redisUrl", "prefix", "queue", "mode": "single"|"bulk", "n", "chunk", "opts"}'
//   node bench/engine_node.mjs worker  '{"redisUrl", "prefix", "queue", "kind": "noop"|"io"|"pickup", "n", "concurrency", "lock"}'
// Each prints one JSON line on stdout; `worker` first prints {"ready": true} once it waits for jobs.
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';

const require = createRequire(new URL('../tests/interop/node/package.json', import.meta.url));
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');

const [role, argument] = process.argv.slice(2);
const args = JSON.parse(argument);

function connection(url) {
  const parsed = new URL(url);
  return {
    host: parsed.hostname,
    port: Number(parsed.port || 6379),
    db: Number(parsed.pathname.replace('/', '') || 0),
    maxRetriesPerRequest: null,
  };
}

const nowMs = () => performance.timeOrigin + performance.now(); // wall clock, sub-millisecond
const say = value => process.stdout.write(`${JSON.stringify(value)}\n`);

async function enqueue() {
  const queue = new Queue(args.queue, { connection: connection(args.redisUrl), prefix: args.prefix });
  const jobs = i => ({ name: 'bench.noop', data: { i }, opts: args.opts });
  for (let i = 0; i < 20; i++) await queue.add('bench.noop', { i: -1 }, args.opts); // connect, load scripts
  const start = nowMs();
  if (args.mode === 'single') {
    for (let i = 0; i < args.n; i++) await queue.add('bench.noop', { i }, args.opts);
  } else {
    for (let i = 0; i < args.n; i += args.chunk) {
      const batch = [];
      for (let j = i; j < Math.min(i + args.chunk, args.n); j++) batch.push(jobs(j));
      await queue.addBulk(batch);
    }
  }
  const seconds = (nowMs() - start) / 1000;
  await queue.close();
  say({ seconds });
}

async function worker() {
  const sampleKey = `${args.prefix}:bench:pickup`;
  const redis = args.kind === 'pickup' ? new IORedis(connection(args.redisUrl)) : null;
  const processors = {
    noop: async () => null,
    io: () => new Promise(resolve => setTimeout(() => resolve(null), 10)),
    pickup: async job => {
      await redis.rpush(sampleKey, String(nowMs() - job.data.t));
      return null;
    },
  };
  let completed = 0;
  let finish;
  const done = new Promise(resolve => {
    finish = resolve;
  });
  const w = new Worker(args.queue, processors[args.kind], {
    connection: connection(args.redisUrl),
    prefix: args.prefix,
    concurrency: args.concurrency,
    lockDuration: args.lock.lockDuration,
    stalledInterval: args.lock.stalledInterval,
    maxStalledCount: args.lock.maxStalledCount,
    autorun: false,
  });
  w.on('completed', () => {
    completed += 1;
    if (completed === args.n) finish(nowMs());
  });
  w.on('error', err => process.stderr.write(`worker error: ${err}\n`));
  const running = w.run();
  await w.waitUntilReady();
  say({ ready: true });
  const cpuStart = process.cpuUsage();
  const end = await done;
  const cpu = process.cpuUsage(cpuStart);
  say({ t_end: end / 1000, cpu_s: (cpu.user + cpu.system) / 1e6 });
  await w.close();
  await running;
  if (redis) await redis.quit();
}

if (role === 'enqueue') await enqueue();
else if (role === 'worker') await worker();
else throw new Error(`unknown role ${role}`);
