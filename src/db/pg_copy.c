/*
** pg_copy.c
** COPY on a connection: COPY FROM STDIN fed in chunks of rows encoded in
** C, COPY TO STDOUT read row by row. A COPY holds the connection's turn
** from its start to its end, across the calls that feed or read it.
** See LICENSE
*/

#include <string.h>

#include "pg.h"


/* The connection at 1, whose COPY (of `kind`) the running task holds;
** raises `usage` otherwise. */
static PgConn *copy_self (lua_State *L, int kind, const char *what) {
  PgConn *c = pg__self(L);
  if (!c->busy || c->owner != c->io.loop->current ||
      c->op.phase != PH_COPY || c->op.kind != kind)
    aio__usage(L, "%s: this task has no COPY %s in progress on the "
               "connection", what, kind == OP_COPY_IN ? "FROM STDIN"
                                                      : "TO STDOUT");
  return c;
}


/* Starts COPY `sql` (at 2) of `kind`. */
static int copy_start (lua_State *L, int kind, const char *what) {
  PgConn *c = pg__self(L);
  size_t len;
  const char *sql = luaL_checklstring(L, 2, &len);
  luaL_argcheck(L, strlen(sql) == len, 2, "SQL text with a zero byte");
  lua_settop(L, 2);
  return pg__begin(L, c, kind, PM_COUNT, what);
}


/* conn:copy_in(sql) (suspends) -> the number of columns: starts COPY ...
** FROM STDIN; copy_put feeds it and copy_end ends it. */
int pg__m_copy_in (lua_State *L) {
  return copy_start(L, OP_COPY_IN, "copy_in");
}


/* conn:copy_out(sql) (suspends) -> the number of columns: starts COPY ...
** TO STDOUT; copy_get reads it. */
int pg__m_copy_out (lua_State *L) {
  return copy_start(L, OP_COPY_OUT, "copy_out");
}


/* ---------------------------------------------------------------------
** COPY FROM STDIN
** ------------------------------------------------------------------- */

static int put_step (lua_State *L, PgConn *c, int woke);
static int get_step (lua_State *L, PgConn *c, int woke);

/* Continues a COPY after a wait on its socket (ctx: the connection). */
static int copy_k (lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = (PgConn *)ctx;
  Task *t = c->io.loop->current;
  (void)status;
  if (pg__resumed(L, c) || aio__cancel_pending(t))
    return pg__op_interrupted(L, c, t);
  if (c->op.kind == OP_COPY_IN) return put_step(L, c, 1);
  return get_step(L, c, 1);
}


/*
** Queues what copy_put encoded (c->abuf) or the end of the data, and
** flushes; waits while the socket cannot take more. Stack: (conn, rows |
** data | message, from, to, next).
*/
static int put_step (lua_State *L, PgConn *c, int woke) {
  PgOp *op = &c->op;
  int rc;
  if (woke && !PQconsumeInput(c->pg)) return pg__op_lost(L, c);
  if (op->putting == 1) {
    rc = PQputCopyData(c->pg, c->abuf.data, (int)c->abuf.len);
    if (rc < 0) return pg__op_lost(L, c);
    if (rc == 0) goto wait;
    op->putting = 0;
  }
  else if (op->putting == 2) {
    rc = PQputCopyEnd(c->pg, lua_tostring(L, 2));
    if (rc < 0) return pg__op_lost(L, c);
    if (rc == 0) goto wait;
    op->putting = 0;
    pg__op_clear(c);
    op->kind = OP_COPY_END;
    op->mode = PM_COUNT;
    op->phase = PH_FLUSH;
    op->next = PH_RESULTS;
    return pg__op_run(L, c);
  }
  rc = PQflush(c->pg);
  if (rc < 0) return pg__op_lost(L, c);
  if (rc > 0) goto wait;
  lua_settop(L, 5);
  return 1;
wait:
  pg__wait(L, c, UV_WRITABLE | UV_READABLE, copy_k);
  return pg__op_lost(L, c);
}


