/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One config URL for a rack: install.config_url, install.iso_url and install.iso_checksum_url may
 * hold ${mac}, ${mac_hyphen}, ${uuid}, ${serial} and ${hostname}, expanded on the node from what
 * it is (the NIC that booted, SMBIOS, the name DHCP gave) before anything is fetched.
 */
#pragma once

#include <stdbool.h>

/* Where a node's facts are read. root prefixes every path ("" on the node; a fake tree in tests);
 * cmdline is the kernel command line text (for BOOTIF=). */
struct url_facts {
        const char *root;
        const char *cmdline;
};

/* true when s holds "${". */
bool url_template_used(const char *s);

/* NULL when every ${...} in s is well formed and names a known variable, else a malloc'ed
 * description of the first problem ("unknown variable ${foo}; known: ..."). NULL on OOM too. */
char *url_template_problem(const char *s);

/*
 * Expands every ${name} of tmpl with this node's values, percent-encoded (every byte but
 * A-Z a-z 0-9 - . _ ~ :). Each value is read only when used. 0 with *ret set; -EINVAL when a
 * variable is unknown or its value cannot be read, with *ret_problem saying which and why (for the
 * caller to report under its key); -ENOMEM.
 */
int url_template_expand(const char *tmpl, const struct url_facts *f, char **ret, char **ret_problem);
