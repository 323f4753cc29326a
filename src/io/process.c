/*
** process.c
** core.process.run: a child process with its output captured, its input
** fed, and on cancellation or timeout its process group killed and the
** child reaped before the call returns.
** See LICENSE
*/

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aio.h"

#define PROCESS_MT "aio.Process"

extern char **environ;

/* Where a child's stdout or stderr goes. */
enum { IO_PIPE, IO_INHERIT, IO_NULL };

/* Phases of run's continuation. */
enum { PH_RUN, PH_KILLED_CANCEL, PH_KILLED_TIMEOUT };

/*
** A child and its pipes. The child leads a process group of its own, so
** killing the group also kills what it started. The process handle is
** closed only after the child was reaped (its exit callback), otherwise
** libuv would never wait for it.
*/
typedef struct Proc {
  IoHandle io;
  uv_process_t proc;
  uv_pipe_t in, out, err;
  Link waiters;          /* the task in run() */
  Buf obuf, ebuf;        /* captured stdout, stderr */
  uint64_t deadline;     /* timeout (hrtime), 0 for none */
  double seconds;        /* the timeout asked for */
  int64_t exit_status;
  int term_signal;
  int pid;
  uint8_t piped[3];      /* which of in, out, err are pipes of ours */
  uint8_t done[3];       /* input written / output at its end */
  uint8_t spawned;       /* the process handle was initialised */
  uint8_t exited;        /* reaped: exit_status, term_signal are set */
  uint8_t killed;        /* SIGKILL was sent to the group */
  uint8_t abandoned;     /* nobody waits: the exit callback cleans up */
} Proc;


/* The write of the input. User value 1: the input string. */
typedef struct InputReq {
  Req r;
  uv_write_t w;
} InputReq;


/* ---------------------------------------------------------------------
** Callbacks (no Lua)
** ------------------------------------------------------------------- */

static void proc_release (IoHandle *io) {
  Proc *p = (Proc *)io;
  aio__buf_free(&p->obuf);
  aio__buf_free(&p->ebuf);
}


/* Closes every handle of `p` still open. */
static void proc_close_all (Proc *p) {
  if (p->piped[0]) aio__io_close_handle(&p->io, (uv_handle_t *)&p->in);
  if (p->piped[1]) aio__io_close_handle(&p->io, (uv_handle_t *)&p->out);
  if (p->piped[2]) aio__io_close_handle(&p->io, (uv_handle_t *)&p->err);
  if (p->spawned) aio__io_close_handle(&p->io, (uv_handle_t *)&p->proc);
}


/* Kills the child's process group (once). */
static void proc_kill (Proc *p) {
  if (p->exited || p->killed || p->pid <= 0) return;
  p->killed = 1;
  if (kill(-p->pid, SIGKILL) != 0) kill(p->pid, SIGKILL);
}


/* A handle of `p` closed. The process handle closing before the child
** was reaped happens only when a run ends abruptly: kill and reap it here
** so that no zombie and no orphan is left. */
static void proc_closed (IoHandle *io, uv_handle_t *h) {
  Proc *p = (Proc *)io;
  if (h == (uv_handle_t *)&p->proc && !p->exited && p->pid > 0) {
    int st;
    proc_kill(p);
    while (waitpid(p->pid, &st, 0) < 0 && errno == EINTR) {}
    p->exited = 1;
  }
}


static void exit_cb (uv_process_t *h, int64_t status, int sig) {
  Proc *p = (Proc *)h->data;
  p->exited = 1;
  p->exit_status = status;
  p->term_signal = sig;
  if (p->abandoned) proc_close_all(p);
  else aio__notify_all(p->io.loop, &p->waiters);
}


static void out_alloc (uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  Proc *p = (Proc *)h->data;
  Buf *b = h == (uv_handle_t *)&p->out ? &p->obuf : &p->ebuf;
  (void)suggested;
  if (!aio__buf_reserve(b, 65536)) {
    *buf = uv_buf_init(NULL, 0);       /* read_cb gets UV_ENOBUFS */
    return;
  }
  *buf = uv_buf_init(aio_buf_tail(b), (unsigned)aio_buf_room(b));
}


