/*
** pg_conn.c
** core.pg: PostgreSQL connections on libpq's non-blocking API. Connecting
** (PQconnectPoll, the socket re-read at every step), the socket's poller,
** turns (one operation at a time, FIFO), cancel requests on the thread
** pool, notifications, closing, and the module itself.
** See LICENSE
*/

#include <stdlib.h>
#include <string.h>

#include "pg.h"

#define MAX_OPTIONS 64      /* connection options PQconnectStartParams gets */

static const IoType poll_type = {"connection", aio__poller_close, NULL, NULL};

static void conn_close (IoHandle *io);
static void conn_release (IoHandle *io);

static const IoType conn_type = {"connection", conn_close, NULL, conn_release};


/* ---------------------------------------------------------------------
** The object
** ------------------------------------------------------------------- */

/* The receiver of a method: an open connection (raises `closed`). */
PgConn *pg__self (lua_State *L) {
  return (PgConn *)aio__io_check(L);
}


/* Frees the results the last operation kept. */
void pg__op_clear (PgConn *c) {
  if (c->op.res != NULL) PQclear(c->op.res);
  if (c->op.err != NULL) PQclear(c->op.err);
  c->op.res = c->op.err = NULL;
}


/* Stops watching the socket (while it is still open, or right after
** libpq closed it: nothing else can have reused the descriptor). */
static void poll_close (PgConn *c) {
  if (c->poll != NULL) {
    aio__io_close(&c->poll->io);
    c->poll = NULL;
  }
  c->fd = -1;
}


/* The connection is lost: from now on every use raises `io`. */
void pg__broken (PgConn *c) {
  c->state = PG_BROKEN;
  poll_close(c);
}


/* IoType.close: wakes every waiter (they raise `closed`), stops watching,
** then lets libpq close the socket. Never runs Lua. */
static void conn_close (IoHandle *io) {
  PgConn *c = (PgConn *)io;
  Loop *loop = io->loop;
  while (!link_empty(&c->turnq)) {
    Task *t = aio_container_of(c->turnq.next, Task, wait.link);
    aio__task_wake(loop, t, AIO_WAKE_CLOSED);
  }
  poll_close(c);
  pg__op_clear(c);
  if (c->pg != NULL) {
    PQfinish(c->pg);
    c->pg = NULL;
  }
  c->busy = 0;
  c->owner = NULL;
  c->cancel = NULL;
}


static void conn_release (IoHandle *io) {
  PgConn *c = (PgConn *)io;
  aio__buf_free(&c->dealloc);
  aio__buf_free(&c->scratch);
  aio__buf_free(&c->abuf);
  free(c->pvals);
  free(c->plens);
  free(c->pfmts);
}


/* libpq's notices (RAISE NOTICE, warnings) would go to stderr: they are
** dropped. */
static void ignore_notice (void *arg, const PGresult *res) {
  (void)arg; (void)res;
}


/* Makes sure `poll` watches PQsocket: a new poller when libpq moved to
** another socket. Returns 0, or a UV_E* code. */
static int poll_sync (PgConn *c) {
  int fd = PQsocket(c->pg), err = 0;
  if (fd == c->fd && c->poll != NULL) return 0;
  poll_close(c);
  if (fd < 0) return UV_EBADF;
  c->poll = aio__poller_new(c->io.loop, fd, sizeof(Poller), &poll_type, &err);
  if (c->poll == NULL) return err;
  c->fd = fd;
  return 0;
}


/*
** Suspends the running task until the socket is ready for `events` (and
** for reading too while tasks wait for notifications). `k` runs with ctx
** = c and starts with pg__resumed. Returns -1 without suspending if the
** socket cannot be watched (the caller raises).
*/
int pg__wait (lua_State *L, PgConn *c, int events, lua_KFunction k) {
  Poller *p = c->poll;
  if (p == NULL) return -1;
  if (c->nlisten > 0) events |= UV_READABLE;
  if (aio__poller_watch(p, events) != 0) return -1;
  return aio__io_wait(L, &p->io, &p->waiters, 0, (lua_KContext)c, k);
}


/*
** The start of a continuation after pg__wait or a turn: raises `closed`
** if the connection was closed meanwhile; returns 0 if the task was woken
** as it asked, else 1 (interrupted: the caller cleans up, then calls
** aio__wake_raise).
*/
int pg__resumed (lua_State *L, PgConn *c) {
  Task *t = c->io.loop->current;
  if (c->io.closing) {
    if (t->wake == AIO_WAKE_OK || t->wake == AIO_WAKE_CLOSED)
      aio__closed_error(L, "connection");
    aio__wake_raise(L, t);
  }
  return t->wake != AIO_WAKE_OK;
}


