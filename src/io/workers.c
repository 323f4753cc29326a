/*
** workers.c
** core.workers: what the master process of aio.workers needs and Lua
** lacks: fork, waiting for a child or a signal (SIGINT, SIGTERM and
** SIGCHLD are blocked in the master and taken with sigtimedwait, so no
** handler runs and none is missed), and kill. The master runs no loop.
** See LICENSE
*/

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aio.h"

static sigset_t saved;          /* the mask before block() */
static int blocked;             /* block() is in force */


static void watched (sigset_t *set) {
  sigemptyset(set);
  sigaddset(set, SIGINT);
  sigaddset(set, SIGTERM);
  sigaddset(set, SIGCHLD);
}


/* core.workers.block(): from now on SIGINT, SIGTERM and SIGCHLD wait for
** wait() instead of being delivered. */
static int w_block (lua_State *L) {
  sigset_t set;
  (void)L;
  if (blocked) return 0;
  watched(&set);
  sigprocmask(SIG_BLOCK, &set, &saved);
  blocked = 1;
  return 0;
}


/* core.workers.unblock(): back to the mask block() found. */
static int w_unblock (lua_State *L) {
  (void)L;
  if (!blocked) return 0;
  sigprocmask(SIG_SETMASK, &saved, NULL);
  blocked = 0;
  return 0;
}


/* core.workers.fork() -> the child's pid in the master, 0 in the child
** (whose signal mask is the one before block()). Raises `io` on failure. */
static int w_fork (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  pid_t pid;
  if (loop->running)
    return aio__usage(L, "aio.workers: cannot fork inside aio.run");
  fflush(NULL);
  pid = fork();
  if (pid < 0) {
    aio__uv_error_new(L, "io", uv_translate_sys_error(errno),
                      "aio.workers: cannot fork");
    return lua_error(L);
  }
  if (pid == 0 && blocked) {
    sigprocmask(SIG_SETMASK, &saved, NULL);
    blocked = 0;
  }
  lua_pushinteger(L, (lua_Integer)pid);
  return 1;
}


/* Pushes ("exit", pid, code, signal name or nil) for a reaped child. */
static int push_exit (lua_State *L, pid_t pid, int st) {
  lua_pushliteral(L, "exit");
  lua_pushinteger(L, (lua_Integer)pid);
  if (WIFEXITED(st)) {
    lua_pushinteger(L, WEXITSTATUS(st));
    lua_pushnil(L);
  }
  else {
    lua_pushnil(L);
    lua_pushstring(L, WIFSIGNALED(st) ? aio__signame(WTERMSIG(st)) : "?");
  }
  return 4;
}


/*
** core.workers.wait(seconds) -> "exit", pid, code, signal (a child ended:
** code if it exited, else the name of the signal that killed it), or
** "signal", name (SIGINT or SIGTERM arrived), or "timeout". Blocks the
** process (the master runs no loop). Needs block().
*/
static int w_wait (lua_State *L) {
  double secs = luaL_checknumber(L, 1);
  sigset_t set;
  struct timespec ts;
  watched(&set);
  if (secs < 0) secs = 0;
  ts.tv_sec = (time_t)secs;
  ts.tv_nsec = (long)((secs - (double)ts.tv_sec) * 1e9);
  for (;;) {
    siginfo_t info;
    int st, sig;
    pid_t pid = waitpid(-1, &st, WNOHANG);
    if (pid > 0) return push_exit(L, pid, st);
    sig = sigtimedwait(&set, &info, &ts);
    if (sig == SIGINT || sig == SIGTERM) {
      lua_pushliteral(L, "signal");
      lua_pushstring(L, aio__signame(sig));
      return 2;
    }
    if (sig == SIGCHLD) continue;
    if (sig < 0 && errno == EINTR) continue;
    if (sig < 0 && errno == EAGAIN) {
      lua_pushliteral(L, "timeout");
      return 1;
    }
    if (sig < 0) {
      aio__uv_error_new(L, "io", uv_translate_sys_error(errno),
                        "aio.workers: cannot wait");
      return lua_error(L);
    }
  }
}


/* core.workers.kill(pid, name) -> true, or false if there is no such
** process. */
static int w_kill (lua_State *L) {
  pid_t pid = (pid_t)luaL_checkinteger(L, 1);
  int sig = aio__signum(luaL_checkstring(L, 2));
  luaL_argcheck(L, pid > 0, 1, "invalid pid");
  luaL_argcheck(L, sig > 0, 2, "unknown signal");
  lua_pushboolean(L, kill(pid, sig) == 0);
  return 1;
}


/* core.workers.getpid() -> this process's id. */
static int w_getpid (lua_State *L) {
  lua_pushinteger(L, (lua_Integer)getpid());
  return 1;
}


static const luaL_Reg workers_funcs[] = {
  {"block", w_block},
  {"unblock", w_unblock},
  {"fork", w_fork},
  {"wait", w_wait},
  {"kill", w_kill},
  {"getpid", w_getpid},
  {NULL, NULL}
};


static void open_workers (lua_State *L) {
  int core = lua_gettop(L);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, workers_funcs);
  lua_setfield(L, core, "workers");
}


const AioModule aio__module_workers = {"workers", open_workers, NULL};
