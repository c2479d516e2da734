/* SPDX-License-Identifier: Apache-2.0 */
/* The ISO: streamed from install.iso_url into a tmpfs, verified as it arrives, contents checked. */
#pragma once

#include <stdint.h>

#include "config.h"

struct iso_image {
        char *tmpfs_dir; /* mounted tmpfs (mode 0700), NULL when not mounted */
        char *path;      /* the verified ISO inside it */
        uint64_t size;
        char *digest;    /* "sha512:<hex>" actually computed */
};

/* Memory fit, tmpfs, download with verification (iso_checksum or iso_checksum_url), contents check
 * (iso_check_contents). Messages printed here. 0, or -errno (-ENOSPC too little memory/tmpfs,
 * -EBADMSG checksum mismatch, -ENOENT file missing in the ISO or 404, ...). On failure nothing is
 * left behind (partial file removed, tmpfs unmounted). */
int iso_fetch(const struct config *c, struct iso_image *ret);
/* Removes the ISO and unmounts the tmpfs. Safe on a zeroed struct. */
void iso_image_release(struct iso_image *i);