static void out_read (uv_stream_t *h, ssize_t nread, const uv_buf_t *buf) {
  Proc *p = (Proc *)h->data;
  int i = h == (uv_stream_t *)&p->out ? 1 : 2;
  Buf *b = i == 1 ? &p->obuf : &p->ebuf;
  (void)buf;
  if (nread > 0) b->len += (size_t)nread;
  else if (nread < 0) {                /* the end, or an error: stop */
    uv_read_stop(h);
    p->done[i] = 1;
    aio__notify_all(p->io.loop, &p->waiters);
  }
}


static void input_cb (uv_write_t *w, int status) {
  InputReq *q = aio_container_of(w, InputReq, w);
  Proc *p = (Proc *)w->handle->data;
  p->done[0] = 1;                      /* written, or the child left */
  aio__io_close_handle(&p->io, (uv_handle_t *)&p->in);
  aio__req_done(&q->r, status);
  aio__notify_all(p->io.loop, &p->waiters);
}


/* ---------------------------------------------------------------------
** run
** ------------------------------------------------------------------- */

/* Closes the process object: a child still running (its task was killed,
** or the run ends) is killed, and its exit callback closes the handles. */
static void proc_close (IoHandle *io) {
  Proc *p = (Proc *)io;
  if (p->spawned && !p->exited) {
    proc_kill(p);
    p->abandoned = 1;
  }
  else proc_close_all(p);
}


static const IoType proc_type = {"process", proc_close, proc_closed,
                                 proc_release};


/* Sets fields stdout and stderr of the table on top to what the pipes
** captured. */
static void set_output (lua_State *L, Proc *p) {
  int i;
  for (i = 1; i <= 2; i++) {
    Buf *b = i == 1 ? &p->obuf : &p->ebuf;
    if (!p->piped[i]) continue;
    lua_pushlstring(L, b->data != NULL ? aio_buf_head(b) : "",
                    aio_buf_avail(b));
    lua_setfield(L, -2, i == 1 ? "stdout" : "stderr");
  }
}


/* Pushes {code=, signal=, stdout=, stderr=} of the reaped child. */
static void push_result (lua_State *L, Proc *p) {
  lua_createtable(L, 0, 4);
  if (p->term_signal != 0) {
    const char *name = aio__signame(p->term_signal);
    lua_pushinteger(L, -p->term_signal);
    lua_setfield(L, -2, "code");
    if (name != NULL) lua_pushstring(L, name);
    else lua_pushinteger(L, p->term_signal);
    lua_setfield(L, -2, "signal");
  }
  else {
    lua_pushinteger(L, (lua_Integer)p->exit_status);
    lua_setfield(L, -2, "code");
  }
  set_output(L, p);
}


static int run_k (lua_State *L, int status, lua_KContext ctx);

/* Waits (again) in phase `ph`; the deadline only while running. Once
** killed, waiting for the child to be reaped is clean-up: a cancellation
** does not interrupt it. */
static int run_wait (lua_State *L, Proc *p, Task *t, int ph) {
  link_push(&p->waiters, &t->wait.link);
  aio__wait_io(p->io.loop, t);
  if (ph != PH_RUN) return aio__suspend_cleanup(L, t, ph, run_k);
  if (p->deadline != 0)
    aio__timer_arm(p->io.loop, &t->timer, p->deadline);
  return aio__suspend(L, t, ph, run_k);
}


