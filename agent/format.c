/* SPDX-License-Identifier: Apache-2.0 */
/* Filesystems for the new partitions (see format.h). */
#include <blkid/blkid.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "format.h"
#include "log.h"
#include "util.h"

extern char **environ;

static inline void blkid_free_probep(blkid_probe *p) { if (*p) blkid_free_probe(*p); }
#define _cleanup_blkid_probe_ _cleanup_(blkid_free_probep)

static inline void file_actions_destroyp(posix_spawn_file_actions_t **a) { if (*a) posix_spawn_file_actions_destroy(*a); }

int run_command(char *const argv[], char **ret_output) {
        posix_spawn_file_actions_t fa;
        _cleanup_(file_actions_destroyp) posix_spawn_file_actions_t *fap = NULL;
        _cleanup_close_ int rfd = -1, wfd = -1;
        _cleanup_free_ char *out = NULL;
        size_t len = 0, cap = 0;
        int pipefd[2], r;
        pid_t pid;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        rfd = pipefd[0];
        wfd = pipefd[1];
        r = posix_spawn_file_actions_init(&fa);
        if (r != 0)
                return -r;
        fap = &fa;
        if ((r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) != 0 ||
            (r = posix_spawn_file_actions_adddup2(&fa, wfd, 1)) != 0 ||
            (r = posix_spawn_file_actions_adddup2(&fa, wfd, 2)) != 0 ||
            (r = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0)
                return -r;
        r = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
        if (r != 0)
                return -r;
        close(wfd);
        wfd = -1;

        for (;;) {
                if (cap - len < 4096) {
                        size_t ncap = cap ? cap * 2 : 8192;
                        char *m = realloc(out, ncap);
                        if (!m) {
                                r = -ENOMEM;
                                break;
                        }
                        out = m;
                        cap = ncap;
                }
                ssize_t k = read(rfd, out + len, cap - len - 1);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        break;
                len += (size_t)k;
        }
        if (out)
                out[len] = 0;

        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (r < 0)
                return r;
        if (ret_output)
                *ret_output = out ? TAKE_PTR(out) : strdup("");
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* "mkfs.fat 4.2 (2021-01-31)", "mke2fs 1.47.0 (5-Feb-2023)": a name, a version, a date. */
static bool is_version_banner(const char *line) {
        const char *p = strchr(line, ' ');
        if (!p || p[1] < '0' || p[1] > '9')
                return false;
        p += strspn(p + 1, "0123456789.") + 1;
        size_t n = strlen(p);
        return n > 3 && p[0] == ' ' && p[1] == '(' && p[n - 1] == ')';
}

static bool reads_as_error(const char *line) {
        static const char *const words[] = { "error", "cannot", "can't", "unable", "failed", "invalid",
                                             "denied", "no such", "too small", "too large", "too big",
                                             "no space", "not enough", "read-only", "refus" };
        for (size_t k = 0; k < ELEMENTSOF(words); k++)
                if (strcasestr(line, words[k]))
                        return true;
        return false;
}

const char *command_error_line(char *output) {
        const char *error = NULL, *other = NULL;
        char *save = NULL;
        if (!output)
                return NULL;
        /* Progress meters end in backspaces ("0/560\b\b\b\b\b"): a backspace ends a line too. */
        for (char *line = strtok_r(output, "\r\n\b", &save); line; line = strtok_r(NULL, "\r\n\b", &save)) {
                line += strspn(line, " \t");
                if (!*line)
                        continue;
                if (reads_as_error(line))
                        error = line;
                else if (!is_version_banner(line))
                        other = line;
        }
        return error ?: other;
}

bool command_exists(const char *name) {
        const char *path = getenv("PATH") ?: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        _cleanup_free_ char *copy = strdup(path);
        if (!copy)
                return false;
        char *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *p = strdup_printf("%s/%s", d, name);
                struct stat st;
                if (p && stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0)
                        return true;
        }
        return false;
}

int format_verify(const char *node, const char *fstype, const char *label) {
        _cleanup_blkid_probe_ blkid_probe pr = NULL;
        const char *type = NULL, *lbl = NULL;
        errno = 0;
        pr = blkid_new_probe_from_filename(node);
        if (!pr)
                return errno > 0 ? -errno : -EIO;
        blkid_probe_enable_superblocks(pr, 1);
        blkid_probe_set_superblocks_flags(pr, BLKID_SUBLKS_TYPE | BLKID_SUBLKS_LABEL);
        blkid_probe_enable_partitions(pr, 0);
        int r = blkid_do_safeprobe(pr);
        if (r != 0)
                return -ENOMEDIUM; /* 1: nothing found; -2: ambivalent; -1: error */
        if (blkid_probe_lookup_value(pr, "TYPE", &type, NULL) < 0 || !streq(type, fstype))
                return -EMEDIUMTYPE;
        if (blkid_probe_lookup_value(pr, "LABEL", &lbl, NULL) < 0 || !streq(lbl, label))
                return -EMEDIUMTYPE;
        return 0;
}

int format_device(const char *node, const char *fstype, const char *label) {
        _cleanup_free_ char *out = NULL;
        char *vfat[] = { (char *)"mkfs.vfat", (char *)"-F", (char *)"32", (char *)"-n", (char *)label, (char *)node, NULL };
        /* -O none,<list>: exactly the features of FORMAT_EXT4_FEATURES, whatever the build host's
         * mke2fs.conf enables (orphan_file, metadata_csum_seed ... that the v1.1 OS cannot check).
         * Lazy inode tables and journal: the kernel zeroes inode tables in the background and
         * the uninit_bg/metadata_csum flags say which are not yet initialised, so nothing stale is
         * ever read as metadata; no discard, which takes minutes on some devices. -F: a whole
         * disk (the data disk) is accepted without a question. */
        char *ext4[] = { (char *)"mkfs.ext4", (char *)"-F", (char *)"-L", (char *)label,
                         (char *)"-O", (char *)"none," FORMAT_EXT4_FEATURES,
                         (char *)"-E", (char *)"lazy_itable_init=1,lazy_journal_init=1,nodiscard",
                         (char *)node, NULL };
        char **argv;

        if (streq(fstype, "vfat"))
                argv = vfat;
        else if (streq(fstype, "ext4"))
                argv = ext4;
        else
                return log_error_errno(EINVAL, "Do not know how to make a \"%s\" filesystem.", fstype);

        uint64_t t0 = now_usec();
        int r = run_command(argv, &out);
        if (r == -ENOENT)
                return log_error_errno(r, "%s is not installed (needed to format %s as %s); the %s package provides it.",
                                       argv[0], node, fstype, streq(fstype, "vfat") ? "dosfstools" : "e2fsprogs");
        if (r < 0)
                return log_error_errno(r, "Cannot run %s for %s: %s", argv[0], node, strerror(-r));
        if (r != 0) {
                /* The whole output for the log; the line that names the error last, for the
                 * FAILED line (never the tool's version banner). */
                log_info("%s failed for %s (exit status %d). Its output:", argv[0], node, r);
                char *save = NULL, *copy = strdup(strempty(out));
                for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save))
                        log_info("  %s", line);
                const char *why = command_error_line(copy);
                log_error("%s failed for %s (exit status %d): %s", argv[0], node, r,
                          why ?: "it printed nothing; see the install log.");
                free(copy);
                return -EIO;
        }
        log_debug("%s %s on %s in %.1f s.", argv[0], label, node, (double)(now_usec() - t0) / 1e6);

        r = format_verify(node, fstype, label);
        if (r < 0)
                return log_error_errno(r, "%s reported success, but %s does not probe as %s \"%s\": %s",
                                       argv[0], node, fstype, label, strerror(-r));
        return 0;
}
