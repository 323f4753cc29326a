/*
** http.h
** Types shared by the HTTP client's C files: the engine of a session (one
** curl multi handle), its sockets, its admission hosts and its requests.
** See LICENSE
*/

/*
** Include <curl/curl.h> and "aio.h" before this file.
**
** The shape (curl's docs/examples/multi-uv.c): each HttpMulti owns one
** CURLM (so its connection pool and DNS cache are the session's), a uv_poll
** per socket curl asks us to watch, and one deadline in the loop's timer
** heap for curl's timeout. libuv and curl callbacks never run Lua: they
** call curl_multi_socket_action, drain curl_multi_info_read and wake the
** tasks waiting on finished requests. Requests past the session's limits
** wait in a FIFO list and are admitted (added to curl) as slots free up.
*/

#ifndef AIO_HTTP_H
#define AIO_HTTP_H

#define HTTP_ENGINE_MT "aio.HttpEngine"
#define HTTP_REQUEST_MT "aio.HttpRequest"

#define HTTP_SPARE 64             /* reset easy handles kept per engine */
#define HTTP_BATCH 256            /* transfers connecting at once, and handed
                                  ** to curl per loop turn, at most */
#define HTTP_PACE_NS 20000000u    /* or one more batch after this many ns */
#define HTTP_POOL_CAP 1024        /* transfers past this many at once use a
                                  ** connection that is not kept: curl 7.88
                                  ** scans its whole pool as each transfer
                                  ** that keeps one ends */
#define HTTP_HIGH_WATER (256 * 1024)  /* streamed bytes buffered at most
                                      ** before the transfer is paused */
