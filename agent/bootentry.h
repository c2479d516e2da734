/* SPDX-License-Identifier: Apache-2.0 */
/* The UEFI boot entry of the installed disk (libefiboot/libefivar), as elemental makes it. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BOOT_ENTRY_NAME "elemental-shim"
/* On COS_GRUB, the first partition of the install disk. */
#define BOOT_ENTRY_PARTITION 1
#define BOOT_ENTRY_LOADER "\\EFI\\elemental\\shim.efi"

/* Boot#### entry `name` for `loader` on partition `partition` of `disk`: stale entries of that
 * name removed (from BootOrder too), the new one prepended to BootOrder. No EFI variable services (a
 * BIOS boot): a warning and 0. Messages printed here. 0 or -errno. */
int boot_entry_install(const char *disk, int partition, const char *loader, const char *name);

/* Before any write, on a UEFI layout: the kernel offers EFI variables (the efivars directory
 * exists) but libefivar cannot use them, because efivarfs was not mounted when the agent started.
 * -ENOTSUP with the message printed, else 0. */
int boot_entry_check(void);

/* The parts, without EFI variables (tested on their own): */

/* An EFI_LOAD_OPTION, active, with `desc` and the device path dp (dp_len bytes), no optional
 * data, into a new buffer. 0 or -errno. */
int boot_entry_load_option(const uint8_t *dp, size_t dp_len, const char *desc, uint8_t **ret, size_t *ret_len);
/* The description of a load option, as ASCII ("?" for other characters) into buf; -EINVAL when
 * data is not a load option. */
int boot_entry_option_desc(const uint8_t *data, size_t len, char *buf, size_t buflen);
/* The new BootOrder: `entry` first, then `order` without `entry` and without the numbers in drop.
 * out holds n + 1 entries. Returns the count. */
size_t boot_order_prepend(const uint16_t *order, size_t n, uint16_t entry, const uint16_t *drop, size_t n_drop,
                          uint16_t *out);
/* The lowest number not in used[] (n of them); -ENOSPC when all 65536 are taken. */
int boot_entry_free_number(const uint16_t *used, size_t n);
