// W10 for node ioredis with enableAutoPipelining (the Node peer of
// bench/aio_redis.lua): N commands, a SET then a GET of a 32-byte value,
// alternating, from TASKS async functions sharing one client.
// usage: node ioredis_bench.mjs PORT [N] [TASKS]  (ioredis must be
// resolvable from the script's folder: bench/redis.sh copies it next to
// its node_modules).
import Redis from "ioredis";

const port = Number(process.argv[2]);
const n = Number(process.argv[3] || 200000);
const tasks = Number(process.argv[4] || 50);
const r = new Redis({ host: "127.0.0.1", port, enableAutoPipelining: true });
const value = "x".repeat(32);
const per = Math.floor(n / tasks / 2);
let good = 0;

async function worker(i) {
  const key = "k" + i;
  for (let j = 0; j < per; j++) {
    await r.set(key, value);
    if ((await r.get(key)) === value) good++;
  }
}

const t0 = performance.now();
await Promise.all(Array.from({ length: tasks }, (_, i) => worker(i)));
const secs = (performance.now() - t0) / 1000;
const total = per * 2 * tasks;
console.log(`RESULT peer=ioredis-autopipeline wl=w10 n=${total} secs=${secs.toFixed(3)} ` +
  `rate=${Math.round(total / secs)} unit=ops/s ok=${good === per * tasks ? 1 : 0}`);
r.disconnect();
