#!/usr/bin/python3
"""HTTP fixture for aio's HTTP specs (spec/support/http_servers.lua starts it).

usage: /usr/bin/python3 spec/support/http_fixture.py READY_FILE PARENT_PID

Listens on 127.0.0.1, on ports the OS picks:
  app, app2  aiohttp.web: status codes, delays, echo, redirects, gzip,
             chunked and trickling bodies, cookies, basic auth, the client's
             port (connection reuse), concurrency tracking per tag
  raw        a bare asyncio server for peers that misbehave (garbage, no
             answer, half a body, silence, a reset of a kept-alive
             connection) and a forward-proxy stand-in
             (absolute-form request targets)
  blackhole  a listening socket whose accept queue is kept full, so that
             connecting to it hangs (connect timeouts)
It also reserves `free` ports for nginx. Writes one JSON line to READY_FILE
when listening; exits on SIGTERM or when PARENT_PID is gone.
"""
import asyncio
import gzip
import json
import os
import signal
import socket
import struct
import sys
import zlib

from aiohttp import web

READY_FILE, PARENT = sys.argv[1], int(sys.argv[2])
PATTERN = b"0123456789abcdef" * 4096          # 64 KiB of a known pattern


def pattern(n):
    """n bytes of the repeating pattern."""
    out = bytearray()
    while len(out) < n:
        out += PATTERN[: n - len(out)]
    return bytes(out)


# ---------------------------------------------------------------- app routes
routes = web.RouteTableDef()
tracks = {}


@routes.get("/status/{code}")
@routes.post("/status/{code}")
async def status(request):
    code = int(request.match_info["code"])
    if code in (204, 304):
        return web.Response(status=code)
    return web.Response(status=code, text=f"status {code}")


@routes.get("/delay/{secs}")
async def delay(request):
    await asyncio.sleep(float(request.match_info["secs"]))
    return web.Response(text="ok")


@routes.route("*", "/echo")
@routes.route("*", "/echo/{tail:.*}")
async def echo(request):
    body = await request.read()
    return web.json_response({
        "method": request.method,
        "path": request.path,
        "query_string": request.raw_path.partition("?")[2],
        "query": {k: request.query.getall(k) for k in request.query.keys()},
        "headers": [[k, v] for k, v in request.headers.items()],
        "body": body.decode("latin-1"),
        "body_hex": body.hex(),
        "body_len": len(body),
        "host": request.host,
    })


@routes.get("/redirect/{n}")
async def redirect(request):
    n = int(request.match_info["n"])
    if n <= 0:
        return web.Response(text="redirected")
    raise web.HTTPFound(f"/redirect/{n - 1}")


@routes.route("*", "/redirect-to")
async def redirect_to(request):
    await request.read()
    code = int(request.query.get("status", "302"))
    return web.Response(status=code, headers={"Location": request.query["url"]})


@routes.get("/gzip")
async def gzipped(request):
    data = json.dumps({"gzipped": True, "filler": "x" * 2000}).encode()
    return web.Response(body=gzip.compress(data), headers={
        "Content-Encoding": "gzip", "Content-Type": "application/json"})


@routes.get("/deflate")
async def deflated(request):
    data = json.dumps({"deflated": True}).encode()
    return web.Response(body=zlib.compress(data), headers={
        "Content-Encoding": "deflate", "Content-Type": "application/json"})


