/*
** pg__m_query.c
** Operations on a connection: the phases of a query (prepare through the
** statement cache, bind and execute, read the results), draining what an
** interrupted operation left, and the errors the server reports.
** See LICENSE
*/

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pg.h"

static const char *const op_names[] = {
  "query", "query_one", "query_value", "execute", "command"
};

#define op_name(op) ((op)->kind == OP_QUERY ? op_names[(op)->mode] : \
                     (op)->kind == OP_DRAIN ? "drain" : "copy")


/* ---------------------------------------------------------------------
** Leaving an operation early
** ------------------------------------------------------------------- */

/* The connection was lost: leaves the turn (those waiting for it raise
** `io` in turn) and raises `io`. */
int pg__op_lost (lua_State *L, PgConn *c) {
  const char *what = op_name(&c->op);
  PGresult *err = c->op.err;
  c->op.err = NULL;
  pg__broken(c);
  pg__op_clear(c);
  pg__turn_leave(c);
  return pg__raise_lost(L, c, what, err);
}


/* Leaves the turn and raises the error on top of the stack. The
** connection is ready: nothing was sent. */
static int op_raise (lua_State *L, PgConn *c) {
  if (c->pipeline) {
    PQexitPipelineMode(c->pg);
    c->pipeline = 0;
  }
  pg__op_clear(c);
  pg__turn_leave(c);
  return lua_error(L);
}


/* Suspends until the socket is ready for `events`; pg__op_k continues. */
int pg__op_wait (lua_State *L, PgConn *c, int events) {
  pg__wait(L, c, events, pg__op_k);   /* yields, unless it cannot watch */
  return pg__op_lost(L, c);
}


/* Waits for input, and for the socket to take output libpq still has. */
static int op_wait_input (lua_State *L, PgConn *c) {
  int rc = PQflush(c->pg);
  if (rc < 0) return pg__op_lost(L, c);
  return pg__op_wait(L, c, UV_READABLE | (rc > 0 ? UV_WRITABLE : 0));
}


/*
** The task was interrupted (cancelled, its deadline passed) while the
** operation waited. What was sent cannot be taken back: the connection
** is left abandoned, and a cancel request goes to the server when it may
** still be working on a query. The next operation (or the pool) drains
** it. Then raises the interruption.
*/
int pg__op_interrupted (lua_State *L, PgConn *c, Task *t) {
  PgOp *op = &c->op;
  switch (op->phase) {
    case PH_FLUSH: case PH_PREPARED: case PH_RESULTS: case PH_COPY:
      if (c->state == PG_READY) c->state = PG_ABANDONED;
      if (op->kind == OP_COPY_IN && op->phase == PH_COPY)
        PQputCopyEnd(c->pg, "cancelled by the client");
      else if (op->phase == PH_RESULTS || op->phase == PH_COPY ||
               (op->phase == PH_FLUSH && op->next == PH_RESULTS)) {
        if (!c->need_cancel) pg__start_cancel(L, c);
        c->need_cancel = 1;
      }
      break;
    default:                      /* draining: still abandoned */
      break;
  }
  pg__op_clear(c);
  pg__turn_leave(c);
  return aio__wake_raise(L, t);
}


/* Continues an operation after a wait (ctx: the connection). A
** cancellation (or deadline) that came while the task was ready wins
** over what the socket said: the next wait would not see it. */
int pg__op_k (lua_State *L, int status, lua_KContext ctx) {
  PgConn *c = (PgConn *)ctx;
  Task *t = c->io.loop->current;
  (void)status;
  if (pg__resumed(L, c) || aio__cancel_pending(t))
    return pg__op_interrupted(L, c, t);
  c->op.woke = 1;
  return pg__op_run(L, c);
}


/* ---------------------------------------------------------------------
** Reading results
** ------------------------------------------------------------------- */

