/* SPDX-License-Identifier: Apache-2.0 */
/* Signals during the install (see interrupt.h). */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "interrupt.h"
#include "log.h"
#include "util.h"

static volatile sig_atomic_t received;

static void on_signal(int sig) {
        int saved = errno;
        if (!received) {
                received = sig;
                /* The children: a step in progress (mkfs, mke2fs ...) ends now, not after minutes.
                 * Only when the agent leads its process group (systemd's units, a shell's job):
                 * never a group that belongs to whoever started us. */
                if (getpgrp() == getpid()) {
                        struct sigaction ign = { .sa_handler = SIG_IGN }, old;
                        sigemptyset(&ign.sa_mask);
                        if (sigaction(SIGTERM, &ign, &old) == 0) {
                                (void)kill(0, SIGTERM);
                                (void)sigaction(SIGTERM, &old, NULL);
                        }
                }
        }
        errno = saved;
}

int interrupt_setup(void) {
        static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
        struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART: blocking calls return EINTR */
        sigemptyset(&sa.sa_mask);
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                sigaddset(&sa.sa_mask, sigs[i]);
        for (size_t i = 0; i < ELEMENTSOF(sigs); i++)
                if (sigaction(sigs[i], &sa, NULL) < 0)
                        return -errno;
        return 0;
}

int interrupt_pending(void) {
        return received;
}

static const char *signal_name(int sig) {
        return sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "a signal";
}

int interrupt_check(const char *what) {
        if (!received)
                return 0;
        log_error("Stopped by %s %s.", signal_name(received), what);
        return -EINTR;
}

const char *interrupt_reason(void) {
        static char buf[160];
        if (!received)
                return NULL;
        snprintf(buf, sizeof buf, "stopped by %s (the unit was stopped, or the machine is shutting down) before the install was complete.",
                 signal_name(received));
        return buf;
}
