/* SPDX-License-Identifier: Apache-2.0 */
#include <stdio.h>

#include "progress.h"
#include "webhook.h"

int progress_limit_percent(struct progress_limit *l, uint64_t held, uint64_t total, uint64_t now_usec) {
        if (total == 0 || total == UINT64_MAX)
                return -1;
        if (held > total)
                held = total;
        /* held * 100 overflows only past 184 PB. */
        int step = (int)(held * 100 / total) / PROGRESS_STEP_PERCENT * PROGRESS_STEP_PERCENT;
        if (step <= l->last_percent)
                return -1;
        if (step < 100 && l->last_percent > 0 && now_usec - l->last_usec < PROGRESS_MIN_INTERVAL_USEC)
                return -1;
        l->last_percent = step;
        l->last_usec = now_usec;
        return step;
}

/* The install's PROGRESS state: one install per process. */
static struct {
        const struct config *config;
        bool *disabled; /* one per install.webhooks entry */
        char stage[32];
        struct progress_limit limit;
} state;

static void send(const char *percent) {
        const struct webhook_event_data d = { .stage = state.stage, .percent = percent };
        webhook_send_event(state.config, "PROGRESS", &d, state.disabled);
}

void progress_start(const struct config *c, const char *stage) {
        progress_stop();
        bool any = false;
        for (size_t i = 0; c && i < c->install.n_webhooks; i++)
                if (streq_ptr(c->install.webhooks[i].event, "PROGRESS"))
                        any = true;
        if (!any)
                return;
        state.disabled = calloc(c->install.n_webhooks, sizeof(bool));
        if (!state.disabled)
                return; /* out of memory: no PROGRESS events, the install goes on */
        state.config = c;
        progress_stage(stage);
}

void progress_stage(const char *stage) {
        snprintf(state.stage, sizeof(state.stage), "%s", strempty(stage));
        state.limit = (struct progress_limit) {};
        if (state.config)
                send(NULL);
}

void progress_download(const char *what, uint64_t held, uint64_t total) {
        if (!state.config || !streq_ptr(what, "ISO") || !streq(state.stage, "iso"))
                return;
        int p = progress_limit_percent(&state.limit, held, total, now_usec());
        if (p < 0)
                return;
        char percent[16];
        snprintf(percent, sizeof(percent), "%d", p);
        send(percent);
}

void progress_stop(void) {
        free(state.disabled);
        state.disabled = NULL;
        state.config = NULL;
        state.stage[0] = 0;
        state.limit = (struct progress_limit) {};
}