/* Does command tag `tag` say the session changed in a way a pool must
** reset (settings, listening, cursors held, prepared statements)? */
static int tag_dirty (const char *tag) {
  switch (tag[0]) {
    case 'S': return strcmp(tag, "SET") == 0;
    case 'L': return strcmp(tag, "LISTEN") == 0 || strcmp(tag, "LOAD") == 0;
    case 'D': return strcmp(tag, "DECLARE CURSOR") == 0 ||
                     strcmp(tag, "DO") == 0;
    case 'P': return strcmp(tag, "PREPARE") == 0;
    case 'C': return strcmp(tag, "CALL") == 0;
    default: return 0;
  }
}


/* Does SQL text `sql` call functions that change the session beyond a
** transaction (advisory locks, set_config)? Case-insensitive. */
int pg__scan_dirty (const char *sql, size_t len) {
  size_t i;
  for (i = 0; i + 8 <= len; i++) {
    char ch = sql[i] | 0x20;
    if (ch == 'a' && strncasecmp(sql + i, "advisory", 8) == 0) return 1;
    if (ch == 's' && i + 10 <= len && strncasecmp(sql + i, "set_config", 10) == 0)
      return 1;
  }
  return 0;
}


/* Reads and drops the rest of a COPY OUT. Returns 1 when it ended, 0 if
** more must come, -1 on failure. */
static int copy_out_skip (PGconn *pg) {
  for (;;) {
    char *buf;
    int n = PQgetCopyData(pg, &buf, 1);
    if (n > 0) PQfreemem(buf);
    else if (n == 0) return 0;
    else if (n == -1) return 1;
    else return -1;
  }
}


/* pg__collect, the collector left running (see there). */
static int collect (lua_State *L, PgConn *c, int read) {
  PGconn *pg = c->pg;
  PgOp *op = &c->op;
  int discard = op->phase == PH_DRAIN, nulls = 0;
  if (read && !PQconsumeInput(pg)) return -1;
  for (;;) {
    PGresult *r;
    if (PQisBusy(pg)) return 0;
    r = PQgetResult(pg);
    if (r == NULL) {
      if (!c->pipeline || c->nsync <= 0) return 1;
      if (++nulls > 1) return 0;  /* between the commands of a pipeline */
      continue;
    }
    nulls = 0;
    switch (PQresultStatus(r)) {
      case PGRES_PIPELINE_SYNC:
        c->nsync--;
        PQclear(r);
        continue;
      case PGRES_PIPELINE_ABORTED:
        PQclear(r);
        continue;
      case PGRES_COPY_IN:
      case PGRES_COPY_OUT: {
        int in = PQresultStatus(r) == PGRES_COPY_IN;
        if (!discard && op->kind == (in ? OP_COPY_IN : OP_COPY_OUT)) {
          PQclear(op->res);               /* the COPY asked for: it starts */
          op->res = r;
          return 2;
        }
        PQclear(r);                       /* else it ends here */
        if (!discard) op->copy_misuse = 1;
        if (in) {
          if (PQputCopyEnd(pg, discard ? "abandoned by the client" :
                           "use conn:copy_in() for COPY FROM STDIN") < 0)
            return -1;
          continue;
        }
        switch (copy_out_skip(pg)) {
          case 0: return 0;
          case -1: return -1;
          default: continue;
        }
      }
      case PGRES_COPY_BOTH:
        PQclear(r);
        return -1;                /* replication: not ours to speak */
      default:
        break;
    }
    if (op->skip > 0) {           /* DEALLOCATEs before a prepare */
      op->skip--;
      PQclear(r);
      continue;
    }
    if (PQresultStatus(r) == PGRES_FATAL_ERROR) {
      if (discard || op->err != NULL) PQclear(r);
      else op->err = r;
      continue;
    }
    if (op->rowsidx != 0 && op->rows_done) {   /* an earlier statement's */
      lua_settop(L, op->rowsidx - 1);           /* rows are not the last */
      op->rowsidx = 0;
    }
    if (PQresultStatus(r) == PGRES_SINGLE_TUPLE) {
      if (!discard && op->err == NULL) {
        if (op->rowsidx == 0) {
          op->rowsidx = pg__rows_begin(L, r, 0);
          op->rows_done = 0;
        }
        pg__rows_add(L, c, r, op->rowsidx, INT_MAX);
        pg__rows_gc(L, op->rowsidx, PG_GC_PAUSE);
      }
      PQclear(r);
      continue;
    }
    if (op->rowsidx != 0) op->rows_done = 1;   /* the end of the rows */
    if (tag_dirty(PQcmdStatus(r))) c->dirty = 1;
    if (discard) PQclear(r);
    else {
      if (op->res != NULL) PQclear(op->res);
      op->res = r;
    }
  }
}


