#!/usr/bin/env bash
# Gate: change notes.
#  1. Every file in newsfragments/ is named <issue>.<type>[.<n>] with a type
#     towncrier knows (feature, bugfix, doc, removal, misc) and is not empty,
#     and `towncrier build --draft` renders them all.
#  2. A branch carries a newsfragment: `towncrier check` against the merge base
#     with the main line.  The main line is $CI_BASE_REF if set, else the first
#     of main, origin/main, master, origin/master that exists; on the main line
#     itself (HEAD is its tip) the range since the last release tag is used
#     instead, and with neither (no main ref, no tag) step 2 is skipped with a
#     note.  A shallow clone without the base commit fails loudly rather than
#     passing by accident.
set -euo pipefail
cd "$(dirname "$0")/../.."
source .ci/install-tools.sh
types='feature|bugfix|doc|removal|misc'
bad=0
for f in newsfragments/*; do
    [ -e "$f" ] || continue
    name=$(basename "$f")
    if ! [[ "$name" =~ ^[0-9]+\.($types)(\.[0-9]+)?$ ]]; then
        echo "newsfragments/$name: name must be <issue>.<$types>" >&2
        bad=1
    elif ! grep -q '[^[:space:]]' "$f"; then
        echo "newsfragments/$name: empty" >&2
        bad=1
    fi
done
[ "$bad" -eq 0 ] || exit 1
out=$("$CI_VENV/bin/towncrier" build --draft --version check --name twisted-lab 2>&1) || { echo "$out" >&2; exit 1; }

base=""
if [ -n "${CI_BASE_REF:-}" ]; then
    mainline=$CI_BASE_REF
else
    mainline=""
    for ref in main origin/main master origin/master; do
        if git rev-parse -q --verify "$ref^{commit}" >/dev/null; then mainline=$ref; break; fi
    done
fi
head=$(git rev-parse HEAD)
if [ -n "$mainline" ] && [ "$(git rev-parse "$mainline^{commit}")" != "$head" ]; then
    base=$(git merge-base "$mainline" HEAD) || {
        echo "no merge base with $mainline (shallow clone?): cannot check newsfragments" >&2; exit 1; }
    echo "newsfragments: comparing with the merge base of $mainline ($base)"
elif tag=$(git describe --tags --abbrev=0 2>/dev/null); then
    base=$tag
    echo "newsfragments: comparing with the last release $tag"
fi
if [ -z "$base" ]; then
    echo "newsfragments: on the main line with no release tag; names and rendering checked only"
    exit 0
fi
if git diff --quiet "$base" HEAD -- twisted_lab twisted setup.cfg; then
    echo "newsfragments: no change to the package since $base"
    exit 0
fi
"$CI_VENV/bin/towncrier" check --compare-with "$base"
