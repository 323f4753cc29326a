"""WebSocket peers for spec/websocket_spec.lua (Debian's python3-websockets
and python3-aiohttp, /usr/bin/python3).

  ws_fixture.py serve READY_FILE PARENT_PID CERT KEY
      Starts, on 127.0.0.1 and free ports: a websockets server, the same
      over TLS (CERT/KEY), an aiohttp server, and a raw TLS server that
      first writes "sni=<name> alpn=<protocol>" then echoes lines; writes
      their ports as JSON to READY_FILE; exits when PARENT_PID is gone.
      WebSocket paths:
        /echo            echo every message (text as text, bytes as bytes)
        /frag            send "ab","cd","ef" as one fragmented text message,
                         then echo
        /close/C/R       close at once with code C and reason R
        /drop            drop the TCP connection without a close frame
        /big/N           send a binary message of N bytes, then echo
        /ping            ping the client, send "pong <payload>" once
                         answered, then echo
        /info            send "<subprotocol>|<X-Test header>"
        /last            echo; when the client closes, print nothing but
                         remember its code: the next /report tells it
        /report          send "<code>|<reason>" of the last /last close
  ws_fixture.py client KIND URL SCENARIO
      Runs a client (KIND = websockets or aiohttp) against URL and prints
      one line per observation (see `client` below).
"""
import asyncio
import json
import os
import ssl
import sys

import aiohttp
import websockets
from aiohttp import web

LAST = {"code": None, "reason": None}


async def ws_handler(ws, path=None):
    path = path or ws.path
    try:
        if path == "/frag":
            await ws.send(["ab", "cd", "ef"])
        elif path.startswith("/close/"):
            _, _, code, reason = path.split("/", 3)
            await ws.close(int(code), reason)
            return
        elif path == "/drop":
            ws.transport.abort()
            return
        elif path.startswith("/big/"):
            await ws.send(b"b" * int(path[5:]))
        elif path == "/ping":
            waiter = await ws.ping(b"fixture")
            await asyncio.wait_for(waiter, 5)
            await ws.send("pong fixture")
        elif path == "/info":
            await ws.send("%s|%s" % (ws.subprotocol, ws.request_headers.get("X-Test")))
        elif path == "/report":
            await ws.send("%s|%s" % (LAST["code"], LAST["reason"]))
        async for m in ws:
            await ws.send(m)
    except websockets.ConnectionClosed:
        pass
    finally:
        if path == "/last":
            LAST["code"], LAST["reason"] = ws.close_code, ws.close_reason


async def aiohttp_handler(request):
    ws = web.WebSocketResponse(protocols=["chat", "superchat"], max_msg_size=4 * 1024 * 1024)
    await ws.prepare(request)
    path = request.path
    if path.startswith("/close/"):
        _, _, code, reason = path.split("/", 3)
        await ws.close(code=int(code), message=reason.encode())
        return ws
    if path == "/info":
        await ws.send_str("%s|%s" % (ws.ws_protocol, request.headers.get("X-Test")))
    async for m in ws:
        if m.type == aiohttp.WSMsgType.TEXT:
            await ws.send_str(m.data)
        elif m.type == aiohttp.WSMsgType.BINARY:
            await ws.send_bytes(m.data)
    if path == "/last":
        LAST["code"], LAST["reason"] = ws.close_code, None
    return ws


async def watch_parent(pid):
    while True:
        try:
            os.kill(pid, 0)
        except OSError:
            os._exit(0)
        await asyncio.sleep(0.5)


SNI = {}


async def tls_line_handler(reader, writer):
    """The raw TLS server: tells the SNI and ALPN it saw, then echoes
    lines."""
    obj = writer.get_extra_info("ssl_object")
    writer.write(("sni=%s alpn=%s\n" % (SNI.pop(id(obj), None),
                                        obj.selected_alpn_protocol())).encode())
    while True:
        line = await reader.readline()
        if not line:
            break
        writer.write(line)
        await writer.drain()
    writer.close()