/*
** Reads the results of the operation without blocking (after reading the
** socket when `read`). Keeps the last result that is not an error in
** op.res and the first error in op.err (or drops everything while
** draining). Rows that come one by one (op.single) are decoded at once
** into the rows table at op.rowsidx (a later statement's rows, in a
** query of several, replace an earlier one's); the garbage collector
** may be paused meanwhile (see pg__rows_gc).
** Returns 1 when the connection is idle again, 0 if more input must
** come, 2 when a COPY the operation asked for started (its result in
** op.res), -1 if the connection failed.
*/
int pg__collect (lua_State *L, PgConn *c, int read) {
  int rc;
  if (c->op.rowsidx != 0) pg__rows_gc(L, c->op.rowsidx, PG_GC_BATCH);
  rc = collect(L, c, read);
  if (c->op.rowsidx != 0) pg__rows_gc(L, c->op.rowsidx, PG_GC_BATCH_END);
  return rc;
}


/* ---------------------------------------------------------------------
** Errors
** ------------------------------------------------------------------- */

static void set_field (lua_State *L, const PGresult *r, int code,
                       const char *k) {
  const char *v = PQresultErrorField(r, code);
  if (v != NULL) aio__setfield_str(L, k, v);
}


/*
** Pushes the `db` error for error result `r` (of query `sql`, may be
** NULL): message = the primary message; sqlstate, severity, detail,
** hint, position (integer), where, schema, table, column, datatype,
** constraint, query when the server said them.
*/
void pg__push_db_error (lua_State *L, const PGresult *r, const char *sql) {
  const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
  if (msg == NULL) msg = PQresultErrorMessage(r);
  aio__error_new(L, "db", "%s", msg);
  set_field(L, r, PG_DIAG_SQLSTATE, "sqlstate");
  set_field(L, r, PG_DIAG_SEVERITY_NONLOCALIZED, "severity");
  set_field(L, r, PG_DIAG_MESSAGE_DETAIL, "detail");
  set_field(L, r, PG_DIAG_MESSAGE_HINT, "hint");
  set_field(L, r, PG_DIAG_CONTEXT, "where");
  set_field(L, r, PG_DIAG_SCHEMA_NAME, "schema");
  set_field(L, r, PG_DIAG_TABLE_NAME, "table");
  set_field(L, r, PG_DIAG_COLUMN_NAME, "column");
  set_field(L, r, PG_DIAG_DATATYPE_NAME, "datatype");
  set_field(L, r, PG_DIAG_CONSTRAINT_NAME, "constraint");
  if (pos != NULL) {
    lua_pushinteger(L, (lua_Integer)strtol(pos, NULL, 10));
    lua_setfield(L, -2, "position");
  }
  if (sql != NULL) aio__setfield_str(L, "query", sql);
}


/* Is error result `r` one the server ends the session with? */
static int fatal (const PGresult *r) {
  const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
  return sev != NULL && (strcmp(sev, "FATAL") == 0 ||
                         strcmp(sev, "PANIC") == 0);
}


/* ---------------------------------------------------------------------
** The statement cache
** ------------------------------------------------------------------- */

/* Queues the server-side name of a statement that left the cache. */
static void dealloc_later (PgConn *c, const PgStmt *s) {
  if (s->simple) return;               /* nothing on the server */
  aio__buf_append(&c->dealloc, s->name, strlen(s->name) + 1);
}


