/*
 * LD_PRELOAD for the daemons the tests start (saslauthd, Apache, Dovecot's auth worker): their
 * pam_start() reads its service files from $PAM_MAILAUTH_TEST_CONFDIR, through libpam's own
 * pam_start_confdir() (Linux-PAM >= 1.4). Nothing is copied and nothing is shared.
 *
 * It replaces pam_wrapper, which copies each process's services into one of a few dozen
 * /tmp/pam.X directories chosen without a lock: two daemons whose processes started at the
 * same moment could end up reading each other's services.
 *
 * pam_syslog() lines go to the daemon's stderr (its log file in the tests), or to syslog
 * when $PAM_MAILAUTH_TEST_USE_SYSLOG is set (tests that capture /dev/log).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <security/pam_appl.h>
#include <security/pam_ext.h>

int pam_start(const char *service, const char *user, const struct pam_conv *conv,
              pam_handle_t **pamh)
{
    return pam_start_confdir(service, user, conv, getenv("PAM_MAILAUTH_TEST_CONFDIR"), pamh);
}

typedef void (*vsyslog_fn)(const pam_handle_t *, int, const char *, va_list);

void pam_vsyslog(const pam_handle_t *pamh, int priority, const char *fmt, va_list args)
{
    if (getenv("PAM_MAILAUTH_TEST_USE_SYSLOG") != NULL) {
        vsyslog_fn real = (vsyslog_fn)dlsym(RTLD_NEXT, "pam_vsyslog");
        if (real != NULL) {
            real(pamh, priority, fmt, args);
            return;
        }
    }
    char line[2048];
    vsnprintf(line, sizeof line, fmt, args);
    fprintf(stderr, "PAM_SYSLOG[%d] <%d>: %s\n", (int)getpid(), priority, line);
}

void pam_syslog(const pam_handle_t *pamh, int priority, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    pam_vsyslog(pamh, priority, fmt, args);
    va_end(args);
}
