/*
** redis_call.c
** Commands on a Redis connection: each is written in RESP into the
** connection's output buffer (flushed once at the end of the round), and
** its task waits for its replies in the connection's FIFO; pub/sub
** messages are taken from the connection's queue.
** See LICENSE
*/

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"


/* ---------------------------------------------------------------------
** Writing commands (RESP: "*<argc>\r\n" then "$<len>\r\n<arg>\r\n" each)
** ------------------------------------------------------------------- */

/* Formats a float argument so that the server reads back the same double:
** the shortest of %.15g / %.17g that round-trips, with a '.' whatever the
** locale (os.setlocale may have set LC_NUMERIC to one with a comma). */
static int format_float (char *buf, size_t size, double d) {
  int n, i;
  if (isinf(d)) return snprintf(buf, size, "%s", d > 0 ? "inf" : "-inf");
  n = snprintf(buf, size, "%.15g", d);
  if (strtod(buf, NULL) != d) n = snprintf(buf, size, "%.17g", d);
  for (i = 0; i < n && (size_t)i < size; i++)
    if (!((buf[i] >= '0' && buf[i] <= '9') || buf[i] == '-' ||
          buf[i] == '+' || buf[i] == 'e' || buf[i] == 'E' || buf[i] == 'n' ||
          buf[i] == 'a'))
      buf[i] = '.';
  return n;
}


/* Raises a bad argument error for argument `i` (stack index, the first
** argument of the command at `first`) of command `name`. */
static int bad_arg (lua_State *L, int i, int first, const char *name,
                    const char *what) {
  char lower[32];
  size_t k;
  for (k = 0; name[k] != '\0' && k < sizeof lower - 1; k++)
    lower[k] = (char)(name[k] >= 'A' && name[k] <= 'Z' ? name[k] + 32
                                                       : name[k]);
  lower[k] = '\0';
  return luaL_error(L, "bad argument #%d to '%s' (%s)", i - first + 2, lower,
                    what);
}


/* Checks that the values at [first, first + n) can be command arguments:
** strings and numbers (not NaN). Raises a bad argument error otherwise. */
static void check_args (lua_State *L, int first, int n, const char *name) {
  int i;
  for (i = first; i < first + n; i++) {
    int t = lua_type(L, i);
    if (t == LUA_TSTRING) continue;
    if (t == LUA_TNUMBER) {
      if (!lua_isinteger(L, i) && isnan(lua_tonumber(L, i)))
        bad_arg(L, i, first, name, "number is NaN");
      continue;
    }
    lua_pushfstring(L, "string or number expected, got %s",
                    t == LUA_TNIL ? "nil" : luaL_typename(L, i));
    bad_arg(L, i, first, name, lua_tostring(L, -1));
  }
}


/* Writes the decimal digits of `n` to end at `end`; returns where they
** start. */
static char *digits (char *end, size_t n) {
  do {
    *--end = (char)('0' + n % 10);
    n /= 10;
  } while (n > 0);
  return end;
}


/* Formats integer `i` into buf (at least 24 bytes); returns its length. */
static size_t format_int (char *buf, lua_Integer i) {
  char tmp[24], *p;
  size_t n;
  if (i < 0) {
    p = digits(tmp + sizeof tmp, (size_t)0 - (size_t)i);
    *--p = '-';
  }
  else p = digits(tmp + sizeof tmp, (size_t)i);
  n = (size_t)(tmp + sizeof tmp - p);
  memcpy(buf, p, n);
  return n;
}


/* Appends "<c><n>\r\n". */
static int put_len (Buf *b, char c, size_t n) {
  char tmp[32], *p;
  tmp[30] = '\r';
  tmp[31] = '\n';
  p = digits(tmp + 30, n);
  *--p = c;
  return aio__buf_append(b, p, (size_t)(tmp + sizeof tmp - p));
}


/* Appends one bulk string. */
static int put_bulk (Buf *b, const char *s, size_t len) {
  return put_len(b, '$', len) && aio__buf_append(b, s, len) &&
         aio__buf_append(b, "\r\n", 2);
}


/* Appends the command made of the (checked) values at [first, first + n)
** to `b`; 0 if out of memory. */
static int put_command (Buf *b, lua_State *L, int first, int n) {
  int i;
  if (!aio__buf_reserve(b, 16 + (size_t)n * 16) || !put_len(b, '*', (size_t)n))
    return 0;
  for (i = first; i < first + n; i++) {
    char num[64];
    size_t len;
    const char *s;
    if (lua_type(L, i) == LUA_TSTRING) s = lua_tolstring(L, i, &len);
    else {
      if (lua_isinteger(L, i)) len = format_int(num, lua_tointeger(L, i));
      else len = (size_t)format_float(num, sizeof num, lua_tonumber(L, i));
      s = num;
    }
    if (!put_bulk(b, s, len)) return 0;
  }
  return 1;
}


/* ---------------------------------------------------------------------
** Waiting for the replies
** ------------------------------------------------------------------- */

