/*
 * filter_time.h - the time-window ACL of the URL filter.
 *
 * A rule may be limited to windows such as "Mon-Fri 08:00-16:00"; a
 * rule with several windows applies when any of them is active.  This
 * file parses one window and answers "is this local time inside it?".
 * Pure library code: no I/O, no logging and no clock reads -- the
 * caller passes the local weekday and minute (from localtime_r), so
 * the time zone is the caller's business and tests are deterministic.
 */
#ifndef SLUICE_FILTER_TIME_H
#define SLUICE_FILTER_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One window.  days: bit 0 = Sunday .. bit 6 = Saturday.  from/to are
 * minutes since midnight (to may be 1440 = 24:00).  from < to is a
 * window inside one day; from > to spans midnight: 22:00-06:00 on Mon
 * runs from Monday 22:00 to Tuesday 06:00 and belongs to Monday.
 */
struct filter_time {
	uint8_t days;
	uint16_t from, to;
};

#define FILTER_TIME_ALL_DAYS	0x7f
#define FILTER_TIME_DAY_END	1440	/* 24:00 */
#define FILTER_TIME_MAX_LEN	256	/* longer input is rejected */

/*
 * Parse one window "DAYS [HH:MM-HH:MM]".  DAYS is a day ("Mon"), a
 * range ("Mon-Fri"; wrapping "Fri-Mon" = Fri,Sat,Sun,Mon), a comma list
 * of days and ranges ("Mon,Wed,Fri-Sat"), or "*" / "all".  Day names
 * are three-letter English, case-insensitive.  Without a time part the
 * window is the whole day (00:00-24:00).  Hours 0-23 with one or two
 * digits, minutes exactly two digits; 24:00 only as an end.  Blanks
 * are allowed around the whole, around ',' and around '-'.
 * Returns 0, or -1 with *why (if why is not NULL) set to a short
 * static message naming the problem; *out is written only on success.
 */
int filter_time_parse(const char *s, struct filter_time *out, const char **why);

/*
 * Is the local time (wday 0-6 from Sunday, minute 0-1439) inside the
 * window?  Out-of-range arguments never match.
 */
bool filter_time_match(const struct filter_time *w, int wday, int minute);

/* Is it inside any of the n windows?  n == 0 matches nothing. */
bool filter_time_match_any(const struct filter_time *w, size_t n, int wday,
    int minute);

#endif /* SLUICE_FILTER_TIME_H */
