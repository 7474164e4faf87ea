/* Console lines, messages, status.json. Everything printed or stored passes fb_redact(). */
#include "fb-report.h"
#include "download.h"
#include "firstboot.h"
#include "util.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <stdarg.h>
#include <sys/stat.h>
#include <time.h>

int fb_verbose;
static char *const *secrets;

static const char *const state_names[FB_STATE_MAX] = {
	[FB_STATE_NOT_RUN] = "not-run", [FB_STATE_START] = "start",     [FB_STATE_RUNNING] = "running",
	[FB_STATE_OK] = "ok",           [FB_STATE_SKIPPED] = "skipped", [FB_STATE_PENDING] = "pending",
	[FB_STATE_FAILED] = "failed",   [FB_STATE_REBOOT] = "reboot",   [FB_STATE_DEGRADED] = "degraded",
};

const char *fb_state_name(enum fb_state s)
{
	return (unsigned)s < FB_STATE_MAX ? state_names[s] : "?";
}

int fb_state_from_name(const char *name)
{
	for (size_t i = 0; name && i < FB_STATE_MAX; i++)
		if (STREQ(name, state_names[i]))
			return (int)i;
	return -EINVAL;
}

void fb_report_set_secrets(char *const *s)
{
	secrets = s;
}

/* The length of the longest secret that the LEN bytes at S start with; 0 for none (empty
 * secrets never match). */
static size_t secret_at(const char *s, size_t len)
{
	size_t best = 0;
	for (char *const *sec = secrets; sec && *sec; sec++) {
		size_t n = strlen(*sec);
		if (n > best && n <= len && !memcmp(s, *sec, n))
			best = n;
	}
	return best;
}

/* The length of the longest start of a secret that the LEN bytes at S end with: what a line
 * cut short may show of a secret that went on past the cut. */
static size_t secret_start_at_end(const char *s, size_t len)
{
	size_t best = 0;
	for (char *const *sec = secrets; sec && *sec; sec++)
		for (size_t k = strlen(*sec) < len ? strlen(*sec) : len; k > best; k--)
			if (!memcmp(s + len - k, *sec, k)) {
				best = k;
				break;
			}
	return best;
}

/* One pass over the original text: at each position the longest secret that starts there
 * is replaced, and the search goes on after it, never inside "(secret)" (a secret that is
 * part of it, "secret" or "e", would be found again and again). With SPACES, newlines and
 * tabs become spaces; otherwise they are escaped like the other controls. */
static char *redact(const char *s, size_t len, bool spaces)
{
	_cleanup_free_ char *out = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&out, &size);
	if (!f)
		return NULL;
	for (const char *p = s, *end = s + len; p < end;) {
		size_t n = secret_at(p, (size_t)(end - p));
		if (n) {
			fputs("(secret)", f);
			p += n;
		} else {
			fputc(spaces && (*p == '\n' || *p == '\t') ? ' ' : *p, f);
			p++;
		}
	}
	if (fclose(f) != 0 || !out)
		return NULL;
	return str_printable(out, size, "");
}

char *fb_redact(const char *s)
{
	return redact(s ? s : "", s ? strlen(s) : 0, true);
}

void fb_output_line(char *s, size_t len, bool cut, void *data)
{
	const char *prog = data, *slash = strrchr(prog, '/');
	if (cut)
		len -= secret_start_at_end(s, len);
	_cleanup_free_ char *clean = redact(s, len, true), *name = fb_redact(slash ? slash + 1 : prog);
	fflush(stdout);
	fprintf(stderr, "%s: %s: %s%s\n", FB_NAME, name ? name : "?", clean ? clean : "(out of memory)",
		cut ? " (cut)" : "");
}

static void vmessage(const char *prefix, const char *fmt, va_list ap)
{
	_cleanup_free_ char *msg = NULL, *clean = NULL;
	if (vasprintf(&msg, fmt, ap) < 0)
		return;
	clean = fb_redact(msg);
	fflush(stdout);
	fprintf(stderr, "%s: %s%s\n", FB_NAME, prefix, clean ? clean : "(out of memory)");
}

void fb_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage("", fmt, ap);
	va_end(ap);
}

void fb_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vmessage("warning: ", fmt, ap);
	va_end(ap);
}

char *fb_url_shown(const char *url)
{
	if (!url)
		return strdup("?");
	return strpbrk(url, "@?#") ? url_shown(url) : strdup(url);
}

