/* SPDX-License-Identifier: Apache-2.0 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "server.h"

extern char **environ;

#ifndef FAULT_SERVER_SCRIPT
#error "FAULT_SERVER_SCRIPT must be defined by the build"
#endif
#ifndef FAULT_SERVER_PYTHON
#define FAULT_SERVER_PYTHON "python3"
#endif

/* Reads one line (a port number) from the server's stdout, waiting up to 30 s. */
static int read_port(int fd, const char *script, int *ret) {
        char line[32];
        size_t n = 0;
        while (n < sizeof(line) - 1) {
                struct pollfd p = { .fd = fd, .events = POLLIN };
                if (poll(&p, 1, 30000) <= 0) {
                        fprintf(stderr, "test server: %s printed no port within 30 s\n", script);
                        return -ETIMEDOUT;
                }
                /* one byte at a time: the next line is the next call's */
                ssize_t m = read(fd, line + n, 1);
                if (m <= 0) {
                        fprintf(stderr, "test server: %s exited before printing its port\n", script);
                        return -EIO;
                }
                if (line[n] == '\n')
                        break;
                n++;
        }
        line[n] = 0;
        int64_t port;
        if (parse_int64(line, &port) < 0 || port <= 0 || port > 65535) {
                fprintf(stderr, "test server: unexpected line '%s'\n", line);
                return -EIO;
        }
        *ret = (int)port;
        return 0;
}

static int server_start(const char *dir, const char *cert, const char *key, struct test_server *ret);

int test_server_start(const char *dir, struct test_server *ret) {
        return server_start(dir, NULL, NULL, ret);
}

int test_server_start_tls(const char *dir, const char *cert, const char *key, struct test_server *ret) {
        return server_start(dir, cert, key, ret);
}

static int server_start(const char *dir, const char *cert, const char *key, struct test_server *ret) {
        const char *python = getenv("FAULT_SERVER_PYTHON");
        const char *script = getenv("FAULT_SERVER_SCRIPT");
        if (isempty(python))
                python = FAULT_SERVER_PYTHON;
        if (isempty(script))
                script = FAULT_SERVER_SCRIPT;

        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) < 0)
                return -errno;
        if (pipe2(out, O_CLOEXEC) < 0) {
                int r = -errno;
                close(in[0]);
                close(in[1]);
                return r;
        }

        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, in[0], STDIN_FILENO);
        posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
        char *argv[] = { (char *)python, (char *)script, (char *)"--exit-on-stdin-eof", (char *)dir, NULL, NULL,
                         NULL, NULL, NULL };
        if (cert) {
                argv[4] = (char *)"--tls-cert";
                argv[5] = (char *)cert;
                argv[6] = (char *)"--tls-key";
                argv[7] = (char *)key;
        }
        pid_t pid;
        int e = posix_spawnp(&pid, python, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        close(in[0]);
        close(out[1]);
        if (e != 0) {
                fprintf(stderr, "test server: cannot run %s: %s\n", python, strerror(e));
                close(in[1]);
                close(out[0]);
                return -e;
        }

        struct test_server s = { .pid = pid, .port = -1, .stdin_fd = in[1], .stdout_fd = out[0] };
        int r = read_port(s.stdout_fd, script, &s.port);
        if (r == 0 && cert)
                r = read_port(s.stdout_fd, script, &s.tls_port);
        if (r < 0) {
                test_server_stop(&s);
                return r;
        }
        *ret = s;
        return 0;
}

void test_server_stop(struct test_server *s) {
        if (s->stdin_fd >= 0)
                close(s->stdin_fd);
        s->stdin_fd = -1;
        if (s->pid > 0) {
                (void)kill(s->pid, SIGTERM);
                while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
                        ;
        }
        s->pid = 0;
        if (s->stdout_fd >= 0)
                close(s->stdout_fd);
        s->stdout_fd = -1;
}

char *test_server_url(const struct test_server *s, const char *path_fmt, ...) {
        va_list ap;
        _cleanup_free_ char *path = NULL;
        va_start(ap, path_fmt);
        int k = vasprintf(&path, path_fmt, ap);
        va_end(ap);
        if (k < 0)
                return NULL;
        return strdup_printf("http://127.0.0.1:%d%s", s->port, path);
}

char *test_server_tls_url(const struct test_server *s, const char *path_fmt, ...) {
        va_list ap;
        _cleanup_free_ char *path = NULL;
        va_start(ap, path_fmt);
        int k = vasprintf(&path, path_fmt, ap);
        va_end(ap);
        if (k < 0)
                return NULL;
        return strdup_printf("https://127.0.0.1:%d%s", s->tls_port, path);
}

