/*
** pg_value.c
** PostgreSQL types and JSON: how values of each type decode, and the
** cjson functions that decode json columns and encode tables bound as
** JSON. Decoding is in pg_decode.c (text forms) and pg_binary.c (binary
** forms), encoding in pg_encode.c.
** See LICENSE
*/

#include "pg.h"

/* Registry keys of cjson.encode and cjson.decode (core.pg.set_json). */
static const char json_encode_key = 0;
static const char json_decode_key = 0;


/* ---------------------------------------------------------------------
** Types
** ------------------------------------------------------------------- */

/* Built-in array types and their element types. */
static const Oid array_types[][2] = {
  {1000, PG_BOOL}, {1001, PG_BYTEA}, {1002, PG_CHAR}, {1003, PG_NAME},
  {1005, PG_INT2}, {1007, PG_INT4}, {1009, PG_TEXT}, {1028, PG_OID},
  {1014, PG_BPCHAR}, {1015, PG_VARCHAR}, {1016, PG_INT8},
  {1021, PG_FLOAT4}, {1022, PG_FLOAT8}, {1231, PG_NUMERIC},
  {199, PG_JSON}, {3807, PG_JSONB},
  /* elements in text form */
  {1182, 1082}, {1183, 1083}, {1115, 1114}, {1185, 1184}, {1187, 1186},
  {1270, 1266}, {2951, 2950}, {1041, 869}, {651, 650}, {1040, 829},
  {775, 774}, {1561, 1560}, {1563, 1562}, {791, 790}, {143, 142},
  {1017, 600}, {3643, 3614}, {3645, 3615}, {4073, 4072}, {2211, 2206},
  {2210, 2205}, {1013, 30}, {1012, 28}, {1011, 27}, {1010, 1033},
  {3905, 3904}, {3907, 3906}, {3911, 3910}, {3913, 3912}, {3927, 3926}
};


/* How values of `type` decode; for an array, *elem is its element type. */
PgKind pg__kind (Oid type, Oid *elem) {
  size_t i;
  switch (type) {
    case PG_INT2: case PG_INT4: case PG_INT8: case PG_OID: return PK_INT;
    case PG_FLOAT4: case PG_FLOAT8: return PK_FLOAT;
    case PG_BOOL: return PK_BOOL;
    case PG_BYTEA: return PK_BYTEA;
    case PG_JSON: case PG_JSONB: return PK_JSON;
    default: break;
  }
  for (i = 0; i < sizeof array_types / sizeof array_types[0]; i++)
    if (array_types[i][0] == type) {
      *elem = array_types[i][1];
      return PK_ARRAY;
    }
  return PK_TEXT;
}


/* ---------------------------------------------------------------------
** JSON
** ------------------------------------------------------------------- */

/* Pushes json text, decoded with cjson.decode when the connection asks. */
void pg__push_json (lua_State *L, PgConn *c, const char *s, size_t len) {
  if (!c->decode_json ||
      lua_rawgetp(L, LUA_REGISTRYINDEX, &json_decode_key) != LUA_TFUNCTION) {
    if (c->decode_json) lua_pop(L, 1);
    lua_pushlstring(L, s, len);
    return;
  }
  lua_pushlstring(L, s, len);
  lua_call(L, 1, 1);
}


/* Pushes cjson.encode(value at idx). Returns 0, or -1 with the message
** pushed instead. */
int pg__json_encode (lua_State *L, int idx) {
  idx = lua_absindex(L, idx);
  if (lua_rawgetp(L, LUA_REGISTRYINDEX, &json_encode_key) != LUA_TFUNCTION) {
    lua_pop(L, 1);
    lua_pushliteral(L, "no JSON encoder (lua-cjson)");
    return -1;
  }
  lua_pushvalue(L, idx);
  if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
    lua_pushfstring(L, "cannot encode the table as JSON: %s",
                    lua_tostring(L, -1));
    lua_remove(L, -2);
    return -1;
  }
  return 0;
}


/* core.pg.set_json(encode, decode): cjson's functions, for tables bound
** as JSON and for decode_json. */
static int l_set_json (lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  lua_pushvalue(L, 1);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &json_encode_key);
  lua_pushvalue(L, 2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &json_decode_key);
  return 0;
}


/* Adds set_json to the table on top. */
void pg__open_json (lua_State *L) {
  lua_pushcfunction(L, l_set_json);
  lua_setfield(L, -2, "set_json");
}
