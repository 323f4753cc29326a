/*
** client_multi.c
** The engine of an HTTP session: one curl multi handle driven by the aio
** loop (a uv_poll per socket, curl's timeout in the loop's timer heap),
** completions drained with curl_multi_info_read, and FIFO admission under
** the session's connection limits. See LICENSE
*/

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>

#include "aio.h"
#include "http.h"


/* ---------------------------------------------------------------------
** Sockets: a uv_poll per socket curl watches
** ------------------------------------------------------------------- */

static void on_poll (Poller *pp, int status, int events);
static void host_unref (HttpMulti *m, HttpHost *e);
static void pace (HttpMulti *m);
static void admit (HttpMulti *m);

static const IoType poll_type = {"socket", aio__poller_close, NULL, NULL};


/* Makes sure m->polls can be indexed by `fd`. Returns 0 on failure. */
static int polls_reserve (HttpMulti *m, curl_socket_t fd) {
  uint32_t cap = m->npcap ? m->npcap : 64, i;
  HttpPoll **p;
  if (fd < 0) return 0;
  if ((uint32_t)fd < m->npcap) return 1;
  while (cap <= (uint32_t)fd) cap *= 2;
  p = realloc(m->polls, cap * sizeof *p);
  if (p == NULL) return 0;
  for (i = m->npcap; i < cap; i++) p[i] = NULL;
  m->polls = p;
  m->npcap = cap;
  return 1;
}


static HttpPoll *poll_of (HttpMulti *m, curl_socket_t fd) {
  return (fd >= 0 && (uint32_t)fd < m->npcap) ? m->polls[fd] : NULL;
}


/*
** Sets what curl wants watched on a poll. Muting (want == 0) changes no
** epoll state (see aio__poller_watch). Polls curl wants count as open
** handles (a muted one, an idle pooled connection, is not one).
*/
static void poll_want (HttpPoll *p, int want) {
  if (want & UV_READABLE) p->used = 1;
  aio__poller_watch(&p->p, want);
}


/* Links poll `p` and the request `r` curl watches its socket for (NULL:
** unlinks it), unlinking what either was linked to. */
static void poll_link (HttpPoll *p, HttpRequest *r) {
  if (p->req == r) return;
  if (p->req != NULL && p->req->poll == p) p->req->poll = NULL;
  p->req = r;
  if (r != NULL) {
    if (r->poll != NULL && r->poll->req == r) r->poll->req = NULL;
    r->poll = p;
  }
}


/* Stops and closes a poll (its memory goes in the close callback). Only
** while `fd` is still the socket it was made for: libuv forgets the
** descriptor in epoll when the handle closes. */
static void poll_close (HttpPoll *p) {
  HttpMulti *m = p->m;
  poll_link(p, NULL);
  m->polls[p->p.fd] = NULL;
  m->npolls--;
  if (p->host != NULL) {
    p->host->conns--;
    host_unref(m, p->host);
    p->host = NULL;
  }
  aio__io_close(&p->p.io);
}


/* A new poll for `fd` (replacing a stale one), of a connection to `host`
** if owned. NULL on failure. */
static HttpPoll *poll_new (HttpMulti *m, curl_socket_t fd, HttpHost *host,
                           int owned) {
  HttpPoll *p;
  int err;
  if (!polls_reserve(m, fd)) return NULL;
  if (m->polls[fd] != NULL) poll_close(m->polls[fd]);
  p = (HttpPoll *)aio__poller_new(m->loop, fd, sizeof *p, &poll_type, &err);
  if (p == NULL) return NULL;
  p->p.on_event = on_poll;
  p->m = m;
  p->owned = (uint8_t)owned;
  if (owned) {
    struct stat st;
    p->ino = fstat(fd, &st) == 0 ? (unsigned long)st.st_ino : 0;
  }
  if (host != NULL) {
    p->host = host;
    host->refs++;
    host->conns++;
  }
  m->polls[fd] = p;
  m->npolls++;
  return p;
}


