"""Python's aiohttp client, driven by the HTTP server specs.

Reads a JSON job on stdin and prints a JSON answer on stdout:
  {"base": "http://127.0.0.1:PORT",
   "requests": [{"method": "GET", "path": "/x", "headers": {...},
                 "body": "...", "json": ..., "chunked": true}, ...],
   "concurrency": 1}
Requests run on one ClientSession (keep-alive), `concurrency` at a time,
in order when 1. The answer is an array, one entry per request:
  {"status": 200, "headers": {lower-case: value}, "body": "...",
   "json": decoded or null} or {"error": "..."}.
"""
import asyncio
import json
import sys

import aiohttp


async def one(session, base, req):
    kw = {"headers": req.get("headers") or {}}
    if "json" in req:
        kw["json"] = req["json"]
    elif "body" in req:
        body = req["body"].encode()
        if req.get("chunked"):
            async def gen(data=body):
                for i in range(0, len(data), 7):
                    yield data[i:i + 7]
            kw["data"] = gen()
        else:
            kw["data"] = body
    try:
        async with session.request(req.get("method", "GET"), base + req["path"], **kw) as r:
            text = await r.text()
            out = {"status": r.status, "body": text,
                   "headers": {k.lower(): v for k, v in r.headers.items()}}
            try:
                out["json"] = json.loads(text)
            except ValueError:
                out["json"] = None
            return out
    except Exception as e:  # noqa: BLE001 - reported to the spec
        return {"error": "%s: %s" % (type(e).__name__, e)}


async def main():
    job = json.load(sys.stdin)
    base = job["base"]
    reqs = job["requests"]
    sem = asyncio.Semaphore(job.get("concurrency", 1))
    async with aiohttp.ClientSession() as session:
        async def guarded(r):
            async with sem:
                return await one(session, base, r)
        out = await asyncio.gather(*(guarded(r) for r in reqs))
    json.dump(out, sys.stdout)


asyncio.run(main())
