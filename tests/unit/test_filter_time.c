/*
 * test_filter_time.c - unit tests for conf/filter_time.c.
 *
 * Every accepted form of a window, every error with its message, the
 * window edges (start inside, end outside), midnight-spanning windows
 * across day boundaries and the week wrap, wrapping day ranges, blank
 * tolerance and garbage/overlong input.  Times are passed in, so each
 * case names the exact instant it checks.
 */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdbool.h>
#include <string.h>
#include <cmocka.h>

#include "conf/filter_time.h"

enum { SUN, MON, TUE, WED, THU, FRI, SAT };
#define HM(h, m)	((h) * 60 + (m))
#define BIT(d)		(1u << (d))

/* Parse s, which must succeed. */
static struct filter_time
ok(const char *s)
{
	struct filter_time w;
	const char *why = NULL;

	memset(&w, 0xa5, sizeof w);
	if (filter_time_parse(s, &w, &why) != 0)
		fail_msg("\"%s\" rejected: %s", s, why ? why : "(null)");
	return w;
}

/* Parse s, which must fail with exactly the message want. */
static void
bad(const char *s, const char *want)
{
	struct filter_time w = { .days = 0x11, .from = 7, .to = 9 };
	const char *why = NULL;

	assert_int_equal(filter_time_parse(s, &w, &why), -1);
	assert_non_null(why);
	assert_string_equal(why, want);
	/* *out is untouched on failure. */
	assert_int_equal(w.days, 0x11);
	assert_int_equal(w.from, 7);
	assert_int_equal(w.to, 9);
}

static void
parse_single_day(void **state)
{
	struct filter_time w;

	(void)state;
	w = ok("Mon 08:00-16:00");
	assert_int_equal(w.days, BIT(MON));
	assert_int_equal(w.from, HM(8, 0));
	assert_int_equal(w.to, HM(16, 0));
	w = ok("sat 9:05-9:06");
	assert_int_equal(w.days, BIT(SAT));
	assert_int_equal(w.from, HM(9, 5));
	assert_int_equal(w.to, HM(9, 6));
	w = ok("SUN 00:00-24:00");
	assert_int_equal(w.days, BIT(SUN));
	assert_int_equal(w.from, 0);
	assert_int_equal(w.to, 1440);
}

static void
parse_range(void **state)
{
	struct filter_time w;

	(void)state;
	w = ok("Mon-Fri 08:00-16:00");
	assert_int_equal(w.days, BIT(MON) | BIT(TUE) | BIT(WED) | BIT(THU) |
	    BIT(FRI));
	w = ok("Sun-Sat");
	assert_int_equal(w.days, 0x7f);
	w = ok("Wed-Wed");
	assert_int_equal(w.days, BIT(WED));
}

static void
parse_wrapping_range(void **state)
{
	struct filter_time w;

	(void)state;
	w = ok("Fri-Mon 10:00-11:00");
	assert_int_equal(w.days, BIT(FRI) | BIT(SAT) | BIT(SUN) | BIT(MON));
	w = ok("Sat-Sun");
	assert_int_equal(w.days, BIT(SAT) | BIT(SUN));
	/* Thursday to Wednesday: the whole week. */
	w = ok("Thu-Wed");
	assert_int_equal(w.days, 0x7f);
	/* And the matcher agrees: Sunday inside, Wednesday outside. */
	w = ok("Fri-Mon 10:00-11:00");
	assert_true(filter_time_match(&w, SUN, HM(10, 30)));
	assert_false(filter_time_match(&w, WED, HM(10, 30)));
	assert_false(filter_time_match(&w, TUE, HM(10, 30)));
}

static void
parse_list(void **state)
{
	struct filter_time w;

	(void)state;
	w = ok("Mon,Wed,Fri 12:00-13:00");
	assert_int_equal(w.days, BIT(MON) | BIT(WED) | BIT(FRI));
	w = ok("Sun,Tue-Thu");
	assert_int_equal(w.days, BIT(SUN) | BIT(TUE) | BIT(WED) | BIT(THU));
	w = ok("Mon,Mon,mon");
	assert_int_equal(w.days, BIT(MON));
	assert_int_equal(w.from, 0);
	assert_int_equal(w.to, 1440);
}

static void
parse_all_days(void **state)
{
	struct filter_time w;

	(void)state;
	w = ok("*");
	assert_int_equal(w.days, 0x7f);
	assert_int_equal(w.from, 0);
	assert_int_equal(w.to, 1440);
	w = ok("ALL 22:00-06:00");
	assert_int_equal(w.days, 0x7f);
	assert_int_equal(w.from, HM(22, 0));
	assert_int_equal(w.to, HM(6, 0));
	w = ok("all");
	assert_int_equal(w.days, 0x7f);
	/* "*" without times matches every minute of every day. */
	w = ok("*");
	for (int d = 0; d < 7; d++) {
		assert_true(filter_time_match(&w, d, 0));
		assert_true(filter_time_match(&w, d, 1439));
	}
}