/* Removes cache entry `sql` (at `sqlidx`) if it is statement `s`. */
static void cache_remove (lua_State *L, PgConn *c, int sqlidx, PgStmt *s,
                          int dealloc) {
  lua_getiuservalue(L, 1, PG_UV_STMTS);
  lua_pushvalue(L, sqlidx);
  if (lua_rawget(L, -2) == LUA_TUSERDATA && lua_touserdata(L, -1) == s) {
    lua_pushvalue(L, sqlidx);
    lua_pushnil(L);
    lua_rawset(L, -4);
    c->nstmts--;
    if (dealloc) dealloc_later(c, s);
  }
  lua_pop(L, 2);
}


/* Makes room in a full cache: the least recently used statement goes. */
static void cache_evict (lua_State *L, PgConn *c) {
  PgStmt *lru = NULL;
  int cache;
  lua_getiuservalue(L, 1, PG_UV_STMTS);
  cache = lua_gettop(L);
  lua_pushnil(L);                              /* cache lrukey */
  lua_pushnil(L);                              /* cache lrukey key */
  while (lua_next(L, cache)) {                 /* cache lrukey key stmt */
    PgStmt *s = (PgStmt *)lua_touserdata(L, -1);
    if (lru == NULL || s->used < lru->used) {
      lru = s;
      lua_pushvalue(L, -2);
      lua_replace(L, cache + 1);
    }
    lua_pop(L, 1);
  }
  if (lru != NULL) {                           /* cache lrukey */
    lua_pushnil(L);
    lua_rawset(L, cache);
    c->nstmts--;
    dealloc_later(c, lru);
  }
  lua_settop(L, cache - 1);
}


/* ---------------------------------------------------------------------
** Sending
** ------------------------------------------------------------------- */

/* libpq refused to send: the connection is lost (-1), or the message is
** pushed (-2). */
static int send_failed (lua_State *L, PgConn *c) {
  if (PQstatus(c->pg) == CONNECTION_BAD) return -1;
  aio__error_new(L, "io", "%s: %s", op_name(&c->op), PQerrorMessage(c->pg));
  return -2;
}


/*
** The format to ask statement `s`'s results in: binary when every column
** decodes from it to the value its text form gives (see pg_binary.c),
** except for a statement that may change the session's settings while
** it runs (set_config): its date/time values could change form midway.
*/
static int result_format (PgConn *c, const PgStmt *s) {
  if (s->dirty) return 0;
  return s->fmt == PF_BINARY || (s->fmt >= PF_BINARY_DT &&
                                 pg__datetime_ok(c, s->fmt == PF_BINARY_TZ));
}


/* The operation's query was sent: its rows (query()) come one by one
** (libpq's single-row mode), decoded as they come. Returns 0. */
static int sent (PgConn *c) {
  PgOp *op = &c->op;
  if (op->kind == OP_QUERY && op->mode == PM_ROWS)
    op->single = (uint8_t)PQsetSingleRowMode(c->pg);
  op->phase = PH_FLUSH;
  op->next = PH_RESULTS;
  return 0;
}


/* Binds the parameters (3..) to statement `s` (at op.stmtidx) and sends
** Bind/Execute. Returns 0, -1 (lost) or -2 (error pushed). */
static int send_execute (lua_State *L, PgConn *c, PgStmt *s) {
  PgOp *op = &c->op;
  int bad;
  if (op->nparams != s->nparams) {
    aio__error_new(L, "usage", "%s: the statement has %d parameter%s, "
                   "%d given", op_name(op), s->nparams,
                   s->nparams == 1 ? "" : "s", op->nparams);
    return -2;
  }
  bad = pg__encode_params(L, c, 3, op->nparams, s);
  if (bad != 0) {                     /* its message is on top */
    lua_pushfstring(L, "bad argument #%d to '%s' (parameter $%d: %s)",
                    bad + 1, op_name(op), bad, lua_tostring(L, -1));
    return -2;
  }
  if (!PQsendQueryPrepared(c->pg, s->name, op->nparams, c->pvals, c->plens,
                           c->pfmts, result_format(c, s))) {
    lua_settop(L, op->stmtidx);
    return send_failed(L, c);
  }
  lua_settop(L, op->stmtidx);
  if (s->dirty) c->dirty = 1;
  return sent(c);
}