/* Stack: (argv, opts, ref). Goes on with run in phase `ph`. */
static int run_step (lua_State *L, Proc *p, Task *t, int ph) {
  int wake = t->wake;
  if (ph == PH_RUN) {
    if (wake == AIO_WAKE_TIMER || wake >= AIO_WAKE_CANCEL) {
      proc_kill(p);
      ph = wake == AIO_WAKE_TIMER ? PH_KILLED_TIMEOUT : PH_KILLED_CANCEL;
    }
    else if (p->exited && p->done[0] && p->done[1] && p->done[2]) {
      aio__io_close(&p->io);
      push_result(L, p);
      return 1;
    }
    else return run_wait(L, p, t, PH_RUN);
  }
  if (!p->exited) {                  /* killed: wait until it is reaped */
    if (wake != AIO_WAKE_ABORT && wake != AIO_WAKE_DEADLOCK)
      return run_wait(L, p, t, ph);
    p->abandoned = 1;                /* cannot wait here: exit_cb cleans */
  }
  else aio__io_close(&p->io);
  if (ph == PH_KILLED_CANCEL || wake == AIO_WAKE_ABORT ||
      wake == AIO_WAKE_DEADLOCK) {
    t->wake = (uint8_t)(wake == AIO_WAKE_ABORT || wake == AIO_WAKE_DEADLOCK ?
                        wake : AIO_WAKE_CANCEL);
    return aio__wake_raise(L, t);
  }
  lua_rawgeti(L, 1, 1);
  {
    char secs[32];
    snprintf(secs, sizeof secs, "%g", p->seconds);
    aio__error_new(L, "timeout", "process '%s' timed out after %s s and "
                   "was killed", lua_tostring(L, -1), secs);
  }
  aio__setfield_num(L, "seconds", p->seconds);
  set_output(L, p);
  return lua_error(L);
}


static int run_k (lua_State *L, int status, lua_KContext ctx) {
  Loop *loop = aio_upvalue_loop(L);
  Proc *p = (Proc *)((IoRef *)lua_touserdata(L, 3))->io;
  (void)status;
  return run_step(L, p, loop->current, (int)ctx);
}


/* Most arguments a program gets (Linux's own limit is higher, but the
** strings must also fit in its ARG_MAX bytes). */
#define ARGV_MAX 65536

/*
** Pushes the argv array for uv_spawn (a userdata, NULL-terminated) made
** from the array at `idx` (raw length, so no __len can run away): at
** least the program, strings (or numbers) without zero bytes. Its user
** value keeps the strings (numbers converted) alive.
*/
static char **argv_array (lua_State *L, int idx) {
  char **list;
  lua_Unsigned i, len = lua_rawlen(L, idx);
  luaL_argcheck(L, len >= 1, idx, "argv is empty: the program is missing");
  luaL_argcheck(L, len <= ARGV_MAX, idx, "argv has too many elements");
  list = (char **)lua_newuserdatauv(L, (size_t)(len + 1) * sizeof *list, 1);
  lua_createtable(L, (int)len, 0);                  /* list strs */
  for (i = 1; i <= len; i++) {
    char what[32];
    int type = lua_rawgeti(L, idx, (lua_Integer)i);
    snprintf(what, sizeof what, "argv[%d]", (int)i);
    if (type != LUA_TSTRING && type != LUA_TNUMBER)
      luaL_argerror(L, idx, lua_pushfstring(L, "%s must be a string", what));
    list[i - 1] = (char *)aio__cstring(L, -1, what);   /* as a string */
    lua_rawseti(L, -2, (lua_Integer)i);               /* kept by strs */
  }
  lua_setiuservalue(L, -2, 1);
  list[len] = NULL;
  return list;
}


/* Checks an entry (key, value on top) of the environment overrides: a
** name that is a non-empty string without "=" or zero bytes; a value that
** is a string (or number) without zero bytes, or false. */
static void check_env_entry (lua_State *L) {
  const char *k;
  size_t len;
  if (lua_type(L, -2) != LUA_TSTRING)
    luaL_argerror(L, 2, "env: variable names must be strings");
  k = lua_tolstring(L, -2, &len);
  if (len == 0 || strchr(k, '=') != NULL)
    luaL_argerror(L, 2, lua_pushfstring(L, "env: invalid variable name "
                  "'%s'", k));
  aio__cstring(L, -2, "an env variable name");
  if (lua_type(L, -1) == LUA_TBOOLEAN && !lua_toboolean(L, -1)) return;
  lua_pushfstring(L, "env.%s", k);
  if (aio__cstring(L, -2, lua_tostring(L, -1)) == NULL)
    luaL_argerror(L, 2, lua_pushfstring(L, "%s must be a string or false",
                  lua_tostring(L, -1)));
  lua_pop(L, 1);
}


