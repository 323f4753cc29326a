/*
** anchor.c
** Anchors: an array table keeps objects reachable while C code holds raw
** pointers to them; freed slots are reused.
** See LICENSE
*/

#include <stdlib.h>

#include "core.h"


/* Creates the anchor table (at an integer key of the registry: its
** array part, so that reaching it costs no hash lookup). */
void aio__anchors_open (lua_State *L, Anchors *a) {
  lua_newtable(L);
  a->ref = luaL_ref(L, LUA_REGISTRYINDEX);
}


/* Pushes the anchor table. */
void aio__push_anchors (lua_State *L, Loop *loop) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->anchors.ref);
}


/* Anchors the value at `idx`; returns its slot (> 0). */
uint32_t aio__anchor (lua_State *L, Loop *loop, int idx) {
  Anchors *a = &loop->anchors;
  uint32_t slot;
  idx = lua_absindex(L, idx);
  if (a->nfree > 0) slot = a->free[--a->nfree];
  else slot = ++a->nslots;
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
  lua_pushvalue(L, idx);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  return slot;
}


/* Makes room to free one more slot; returns 0 if there is none. */
static int free_reserve (Anchors *a) {
  if (a->nfree == a->cap) {
    uint32_t cap = a->cap ? a->cap * 2 : 256;
    uint32_t *f = realloc(a->free, cap * sizeof *f);
    if (f == NULL) return 0;
    a->free = f;
    a->cap = cap;
  }
  return 1;
}


/* Releases `slot` (0: none). Never raises and never allocates Lua memory
** (it runs in libuv callbacks). */
void aio__unanchor (lua_State *L, Loop *loop, uint32_t slot) {
  Anchors *a = &loop->anchors;
  if (slot == 0) return;
  if (!free_reserve(a)) return;  /* keep it occupied rather than lose it */
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);
  lua_pushnil(L);
  lua_rawseti(L, -2, slot);
  lua_pop(L, 1);
  a->free[a->nfree++] = slot;
}


/* Pushes the value anchored in `slot` (> 0) and releases the slot, as
** aio__push_anchored then aio__unanchor do. */
void aio__anchor_take (lua_State *L, Loop *loop, uint32_t slot) {
  Anchors *a = &loop->anchors;
  lua_rawgeti(L, LUA_REGISTRYINDEX, a->ref);           /* anchors */
  lua_rawgeti(L, -1, slot);                            /* anchors v */
  if (free_reserve(a)) {
    lua_pushnil(L);
    lua_rawseti(L, -3, slot);
    a->free[a->nfree++] = slot;
  }
  lua_replace(L, -2);                                  /* v */
}


/* Pushes the value anchored in `slot` (nil if none). */
void aio__push_anchored (lua_State *L, Loop *loop, uint32_t slot) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, loop->anchors.ref);
  lua_rawgeti(L, -1, slot);
  lua_replace(L, -2);
}


void aio__anchors_free (Anchors *a) {
  free(a->free);
  a->free = NULL;
  a->nfree = a->cap = 0;
}