async def serve(ready, parent, cert, key):
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    raw_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    raw_tls.load_cert_chain(cert, key)
    raw_tls.set_alpn_protocols(["h2", "http/1.1"])
    raw_tls.sni_callback = lambda obj, name, ctx: SNI.__setitem__(id(obj), name)
    lines = await asyncio.start_server(tls_line_handler, "127.0.0.1", 0, ssl=raw_tls)
    kw = dict(compression=None, subprotocols=["chat", "superchat"], max_size=4 * 1024 * 1024)
    plain = await websockets.serve(ws_handler, "127.0.0.1", 0, **kw)
    secure = await websockets.serve(ws_handler, "127.0.0.1", 0, ssl=tls, **kw)
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", aiohttp_handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    ports = {
        "websockets": plain.sockets[0].getsockname()[1],
        "wss": secure.sockets[0].getsockname()[1],
        "aiohttp": site._server.sockets[0].getsockname()[1],
        "tls": lines.sockets[0].getsockname()[1],
    }
    tmp = ready + ".tmp"
    with open(tmp, "w") as f:
        json.dump(ports, f)
    os.rename(tmp, ready)
    await watch_parent(parent)


def out(*parts):
    print(*parts, flush=True)


async def client_websockets(url, scenario):
    """Scenarios: echo (text, bytes, fragmented send, ping), close (we
    close with 4001), server_close (wait for the server's close),
    bad_utf8 (send invalid UTF-8 as text: the server must close 1007)."""
    async with websockets.connect(url, subprotocols=["chat"], compression=None,
                                  max_size=4 * 1024 * 1024) as ws:
        out("protocol", ws.subprotocol)
        if scenario == "echo":
            await ws.send("héllo")
            out("text", await ws.recv())
            await ws.send(b"\x00\x01\xff")
            r = await ws.recv()
            out("binary", type(r).__name__, r.hex())
            await ws.send(["fr", "ag", "ment"])
            out("fragmented", await ws.recv())
            await ws.send(b"x" * 300000)
            out("big", len(await ws.recv()))
            pong = await ws.ping(b"p1")
            await asyncio.wait_for(pong, 5)
            out("pong ok")
            await ws.close(1000, "done")
            out("closed", ws.close_code, ws.close_reason)
        elif scenario == "close":
            await ws.close(4001, "client bye")
            out("closed", ws.close_code, ws.close_reason)
        elif scenario == "server_close":
            try:
                await ws.send("close me")
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed as e:
                out("closed", e.code, e.reason)
        elif scenario == "bad_utf8":
            # websockets refuses to send invalid UTF-8 text: write a raw
            # masked frame through its transport
            ws.transport.write(bytes([0x81, 0x82, 0, 0, 0, 0, 0xC0, 0xAF]))
            try:
                while True:
                    await ws.recv()
            except websockets.ConnectionClosed as e:
                out("closed", e.code, e.reason)


async def client_aiohttp(url, scenario):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, protocols=["chat"], max_msg_size=4 * 1024 * 1024) as ws:
            out("protocol", ws.protocol)
            if scenario == "echo":
                await ws.send_str("héllo")
                out("text", (await ws.receive()).data)
                await ws.send_bytes(b"\x00\x01\xff")
                m = await ws.receive()
                out("binary", type(m.data).__name__, m.data.hex())
                await ws.send_bytes(b"x" * 300000)
                out("big", len((await ws.receive()).data))
                await ws.ping(b"p1")
                await ws.close(code=1000, message=b"done")
                out("closed", ws.close_code)
            elif scenario == "close":
                await ws.close(code=4001, message=b"client bye")
                out("closed", ws.close_code)
            elif scenario == "server_close":
                await ws.send_str("close me")
                while True:
                    m = await ws.receive()
                    if m.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED,
                                  aiohttp.WSMsgType.CLOSING):
                        out("closed", ws.close_code, m.extra or "")
                        break


def main():
    if sys.argv[1] == "serve":
        asyncio.run(serve(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]))
    else:
        kind, url, scenario = sys.argv[2:5]
        fn = client_websockets if kind == "websockets" else client_aiohttp
        asyncio.run(asyncio.wait_for(fn(url, scenario), 20))


main()