int test_make_self_signed(const char *dir) {
        _cleanup_free_ char *cmd = strdup_printf(
                "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
                "-addext subjectAltName=IP:127.0.0.1 -keyout '%s/key.pem' -out '%s/cert.pem' >/dev/null 2>&1",
                dir, dir);
        if (!cmd)
                return -ENOMEM;
        int st = system(cmd);
        return st == 0 ? 0 : -EIO;
}

/* A plain HTTP/1.0 GET on its own socket (independent of the code under test). Returns the body
 * of a 200 answer. */
static int raw_get(int port, const char *path, char **ret) {
        _cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
                return -errno;
        _cleanup_free_ char *req = strdup_printf("GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
        if (!req)
                return -ENOMEM;
        size_t len = strlen(req), off = 0;
        while (off < len) {
                ssize_t k = send(fd, req + off, len - off, MSG_NOSIGNAL);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                off += (size_t)k;
        }
        _cleanup_free_ char *buf = NULL;
        size_t n = 0, alloc = 0;
        for (;;) {
                if (n + 4096 + 1 > alloc) {
                        alloc = alloc ? alloc * 2 : 65536;
                        char *b = realloc(buf, alloc);
                        if (!b)
                                return -ENOMEM;
                        buf = b;
                }
                ssize_t k = recv(fd, buf + n, alloc - n - 1, 0);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                if (k == 0)
                        break;
                n += (size_t)k;
        }
        if (!buf)
                return -EIO;
        buf[n] = 0;
        if (strncmp(buf, "HTTP/1.", 7) != 0 || strncmp(buf + 8, " 200", 4) != 0)
                return -EIO;
        char *body = strstr(buf, "\r\n\r\n");
        if (!body)
                return -EIO;
        char *r = strdup(body + 4);
        if (!r)
                return -ENOMEM;
        *ret = r;
        return 0;
}

static char *url_escape(const char *s) {
        static const char hex[] = "0123456789ABCDEF";
        char *r = malloc(strlen(s) * 3 + 1), *w = r;
        if (!r)
                return NULL;
        for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
                if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
                    strchr("-._~/", *p))
                        *w++ = (char)*p;
                else {
                        *w++ = '%';
                        *w++ = hex[*p >> 4];
                        *w++ = hex[*p & 15];
                }
        }
        *w = 0;
        return r;
}

int test_server_requests(const struct test_server *s, const char *prefix, char **ret_json) {
        _cleanup_free_ char *esc = url_escape(strempty(prefix));
        if (!esc)
                return -ENOMEM;
        _cleanup_free_ char *path = strdup_printf("/__requests?prefix=%s", esc);
        if (!path)
                return -ENOMEM;
        return raw_get(s->port, path, ret_json);
}

int test_server_request_lines(const struct test_server *s, const char *prefix, char ***ret) {
        _cleanup_free_ char *json = NULL;
        int r = test_server_requests(s, prefix, &json);
        if (r < 0)
                return r;
        _cleanup_strv_free_ char **l = NULL;
        char *save = NULL;
        for (char *line = strtok_r(json, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (line[0] != '{')
                        continue;
                size_t k = strlen(line);
                if (k > 0 && line[k - 1] == ',')
                        line[k - 1] = 0;
                r = strv_push(&l, line);
                if (r < 0)
                        return r;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

int test_server_count(const struct test_server *s, const char *prefix) {
        _cleanup_strv_free_ char **l = NULL;
        int r = test_server_request_lines(s, prefix, &l);
        if (r < 0)
                return r;
        return (int)strv_length(l);
}

int test_server_reset(const struct test_server *s) {
        _cleanup_free_ char *body = NULL;
        return raw_get(s->port, "/__reset", &body);
}

int test_mkdtemp(char **ret) {
        const char *tmp = getenv("TMPDIR");
        char *p = strdup_printf("%s/hia-test-XXXXXX", isempty(tmp) ? "/tmp" : tmp);
        if (!p)
                return -ENOMEM;
        if (!mkdtemp(p)) {
                int r = -errno;
                free(p);
                return r;
        }
        *ret = p;
        return 0;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        return remove(path) < 0 ? -1 : 0;
}

int test_rm_rf(const char *dir) {
        if (nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
                return errno ? -errno : -EIO;
        return 0;
}

int test_write_file(const char *dir, const char *name, const void *data, size_t len) {
        _cleanup_free_ char *p = strdup_printf("%s/%s", dir, name);
        if (!p)
                return -ENOMEM;
        _cleanup_close_ int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        const char *d = data;
        while (len > 0) {
                ssize_t k = write(fd, d, len);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                d += k;
                len -= (size_t)k;
        }
        return 0;
}
