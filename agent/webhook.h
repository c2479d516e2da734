/* SPDX-License-Identifier: Apache-2.0 */
/* install.webhooks: STARTED, SUCCEEDED, FAILED. A failing webhook is logged, never fatal. */
#pragma once

#include "config.h"

/* Sends every webhook of c for event ("STARTED" | "SUCCEEDED" | "FAILED"), URL and payload
 * templated with {{.Hostname}} {{.MACAddr}} {{.IPAddrV4}} {{.IPAddrV6}} of the management
 * interface. Short timeout, bounded retries. Never fails the caller. */
void webhook_send(const struct config *c, const char *event);