/*
** conn:copy_put(rows, [from, [to]]) (suspends) -> the index of the next
** row to send: encodes rows from..to (default 1..#rows: each an array of
** fields, or a string of raw COPY data) until about 64 KiB, and sends
** them. conn:copy_put(data) sends a string of raw COPY data.
*/
int pg__m_copy_put (lua_State *L) {
  PgConn *c = copy_self(L, OP_COPY_IN, "copy_put");
  PgOp *op = &c->op;
  aio__task_enter(L, c->io.loop, "copy_put");
  if (lua_type(L, 2) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, 2, &len);
    c->abuf.len = c->abuf.off = 0;
    if (!aio__buf_append(&c->abuf, s, len))
      return aio__nomem(L, "copying");
    lua_settop(L, 4);
    lua_pushnil(L);
  }
  else {
    lua_Integer from, to, next;
    luaL_checktype(L, 2, LUA_TTABLE);
    from = luaL_optinteger(L, 3, 1);
    to = luaL_optinteger(L, 4, (lua_Integer)lua_rawlen(L, 2));
    lua_settop(L, 4);
    next = pg__encode_copy_rows(L, c, 2, from, to, PQnfields(op->res));
    if (next == 0)
      return luaL_error(L, "bad argument #1 to 'copy_put' (%s)",
                        lua_tostring(L, -1));
    lua_pushinteger(L, next);
  }
  op->putting = 1;
  return put_step(L, c, 0);
}


/*
** conn:copy_end([message]) (suspends) -> the number of rows copied. With
** a message the COPY fails instead (the server raises it back as `db`).
*/
int pg__m_copy_end (lua_State *L) {
  PgConn *c = copy_self(L, OP_COPY_IN, "copy_end");
  luaL_optstring(L, 2, NULL);
  lua_settop(L, 5);
  aio__task_enter(L, c->io.loop, "copy_end");
  c->op.putting = 2;
  return put_step(L, c, 0);
}


/* ---------------------------------------------------------------------
** COPY TO STDOUT
** ------------------------------------------------------------------- */

static int get_step (lua_State *L, PgConn *c, int woke) {
  PgOp *op = &c->op;
  char *buf;
  int n;
  if (woke && !PQconsumeInput(c->pg)) return pg__op_lost(L, c);
  n = PQgetCopyData(c->pg, &buf, 1);
  if (n > 0) {
    lua_pushlstring(L, buf, (size_t)n);
    PQfreemem(buf);
    return 1;
  }
  if (n == 0) {
    pg__wait(L, c, UV_READABLE, copy_k);
    return pg__op_lost(L, c);
  }
  if (n < -1) return pg__op_lost(L, c);
  pg__op_clear(c);                  /* the data ended: its result comes */
  op->kind = OP_COPY_END;
  op->mode = PM_COPYEND;
  op->phase = PH_RESULTS;
  return pg__op_run(L, c);
}


/*
** conn:copy_get() (suspends) -> the next row of the COPY TO STDOUT as the
** server sent it (a line, "\n" included), or nil and the number of rows
** once it is over.
*/
int pg__m_copy_get (lua_State *L) {
  PgConn *c = copy_self(L, OP_COPY_OUT, "copy_get");
  lua_settop(L, 1);
  aio__task_enter(L, c->io.loop, "copy_get");
  return get_step(L, c, 0);
}


/*
** conn:copy_abort() -> true if it ended a COPY: the one the running task
** holds on the connection (else it does nothing and returns false). A
** COPY FROM STDIN fails on the server; a COPY TO STDOUT is cancelled. The
** connection is left to be drained, like an interrupted query. Never
** suspends.
*/
int pg__m_copy_abort (lua_State *L) {
  PgConn *c = (PgConn *)aio__io_self(L);
  PgOp *op = &c->op;
  if (c->io.closing || !c->busy || c->owner != c->io.loop->current ||
      op->phase != PH_COPY) {
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_settop(L, 1);
  c->state = PG_ABANDONED;
  if (op->kind == OP_COPY_IN) {
    if (PQputCopyEnd(c->pg, "aborted by the client") != 1) pg__broken(c);
  }
  else {
    pg__start_cancel(L, c);
    c->need_cancel = 1;
  }
  op->putting = 0;
  pg__op_clear(c);
  pg__turn_leave(c);
  lua_pushboolean(L, 1);
  return 1;
}