/*
** Pushes the environment for the child: this process's, with the entries
** of the table at `idx` set (string values) or removed (false). The
** strings stay alive in the tables until uv_spawn returns.
*/
static char **env_array (lua_State *L, int idx) {
  char **list;
  int n = 0, i;
  for (i = 0; environ[i] != NULL; i++) n++;
  lua_newtable(L);                                  /* strs */
  lua_pushnil(L);
  while (lua_next(L, idx)) {                        /* strs k v */
    check_env_entry(L);
    n++;
    lua_pop(L, 1);
  }
  list = (char **)lua_newuserdatauv(L, (size_t)(n + 1) * sizeof *list, 0);
  n = 0;
  for (i = 0; environ[i] != NULL; i++) {
    const char *eq = strchr(environ[i], '=');
    if (eq == NULL) continue;
    lua_pushlstring(L, environ[i], (size_t)(eq - environ[i]));
    if (lua_rawget(L, idx) == LUA_TNIL) list[n++] = environ[i];
    lua_pop(L, 1);
  }
  lua_pushnil(L);
  while (lua_next(L, idx)) {                        /* strs list k v */
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER) {
      lua_pushfstring(L, "%s=%s", lua_tostring(L, -2), lua_tostring(L, -1));
      list[n++] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, -5, n);
    }
    lua_pop(L, 1);
  }
  list[n] = NULL;
  return list;
}


/* The mode of field `field` ("stdout", "stderr") of the options table at
** `opts` (checked by aio.process): "pipe" (nil), "inherit" or "null". */
static int stdio_mode (lua_State *L, int opts, const char *field) {
  int m = IO_PIPE;
  if (lua_getfield(L, opts, field) == LUA_TSTRING) {
    const char *s = lua_tostring(L, -1);
    if (strcmp(s, "inherit") == 0) m = IO_INHERIT;
    else if (strcmp(s, "null") == 0) m = IO_NULL;
  }
  lua_pop(L, 1);
  return m;
}


/*
** Raises the `io` error of a program that could not be started (`rc`).
** libuv reports a working directory that cannot be entered as the program
** not being found: one that is not a usable directory is named instead.
*/
static int spawn_failed (lua_State *L, int rc, const char *prog,
                         const char *cwd) {
  struct stat st;
  int err = 0;
  if (cwd != NULL && (rc == UV_ENOENT || rc == UV_ENOTDIR ||
                      rc == UV_EACCES)) {
    if (stat(cwd, &st) != 0) err = uv_translate_sys_error(errno);
    else if (!S_ISDIR(st.st_mode)) err = UV_ENOTDIR;
    else if (access(cwd, X_OK) != 0) err = uv_translate_sys_error(errno);
  }
  if (err != 0) {
    aio__uv_error_new(L, "io", err, "cannot run '%s' in directory '%s'",
                      prog, cwd);
    aio__setfield_str(L, "path", cwd);
  }
  else {
    aio__uv_error_new(L, "io", rc, "cannot run '%s'", prog);
    aio__setfield_str(L, "path", prog);
  }
  return lua_error(L);
}


