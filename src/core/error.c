/*
** error.c
** aio.Error: error tables {kind=, message=, ...} with a shared metatable,
** and the helpers C code uses to raise them.
** See LICENSE
*/

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <string.h>
#include <unistd.h>

#include "core.h"

#define ERROR_MT "aio.Error"


void aio__setfield_str (lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}


void aio__setfield_num (lua_State *L, const char *k, lua_Number v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}


/* Pushes a new error of `kind`; its message is `where` (may be NULL)
** followed by the formatted text. */
static void push_error (lua_State *L, const char *kind, const char *where,
                        const char *fmt, va_list ap) {
  lua_createtable(L, 0, 4);
  aio__setfield_str(L, "kind", kind);
  lua_pushstring(L, where != NULL ? where : "");
  lua_pushvfstring(L, fmt, ap);
  lua_concat(L, 2);
  lua_setfield(L, -2, "message");
  luaL_setmetatable(L, ERROR_MT);
}


/* Pushes a new error of `kind` with a formatted message. Never raises
** (except on memory errors). */
void aio__error_new (lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_error(L, kind, NULL, fmt, ap);
  va_end(ap);
}


/* Raises a new error of `kind`. */
int aio__error (lua_State *L, const char *kind, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_error(L, kind, NULL, fmt, ap);
  va_end(ap);
  return lua_error(L);
}


/* Raises a `usage` error whose message starts with the caller's position
** ("file.lua:12: "), like luaL_error does for plain errors. */
int aio__usage (lua_State *L, const char *fmt, ...) {
  va_list ap;
  luaL_where(L, 1);
  va_start(ap, fmt);
  push_error(L, "usage", lua_tostring(L, -1), fmt, ap);
  va_end(ap);
  return lua_error(L);
}


/*
** Pushes an error of `kind` whose message is the formatted text followed
** by libuv's description of `err` and its name, with field code = the name
** ("ENOENT", "ECONNREFUSED", "EAI_NONAME", ...).
*/
void aio__uv_error_new (lua_State *L, const char *kind, int err,
                        const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  push_error(L, kind, NULL, fmt, ap);
  va_end(ap);
  lua_getfield(L, -1, "message");
  lua_pushfstring(L, ": %s (%s)", uv_strerror(err), uv_err_name(err));
  lua_concat(L, 2);
  lua_setfield(L, -2, "message");
  aio__setfield_str(L, "code", uv_err_name(err));
}


/* Raises `closed`: "attempt to use a closed <what>". */
int aio__closed_error (lua_State *L, const char *what) {
  return aio__error(L, "closed", "attempt to use a closed %s", what);
}


/* Raises the error of a failed allocation outside Lua's own (malloc in C
** code): `io` with code "ENOMEM", as libuv reports its own. */
int aio__nomem (lua_State *L, const char *what) {
  aio__uv_error_new(L, "io", UV_ENOMEM, "out of memory %s", what);
  return lua_error(L);
}


/* Is the value at `idx` an aio.Error (of `kind`, when not NULL)? */
int aio__is_error (lua_State *L, int idx, const char *kind) {
  int ok = 0;
  idx = lua_absindex(L, idx);
  if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) return 0;
  luaL_getmetatable(L, ERROR_MT);
  if (lua_rawequal(L, -1, -2)) {
    if (kind == NULL) ok = 1;
    else {
      lua_getfield(L, idx, "kind");
      ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), kind) == 0;
      lua_pop(L, 1);
    }
  }
  lua_pop(L, 2);
  return ok;
}


/* aio.is_error(e, [kind]) -> boolean */
static int l_is_error (lua_State *L) {
  const char *kind = luaL_optstring(L, 2, NULL);
  lua_pushboolean(L, aio__is_error(L, 1, kind));
  return 1;
}


/* __tostring: "<kind>: <message>" */
static int error_tostring (lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "kind");
  lua_getfield(L, 1, "message");
  lua_pushfstring(L, "%s: %s", luaL_optstring(L, -2, "error"),
                  luaL_optstring(L, -1, "(no message)"));
  return 1;
}


/*
** aio.Error(kind, message, [fields]) -> a new error; fields are copied in.
** Lets Lua code (and users) raise errors of the documented kinds.
*/
static int error_call (lua_State *L) {
  const char *kind = luaL_checkstring(L, 2);
  const char *msg = luaL_optstring(L, 3, kind);
  int has_fields = !lua_isnoneornil(L, 4);
  if (has_fields) luaL_checktype(L, 4, LUA_TTABLE);
  lua_createtable(L, 0, 4);
  if (has_fields) {
    lua_pushnil(L);
    while (lua_next(L, 4)) {
      lua_pushvalue(L, -2);
      lua_insert(L, -2);
      lua_rawset(L, -4);
    }
  }
  aio__setfield_str(L, "kind", kind);
  aio__setfield_str(L, "message", msg);
  luaL_setmetatable(L, ERROR_MT);
  return 1;
}


/*
** core.load(modname) -> require(modname), for the names the façades load
** on first use. Lua's searchers report a module file they cannot open as
** not found; when that is because no descriptor is left (EMFILE, ENFILE)
** the error says so instead: `io` with that code and `module`.
*/
static int l_load (lua_State *L) {
  int fd;
  luaL_checkstring(L, 1);
  lua_settop(L, 1);
  lua_getglobal(L, "require");
  lua_pushvalue(L, 1);
  if (lua_pcall(L, 1, 1, 0) == LUA_OK) return 1;
  fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (fd >= 0 || (errno != EMFILE && errno != ENFILE)) {
    if (fd >= 0) close(fd);
    return lua_error(L);
  }
  aio__uv_error_new(L, "io", uv_translate_sys_error(errno),
                    "cannot load module '%s'", lua_tostring(L, 1));
  lua_pushvalue(L, 1);
  lua_setfield(L, -2, "module");
  return lua_error(L);
}


/* Leaves aio.Error (the metatable) on the stack and sets core.is_error,
** core.Error and core.load in the table below it. */
void aio__open_error (lua_State *L) {
  luaL_newmetatable(L, ERROR_MT);         /* core mt */
  lua_pushcfunction(L, error_tostring);
  lua_setfield(L, -2, "__tostring");
  lua_createtable(L, 0, 1);               /* core mt meta */
  lua_pushcfunction(L, error_call);
  lua_setfield(L, -2, "__call");
  lua_setmetatable(L, -2);                /* core mt */
  lua_setfield(L, -2, "Error");           /* core */
  lua_pushcfunction(L, l_is_error);
  lua_setfield(L, -2, "is_error");
  lua_pushcfunction(L, l_load);
  lua_setfield(L, -2, "load");
}
