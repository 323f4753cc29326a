/*
** signame.c
** Signal names ("SIGTERM" <-> 15), and SIGPIPE made harmless.
** See LICENSE
*/

#include <signal.h>
#include <string.h>

#include "io.h"


static const struct { const char *name; int num; } signals[] = {
  {"SIGHUP", SIGHUP}, {"SIGINT", SIGINT}, {"SIGQUIT", SIGQUIT},
  {"SIGILL", SIGILL}, {"SIGTRAP", SIGTRAP}, {"SIGABRT", SIGABRT},
  {"SIGBUS", SIGBUS}, {"SIGFPE", SIGFPE}, {"SIGKILL", SIGKILL},
  {"SIGUSR1", SIGUSR1}, {"SIGSEGV", SIGSEGV}, {"SIGUSR2", SIGUSR2},
  {"SIGPIPE", SIGPIPE}, {"SIGALRM", SIGALRM}, {"SIGTERM", SIGTERM},
  {"SIGCHLD", SIGCHLD}, {"SIGCONT", SIGCONT}, {"SIGSTOP", SIGSTOP},
  {"SIGTSTP", SIGTSTP}, {"SIGTTIN", SIGTTIN}, {"SIGTTOU", SIGTTOU},
  {"SIGURG", SIGURG}, {"SIGXCPU", SIGXCPU}, {"SIGXFSZ", SIGXFSZ},
  {"SIGVTALRM", SIGVTALRM}, {"SIGPROF", SIGPROF}, {"SIGWINCH", SIGWINCH},
  {"SIGIO", SIGIO}, {"SIGSYS", SIGSYS},
  {NULL, 0}
};


/* SIGPIPE's handler: nothing. */
static void on_sigpipe (int sig) { (void)sig; }


/*
** Writing to a connection or pipe whose reader is gone must fail with
** EPIPE instead of killing the process: unless the program chose a
** disposition for SIGPIPE, give it a handler that does nothing. (Unlike
** SIG_IGN, a handler does not pass on to the programs aio.process starts.)
*/
void aio__ignore_sigpipe (void) {
  struct sigaction sa;
  if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
      !(sa.sa_flags & SA_SIGINFO)) {
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_sigpipe;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGPIPE, &sa, NULL);
  }
}


/* "SIGTERM" for 15; NULL for an unknown number. */
const char *aio__signame (int signum) {
  int i;
  for (i = 0; signals[i].name != NULL; i++)
    if (signals[i].num == signum) return signals[i].name;
  return NULL;
}


/* 15 for "SIGTERM" (or "TERM"); 0 for an unknown name. */
int aio__signum (const char *name) {
  int i;
  for (i = 0; signals[i].name != NULL; i++)
    if (strcmp(signals[i].name, name) == 0 ||
        strcmp(signals[i].name + 3, name) == 0)
      return signals[i].num;
  return 0;
}