/* CURLOPT_OPENSOCKETFUNCTION (data: the request): a socket for a
** connection, close-on-exec, with its poll (muted until curl wants it). */
static curl_socket_t on_open_socket (void *ud, curlsocktype purpose,
                                     struct curl_sockaddr *a) {
  HttpRequest *r = (HttpRequest *)ud;
  HttpMulti *m = r->m;
  curl_socket_t s;
  (void)purpose;
  s = socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
  if (s == CURL_SOCKET_BAD) {       /* curl would only say "Couldn't
                                    ** connect": keep why (EMFILE...) */
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
        errno == ENOMEM)
      r->oserr = errno;
    return s;
  }
  if (m->cm == NULL || poll_new(m, s, r->host, 1) == NULL) {
    close(s);
    r->oserr = errno = ENOMEM;
    return CURL_SOCKET_BAD;
  }
  r->oserr = 0;
  return s;
}


/* CURLOPT_CLOSESOCKETFUNCTION (data: the engine): closes the poll while
** the descriptor is still this socket, then the socket. */
static int on_close_socket (void *ud, curl_socket_t s) {
  HttpPoll *p = poll_of((HttpMulti *)ud, s);
  if (p != NULL) poll_close(p);
  return close(s);
}


/* Sets the socket callbacks of the easy handle of request `r`. */
void aio__http_socket_opts (HttpRequest *r) {
  curl_easy_setopt(r->easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket);
  curl_easy_setopt(r->easy, CURLOPT_OPENSOCKETDATA, r);
  curl_easy_setopt(r->easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket);
  curl_easy_setopt(r->easy, CURLOPT_CLOSESOCKETDATA, r->m);
}


/* Mutes a poll curl stopped watching, to be checked once curl returns; a
** poll that cannot be tracked is closed now (its socket is still open). */
static void poll_mute (HttpMulti *m, HttpPoll *p) {
  if (!p->checking) {
    if (m->ncheck == m->checkcap) {
      uint32_t cap = m->checkcap ? m->checkcap * 2 : 16;
      curl_socket_t *c = (curl_socket_t *)realloc(m->check, cap * sizeof *c);
      if (c == NULL) {
        poll_close(p);
        return;
      }
      m->check = c;
      m->checkcap = cap;
    }
    m->check[m->ncheck++] = p->p.fd;
    p->checking = 1;
  }
  poll_want(p, 0);
}


/*
** After a curl call: closes the polls it muted whose socket curl closed
** without our close-socket callback (the descriptor is closed, or is now
** another socket). Runs before anything can open a socket in this thread.
*/
void aio__http_checked (HttpMulti *m) {
  uint32_t i, n = m->ncheck;
  m->ncheck = 0;
  for (i = 0; i < n; i++) {
    HttpPoll *p = poll_of(m, m->check[i]);
    struct stat st;
    if (p == NULL || !p->checking) continue;  /* closed or replaced */
    p->checking = 0;
    if (p->p.want == 0 &&
        (fstat(p->p.fd, &st) != 0 || (unsigned long)st.st_ino != p->ino))
      poll_close(p);
  }
}


/* CURLMOPT_SOCKETFUNCTION: what curl wants watched on socket `s`, for
** transfer `easy`. */
static int on_socket (CURL *easy, curl_socket_t s, int what, void *ud,
                      void *sockp) {
  HttpMulti *m = (HttpMulti *)ud;
  HttpPoll *p = poll_of(m, s);
  HttpRequest *r = NULL;
  (void)sockp;
  if (what == CURL_POLL_REMOVE) {
    if (p != NULL) {
      poll_link(p, NULL);
      if (p->owned && p->used) poll_mute(m, p);
      else poll_close(p);
    }
    return 0;
  }
  if (p == NULL && (p = poll_new(m, s, NULL, 0)) == NULL) return -1;
  curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&r);
  if (r != NULL && r->state == HTTP_ACTIVE) poll_link(p, r);
  poll_want(p, ((what & CURL_POLL_IN) ? UV_READABLE : 0) |
               ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0));
  return 0;
}


/* ---------------------------------------------------------------------
** Driving curl: socket events, its timeout, completions
** ------------------------------------------------------------------- */

/* Takes the finished transfers from curl and ends their requests (which
** wakes their tasks and admits waiting requests). */
static void drain (HttpMulti *m) {
  CURLMsg *msg;
  int left;
  while (m->cm != NULL && (msg = curl_multi_info_read(m->cm, &left))) {
    HttpRequest *r = NULL;
    if (msg->msg != CURLMSG_DONE) continue;
    curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
    if (r == NULL) continue;
    r->result = msg->data.result;
    aio__http_end(r, HTTP_F_NONE);
  }
}