/* Sends Parse + Describe for the SQL at 2, in one round trip with the
** DEALLOCATEs of statements that left the cache (pipeline mode). */
static int send_prepare (lua_State *L, PgConn *c) {
  PGconn *pg = c->pg;
  PgOp *op = &c->op;
  const char *sql = lua_tostring(L, 2);
  if (c->maxstmts > 0 && c->nstmts >= c->maxstmts)
    cache_evict(L, c);           /* its DEALLOCATE goes in this trip */
  if (!PQenterPipelineMode(pg)) return send_failed(L, c);
  c->pipeline = 1;
  c->nsync = 0;
  if (c->dealloc.len > 0 && PQtransactionStatus(pg) != PQTRANS_INERROR) {
    const char *name = c->dealloc.data, *end = name + c->dealloc.len;
    char q[64];
    for (; name < end; name += strlen(name) + 1) {
      snprintf(q, sizeof q, "DEALLOCATE %s", name);
      if (!PQsendQueryParams(pg, q, 0, NULL, NULL, NULL, NULL, 0))
        return send_failed(L, c);
      op->skip++;
    }
    c->dealloc.len = c->dealloc.off = 0;
    if (!PQpipelineSync(pg)) return send_failed(L, c);
    c->nsync++;
  }
  if (c->maxstmts > 0)
    snprintf(op->name, sizeof op->name, "aio_%lu",
             (unsigned long)++c->nextname);
  else op->name[0] = '\0';
  if (!PQsendPrepare(pg, op->name, sql, 0, NULL) ||
      !PQsendDescribePrepared(pg, op->name) || !PQpipelineSync(pg))
    return send_failed(L, c);
  c->nsync++;
  op->phase = PH_FLUSH;
  op->next = PH_PREPARED;
  return 0;
}


/* The statement was prepared and described (op.res): caches it, then
** sends the execution. */
static int prepared (lua_State *L, PgConn *c) {
  PgOp *op = &c->op;
  PGresult *d = op->res;
  size_t len;
  const char *sql = lua_tolstring(L, 2, &len);
  int np = d != NULL ? PQnparams(d) : 0, i;
  PgStmt *s = (PgStmt *)lua_newuserdatauv(L, sizeof(PgStmt) +
                                          (size_t)(np > 1 ? np - 1 : 0) *
                                          sizeof(Oid), 0);
  op->stmtidx = lua_gettop(L);
  s->nparams = np;
  for (i = 0; i < np; i++) s->types[i] = PQparamtype(d, i);
  memcpy(s->name, op->name, sizeof s->name);
  s->used = ++c->tick;
  s->dirty = (uint8_t)pg__scan_dirty(sql, len);
  s->fmt = (uint8_t)pg__result_format(d);
  s->simple = 0;
  pg__op_clear(c);
  if (c->maxstmts > 0) {
    if (c->nstmts >= c->maxstmts) cache_evict(L, c);   /* a race lost */
    lua_getiuservalue(L, 1, PG_UV_STMTS);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, op->stmtidx);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    c->nstmts++;
  }
  return send_execute(L, c, s);
}


/* Sends the SQL at 2 through the simple protocol (several statements
** allowed, no parameters, results in text format). */
static int send_simple (lua_State *L, PgConn *c) {
  size_t len;
  const char *sql = lua_tolstring(L, 2, &len);
  if (pg__scan_dirty(sql, len)) c->dirty = 1;
  if (!PQsendQuery(c->pg, sql)) return send_failed(L, c);
  return sent(c);
}


