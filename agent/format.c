/* SPDX-License-Identifier: Apache-2.0 */
/* Filesystems for the new partitions (see format.h). */
#include <blkid/blkid.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "format.h"
#include "log.h"
#include "util.h"


static inline void blkid_free_probep(blkid_probe *p) { if (*p) blkid_free_probe(*p); }
#define _cleanup_blkid_probe_ _cleanup_(blkid_free_probep)

static inline void file_actions_destroyp(posix_spawn_file_actions_t **a) { if (*a) posix_spawn_file_actions_destroy(*a); }

static inline void spawnattr_destroyp(posix_spawnattr_t **a) { if (*a) posix_spawnattr_destroy(*a); }

const char *command_search_path(void) {
        const char *p = getenv("HARVESTER_INSTALL_TOOL_PATH");
        return isempty(p) ? COMMAND_PATH : p;
}

int command_find(const char *name, char **ret) {
        if (isempty(name))
                return -ENOENT;
        if (strchr(name, '/')) {
                if (access(name, X_OK) < 0)
                        return -errno;
                *ret = strdup(name);
                return *ret ? 0 : -ENOMEM;
        }
        _cleanup_free_ char *copy = strdup(command_search_path());
        if (!copy)
                return -ENOMEM;
        char *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                _cleanup_free_ char *p = strdup_printf("%s/%s", d, name);
                struct stat st;
                if (!p)
                        return -ENOMEM;
                if (stat(p, &st) == 0 && S_ISREG(st.st_mode) && access(p, X_OK) == 0) {
                        *ret = TAKE_PTR(p);
                        return 0;
                }
        }
        return -ENOENT;
}

int command_spawn(char *const argv[], int out_fd, pid_t *ret_pid) {
        posix_spawn_file_actions_t fa;
        posix_spawnattr_t attr;
        _cleanup_(spawnattr_destroyp) posix_spawnattr_t *attrp = NULL;
        _cleanup_(file_actions_destroyp) posix_spawn_file_actions_t *fap = NULL;
        int r;

        /* One lookup, in the fixed search path: what runs is what was found. */
        _cleanup_free_ char *path = NULL, *path_env = NULL;
        r = command_find(argv[0], &path);
        if (r < 0)
                return r;
        path_env = strdup_printf("PATH=%s", command_search_path());
        if (!path_env)
                return -ENOMEM;
        /* A fixed, minimal environment: nothing of the agent's (proxy settings, credentials ...)
         * reaches a tool, and its messages are in English for the error line. */
        char *envp[] = { path_env, (char *)"LC_ALL=C", NULL, NULL };
        /* The one pass-through: tests of the pinned ext4 features stand in a hostile mke2fs.conf
         * with it (it is not set on a node). */
        _cleanup_free_ char *mke2fs_env = NULL;
        const char *mke2fs = getenv("MKE2FS_CONFIG");
        if (!isempty(mke2fs) && !(envp[2] = mke2fs_env = strdup_printf("MKE2FS_CONFIG=%s", mke2fs)))
                return -ENOMEM;

        r = posix_spawn_file_actions_init(&fa);
        if (r != 0)
                return -r;
        fap = &fa;
        r = posix_spawnattr_init(&attr);
        if (r != 0)
                return -r;
        attrp = &attr;
        /* Default signal handling and no blocked signal in the child, whatever the agent set. */
        sigset_t none, all;
        sigemptyset(&none);
        sigfillset(&all);
        if ((r = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0 ||
            (r = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
            (r = posix_spawnattr_setsigdefault(&attr, &all)) != 0)
                return -r;
        if ((r = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) != 0 ||
            (r = posix_spawn_file_actions_adddup2(&fa, out_fd, 1)) != 0 ||
            (r = posix_spawn_file_actions_adddup2(&fa, out_fd, 2)) != 0 ||
            (r = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0)
                return -r;
        /* The inherited descriptors are closed (closefrom 3) whatever their O_CLOEXEC. */
        return -posix_spawn(ret_pid, path, &fa, &attr, argv, envp);
}

int run_command(char *const argv[], char **ret_output) {
        _cleanup_close_ int rfd = -1, wfd = -1;
        _cleanup_free_ char *out = NULL;
        size_t len = 0, cap = 0;
        int pipefd[2], r;
        pid_t pid;

        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        rfd = pipefd[0];
        wfd = pipefd[1];
        r = command_spawn(argv, wfd, &pid);
        if (r < 0)
                return r;
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
        _cleanup_free_ char *p = NULL;
        return command_find(name, &p) == 0;
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