/*
** A socket curl watches is ready (a muted one never gets here). An error
** on it (libuv's poll saw POLLERR, and stopped) is not passed on as
** CURL_CSELECT_ERR, which fails the transfer at once: curl is told the
** socket is ready for what it wanted, as poll() users tell it, and its
** read or write finds out what happened (a reset of a reused connection
** is then retried on a fresh one).
*/
static void on_poll (Poller *pp, int status, int events) {
  HttpPoll *p = (HttpPoll *)pp;
  HttpMulti *m = p->m;
  curl_socket_t fd = pp->fd;
  int flags = 0, running;
  if (m->cm == NULL) {
    aio__poller_watch(pp, 0);
    return;
  }
  if (status < 0) events = pp->want;
  /* bytes arriving are a sign of life, header lines or not (curl hands
  ** only whole ones over) */
  if ((events & UV_READABLE) && p->req != NULL && p->req->read_ns > 0)
    p->req->last_ns = aio__now(m->loop);
  if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
  if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
  curl_multi_socket_action(m->cm, fd, flags, &running);
  aio__http_checked(m);
  /* still wanted as it was (curl did not say otherwise): watch again */
  if (status < 0 && poll_of(m, fd) == p && p->p.want != 0)
    aio__poller_watch(&p->p, p->p.want);
  drain(m);   /* p may be closing now: not used past this point */
  pace(m);
}


/* curl's deadline passed (called from the loop's timer heap). */
static void on_deadline (Loop *loop, TimerCb *tc) {
  HttpMulti *m = aio_container_of(tc, HttpMulti, timer);
  int running;
  (void)loop;
  if (m->cm == NULL) return;
  curl_multi_socket_action(m->cm, CURL_SOCKET_TIMEOUT, 0, &running);
  aio__http_checked(m);
  drain(m);
  pace(m);
}


/* CURLMOPT_TIMERFUNCTION: arms (or with -1 disarms) curl's deadline. The
** heap fires it from the loop, never from inside this call. */
static int on_timer (CURLM *cm, long ms, void *ud) {
  HttpMulti *m = (HttpMulti *)ud;
  (void)cm;
  if (ms < 0) aio__timer_cancel(m->loop, &m->timer.timer);
  else aio__timer_arm(m->loop, &m->timer.timer,
                      aio__now(m->loop) + (uint64_t)ms * 1000000u);
  return 0;
}


/* ---------------------------------------------------------------------
** Admission: hosts, limits, the FIFO of waiting requests
** ------------------------------------------------------------------- */

static uint32_t hash_key (const char *s) {
  uint32_t h = 2166136261u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
  return h;
}


static int hosts_grow (HttpMulti *m) {
  uint32_t cap = m->nhcap ? m->nhcap * 2 : 16, i;
  HttpHost **t = (HttpHost **)calloc(cap, sizeof *t);
  if (t == NULL) return m->nhcap > 0;   /* keep the old table if any */
  for (i = 0; i < m->nhcap; i++) {
    HttpHost *e = m->hosts[i], *next;
    for (; e != NULL; e = next) {
      next = e->next;
      e->next = t[e->hash & (cap - 1)];
      t[e->hash & (cap - 1)] = e;
    }
  }
  free(m->hosts);
  m->hosts = t;
  m->nhcap = cap;
  return 1;
}


/* The host entry for `key`, with a reference taken; NULL if out of
** memory. */
HttpHost *aio__http_host (HttpMulti *m, const char *key) {
  uint32_t h = hash_key(key);
  size_t len = strlen(key);
  HttpHost *e;
  if ((m->nhosts >= m->nhcap) && !hosts_grow(m)) return NULL;
  for (e = m->hosts[h & (m->nhcap - 1)]; e != NULL; e = e->next)
    if (e->hash == h && strcmp(e->key, key) == 0) {
      e->refs++;
      return e;
    }
  e = (HttpHost *)malloc(sizeof *e + len + 1);
  if (e == NULL) return NULL;
  memcpy(e->key, key, len + 1);
  e->hash = h;
  e->active = 0;
  e->conns = 0;
  e->refs = 1;
  e->next = m->hosts[h & (m->nhcap - 1)];
  m->hosts[h & (m->nhcap - 1)] = e;
  m->nhosts++;
  return e;
}