/*
** Sends the operation's query through the statement cache; without
** parameters, through the simple protocol instead when there is no
** cache, for execute() and command(), for SQL known to hold several
** statements, and for SQL not prepared yet inside a transaction (where
** preparing it would abort the transaction if it held several).
*/
static int op_send (lua_State *L, PgConn *c) {
  PgOp *op = &c->op;
  int rows = op->kind == OP_QUERY && op->mode <= PM_VALUE;
  if (op->nparams == 0 && (op->simple || c->maxstmts == 0 || !rows))
    return send_simple(L, c);
  lua_getiuservalue(L, 1, PG_UV_STMTS);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, -2) == LUA_TUSERDATA) {
    PgStmt *s = (PgStmt *)lua_touserdata(L, -1);
    lua_remove(L, -2);
    s->used = ++c->tick;
    if (s->simple && op->nparams == 0) {
      lua_pop(L, 1);
      return send_simple(L, c);
    }
    op->stmtidx = lua_gettop(L);
    return send_execute(L, c, s);
  }
  lua_pop(L, 2);
  if (op->nparams == 0 && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
    return send_simple(L, c);
  return send_prepare(L, c);
}


/* Caches the SQL at 2 as several statements: the simple protocol's. */
static void cache_simple (lua_State *L, PgConn *c) {
  PgStmt *s;
  if (c->nstmts >= c->maxstmts) cache_evict(L, c);
  lua_getiuservalue(L, 1, PG_UV_STMTS);
  lua_pushvalue(L, 2);
  s = (PgStmt *)lua_newuserdatauv(L, sizeof(PgStmt), 0);
  memset(s, 0, sizeof *s);
  s->simple = 1;
  s->used = ++c->tick;
  lua_rawset(L, -3);
  lua_pop(L, 1);
  c->nstmts++;
}


/* ---------------------------------------------------------------------
** The operation
** ------------------------------------------------------------------- */

/* A COPY started: its column count is returned, the turn stays held by
** the task (copy_put / copy_get / copy_end continue it). */
static int copy_started (lua_State *L, PgConn *c) {
  PgOp *op = &c->op;
  op->phase = PH_COPY;
  lua_pushinteger(L, PQnfields(op->res));
  return 1;
}


/*
** All results are in: leaves the turn and returns them, shaped by the
** operation's mode, or raises the error. A statement whose cached plan
** went stale (its result type changed, or it was deallocated behind our
** back) is prepared again and retried once, outside transactions.
*/
int pg__finish (lua_State *L, PgConn *c) {
  PgOp *op = &c->op;
  PGresult *err = op->err;
  int lost = PQstatus(c->pg) == CONNECTION_BAD || (err && fatal(err));
  int n;
  if (err != NULL && !lost && op->phase == PH_PREPARED &&
      op->nparams == 0) {
    /* SQL without parameters that does not prepare: several statements
    ** (or a syntax error, which the simple protocol reports again) */
    const char *state = PQresultErrorField(err, PG_DIAG_SQLSTATE);
    if (state != NULL && strcmp(state, "42601") == 0) {
      pg__op_clear(c);
      lua_settop(L, 2);
      cache_simple(L, c);
      op->simple = 1;
      op->phase = PH_START;
      return pg__op_run(L, c);
    }
  }
  if (err != NULL && !lost && op->stmtidx != 0) {
    const char *state = PQresultErrorField(err, PG_DIAG_SQLSTATE);
    const char *msg = PQresultErrorField(err, PG_DIAG_MESSAGE_PRIMARY);
    int stale = state != NULL && ((strcmp(state, "0A000") == 0 && msg &&
                strstr(msg, "cached plan must not change result type")) ||
                strcmp(state, "26000") == 0);
    if (stale) {
      PgStmt *s = (PgStmt *)lua_touserdata(L, op->stmtidx);
      cache_remove(L, c, 2, s, strcmp(state, "26000") != 0);
      if (!op->retried && PQtransactionStatus(c->pg) == PQTRANS_IDLE) {
        pg__op_clear(c);
        lua_settop(L, 2 + op->nparams);
        op->retried = 1;
        op->stmtidx = op->rowsidx = 0;
        op->single = 0;
        op->phase = PH_START;
        return pg__op_run(L, c);
      }
    }
  }
  if (lost) pg__broken(c);
  op->phase = PH_DONE;
  pg__turn_leave(c);
  if (err != NULL) {
    if (lost) {
      const char *msg = PQresultErrorField(err, PG_DIAG_MESSAGE_PRIMARY);
      aio__error_new(L, "io", "%s: the connection to the server was lost: "
                     "%s", op_name(op), msg != NULL ? msg : "");
      set_field(L, err, PG_DIAG_SQLSTATE, "sqlstate");
    }
    else pg__push_db_error(L, err, lua_tostring(L, 2));
    pg__op_clear(c);
    return lua_error(L);
  }
  if (op->copy_misuse) {
    pg__op_clear(c);
    return aio__usage(L, "%s: COPY FROM STDIN and COPY TO STDOUT go "
                      "through conn:copy_in() and conn:copy_out()",
                      op_name(op));
  }
  if (op->rowsidx != 0) {           /* decoded as they came */
    pg__rows_end(L, op->rowsidx, -1);
    n = 1;
  }
  else n = pg__decode(L, c, op->res, op->mode);
  pg__op_clear(c);
  return n;
}


