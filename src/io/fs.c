/*
** fs.c
** core.fs: operations on paths (stat, mkdir, rmdir, unlink, rename,
** scandir) as libuv pool requests; files are in file.c.
** See LICENSE
*/

#include <string.h>
#include <sys/stat.h>

#include "aio.h"

enum { P_STAT, P_MKDIR, P_RMDIR, P_UNLINK, P_RENAME, P_SCANDIR };

static const char *const op_verbs[] = {
  "stat", "create directory", "remove directory", "remove", "rename",
  "list"
};

typedef struct PathReq {
  Req r;
  uv_fs_t fs;
  uint8_t op;
  uint8_t started;
} PathReq;


static void pathreq_gc (Req *r) {
  PathReq *q = (PathReq *)r;
  if (q->started) uv_fs_req_cleanup(&q->fs);
}


static void path_cb (uv_fs_t *req) {
  PathReq *q = aio_container_of(req, PathReq, fs);
  aio__req_done(&q->r, (int)req->result);
}


/* Checks argument `arg` as a path: a string without zero bytes. */
const char *aio__checkpath (lua_State *L, int arg) {
  return aio__checkcstring(L, arg, "path");
}


static const char *type_name (uint64_t mode) {
  switch (mode & S_IFMT) {
    case S_IFREG: return "file";
    case S_IFDIR: return "directory";
    case S_IFLNK: return "link";
    case S_IFIFO: return "fifo";
    case S_IFSOCK: return "socket";
    case S_IFCHR: return "char";
    case S_IFBLK: return "block";
    default: return "unknown";
  }
}


static double seconds (uv_timespec_t ts) {
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}


/* Pushes the stat table of `st`. */
static void push_stat (lua_State *L, const uv_stat_t *st) {
  lua_createtable(L, 0, 12);
  aio__setfield_str(L, "type", type_name(st->st_mode));
  lua_pushinteger(L, (lua_Integer)st->st_size);
  lua_setfield(L, -2, "size");
  lua_pushinteger(L, (lua_Integer)(st->st_mode & 07777));
  lua_setfield(L, -2, "mode");
  aio__setfield_num(L, "mtime", seconds(st->st_mtim));
  aio__setfield_num(L, "atime", seconds(st->st_atim));
  aio__setfield_num(L, "ctime", seconds(st->st_ctim));
  lua_pushinteger(L, (lua_Integer)st->st_ino);
  lua_setfield(L, -2, "ino");
  lua_pushinteger(L, (lua_Integer)st->st_dev);
  lua_setfield(L, -2, "dev");
  lua_pushinteger(L, (lua_Integer)st->st_nlink);
  lua_setfield(L, -2, "nlink");
  lua_pushinteger(L, (lua_Integer)st->st_uid);
  lua_setfield(L, -2, "uid");
  lua_pushinteger(L, (lua_Integer)st->st_gid);
  lua_setfield(L, -2, "gid");
  lua_pushinteger(L, (lua_Integer)st->st_blocks);
  lua_setfield(L, -2, "blocks");
}


/* Raises the `io` error of path operation `op` that failed with `err`;
** the path is at 1 (and the new path at 2 for rename). */
static int path_fail (lua_State *L, int op, int err) {
  const char *path = lua_tostring(L, 1);
  aio__uv_error_new(L, "io", err, "cannot %s '%s'", op_verbs[op], path);
  aio__setfield_str(L, "path", path);
  if (op == P_RENAME) aio__setfield_str(L, "to", lua_tostring(L, 2));
  return lua_error(L);
}


/* Continuation of every path operation; the request is on top. */
static int path_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  PathReq *q = (PathReq *)lua_touserdata(L, -1);
  Task *t = loop->current;
  (void)status; (void)ctx;
  if (t->wake != AIO_WAKE_OK) {
    if (q->r.anchor != 0) uv_cancel((uv_req_t *)&q->fs);
    return aio__wake_raise(L, t);
  }
  if (q->r.status < 0) return path_fail(L, q->op, q->r.status);
  switch (q->op) {
    case P_STAT:
      push_stat(L, &q->fs.statbuf);
      return 1;
    case P_SCANDIR: {
      uv_dirent_t ent;
      lua_Integer n = 0;
      lua_newtable(L);
      while (uv_fs_scandir_next(&q->fs, &ent) == 0) {
        lua_pushstring(L, ent.name);
        lua_rawseti(L, -2, ++n);
      }
      return 1;
    }
    default:
      return 0;
  }
}