static void host_unref (HttpMulti *m, HttpHost *e) {
  HttpHost **pp;
  if (--e->refs > 0) return;
  for (pp = &m->hosts[e->hash & (m->nhcap - 1)]; *pp != e; pp = &(*pp)->next)
    ;
  *pp = e->next;
  m->nhosts--;
  free(e);
}


/* Will nobody wait for request `r`'s response? Its task was cancelled
** (woken to raise, it ends the request itself when it resumes) or is
** gone. Such a request is not worth a connection. */
static int unwanted (HttpRequest *r) {
  return r->task == NULL || aio_task_done(r->task) ||
         aio__cancel_pending(r->task);
}


static int can_admit (HttpMulti *m, HttpHost *h) {
  return !m->closing &&
         (m->max_total == 0 || m->active < m->max_total) &&
         (m->max_host == 0 || h->active < m->max_host);
}


/* Ends a request with `fail`: takes it out of curl or the queue, gives its
** slot back, disarms its timers and wakes its task. Returns 1 if it held
** an admission slot. Never runs Lua nor admits anything. */
static int finish (HttpRequest *r, int fail) {
  HttpMulti *m = r->m;
  int freed = 0;
  if (fail != HTTP_F_NONE && r->fail == HTTP_F_NONE) r->fail = (uint8_t)fail;
  if (r->state == HTTP_DONE) return 0;
  if (r->state == HTTP_QUEUED) {
    link_remove(&r->link);
    m->nwaiting--;
  }
  else if (r->state == HTTP_ACTIVE) {
    link_remove(&r->link);
    if (r->connecting) {
      r->connecting = 0;
      m->nconnecting--;
    }
    if (!r->deferred && m->cm != NULL) {
      curl_multi_remove_handle(m->cm, r->easy);
      aio__http_checked(m);
    }
    r->deferred = 0;
    m->active--;
    r->host->active--;
    freed = 1;
  }
  r->state = HTTP_DONE;
  if (r->poll != NULL) poll_link(r->poll, NULL);
  aio__timer_cancel(m->loop, &r->total.timer);
  aio__timer_cancel(m->loop, &r->idle.timer);
  if (r->host != NULL) {
    host_unref(m, r->host);
    r->host = NULL;
  }
  if (r->task != NULL) aio__task_wake(m->loop, r->task, AIO_WAKE_OK);
  return freed;
}


/*
** Is there room to hand one more transfer to curl in this turn of the
** loop (between two polls)? At most HTTP_BATCH: curl connects them all in
** its next call, and each connect may cost the kernel a search for a free
** port, so more would hold the loop up.
*/
static int turn_room (HttpMulti *m) {
  if (m->turn != m->loop->now) {
    m->turn = m->loop->now;
    m->nturn = 0;
  }
  return m->nturn < HTTP_BATCH;
}


/*
** Hands an admitted request to curl. When no connection of its host can
** be idle (no more sockets than other transfers use), a new connection is
** forced: curl 7.88 would otherwise scan every connection to the host.
** Past HTTP_POOL_CAP transfers at once, the connection is not kept.
*/
static void add_now (HttpRequest *r) {
  HttpMulti *m = r->m;
  link_push(&m->admitted, &r->link);
  r->connecting = 1;
  m->nconnecting++;
  m->nturn++;
  if (r->fresh_ok && r->host->conns < r->host->active)
    curl_easy_setopt(r->easy, CURLOPT_FRESH_CONNECT, 1L);
  if (m->active > HTTP_POOL_CAP)
    curl_easy_setopt(r->easy, CURLOPT_FORBID_REUSE, 1L);
  if (curl_multi_add_handle(m->cm, r->easy) != CURLM_OK) {
    r->deferred = 1;      /* not in curl */
    r->result = CURLE_OUT_OF_MEMORY;
    finish(r, HTTP_F_NONE);
  }
}


/* Hands deferred transfers to curl, oldest first, `max` at most (and
** while fewer than HTTP_BATCH are connecting, unless `force`, and while
** this turn has room); those
** nobody waits for any more are ended instead, their slots given to
** waiting requests. */
static void add_deferred (HttpMulti *m, uint32_t max, int force) {
  int freed = 0;
  while (max > 0 && !link_empty(&m->deferred) &&
         (force || m->nconnecting < HTTP_BATCH) && turn_room(m)) {
    HttpRequest *r = aio_container_of(m->deferred.next, HttpRequest, link);
    if (unwanted(r)) {
      freed |= finish(r, HTTP_F_ABORTED);
      continue;
    }
    max--;
    link_remove(&r->link);
    r->deferred = 0;
    add_now(r);
  }
  if (freed) admit(m);
  if (!link_empty(&m->deferred) && m->pace.timer.slot == 0)
    aio__timer_arm(m->loop, &m->pace.timer, aio__now(m->loop) + HTTP_PACE_NS);
}