/* Raises `timeout` for a call that waited longer than the connection's
** timeout; the receiver is at 1. */
static int call_timeout (lua_State *L, RedisConn *c, const char *command) {
  char secs[32];
  lua_getiuservalue(L, 1, 1);
  snprintf(secs, sizeof secs, "%g", c->timeout);
  aio__error_new(L, "timeout", "redis %s on %s timed out after %s s",
                 command, lua_isstring(L, -1) ? lua_tostring(L, -1) : "redis",
                 secs);
  aio__setfield_str(L, "phase", "read");
  aio__setfield_num(L, "seconds", c->timeout);
  aio__setfield_str(L, "command", command);
  return lua_error(L);
}


/*
** The start of a call's continuation: if its task was woken by anything
** but the replies, the call is abandoned (still in the FIFO: its replies
** will be dropped) or dropped (answered meanwhile), and the interruption
** raises. If the connection failed, the call is given back and `io` or
** `closed` raises. Returns when the replies are in.
*/
static void call_resumed (lua_State *L, RedisConn *c, RedisCall *call,
                          const char *command) {
  Task *t = c->io.loop->current;
  int status;
  if (t->wake != AIO_WAKE_OK) {
    if (call->state == CALL_QUEUED) call->state = CALL_ABANDONED;
    else aio__redis_call_free(c, call);
    if (t->wake == AIO_WAKE_TIMER) call_timeout(L, c, command);
    aio__wake_raise(L, t);
  }
  status = call->status;
  if (status == 0) return;
  aio__redis_call_free(c, call);
  if (status == AIO_REDIS_CLOSED) aio__closed_error(L, c->io.type->what);
  aio__redis_lost_error(L, c);
}


/* Suspends the running task until `call` has its replies (or the
** connection's timeout passes). */
static int call_wait (lua_State *L, RedisConn *c, Task *t, RedisCall *call,
                      lua_KFunction k) {
  Loop *loop = c->io.loop;
  aio__redis_sent(c);
  link_push(&call->waiters, &t->wait.link);
  if (c->timeout > 0 && c->timeout < 1e10)           /* not forever */
    aio__timer_arm(loop, &t->timer, aio__deadline(loop, c->timeout));
  aio__wait_io(loop, t);                    /* a reply from the server */
  return aio__suspend(L, t, (lua_KContext)call, k);
}


/* Undoes a half-written command (out of memory): the buffer goes back to
** the `keep` bytes it had. */
static void unwrite (RedisConn *c, size_t keep) {
  c->out.len = c->out.off + keep;
}


/* ---------------------------------------------------------------------
** conn:command(name, ...)
** ------------------------------------------------------------------- */

/* Stack: (conn, name, args...). */
static int command_k (lua_State *L, int status, lua_KContext ctx) {
  RedisCall *call = (RedisCall *)ctx;
  RedisConn *c = aio__redis_self(L);
  const char *name = lua_tostring(L, 2);
  int type;
  (void)status;
  call_resumed(L, c, call, name);
  type = call->one->type;
  aio__redis_push_reply(L, call->one, name);
  aio__redis_call_free(c, call);
  return type == REDIS_REPLY_ERROR ? lua_error(L) : 1;
}


/*
** conn:command(name, ...) (suspends) -> the reply. Arguments are strings
** or numbers. An error reply raises `redis` (prefix, command); a lost
** connection `io`; a closed one `closed`; the connection's timeout
** `timeout` (the reply, when it comes, is dropped).
*/
int aio__redis_command (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  RedisConn *c = aio__redis_check(L);
  int n = lua_gettop(L) - 1;
  const char *name = luaL_checkstring(L, 2);
  size_t keep = aio_buf_avail(&c->out);
  RedisCall *call;
  Task *t;
  check_args(L, 3, n - 1, name);
  t = aio__task_enter(L, loop, "redis command");
  if (!put_command(&c->out, L, 2, n) ||
      (call = aio__redis_call_new(c, 1)) == NULL) {
    unwrite(c, keep);
    return aio__nomem(L, "sending a redis command");
  }
  return call_wait(L, c, t, call, command_k);
}


/* ---------------------------------------------------------------------
** conn:commands(list, [nreplies])
** ------------------------------------------------------------------- */

/* Pushes the elements of command table `idx` (its `n`, else its length);
** returns how many. */
static int push_command (lua_State *L, int idx) {
  lua_Integer i, n;
  if (lua_getfield(L, idx, "n") == LUA_TNUMBER) n = lua_tointeger(L, -1);
  else n = (lua_Integer)lua_rawlen(L, idx);
  lua_pop(L, 1);
  if (n < 1 || n > 1000000) luaL_error(L, "a command needs a name");
  luaL_checkstack(L, (int)n, "too many command arguments");
  for (i = 1; i <= n; i++) lua_rawgeti(L, idx, i);
  return (int)n;
}