/*
** Raises `io`: the connection was lost (`what` says doing what). The
** error the server sent last (FATAL 57P01 for a shutdown) gives its
** message and SQLSTATE: `r` if it is one (freed here), else what libpq
** still has (it closed the socket by now, so asking does not block);
** else the first line of libpq's message.
*/
int pg__raise_lost (lua_State *L, PgConn *c, const char *what, PGresult *r) {
  const char *msg = c->pg != NULL ? PQerrorMessage(c->pg) : "";
  size_t n = strcspn(msg, "\n");
  int i;
  if (r != NULL && PQresultErrorField(r, PG_DIAG_SQLSTATE) == NULL) {
    PQclear(r);
    r = NULL;
  }
  if (r == NULL && c->pg != NULL && PQsocket(c->pg) < 0)
    for (i = 0; i < 4; i++) {
      PGresult *x = PQgetResult(c->pg);
      if (x == NULL) break;
      if (r == NULL && PQresultStatus(x) == PGRES_FATAL_ERROR &&
          PQresultErrorField(x, PG_DIAG_SQLSTATE) != NULL) r = x;
      else PQclear(x);
    }
  if (r != NULL) {
    const char *primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    lua_pushstring(L, primary != NULL ? primary : "");
    aio__error_new(L, "io", "%s: the connection to the server was lost: %s",
                   what, lua_tostring(L, -1));
    aio__setfield_str(L, "sqlstate", PQresultErrorField(r, PG_DIAG_SQLSTATE));
    PQclear(r);
    return lua_error(L);
  }
  lua_pushlstring(L, msg, n);
  aio__error_new(L, "io", "%s: the connection to the server was lost%s%s",
                 what, n > 0 ? ": " : "", lua_tostring(L, -1));
  return lua_error(L);
}


/* ---------------------------------------------------------------------
** Turns
** ------------------------------------------------------------------- */

/* The operation is over: the turn passes to the first waiting task, or
** the connection is free. Tasks waiting for notifications look at what
** the operation may have read (no operation waits on the socket now). */
void pg__turn_leave (PgConn *c) {
  Loop *loop = c->io.loop;
  c->owner = NULL;
  if (c->nlisten > 0 && c->poll != NULL)
    aio__notify_all(loop, &c->poll->waiters);
  while (!link_empty(&c->turnq)) {
    Task *w = aio_container_of(c->turnq.next, Task, wait.link);
    if (aio__task_wake(loop, w, AIO_WAKE_OK)) {
      c->owner = w;
      return;
    }
    link_remove(&w->wait.link);
  }
  c->busy = 0;
}


/* Task `t`, holding the turn, starts operation `kind` (result shape
** `mode`). What the last operation kept is freed first: a decoding that
** raised (a cjson error, memory) left its result in op.res. */
static int op_start (lua_State *L, PgConn *c, Task *t, int kind, int mode) {
  c->owner = t;
  pg__op_clear(c);
  memset(&c->op, 0, sizeof c->op);
  c->op.kind = (uint8_t)kind;
  c->op.mode = (uint8_t)mode;
  return pg__op_run(L, c);
}


/* Handed the turn (or interrupted while waiting for it). ctx: the
** operation's kind | mode << 8; the connection is at 1. */
static int turn_k (lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = (PgConn *)((IoRef *)lua_touserdata(L, 1))->io;
  Task *t = c->io.loop->current;
  (void)status;
  if (pg__resumed(L, c)) return aio__wake_raise(L, t);  /* took nothing */
  if (aio__cancel_pending(t)) {       /* cancelled as the turn came */
    pg__turn_leave(c);
    aio__checkpoint(L, t);
  }
  return op_start(L, c, t, (int)(ctx & 0xff), (int)(ctx >> 8));
}


/*
** Starts operation `kind` (result shape `mode`) on the connection at 1
** when its turn comes: at once if the connection is free, else after the
** tasks waiting before. The arguments stay on the stack (see PgOp).
** Must be the return expression of a method.
*/
int pg__begin (lua_State *L, PgConn *c, int kind, int mode,
               const char *what) {
  Task *t = aio__task_enter(L, c->io.loop, what);
  if (c->busy) {
    if (c->owner == t)
      return aio__usage(L, "%s: the connection is in the middle of a COPY "
                        "in this task: finish it first", what);
    link_push(&c->turnq, &t->wait.link);
    return aio__suspend(L, t, (lua_KContext)(kind | mode << 8), turn_k);
  }
  c->busy = 1;
  return op_start(L, c, t, kind, mode);
}