/* After curl ran: deferred transfers take the places of those that got
** connected (their requests went out). So connecting thousands of sockets
** alternates with sending the requests of those already connected. */
static void pace (HttpMulti *m) {
  if (!link_empty(&m->deferred) && m->cm != NULL)
    add_deferred(m, UINT32_MAX, 0);
}


/* The pacing deadline, for connections that take long to connect: one
** more batch anyway. */
static void on_pace (Loop *loop, TimerCb *tc) {
  HttpMulti *m = aio_container_of(tc, HttpMulti, pace);
  (void)loop;
  if (m->cm != NULL) add_deferred(m, HTTP_BATCH, 1);
}


/* Admits a request: sets its easy handle up, counts it against the limits
** and hands it to curl, at once unless HTTP_BATCH transfers are still
** connecting or were handed over in this loop turn. */
static void start (HttpRequest *r) {
  HttpMulti *m = r->m;
  if (!aio__http_setup(r)) {
    r->state = HTTP_NEW;      /* in no list */
    finish(r, HTTP_F_NOMEM);
    return;
  }
  r->state = HTTP_ACTIVE;
  m->active++;
  r->host->active++;
  if (link_empty(&m->deferred) && m->nconnecting < HTTP_BATCH &&
      turn_room(m))
    add_now(r);
  else {
    r->deferred = 1;
    link_push(&m->deferred, &r->link);
    if (m->pace.timer.slot == 0)
      aio__timer_arm(m->loop, &m->pace.timer, aio__now(m->loop) + HTTP_PACE_NS);
  }
}


/* Admits waiting requests, oldest first, as long as the limits allow;
** a request whose host is full lets younger ones for other hosts pass,
** and one nobody waits for any more is ended, never started. */
static void admit (HttpMulti *m) {
  Link *l = m->waiting.next;
  while (l != &m->waiting && !m->closing &&
         (m->max_total == 0 || m->active < m->max_total)) {
    HttpRequest *r = aio_container_of(l, HttpRequest, link);
    l = l->next;
    if (unwanted(r)) {
      finish(r, HTTP_F_ABORTED);
      continue;
    }
    if (m->max_host == 0 || r->host->active < m->max_host) {
      link_remove(&r->link);
      m->nwaiting--;
      start(r);
    }
  }
}


/* Starts a set-up request now if the limits allow, else queues it. */
void aio__http_submit (HttpRequest *r) {
  HttpMulti *m = r->m;
  if (can_admit(m, r->host)) start(r);
  else {
    r->state = HTTP_QUEUED;
    link_push(&m->waiting, &r->link);
    m->nwaiting++;
  }
}


/*
** Ends request `r` (see finish) and admits what its slot lets in. Safe
** from libuv callbacks, the timer heap and Lua functions; never from
** inside a curl callback.
*/
void aio__http_end (HttpRequest *r, int fail) {
  if (finish(r, fail)) admit(r->m);
}


/* ---------------------------------------------------------------------
** Easy handles: reset ones are kept for reuse
** ------------------------------------------------------------------- */

static void share_release (HttpMulti *m) {
  if (m->share != NULL && m->cm == NULL && m->neasy == 0) {
    curl_share_cleanup(m->share);
    m->share = NULL;
  }
}


/* An easy handle with default options, or NULL. */
CURL *aio__http_easy_get (HttpMulti *m) {
  CURL *e;
  if (m->nspare > 0) return m->spare[--m->nspare];
  e = curl_easy_init();
  if (e == NULL) return NULL;
  m->neasy++;
  return e;
}


static void easy_free (HttpMulti *m, CURL *easy) {
  curl_easy_setopt(easy, CURLOPT_SHARE, NULL);
  curl_easy_cleanup(easy);
  m->neasy--;
}