/*
** Runs the operation holding the turn from its current phase until it
** must wait (it suspends; pg__op_k comes back here) or is done (returns
** its results, or raises having left the turn).
*/
int pg__op_run (lua_State *L, PgConn *c) {
  PgOp *op = &c->op;
  Task *t = c->io.loop->current;
  int rc, woke;
  for (;;) {
    woke = op->woke;
    op->woke = 0;
    switch (op->phase) {
      case PH_START:
        if (c->state == PG_BROKEN || c->pg == NULL) return pg__op_lost(L, c);
        if (c->state == PG_ABANDONED) {
          op->phase = PH_CANCEL;
          break;
        }
        if (op->kind == OP_DRAIN) {
          op->phase = PH_DONE;
          break;
        }
        if (!op->retried) op->nparams = lua_gettop(L) - 2;
        rc = op_send(L, c);
        if (rc == -1) return pg__op_lost(L, c);
        if (rc == -2) return op_raise(L, c);
        break;
      case PH_CANCEL:                  /* its cancel request goes first */
        if (c->cancel != NULL && c->cancel->anchor != 0)
          return aio__req_wait(L, t, c->cancel, (lua_KContext)c, pg__op_k);
        c->cancel = NULL;
        op->phase = PH_DRAIN;
        op->woke = 1;
        break;
      case PH_DRAIN:
        if (woke && !PQconsumeInput(c->pg)) return pg__op_lost(L, c);
        rc = PQflush(c->pg);           /* an interrupted write goes on */
        if (rc < 0) return pg__op_lost(L, c);
        if (rc > 0) return pg__op_wait(L, c, UV_READABLE | UV_WRITABLE);
        rc = pg__collect(L, c, 0);
        if (rc < 0) return pg__op_lost(L, c);
        if (rc == 0) return op_wait_input(L, c);
        if (c->pipeline) {
          PQexitPipelineMode(c->pg);
          c->pipeline = 0;
        }
        c->state = PG_READY;
        c->need_cancel = 0;
        pg__op_clear(c);
        op->phase = PH_START;
        break;
      case PH_FLUSH:
        if (woke && !PQconsumeInput(c->pg)) return pg__op_lost(L, c);
        rc = PQflush(c->pg);
        if (rc < 0) return pg__op_lost(L, c);
        if (rc > 0) return pg__op_wait(L, c, UV_READABLE | UV_WRITABLE);
        op->phase = op->next;
        break;
      case PH_PREPARED:
        rc = pg__collect(L, c, woke);
        if (rc < 0) return pg__op_lost(L, c);
        if (rc == 0) return op_wait_input(L, c);
        PQexitPipelineMode(c->pg);
        c->pipeline = 0;
        if (op->err != NULL) return pg__finish(L, c);
        rc = prepared(L, c);
        if (rc == -1) return pg__op_lost(L, c);
        if (rc == -2) return op_raise(L, c);
        break;
      case PH_RESULTS:
        rc = pg__collect(L, c, woke);
        if (rc < 0) return pg__op_lost(L, c);
        if (rc == 0) return op_wait_input(L, c);
        if (rc == 2) return copy_started(L, c);
        return pg__finish(L, c);
      case PH_COPY:                   /* copy_put / copy_get go on */
        return 0;
      default:                        /* PH_DONE: a drain */
        pg__turn_leave(c);
        return 0;
    }
  }
}