#define HTTP_CHUNK AIO_READ_SIZE  /* decoded bytes per chunk of a streamed
                                  ** compressed body, at most (inflated
                                  ** into the loop's scratch buffer) */


/* A host ("scheme://host:port") as the admission limits count it. */
typedef struct HttpHost {
  struct HttpHost *next;     /* chain in the engine's host table */
  uint32_t hash;
  uint32_t active;           /* its admitted requests */
  uint32_t conns;            /* sockets open for its connections */
  uint32_t refs;             /* requests and sockets holding it */
  char key[];                /* NUL-terminated */
} HttpHost;


/*
** A uv_poll for one socket of curl's. A poll may only be closed while its
** descriptor is still the socket it was made for: libuv removes the
** descriptor from epoll when the handle stops.
**
** Sockets curl opens through our open-socket callback (connections) are
** "owned". When curl stops watching one that carried a request (an idle
** pooled connection), its poll is only muted: unreferenced and left as it
** is, stopped at its next event, so a connection reused at once costs no
** epoll changes. It lives until our close-socket callback; because curl
** 7.88 closes some sockets without that callback, every muted poll is
** checked right after the curl call that muted it (its socket's inode):
** a poll whose socket is gone is closed before anything else can reuse
** the descriptor. Sockets that never carried a request (still connecting)
** and those we did not open (the resolver's socketpair) have their poll
** closed as soon as curl stops watching them, while they are still open.
*/
typedef struct HttpPoll {
  Poller p;                  /* p.want: what curl wants watched; 0: muted */
  struct HttpMulti *m;
  struct HttpHost *host;     /* the host of its connection (owned only) */
  struct HttpRequest *req;   /* the request curl last watched it for (its
                             ** `poll` points back), or NULL */
  unsigned long ino;         /* inode of its socket (owned only) */
  uint8_t owned;             /* opened by our open-socket callback */
  uint8_t used;              /* curl has watched it for reading */
  uint8_t checking;          /* in the engine's `check` list */
} HttpPoll;


/*
** The engine of a session, in a userdata of class HTTP_ENGINE_MT with
** two user values: the Response metatable and its headers' metatable. It
** is a Closable of the run it was made in, whose end closes it.
*/
typedef struct HttpMulti {
  CURLM *cm;                 /* NULL once closed */
  CURLSH *share;             /* the cookie jar, or NULL */
  Loop *loop;
  Closable run;              /* in the run's closables while open */
  TimerCb timer;             /* curl's timeout, in the loop's heap */
  uint32_t max_total;        /* admitted requests at most (0: no limit) */
  uint32_t max_host;         /* admitted requests per host (0: no limit) */
  uint32_t active;           /* requests admitted (added to curl) */
  uint32_t nwaiting;         /* requests in `waiting` */
  uint32_t neasy;            /* easy handles alive (spares included) */
  uint32_t nspare;
  uint32_t nhosts, nhcap;    /* host table: entries, buckets (power of 2) */
  uint32_t npcap;            /* size of `polls` */
  uint32_t npolls;           /* HttpPoll alive */
  int closing;               /* close in progress: admit nothing */
  Link waiting;              /* HttpRequest.link: waiting, FIFO */
  Link admitted;             /* HttpRequest.link: in curl */
  Link deferred;             /* HttpRequest.link: admitted, handed to curl
                             ** as those connecting get connected, so that
                             ** connecting overlaps sending requests */
  TimerCb pace;              /* hands a batch of `deferred` over anyway */
  uint32_t nconnecting;      /* transfers in curl before their request */
  uint32_t nturn;            /* transfers handed to curl this loop turn */
  uint64_t turn;             /* that turn (loop->now at its poll) */
  HttpHost **hosts;
  HttpPoll **polls;          /* by descriptor */
  curl_socket_t *check;      /* sockets muted by the current curl call */
  uint32_t ncheck, checkcap;
  CURL *spare[HTTP_SPARE];   /* reset easy handles for reuse */
} HttpMulti;


typedef enum HttpState {
  HTTP_NEW,                  /* being set up */
  HTTP_QUEUED,               /* waiting for admission */
  HTTP_ACTIVE,               /* in curl */
  HTTP_DONE                  /* finished, failed or aborted */
} HttpState;

/* Why a request ended other than by curl's own outcome (HttpRequest.fail) */
typedef enum HttpFail {
  HTTP_F_NONE,
  HTTP_F_TOTAL,              /* the total timeout expired */
  HTTP_F_READ,               /* the read timeout expired */
  HTTP_F_CLOSED,             /* the session was closed */
  HTTP_F_BODY,               /* the body exceeded max_body */
  HTTP_F_ABORTED,            /* cancelled, or closed by its owner */
  HTTP_F_NOMEM,              /* out of memory in a callback */
  HTTP_F_CODING              /* a streamed body cannot be decoded (errbuf) */
} HttpFail;

/* How the body of a streamed response is decoded (by us, not curl: curl
** would inflate a whole read at once into its pause buffer). */
typedef enum HttpCoding {
  HTTP_C_NONE,               /* as received */
  HTTP_C_GZIP,               /* gzip (or zlib: detected) */
  HTTP_C_DEFLATE,            /* zlib, or raw deflate as some servers send */
  HTTP_C_END                 /* its compressed stream ended */
} HttpCoding;


/* Options of a request, read from its spec table (whose strings the
** request keeps alive) and given to curl when the request is admitted. */
typedef struct HttpOpts {
  const char *ca_file, *user, *password, *proxy;   /* or NULL */
  long max_redirects;
  long version;              /* CURL_HTTP_VERSION_* */
  uint8_t follow, verify, decompress;
} HttpOpts;


/*
** One request, in a userdata of class HTTP_REQUEST_MT with user
** values: 1 the engine userdata, 2 the request body (a string, kept while
** curl reads it), 3 the URL, 4 the method, 5 the task waiting on it, 6 the
** spec table. Its
** raw pointer is in the engine's lists and in curl (CURLOPT_PRIVATE) only
** while it is QUEUED or ACTIVE; its __gc ends the transfer, so a streamed
** response dropped without close() gives its connection back.
*/
typedef struct HttpRequest {
  Link link;                 /* in m->waiting or m->admitted */
  HttpMulti *m;              /* its engine */
  CURL *easy;                /* set up at admission; NULL once given back */
  const char *method;        /* user value 4 */
  HttpOpts opt;
  Task *task;                /* the task waiting on it, or NULL */
  HttpHost *host;            /* its admission host; NULL once released */
  struct curl_slist *headers;
  CURLU *url;                /* the parsed URL curl reads */
  HttpPoll *poll;            /* the poll of its socket (see HttpPoll.req) */
  Buf in;                    /* body bytes received and not taken yet
                             ** (compressed ones if `coding`) */
  struct z_stream_s *z;      /* the inflater of a decoded stream, or NULL */
  const char *zmsg;          /* why it cannot be decoded (static), or NULL */
  curl_off_t decoded;        /* decoded bytes handed out (`coding`) */
  Buf head;                  /* header lines of the latest response */
  uint8_t hdone;             /* its header block has ended */
  curl_off_t received;       /* body bytes received in all */
  curl_off_t max_body;       /* -1: no limit */
  const char *body;          /* request body (user value 2) */
  size_t body_len, body_off;
  TimerCb total;             /* total deadline */
  TimerCb idle;              /* read deadline: longest silence */
  uint64_t read_ns;          /* read timeout (0: none) */
  uint64_t last_ns;          /* last sign of life from the peer */
  double secs[3];            /* total, connect, read timeouts (messages) */
  CURLcode result;           /* curl's outcome once DONE */
  int oserr;                 /* errno when no socket could be opened
                             ** (EMFILE...), or 0 */
  uint8_t state;             /* HttpState */
  uint8_t fail;              /* HttpFail */
  uint8_t stream;            /* hand the response over at its headers */
  uint8_t ready;             /* the final headers are in (stream) */
  uint8_t paused;            /* our write callback paused it */
  uint8_t sent;              /* a request went out on a connection */
  uint8_t follow;            /* curl follows redirects */
  uint8_t closed;            /* closed by its owner (response:close) */
  uint8_t deferred;          /* admitted but not in curl yet */
  uint8_t connecting;        /* in curl, its request not sent yet */
  uint8_t fresh_ok;          /* a new connection may be forced (not h2,
                             ** no proxy) when none of its host is idle */
  uint8_t decode;            /* streamed and decompressed: we inflate */
  uint8_t coding;            /* HttpCoding of the final response */
  char errbuf[CURL_ERROR_SIZE];
} HttpRequest;


/* client_multi.c */
HttpHost *aio__http_host (HttpMulti *m, const char *key);
void aio__http_submit (HttpRequest *r);
void aio__http_end (HttpRequest *r, int fail);
CURL *aio__http_easy_get (HttpMulti *m);
void aio__http_easy_put (HttpMulti *m, CURL *easy);
void aio__http_socket_opts (HttpRequest *r);
void aio__http_checked (HttpMulti *m);
void aio__http_check_open (lua_State *L, HttpMulti *m, int urlidx,
                           int methidx);

/* client_request.c */
int aio__http_setup (HttpRequest *r);
int aio__http_request (lua_State *L);
void aio__http_open_request (lua_State *L, int loopidx);

/* client_response.c */
void aio__http_push_response (lua_State *L, HttpRequest *r, int ridx);
void aio__http_push_error (lua_State *L, HttpRequest *r, int ridx);
int aio__http_closed (lua_State *L, const char *what, const char *method,
                      const char *url);
void aio__http_open_response (lua_State *L, int loopidx);

#endif
