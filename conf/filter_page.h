/*
 * filter_page.h - the block page shown when the URL filter denies.
 *
 * filter.block_page names an HTML template; a denied request gets a
 * 403 whose body is that template with its placeholders filled in and
 * every value HTML-escaped.  Without the directive a built-in page is
 * used.  The template is read and checked once, when the config is
 * loaded (so a bad one is a config error with file:line), and compiled
 * into a list of pieces so rendering is one pass with no parsing.
 *
 * Placeholders (case-sensitive):
 *   %{url}       the URL that was denied
 *   %{category}  the list category that matched ("adult"), if any
 *   %{rule}      the rule that denied (its number or name)
 *   %{client}    the client address
 *   %{time}      when it happened
 *   %{host}      the name of this proxy (as on sluice's other error pages)
 *   %{reason}    a short sentence on why
 *   %%           a literal '%'
 * Any other '%' is copied as is (CSS "width: 100%" needs no escape);
 * "%{" always starts a placeholder, so an unknown name is an error.
 */
#ifndef SLUICE_FILTER_PAGE_H
#define SLUICE_FILTER_PAGE_H

#include <stddef.h>

#include "lib/buf.h"

#define FILTER_PAGE_MAX		(64 * 1024)	/* largest template file */

struct filter_page;

/* The values of one denial; any may be NULL, shown as "-". */
struct filter_page_vars {
	const char *url, *category, *rule, *client, *time, *host, *reason;
};

/*
 * Load and check a template (path NULL: the built-in page).  On error
 * returns NULL with a message in err, e.g.
 *   "PATH:LINE: block_page: unknown placeholder %{foo}"
 *   "PATH:LINE: block_page: unterminated placeholder" (no '}' on the
 *       same line within 32 bytes)
 *   "PATH:LINE: block_page: NUL byte"
 *   "PATH: block_page: cannot read: No such file or directory"
 *   "PATH: block_page: not a regular file"
 *   "PATH: block_page: larger than 64 KiB"
 *   "PATH: block_page: out of memory"
 */
struct filter_page *filter_page_load(const char *path, char *err,
    size_t errlen);

/*
 * Append the rendered body to out, growing its storage as needed.
 * Values are HTML-escaped (& < > " ' become entities; control bytes
 * become '?'); the template text is copied as is.  Returns 0, or -1
 * with errno ENOMEM, and then out is unchanged.
 */
int filter_page_render(const struct filter_page *p,
    const struct filter_page_vars *v, struct buf *out);

/* The body length filter_page_render() would append (for headers). */
size_t filter_page_length(const struct filter_page *p,
    const struct filter_page_vars *v);

void filter_page_free(struct filter_page *p);

#endif /* SLUICE_FILTER_PAGE_H */
