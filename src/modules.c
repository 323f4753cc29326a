/*
** modules.c
** The modules of the C core, in the order aio.core opens them: the one
** place that names them all. Each module defines its descriptor (name,
** opener, end-of-run clean-up) next to its code; a new module adds its
** line here and its sources to the rockspec.
** See LICENSE
*/

#include "aio.h"

extern const AioModule aio__module_req;
extern const AioModule aio__module_semaphore;
extern const AioModule aio__module_queue;
extern const AioModule aio__module_waitlist;
extern const AioModule aio__module_watch;
extern const AioModule aio__module_fs;
extern const AioModule aio__module_tcp;
extern const AioModule aio__module_tls;
extern const AioModule aio__module_dns;
extern const AioModule aio__module_thread;
extern const AioModule aio__module_process;
extern const AioModule aio__module_signal;
extern const AioModule aio__module_workers;
extern const AioModule aio__module_http;
extern const AioModule aio__module_http_server;
extern const AioModule aio__module_ws;
extern const AioModule aio__module_redis;
extern const AioModule aio__module_pg;

const AioModule *const aio__modules[] = {
  &aio__module_req,
  &aio__module_semaphore,
  &aio__module_queue,
  &aio__module_waitlist,
  &aio__module_watch,
  &aio__module_fs,
  &aio__module_tcp,
  &aio__module_tls,
  &aio__module_dns,
  &aio__module_thread,
  &aio__module_process,
  &aio__module_signal,
  &aio__module_workers,
  &aio__module_http,
  &aio__module_http_server,
  &aio__module_ws,
  &aio__module_redis,
  &aio__module_pg,
  NULL
};


AIO_EXPORT int luaopen_aio_core (lua_State *L);

/* require "aio.core": the loop and the core table with every module. */
int luaopen_aio_core (lua_State *L) {
  const AioModule *const *m;
  aio__open_loop(L);                                /* loop core */
  for (m = aio__modules; *m != NULL; m++) (*m)->open(L);
  return 1;
}