/*
** core.process.run(argv, opts) (suspends) -> {code, signal, stdout,
** stderr}. argv: array of strings (argv[1] is looked up in PATH). opts
** (checked by aio.process): input, cwd, env (overrides), stdout/stderr
** ("pipe", "inherit", "null"), timeout (seconds).
*/
static int l_run (lua_State *L) {
  Loop *loop = aio_upvalue_loop(L);
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  Proc *p;
  Task *t;
  int rc, i, mode[3], inidx, refidx;
  char **args, **env = NULL;
  size_t inlen = 0;
  const char *input = NULL;
  double secs = 0;
  int timed;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  lua_settop(L, 2);
  memset(&o, 0, sizeof o);
  args = argv_array(L, 1);                                    /* 3 */
  lua_getfield(L, 2, "cwd");                                  /* 4 */
  if (!lua_isnil(L, 4) && (o.cwd = aio__cstring(L, 4, "cwd")) == NULL)
    luaL_argerror(L, 2, "cwd must be a string");
  if (lua_getfield(L, 2, "env") == LUA_TTABLE)                /* 5 */
    env = env_array(L, 5);                                    /* 6 7 */
  lua_getfield(L, 2, "input");                          /* (6 7) input */
  inidx = lua_gettop(L);
  input = lua_tolstring(L, inidx, &inlen);
  mode[0] = input != NULL ? IO_PIPE : IO_NULL;
  mode[1] = stdio_mode(L, 2, "stdout");
  mode[2] = stdio_mode(L, 2, "stderr");
  if ((timed = lua_getfield(L, 2, "timeout") == LUA_TNUMBER)) {
    secs = lua_tonumber(L, -1);
    luaL_argcheck(L, !isnan(secs), 2, "timeout is NaN");
  }
  lua_pop(L, 1);
  t = aio__task_enter(L, loop, "aio.process.run");
  p = (Proc *)aio__io_new(loop, sizeof(Proc), &proc_type);
  if (p == NULL) return aio__nomem(L, "starting a process");
  link_init(&p->waiters);
  aio__io_push(L, &p->io, PROCESS_MT, 0);
  refidx = lua_gettop(L);
  if (timed) {
    p->seconds = secs < 0 ? 0 : secs;
    p->deadline = aio__deadline(loop, p->seconds);
  }
  for (i = 0; i < 3; i++) {
    uv_pipe_t *pipe = i == 0 ? &p->in : i == 1 ? &p->out : &p->err;
    stdio[i].flags = UV_IGNORE;
    p->done[i] = 1;
    if (mode[i] == IO_PIPE) {
      uv_pipe_init(&loop->uv, pipe, 0);
      aio__io_opened(&p->io, (uv_handle_t *)pipe);
      p->piped[i] = 1;
      p->done[i] = 0;
      stdio[i].flags = (uv_stdio_flags)(UV_CREATE_PIPE |
                       (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE));
      stdio[i].data.stream = (uv_stream_t *)pipe;
    }
    else if (mode[i] == IO_INHERIT) {
      stdio[i].flags = UV_INHERIT_FD;
      stdio[i].data.fd = i;
    }
  }
  o.exit_cb = exit_cb;
  o.file = args[0];
  o.args = args;
  o.env = env;
  o.stdio = stdio;
  o.stdio_count = 3;
  o.flags = UV_PROCESS_DETACHED;
  rc = uv_spawn(&loop->uv, &p->proc, &o);
  aio__io_opened(&p->io, (uv_handle_t *)&p->proc);
  p->spawned = 1;
  if (rc < 0) {
    p->exited = 1;                     /* there is no child */
    aio__io_close(&p->io);
    return spawn_failed(L, rc, args[0], o.cwd);
  }
  p->pid = p->proc.pid;
  for (i = 1; i < 3; i++) {
    if (p->piped[i]) {
      uv_stream_t *s = (uv_stream_t *)(i == 1 ? &p->out : &p->err);
      if (uv_read_start(s, out_alloc, out_read) < 0) p->done[i] = 1;
    }
  }
  if (p->piped[0]) {
    InputReq *q = (InputReq *)aio__req_new(L, loop, sizeof(InputReq), 1);
    uv_buf_t buf = uv_buf_init((char *)input, (unsigned)inlen);
    lua_pushvalue(L, inidx);
    lua_setiuservalue(L, -2, 1);
    if (inlen == 0 ||
        uv_write(&q->w, (uv_stream_t *)&p->in, &buf, 1, input_cb) < 0) {
      p->done[0] = 1;
      aio__io_close_handle(&p->io, (uv_handle_t *)&p->in);
    }
    else aio__req_start(L, &q->r, -1);
  }
  lua_copy(L, refidx, 3);              /* (argv, opts, ref) from here */
  lua_settop(L, 3);
  t->wake = AIO_WAKE_NONE;
  return run_step(L, p, t, PH_RUN);
}


static const luaL_Reg proc_meta[] = {
  {"__gc", aio__io__gc},
  {NULL, NULL}
};


static const AioClass proc_class = {PROCESS_MT, NULL, proc_meta};


static const luaL_Reg process_funcs[] = {
  {"run", l_run},
  {NULL, NULL}
};


/* core.process = {run}. */
static void open_process (lua_State *L) {
  int core = lua_gettop(L);
  aio__ignore_sigpipe();     /* a child may exit before reading its input */
  aio__class_open(L, core - 1, &proc_class);
  lua_pop(L, 1);
  lua_newtable(L);
  aio__setfuncs(L, core - 1, process_funcs);
  lua_setfield(L, core, "process");
}


const AioModule aio__module_process = {"process", open_process, NULL};