/* ---------------------------------------------------------------------
** Cancel requests: PQcancel blocks, so it runs on the thread pool
** ------------------------------------------------------------------- */

static void cancel_work (uv_work_t *w) {
  PgCancel *q = aio_container_of(w, PgCancel, work);
  q->ok = PQcancel(q->cancel, q->err, sizeof q->err);
}


static void cancel_done (uv_work_t *w, int status) {
  PgCancel *q = aio_container_of(w, PgCancel, work);
  aio__req_done(&q->r, status);
}


static void cancel_gc (Req *r) {
  PgCancel *q = (PgCancel *)r;
  if (q->cancel != NULL) PQfreeCancel(q->cancel);
  q->cancel = NULL;
}


/*
** Asks the server to cancel what the connection (at 1) is doing. The
** request is a userdata anchored while a pool thread runs it, so it
** outlives a task killed meanwhile; the connection keeps the last one
** (PG_UV_CANCEL) so that nothing else is sent before it is done.
*/
void pg__start_cancel (lua_State *L, PgConn *c) {
  Loop *loop = c->io.loop;
  PgCancel *q;
  if (c->pg == NULL) return;
  q = (PgCancel *)aio__req_new(L, loop, sizeof(PgCancel), 0);
  q->r.gc = cancel_gc;
  q->cancel = PQgetCancel(c->pg);
  if (q->cancel == NULL ||
      uv_queue_work(&loop->uv, &q->work, cancel_work, cancel_done) != 0) {
    lua_pop(L, 1);
    return;
  }
  aio__req_start(L, &q->r, -1);
  lua_setiuservalue(L, 1, PG_UV_CANCEL);
  c->cancel = &q->r;
}


/* ---------------------------------------------------------------------
** Connecting
** ------------------------------------------------------------------- */

/* The connection failed: closes it and returns nil and libpq's message
** (pg.lua raises `connect`, or `db` for what the server refused). */
static int connect_fail (lua_State *L, PgConn *c) {
  const char *msg = c->pg != NULL ? PQerrorMessage(c->pg) : "out of memory";
  lua_pushstring(L, msg);
  aio__io_close(&c->io);
  lua_pushnil(L);
  lua_insert(L, -2);                /* nil, message: see pg.lua's connect */
  return 2;
}


static int connect_step (lua_State *L, PgConn *c, int polled);

/* Stack: (keywords, values, cache, json, conn). */
static int connect_k (lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = (PgConn *)ctx;
  Task *t = c->io.loop->current;
  (void)status;
  if (pg__resumed(L, c) || aio__cancel_pending(t)) {
    aio__io_close(&c->io);
    return aio__wake_raise(L, t);
  }
  return connect_step(L, c, 1);
}


/* Runs PQconnectPoll once the socket is ready (`polled`), and waits for
** what it asks for next, watching the socket it names now. */
static int connect_step (lua_State *L, PgConn *c, int polled) {
  PostgresPollingStatusType st = PGRES_POLLING_WRITING;
  if (polled || PQsocket(c->pg) < 0) st = PQconnectPoll(c->pg);
  if (st == PGRES_POLLING_OK) {
    if (PQsetnonblocking(c->pg, 1) != 0 || poll_sync(c) != 0)
      return connect_fail(L, c);
    PQsetErrorVerbosity(c->pg, PQERRORS_DEFAULT);
    c->state = PG_READY;
    lua_settop(L, 5);
    return 1;
  }
  if (st == PGRES_POLLING_FAILED || poll_sync(c) != 0)
    return connect_fail(L, c);
  if (pg__wait(L, c, st == PGRES_POLLING_READING ? UV_READABLE : UV_WRITABLE,
               connect_k) < 0)
    return connect_fail(L, c);
  return 0;  /* not reached: pg__wait yields */
}


