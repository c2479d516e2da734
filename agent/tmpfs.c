/* SPDX-License-Identifier: Apache-2.0 */
#include <inttypes.h>
#include <libmount.h>
#include <sys/stat.h>

#include "log.h"
#include "tmpfs.h"

static inline void mnt_free_contextp(struct libmnt_context **c) {
        mnt_free_context(*c);
}
#define _cleanup_mnt_context_ __attribute__((cleanup(mnt_free_contextp)))

/* mkdir -p with mode 0700 for every directory created. */
static int mkdir_parents(const char *path) {
        _cleanup_free_ char *p = strdup(path);
        if (!p)
                return -ENOMEM;
        for (char *s = p + 1;; s++) {
                if (*s != '/' && *s != 0)
                        continue;
                char c = *s;
                *s = 0;
                if (mkdir(p, 0700) < 0 && errno != EEXIST)
                        return -errno;
                *s = c;
                if (c == 0)
                        break;
        }
        struct stat st;
        if (stat(path, &st) < 0)
                return -errno;
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* The error libmount reports, as a message and an errno. */
static int mnt_failure(struct libmnt_context *cxt, int rc, char *buf, size_t len) {
        int e = mnt_context_syscall_called(cxt) ? mnt_context_get_syscall_errno(cxt) : 0;
        if (mnt_context_get_excode(cxt, rc, buf, len) == MNT_EX_SUCCESS || !buf[0])
                snprintf(buf, len, "%s", strerror(e > 0 ? e : rc < 0 ? -rc : EIO));
        return e > 0 ? -e : rc < 0 ? rc : -EIO;
}

int tmpfs_mount(const char *dir, uint64_t size_bytes) {
        int r = mkdir_parents(dir);
        if (r < 0)
                return log_error_errno(r, "Cannot create the directory \"%s\" for the ISO's tmpfs: %s",
                                       dir, strerror(-r));

        _cleanup_free_ char *opts = strdup_printf("mode=0700,size=%" PRIu64 ",nosuid,nodev,noexec", size_bytes);
        _cleanup_mnt_context_ struct libmnt_context *cxt = mnt_new_context();
        if (!opts || !cxt)
                return log_oom();
        if (mnt_context_set_fstype(cxt, "tmpfs") < 0 || mnt_context_set_source(cxt, "harvester-iso") < 0 ||
            mnt_context_set_target(cxt, dir) < 0 || mnt_context_set_options(cxt, opts) < 0 ||
            mnt_context_disable_helpers(cxt, 1) < 0 || mnt_context_disable_mtab(cxt, 1) < 0)
                return log_oom();

        char size_text[32], buf[256] = "";
        format_bytes(size_text, sizeof(size_text), size_bytes);
        int rc = mnt_context_mount(cxt);
        if (rc != 0 || mnt_context_get_status(cxt) != 1) {
                r = mnt_failure(cxt, rc, buf, sizeof(buf));
                (void)rmdir(dir);
                return log_error_errno(r, "Cannot mount a tmpfs of %s on \"%s\" for the ISO: %s",
                                       size_text, dir, buf);
        }
        log_info("Mounted a tmpfs of %s on \"%s\" for the ISO.", size_text, dir);
        return 0;
}

int tmpfs_umount(const char *dir) {
        _cleanup_mnt_context_ struct libmnt_context *cxt = mnt_new_context();
        if (!cxt)
                return log_oom();
        if (mnt_context_set_target(cxt, dir) < 0 || mnt_context_disable_helpers(cxt, 1) < 0 ||
            mnt_context_disable_mtab(cxt, 1) < 0)
                return log_oom();
        char buf[256] = "";
        int rc = mnt_context_umount(cxt);
        if (rc != 0 || mnt_context_get_status(cxt) != 1) {
                int r = mnt_failure(cxt, rc, buf, sizeof(buf));
                return log_error_errno(r, "Cannot unmount the ISO's tmpfs at \"%s\": %s", dir, buf);
        }
        if (rmdir(dir) < 0 && errno != ENOENT)
                log_warning("Cannot remove \"%s\" after unmounting it: %s", dir, strerror(errno));
        log_debug("Unmounted the ISO's tmpfs at \"%s\".", dir);
        return 0;
}