/* Gives back an easy handle that is not in curl's multi handle. Its
** cookie file list (the "" that turns the cookie engine on) is freed
** first: curl_easy_reset would lose it. */
void aio__http_easy_put (HttpMulti *m, CURL *easy) {
  curl_easy_setopt(easy, CURLOPT_SHARE, NULL);
  curl_easy_setopt(easy, CURLOPT_COOKIEFILE, NULL);
  if (m->cm != NULL && m->nspare < HTTP_SPARE) {
    curl_easy_reset(easy);
    m->spare[m->nspare++] = easy;
    return;
  }
  easy_free(m, easy);
  share_release(m);
}


/* ---------------------------------------------------------------------
** The engine object
** ------------------------------------------------------------------- */

/* Raises `closed` (with the URL and method at those stack indices) if the
** engine is closed (the end of its run closes it). */
void aio__http_check_open (lua_State *L, HttpMulti *m, int urlidx,
                           int methidx) {
  if (m->cm == NULL)
    aio__http_closed(L, "the session is closed", lua_tostring(L, methidx),
                     lua_tostring(L, urlidx));
}


/*
** Closes an engine: every request waiting or in flight ends with
** `closed` (their tasks wake and raise it), then curl closes its
** connections and the polls close. Idempotent; never runs Lua.
*/
static void engine_close (HttpMulti *m) {
  uint32_t i;
  if (m->cm == NULL) return;
  aio__closable_remove(&m->run);
  m->closing = 1;
  while (!link_empty(&m->waiting))
    finish(aio_container_of(m->waiting.next, HttpRequest, link),
           HTTP_F_CLOSED);
  while (!link_empty(&m->deferred))
    finish(aio_container_of(m->deferred.next, HttpRequest, link),
           HTTP_F_CLOSED);
  while (!link_empty(&m->admitted))
    finish(aio_container_of(m->admitted.next, HttpRequest, link),
           HTTP_F_CLOSED);
  while (m->nspare > 0) easy_free(m, m->spare[--m->nspare]);
  curl_multi_cleanup(m->cm);     /* closes the pooled connections */
  m->cm = NULL;
  aio__http_checked(m);
  aio__timer_cancel(m->loop, &m->timer.timer);
  aio__timer_cancel(m->loop, &m->pace.timer);
  for (i = 0; i < m->npcap; i++)
    if (m->polls[i] != NULL) poll_close(m->polls[i]);
  free(m->polls);
  m->polls = NULL;
  m->npcap = 0;
  free(m->check);
  m->check = NULL;
  m->ncheck = m->checkcap = 0;
  share_release(m);
}


/* The end of the run closes an engine left open. */
static void engine_run_close (Closable *c) {
  engine_close(aio_container_of(c, HttpMulti, run));
}


/*
** core.http_engine(opts, response_mt, headers_mt) -> engine. opts:
** max_connections, max_per_host (0: no limit), cookies (boolean). The
** metatables are given to the Responses and their headers tables. Needs a
** running loop: the engine belongs to this run.
*/
static int l_engine (lua_State *L) {
  static int curl_ready = 0;   /* libcurl (and OpenSSL) set up, on demand */
  Loop *loop = aio_upvalue_loop(L);
  HttpMulti *m;
  lua_Integer total, host;
  int cookies;
  luaL_checktype(L, 1, LUA_TTABLE);
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  aio__check_running(L, loop, "aio.http");
  if (!curl_ready) {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      return aio__error(L, "io", "cannot initialise libcurl");
    curl_ready = 1;
  }
  lua_getfield(L, 1, "max_connections");
  lua_getfield(L, 1, "max_per_host");
  lua_getfield(L, 1, "cookies");
  total = luaL_optinteger(L, -3, 100);
  host = luaL_optinteger(L, -2, 0);
  cookies = lua_toboolean(L, -1);
  lua_pop(L, 3);
  luaL_argcheck(L, total >= 0 && total <= UINT32_MAX, 1,
                "max_connections must be a count (0: no limit)");
  luaL_argcheck(L, host >= 0 && host <= UINT32_MAX, 1,
                "max_per_host must be a count (0: no limit)");
  m = (HttpMulti *)lua_newuserdatauv(L, sizeof *m, 2);
  memset(m, 0, sizeof *m);
  link_init(&m->waiting);
  link_init(&m->admitted);
  link_init(&m->deferred);
  m->loop = loop;
  link_init(&m->run.link);
  m->max_total = (uint32_t)total;
  m->max_host = (uint32_t)host;
  m->timer.timer.kind = AIO_TIMER_CALLBACK;
  m->timer.fire = on_deadline;
  m->pace.timer.kind = AIO_TIMER_CALLBACK;
  m->pace.fire = on_pace;
  luaL_setmetatable(L, HTTP_ENGINE_MT);
  lua_pushvalue(L, 2);
  lua_setiuservalue(L, -2, 1);
  lua_pushvalue(L, 3);
  lua_setiuservalue(L, -2, 2);
  if (cookies) {
    m->share = curl_share_init();
    if (m->share == NULL ||
        curl_share_setopt(m->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_COOKIE))
      return aio__error(L, "io", "cannot create a cookie jar");
  }
  m->cm = curl_multi_init();
  if (m->cm == NULL)
    return aio__error(L, "io", "cannot create a curl multi handle");
  curl_multi_setopt(m->cm, CURLMOPT_SOCKETFUNCTION, on_socket);
  curl_multi_setopt(m->cm, CURLMOPT_SOCKETDATA, m);
  curl_multi_setopt(m->cm, CURLMOPT_TIMERFUNCTION, on_timer);
  curl_multi_setopt(m->cm, CURLMOPT_TIMERDATA, m);
  /* connections kept at most (in use or idle): curl 7.88 scans them all
  ** to close the oldest whenever the cache is over this size */
  curl_multi_setopt(m->cm, CURLMOPT_MAXCONNECTS,
                    m->max_total > 0 ? (long)m->max_total : 1L << 20);
  aio__closable_add(loop, &m->run, engine_run_close);
  return 1;
}