/*
** core.pg.connect(keywords, values, cache, decode_json) (suspends) ->
** Conn, or nil, message when libpq cannot connect (pg.lua turns it into
** `connect` or `db`). keywords/values: arrays of the connection options
** (host names already resolved into hostaddr by pg.lua: libpq would
** resolve them blocking). cache: the statement cache's bound.
*/
static int l_connect (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  const char *kw[MAX_OPTIONS + 1], *vals[MAX_OPTIONS + 1];
  lua_Integer n, i, cache;
  PgConn *c;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  cache = luaL_checkinteger(L, 3);
  luaL_argcheck(L, cache >= 0 && cache <= 1000000, 3, "out of range");
  lua_settop(L, 4);
  n = (lua_Integer)lua_rawlen(L, 1);
  luaL_argcheck(L, n <= MAX_OPTIONS && (lua_Integer)lua_rawlen(L, 2) == n, 1,
                "too many options");
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    lua_rawgeti(L, 2, i);
    kw[i - 1] = lua_type(L, -2) == LUA_TSTRING ?
                aio__cstring(L, -2, "a connection option") : NULL;
    vals[i - 1] = lua_type(L, -1) == LUA_TSTRING ?
                  aio__cstring(L, -1, "a connection option") : NULL;
    lua_pop(L, 2);                  /* still referenced by the tables */
    luaL_argcheck(L, kw[i - 1] != NULL && vals[i - 1] != NULL, 1,
                  "options must be strings");
  }
  kw[n] = vals[n] = NULL;
  aio__task_enter(L, loop, "aio.pg.connect");
  c = (PgConn *)aio__io_new(loop, sizeof(PgConn), &conn_type);
  if (c == NULL) return aio__nomem(L, "connecting");
  c->fd = -1;
  c->state = PG_CONNECTING;
  c->maxstmts = (unsigned)cache;
  c->decode_json = (uint8_t)lua_toboolean(L, 4);
  link_init(&c->turnq);
  aio__io_push(L, &c->io, PG_CONN_MT, PG_NUV);       /* kw vals c j conn */
  lua_newtable(L);
  lua_setiuservalue(L, 5, PG_UV_STMTS);
  c->pg = PQconnectStartParams(kw, vals, 0);
  if (c->pg == NULL || PQstatus(c->pg) == CONNECTION_BAD)
    return connect_fail(L, c);
  PQsetErrorVerbosity(c->pg, PQERRORS_VERBOSE);     /* the SQLSTATE too */
  PQsetNoticeReceiver(c->pg, ignore_notice, NULL);
  return connect_step(L, c, 0);
}


/*
** core.pg.conninfo(dsn) -> keywords, values (arrays of the options set in
** a connection string or URI), or nil, message if it does not parse.
*/
static int l_conninfo (lua_State *L) {
  const char *dsn = aio__checkcstring(L, 1, "the connection string");
  char *err = NULL;
  PQconninfoOption *opts = PQconninfoParse(dsn, &err), *o;
  lua_Integer n = 0;
  if (opts == NULL) {
    lua_pushnil(L);
    lua_pushstring(L, err != NULL ? err : "out of memory");
    if (err != NULL) PQfreemem(err);
    return 2;
  }
  lua_newtable(L);
  lua_newtable(L);
  for (o = opts; o->keyword != NULL; o++) {
    if (o->val == NULL) continue;
    n++;
    lua_pushstring(L, o->keyword);
    lua_rawseti(L, -3, n);
    lua_pushstring(L, o->val);
    lua_rawseti(L, -2, n);
  }
  PQconninfoFree(opts);
  return 2;
}


/* ---------------------------------------------------------------------
** Notifications
** ------------------------------------------------------------------- */

static int notify_step (lua_State *L, PgConn *c, int polled);

/* Stack: (conn, timeout). */
static int notify_k (lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = (PgConn *)ctx;
  Task *t = c->io.loop->current;
  (void)status;
  c->nlisten--;
  if (c->io.closing && t->wake != AIO_WAKE_CANCEL) {
    lua_pushnil(L);                 /* closed: the iteration ends */
    return 1;
  }
  if (t->wake == AIO_WAKE_TIMER) {
    lua_pushnil(L);
    return 1;
  }
  if (t->wake != AIO_WAKE_OK || aio__cancel_pending(t))
    return aio__wake_raise(L, t);
  return notify_step(L, c, 1);
}


