/*
** redis_reply.c
** Redis replies (RESP2, as hiredis's reader builds them) as Lua values,
** and the `redis` error of an error reply.
** See LICENSE
*/

#include <string.h>

#include "redis.h"

/* Longest error prefix kept ("WRONGTYPE", "NOSCRIPT", "EXECABORT", ...). */
#define PREFIX_MAX 32


/*
** Pushes the `redis` error of error reply `msg`: message = the reply,
** prefix = its first word when that is an upper-case code ("WRONGTYPE
** Operation against ..."), else "ERR"; command = `command` if not NULL.
*/
static void error_new (lua_State *L, const char *msg, size_t len,
                       const char *command) {
  size_t n = 0;
  while (n < len && n < PREFIX_MAX &&
         ((msg[n] >= 'A' && msg[n] <= 'Z') || msg[n] == '_' ||
          (n > 0 && msg[n] >= '0' && msg[n] <= '9')))
    n++;
  if (n == 0 || (n < len && msg[n] != ' ')) n = 0;
  aio__error_new(L, "redis", "%s", "");
  lua_pushlstring(L, msg, len);
  lua_setfield(L, -2, "message");
  if (n > 0) lua_pushlstring(L, msg, n);
  else lua_pushliteral(L, "ERR");
  lua_setfield(L, -2, "prefix");
  if (command != NULL) aio__setfield_str(L, "command", command);
}


/*
** Pushes reply `r`: status and bulk strings -> string, nil -> nil,
** integer -> integer, array -> table with its elements and `n` (nil
** elements keep their places), error -> a `redis` error value (raising
** is the caller's choice: a top-level error raises, one inside an array
** stays a value). hiredis nests at most 7 arrays deep.
*/
void aio__redis_push_reply (lua_State *L, const redisReply *r,
                            const char *command) {
  size_t i;
  luaL_checkstack(L, 4, "redis reply nested too deeply");
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      lua_pushlstring(L, r->str, r->len);
      break;
    case REDIS_REPLY_INTEGER:
      lua_pushinteger(L, (lua_Integer)r->integer);
      break;
    case REDIS_REPLY_ARRAY:
      lua_createtable(L, r->elements > 0x7fffffff ? 0 : (int)r->elements, 1);
      for (i = 0; i < r->elements; i++) {
        if (r->element[i]->type == REDIS_REPLY_NIL) continue;
        aio__redis_push_reply(L, r->element[i], command);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
      }
      lua_pushinteger(L, (lua_Integer)r->elements);
      lua_setfield(L, -2, "n");
      break;
    case REDIS_REPLY_ERROR:
      error_new(L, r->str, r->len, command);
      break;
    default:                                     /* REDIS_REPLY_NIL */
      lua_pushnil(L);
      break;
  }
}