void fb_would(const char *fmt, ...)
{
	_cleanup_free_ char *msg = NULL, *clean = NULL;
	va_list ap;
	va_start(ap, fmt);
	int n = vasprintf(&msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* A newline in an argument or a path is shown as one. */
	clean = redact(msg, (size_t)n, false);
	printf("%s: would %s\n", FB_NAME, clean ? clean : "(out of memory)");
	fflush(stdout);
}

void fb_debug(const char *fmt, ...)
{
	if (!fb_verbose)
		return;
	va_list ap;
	va_start(ap, fmt);
	vmessage("", fmt, ap);
	va_end(ap);
}

/* A report line goes to stdout (the journal, under systemd) and, when running as a systemd
 * service on the machine itself, to /dev/console as it is: journald's own console copy would
 * put its prefix in front of the stable format. A console that fails a write (a hangup of its
 * tty: getty's vhangup() on a serial console ends every open file of it with EIO) is opened
 * again for the line; after CONSOLE_FAILURES failures it is left alone. */
#define CONSOLE_FAILURES 8
static void report_line(const char *line)
{
	static int console = -1;
	static unsigned failures;
	fputs(line, stdout);
	fflush(stdout);
	if (!fb_live() || !getenv("INVOCATION_ID"))
		return;
	while (failures < CONSOLE_FAILURES) {
		if (console < 0 && (console = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC)) < 0) {
			failures++;
			return;
		}
		if (write(console, line, strlen(line)) >= 0)
			return;
		close(console);
		console = -1;
		failures++;
	}
}

void fb_report_step(const char *step, enum fb_state state, const char *detail)
{
	_cleanup_free_ char *clean = detail && *detail ? fb_redact(detail) : NULL, *line = NULL;
	if (asprintf(&line, "%s: step=%s state=%s%s%s\n", FB_NAME, step, fb_state_name(state), clean ? " " : "",
		     clean ? clean : "") >= 0)
		report_line(line);
}

void fb_report_done(enum fb_state status, size_t steps, double seconds)
{
	_cleanup_free_ char *line = NULL;
	if (asprintf(&line, "%s: done status=%s steps=%zu seconds=%.2f\n", FB_NAME, fb_state_name(status), steps, seconds) >= 0)
		report_line(line);
}

double fb_wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static json_object *time_json(double t)
{
	if (t <= 0)
		return NULL;
	time_t sec = (time_t)t;
	struct tm tm;
	char buf[40];
	if (!gmtime_r(&sec, &tm))
		return NULL;
	size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof(buf) - n, ".%03dZ", (int)((t - (double)sec) * 1000) % 1000);
	return json_object_new_string(buf);
}

static void add_str(json_object *o, const char *key, const char *v)
{
	_cleanup_free_ char *clean = v ? fb_redact(v) : NULL;
	json_object_object_add(o, key, clean ? json_object_new_string(clean) : NULL);
}

char *fb_status_json(const struct fb_status *s)
{
	json_object *o = json_object_new_object(), *steps = json_object_new_array();
	if (!o || !steps) {
		json_object_put(o);
		json_object_put(steps);
		return NULL;
	}
	add_str(o, "status", fb_state_name(s->status));
	if (s->config_error)
		add_str(o, "config_error", s->config_error);
	json_object_object_add(o, "started", time_json(s->started));
	json_object_object_add(o, "finished", time_json(s->finished));
	json_object_object_add(o, "own_ms", json_object_new_int64((int64_t)(s->own_seconds * 1000)));
	json_object_object_add(o, "external_ms", json_object_new_int64((int64_t)(s->external_seconds * 1000)));
	for (size_t i = 0; i < s->n_steps; i++) {
		const struct fb_step_status *st = &s->steps[i];
		json_object *e = json_object_new_object();
		if (!e)
			break;
		add_str(e, "name", st->name);
		add_str(e, "state", fb_state_name(st->state));
		json_object_object_add(e, "started", time_json(st->started));
		json_object_object_add(e, "finished", time_json(st->finished));
		if (st->started > 0 && st->finished >= st->started)
			json_object_object_add(e, "duration_ms",
					       json_object_new_int64((int64_t)((st->finished - st->started) * 1000)));
		else
			json_object_object_add(e, "duration_ms", NULL);
		add_str(e, "message", st->message ? st->message : "");
		json_object_array_add(steps, e);
	}
	json_object_object_add(o, "steps", steps);
	const char *text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
								     JSON_C_TO_STRING_NOSLASHESCAPE);
	char *out = text ? fb_strdupf("%s\n", text) : NULL;
	json_object_put(o);
	return out;
}

int fb_status_write(const struct fb_status *s)
{
	_cleanup_free_ char *text = fb_status_json(s);
	if (!text)
		return -ENOMEM;
	return fb_write(FB_STATUS_PATH, text, strlen(text), 0644, (uid_t)-1, (gid_t)-1);
}