/* Returns the next notification libpq has read, else waits for input
** (reading it when no operation does). */
static int notify_step (lua_State *L, PgConn *c, int polled) {
  PGnotify *n;
  double timeout = lua_tonumber(L, 2);
  if (c->state == PG_BROKEN) return pg__raise_lost(L, c, "notifications", NULL);
  if (polled && !c->busy && c->state == PG_READY &&
      !PQconsumeInput(c->pg)) {
    pg__broken(c);
    return pg__raise_lost(L, c, "notifications", NULL);
  }
  n = c->state == PG_CONNECTING ? NULL : PQnotifies(c->pg);
  if (n != NULL) {
    lua_createtable(L, 0, 3);
    aio__setfield_str(L, "channel", n->relname);
    aio__setfield_str(L, "payload", n->extra);
    lua_pushinteger(L, n->be_pid);
    lua_setfield(L, -2, "pid");
    PQfreemem(n);
    return 1;
  }
  if (c->poll == NULL) return pg__raise_lost(L, c, "notifications", NULL);
  c->nlisten++;
  if (aio__poller_watch(c->poll, c->poll->want | UV_READABLE) != 0) {
    c->nlisten--;
    pg__broken(c);
    return pg__raise_lost(L, c, "notifications", NULL);
  }
  return aio__io_wait(L, &c->poll->io, &c->poll->waiters,
                      timeout > 0 ? timeout : 0, (lua_KContext)c, notify_k);
}


/*
** conn:notification([timeout]) (suspends) -> {channel=, payload=, pid=},
** or nil if `timeout` seconds pass first or the connection is closed.
** Waits beside the operations on the connection (takes no turn).
*/
static int conn_notification (lua_State *L) {
  PgConn *c = pg__self(L);
  double timeout = 0;
  if (!lua_isnoneornil(L, 2)) timeout = aio__checkduration(L, 2);
  lua_settop(L, 1);
  lua_pushnumber(L, timeout);
  aio__task_enter(L, c->io.loop, "conn:notification");
  return notify_step(L, c, 0);
}


/* ---------------------------------------------------------------------
** State
** ------------------------------------------------------------------- */

static const char *tx_name (PGconn *pg) {
  switch (PQtransactionStatus(pg)) {
    case PQTRANS_IDLE: return "idle";
    case PQTRANS_ACTIVE: return "active";
    case PQTRANS_INTRANS: return "intrans";
    case PQTRANS_INERROR: return "inerror";
    default: return "unknown";
  }
}


/*
** conn:state() -> state, transaction, dirty: "ready" | "busy" |
** "abandoned" | "broken" | "closed"; "idle" | "intrans" | "inerror" |
** "active" | "unknown"; whether the session may have been changed.
*/
static int conn_state (lua_State *L) {
  PgConn *c = (PgConn *)aio__io_self(L);
  const char *st;
  if (c->io.closing || c->pg == NULL) st = "closed";
  else if (c->state == PG_BROKEN || PQstatus(c->pg) == CONNECTION_BAD)
    st = "broken";
  else if (c->busy) st = "busy";
  else if (c->state == PG_ABANDONED) st = "abandoned";
  else st = "ready";
  lua_pushstring(L, st);
  lua_pushstring(L, c->pg != NULL ? tx_name(c->pg) : "unknown");
  lua_pushboolean(L, c->dirty);
  return 3;
}


/* conn:clean() -> true if free, idle outside a transaction, and nothing
** may have changed the session: a pool takes it back as it is. */
static int conn_clean (lua_State *L) {
  PgConn *c = (PgConn *)aio__io_self(L);
  lua_pushboolean(L, !c->io.closing && c->pg != NULL &&
                  c->state == PG_READY && !c->busy && !c->dirty &&
                  PQtransactionStatus(c->pg) == PQTRANS_IDLE);
  return 1;
}


/* conn:set_clean() forgets that the session may have changed (after a
** reset). */
static int conn_set_clean (lua_State *L) {
  pg__self(L)->dirty = 0;
  return 0;
}


/*
** conn:check() -> true if the connection still looks usable. The socket
** of a free connection is watched while it is idle (its poller muted: a
** first event stops it), so one the server ended (a restart, an idle
** timeout, pg_terminate_backend) is found here without waiting for a
** query to fail: its last message and the end of the stream are read.
*/
static int conn_check (lua_State *L) {
  PgConn *c = (PgConn *)aio__io_self(L);
  int ok = !c->io.closing && c->pg != NULL && c->state == PG_READY;
  if (ok && !c->busy && c->poll != NULL && c->poll->events == 0) {
    if (!PQconsumeInput(c->pg) || !PQconsumeInput(c->pg) ||
        PQstatus(c->pg) == CONNECTION_BAD || PQsocket(c->pg) != c->fd) {
      pg__broken(c);
      ok = 0;
    }
  }
  lua_pushboolean(L, ok);
  return 1;
}


/* conn:pid() -> the server process serving this connection. */
static int conn_pid (lua_State *L) {
  lua_pushinteger(L, PQbackendPID(pg__self(L)->pg));
  return 1;
}


