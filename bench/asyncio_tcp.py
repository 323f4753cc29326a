# TCP echo benchmark, peer: Python asyncio streams (optionally on uvloop).
# The same workload as bench/aio_tcp.lua: an echo server and CONNS client
# tasks (one per connection) in one process on 127.0.0.1; each client
# sends a SIZE-byte message and reads the echo back, ROUNDS times.
#
# usage: python3 bench/asyncio_tcp.py [asyncio|uvloop] [ROUNDS] [CONNS] [SIZE]
# Prints: RESULT peer=asyncio|uvloop wl=tcp_echo n=... (as aio_tcp.lua)
import asyncio, resource, sys, time

LOOP = sys.argv[1] if len(sys.argv) > 1 else "asyncio"
ROUNDS = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
CONNS = int(sys.argv[3]) if len(sys.argv) > 3 else 64
SIZE = int(sys.argv[4]) if len(sys.argv) > 4 else 1024


async def handle(reader, writer):
    while True:
        data = await reader.read(65536)
        if not data:
            break
        writer.write(data)
        await writer.drain()
    writer.close()


async def main():
    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    msg = b"m" * SIZE
    good = 0

    async def client():
        nonlocal good
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for _ in range(ROUNDS):
            writer.write(msg)
            await writer.drain()
            if await reader.readexactly(SIZE) != msg:
                break
        else:
            good += 1
        writer.close()
        await writer.wait_closed()

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CONNS)))
    secs = time.perf_counter() - t0
    server.close()
    await server.wait_closed()
    n = ROUNDS * CONNS
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"RESULT peer={LOOP} wl=tcp_echo n={n} secs={secs:.4f} rate={n / secs:.0f} "
          f"unit=msgs/s rss_kb={rss} ok={int(good == CONNS)} conns={CONNS} "
          f"mb_s={2 * n * SIZE / secs / 1e6:.1f} size={SIZE}", flush=True)


if LOOP == "uvloop":
    import uvloop
    uvloop.install()
asyncio.run(main())
