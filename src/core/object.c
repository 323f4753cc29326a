/*
** object.c
** Object classes: metatables whose methods and metamethods check their
** receiver the same way, and the type checks for arguments.
** See LICENSE
*/

#include <string.h>

#include "core.h"


/* Registers `l` into the table on top, each function with the loop
** userdata (at absolute index `loopidx`) as its only upvalue. */
void aio__setfuncs (lua_State *L, int loopidx, const luaL_Reg *l) {
  for (; l->name != NULL; l++) {
    lua_pushvalue(L, loopidx);
    lua_pushcclosure(L, l->func, 1);
    lua_setfield(L, -2, l->name);
  }
}


/* Registers `l` into the table on top as closures with upvalues (loop,
** metatable at `mtidx`[, methods at `methods` for __index]). */
static void set_closures (lua_State *L, int loopidx, int mtidx, int methods,
                          const luaL_Reg *l) {
  for (; l != NULL && l->name != NULL; l++) {
    int index = methods != 0 && strcmp(l->name, "__index") == 0;
    lua_pushvalue(L, loopidx);
    lua_pushvalue(L, mtidx);
    if (index) lua_pushvalue(L, methods);
    lua_pushcclosure(L, l->func, index ? 3 : 2);
    lua_setfield(L, -2, l->name);
  }
}


/* Fills the new metatable on top with the class's functions, its mark and
** its name; `extra` metamethods are added (or override). */
static void fill (lua_State *L, int loopidx, const AioClass *cls,
                  const luaL_Reg *extra) {
  int mt = lua_gettop(L), methods = 0;
  if (cls->methods != NULL) {
    lua_newtable(L);                                    /* mt methods */
    methods = lua_gettop(L);
    set_closures(L, loopidx, mt, 0, cls->methods);
  }
  lua_pushvalue(L, mt);
  set_closures(L, loopidx, mt, methods, cls->meta);
  set_closures(L, loopidx, mt, methods, extra);
  lua_pop(L, 1);
  if (methods != 0 && lua_getfield(L, mt, "__index") == LUA_TNIL) {
    lua_pushvalue(L, methods);
    lua_setfield(L, mt, "__index");
  }
  lua_settop(L, mt);
  lua_pushboolean(L, 1);                  /* the mark: cls -> true */
  lua_rawsetp(L, mt, cls);
  lua_pushlightuserdata(L, (void *)cls);
  lua_setfield(L, mt, "__class");
  lua_pushstring(L, cls->name);
  lua_setfield(L, mt, "__name");
}


/*
** Creates the metatable of class `cls` (registry[cls->name]) and leaves it
** on top. Methods go into a table that is its __index (or, when the class
** has an __index metamethod, that function's third upvalue); methods and
** metamethods get the upvalues aio__checkself needs.
*/
void aio__class_open (lua_State *L, int loopidx, const AioClass *cls) {
  loopidx = lua_absindex(L, loopidx);
  luaL_newmetatable(L, cls->name);
  fill(L, loopidx, cls, NULL);
}


/* A second metatable of class `cls` (registry[name]), with the same
** functions plus `meta`, for objects that change behaviour (a failed
** task). Left on top. */
void aio__class_twin (lua_State *L, int loopidx, const AioClass *cls,
                      const char *name, const luaL_Reg *meta) {
  loopidx = lua_absindex(L, loopidx);
  luaL_newmetatable(L, name);
  fill(L, loopidx, cls, meta);
}


/*
** Argument 1 of a method or metamethod registered by aio__class_open: the
** userdata if its metatable is the function's own (or one of its class),
** else a standard argument error naming the class. The one receiver check.
*/
void *aio__checkself (lua_State *L) {
  void *p = lua_touserdata(L, 1);
  if (p != NULL && lua_getmetatable(L, 1)) {
    int ok = lua_rawequal(L, -1, lua_upvalueindex(2));
    if (!ok && lua_getfield(L, lua_upvalueindex(2), "__class") ==
        LUA_TLIGHTUSERDATA) {
      ok = lua_rawgetp(L, -2, lua_touserdata(L, -1)) == LUA_TBOOLEAN;
      lua_pop(L, 2);
    }
    else if (!ok) lua_pop(L, 1);
    lua_pop(L, 1);
    if (ok) return p;
  }
  lua_getfield(L, lua_upvalueindex(2), "__name");
  luaL_typeerror(L, 1, lua_tostring(L, -1));
  return NULL;
}


/*
** The string (or number) at `idx`, for a C API that reads it only up to
** its first zero byte (a path, a URL, a header, argv): one that holds a
** zero byte raises `usage` naming it (`what`: "path", "argv[2]") instead
** of being cut short there. NULL for other types.
*/
const char *aio__cstring (lua_State *L, int idx, const char *what) {
  size_t len;
  const char *s;
  int t = lua_type(L, idx);
  if (t != LUA_TSTRING && t != LUA_TNUMBER) return NULL;
  s = lua_tolstring(L, idx, &len);
  if (strlen(s) != len)
    aio__usage(L, "%s contains a zero byte (refused: it would be cut short "
               "there)", what);
  return s;
}


/* Argument `arg` as a string for a C API (see aio__cstring): a standard
** argument error if it is not a string, `usage` if it holds a zero byte. */
const char *aio__checkcstring (lua_State *L, int arg, const char *what) {
  luaL_checkstring(L, arg);
  return aio__cstring(L, arg, what);
}


/* Argument `arg` must be callable (a function, or a value with a __call
** metamethod); a standard argument error otherwise. */
void aio__checkcallable (lua_State *L, int arg) {
  if (lua_type(L, arg) == LUA_TFUNCTION) return;
  if (luaL_getmetafield(L, arg, "__call") != LUA_TNIL) {
    lua_pop(L, 1);
    return;
  }
  luaL_typeerror(L, arg, "function");
}


/* The userdata at `idx` if it is an object of class `cls`, else NULL. */
void *aio__toobj (lua_State *L, int idx, const AioClass *cls) {
  void *p = lua_touserdata(L, idx);
  if (p == NULL || !lua_getmetatable(L, idx)) return NULL;
  if (lua_rawgetp(L, -1, cls) != LUA_TBOOLEAN) p = NULL;
  lua_pop(L, 2);
  return p;
}


/* As aio__toobj, raising a standard argument error naming the class. */
void *aio__checkobj (lua_State *L, int idx, const AioClass *cls) {
  void *p = aio__toobj(L, idx, cls);
  if (p == NULL) luaL_typeerror(L, idx, cls->name);
  return p;
}
