/* SPDX-License-Identifier: Apache-2.0 */
/* Memory preflight: the seed's 8 GB floor, judged on installed memory, and room for the ISO in tmpfs. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "config.h"

struct memory_info {
        uint64_t installed_bytes; /* physical memory installed (memory blocks / DMI), best estimate */
        uint64_t memtotal_bytes;  /* MemTotal from /proc/meminfo */
        uint64_t available_bytes; /* MemAvailable from /proc/meminfo */
        /* Additions: */
        bool from_blocks;         /* installed_bytes counts online memory blocks (else MemTotal rounded) */
        unsigned n_blocks;        /* online memory blocks counted */
};

/* The seed's floor: 8 GB, taken as 8 GiB installed. */
#define MEMORY_FLOOR_BYTES (UINT64_C(8) << 30)
/* Left free for the installer once the ISO sits in tmpfs. */
#define MEMORY_INSTALLER_RESERVE_BYTES (UINT64_C(1) << 30)

/*
 * Installed memory when the kernel shows no memory blocks: MemTotal rounded up to the next whole GiB.
 * MemTotal leaves out what the kernel reserves before it counts (its image, the struct page array of
 * about 1.6 %, firmware tables, a crashkernel area); at the sizes that matter here that is always
 * less than 1 GiB, and memory comes in whole GiB. So an 8 GiB machine (MemTotal about 7.7-7.8 GiB)
 * counts as 8 GiB and a 7 GiB one (about 6.7-6.8 GiB) as 7 GiB; the floor passes exactly when
 * MemTotal is above 7 GiB.
 */
uint64_t memory_installed_from_memtotal(uint64_t memtotal_bytes);

/* Reads <root>/proc/meminfo and <root>/sys/devices/system/memory (root "" or NULL for the live system). */
int memory_read(const char *root, struct memory_info *ret);

/* The 8 GB floor. Prints one line naming found and needed memory. skipchecks turns a failure into a
 * warning. Returns 0 or -ENOMEM (message printed). */
int memory_check(const struct config *c, const char *root);

/* Does an ISO of iso_size bytes fit in tmpfs with 1 GiB left for the installer? Holds even with
 * skipchecks. Returns 0 or -ENOSPC (message printed with memory found, needed and ISO size). */
int memory_check_iso_fits(const struct memory_info *m, uint64_t iso_size);