static void
parse_whitespace(void **state)
{
	struct filter_time w;

	(void)state;
	w = ok("  \tMon - Fri ,  Sun   08:00 - 16:00 \t ");
	assert_int_equal(w.days, 0x3f);
	assert_int_equal(w.from, HM(8, 0));
	assert_int_equal(w.to, HM(16, 0));
	w = ok(" * ");
	assert_int_equal(w.days, 0x7f);
	w = ok("Tue\t \t7:30-8:00");
	assert_int_equal(w.days, BIT(TUE));
	assert_int_equal(w.from, HM(7, 30));
}

static void
parse_errors(void **state)
{
	(void)state;
	bad("Mox 08:00-16:00", "unknown day name");
	bad("Monday", "unknown day name");
	bad("Mo", "unknown day name");
	bad("Mon-Fry", "unknown day name");
	bad("Mon-", "day name expected");
	bad("Mon,", "day name expected");
	bad("Mon,,Tue", "empty entry in day list");
	bad(",Mon", "empty entry in day list");
	bad("08:00-16:00", "day name expected");
	bad("", "empty window");
	bad("   \t", "empty window");
	bad("Mon 25:00-26:00", "hour out of range");
	bad("Mon 08:00-24:01", "hour out of range");
	bad("Mon 08:60-09:00", "minute out of range");
	bad("Mon 24:00-06:00", "24:00 is only allowed as an end");
	bad("Mon 08:00-08:00", "empty window (start equals end)");
	bad("Mon 00:00-00:00", "empty window (start equals end)");
	bad("Mon 8-16", "time must be HH:MM");
	bad("Mon 008:00-09:00", "time must be HH:MM");
	bad("Mon 08:0-09:00", "time must be HH:MM");
	bad("Mon 08:000-09:00", "time must be HH:MM");
	bad("Mon 08:00-", "time must be HH:MM");
	bad("Mon 08:00", "'-' expected between the times");
	bad("Mon 08:00 16:00", "'-' expected between the times");
	bad("Mon 08:00-16:00 x", "trailing garbage after the window");
	bad("Mon 08:00-16:00-17:00", "trailing garbage after the window");
	bad("Mon Tue", "time HH:MM-HH:MM expected after the days");
	bad("*Mon", "time HH:MM-HH:MM expected after the days");
	bad("allday", "unknown day name");
	bad(NULL, "no window");
	/* why may be NULL. */
	{
		struct filter_time w;

		assert_int_equal(filter_time_parse("nope", &w, NULL), -1);
	}
}

static void
parse_garbage(void **state)
{
	char big[FILTER_TIME_MAX_LEN + 64];
	static const char *const junk[] = {
		"\x01\x02", "Mon\n08:00-16:00", "Mon 08:00\xff-16:00", "-",
		"Mon 08:00--16:00", "Mon -08:00-16:00", ":", "Mon :-:",
		"Mon 99999999999999999999:00-01:00", "Mon 08:00-16:00;",
	};
	struct filter_time w;
	const char *why;

	(void)state;
	for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
		why = NULL;
		assert_int_equal(filter_time_parse(junk[i], &w, &why), -1);
		assert_non_null(why);
	}
	/* Exactly at the limit is still parsed; one more byte is not. */
	memset(big, ' ', sizeof big);
	memcpy(big, "Mon", 3);
	big[FILTER_TIME_MAX_LEN] = '\0';
	w = ok(big);
	assert_int_equal(w.days, BIT(MON));
	big[FILTER_TIME_MAX_LEN] = ' ';
	big[FILTER_TIME_MAX_LEN + 1] = '\0';
	bad(big, "window too long");
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	bad(big, "window too long");
}

