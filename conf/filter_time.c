/*
 * filter_time.c - parse and match the URL filter's time windows.
 *
 * Assumes the caller has already turned the clock into local weekday
 * and minute of the day; nothing here reads the clock or the time zone,
 * so a test can ask about any instant and a DST change is simply the
 * caller's localtime_r answer.  The parser is a hand-written scanner
 * over a bounded string (no copies, no malloc) because the grammar is
 * tiny and every error should say exactly what is wrong.
 */
#include "config.h"

#include <string.h>
#include <strings.h>

#include "conf/filter_time.h"

/* Indexed by bit number: 0 = Sunday, as struct tm's tm_wday. */
static const char day_names[7][4] = {
	"sun", "mon", "tue", "wed", "thu", "fri", "sat"
};

static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static const char *
skip_blanks(const char *p)
{
	while (is_blank(*p))
		p++;
	return p;
}

static char
lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static bool
is_alpha(char c)
{
	c = lower(c);
	return c >= 'a' && c <= 'z';
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * One day name at *pp; advances past it.  The whole alphabetic run is
 * taken so "Mond" is an unknown day rather than "Mon" plus garbage.
 */
static int
parse_day(const char **pp, const char **why)
{
	const char *p = *pp;
	size_t n = 0;

	while (is_alpha(p[n]))
		n++;
	if (n == 0) {
		*why = "day name expected";
		return -1;
	}
	if (n == 3) {
		for (int d = 0; d < 7; d++) {
			if (lower(p[0]) == day_names[d][0] &&
			    lower(p[1]) == day_names[d][1] &&
			    lower(p[2]) == day_names[d][2]) {
				*pp = p + n;
				return d;
			}
		}
	}
	*why = "unknown day name";
	return -1;
}

/*
 * The DAYS part into a bit mask; *pp is left after it (and after any
 * blanks that follow).
 */
static int
parse_days(const char **pp, uint8_t *mask, const char **why)
{
	const char *p = *pp;
	uint8_t m = 0;

	if (*p == '*') {
		*mask = FILTER_TIME_ALL_DAYS;
		*pp = skip_blanks(p + 1);
		return 0;
	}
	if (strncasecmp(p, "all", 3) == 0 && !is_alpha(p[3])) {
		*mask = FILTER_TIME_ALL_DAYS;
		*pp = skip_blanks(p + 3);
		return 0;
	}
	for (;;) {
		int a, b;

		if (*p == ',' || *p == '\0' || is_digit(*p)) {
			*why = (*p == ',') ? "empty entry in day list" :
			    "day name expected";
			return -1;
		}
		if ((a = parse_day(&p, why)) < 0)
			return -1;
		b = a;
		p = skip_blanks(p);
		if (*p == '-') {
			p = skip_blanks(p + 1);
			if ((b = parse_day(&p, why)) < 0)
				return -1;
			p = skip_blanks(p);
		}
		/* Walk forward from a to b, wrapping past Saturday. */
		for (int d = a;; d = (d + 1) % 7) {
			m |= (uint8_t)(1u << d);
			if (d == b)
				break;
		}
		if (*p != ',')
			break;
		p = skip_blanks(p + 1);
	}
	*mask = m;
	*pp = p;
	return 0;
}

/* "H:MM" or "HH:MM" into minutes; 24:00 is returned as 1440. */
static int
parse_clock(const char **pp, const char **why)
{
	const char *p = *pp;
	int h = 0, m, nd = 0;

	while (is_digit(*p) && nd < 3) {
		h = h * 10 + (*p - '0');
		p++;
		nd++;
	}
	if (nd == 0 || nd > 2 || *p != ':' || !is_digit(p[1]) ||
	    !is_digit(p[2]) || is_digit(p[3])) {
		*why = "time must be HH:MM";
		return -1;
	}
	m = (p[1] - '0') * 10 + (p[2] - '0');
	if (h > 24 || (h == 24 && m != 0)) {
		*why = "hour out of range";
		return -1;
	}
	if (m > 59) {
		*why = "minute out of range";
		return -1;
	}
	*pp = p + 3;
	return h * 60 + m;
}

int
filter_time_parse(const char *s, struct filter_time *out, const char **why)
{
	const char *dummy, *p;
	struct filter_time w;
	int from, to;

	if (why == NULL)
		why = &dummy;
	if (s == NULL) {
		*why = "no window";
		return -1;
	}
	/* Bounded so a runaway config value costs nothing to reject. */
	if (strnlen(s, FILTER_TIME_MAX_LEN + 1) > FILTER_TIME_MAX_LEN) {
		*why = "window too long";
		return -1;
	}
	p = skip_blanks(s);
	if (*p == '\0') {
		*why = "empty window";
		return -1;
	}
	if (parse_days(&p, &w.days, why) < 0)
		return -1;
	if (*p == '\0') {
		w.from = 0;
		w.to = FILTER_TIME_DAY_END;
		*out = w;
		return 0;
	}
	if (!is_digit(*p)) {
		*why = "time HH:MM-HH:MM expected after the days";
		return -1;
	}
	if ((from = parse_clock(&p, why)) < 0)
		return -1;
	if (from == FILTER_TIME_DAY_END) {
		*why = "24:00 is only allowed as an end";
		return -1;
	}
	p = skip_blanks(p);
	if (*p != '-') {
		*why = "'-' expected between the times";
		return -1;
	}
	p = skip_blanks(p + 1);
	if ((to = parse_clock(&p, why)) < 0)
		return -1;
	p = skip_blanks(p);
	if (*p != '\0') {
		*why = "trailing garbage after the window";
		return -1;
	}
	if (from == to) {
		*why = "empty window (start equals end)";
		return -1;
	}
	w.from = (uint16_t)from;
	w.to = (uint16_t)to;
	*out = w;
	return 0;
}

bool
filter_time_match(const struct filter_time *w, int wday, int minute)
{
	int prev;

	if (w == NULL || wday < 0 || wday > 6 || minute < 0 || minute > 1439)
		return false;
	if (w->from < w->to)
		return (w->days & (1u << wday)) && minute >= w->from &&
		    minute < w->to;
	/*
	 * Spans midnight: the evening part belongs to today's bit, the
	 * morning part to yesterday's window.
	 */
	prev = (wday + 6) % 7;
	if ((w->days & (1u << wday)) && minute >= w->from)
		return true;
	return (w->days & (1u << prev)) && minute < w->to;
}

bool
filter_time_match_any(const struct filter_time *w, size_t n, int wday,
    int minute)
{
	for (size_t i = 0; i < n; i++)
		if (filter_time_match(&w[i], wday, minute))
			return true;
	return false;
}
