---@meta aio

-- LuaLS (lua-language-server) definitions for aio: completion, hover text
-- and type checking for code that does `local aio = require "aio"`.
-- Nothing here runs; the implementation is lua/aio/ and src/.
--
-- Conventions used below:
-- * `---@async` marks a function that may suspend the calling task (the
--   reference's "(suspends)"); such calls must happen inside a task, i.e.
--   under aio.run or aio.spawn. aio has no async/await colouring: any
--   function may call them. With LuaLS's `hint.await` the editor shows each
--   of these calls as a suspension point.
-- * Objects that can be `local x <close> = ...` have a `__close` method.
-- * Errors are raised, never returned: every failure is an aio.Error (or
--   the user's own error value passing through).

------------------------------------------------------------------------
-- String enumerations
------------------------------------------------------------------------

---@alias aio.ErrorKind
---| "cancelled"   # the task was cancelled (also what a deadline raises inside aio.timeout)
---| "timeout"     # a deadline ran out: aio.timeout, HTTP, TCP, process
---| "closed"      # the queue, session, stream, file or response was closed
---| "queue_full"  # queue:put_nowait on a full queue
---| "queue_empty" # queue:get_nowait on an empty queue
---| "usage"       # misuse: suspending outside a task, releasing an unlocked lock, ...
---| "http"        # response:raise_for_status() on a 4xx/5xx status
---| "connect"     # a TCP connection could not be made
---| "dns"         # a host name did not resolve
---| "tls"         # TLS handshake or certificate failure
---| "io"          # a system call or transfer failed (field `code`, e.g. "ENOENT")
---| "protocol"    # malformed data: not HTTP, invalid JSON, line or body too long
---| "redirect"    # too many redirects, or a redirect to a scheme other than http(s)
---| "thread"      # an error inside aio.to_thread
---| "interrupted" # SIGINT stopped aio.run
---| "redis"       # a Redis error reply (fields `prefix`, such as "WRONGTYPE", and `command`)
---| "db"          # PostgreSQL reported an error (fields sqlstate, detail, hint, position, ...)

---Which deadline ran out, in a `timeout` error.
---@alias aio.TimeoutPhase
---| "total"   # HTTP: the whole request
---| "connect" # resolving and connecting (HTTP, TCP, Redis)
---| "read"    # HTTP: silence from the server; TCP: a read waited too long; Redis: a reply
---| "write"   # TCP: a write waited too long

---When aio.wait returns.
---@alias aio.ReturnWhen
---| "all"         # every task is done (the default)
---| "first"       # any task is done
---| "first_error" # any task failed, or all are done

---Address family for name resolution.
---@alias aio.dns.Family
---| "any"   # IPv4 and IPv6 (the default)
---| "inet"  # IPv4 only
---| "inet6" # IPv6 only

---Address family for aio.tcp.connect.
---@alias aio.tcp.Family
---| "inet"  # IPv4 only
---| "inet6" # IPv6 only

---Modes of aio.fs.open, as io.open ("b" is accepted and ignored; "x" after
---"w" or "a" fails if the file exists).
---@alias aio.fs.OpenMode
---| "r"   # read (the default)
---| "w"   # create or truncate, write
---| "a"   # create if needed, append
---| "r+"  # read and write an existing file
---| "w+"  # create or truncate, read and write
---| "a+"  # create if needed, read and append
---| "rb"
---| "wb"
---| "ab"
---| "r+b"
---| "w+b"
---| "a+b"
---| "wx"  # create, fail if it exists
---| "ax"  # create for appending, fail if it exists
---| "w+x" # create for reading and writing, fail if it exists
---| "a+x" # create for reading and appending, fail if it exists

---A format of file:read, as io.read: a byte count, or one of these.
---@alias aio.fs.ReadFormat
---| integer # up to that many bytes; nil at the end (0 tests for the end)
---| "a"     # the rest of the file ("" at the end)
---| "l"     # a line without its newline; nil at the end (the default)
---| "L"     # a line with its newline; nil at the end
---| "*a"    # as "a" (Lua 5.1 spelling)
---| "*l"    # as "l"
---| "*L"    # as "L"

---@alias aio.fs.Whence
---| "set" # from the start of the file
---| "cur" # from the current position (the default)
---| "end" # from the end of the file

---@alias aio.fs.FileType
---| "file"
---| "directory"
---| "link"
---| "fifo"
---| "socket"
---| "char"
---| "block"

---What a child process's stdout or stderr is connected to.
---@alias aio.process.Stdio
---| "pipe"    # captured into the result (the default)
---| "inherit" # this process's own stream
---| "null"    # /dev/null

---HTTP versions a request may ask for.
---@alias aio.http.Version
---| "1.1"               # HTTP/1.1 (the default)
---| "2"                 # HTTP/2 over TLS (ALPN), falling back to 1.1
---| "1.0"               # HTTP/1.0
---| "2-prior-knowledge" # cleartext HTTP/2 without upgrade

---Request methods; any HTTP token is accepted (it is sent upper-cased).
---@alias aio.http.Method "GET"|"HEAD"|"POST"|"PUT"|"PATCH"|"DELETE"|"OPTIONS"|"TRACE"|string

---Signals aio.signal can handle (SIGKILL, SIGSTOP, SIGSEGV, SIGBUS,
---SIGFPE and SIGILL raise `usage`); the "SIG" prefix may be left out.
---@alias aio.signal.Name aio.signal.FullName|aio.signal.ShortName
---@alias aio.signal.FullName "SIGINT"|"SIGTERM"|"SIGHUP"|"SIGQUIT"|"SIGUSR1"|"SIGUSR2"|"SIGPIPE"|"SIGALRM"|"SIGCHLD"|"SIGCONT"|"SIGTSTP"|"SIGTTIN"|"SIGTTOU"|"SIGURG"|"SIGXCPU"|"SIGXFSZ"|"SIGVTALRM"|"SIGPROF"|"SIGWINCH"|"SIGIO"|"SIGSYS"|"SIGTRAP"|"SIGABRT"
---@alias aio.signal.ShortName "INT"|"TERM"|"HUP"|"QUIT"|"USR1"|"USR2"|"PIPE"|"ALRM"|"CHLD"|"CONT"|"TSTP"|"TTIN"|"TTOU"|"URG"|"XCPU"|"XFSZ"|"VTALRM"|"PROF"|"WINCH"|"IO"|"SYS"|"TRAP"|"ABRT"

---Something gather, settle and first accept: a function (spawned as a
---task, with no arguments) or a Task.
---@alias aio.Awaitable aio.Task|async fun(): ...

------------------------------------------------------------------------
-- The module
------------------------------------------------------------------------

---asyncio + aiohttp for Lua 5.4: tasks on one libuv event loop driven from
---C, composition, synchronization, an HTTP client, files, TCP, DNS,
---threads, processes, signals and a PostgreSQL client.
---@class aio
---@field _VERSION string "aio scm"
local aio = {}

------------------------------------------------------------------------
-- Errors
------------------------------------------------------------------------

---An error raised by aio: a table with this metatable, a `kind`, a
---`message`, and more fields depending on the kind; `tostring(err)` gives
---`"<kind>: <message>"`. Test one with `aio.is_error(err, kind)`.
---`aio.Error(kind, message, fields)` makes a new one (fields copied in);
---`aio.Error` is also the metatable itself.
---@class aio.Error
---@field kind aio.ErrorKind what went wrong
---@field message string a human-readable description
---@field reason? any `cancelled`: the value given to `task:cancel(reason)`
---@field seconds? number `timeout`: the duration that ran out
---@field phase? aio.TimeoutPhase `timeout` from HTTP or TCP: which deadline
---@field url? string HTTP failures: the URL asked for (`http`: the final URL)
---@field method? string HTTP failures: the request method
---@field status? integer `http` (and `protocol` from response:json()): the status code
---@field response? aio.http.Response `http`: the response that failed
---@field curl_code? integer HTTP transport failures: libcurl's CURLcode
---@field code? string `io`, `connect`, `dns`: the system's error name ("ENOENT", "ECONNREFUSED", "EAI_NONAME", "EOF")
---@field path? string `io` from aio.fs and aio.process: the path involved
---@field to? string `io` from aio.fs.rename: the destination
---@field host? string `connect`, `dns`, TCP `timeout`: the host name asked for
---@field address? string `connect`: the address tried
---@field port? integer `connect`, TCP `timeout`: the port
---@field peer? string `io` on a TCP stream: the other end
---@field partial? string `io` with code "EOF" from stream:read_exactly: the bytes that did arrive
---@field expected? integer `io` with code "EOF" from stream:read_exactly: the size asked for
---@field limit? integer `protocol` from stream:read_line: the line length limit
---@field traceback? string `thread`: where the error was raised inside the worker
---@field value? any `thread`: the original error value, when it could be copied
---@field stdout? string `timeout` from aio.process.run: output captured so far
---@field sqlstate? string `db` (and PostgreSQL's `io`, `connect`): the SQLSTATE ("42P01", "28P01", "57P01")
---@field severity? string `db`: "ERROR", "FATAL", ...
---@field detail? string `db`: the server's DETAIL
---@field hint? string `db`: the server's HINT
---@field position? integer `db`: where in the SQL text the error is (1-based character)
---@field where? string `db`: the server's CONTEXT (call stack of functions)
---@field schema? string `db`: the schema involved
---@field table? string `db`: the table involved
---@field column? string `db`: the column involved
---@field datatype? string `db`: the data type involved
---@field constraint? string `db`: the constraint violated
---@field query? string `db`: the SQL text that failed
---@field stderr? string `timeout` from aio.process.run: error output captured so far
---@overload fun(kind: aio.ErrorKind, message?: string, fields?: table): aio.Error
aio.Error = {}

---`true` if `e` is an aio error (of `kind`, when given).
---@param e any
---@param kind? aio.ErrorKind
---@return boolean
---@nodiscard
function aio.is_error(e, kind) end

------------------------------------------------------------------------
-- Running, tasks, time
------------------------------------------------------------------------

---A task: a coroutine run by the loop. Await it, cancel it, or ask about
---it. Made by aio.spawn, group:spawn, and the functions taking functions.
---@class aio.Task
---@field name string its name, `"task-<n>"` by default; assign a string to rename it
---@field id integer its number (read-only)
local Task = {}

---Waits for the task and returns all its results; raises its error
---(`cancelled` if it was cancelled). Cancelling the waiting task cancels
---this one too (use aio.shield(task) to avoid that). (suspends)
---@async
---@return any ...
function Task:await() end

---Asks the task to stop: its current or next suspension raises a
---`cancelled` error (with `err.reason = reason`), and so does every later
---one. Returns `false` if the task is already done.
---@param reason? any
---@return boolean requested
function Task:cancel(reason) end

---`true` once the task has returned, failed or been cancelled.
---@return boolean
---@nodiscard
function Task:done() end

---`true` if the task ended with a `cancelled` error.
---@return boolean
---@nodiscard
function Task:cancelled() end

---The results of a task that returned; raises its error if it failed or
---was cancelled, and `usage` if it is not done yet.
---@return any ...
function Task:result() end

---The error of a task that failed or was cancelled, else nil. Retrieving
---it keeps it from being reported on stderr as lost.
---@return any err
function Task:error() end

---Calls `fn(task)` from the loop once the task is done (on a later turn if
---it already is). `fn` must not suspend. Returns the task.
---@param fn fun(task: aio.Task)
---@return aio.Task self
function Task:on_done(fn) end

---Where the task is suspended now, or where its error was raised; nil for
---a task that returned or has not started.
---@return string?
---@nodiscard
function Task:traceback() end

---Runs `fn(...)` as the main task on a new loop and returns its results.
---When it returns, the tasks still alive are cancelled and unwind, every
---handle is closed and unretrieved errors are reported. Re-raises the main
---task's error; raises `interrupted` after SIGINT and `usage` if a loop is
---already running.
---@generic R
---@param fn async fun(...: any): R
---@param ... any arguments for `fn`
---@return R
---@return any ...
function aio.run(fn, ...) end

---Schedules `fn(...)` as a new task, started on a later turn of the loop
---in spawn order (never synchronously). Only inside aio.run.
---@param fn async fun(...: any): ...
---@param ... any arguments for `fn`
---@return aio.Task
function aio.spawn(fn, ...) end

---The running task, or nil outside tasks.
---@return aio.Task?
---@nodiscard
function aio.current() end

---The tasks that are not done.
---@return aio.Task[]
---@nodiscard
function aio.tasks() end

---Waits `seconds` (negative means 0); `aio.sleep(0)` lets every other
---ready task run once. (suspends)
---@async
---@param seconds number
function aio.sleep(seconds) end

---The loop's time in seconds: monotonic, for measuring intervals; under
---aio.testing.run's virtual clock it starts at 0 and jumps over waits.
---@return number
---@nodiscard
function aio.now() end

---Turns debug mode on or off (also `AIO_DEBUG=1`): warns on stderr about
---tasks that run longer than `slow` seconds (0.1) without suspending, and
---records where each task was spawned.
---@param on boolean
---@param slow? number
function aio.set_debug(on, slow) end

------------------------------------------------------------------------
-- Composition
------------------------------------------------------------------------

---What aio.settle gives for each function or task.
---@class aio.SettleRecord
---@field ok boolean whether it returned
---@field value any its first result, when `ok`
---@field error any its error, when not `ok`

---Options of aio.wait.
---@class aio.WaitOptions
---@field timeout? number seconds; what is not done by then is returned as pending
---@field return_when? aio.ReturnWhen `"all"` (default), `"first"` or `"first_error"`

---Options of aio.retry.
---@class aio.RetryOptions
---@field attempts? integer how many calls at most (3)
---@field delay? number seconds before the second call (0.5)
---@field factor? number each later delay is multiplied by it (2)
---@field max_delay? number the longest delay (30)
---@field jitter? boolean scale each delay by a random factor in [0.5, 1) (true)
---@field retry_on? fun(err: any): boolean which errors to retry (all; never `cancelled` or `usage`)

---Runs functions (spawned as tasks) and awaits tasks concurrently;
---returns each one's first result in input order. The first error cancels
---the others, waits for them and is raised; cancelling the caller cancels
---them all. With one array argument, returns an array with field `n`.
---(suspends)
---@async
---@param ... aio.Awaitable
---@return any ...
---@overload fun(list: aio.Awaitable[]): { n: integer, [integer]: any }
function aio.gather(...) end

---Like gather but waits for all and never raises for their errors: returns
---a record `{ok = true, value = v}` or `{ok = false, error = e}` for each
---(an array with `n` for an array argument). (suspends)
---@async
---@param ... aio.Awaitable
---@return aio.SettleRecord ...
---@overload fun(list: aio.Awaitable[]): { n: integer, [integer]: aio.SettleRecord }
function aio.settle(...) end

---Waits for tasks without cancelling any; returns the tasks done (in the
---order they finished) and those still pending (in input order).
---(suspends)
---@async
---@param tasks aio.Task[]
---@param opts? aio.WaitOptions
---@return aio.Task[] done
---@return aio.Task[] pending
function aio.wait(tasks, opts) end

---An iterator over the tasks in the order they finish:
---`for t in aio.as_completed(list) do local v = t:await() end`. Each step
---suspends; raises `timeout` if `timeout` seconds pass first (the tasks
---keep running). Leaving the loop early is fine.
---@param tasks aio.Task[]
---@param timeout? number
---@return async fun(): aio.Task?
---@nodiscard
function aio.as_completed(tasks, timeout) end

---Returns the first result and the index of the first function or task to
---succeed, and cancels (and waits for) the rest. If all fail, raises the
---first error that happened. (suspends)
---@async
---@param ... aio.Awaitable
---@return any value
---@return integer index
---@overload fun(list: aio.Awaitable[]): any, integer
function aio.first(...) end

---Runs `fn(...)` in the current task with a deadline and returns its
---results. At the deadline the pending suspension inside `fn` raises
---`cancelled`; once `fn` has unwound, aio.timeout raises `timeout` (field
---`seconds`). With a task instead of a function: awaits it, and at the
---deadline cancels it, waits for it and raises `timeout`. (suspends)
---@async
---@generic R
---@param seconds number
---@param fn async fun(...: any): R
---@param ... any arguments for `fn`
---@return R
---@return any ...
---@overload fun(seconds: number, task: aio.Task): ...
function aio.timeout(seconds, fn, ...) end

---Runs `fn(...)` in the current task protected from cancellation and from
---enclosing deadlines (for clean-up that must wait); what arrives meanwhile
---is raised at the first suspension after it returns. With a task: awaits
---it; cancelling the caller raises in the caller at once but leaves the
---task running. (suspends)
---@async
---@generic R
---@param fn async fun(...: any): R
---@param ... any arguments for `fn`
---@return R
---@return any ...
---@overload fun(task: aio.Task): ...
function aio.shield(fn, ...) end

---A group of child tasks for structured concurrency:
---`local g <close> = aio.TaskGroup()`. Leaving the scope waits for every
---child; the first child error cancels the others and the scope's body and
---is raised at the end of the scope.
---@class aio.TaskGroup
---@field errors any[] every error a child failed with, in order
local TaskGroup = {}

---Spawns `fn(...)` as a child of the group; raises `usage` once the group
---is closed.
---@param fn async fun(...: any): ...
---@param ... any arguments for `fn`
---@return aio.Task
function TaskGroup:spawn(fn, ...) end

---Waits for every child spawned so far; raises the first child error.
---(suspends)
---@async
function TaskGroup:wait() end

---Closes the group as leaving its scope does: waits for the children and
---raises the first child error. (suspends)
---@async
function TaskGroup:close() end

---To-be-closed: the end of `local g <close> = aio.TaskGroup()`. (suspends)
---@async
---@param err? any the error leaving the scope, if any
function TaskGroup:__close(err) end

---A new task group; must be made inside a task.
---@return aio.TaskGroup
---@nodiscard
function aio.TaskGroup() end

---Calls `fn()` until it returns without error, sleeping with exponential
---backoff between attempts, and returns its results; raises the last
---error. `cancelled` and `usage` errors are never retried. (suspends)
---@async
---@generic R
---@param fn async fun(): R
---@param opts? aio.RetryOptions
---@return R
---@return any ...
function aio.retry(fn, opts) end

------------------------------------------------------------------------
-- Synchronization (FIFO-fair and cancellation-safe)
------------------------------------------------------------------------

---A counting semaphore. `sem:acquire()` returns the semaphore itself as a
---permit that releases once when closed: `local p <close> = sem:acquire()`.
---@class aio.Semaphore
local Semaphore = {}

---Takes a permit, waiting while none is free; returns the semaphore as a
---permit for `<close>`. (suspends)
---@async
---@return aio.Semaphore permit
function Semaphore:acquire() end

---Takes a permit if one is free and nobody waits; returns the semaphore,
---or nil.
---@return aio.Semaphore? permit
function Semaphore:try_acquire() end

---Returns a permit (to the longest waiter, if any). On a BoundedSemaphore,
---releasing more than was acquired raises `usage`.
function Semaphore:release() end

---The number of free permits.
---@return integer
---@nodiscard
function Semaphore:available() end

---The number of tasks waiting in acquire().
---@return integer
---@nodiscard
function Semaphore:waiting() end

---To-be-closed: releases one permit.
function Semaphore:__close() end

---A semaphore with `n` permits (default 1).
---@param n? integer
---@return aio.Semaphore
---@nodiscard
function aio.Semaphore(n) end

---A semaphore whose release() above `n` permits (default 1) raises `usage`.
---@param n? integer
---@return aio.Semaphore
---@nodiscard
function aio.BoundedSemaphore(n) end

---A mutual-exclusion lock: `local guard <close> = lock:acquire()`.
---@class aio.Lock
local Lock = {}

---Takes the lock, waiting while another task holds it; returns the lock as
---a guard for `<close>`. (suspends)
---@async
---@return aio.Lock guard
function Lock:acquire() end

---Takes the lock if it is free and nobody waits; returns the lock, or nil.
---@return aio.Lock? guard
function Lock:try_acquire() end

---Releases the lock (to the longest waiter, if any); raises `usage` if it
---is not locked.
function Lock:release() end

---`true` while the lock is held.
---@return boolean
---@nodiscard
function Lock:locked() end

---The number of tasks waiting in acquire().
---@return integer
---@nodiscard
function Lock:waiting() end

---To-be-closed: releases the lock.
function Lock:__close() end

---A new, unlocked lock.
---@return aio.Lock
---@nodiscard
function aio.Lock() end

---A flag tasks can wait for; set() wakes every waiter.
---@class aio.Event
local Event = {}

---Sets the flag and wakes every waiting task.
function Event:set() end

---Clears the flag.
function Event:clear() end

---`true` while the flag is set.
---@return boolean
---@nodiscard
function Event:is_set() end

---Waits until the flag is set (returns at once if it is); returns true.
---(suspends)
---@async
---@return true
function Event:wait() end

---A new event, not set.
---@return aio.Event
---@nodiscard
function aio.Event() end

---A condition variable over a lock. wait(), notify() and notify_all() need
---the lock held.
---@class aio.Condition
---@field lock aio.Lock the underlying lock (read-only)
local Condition = {}

---Takes the underlying lock; returns the lock as a guard for `<close>`.
---(suspends)
---@async
---@return aio.Lock guard
function Condition:acquire() end

---Takes the underlying lock if it is free; returns the lock, or nil.
---@return aio.Lock? guard
function Condition:try_acquire() end

---Releases the underlying lock; raises `usage` if it is not locked.
function Condition:release() end

---`true` while the underlying lock is held.
---@return boolean
---@nodiscard
function Condition:locked() end

---Releases the lock, waits to be notified, and holds the lock again when
---it returns (also when it raises); returns true. (suspends)
---@async
---@return true
function Condition:wait() end

---Waits (as wait()) until `pred()` returns a true value, and returns that
---value. (suspends)
---@async
---@generic V
---@param pred fun(): V
---@return V
function Condition:wait_for(pred) end

---Wakes up to `n` (1) waiting tasks.
---@param n? integer
function Condition:notify(n) end

---Wakes every waiting task.
function Condition:notify_all() end

---To-be-closed: releases the underlying lock.
function Condition:__close() end

---A condition variable over `lock` (a new Lock by default).
---@param lock? aio.Lock
---@return aio.Condition
---@nodiscard
function aio.Condition(lock) end

---A queue of values (FIFO, LIFO or priority); `#q` is its size.
---@class aio.Queue
---@field maxsize integer the capacity given (0: unbounded; read-only)
---@operator len: integer
local Queue = {}

---Adds `v` (not nil), waiting while the queue is full; raises `closed`
---after close(). (suspends)
---@async
---@param v any
function Queue:put(v) end

---Removes and returns the next value, waiting while the queue is empty;
---once the queue is closed and empty, returns nil. (suspends)
---@async
---@return any
function Queue:get() end

---Adds `v` (not nil) or raises `queue_full`; raises `closed` after close().
---@param v any
function Queue:put_nowait(v) end

---Removes and returns the next value, or raises `queue_empty`; nil once
---the queue is closed and empty.
---@return any
function Queue:get_nowait() end

---The number of values in the queue (as `#q`).
---@return integer
---@nodiscard
function Queue:size() end

---`true` when the queue holds nothing.
---@return boolean
---@nodiscard
function Queue:empty() end

---`true` when a bounded queue holds `maxsize` values.
---@return boolean
---@nodiscard
function Queue:full() end

---`true` once close() was called.
---@return boolean
---@nodiscard
function Queue:closed() end

---Marks one value got as processed; raises `usage` if called more times
---than values were got.
function Queue:task_done() end

---Waits until every value put has been marked done with task_done().
---(suspends)
---@async
function Queue:join() end

---Closes the queue: put raises `closed`; get returns what is left, then
---nil; waiting getters get nil and waiting putters raise `closed`.
function Queue:close() end

---An iterator that gets values until the queue is closed and drained:
---`for item in q:items() do ... end` (each step suspends).
---@return async fun(q: aio.Queue): any
---@return aio.Queue
function Queue:items() end

---A FIFO queue; `maxsize` 0 or nil means unbounded.
---@param maxsize? integer
---@return aio.Queue
---@nodiscard
function aio.Queue(maxsize) end

---A queue that gives the smallest value first by `less(a, b)` (default
---`<`); values that compare equal come out in the order they were put.
---@param maxsize? integer
---@param less? fun(a: any, b: any): boolean
---@return aio.Queue
---@nodiscard
function aio.PriorityQueue(maxsize, less) end

---A queue that gives the last value put first.
---@param maxsize? integer
---@return aio.Queue
---@nodiscard
function aio.LifoQueue(maxsize) end

---A token bucket: `rate` tokens every `per` seconds, holding at most
---`burst`.
---@class aio.RateLimiter
---@field rate number tokens added every `per` seconds (read-only)
---@field per number the period in seconds (read-only)
---@field burst number the most tokens the bucket holds (read-only)
local RateLimiter = {}

---Takes `n` (1) tokens, waiting its turn (FIFO) until the bucket holds
---them; raises `usage` if `n` exceeds the burst. (suspends)
---@async
---@param n? number
function RateLimiter:acquire(n) end

---Takes `n` (1) tokens if the bucket holds them and nobody waits.
---@param n? number
---@return boolean taken
function RateLimiter:try_acquire(n) end

---The tokens in the bucket now.
---@return number
---@nodiscard
function RateLimiter:available() end

---A rate limiter allowing `rate` acquisitions per `per` seconds, in bursts
---of up to `burst` (default `rate`).
---@param rate number
---@param per number
---@param burst? number
---@return aio.RateLimiter
---@nodiscard
function aio.RateLimiter(rate, per, burst) end

------------------------------------------------------------------------
-- HTTP client: aio.http
------------------------------------------------------------------------

---HTTP/1.1 and HTTP/2 client on libcurl, driven by the aio loop. The
---module functions use the default session of the current run, which
---aio.run closes when it returns.
---@class aio.http
---@field curl_version string the version of libcurl in use ("7.88.1")
---@field Response aio.http.Response the metatable (and methods) of responses
aio.http = {}

---Timeouts of a request or session, in seconds; `false` turns one off.
---Fields not given keep the session's (default `{total = 300}`).
---@class aio.http.Timeout
---@field total? number|false from the call to the end of the body, waiting for a connection included (phase "total")
---@field connect? number|false name resolution and the TCP/TLS connection (phase "connect")
---@field read? number|false the longest silence from the server once the request is sent (phase "read")

---Retries of idempotent requests (GET, HEAD, OPTIONS, PUT, DELETE, TRACE)
---after `connect`, `io` and `timeout` failures and on the listed statuses.
---@class aio.http.Retries
---@field attempts? integer how many tries at most (3)
---@field statuses? integer[] statuses that are retried too (e.g. {502, 503, 504})
---@field delay? number seconds before the second try (0.25)
---@field factor? number each later delay is multiplied by it (2)
---@field max_delay? number the longest delay (30)

---Basic authentication: `{user, password}` or `{user = ..., password = ...}`.
---@alias aio.http.Auth { [1]: string, [2]: string? }|{ user: string, password: string? }

---Header values: a string or number, an array for a repeated header, `""`
---for an empty header, `false` to drop a session header.
---@alias aio.http.Headers table<string, string|number|(string|number)[]|false>

---Query or form values: a string or number, or an array for a repeated key.
---@alias aio.http.Params table<string, string|number|(string|number)[]>

---Options of a request (`opts` of aio.http.request, get, ...; session
---methods). At most one of `body`, `json` and `form`. Unknown options are
---argument errors.
---@class aio.http.RequestOptions
---@field headers? aio.http.Headers names are case-insensitive and override the session's
---@field query? aio.http.Params added to the URL's query string (keys sorted, arrays as repeated keys)
---@field body? string sent as is (`Content-Type: application/octet-stream` unless given)
---@field json? any encoded with lua-cjson (`Content-Type: application/json`)
---@field form? aio.http.Params sent as `application/x-www-form-urlencoded`
---@field timeout? number|aio.http.Timeout|false a number is the total; `false` turns every timeout off
---@field follow_redirects? boolean follow 3xx responses (true)
---@field max_redirects? integer more redirects raise `redirect` (10)
---@field verify? boolean verify the server's TLS certificate and name (true)
---@field ca_file? string|false PEM file of certificates to trust instead of the system's
---@field auth? aio.http.Auth|false basic authentication
---@field proxy? string|false proxy URL ("http://host:port"); the environment is never used
---@field stream? boolean return at the headers; read the body with chunks() or read_all() (false)
---@field max_body? integer|false bytes; a longer (decoded) body raises `protocol`
---@field http_version? aio.http.Version "1.1" by default
---@field decompress? boolean ask for gzip, deflate, brotli and zstd and decode them (true)
---@field retries? aio.http.Retries|false overrides the session's retries (`false`: none)

---Options of aio.http.Session: the defaults of its requests plus the
---session's own settings. Unknown options are argument errors.
---@class aio.http.SessionOptions
---@field base_url? string requests may give a URL relative to it (RFC 3986 rules)
---@field headers? aio.http.Headers sent with every request
---@field timeout? number|aio.http.Timeout|false default timeouts (`{total = 300}`)
---@field max_connections? integer requests in flight at most (100; 0: no limit); more wait in FIFO order
---@field max_per_host? integer requests in flight per scheme://host:port (0: no limit)
---@field cookies? boolean keep an in-memory cookie jar (false)
---@field user_agent? string the User-Agent header ("lua-aio (libcurl/<version>)")
---@field retries? aio.http.Retries|false retries of idempotent requests (none)
---@field verify? boolean verify TLS certificates and names (true)
---@field ca_file? string|false PEM file of certificates to trust
---@field auth? aio.http.Auth|false basic authentication for every request
---@field proxy? string|false proxy URL
---@field http_version? aio.http.Version "1.1" by default
---@field follow_redirects? boolean follow 3xx responses (true)
---@field max_redirects? integer (10)
---@field max_body? integer|false bytes
---@field decompress? boolean (true)

---One received header, from response:header_list().
---@class aio.http.HeaderEntry
---@field [1] string the name as received
---@field [2] string the value
---@field name string the name as received
---@field value string the value

---Counters of a session, for debugging and tests.
---@class aio.http.SessionStats
---@field active integer requests in flight
---@field waiting integer requests waiting for a connection slot
---@field easy integer curl easy handles in use
---@field spare integer reset easy handles kept for reuse
---@field polls integer socket polls open
---@field watched integer sockets watched now
---@field hosts integer hosts with requests

---An HTTP response. A 4xx/5xx status is a normal response unless
---raise_for_status() is called. Streamed responses (`stream = true`) are
---to-be-closed: `local r <close> = session:get(url, {stream = true})`.
---@class aio.http.Response
---@field status integer the status code
---@field ok boolean `status < 400`
---@field headers table<string, string> lower-case names (lookups ignore case), repeats joined with ", "
---@field url string the final URL, after redirects
---@field http_version "1.0"|"1.1"|"2" the version the server answered with
---@field method string the method sent
---@field body string the body; nil for a streamed response until read_all() (or text(), json())
local Response = {}

---The headers as received, in order, repeats kept apart: an array of
---`{name, value}` (also fields `name` and `value`).
---@return aio.http.HeaderEntry[]
---@nodiscard
function Response:header_list() end

---The body as a string (bytes, no charset decoding); reads a streamed
---body to its end first. (suspends for a streamed response)
---@async
---@return string
function Response:text() end

---The body decoded by lua-cjson; invalid JSON raises `protocol`. Reads a
---streamed body to its end first. (suspends for a streamed response)
---@async
---@return any
function Response:json() end

---Raises an `http` error (fields `status`, `url`, `method`, `response`)
---for a 4xx/5xx status; returns the response otherwise.
---@return aio.http.Response self
function Response:raise_for_status() end

---An iterator over the body in chunks: `for chunk in r:chunks() do ... end`.
---For a streamed response each step suspends, and the transfer pauses
---while the consumer is behind (memory stays bounded).
---@return async fun(): string?
function Response:chunks() end

---The rest of the body as one string (also sets `body`). (suspends for a
---streamed response)
---@async
---@return string
function Response:read_all() end

---Aborts a streamed transfer that has not finished and frees its
---connection slot; later reads raise `closed`. Harmless when repeated.
function Response:close() end

---To-be-closed: close().
function Response:__close() end

---A session: a connection pool, a DNS cache and (optionally) a cookie jar
---shared by its requests; requests past its limits wait, never fail.
---Closed by close(), at the end of a `<close>` scope, or when the aio.run
---of its first request ends.
---@class aio.http.Session
---@field base_url? string the base URL given (read-only)
---@field max_connections integer the limit of requests in flight (read-only)
---@field max_per_host integer the limit per host (read-only)
---@field cookies boolean whether it keeps cookies (read-only)
local Session = {}

---Sends a request and returns its Response. `url` is absolute (http or
---https) or relative to the session's base_url. (suspends)
---@async
---@param method aio.http.Method
---@param url string
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function Session:request(method, url, opts) end

---Sends a GET request. (suspends)
---@async
---@param url string absolute, or relative to base_url
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function Session:get(url, opts) end

---Sends a POST request. (suspends)
---@async
---@param url string absolute, or relative to base_url
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function Session:post(url, opts) end

---Sends a PUT request. (suspends)
---@async
---@param url string absolute, or relative to base_url
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function Session:put(url, opts) end

---Sends a PATCH request. (suspends)
---@async
---@param url string absolute, or relative to base_url
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function Session:patch(url, opts) end

---Sends a DELETE request. (suspends)
---@async
---@param url string absolute, or relative to base_url
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function Session:delete(url, opts) end

---Sends a HEAD request. (suspends)
---@async
---@param url string absolute, or relative to base_url
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function Session:head(url, opts) end

---Closes the session: requests in flight or waiting raise `closed`, its
---connections close, later requests raise `closed`. Harmless when repeated.
function Session:close() end

---`true` once the session is closed.
---@return boolean
---@nodiscard
function Session:closed() end

---Counters of requests, sockets and handles.
---@return aio.http.SessionStats
---@nodiscard
function Session:stats() end

---To-be-closed: close().
function Session:__close() end

---A new session.
---@param opts? aio.http.SessionOptions
---@return aio.http.Session
---@nodiscard
function aio.http.Session(opts) end

---The default session of the current run (made on first use, closed when
---aio.run returns); the module functions use it.
---@return aio.http.Session
---@nodiscard
function aio.http.session() end

---Sends a request with the default session and returns its Response.
---(suspends)
---@async
---@param method aio.http.Method
---@param url string an absolute http or https URL
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function aio.http.request(method, url, opts) end

---Sends a GET request with the default session. (suspends)
---@async
---@param url string an absolute http or https URL
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function aio.http.get(url, opts) end

---Sends a POST request with the default session. (suspends)
---@async
---@param url string an absolute http or https URL
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function aio.http.post(url, opts) end

---Sends a PUT request with the default session. (suspends)
---@async
---@param url string an absolute http or https URL
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function aio.http.put(url, opts) end

---Sends a PATCH request with the default session. (suspends)
---@async
---@param url string an absolute http or https URL
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function aio.http.patch(url, opts) end

---Sends a DELETE request with the default session. (suspends)
---@async
---@param url string an absolute http or https URL
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function aio.http.delete(url, opts) end

---Sends a HEAD request with the default session. (suspends)
---@async
---@param url string an absolute http or https URL
---@param opts? aio.http.RequestOptions
---@return aio.http.Response
function aio.http.head(url, opts) end

---Options of aio.http.ws_connect.
---@class aio.http.WebSocketOptions
---@field headers? table<string, string> extra request headers (Origin, Authorization, ...)
---@field protocols? string|string[] subprotocols to offer, in order of preference
---@field timeout? number seconds for connecting and the handshake (10)
---@field max_message? integer longest message accepted, bytes (1 MiB); longer closes with 1009
---@field heartbeat? number seconds between pings; no pong within half of it closes (code 1006)
---@field verify? boolean wss://: verify the server's certificate and name (true)
---@field ca_file? string wss://: CA certificates (PEM) to verify with
---@field close_timeout? number seconds close() waits for the peer (5)

---Options of req:websocket on the server side.
---@class aio.http.WebSocketServerOptions
---@field protocols? string|string[] subprotocols the server speaks (the client's first one it knows is chosen)
---@field headers? table<string, string> extra headers of the 101 response
---@field max_message? integer longest message accepted, bytes (1 MiB); longer closes with 1009
---@field heartbeat? number seconds between pings; no pong within half of it closes (code 1006)
---@field close_timeout? number seconds close() waits for the peer (5)

---A WebSocket connection (RFC 6455): messages both ways, automatic pongs,
---the close handshake. As a `<close>` variable it is closed (code 1000).
---@class aio.http.WebSocket
---@field protocol string? the subprotocol agreed on
---@field close_code integer? once closed: the peer's close code, the one we failed the connection with (1002, 1007, 1009, ...), or 1006 without a close frame
---@field close_reason string? once closed: the reason that came with the code
---@field closed boolean the connection is closing or closed
local WebSocket = {}

---Sends a text message (`text` must be UTF-8); it is written at the end of
---the round of tasks. Waits while more than 64 KiB wait for the peer
---(backpressure). Raises `closed` once the connection is closing or
---closed. (suspends)
---@async
---@param text string
function WebSocket:send(text) end

---Sends a binary message; as send. (suspends)
---@async
---@param data string
function WebSocket:send_binary(data) end

---The next message and its kind; nil once the connection is closed and
---every message was taken. Cancelling a receive takes nothing. (suspends)
---@async
---@return string? data
---@return "text"|"binary"|nil kind
function WebSocket:receive() end

---Iterates over the messages until the connection closes:
---`for data, kind in ws:messages() do ... end`. (suspends)
---@async
---@return fun(): string?, ("text"|"binary")?
function WebSocket:messages() end

---Sends a ping (up to 125 bytes); the peer's pong counts for the
---heartbeat.
---@param data? string
function WebSocket:ping(data) end

---The closing handshake: sends a close frame (code 1000 by default,
---reason up to 123 bytes of UTF-8), waits for the peer's and the end of
---the connection for up to `timeout` seconds (the close_timeout option),
---then closes it. Harmless when repeated. (suspends)
---@async
---@param code? integer
---@param reason? string
---@param timeout? number
function WebSocket:close(code, reason, timeout) end

---To-be-closed: close().
function WebSocket:__close() end

---Opens a WebSocket connection to a ws:// or wss:// URL. Raises `dns`,
---`connect`, `tls`, `timeout`, `http` (a 4xx/5xx answer, with `status`) or
---`protocol` (not a valid upgrade), each with `url`. (suspends)
---@async
---@param url string
---@param opts? aio.http.WebSocketOptions
---@return aio.http.WebSocket
function aio.http.ws_connect(url, opts) end


------------------------------------------------------------------------
-- HTTP server: aio.http.App, aio.http.listen
------------------------------------------------------------------------

---What a handler (or a middleware) returns: a string (200, text/plain;
---charset=utf-8) or a table.
---@alias aio.http.Result string|aio.http.ResultTable

---A response as a table: one of body, json or file.
---@class aio.http.ResultTable
---@field status? integer 200 by default
---@field headers? aio.http.Headers `name = value`; an array for a repeated field
---@field body? string|number sent as is (text/plain; charset=utf-8 unless given)
---@field json? any encoded with lua-cjson (application/json)
---@field file? string a path, sent with sendfile (Range, If-Modified-Since; 404 if missing)

---A request, as a handler sees it. Handlers may add fields of their own.
---@class aio.http.Request
---@field method string "GET", "POST", ...
---@field path string the path, percent-decoded, without the query
---@field target string the request target as sent ("/a%20b?x=1")
---@field query table<string, string|string[]> the decoded query (repeated keys: arrays)
---@field headers table<string, string> lower-case names; repeated fields joined with ", "
---@field params table<string, string> what the route's {name} segments matched
---@field http_version "1.1"|"1.0"
---@field remote_address string the client's IP address
local Request = {}

---The header fields in the order received, names as sent.
---@return {[1]: string, [2]: string, name: string, value: string}[]
---@nodiscard
function Request:header_list() end

---The whole body (suspends). Past max_body raises `http` with
---`response_status = 413` (before reading when Content-Length says so).
---@async
---@return string
function Request:body() end

---An iterator over the body as it arrives (suspends between chunks).
---@return async fun(): string?
function Request:chunks() end

---The body decoded as JSON (suspends); invalid JSON raises `protocol`
---(the client gets 400 unless handled).
---@async
---@return any
function Request:json() end

---An urlencoded form body as a table (suspends).
---@async
---@return table<string, string|string[]>
function Request:form() end

---Sends the status and headers now; the returned writer streams the body
---(chunked; for HTTP/1.0 the connection ends it).
---@param status? integer 200
---@param headers? aio.http.Headers
---@return aio.http.ResponseWriter
function Request:respond(status, headers) end

---Upgrades the request to a WebSocket: answers 101 and returns it; a
---request that is not a valid upgrade raises `protocol` and the client
---gets 400. When the handler ends, a WebSocket still open is closed with
---1000. (suspends)
---@async
---@param opts? aio.http.WebSocketServerOptions
---@return aio.http.WebSocket
function Request:websocket(opts) end

---The writer of a streamed response.
---@class aio.http.ResponseWriter
local Writer = {}

---Sends a chunk of the body (suspends while the client is slower:
---backpressure); raises `io` once the client is gone.
---@async
---@param chunk string|number
---@return aio.http.ResponseWriter
function Writer:write(chunk) end

---Ends the body. Harmless when repeated.
function Writer:close() end

---To-be-closed: close().
function Writer:__close() end

---A request handler: returns the response (or streams it with req:respond).
---@alias aio.http.Handler async fun(req: aio.http.Request): aio.http.Result?

---A middleware: returns next(req)'s result (maybe changed) or its own.
---@alias aio.http.Middleware async fun(req: aio.http.Request, next: async fun(req: aio.http.Request): aio.http.Result?): aio.http.Result?

---An application: routes, middleware, static directories. Callable as a
---handler: app(req).
---@class aio.http.App
---@overload fun(req: aio.http.Request): aio.http.Result?
local App = {}

---Adds a route: `pattern` has literal segments, {name} (one segment) and a
---final {name...} (the rest of the path); `method` "*" matches any.
---@param method aio.http.Method|"*"
---@param pattern string starts with "/"
---@param handler aio.http.Handler
---@return aio.http.App
function App:route(method, pattern, handler) end

---@param pattern string
---@param handler aio.http.Handler
---@return aio.http.App
function App:get(pattern, handler) end

---@param pattern string
---@param handler aio.http.Handler
---@return aio.http.App
function App:post(pattern, handler) end

---@param pattern string
---@param handler aio.http.Handler
---@return aio.http.App
function App:put(pattern, handler) end

---@param pattern string
---@param handler aio.http.Handler
---@return aio.http.App
function App:patch(pattern, handler) end

---@param pattern string
---@param handler aio.http.Handler
---@return aio.http.App
function App:delete(pattern, handler) end

---@param pattern string
---@param handler aio.http.Handler
---@return aio.http.App
function App:head(pattern, handler) end

---@param pattern string
---@param handler aio.http.Handler
---@return aio.http.App
function App:options(pattern, handler) end

---Adds a middleware around every request (404s and 405s included); the
---first added is the outermost.
---@param fn aio.http.Middleware
---@return aio.http.App
function App:use(fn) end

---Serves the files under `dir` at `prefix` (GET, HEAD): sendfile,
---Content-Type, Last-Modified/If-Modified-Since, Range; never a path
---outside `dir`.
---@param prefix string
---@param dir string
---@return aio.http.App
function App:static(prefix, dir) end

---A new application.
---@return aio.http.App
---@nodiscard
function aio.http.App() end

---Options of aio.http.listen.
---@class aio.http.ListenOptions
---@field host? string the address to listen on ("127.0.0.1"); a name is resolved
---@field port? integer 0 (default): any free port
---@field backlog? integer the listen queue length (1024)
---@field reuse_port? boolean SO_REUSEPORT: several processes on one port (false)
---@field max_connections? integer accepting pauses beyond it (0: no limit)
---@field max_header_size? integer bytes of a request head (8192; 431 past it)
---@field max_body? integer bytes of a request body (1 MiB; 413 past it; 0: no limit)
---@field header_timeout? number seconds to receive a head (10; 408)
---@field idle_timeout? number seconds a keep-alive connection may wait (60)
---@field body_timeout? number longest silence while a body is read (60; 408)
---@field grace? number the default grace of server:close() (0)

---What server:stats() returns.
---@class aio.http.ServerStats
---@field connections integer open connections
---@field requests integer requests answered
---@field in_flight integer handler tasks running
---@field accepted integer connections ever accepted
---@field taken_over integer connections taken over (WebSocket), still open

---A listening HTTP server.
---@class aio.http.Server
---@field host string the address it listens on
---@field port integer the port (the real one when 0 was asked)
---@field url string "http://host:port"
local HttpServer = {}

---Stops accepting, closes idle connections, lets requests in flight finish
---for `grace` seconds (listen's grace, 0), then cancels the rest. In a
---task, suspends until done (shielded). Harmless when repeated.
---@async
---@param grace? number
function HttpServer:close(grace) end

---Suspends until the server is closed.
---@async
function HttpServer:wait() end

---Counters.
---@return aio.http.ServerStats
---@nodiscard
function HttpServer:stats() end

---To-be-closed: close() with the default grace.
---@async
function HttpServer:__close() end

---Listens and serves each request with `app` in a task of its own.
---@param app aio.http.App|aio.http.Handler
---@param opts? aio.http.ListenOptions
---@return aio.http.Server
function aio.http.listen(app, opts) end


------------------------------------------------------------------------
-- Files: aio.fs
------------------------------------------------------------------------

---Files and directories on libuv's thread pool: the loop never blocks.
---Failures raise `io` with `code` ("ENOENT", "EACCES", ...) and `path`.
---@class aio.fs
aio.fs = {}

---What aio.fs.stat returns (links are followed).
---@class aio.fs.Stat
---@field type aio.fs.FileType
---@field size integer bytes
---@field mode integer permission bits (e.g. 420 for 0644)
---@field mtime number last modification, in seconds
---@field atime number last access, in seconds
---@field ctime number last status change, in seconds
---@field ino integer
---@field dev integer
---@field nlink integer
---@field uid integer
---@field gid integer
---@field blocks integer

---Options of aio.fs.mkdir.
---@class aio.fs.MkdirOptions
---@field mode? integer permission bits before the umask (0777, i.e. 511)
---@field parents? boolean also create missing parents, and accept an existing directory

---An open file. One operation runs at a time; tasks sharing a file take
---turns in order. Closed by close(), `<close>`, the garbage collector, or
---at the end of aio.run.
---@class aio.fs.File
local File = {}

---Reads by formats as io.read: a byte count (nil at the end; 0 tests for
---the end), "a" (the rest, "" at the end), "l" (a line without its
---newline, nil at the end; the default), "L" (with it). One value per
---format. (suspends)
---@async
---@param ... aio.fs.ReadFormat
---@return string? ...
function File:read(...) end

---An iterator over `file:read(...)` (default "l") until it gives nil:
---`for line in f:lines() do ... end` (each step suspends). The file stays
---open.
---@param ... aio.fs.ReadFormat
---@return async fun(): string?
function File:lines(...) end

---Writes strings and numbers in order; returns the file. (suspends)
---@async
---@param ... string|number
---@return aio.fs.File self
function File:write(...) end

---Moves the position: `whence` "set", "cur" (default) or "end", plus
---`offset` (0); returns the new position from the start. (suspends)
---@async
---@param whence? aio.fs.Whence
---@param offset? integer
---@return integer position
function File:seek(whence, offset) end

---Closes the file; harmless when repeated. In a task it waits for the
---system's close and raises `io` if it failed. (suspends in a task)
---@async
---@return true
function File:close() end

---To-be-closed: close().
---@async
function File:__close() end

---The whole file as a string. (suspends)
---@async
---@param path string
---@return string
---@nodiscard
function aio.fs.read_file(path) end

---Creates or truncates the file, then writes `data`. (suspends)
---@async
---@param path string
---@param data string|number
function aio.fs.write_file(path, data) end

---Creates the file if needed and appends `data`. (suspends)
---@async
---@param path string
---@param data string|number
function aio.fs.append_file(path, data) end

---Opens a file (mode "r" by default). (suspends)
---@async
---@param path string
---@param mode? aio.fs.OpenMode
---@return aio.fs.File
---@nodiscard
function aio.fs.open(path, mode) end

---Information about a file, following links. (suspends)
---@async
---@param path string
---@return aio.fs.Stat
---@nodiscard
function aio.fs.stat(path) end

---`true` if `path` exists; raises for errors other than "does not exist".
---(suspends)
---@async
---@param path string
---@return boolean
---@nodiscard
function aio.fs.exists(path) end

---Creates a directory (with `opts.parents`, also its missing parents).
---(suspends)
---@async
---@param path string
---@param opts? aio.fs.MkdirOptions
function aio.fs.mkdir(path, opts) end

---Removes a file or an empty directory. (suspends)
---@async
---@param path string
function aio.fs.remove(path) end

---Renames (moves) a file or directory, replacing `to`. (suspends)
---@async
---@param from string
---@param to string
function aio.fs.rename(from, to) end

---The names in a directory, sorted, without "." and "..". (suspends)
---@async
---@param dir string
---@return string[]
---@nodiscard
function aio.fs.list(dir) end

------------------------------------------------------------------------
-- TCP: aio.tcp
------------------------------------------------------------------------

---TCP connections (Streams) and servers on the aio loop. Reading happens
---only while a task waits for data; writes wait while the kernel is full
---(backpressure).
---@class aio.tcp
---@field Stream aio.tcp.Stream the methods table of streams
aio.tcp = {}

---Options of aio.tcp.connect.
---@class aio.tcp.ConnectOptions
---@field timeout? number seconds for resolving, connecting and the TLS handshake (raises `timeout`, phase "connect")
---@field nodelay? boolean set TCP_NODELAY (true)
---@field family? aio.tcp.Family resolve to IPv4 or IPv6 only
---@field tls? boolean|aio.tcp.TlsOptions the stream is over TLS (OpenSSL)

---TLS options of aio.tcp.connect (`tls = true` takes the defaults).
---@class aio.tcp.TlsOptions
---@field server_name? string the name sent as SNI and the certificate must match (default: the host)
---@field verify? boolean verify the certificate chain and the name (true)
---@field ca_file? string CA certificates (PEM) to verify with, instead of the system's
---@field alpn? string|string[] application protocols to offer ("h2", "http/1.1", ...)

---What stream:tls_info() tells.
---@class aio.tcp.TlsInfo
---@field protocol string "TLSv1.3", "TLSv1.2"
---@field cipher string the cipher suite
---@field alpn? string the application protocol the server chose

---Options of aio.tcp.listen.
---@class aio.tcp.ListenOptions
---@field backlog? integer the listen queue length (1024)
---@field nodelay? boolean set TCP_NODELAY on accepted connections (true)
---@field reuse_port? boolean SO_REUSEPORT: several processes on one port (false)

---A TCP connection. Closed by close(), `<close>`, the garbage collector,
---or when its listen handler returns.
---@class aio.tcp.Stream
local Stream = {}

---Up to `n` bytes (default: whatever has arrived), waiting for at least
---one; nil at the end of the stream. `read("a")` reads to the end.
---(suspends)
---@async
---@param n? integer|"a"
---@return string?
function Stream:read(n) end

---The next line without its "\n" (or "\r\n"), the last line even without
---one, nil at the end; a line longer than the limit (64 KiB) raises
---`protocol`. (suspends)
---@async
---@return string?
function Stream:read_line() end

---Exactly `n` bytes; raises `io` with code "EOF", `partial` and `expected`
---if the stream ends first. (suspends)
---@async
---@param n integer
---@return string
function Stream:read_exactly(n) end

---Writes strings and numbers; returns once the kernel took them (at once
---while the peer keeps up). Returns the stream. (suspends)
---@async
---@param ... string|number
---@return aio.tcp.Stream self
function Stream:write(...) end

---Sends the end of the stream after what is queued; reading goes on.
---Returns the stream. (suspends)
---@async
---@return aio.tcp.Stream self
function Stream:shutdown() end

---Closes the stream (harmless when repeated); a task waiting in a read
---raises `closed`.
---@return true
function Stream:close() end

---The peer's address and port.
---@return string host
---@return integer port
---@nodiscard
function Stream:peer_address() end

---The local address and port.
---@return string host
---@return integer port
---@nodiscard
function Stream:local_address() end

---Sets the longest line read_line accepts (64 KiB by default); returns the
---stream.
---@param bytes integer
---@return aio.tcp.Stream self
function Stream:set_limit(bytes) end

---Each later read or write that waits longer than `seconds` raises
---`timeout` (phase "read" or "write"); nil or 0 removes the limit. Returns
---the stream.
---@param seconds? number
---@return aio.tcp.Stream self
function Stream:set_timeout(seconds) end

---The TLS session of a stream made with `tls`, nil for a plain one.
---@return aio.tcp.TlsInfo?
---@nodiscard
function Stream:tls_info() end

---To-be-closed: close().
function Stream:__close() end

---A listening server; each connection runs the handler in its own task.
---As a `<close>` variable it is closed and then waited for (wait_closed).
---@class aio.tcp.Server
---@field host string the address it listens on
---@field port integer the port it listens on (the real one when 0 was asked)
local Server = {}

---Stops accepting connections (in a task, also waits for the accepting
---task); connections being served go on. Harmless when repeated.
---(suspends in a task)
---@async
function Server:close() end

---Waits until every connection handler has ended. (suspends)
---@async
function Server:wait_closed() end

---Waits until another task closes the server; cancelling the caller closes
---it. (suspends)
---@async
function Server:serve_forever() end

---The address and port the server listens on.
---@return string host
---@return integer port
---@nodiscard
function Server:address() end

---To-be-closed: close(), then wait_closed(). (suspends)
---@async
function Server:__close() end

---Connects to `host`:`port` and returns a Stream; a host name is resolved
---and its addresses tried in turn. Raises `connect` (code, address, port,
---host), `dns` or `timeout`. (suspends)
---@async
---@param host string
---@param port integer
---@param opts? aio.tcp.ConnectOptions
---@return aio.tcp.Stream
---@nodiscard
function aio.tcp.connect(host, port, opts) end

---Listens on `host`:`port` (0: any free port) and runs `handler(stream)` in
---a new task for each connection; the stream is closed when the handler
---ends. Raises `io` ("EADDRINUSE", ...). (suspends only to resolve a host
---name; an IP address does not)
---@async
---@param host string an address such as "127.0.0.1", "0.0.0.0" or "::", or a host name
---@param port integer
---@param handler async fun(stream: aio.tcp.Stream)
---@param opts? aio.tcp.ListenOptions
---@return aio.tcp.Server
function aio.tcp.listen(host, port, handler, opts) end

------------------------------------------------------------------------
-- DNS: aio.dns
------------------------------------------------------------------------

---Name resolution with getaddrinfo on libuv's thread pool.
---@class aio.dns
aio.dns = {}

---Options of aio.dns.resolve.
---@class aio.dns.ResolveOptions
---@field family? aio.dns.Family "any" (default), "inet" or "inet6"

---The addresses of `host` (IPv4 and IPv6, in the resolver's order, each
---once); an IP address resolves to itself. Raises `dns` with `code` and
---`host`. (suspends)
---@async
---@param host string
---@param opts? aio.dns.ResolveOptions
---@return string[]
---@nodiscard
function aio.dns.resolve(host, opts) end

------------------------------------------------------------------------
-- Threads: aio.to_thread
------------------------------------------------------------------------

---Runs `fn(...)` on a libuv worker thread in a separate Lua state and
---returns its results. `fn` may have no upvalue but _ENV (`usage`);
---arguments and results are copied (nil, booleans, numbers, strings and
---tables of those). Errors in `fn` raise `thread` (`message`, `traceback`,
---`value`). (suspends)
---@async
---@generic R
---@param fn fun(...: any): R
---@param ... nil|boolean|number|string|table arguments, copied
---@return R
---@return any ...
function aio.to_thread(fn, ...) end

---The module `require "aio.io.thread"`: aio.to_thread and its limits.
---@class aio.io.thread
---@field pool_size integer the size of libuv's thread pool (UV_THREADPOOL_SIZE, default 4)
local thread = {}

---Same as aio.to_thread. (suspends)
---@async
---@generic R
---@param fn fun(...: any): R
---@param ... nil|boolean|number|string|table arguments, copied
---@return R
---@return any ...
function thread.to_thread(fn, ...) end

---The most aio.to_thread calls that run at once (default: the pool size
---minus one); with `n`, sets it first.
---@param n? integer
---@return integer
function thread.limit(n) end

------------------------------------------------------------------------
-- Processes: aio.process
------------------------------------------------------------------------

---Running programs without blocking the loop; no shell, no orphans.
---@class aio.process
aio.process = {}

---Options of aio.process.run.
---@class aio.process.Options
---@field input? string written to the child's stdin (otherwise stdin is /dev/null)
---@field cwd? string the child's working directory
---@field env? table<string, string|number|false> variables set, or removed with `false`, on top of this environment
---@field stdout? aio.process.Stdio "pipe" (captured, default), "inherit" or "null"
---@field stderr? aio.process.Stdio "pipe" (captured, default), "inherit" or "null"
---@field timeout? number seconds; then the child's process group is killed, it is reaped and `timeout` raised

---What aio.process.run returns. A non-zero exit is not an error.
---@class aio.process.Result
---@field code integer the exit status; minus the signal number if a signal killed it
---@field signal? string the name of the signal that killed it ("SIGKILL")
---@field stdout? string the captured output (when stdout is "pipe")
---@field stderr? string the captured error output (when stderr is "pipe")

---Runs `argv` (`{program, args...}`, looked up in PATH) to its end and
---returns its exit status and output. Cancelling the caller (or the
---timeout) kills the child's process group and reaps it before raising.
---Raises `io` (code, path) when the program cannot start. (suspends)
---@async
---@param argv (string|number)[]
---@param opts? aio.process.Options
---@return aio.process.Result
function aio.process.run(argv, opts) end

------------------------------------------------------------------------
-- Signals: aio.signal
------------------------------------------------------------------------

---A signal registration; close() (or `<close>`) stops it.
---@class aio.signal.Registration
---@field name string the signal's canonical name ("SIGTERM")
local Registration = {}

---Stops handling the signal (handlers already started go on); in a task,
---also waits for the registration's task. Harmless when repeated.
---(suspends in a task)
---@async
function Registration:close() end

---To-be-closed: close().
---@async
function Registration:__close() end

------------------------------------------------------------------------
-- Testing: aio.testing (and require "aio.busted")
------------------------------------------------------------------------

---Running async code under test, on a virtual clock.
---@class aio.testing
aio.testing = {}

---Options of aio.testing.run and of the aio.busted helpers.
---@class aio.testing.Options
---@field clock? "virtual"|"real" "virtual" (default): aio.now() starts at 0 and jumps to the next deadline whenever no task is ready and none waits on I/O
---@field autojump? number real seconds the loop must stay idle before the virtual clock jumps (0)
---@field timeout? number real seconds the run may take; then the main task is cancelled and `timeout` raised (none)
---@field strict? boolean raise `usage` if fn returns with tasks still running or a task's error was never retrieved (aio.busted: always)

---Like aio.run(fn), with a virtual clock by default: aio.now() starts at
---0, and whenever no task is ready and none waits on I/O (a socket, a
---file, a thread call, a process, an HTTP transfer), time jumps to the
---next deadline; while a task waits on I/O it runs at real speed.
---@generic R
---@param fn fun(): R
---@param opts? aio.testing.Options
---@return R ...
function aio.testing.run(fn, opts) end

---The real monotonic clock in seconds, which a virtual clock leaves alone.
---@return number
---@nodiscard
function aio.testing.real_now() end

---busted's `it` with a body that runs as the main task of a strict
---aio.testing.run (see `require "aio.busted"`).
---@param name string
---@param fn async fun()
---@param opts? aio.testing.Options
function aio.testing.it(name, fn, opts) end

---Runs `handler(name)` as a new task each time signal `name` arrives.
---Registering SIGINT replaces aio.run's default (cancel the main task)
---until the registration is closed.
---@param name aio.signal.Name
---@param handler async fun(name: string)
---@return aio.signal.Registration
function aio.signal(name, handler) end

------------------------------------------------------------------------
-- Workers: aio.workers
------------------------------------------------------------------------

---A worker that did not stop cleanly (aio.workers' second result).
---@class aio.workers.Failure
---@field worker integer its index
---@field pid integer
---@field code? integer its exit status
---@field signal? string the signal that killed it

---Runs `main(i, ...)` in `n` forked processes, each under its own aio.run;
---restarts one that dies; SIGINT/SIGTERM to this process (the master) stop
---them all gracefully. Returns in the master once all have stopped. Call
---it outside aio.run (raises `usage`), before any loop or thread exists.
---@param n integer
---@param main fun(i: integer, ...)
---@param ... any
---@return boolean ok
---@return aio.workers.Failure[]? failures
function aio.workers(n, main, ...) end

return aio
