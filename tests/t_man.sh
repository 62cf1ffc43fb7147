#!/bin/sh
# t_man.sh - the man pages are lint-clean and document every directive.
#
# Run from the build folder with $SRCDIR (sources) and $BUILDDIR (where
# the sluice binary is) set, as `make check` does.  Prints TAP.  The list
# of directives comes from the binary itself (`sluice --dump-directives`,
# which prints the schema table, one directive a line, name first), so a
# directive added to conf/conf_schema.c without an entry in
# sluice.conf(5) fails here, and so does an entry for a directive that
# no longer exists.
SRCDIR=${SRCDIR:-$(dirname "$0")/..}
BUILDDIR=${BUILDDIR:-.}
CONF5="$SRCDIR/man/sluice.conf.5"
MAN8="$SRCDIR/man/sluice.8"
SLUICE_BIN="$BUILDDIR/sluice"

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT

# Directive names from the binary; the plan depends on how many.
if "$SLUICE_BIN" --dump-directives >"$tmp/dump" 2>"$tmp/dump.err"; then
	cut -f1 "$tmp/dump" | grep -v '^$' >"$tmp/names"
else
	: >"$tmp/names"
fi
ndir=$(wc -l <"$tmp/names")
echo "1..$((4 + ndir))"

n=0
ok() { n=$((n + 1)); echo "ok $n - $1"; }
notok() { n=$((n + 1)); echo "not ok $n - $1"; }

lint() {	# lint FILE
	if ! command -v mandoc >/dev/null 2>&1; then
		n=$((n + 1)); echo "ok $n # SKIP mandoc not installed"
		return
	fi
	mandoc -Tlint -W warning "$1" >"$tmp/lint" 2>&1
	if [ -s "$tmp/lint" ]; then
		notok "mandoc -Tlint $(basename "$1")"
		sed 's/^/# /' "$tmp/lint"
	else
		ok "mandoc -Tlint $(basename "$1")"
	fi
}

lint "$CONF5"
if [ -s "$MAN8" ]; then
	lint "$MAN8"
else
	n=$((n + 1)); echo "ok $n # SKIP man/sluice.8 is empty"
fi

if [ "$ndir" -gt 0 ]; then
	ok "sluice --dump-directives lists $ndir directives"
else
	notok "sluice --dump-directives lists directives"
	sed 's/^/# /' "$tmp/dump.err"
fi

# Each directive has its own `.It Ic NAME` entry.
while read -r name; do
	if grep -q "^\.It Ic $name\( \|$\)" "$CONF5"; then
		ok "$name is documented in sluice.conf(5)"
	else
		notok "$name is documented in sluice.conf(5)"
		echo "# missing: add \".It Ic $name Ns = Ar type\" to man/sluice.conf.5"
	fi
done <"$tmp/names"

# And no entry documents a directive that does not exist.
stale=""
for name in $(sed -n 's/^\.It Ic \([a-z_.]*\).*/\1/p' "$CONF5"); do
	grep -qx "$name" "$tmp/names" || stale="$stale $name"
done
if [ "$ndir" -gt 0 ] && [ -z "$stale" ]; then
	ok "sluice.conf(5) documents no unknown directive"
else
	notok "sluice.conf(5) documents no unknown directive"
	[ -n "$stale" ] && echo "# not in the schema:$stale"
fi
exit 0
