/* SPDX-License-Identifier: Apache-2.0 */
/* How the machine booted: UEFI or legacy BIOS. It decides the layout (layout.h) and the boot loader
 * the install writes (install.h), as elemental decides it from /sys/firmware/efi. */
#pragma once

#include <stdbool.h>

/* Whether the machine booted by UEFI: the kernel made /sys/firmware/efi. Read below
 * $HARVESTER_INSTALL_FACTS_ROOT when set (tests pick either firmware with a fake tree). */
bool firmware_is_efi(void);
/* "UEFI" or "legacy BIOS", for messages. */
const char *firmware_name(bool efi);
