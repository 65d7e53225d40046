#!/bin/sh
# Fetch, verify and unpack the pinned third-party sources.
#
#   scripts/deps.sh            fetch what is missing, verify all, unpack
#   scripts/deps.sh --verify   verify third_party/dl/ only (no network)
#
# Each third_party/NAME.mk pins NAME_VERSION, NAME_SOURCE (Debian source
# package), NAME_TARBALL (upstream .orig tarball) and NAME_SHA256.
# Tarballs are taken from third_party/dl/ when a user put them there (offline
# builds, OpenWrt/Yocto build hosts); otherwise the host's package manager
# fetches Debian's .orig tarball through a private apt configuration derived
# from the host's configured Debian sources (deb -> deb-src), so nothing of
# the system changes. Every tarball's sha256 is checked; a mismatch is refused.
set -eu

top=$(cd "$(dirname "$0")/.." && pwd)
tp=$top/third_party
dl=$tp/dl
src=$tp/src
apt=$dl/.apt
verify_only=0
[ "${1:-}" = "--verify" ] && verify_only=1

die() { echo "deps: $*" >&2; exit 1; }

# field NAME.mk KEY -> value of "PREFIX_KEY := value"
field() {
	sed -n "s/^[A-Z_]*_$2[[:space:]]*:=[[:space:]]*//p" "$1" | head -n 1
}

sha256_of() {
	if command -v sha256sum >/dev/null 2>&1; then sha256sum "$1" | cut -d' ' -f1
	else openssl dgst -sha256 "$1" | sed 's/.*= //'; fi
}

# Write deb-src entries for every deb entry the host has, in both formats.
apt_setup() {
	[ -f "$apt/apt.conf" ] && return 0
	command -v apt-get >/dev/null 2>&1 || die "no apt-get on this host: put the tarballs listed in third_party/*.mk into third_party/dl/"
	rm -rf "$apt"
	mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial"
	: > "$apt/sources.list"
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -f "$f" ] || continue
		# one-line format: "deb [opts] uri suite comp..." -> "deb-src ..."
		sed -n 's/^[[:space:]]*deb[[:space:]]/deb-src /p' "$f" >> "$apt/sources.list"
	done
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		# deb822 format: a stanza's "Types:" names deb and/or deb-src.
		sed 's/^Types:.*$/Types: deb-src/' "$f" > "$apt/sources.list.d/$(basename "$f")"
	done
	if [ ! -s "$apt/sources.list" ] && [ -z "$(ls "$apt/sources.list.d")" ]; then
		die "no Debian sources configured in /etc/apt: put the tarballs listed in third_party/*.mk into third_party/dl/"
	fi
	cat > "$apt/apt.conf.tmp" <<EOF
Dir::Etc::SourceList "$apt/sources.list";
Dir::Etc::SourceParts "$apt/sources.list.d";
Dir::State::Lists "$apt/lists";
Dir::Cache "$apt/cache";
APT::Sandbox::User "$(id -un)";
EOF
	echo "deps: updating a private deb-src index in $apt"
	APT_CONFIG=$apt/apt.conf.tmp apt-get -q update >"$apt/update.log" 2>&1 ||
		echo "deps: apt-get update reported errors (see $apt/update.log); trying anyway" >&2
	mv "$apt/apt.conf.tmp" "$apt/apt.conf"
}

# fetch SOURCE TARBALL SHA256: download exactly the .orig tarball.
fetch() {
	apt_setup
	uri=$(APT_CONFIG=$apt/apt.conf apt-get source --print-uris -qq "$1" 2>"$apt/source.log" |
		awk -v f="$2" '$2 == f { gsub("\x27", "", $1); print $1 }')
	[ -n "$uri" ] || die "Debian source package '$1' does not offer $2 (see $apt/source.log); put $2 into third_party/dl/"
	echo "deps: fetching $2"
	/usr/lib/apt/apt-helper -c "$apt/apt.conf" download-file "$uri" "$dl/$2.part" >"$apt/fetch.log" 2>&1 ||
		die "download of $uri failed (see $apt/fetch.log)"
	mv "$dl/$2.part" "$dl/$2"
}

unpack() {
	stamp=$src/.$1.sha256
	[ -d "$src/$2" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$4" ] && return 0
	rm -rf "${src:?}/$2" "$src/.tmp"
	mkdir -p "$src/.tmp"
	case "$3" in
	*.tar.xz) xz -dc "$dl/$3" | tar -xf - -C "$src/.tmp" ;;
	*.tar.gz) gzip -dc "$dl/$3" | tar -xf - -C "$src/.tmp" ;;
	*) die "$3: unknown archive format" ;;
	esac
	[ -d "$src/.tmp/$2" ] || die "$3 does not contain $2/"
	mv "$src/.tmp/$2" "$src/$2"
	rmdir "$src/.tmp"
	echo "$4" > "$stamp"
	echo "deps: unpacked $2"
}

mkdir -p "$dl" "$src"
for mk in "$tp"/*.mk; do
	source_pkg=$(field "$mk" SOURCE)
	tarball=$(field "$mk" TARBALL)
	want=$(field "$mk" SHA256)
	dir=$(field "$mk" DIR)
	if [ -z "$source_pkg" ] || [ -z "$tarball" ] || [ -z "$want" ] || [ -z "$dir" ]; then
		die "$mk: needs _SOURCE, _TARBALL, _SHA256 and _DIR"
	fi
	if [ ! -f "$dl/$tarball" ]; then
		[ $verify_only = 1 ] && die "third_party/dl/$tarball is missing"
		fetch "$source_pkg" "$tarball"
	fi
	got=$(sha256_of "$dl/$tarball")
	[ "$got" = "$want" ] || die "third_party/dl/$tarball: sha256 mismatch
  expected $want (pinned in third_party/$(basename "$mk"))
  got      $got
refusing to use it; delete the file to fetch it again"
	[ $verify_only = 1 ] && { echo "deps: $tarball ok"; continue; }
	unpack "$(basename "$mk" .mk)" "$dir" "$tarball" "$want"
done
exit 0
