// The same two settings our Python processes read: where Redis is and which key prefix the queues use.
// A NestJS service passes the equivalent to BullModule.forRoot({ connection, prefix }).

export function redisUrl() {
  return process.env.HABITJOBS_REDIS_URL || 'redis://127.0.0.1:6379/0';
}

export function queuePrefix() {
  return process.env.HABITJOBS_QUEUE_PREFIX || 'habitjobs';
}

/** ioredis options for a redis:// or rediss:// URL. BullMQ workers need maxRetriesPerRequest: null. */
export function connection(url = redisUrl()) {
  const parsed = new URL(url);
  const options = {
    host: parsed.hostname || '127.0.0.1',
    port: Number(parsed.port || 6379),
    db: Number(parsed.pathname.replace('/', '') || 0),
    maxRetriesPerRequest: null,
  };
  if (parsed.username) options.username = decodeURIComponent(parsed.username);
  if (parsed.password) options.password = decodeURIComponent(parsed.password);
  if (parsed.protocol === 'rediss:') options.tls = {};
  return options;
}

export function queueOptions() {
  return { connection: connection(), prefix: queuePrefix() };
}

/** Reads the single JSON argument a script is given (argv[2]). */
export function jsonArgument() {
  if (process.argv.length < 3) {
    throw new Error(`usage: node ${process.argv[1]} '<json>'`);
  }
  return JSON.parse(process.argv[2]);
}