/*
** Runs path operation `op` (named `what` in messages) on the path at 1
** (and the new path at 2 for rename, the mode at 2 for mkdir): starts the
** libuv request and suspends until it ends (path_k).
*/
static int path_op (lua_State *L, int op, const char *what) {
  Loop *loop = aio_upvalue_loop(L);
  const char *path = aio__checkpath(L, 1);
  const char *to = op == P_RENAME ? aio__checkpath(L, 2) : NULL;
  int mode = op == P_MKDIR ? (int)luaL_optinteger(L, 2, 0777) : 0;
  Task *t;
  PathReq *q;
  int rc;
  lua_settop(L, op == P_RENAME ? 2 : 1);
  t = aio__task_enter(L, loop, what);
  q = (PathReq *)aio__req_new(L, loop, sizeof(PathReq), 0);
  q->r.gc = pathreq_gc;
  q->op = (uint8_t)op;
  switch (op) {
    case P_STAT: rc = uv_fs_stat(&loop->uv, &q->fs, path, path_cb); break;
    case P_MKDIR:
      rc = uv_fs_mkdir(&loop->uv, &q->fs, path, mode, path_cb);
      break;
    case P_RMDIR: rc = uv_fs_rmdir(&loop->uv, &q->fs, path, path_cb); break;
    case P_UNLINK: rc = uv_fs_unlink(&loop->uv, &q->fs, path, path_cb); break;
    case P_RENAME:
      rc = uv_fs_rename(&loop->uv, &q->fs, path, to, path_cb);
      break;
    default: rc = uv_fs_scandir(&loop->uv, &q->fs, path, 0, path_cb); break;
  }
  if (rc < 0) return path_fail(L, op, rc);
  q->started = 1;
  aio__req_start(L, &q->r, -1);
  return aio__req_wait(L, t, &q->r, 0, path_k);
}


/* stat(path) (suspends) -> {type, size, mode, mtime, atime, ctime, ...};
** follows symbolic links. */
static int fs_stat (lua_State *L) { return path_op(L, P_STAT, "aio.fs.stat"); }

/* mkdir(path, [mode=0777]) (suspends). */
static int fs_mkdir (lua_State *L) {
  return path_op(L, P_MKDIR, "aio.fs.mkdir");
}

/* rmdir(path) (suspends): removes an empty directory. */
static int fs_rmdir (lua_State *L) {
  return path_op(L, P_RMDIR, "aio.fs.remove");
}

/* unlink(path) (suspends): removes a file. */
static int fs_unlink (lua_State *L) {
  return path_op(L, P_UNLINK, "aio.fs.remove");
}

/* rename(from, to) (suspends). */
static int fs_rename (lua_State *L) {
  return path_op(L, P_RENAME, "aio.fs.rename");
}

/* scandir(path) (suspends) -> the names in the directory, sorted, without
** "." and "..". */
static int fs_scandir (lua_State *L) {
  return path_op(L, P_SCANDIR, "aio.fs.list");
}


static const luaL_Reg fs_funcs[] = {
  {"stat", fs_stat},
  {"mkdir", fs_mkdir},
  {"rmdir", fs_rmdir},
  {"unlink", fs_unlink},
  {"rename", fs_rename},
  {"scandir", fs_scandir},
  {NULL, NULL}
};


/* core.fs = {stat, mkdir, rmdir, unlink, rename, scandir, open, File}. */
static void open_fs (lua_State *L) {
  int core = lua_gettop(L);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, fs_funcs);
  aio__open_file(L, core + 1);
  lua_setfield(L, core, "fs");
}


const AioModule aio__module_fs = {"fs", open_fs, NULL};