@routes.get("/gzip-zeros/{n}")
async def gzip_zeros(request):
    # n bytes of zeros, gzip-compressed (about 1000:1). Past 1 MiB, a
    # compression bomb: whole MiBs of zeros compress to the same bytes
    # once the window holds only zeros, so they are repeated (cheap to
    # make); it ends without a gzip trailer.
    n = int(request.match_info["n"])
    if n <= 1 << 20:
        body = gzip.compress(bytes(n))
    else:
        z, block = zlib.compressobj(9, zlib.DEFLATED, 31), bytes(1 << 20)
        first = z.compress(block) + z.flush(zlib.Z_SYNC_FLUSH)
        rest = z.compress(block) + z.flush(zlib.Z_SYNC_FLUSH)
        body = first + rest * (n // len(block) - 1)
    return web.Response(body=body, headers={"Content-Encoding": "gzip"})


@routes.get("/bad-gzip")
async def bad_gzip(request):
    return web.Response(body=b"this is not gzip data at all",
                        headers={"Content-Encoding": "gzip"})


@routes.get("/accept-encoding")
async def accept_encoding(request):
    return web.Response(text=request.headers.get("Accept-Encoding", "<none>"))


async def _stream(request, n, size, pause):
    resp = web.StreamResponse()
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(n):
        await resp.write(pattern(size))
        if pause:
            await asyncio.sleep(pause)
    await resp.write_eof()
    return resp


@routes.get("/chunked")
async def chunked(request):
    q = request.query
    return await _stream(request, int(q.get("n", "5")), int(q.get("size", "100")), 0)


@routes.get("/trickle")
async def trickle(request):
    q = request.query
    return await _stream(request, int(q.get("n", "5")), int(q.get("size", "10")),
                         float(q.get("delay", "0.05")))


@routes.get("/bytes/{n}")
async def nbytes(request):
    return web.Response(body=pattern(int(request.match_info["n"])),
                        content_type="application/octet-stream")


@routes.get("/json-invalid")
async def json_invalid(request):
    return web.Response(text="{not: json", content_type="application/json")


@routes.get("/cookies/set")
async def cookies_set(request):
    resp = web.json_response(dict(request.query))
    for k, v in request.query.items():
        resp.set_cookie(k, v)
    return resp


@routes.get("/cookies/set-and-redirect")
async def cookies_set_redirect(request):
    resp = web.Response(status=302, headers={"Location": "/cookies"})
    for k, v in request.query.items():
        resp.set_cookie(k, v)
    return resp


@routes.get("/cookies")
async def cookies(request):
    return web.json_response(dict(request.cookies))


@routes.get("/multi-header")
async def multi_header(request):
    resp = web.Response(text="ok")
    resp.headers.add("X-Multi", "one")
    resp.headers.add("X-Multi", "two")
    resp.headers.add("Set-Cookie", "a=1")
    resp.headers.add("Set-Cookie", "b=2")
    return resp


@routes.get("/basic-auth/{user}/{password}")
async def basic_auth(request):
    import base64
    want = "Basic " + base64.b64encode(
        f"{request.match_info['user']}:{request.match_info['password']}".encode()).decode()
    if request.headers.get("Authorization") != want:
        return web.Response(status=401, text="no",
                            headers={"WWW-Authenticate": 'Basic realm="fixture"'})
    return web.json_response({"authenticated": True,
                              "user": request.match_info["user"]})


@routes.get("/peer")
async def peer(request):
    host, port = request.transport.get_extra_info("peername")[:2]
    return web.json_response({"port": port})


flaky = {}


@routes.route("*", "/flaky/{key}")
async def flaky_route(request):
    """Answers `status` (503) to the first `fail` requests for `key`, then 200;
    /flaky/{key}?count=1 tells how many requests `key` got."""
    await request.read()
    key = request.match_info["key"]
    if "count" in request.query:
        return web.json_response({"hits": flaky.get(key, 0)})
    flaky[key] = flaky.get(key, 0) + 1
    if flaky[key] <= int(request.query.get("fail", "1")):
        return web.Response(status=int(request.query.get("status", "503")),
                            text="try again")
    return web.Response(text=f"ok after {flaky[key]}")


@routes.get("/track/{tag}")
async def track(request):
    tag = request.match_info["tag"]
    t = tracks.setdefault(tag, {"active": 0, "max": 0, "order": [], "count": 0,
                                "hosts": {}})
    host = request.host
    t["active"] += 1
    t["max"] = max(t["max"], t["active"])
    h = t["hosts"].setdefault(host, {"active": 0, "max": 0})
    h["active"] += 1
    h["max"] = max(h["max"], h["active"])
    t["order"].append(request.query.get("id", ""))
    try:
        await asyncio.sleep(float(request.query.get("delay", "0.05")))
    finally:
        t["active"] -= 1
        h["active"] -= 1
        t["count"] += 1
    return web.Response(text="tracked")


@routes.get("/track-stats/{tag}")
async def track_stats(request):
    t = tracks.get(request.match_info["tag"], {"active": 0, "max": 0, "order": [],
                                                 "count": 0, "hosts": {}})
    return web.json_response(t)


# ---------------------------------------------------------------- raw server
async def raw_handler(reader, writer):
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    line = head.split(b"\r\n", 1)[0].decode("latin-1")
    parts = line.split(" ")
    target = parts[1] if len(parts) > 1 else "/"
    try:
        if target.startswith("http://"):
            body = ("proxied " + parts[0] + " " + target).encode()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n" % len(body) + body)
            await writer.drain()
        elif target == "/garbage":
            writer.write(b"THIS IS NOT HTTP AT ALL\r\n\r\n")
            await writer.drain()
        elif target == "/nothing":
            pass
        elif target == "/partial":
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)
            await writer.drain()
        elif target == "/hang":
            await asyncio.sleep(60)
        elif target == "/reset-reused":
            # answers as if the connection stayed open, then resets it as
            # the next request arrives on it (a keep-alive race lost)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()
            await reader.read(1)
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
        elif target.startswith("/headers-then-hang"):
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"y" * 10)
            await writer.drain()
            await asyncio.sleep(60)
        else:
            writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
    except ConnectionError:
        pass
    writer.close()


# ---------------------------------------------------------------- main
async def main():
    app = web.Application(client_max_size=256 * 1024 * 1024)
    app.add_routes(routes)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    ports = {}
    for name in ("app", "app2"):
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        ports[name] = site._server.sockets[0].getsockname()[1]
    raw = await asyncio.start_server(raw_handler, "127.0.0.1", 0)
    ports["raw"] = raw.sockets[0].getsockname()[1]

    # blackhole: backlog 0 and never accepted; fill the accept queue
    hole = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    hole.bind(("127.0.0.1", 0))
    hole.listen(0)
    ports["blackhole"] = hole.getsockname()[1]
    fillers = []
    for _ in range(3):
        c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        c.setblocking(False)
        try:
            c.connect(("127.0.0.1", ports["blackhole"]))
        except BlockingIOError:
            pass
        fillers.append(c)

    # free ports for nginx (reserved by binding, released just before use)
    free = []
    held = []
    for _ in range(4):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        free.append(s.getsockname()[1])
        held.append(s)
    for s in held:
        s.close()
    ports["free"] = free

    with open(READY_FILE + ".tmp", "w") as f:
        f.write(json.dumps(ports) + "\n")
    os.rename(READY_FILE + ".tmp", READY_FILE)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    async def watchdog():
        while True:
            await asyncio.sleep(0.5)
            try:
                os.kill(PARENT, 0)
            except ProcessLookupError:
                stop.set()
                return

    asyncio.ensure_future(watchdog())
    await stop.wait()
    for c in fillers:
        c.close()
    hole.close()


if __name__ == "__main__":
    asyncio.run(main())