/* Checks every command of the list at 2 (each a table {name, args...}). */
static void check_commands (lua_State *L, lua_Integer count) {
  lua_Integer i;
  for (i = 1; i <= count; i++) {
    int top = lua_gettop(L), n;
    if (lua_rawgeti(L, 2, i) != LUA_TTABLE)
      luaL_error(L, "bad command #%d (table expected)", (int)i);
    n = push_command(L, top + 1);
    if (lua_type(L, top + 2) != LUA_TSTRING)
      luaL_error(L, "bad command #%d (a name expected)", (int)i);
    check_args(L, top + 3, n - 1, lua_tostring(L, top + 2));
    lua_settop(L, top);
  }
}


/* Stack: (conn, list, nreplies). */
static int commands_k (lua_State *L, int status, lua_KContext ctx) {
  RedisCall *call = (RedisCall *)ctx;
  RedisConn *c = aio__redis_self(L);
  uint32_t i, first_error = 0;
  (void)status;
  call_resumed(L, c, call, "pipeline");
  lua_createtable(L, (int)call->want, 1);
  for (i = 0; i < call->want; i++) {
    const redisReply *r = call->many != NULL ? call->many[i] : call->one;
    if (r->type == REDIS_REPLY_NIL) continue;
    if (r->type == REDIS_REPLY_ERROR && first_error == 0) first_error = i + 1;
    aio__redis_push_reply(L, r, NULL);
    lua_rawseti(L, -2, (lua_Integer)i + 1);
  }
  lua_pushinteger(L, (lua_Integer)call->want);
  lua_setfield(L, -2, "n");
  aio__redis_call_free(c, call);
  if (first_error == 0) lua_pushnil(L);
  else lua_pushinteger(L, (lua_Integer)first_error);
  return 2;
}


/*
** conn:commands(list, [nreplies]) (suspends) -> replies, first_error.
** Writes the commands of `list` (tables {name, args...}) together and
** waits for `nreplies` replies (default: one per command; SUBSCRIBE gets
** one per channel). `replies` is an array with `n`; error replies are
** `redis` error values in it, and `first_error` is the index of the
** first (nil if none).
*/
int aio__redis_commands (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  RedisConn *c = aio__redis_check(L);
  lua_Integer i, count, want;
  size_t keep = aio_buf_avail(&c->out);
  RedisCall *call = NULL;
  Task *t;
  int ok = 1;
  luaL_checktype(L, 2, LUA_TTABLE);
  count = (lua_Integer)lua_rawlen(L, 2);
  want = luaL_optinteger(L, 3, count);
  luaL_argcheck(L, count >= 1, 2, "no commands");
  luaL_argcheck(L, want >= 1 && want <= 0x7fffffff, 3,
                "reply count out of range");
  lua_settop(L, 3);
  check_commands(L, count);
  t = aio__task_enter(L, loop, "redis pipeline");
  for (i = 1; ok && i <= count; i++) {
    int n;
    lua_rawgeti(L, 2, i);
    n = push_command(L, 4);
    ok = put_command(&c->out, L, 5, n);
    lua_settop(L, 3);
  }
  if (!ok || (call = aio__redis_call_new(c, (uint32_t)want)) == NULL) {
    unwrite(c, keep);
    return aio__nomem(L, "sending redis commands");
  }
  return call_wait(L, c, t, call, commands_k);
}


/* ---------------------------------------------------------------------
** conn:message()
** ------------------------------------------------------------------- */

/* Pushes pub/sub message `r` as {kind=, channel=, data=, [pattern=]}. */
static void push_message (lua_State *L, const redisReply *r) {
  const redisReply *const *e = (const redisReply *const *)r->element;
  int pattern = e[0]->len == 8 && e[0]->str[0] == 'p' && r->elements >= 4;
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, e[0]->str, e[0]->len);
  lua_setfield(L, -2, "kind");
  if (pattern) {
    aio__redis_push_reply(L, e[1], NULL);
    lua_setfield(L, -2, "pattern");
    e++;
  }
  aio__redis_push_reply(L, e[1], NULL);
  lua_setfield(L, -2, "channel");
  aio__redis_push_reply(L, e[2], NULL);
  lua_setfield(L, -2, "data");
}


/* Takes a queued message, or says what ended the connection, or waits. */
static int message_body (lua_State *L, RedisConn *c, lua_KFunction k) {
  redisReply *r;
  if (aio__redis_message_take(c, &r)) {
    push_message(L, r);
    freeReplyObject(r);
    return 1;
  }
  if (c->err != 0) return aio__redis_lost_error(L, c);
  if (c->io.closing) return 0;
  return aio__io_wait(L, &c->io, &c->msg_waiters, 0, 0, k);
}


static int message_k (lua_State *L, int status, lua_KContext ctx) {
  RedisConn *c = aio__redis_self(L);
  Task *t = c->io.loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) return aio__wake_raise(L, t);
  return message_body(L, c, message_k);
}


/*
** conn:message() (suspends) -> the next pub/sub message {kind=, channel=,
** data=, pattern=}, or nothing once the connection is closed. Raises
** `io` if it was lost (after the messages that came before).
*/
int aio__redis_message (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  RedisConn *c = aio__redis_self(L);
  lua_settop(L, 1);
  aio__task_enter(L, loop, "subscription message");
  return message_body(L, c, message_k);
}
