#!/usr/bin/env bash
# Install the Debian packages given as arguments that are not installed yet.
# Without root or apt, print what is missing and carry on: tests that need them skip.
set -u
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing system packages: ${missing[*]}"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/tmp/treecast-apt.log 2>&1 \
    || echo "warning: apt-get failed (see /tmp/treecast-apt.log); missing: ${missing[*]}"
else
  echo "warning: missing system packages (install them by hand): ${missing[*]}"
fi
exit 0