/* ---------------------------------------------------------------------
** Methods
** ------------------------------------------------------------------- */

/* Checks the SQL text (at 2) and the parameters of method `name`, then
** starts the operation. Arguments are counted as in a method call. */
static int query_entry (lua_State *L, int mode) {
  PgConn *c = pg__self(L);
  const char *name = op_names[mode];
  int top = lua_gettop(L), i;
  size_t len;
  const char *sql;
  if (lua_type(L, 2) != LUA_TSTRING)
    return luaL_error(L, "bad argument #1 to '%s' (string expected, got %s)",
                      name, luaL_typename(L, 2));
  sql = lua_tolstring(L, 2, &len);
  if (strlen(sql) != len)
    return luaL_error(L, "bad argument #1 to '%s' (SQL text with a zero "
                      "byte)", name);
  if (top - 2 > 65535)
    return luaL_error(L, "bad argument #%d to '%s' (more than 65535 "
                      "parameters)", 65537, name);
  for (i = 3; i <= top; i++) {
    int tp = lua_type(L, i);
    if (tp != LUA_TNIL && tp != LUA_TBOOLEAN && tp != LUA_TNUMBER &&
        tp != LUA_TSTRING && tp != LUA_TTABLE &&
        !(tp == LUA_TLIGHTUSERDATA && lua_touserdata(L, i) == NULL))
      return luaL_error(L, "bad argument #%d to '%s' (parameter $%d: nil, "
                        "boolean, number, string or table expected, got "
                        "%s)", i - 1, name, i - 2, luaL_typename(L, i));
  }
  return pg__begin(L, c, OP_QUERY, mode, name);
}


/* conn:query(sql, ...) (suspends) -> rows, with rows.columns and
** rows.count. */
int pg__m_query (lua_State *L) { return query_entry(L, PM_ROWS); }

/* conn:query_one(sql, ...) (suspends) -> the first row, or nil. */
int pg__m_query_one (lua_State *L) { return query_entry(L, PM_ONE); }

/* conn:query_value(sql, ...) (suspends) -> the first value of the first
** row, or nil. */
int pg__m_query_value (lua_State *L) { return query_entry(L, PM_VALUE); }

/* conn:execute(sql, ...) (suspends) -> the number of rows affected. */
int pg__m_execute (lua_State *L) { return query_entry(L, PM_COUNT); }

/* conn:command(sql) (suspends) -> the command tag ("COMMIT", ...). */
int pg__m_command (lua_State *L) {
  lua_settop(L, 2);
  return query_entry(L, PM_TAG);
}

/* conn:drain() (suspends): waits until what an interrupted operation left
** is read and the connection is ready (raises `io` if it is lost). */
int pg__m_drain (lua_State *L) {
  PgConn *c = pg__self(L);
  lua_settop(L, 1);
  return pg__begin(L, c, OP_DRAIN, PM_TAG, "drain");
}


/* conn:result_format(sql) -> "binary" or "text": the format the results
** of `sql`, prepared and cached, are asked for now; nil if it is not in
** the cache. For the specs. */
int pg__m_result_format (lua_State *L) {
  PgConn *c = pg__self(L);
  PgStmt *s;
  luaL_checkstring(L, 2);
  lua_settop(L, 2);
  lua_getiuservalue(L, 1, PG_UV_STMTS);
  lua_pushvalue(L, 2);
  if (lua_rawget(L, -2) != LUA_TUSERDATA) {
    lua_pushnil(L);
    return 1;
  }
  s = (PgStmt *)lua_touserdata(L, -1);
  lua_pushstring(L, !s->simple && result_format(c, s) ? "binary" : "text");
  return 1;
}