static void
match_boundaries(void **state)
{
	struct filter_time w = ok("Mon-Fri 08:00-16:00");

	(void)state;
	assert_true(filter_time_match(&w, MON, HM(8, 0)));
	assert_true(filter_time_match(&w, MON, HM(15, 59)));
	assert_false(filter_time_match(&w, MON, HM(16, 0)));
	assert_false(filter_time_match(&w, MON, HM(7, 59)));
	assert_true(filter_time_match(&w, FRI, HM(12, 0)));
	assert_false(filter_time_match(&w, SAT, HM(12, 0)));
	assert_false(filter_time_match(&w, SUN, HM(12, 0)));
	/* Out-of-range arguments never match. */
	assert_false(filter_time_match(&w, -1, HM(12, 0)));
	assert_false(filter_time_match(&w, 7, HM(12, 0)));
	assert_false(filter_time_match(&w, MON, -1));
	assert_false(filter_time_match(&w, MON, 1440));
	assert_false(filter_time_match(NULL, MON, HM(12, 0)));

	/* 24:00 as an end includes the last minute of the day. */
	w = ok("Sun 23:00-24:00");
	assert_true(filter_time_match(&w, SUN, 1439));
	assert_false(filter_time_match(&w, MON, 0));
	assert_false(filter_time_match(&w, SUN, HM(22, 59)));
}

static void
match_midnight(void **state)
{
	struct filter_time w = ok("Fri 22:00-06:00");

	(void)state;
	assert_true(filter_time_match(&w, FRI, HM(22, 0)));
	assert_true(filter_time_match(&w, FRI, HM(23, 59)));
	assert_true(filter_time_match(&w, SAT, HM(0, 0)));
	assert_true(filter_time_match(&w, SAT, HM(5, 59)));
	assert_false(filter_time_match(&w, SAT, HM(6, 0)));
	assert_false(filter_time_match(&w, FRI, HM(21, 59)));
	assert_false(filter_time_match(&w, THU, HM(23, 0)));
	/* Friday morning belongs to Thursday's window, which is not set. */
	assert_false(filter_time_match(&w, FRI, HM(1, 0)));
	/* Saturday night is not a window day ... */
	assert_false(filter_time_match(&w, SAT, HM(23, 0)));
	assert_false(filter_time_match(&w, SUN, HM(1, 0)));

	/* ... unless Saturday is a day too. */
	w = ok("Fri,Sat 22:00-06:00");
	assert_true(filter_time_match(&w, SAT, HM(23, 0)));
	assert_true(filter_time_match(&w, SUN, HM(1, 0)));
	assert_false(filter_time_match(&w, SUN, HM(6, 0)));
	assert_false(filter_time_match(&w, SUN, HM(22, 0)));

	/* Across the week wrap: Saturday night into Sunday morning. */
	w = ok("Sat 23:30-00:30");
	assert_true(filter_time_match(&w, SAT, HM(23, 45)));
	assert_true(filter_time_match(&w, SUN, HM(0, 29)));
	assert_false(filter_time_match(&w, SUN, HM(0, 30)));
	assert_false(filter_time_match(&w, SUN, HM(23, 45)));
	/* ... and Sunday's window reaches back from Monday. */
	w = ok("Sun 20:00-02:00");
	assert_true(filter_time_match(&w, MON, HM(1, 59)));
	assert_false(filter_time_match(&w, SAT, HM(21, 0)));

	/* An end of 00:00 means "until midnight". */
	w = ok("Mon 22:00-00:00");
	assert_true(filter_time_match(&w, MON, 1439));
	assert_false(filter_time_match(&w, TUE, 0));
}

static void
match_any(void **state)
{
	struct filter_time ws[3];

	(void)state;
	ws[0] = ok("Mon-Fri 08:00-12:00");
	ws[1] = ok("Mon-Fri 13:00-17:00");
	ws[2] = ok("Sat 10:00-11:00");
	assert_true(filter_time_match_any(ws, 3, TUE, HM(9, 0)));
	assert_false(filter_time_match_any(ws, 3, TUE, HM(12, 30)));
	assert_true(filter_time_match_any(ws, 3, TUE, HM(16, 59)));
	assert_true(filter_time_match_any(ws, 3, SAT, HM(10, 0)));
	assert_false(filter_time_match_any(ws, 3, SUN, HM(10, 0)));
	/* Only the first n count. */
	assert_false(filter_time_match_any(ws, 2, SAT, HM(10, 0)));
	assert_false(filter_time_match_any(ws, 0, TUE, HM(9, 0)));
	assert_false(filter_time_match_any(NULL, 0, TUE, HM(9, 0)));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_single_day),
		cmocka_unit_test(parse_range),
		cmocka_unit_test(parse_wrapping_range),
		cmocka_unit_test(parse_list),
		cmocka_unit_test(parse_all_days),
		cmocka_unit_test(parse_whitespace),
		cmocka_unit_test(parse_errors),
		cmocka_unit_test(parse_garbage),
		cmocka_unit_test(match_boundaries),
		cmocka_unit_test(match_midnight),
		cmocka_unit_test(match_any),
	};

	return cmocka_run_group_tests_name("filter_time", tests, NULL, NULL);
}