/* conn:server_version() -> e.g. 150004 for 15.4. */
static int conn_server_version (lua_State *L) {
  lua_pushinteger(L, PQserverVersion(pg__self(L)->pg));
  return 1;
}


/* conn:parameter(name) -> a server parameter libpq tracks
** (server_encoding, TimeZone, ...) or nil. */
static int conn_parameter (lua_State *L) {
  PgConn *c = pg__self(L);
  const char *v = PQparameterStatus(c->pg, luaL_checkstring(L, 2));
  if (v == NULL) lua_pushnil(L);
  else lua_pushstring(L, v);
  return 1;
}


/* conn:closed() -> boolean */
static int conn_closed (lua_State *L) {
  lua_pushboolean(L, ((PgConn *)aio__io_self(L))->io.closing);
  return 1;
}


/* conn:escape_identifier(s) / conn:escape_literal(s) -> quoted text */
static int escape (lua_State *L, int ident) {
  PgConn *c = pg__self(L);
  size_t len;
  const char *s = aio__checkcstring(L, 2, ident ? "an identifier" :
                                     "a literal");   /* libpq stops at 0 */
  char *q;
  len = lua_rawlen(L, 2);
  q = ident ? PQescapeIdentifier(c->pg, s, len)
                  : PQescapeLiteral(c->pg, s, len);
  if (q == NULL)
    return luaL_error(L, "cannot quote: %s", PQerrorMessage(c->pg));
  lua_pushstring(L, q);
  PQfreemem(q);
  return 1;
}

static int conn_escape_identifier (lua_State *L) { return escape(L, 1); }
static int conn_escape_literal (lua_State *L) { return escape(L, 0); }


static int conn_tostring (lua_State *L) {
  PgConn *c = (PgConn *)aio__io_self(L);
  if (c->io.closing || c->pg == NULL)
    lua_pushstring(L, "aio.pg.Conn (closed)");
  else
    lua_pushfstring(L, "aio.pg.Conn (pid %d)", PQbackendPID(c->pg));
  return 1;
}


/* ---------------------------------------------------------------------
** The module
** ------------------------------------------------------------------- */


static const luaL_Reg conn_methods[] = {
  {"query", pg__m_query},
  {"query_one", pg__m_query_one},
  {"query_value", pg__m_query_value},
  {"execute", pg__m_execute},
  {"command", pg__m_command},
  {"drain", pg__m_drain},
  {"copy_in", pg__m_copy_in},
  {"copy_put", pg__m_copy_put},
  {"copy_end", pg__m_copy_end},
  {"copy_out", pg__m_copy_out},
  {"copy_get", pg__m_copy_get},
  {"copy_abort", pg__m_copy_abort},
  {"notification", conn_notification},
  {"state", conn_state},
  {"clean", conn_clean},
  {"set_clean", conn_set_clean},
  {"check", conn_check},
  {"pid", conn_pid},
  {"server_version", conn_server_version},
  {"parameter", conn_parameter},
  {"result_format", pg__m_result_format},
  {"escape_identifier", conn_escape_identifier},
  {"escape_literal", conn_escape_literal},
  {"closed", conn_closed},
  {"close", aio__io_close_method},
  {NULL, NULL}
};

static const luaL_Reg conn_meta[] = {
  {"__close", aio__io_close_method},
  {"__gc", aio__io__gc},
  {"__tostring", conn_tostring},
  {NULL, NULL}
};

static const AioClass conn_class = {PG_CONN_MT, conn_methods, conn_meta};


static const luaL_Reg pg_funcs[] = {
  {"connect", l_connect},
  {"conninfo", l_conninfo},
  {NULL, NULL}
};


/* core.pg = {connect, conninfo, set_json, libpq_version, methods (the
** connection class's methods, for the Lua layer to call directly)}. */
static void open_pg (lua_State *L) {
  int core = lua_gettop(L);
  aio__class_open(L, core - 1, &pg__rows_class);
  lua_pop(L, 1);
  aio__class_open(L, core - 1, &conn_class);         /* mt */
  lua_newtable(L);                                   /* mt pg */
  lua_getfield(L, -2, "__index");
  lua_setfield(L, -2, "methods");
  lua_remove(L, -2);                                 /* pg */
  aio__setfuncs(L, core - 1, pg_funcs);
  pg__open_json(L);
  lua_pushinteger(L, PQlibVersion());
  lua_setfield(L, -2, "libpq_version");
  lua_setfield(L, core, "pg");
}


const AioModule aio__module_pg = {"pg", open_pg, NULL};