/* engine:close(): see engine_close. */
static int engine_close_l (lua_State *L) {
  engine_close((HttpMulti *)aio__checkself(L));
  return 0;
}


static int engine_closed (lua_State *L) {
  HttpMulti *m = (HttpMulti *)aio__checkself(L);
  lua_pushboolean(L, m->cm == NULL);
  return 1;
}


/* engine:stats() -> {active, waiting, easy, spare, polls, watched,
** hosts}: for tests and debugging. */
static int engine_stats (lua_State *L) {
  HttpMulti *m = (HttpMulti *)aio__checkself(L);
  uint32_t i, watched = 0;
  for (i = 0; i < m->npcap; i++)
    if (m->polls[i] != NULL && m->polls[i]->p.want != 0) watched++;
  lua_createtable(L, 0, 7);
  lua_pushinteger(L, m->active); lua_setfield(L, -2, "active");
  lua_pushinteger(L, m->nwaiting); lua_setfield(L, -2, "waiting");
  lua_pushinteger(L, m->neasy); lua_setfield(L, -2, "easy");
  lua_pushinteger(L, m->nspare); lua_setfield(L, -2, "spare");
  lua_pushinteger(L, m->npolls); lua_setfield(L, -2, "polls");
  lua_pushinteger(L, watched); lua_setfield(L, -2, "watched");
  lua_pushinteger(L, m->nhosts); lua_setfield(L, -2, "hosts");
  return 1;
}


static int engine__gc (lua_State *L) {
  HttpMulti *m = (HttpMulti *)aio__checkself(L);
  engine_close(m);
  if (m->nhosts == 0) {
    free(m->hosts);
    m->hosts = NULL;
  }
  return 0;
}


static const luaL_Reg engine_methods[] = {
  {"request", aio__http_request},
  {"close", engine_close_l},
  {"closed", engine_closed},
  {"stats", engine_stats},
  {NULL, NULL}
};


static const luaL_Reg engine_meta[] = {
  {"__gc", engine__gc},
  {NULL, NULL}
};


static const AioClass engine_class = {HTTP_ENGINE_MT, engine_methods,
                                      engine_meta};


/* Registers the engine and request classes and core.http_* functions into
** the core table on top (the loop userdata is just below it). */
static void open_http (lua_State *L) {
  int core = lua_gettop(L), loopidx = core - 1;
  aio__class_open(L, loopidx, &engine_class);
  lua_pop(L, 1);
  aio__http_open_request(L, loopidx);
  lua_pushvalue(L, loopidx);
  lua_pushcclosure(L, l_engine, 1);
  lua_setfield(L, core, "http_engine");
  aio__http_open_response(L, loopidx);
}


const AioModule aio__module_http = {"http", open_http, NULL};
