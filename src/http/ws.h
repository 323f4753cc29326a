/*
** ws.h
** WebSocket (RFC 6455) over a Stream: framing by wslay's event API,
** handshake, I/O, heartbeat and the close handshake by aio.
** See LICENSE
*/

#ifndef AIO_WS_H
#define AIO_WS_H

#include <wslay/wslay.h>

#include "aio.h"

#if defined(__GNUC__)
#pragma GCC visibility push(hidden)
#endif

#define WS_POOL_MAX 32       /* idle wslay contexts kept per role */

/*
** The wslay contexts of a Lua state, in a userdata kept in the registry.
** A wslay context holds ~9 KiB of buffers, too much to keep per idle
** connection: a connection borrows one while it has something to parse
** or send and gives it back once it is at rest (no partial frame or
** message, nothing queued, no close), so thousands of idle connections
** hold none. Every context's user data is the pool, and `cur` says which
** connection the callbacks work for (wslay calls them synchronously).
*/
typedef struct WsPool {
  struct WebSocket *cur;        /* the connection wslay works for now */
  wslay_event_context_ptr idle[2][WS_POOL_MAX];  /* [client, server] */
  int nidle[2];
  unsigned char rnd[256];       /* random bytes for masking keys */
  unsigned rndpos;              /* next unused byte of rnd */
} WsPool;

/* WebSocket.flags */
#define WS_SERVER     0x0001    /* the server end: frames go unmasked */
#define WS_IN_MSG     0x0002    /* a fragmented message is arriving */
#define WS_SENT       0x0004    /* our close frame was sent */
#define WS_RCVD       0x0008    /* the peer's close frame arrived */
#define WS_FINISHING  0x0010    /* closing the TCP connection */
#define WS_ENDED      0x0020    /* the stream is closed */
#define WS_PAUSED     0x0040    /* reading stopped: messages not taken */
#define WS_PING_OUT   0x0080    /* a heartbeat ping awaits its pong */
#define WS_FDATA      0x0100    /* the frame being parsed carries data */

/*
** A WebSocket connection: an I/O object (aio.WebSocket) without libuv
** handles of its own over the Stream in user value 1, which it reads
** itself (Stream.upper) from its creation to its end, so that pings are
** answered and the close is seen even while no task receives. Received
** messages wait in `ready` as records (kind byte, size_t length, bytes),
** the last one possibly still arriving (at `cur`); reading pauses while
** more than WS_READY_HIGH bytes of messages are not taken. Tasks wait in
** the stream's `readers` list (the stream wakes them when it is closed).
** The timer is the heartbeat while open, then the linger of the TCP
** close; it rides the loop's deadline queue. Messages sent are framed
** into `out` and written once per round of tasks (Deferred), so a task
** sending several, or a broadcast, costs one write per connection.
*/
typedef struct WebSocket {
  IoHandle io;
  StreamUpper up;               /* Stream.upper of s */
  Stream *s;                    /* the stream (user value 1 keeps it) */
  WsPool *pool;
  wslay_event_context_ptr ctx;  /* kept while not at rest, else NULL */
  Buf ready;                    /* received messages (see above) */
  size_t cur;                   /* offset of the arriving one, or SIZE_MAX */
  size_t nready;                /* complete messages in `ready` */
  uint64_t fed, framed;         /* bytes given to ctx / in whole frames */
  uint64_t frame;               /* size of the frame being parsed */
  uint64_t msglen;              /* bytes of the arriving message so far */
  uint64_t max_message;         /* longest message accepted (1009 beyond) */
  uint64_t last_rx;             /* loop time of the last input */
  Buf out;                      /* frames not sent yet */
  Deferred flush;               /* sends `out` before the loop polls */
  TimerCb timer;                /* heartbeat, then linger */
  double heartbeat;             /* seconds between pings; 0: none */
  double close_timeout;         /* seconds close() waits for the peer */
  char *reason;                 /* close reason (malloc'd), or NULL */
  uint16_t rcode;               /* code of the peer's close frame */
  uint16_t scode;               /* code of our close frame */
  uint16_t fail;                /* code we failed the connection with */
  uint16_t flags;               /* WS_* */
} WebSocket;

#define WS_RECORD (1 + sizeof(size_t))  /* head of a record in `ready` */
#define WS_NONE SIZE_MAX        /* `cur` when no message is arriving */
#define WS_READY_HIGH 65536     /* pause reading past this much taken */
#define WS_WRITE_HIGH 65536     /* send waits past this much queued */

/* ws_conn.c: the connection (no Lua) */
WsPool *aio__ws_pool (lua_State *L);
void aio__ws_start (WebSocket *ws);
int aio__ws_frame (WebSocket *ws, uint8_t opcode, const char *p, size_t n);
void aio__ws_frame_close (WebSocket *ws, uint16_t code, const char *reason,
                          size_t n);
void aio__ws_flush (WebSocket *ws);
void aio__ws_drop_partial (WebSocket *ws);
void aio__ws_finish (WebSocket *ws);
void aio__ws_end (WebSocket *ws);
void aio__ws_reset (lua_State *L);

/* ws_handshake.c */
void aio__open_ws_handshake (lua_State *L, int wsidx);
int aio__utf8_valid (const char *p, size_t n);

#if defined(__GNUC__)
#pragma GCC visibility pop
#endif

#endif
